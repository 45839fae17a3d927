//! NATS over TLS, and the other auth methods, end to end: a CA and a server certificate made
//! by the test (rcgen), nats-server with a `tls {}` block and the shipped users; the `paystate`
//! binary connects through its settings (`PAYSTATE_NATS__TLS__CA_FILE`, per-role users), an
//! engine runs, a client sends a command and gets its outcome. Without the CA the connection
//! is refused. Token and NKey authentication work through the same settings.

mod support;

use paystate::permissions::Role;
use paystate_broker::{NatsServer, ServerOptions};
use paystate_events::Outcome;
use std::path::PathBuf;
use support::secure::{command_file, paystate, send_until_answered, spawn_engine};
use support::secure::{random_password, role_passwords, secure_options};

/// A CA and a server certificate for 127.0.0.1 and localhost, written as PEM files.
struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "paystate test CA");
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_cert = server
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("server cert");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).expect("write");
        std::fs::write(
            dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .expect("write");
        TestPki { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn tls_block(&self) -> String {
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  timeout: 5\n}}\n",
            self.path("server.pem").display().to_string(),
            self.path("server-key.pem").display().to_string()
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_the_ca_from_settings_a_command_gets_its_outcome_and_without_it_nothing_connects(
) {
    let pki = TestPki::new();
    let passwords = role_passwords();
    let mut opts = secure_options(&passwords, &pki.tls_block());
    opts.probe.ca_file = Some(pki.path("ca.pem"));
    let server = NatsServer::start(opts)
        .await
        .expect("nats-server starts with TLS and the shipped users");
    let url = server.url();
    let ca = pki.path("ca.pem").display().to_string();
    let as_role = |role: Role, with_ca: bool| {
        let mut env = vec![
            ("PAYSTATE_NATS_URL".to_string(), url.clone()),
            ("PAYSTATE_NATS__USER".to_string(), role.user()),
            (
                "PAYSTATE_NATS__PASSWORD".to_string(),
                passwords[&role].clone(),
            ),
        ];
        if with_ca {
            env.push(("PAYSTATE_NATS__TLS__CA_FILE".to_string(), ca.clone()));
            env.push((
                "PAYSTATE_NATS__TLS__REQUIRED".to_string(),
                "true".to_string(),
            ));
        }
        env
    };
    let engine_env = as_role(Role::Engine, true);
    let mut engine = spawn_engine(&engine_env);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = command_file(dir.path(), "tls");
    let outcome = send_until_answered(&file, &as_role(Role::Client, true)).await;
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");

    // Without the CA: the server's certificate is not trusted, nothing connects.
    let other = command_file(dir.path(), "no-ca");
    let (code, out, err) = paystate(&["send", &other], &as_role(Role::Client, false)).await;
    assert_eq!(code, 2, "a connection without the CA: {out}{err}");
    assert!(err.contains("cannot connect to NATS"), "{err}");
    assert!(
        !err.contains(&passwords[&Role::Client]),
        "the password never appears in errors"
    );
    // A wrong password: refused, and the error does not echo it.
    let mut wrong = as_role(Role::Client, true);
    wrong[2].1 = "not-the-password".into();
    let (code, _, err) = paystate(&["send", &other], &wrong).await;
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    let _ = engine.start_kill();
    let _ = engine.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_nkey_authentication_work_through_settings() {
    // Token: the whole server takes one token (nats-server allows one token per server).
    let token = random_password();
    let server = NatsServer::start(ServerOptions {
        extra_config: format!("authorization {{\n  token: {token:?}\n}}\n"),
        probe: paystate_broker::Probe {
            token: Some(token.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("token server");
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![
        ("PAYSTATE_NATS_URL".to_string(), server.url()),
        ("PAYSTATE_NATS__TOKEN".to_string(), token.clone()),
    ];
    let mut engine = spawn_engine(&env);
    let outcome = send_until_answered(&command_file(dir.path(), "token"), &env).await;
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    // A wrong token is refused.
    let bad = vec![
        ("PAYSTATE_NATS_URL".to_string(), server.url()),
        ("PAYSTATE_NATS__TOKEN".to_string(), "wrong".to_string()),
    ];
    let (code, _, err) = paystate(&["send", &command_file(dir.path(), "bad")], &bad).await;
    assert_eq!(code, 2, "{err}");
    let _ = engine.start_kill();
    let _ = engine.wait().await;

    // NKey: a user key pair made here; the seed given in a file.
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().expect("seed");
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{seed}\n")).expect("write seed");
    let probe_password = random_password();
    let server = NatsServer::start(ServerOptions {
        extra_config: format!(
            "authorization {{\n  users = [ {{ nkey: {:?} }}, {{ user: probe, password: {probe_password:?} }} ]\n}}\n",
            user.public_key()
        ),
        probe: paystate_broker::Probe {
            user_password: Some(("probe".into(), probe_password.clone())),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("nkey server");
    let env = vec![
        ("PAYSTATE_NATS_URL".to_string(), server.url()),
        (
            "PAYSTATE_NATS__NKEY_SEED_FILE".to_string(),
            seed_file.display().to_string(),
        ),
    ];
    let mut engine = spawn_engine(&env);
    let outcome = send_until_answered(&command_file(dir.path(), "nkey"), &env).await;
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    let _ = engine.start_kill();
    let _ = engine.wait().await;
}

#[tokio::test]
async fn settings_refuse_two_auth_methods_and_missing_files_without_quoting_secrets() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("PAYSTATE_NATS__TOKEN", "s3cret-token"),
                ("PAYSTATE_NATS__USER", "u"),
                ("PAYSTATE_NATS__PASSWORD", "s3cret-pass"),
            ],
            "more than one NATS auth method",
        ),
        (
            vec![("PAYSTATE_NATS__CREDS_FILE", "/nonexistent/x.creds")],
            "creds_file",
        ),
        (
            vec![("PAYSTATE_NATS__TLS__CA_FILE", "/nonexistent/ca.pem")],
            "tls.ca_file",
        ),
        (
            vec![("PAYSTATE_NATS__ROLES__TELEPORTER__USER", "x")],
            "unknown role",
        ),
        (
            vec![("PAYSTATE_NATS__NKEY_SEED", "SUs3cret-not-a-seed")],
            "nkey_seed",
        ),
    ];
    for (env, expected) in cases {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (code, out, err) = paystate(&["check", "--dry-run"], &env).await;
        assert_eq!(code, 2, "{env:?}: {out}{err}");
        assert!(err.contains(expected), "{env:?}: {err}");
        assert!(!err.contains("s3cret"), "a secret in an error: {err}");
    }
}
