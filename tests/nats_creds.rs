//! NATS decentralized auth end to end: the test is its own operator. It makes an operator, an
//! account with JetStream, a system account and a user (NKeys from the `nkeys` crate, JWTs
//! signed here), starts nats-server in operator mode with a memory resolver, writes the
//! user's `.creds` file as `nsc` does, and the `paystate` binary connects through its settings
//! (`PAYSTATE_NATS__CREDS_FILE`): an engine runs, a client sends a command and gets its
//! outcome. A user signed by an account the server does not know is refused, and the error
//! does not quote the seed.

mod support;

use base64::Engine as _;
use nkeys::KeyPair;
use paystate_broker::{NatsServer, Probe, ServerOptions};
use paystate_events::Outcome;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use support::secure::{command_file, paystate, send_until_answered, spawn_engine};

/// A NATS v2 JWT: `claims` (without `jti`, `iat`, `iss`, `sub`) completed and signed by
/// `issuer`. `jti` is the base32 (no padding) of the SHA-256 of the claims without it.
fn nats_jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let mut claims = json!({
        "iat": chrono::Utc::now().timestamp(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let unsigned = serde_json::to_vec(&claims).expect("claims json");
    let jti = data_encoding::BASE32_NOPAD.encode(&sha2::Sha256::digest(&unsigned));
    claims["jti"] = Value::String(jti);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).expect("header json")),
        b64(&serde_json::to_vec(&claims).expect("claims json"))
    );
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64(&signature))
}

/// An account JWT signed by `operator`; `jetstream` gives it unlimited JetStream.
fn account_jwt(operator: &KeyPair, account: &KeyPair, name: &str, jetstream: bool) -> String {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for k in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[k] = json!(-1);
        }
    }
    nats_jwt(
        operator,
        &account.public_key(),
        name,
        json!({
            "limits": limits,
            "default_permissions": { "pub": {}, "sub": {} },
            "type": "account",
            "version": 2,
        }),
    )
}

/// A user JWT signed by `account`, allowed everything the account allows.
fn user_jwt(account: &KeyPair, user: &KeyPair, name: &str) -> String {
    nats_jwt(
        account,
        &user.public_key(),
        name,
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    )
}

/// The user's `.creds` file in `nsc`'s format.
fn write_creds(dir: &Path, name: &str, jwt: &str, user: &KeyPair) -> PathBuf {
    let seed = user.seed().expect("seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(&path, text).expect("write creds");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_authenticates_through_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let system = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "paystate-test-operator",
        json!({ "system_account": system.public_key(), "type": "operator", "version": 2 }),
    );
    let account_jwt_text = account_jwt(&operator, &account, "PAYSTATE", true);
    let system_jwt = account_jwt(&operator, &system, "SYS", false);
    let creds = write_creds(
        dir.path(),
        "paystate",
        &user_jwt(&account, &user, "engine"),
        &user,
    );

    let server = NatsServer::start(ServerOptions {
        extra_config: format!(
            "operator: {operator_jwt:?}\nsystem_account: {sys:?}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {acc}: {account_jwt_text:?}\n  {sys}: {system_jwt:?}\n}}\n",
            sys = system.public_key(),
            acc = account.public_key(),
        ),
        probe: Probe {
            creds_file: Some(creds.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("nats-server starts in operator mode with the account's JetStream");

    let with_creds = |path: &Path| {
        vec![
            ("PAYSTATE_NATS_URL".to_string(), server.url()),
            (
                "PAYSTATE_NATS__CREDS_FILE".to_string(),
                path.display().to_string(),
            ),
        ]
    };
    let engine_env = with_creds(&creds);
    let mut engine = spawn_engine(&engine_env);
    let outcome =
        send_until_answered(&command_file(dir.path(), "creds"), &with_creds(&creds)).await;
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");

    // A user of an account the operator never signed (the server does not know it): refused,
    // and the error quotes neither the seed nor the JWT.
    let stranger_account = KeyPair::new_account();
    let stranger = KeyPair::new_user();
    let stranger_jwt = user_jwt(&stranger_account, &stranger, "stranger");
    let stranger_creds = write_creds(dir.path(), "stranger", &stranger_jwt, &stranger);
    let (code, out, err) = paystate(
        &["send", &command_file(dir.path(), "stranger")],
        &with_creds(&stranger_creds),
    )
    .await;
    assert_eq!(code, 2, "an unknown account's user is refused: {out}{err}");
    assert!(
        err.contains("refused the connection: authorization violation"),
        "{err}"
    );
    let seed = stranger.seed().expect("seed");
    assert!(
        !err.contains(&seed) && !out.contains(&seed),
        "the seed in an error: {err}"
    );
    assert!(!err.contains(&stranger_jwt), "the JWT in an error: {err}");
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        log.contains("Account fetch failed: account missing")
            && log.contains("authentication error"),
        "the server logged the refusal: {log}"
    );
    let _ = engine.start_kill();
    let _ = engine.wait().await;
}
