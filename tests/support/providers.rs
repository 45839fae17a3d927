//! A whole paystate with a sandbox of all five providers, for provider end-to-end tests:
//! real nats-server, engine, projector, adapter workers, reconciler and gateway, and the
//! sandbox calling the gateway back over real HTTP on loopback.

use super::*;
use paystate::stack::{with_sandbox, Stack};
use paystate_events::{CaptureMode, Currency, Money, OrderState, Status};
use paystate_sandbox::{SandboxConfig, SandboxHandle, TimeScale};
use paystate_workers::{ReconcilerConfig, WorkerConfig};

pub struct ProviderStack {
    pub nats: TestNats,
    pub stack: Stack,
    pub sandbox: SandboxHandle,
    pub sandbox_cfg: SandboxConfig,
    pub client: Client,
    pub journal: Journal,
}

/// Fast schedules for tests: sandbox retry schedules in milliseconds, reconciler deadlines
/// divided by 60 000 (a minute becomes a millisecond), short worker ack wait.
pub fn fast_reconciler() -> ReconcilerConfig {
    ReconcilerConfig::default().scaled(60_000)
}

impl ProviderStack {
    pub async fn start() -> ProviderStack {
        ProviderStack::start_with(SandboxConfig { time_scale: TimeScale::MILLIS, ..Default::default() }, fast_reconciler()).await
    }

    pub async fn start_with(sandbox_cfg: SandboxConfig, reconciler: ReconcilerConfig) -> ProviderStack {
        let nats = TestNats::start().await;
        let workers = WorkerConfig { ack_wait: Duration::from_secs(10), ..Default::default() };
        let (stack, sandbox, sandbox_cfg) = with_sandbox(nats.connect().await, log_settings(), engine_config(), workers, reconciler, sandbox_cfg, "127.0.0.1:0")
            .await
            .expect("stack starts");
        let client = nats.client().await;
        let journal = nats.journal().await;
        ProviderStack { nats, stack, sandbox, sandbox_cfg, client, journal }
    }

    /// Polls the log until `pred` holds for the order's state (panics after `WAIT`).
    pub async fn wait_until(&self, order: &OrderId, what: &str, pred: impl Fn(&OrderState) -> bool) -> OrderState {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < WAIT {
            if let Ok(loaded) = self.journal.load(order).await {
                if let Some(s) = loaded.state {
                    if pred(&s) {
                        return s;
                    }
                    last = Some(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("order {order} never became {what}; last state: {last:#?}");
    }

    pub async fn wait_status(&self, order: &OrderId, status: Status) -> OrderState {
        self.wait_until(order, status.as_str(), |s| s.status == status).await
    }
}

/// A create command for `provider` in `currency`.
pub fn create_for(provider: Provider, minor: u64, currency: &str, mode: CaptureMode) -> Command {
    let amount = Money::new(paystate_events::Amount::new(minor).expect("amount"), Currency::parse(currency).expect("currency"));
    Command::CreateOrder {
        merchant_reference: "shop-1".into(),
        amount,
        provider,
        capture_mode: mode,
        expires_at: None,
        merchant_account: None,
        metadata: Default::default(),
    }
}

/// `refund`/`capture` amounts in a currency other than USD.
pub fn money_in(minor: u64, currency: &str) -> Option<Money> {
    paystate_events::command::money(minor, currency)
}
