//! Shared end-to-end test support: each test gets its own real nats-server on a free port,
//! its own store, and engines in-process or as real `paystate run` processes.
#![allow(dead_code)]

pub mod load;
pub mod providers;
pub mod quiet;
pub mod secure;
pub mod tuned;

use paystate_broker::{NatsServer, ServerOptions};
use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, OrderId, Outcome, Provider, ProviderSignal,
    SignalKind, StateView,
};
use paystate_journal::{Journal, LogSettings, StoredCommit};
use paystate_service::{run_engine, Client, EngineConfig, EngineHandle};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);
pub const PROVIDER: Provider = Provider::Plural;

/// API keys of every scope for the gateway's private listener in tests (made once per test
/// binary; the gateways are configured with their hashes only).
pub struct TestKeys {
    pub read: String,
    pub write: String,
    pub admin: String,
    pub configs: Vec<paystate_gateway::auth::ApiKeyConfig>,
}

pub fn test_keys() -> &'static TestKeys {
    use paystate_gateway::auth::{generate, Scope};
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let [read, write, admin] = [Scope::Read, Scope::Write, Scope::Admin]
            .map(|s| generate(s.as_str(), s).expect("key"));
        TestKeys {
            read: read.key,
            write: write.key,
            admin: admin.key,
            configs: vec![read.config, write.config, admin.config],
        }
    })
}

/// The test keys as a gateway holds them.
pub fn api_keys() -> paystate_gateway::auth::ApiKeys {
    paystate_gateway::auth::ApiKeys::new(&test_keys().configs).expect("test keys")
}

/// A gateway's two listeners on free loopback ports, with the test keys and default bounds.
pub async fn gateway_listeners() -> paystate::stack::GatewayListeners {
    paystate::stack::GatewayListeners::bind(
        "127.0.0.1:0",
        "127.0.0.1:0",
        api_keys(),
        Default::default(),
    )
    .await
    .expect("two free loopback ports")
}

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
    roles: String,
}

impl EngineProcess {
    pub fn start(url: &str) -> EngineProcess {
        EngineProcess::start_with(url, &[])
    }
    /// With extra environment, e.g. `PAYSTATE_REPLICAS=3` on a cluster.
    pub fn start_with(url: &str, extra_env: &[(&str, &str)]) -> EngineProcess {
        EngineProcess::start_roles(url, "engine", extra_env)
    }
    /// A `paystate run --roles <roles>` process (e.g. `projector`).
    pub fn start_roles(url: &str, roles: &str, extra_env: &[(&str, &str)]) -> EngineProcess {
        let extra_env = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut p = EngineProcess {
            child: None,
            url: url.to_string(),
            extra_env,
            roles: roles.to_string(),
        };
        p.spawn();
        p
    }
    fn spawn(&mut self) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
            .args(["run", "--roles", &self.roles])
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

/// The commands that take a new order to captured in full (create, start, authorized,
/// capture all, captured): ready for refunds.
pub fn to_captured(amount_minor: u64) -> [Command; 5] {
    [
        create(amount_minor),
        start(),
        authorized(),
        capture(None),
        captured(amount_minor),
    ]
}

/// Sends and expects acceptance; returns the state.
pub async fn accept(client: &Client, cmd: CommandEnvelope) -> StateView {
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

/// Writes a message on `order`'s log that claims to be a commit (it carries the commit hash
/// header, as a buggy writer's would) but is not one: the order becomes unreadable until an
/// operator quarantines it. (A message without that header is a stray, which readers skip:
/// see `paystate_journal::read::is_stray`.) Returns its stream sequence.
pub async fn write_broken_commit(js: &async_nats::jetstream::Context, order: &OrderId) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        paystate_events::subjects::HASH_HEADER,
        "0".repeat(64).as_str(),
    );
    js.publish_with_headers(
        paystate_events::subjects::events_subject(order),
        headers,
        "not a commit".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored")
    .sequence
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

// ---- Projection, replay, audit and CLI helpers (projection_e2e, audit_e2e) ----

use paystate_projection::{ProjectedOrder, ProjectionStore};
use proptest::strategy::{Strategy, ValueTree};

/// Runs the real `paystate` binary against `url`: (exit code, stdout, stderr).
pub async fn paystate_cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(args)
        .env("PAYSTATE_NATS_URL", url)
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

/// The projection handle on the test server's log.
pub async fn projection_store(nats: &TestNats) -> ProjectionStore {
    let js = async_nats::jetstream::new(nats.connect().await);
    ProjectionStore::open(js, &log_settings().events_stream, 1)
        .await
        .expect("projection store")
}

/// An engine and a projector (default settings) on the test server, and the projection
/// they keep.
pub async fn projected(
    nats: &TestNats,
) -> (
    EngineHandle,
    ProjectionStore,
    paystate_projection::ProjectorHandle,
) {
    let engine = nats.engine().await;
    let store = projection_store(nats).await;
    let projector = paystate_projection::start_projector(store.clone(), Default::default())
        .await
        .expect("projector");
    (engine, store, projector)
}

/// Waits until the live projection has no lag (panics after a while).
pub async fn wait_projection_caught_up(store: &ProjectionStore) {
    let lag = paystate_projection::wait_caught_up(store, WAIT * 3)
        .await
        .expect("projection status");
    assert_eq!(lag, 0, "the projection did not catch up");
}

/// Every projection record equals a fresh fold of its order's commits (state and sequence).
pub async fn assert_projection_equals_fold(
    store: &ProjectionStore,
    journal: &Journal,
    orders: &[OrderId],
) {
    for o in orders {
        let commits = journal.read_order(o).await.expect("read order");
        let fresh = paystate_projection::fold_fresh(&commits);
        let projected = store.get(o).await.expect("projection get");
        assert_eq!(
            projected.as_ref().map(|r| r.seq),
            fresh.as_ref().map(|r| r.seq),
            "order {o}: last applied sequence"
        );
        assert_eq!(projected, fresh, "order {o}: projection vs fresh fold");
        if let Some(r) = &projected {
            let folded = paystate_journal::read::fold(o, &commits)
                .expect("fold")
                .expect("exists");
            let view = StateView::of(&folded);
            assert_eq!(r.state, view, "order {o}: projection vs journal fold");
            assert_eq!(
                folded.applied.len() as u64,
                r.state.commits,
                "order {o}: each commit applied once"
            );
        }
    }
}

/// One step of a random workload: a client command or a provider report.
#[derive(Debug, Clone)]
pub enum Op {
    Start,
    Authorized(Option<u64>),
    Capture(Option<u64>),
    Captured(Option<u64>),
    Cancel,
    Cancelled,
    Refund(Option<u64>),
    /// Completes the order's latest refund (or an unrequested one).
    Refunded(Option<u64>),
    Failed,
    Settled,
    Unrecognised,
}

fn amount() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1u64..=12_000)
}

pub fn op_strategy() -> proptest::strategy::BoxedStrategy<Op> {
    proptest::prop_oneof![
        3 => proptest::strategy::Just(Op::Start),
        3 => amount().prop_map(Op::Authorized),
        3 => amount().prop_map(Op::Capture),
        3 => amount().prop_map(Op::Captured),
        1 => proptest::strategy::Just(Op::Cancel),
        1 => proptest::strategy::Just(Op::Cancelled),
        2 => amount().prop_map(Op::Refund),
        2 => amount().prop_map(Op::Refunded),
        1 => proptest::strategy::Just(Op::Failed),
        1 => proptest::strategy::Just(Op::Settled),
        1 => proptest::strategy::Just(Op::Unrecognised),
    ]
    .boxed()
}

/// `orders` orders, each with up to `ops_max` steps after its creation.
pub fn workload_strategy(orders: usize, ops_max: usize) -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(
        proptest::collection::vec(op_strategy(), 1..=ops_max),
        orders,
    )
}

/// One value of `strategy` from `seed` (printed by callers so a failure can be replayed
/// with PAYSTATE_TEST_SEED).
pub fn sample<S: Strategy>(strategy: S, seed: u64) -> S::Value {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = proptest::test_runner::TestRng::from_seed(
        proptest::test_runner::RngAlgorithm::ChaCha,
        &bytes,
    );
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        rng,
    );
    strategy.new_tree(&mut runner).expect("strategy").current()
}

/// The seed for this run: PAYSTATE_TEST_SEED, or a fresh one.
pub fn test_seed() -> u64 {
    std::env::var("PAYSTATE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0)
}

fn op_command(op: &Op, evidence: &str, last_refund: Option<&String>) -> Command {
    let m = |a: Option<u64>| a.and_then(|x| money(x, "USD"));
    match op {
        Op::Start => start(),
        Op::Authorized(a) => signal(SignalKind::Authorized { amount: m(*a) }, evidence),
        Op::Capture(a) => capture(*a),
        Op::Captured(a) => signal(SignalKind::Captured { amount: m(*a) }, evidence),
        Op::Cancel => Command::Cancel { reason: None },
        Op::Cancelled => signal(SignalKind::Cancelled, evidence),
        Op::Refund(a) => refund(*a),
        Op::Refunded(a) => signal(
            SignalKind::Refunded {
                refund_id: last_refund.cloned(),
                amount: m(*a),
            },
            evidence,
        ),
        Op::Failed => signal(
            SignalKind::Failed {
                operation: paystate_events::Operation::Payment,
                code: "declined".into(),
                message: "declined".into(),
                refund_id: None,
            },
            evidence,
        ),
        Op::Settled => signal(SignalKind::Settled { amount: None }, evidence),
        Op::Unrecognised => signal(
            SignalKind::Unrecognised {
                raw_status: "WEIRD".into(),
            },
            evidence,
        ),
    }
}

/// Drives every order's steps (orders concurrently, each order's steps in turn) and returns
/// each order with its outcomes (one per command, creation first).
pub async fn run_workload(
    client: &Client,
    prefix: &str,
    workload: Vec<Vec<Op>>,
) -> Vec<(OrderId, Vec<Outcome>)> {
    let mut tasks = Vec::new();
    for (i, ops) in workload.into_iter().enumerate() {
        let (c, o) = (client.clone(), order(&format!("{prefix}{i}")));
        tasks.push(tokio::spawn(async move {
            let mut outcomes = vec![c
                .send(&env(&o, create(10_000)), WAIT)
                .await
                .expect("outcome")];
            let mut last_refund: Option<String> = None;
            for (n, op) in ops.iter().enumerate() {
                let cmd = env(&o, op_command(op, &format!("ev-{n}"), last_refund.as_ref()));
                if matches!(op, Op::Refund(_)) {
                    last_refund = Some(cmd.command_id.to_string());
                }
                outcomes.push(c.send(&cmd, WAIT).await.expect("outcome"));
            }
            (o, outcomes)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("workload task"));
    }
    out
}

/// Every record of the live projection, by order.
pub async fn projection_records(
    store: &ProjectionStore,
) -> std::collections::BTreeMap<String, ProjectedOrder> {
    let generation = store.live().await.expect("live generation");
    let mut out = std::collections::BTreeMap::new();
    store
        .scan(&generation, |r| {
            out.insert(r.state.order_id.to_string(), r);
            true
        })
        .await
        .expect("scan");
    out
}

/// A real `paystate project run` process (SIGKILL-able).
pub struct ProjectorProcess {
    child: Option<tokio::process::Child>,
    url: String,
}

impl ProjectorProcess {
    pub fn start(url: &str) -> ProjectorProcess {
        let mut p = ProjectorProcess {
            child: None,
            url: url.to_string(),
        };
        p.spawn();
        p
    }
    pub fn spawn(&mut self) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
            .args(["project", "run"])
            .env("PAYSTATE_NATS_URL", &self.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
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
}

/// Waits until some projector has created the live generation.
pub async fn wait_until_live(store: &ProjectionStore) {
    let started = Instant::now();
    while store.live().await.is_err() {
        assert!(
            started.elapsed() < WAIT,
            "no projection generation appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the service discovery until `instances` instances answer and every fast-path
/// partition is an endpoint of exactly one of them; the last coverage seen on timeout.
pub async fn served_once_within(
    nats: &async_nats::Client,
    instances: usize,
    deadline: Duration,
) -> Result<(), String> {
    let until = tokio::time::Instant::now() + deadline;
    let mut last = String::new();
    while tokio::time::Instant::now() < until {
        match paystate_service::fast::discovery::coverage(nats, Duration::from_millis(300)).await {
            Ok((answered, served)) if answered == instances && served.iter().all(|&n| n == 1) => {
                return Ok(())
            }
            Ok((answered, served)) => {
                last = format!("{answered} instances answered; partitions served {served:?}")
            }
            Err(e) => {
                last = format!("discovery failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(last)
}
