//! A nats-server running the shipped permission config (deploy/nats/paystate-users.conf):
//! one user per role with a random password per start, passed to the server in its
//! environment as the config expects. Tests connect as a role, run the binary as a role, and
//! read the server's log for permission violations.

use super::{create, env, order, WAIT};
use paystate::permissions::Role;
use paystate_broker::{NatsServer, Probe, ServerEnv, ServerOptions};
use paystate_events::Outcome;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shipped config, as checked in.
pub fn shipped_users_conf() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(paystate::permissions::USERS_CONF_PATH);
    std::fs::read_to_string(&path).expect("deploy/nats/paystate-users.conf exists")
}

pub fn random_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Every role's password, fresh.
pub fn role_passwords() -> BTreeMap<Role, String> {
    Role::ALL
        .into_iter()
        .map(|r| (r, random_password()))
        .collect()
}

/// The server environment naming each role's password (`PAYSTATE_NATS_<ROLE>_PASSWORD`).
pub fn server_env(passwords: &BTreeMap<Role, String>) -> ServerEnv {
    ServerEnv(
        passwords
            .iter()
            .map(|(r, p)| (r.password_env(), p.clone()))
            .collect(),
    )
}

/// Server options for the shipped config (plus `extra`, e.g. a `tls {}` block).
pub fn secure_options(passwords: &BTreeMap<Role, String>, extra: &str) -> ServerOptions {
    ServerOptions {
        extra_config: format!("{}\n{extra}", shipped_users_conf()),
        env: server_env(passwords),
        probe: Probe {
            user_password: Some((Role::Admin.user(), passwords[&Role::Admin].clone())),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Errors the server sent a connection (permission violations arrive this way).
#[derive(Clone, Default)]
pub struct ServerErrors(pub Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
    /// Polls until an error mentioning `needle` arrived (up to 10 s).
    pub async fn wait_for(&self, needle: &str) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(10) {
            if self.all().iter().any(|e| e.contains(needle)) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }
}

pub struct SecureNats {
    pub server: NatsServer,
    pub passwords: BTreeMap<Role, String>,
}

impl SecureNats {
    pub async fn start() -> SecureNats {
        let passwords = role_passwords();
        let server = NatsServer::start(secure_options(&passwords, ""))
            .await
            .expect("nats-server starts with the shipped users config");
        SecureNats { server, passwords }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Connects as `role`'s user; the server's errors to this connection are collected.
    pub async fn connect_as(&self, role: Role) -> (async_nats::Client, ServerErrors) {
        self.connect_as_with_inbox(role, role.inbox_prefix()).await
    }

    /// [`SecureNats::connect_as`] with replies below `inbox` instead of the role's prefix.
    pub async fn connect_as_with_inbox(
        &self,
        role: Role,
        inbox: &str,
    ) -> (async_nats::Client, ServerErrors) {
        let errors = ServerErrors::default();
        let sink = errors.clone();
        let client = async_nats::ConnectOptions::with_user_and_password(
            role.user(),
            self.passwords[&role].clone(),
        )
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    if let Ok(mut v) = sink.0.lock() {
                        v.push(e.to_string());
                    }
                }
            }
        })
        .max_reconnects(None)
        // As `paystate` connects as the role: below the role's own inbox prefix.
        .custom_inbox_prefix(inbox)
        .connect(self.url())
        .await
        .expect("connect as a role");
        (client, errors)
    }

    pub async fn client_as(&self, role: Role) -> async_nats::Client {
        self.connect_as(role).await.0
    }

    /// One connection per role for a stack.
    pub async fn connections(&self, roles: &[Role]) -> paystate::stack::Connections {
        let mut by_role = BTreeMap::new();
        for r in roles {
            by_role.insert(*r, self.client_as(*r).await);
        }
        paystate::stack::Connections::per_role(by_role)
    }

    /// The environment that makes the `paystate` binary connect as `role`.
    pub fn env_as(&self, role: Role) -> Vec<(String, String)> {
        vec![
            ("PAYSTATE_NATS_URL".into(), self.url()),
            ("PAYSTATE_NATS__USER".into(), role.user()),
            (
                "PAYSTATE_NATS__PASSWORD".into(),
                self.passwords[&role].clone(),
            ),
        ]
    }

    /// Runs the real binary as `role`: (exit code, stdout, stderr).
    pub async fn cli_as(&self, role: Role, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
            .args(args)
            .envs(self.env_as(role))
            .env("PAYSTATE_PROTECT_LOG", "false")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("paystate binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Permission violations the server logged (`Publish Violation`, `Subscription
    /// Violation`), with the user and subject.
    pub fn violations(&self) -> Vec<String> {
        std::fs::read_to_string(self.server.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Violation"))
            .map(str::to_string)
            .collect()
    }
}

// ---- Running the binary with connection settings in its environment (nats_tls, nats_creds) ----

/// Runs the binary with `env`: (exit code, stdout, stderr), within `WAIT`.
pub async fn paystate(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PAYSTATE_PROTECT_LOG", "false")
        .env("PAYSTATE_WAIT_MS", "5000")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("paystate {args:?} did not finish in {WAIT:?}"))
        .expect("paystate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `paystate run --roles engine` process with `env` (killed when dropped).
pub fn spawn_engine(env: &[(String, String)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(["run", "--roles", "engine"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PAYSTATE_PROTECT_LOG", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("paystate run --roles engine starts")
}

pub fn command_file(dir: &Path, name: &str) -> String {
    let o = order(name);
    let body = serde_json::to_string(&env(&o, create(700))).expect("json");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body).expect("write");
    path.display().to_string()
}

/// Sends until an engine answers (it may still be starting): the outcome.
pub async fn send_until_answered(file: &str, env: &[(String, String)]) -> Outcome {
    let started = Instant::now();
    loop {
        let (code, out, err) = paystate(&["send", file], env).await;
        if code == 0 || code == 1 {
            return serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        }
        assert!(started.elapsed() < WAIT, "no outcome: {out}{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
