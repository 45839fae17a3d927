//! Shared end-to-end test support: each test gets its own real nats-server on a free port,
//! its own store, and engines in-process or as real `paystate run` processes.
#![allow(dead_code)]

pub mod load;

use paystate_broker::{NatsServer, ServerOptions};
use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, OrderId, OrderState, Outcome, Provider,
    ProviderSignal, SignalKind,
};
use paystate_journal::{Journal, LogSettings, StoredCommit};
use paystate_service::{run_engine, Client, EngineConfig, EngineHandle};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);
pub const PROVIDER: Provider = Provider::Plural;

/// The log as tests configure it: unprotected, so tamper tests can delete messages.
pub fn log_settings() -> LogSettings {
    LogSettings {
        protect_log: false,
        ..Default::default()
    }
}

/// Engine settings for tests: short ack wait so redeliveries after a crash come quickly.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        partitions: 8,
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    }
}

pub struct TestNats {
    pub server: NatsServer,
}

impl TestNats {
    pub async fn start() -> TestNats {
        let server = NatsServer::start(ServerOptions::default())
            .await
            .expect("nats-server starts (scripts/install-nats.sh)");
        TestNats { server }
    }
    pub fn url(&self) -> String {
        self.server.url()
    }
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(self.url())
            .await
            .expect("connect to test nats")
    }
    pub async fn client(&self) -> Client {
        Client::new(self.connect().await)
    }
    pub async fn engine(&self) -> EngineHandle {
        run_engine(self.connect().await, log_settings(), engine_config())
            .await
            .expect("engine starts")
    }
    pub async fn journal(&self) -> Journal {
        Journal::open(
            async_nats::jetstream::new(self.connect().await),
            &log_settings(),
        )
        .await
        .expect("journal")
    }
}

/// A real `paystate run` process (SIGKILL-able).
pub struct EngineProcess {
    child: Option<tokio::process::Child>,
    url: String,
    extra_env: Vec<(String, String)>,
}

impl EngineProcess {
    pub fn start(url: &str) -> EngineProcess {
        EngineProcess::start_with(url, &[])
    }
    /// With extra environment, e.g. `PAYSTATE_REPLICAS=3` on a cluster.
    pub fn start_with(url: &str, extra_env: &[(&str, &str)]) -> EngineProcess {
        let extra_env = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut p = EngineProcess {
            child: None,
            url: url.to_string(),
            extra_env,
        };
        p.spawn();
        p
    }
    fn spawn(&mut self) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
            .arg("run")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PAYSTATE_NATS_URL", &self.url)
            .env("PAYSTATE_PROTECT_LOG", "false")
            .env("PAYSTATE_ENGINE__ACK_WAIT_MS", "2000")
            .env("PAYSTATE_ENGINE__PARTITIONS", "8")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("paystate binary runs");
        self.child = Some(child);
    }
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().expect("SIGKILL");
            let _ = c.wait().await;
        }
    }
    pub async fn restart(&mut self) {
        self.kill9().await;
        self.spawn();
    }
}

pub fn order(name: &str) -> OrderId {
    OrderId::parse(format!(
        "{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .expect("valid order id")
}

pub fn env_with_id(order: &OrderId, id: &str, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: CommandId::parse(id).expect("valid command id"),
        order_id: order.clone(),
        issued_at: "2026-11-22T10:00:00Z".parse().expect("time"),
        command,
    }
}

pub fn env(order: &OrderId, command: Command) -> CommandEnvelope {
    env_with_id(order, &uuid::Uuid::new_v4().to_string(), command)
}

pub fn create(amount_minor: u64) -> Command {
    Command::CreateOrder {
        merchant_reference: "shop-1".into(),
        amount: money(amount_minor, "USD").expect("amount"),
        provider: PROVIDER,
        capture_mode: CaptureMode::Manual,
        expires_at: None,
        merchant_account: None,
        metadata: Default::default(),
    }
}

pub fn start() -> Command {
    Command::StartPayment {
        initiation: Default::default(),
    }
}

pub fn capture(minor: Option<u64>) -> Command {
    Command::Capture {
        amount: minor.and_then(|m| money(m, "USD")),
    }
}

pub fn refund(minor: Option<u64>) -> Command {
    Command::Refund {
        amount: minor.and_then(|m| money(m, "USD")),
    }
}

pub fn signal(kind: SignalKind, evidence: &str) -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: PROVIDER,
            provider_ref: Some("prov-ref".into()),
            evidence_ref: evidence.to_string(),
            observed_at: "2026-11-22T10:00:01Z".parse().expect("time"),
            kind,
        },
    }
}

pub fn authorized() -> Command {
    signal(SignalKind::Authorized { amount: None }, "ev-auth")
}

pub fn captured(minor: u64) -> Command {
    signal(
        SignalKind::Captured {
            amount: money(minor, "USD"),
        },
        "ev-capture",
    )
}

/// Sends and expects acceptance; returns the state.
pub async fn accept(client: &Client, cmd: CommandEnvelope) -> OrderState {
    match client.send(&cmd, WAIT).await.expect("an outcome") {
        Outcome::Accepted { state, .. } => state,
        other => panic!(
            "expected acceptance of {}, got {other:?}",
            cmd.command.name()
        ),
    }
}

/// Polls the log until `order` has `commits` commits (or panics after `WAIT`).
pub async fn wait_for_commits(
    journal: &Journal,
    order: &OrderId,
    commits: usize,
) -> Vec<StoredCommit> {
    let started = Instant::now();
    loop {
        let got = journal.read_order(order).await.unwrap_or_default();
        if got.len() >= commits {
            return got;
        }
        assert!(
            started.elapsed() < WAIT * 3,
            "order {order} has {} of {commits} commits",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every command id in the order's log exactly once.
pub fn assert_each_command_once(commits: &[StoredCommit]) {
    let mut seen = std::collections::HashSet::new();
    for c in commits {
        assert!(
            seen.insert(c.commit.command.command_id.clone()),
            "command {} applied twice",
            c.commit.command.command_id
        );
    }
}
