//! Provider stacks tuned for fault tests (short adapter timeouts, a quiet reconciler, quick
//! redelivery), with the kills and restarts a crash test needs, and the order's log reduced
//! to what provider tests assert on (`trail`).

use super::providers::ProviderStack;
use super::*;
use paystate::stack::{Stack, StackOptions};
use paystate_adapters::config::AdaptersConfig;
use paystate_adapters::Adapters;
use paystate_events::Event;
use paystate_gateway::callbacks::{CallbackStats, Callbacks};
use paystate_sandbox::{Sandbox, SandboxConfig, SandboxHandle, TimeScale};
use paystate_workers::{ReconcilerConfig, WorkerConfig};
use std::sync::Arc;

/// Per-call timeout of the adapters in tuned stacks: the sandbox answers in microseconds, so a
/// short timeout lets a withheld answer become an unknown outcome quickly.
pub const TUNED_REQUEST_TIMEOUT_MS: u64 = 1_500;
/// Worker ack wait in tuned stacks: a killed worker's work comes back this soon.
pub const TUNED_WORKER_ACK_WAIT: Duration = Duration::from_secs(4);

/// What a tuned stack changes from `ProviderStack::start`.
pub struct Tuning {
    pub sandbox: SandboxConfig,
    pub reconciler: ReconcilerConfig,
    pub workers: WorkerConfig,
    pub request_timeout_ms: u64,
}

impl Default for Tuning {
    /// Millisecond callback schedules, short timeouts, and a reconciler with its real
    /// (minutes-long) deadlines, so only callbacks and the workers move orders.
    fn default() -> Tuning {
        Tuning {
            sandbox: SandboxConfig {
                time_scale: TimeScale::MILLIS,
                ..Default::default()
            },
            reconciler: ReconcilerConfig::default(),
            workers: WorkerConfig {
                ack_wait: TUNED_WORKER_ACK_WAIT,
                ..Default::default()
            },
            request_timeout_ms: TUNED_REQUEST_TIMEOUT_MS,
        }
    }
}

/// A tuned provider stack: the stack plus what it takes to kill and restart its parts.
pub struct Tuned {
    pub ps: ProviderStack,
    pub adapters_cfg: AdaptersConfig,
    pub workers_cfg: WorkerConfig,
}

impl Tuned {
    pub async fn start(t: Tuning) -> Tuned {
        let nats = TestNats::start().await;
        let gateway = gateway_listeners().await;
        let gateway_url = format!("http://{}", gateway.public.local_addr().expect("addr"));
        let mut sandbox_cfg = t.sandbox;
        sandbox_cfg.gateway_url = Some(gateway_url.clone());
        let sandbox = Sandbox::start(sandbox_cfg.clone())
            .await
            .expect("sandbox starts");
        let mut adapters_cfg =
            paystate_sandbox::wiring::adapters_config(&sandbox, &sandbox_cfg, &gateway_url)
                .expect("wiring");
        set_request_timeout(&mut adapters_cfg, t.request_timeout_ms);
        let opts = StackOptions {
            log: log_settings(),
            engine: Some(engine_config()),
            projector: true,
            workers: Some(t.workers.clone()),
            reconciler: Some(t.reconciler),
            gateway: Some(gateway),
            adapters: Some(adapters_cfg.clone()),
        };
        let stack = Stack::start(nats.connect().await, opts)
            .await
            .expect("stack starts");
        let client = nats.client().await;
        let journal = nats.journal().await;
        let ps = ProviderStack {
            nats,
            stack,
            sandbox,
            sandbox_cfg,
            client,
            journal,
        };
        Tuned {
            ps,
            adapters_cfg,
            workers_cfg: t.workers,
        }
    }

    /// A fresh `Adapters` with this stack's configuration (its own token cache and pool).
    pub fn adapters(&self) -> Adapters {
        Adapters::new(self.adapters_cfg.clone()).expect("adapters")
    }

    pub fn callback_stats(&self) -> Arc<CallbackStats> {
        self.ps.stack.callbacks.as_ref().expect("callbacks").stats()
    }

    /// The adapter workers stop at once, mid-call if they are in one (a crash).
    pub fn kill_workers(&mut self) {
        if let Some(w) = self.ps.stack.workers.take() {
            w.abort();
        }
    }

    /// New adapter workers on the same durable consumer (what a restarted process does).
    pub async fn restart_workers(&mut self) {
        let adapters = Arc::new(self.adapters());
        let w = paystate_workers::run_workers(
            self.ps.nats.connect().await,
            &log_settings(),
            adapters,
            self.workers_cfg.clone(),
        )
        .await
        .expect("workers restart");
        self.ps.stack.workers = Some(w);
    }

    /// A new gateway's public listener (provider callbacks) on the killed one's address (after
    /// `Stack::kill_gateway`), with its own callback handler state, as a restarted process
    /// would have.
    pub async fn restart_gateway(&self) -> GatewayProcess {
        let url = self
            .ps
            .stack
            .gateway_url
            .clone()
            .expect("the stack runs a gateway");
        let addr = url.trim_start_matches("http://").to_string();
        let listener = bind_retrying(&addr).await;
        let callbacks = Callbacks::open(self.ps.nats.connect().await, Arc::new(self.adapters()), 1)
            .await
            .expect("callbacks");
        let router = paystate_gateway::public_router(Some(callbacks.clone()), Default::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(paystate_gateway::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        GatewayProcess {
            callbacks,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

fn set_request_timeout(cfg: &mut AdaptersConfig, ms: u64) {
    let t = paystate_adapters::config::Timeouts { request_ms: ms };
    if let Some(c) = cfg.plural.as_mut() {
        c.timeouts = t;
    }
    if let Some(c) = cfg.flitt.as_mut() {
        c.timeouts = t;
    }
    if let Some(c) = cfg.plexy.as_mut() {
        c.common.timeouts = t;
    }
    if let Some(c) = cfg.paykassma.as_mut() {
        c.timeouts = t;
    }
    if let Some(c) = cfg.exchanger.as_mut() {
        c.common.timeouts = t;
    }
}

/// Binds `addr`, retrying briefly while the killed gateway's socket is released.
async fn bind_retrying(addr: &str) -> tokio::net::TcpListener {
    let started = Instant::now();
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// A gateway started by a test (the restarted one).
pub struct GatewayProcess {
    pub callbacks: Callbacks,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl GatewayProcess {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// One commit of an order, reduced to what provider tests look at.
#[derive(Debug, Clone)]
pub struct Step {
    pub command_id: String,
    /// The signal the commit answers, if it answers one (`authorized`, `outcome_unknown`, ...).
    pub signal: Option<String>,
    pub evidence: Option<String>,
    /// Event names, with the disposition for recorded signals (`signal_recorded:late`).
    pub events: Vec<String>,
}

/// The order's log as steps.
pub async fn trail(journal: &Journal, order: &OrderId) -> Vec<Step> {
    let commits = journal.read_order(order).await.expect("read order");
    commits.iter().map(|c| step(&c.commit)).collect()
}

fn step(c: &paystate_events::Commit) -> Step {
    let (signal, evidence) = match &c.command.command {
        Command::ProviderSignal { signal } => (
            Some(signal.kind.name().to_string()),
            Some(signal.evidence_ref.clone()),
        ),
        _ => (None, None),
    };
    let events = c
        .events
        .iter()
        .map(|e| match e {
            Event::SignalRecorded { disposition, .. } => format!(
                "signal_recorded:{}",
                serde_json::to_value(disposition)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            Event::DiscrepancyDetected { code, .. } => format!("discrepancy:{code}"),
            other => other.name().to_string(),
        })
        .collect();
    Step {
        command_id: c.command.command_id.to_string(),
        signal,
        evidence,
        events,
    }
}

/// How many commits of the trail hold an event named `event`.
pub fn count_events(trail: &[Step], event: &str) -> usize {
    trail
        .iter()
        .map(|s| s.events.iter().filter(|e| *e == event).count())
        .sum()
}

/// The signals of the trail with this name (e.g. `outcome_unknown`).
pub fn signals_named<'a>(trail: &'a [Step], name: &str) -> Vec<&'a Step> {
    trail
        .iter()
        .filter(|s| s.signal.as_deref() == Some(name))
        .collect()
}

/// True when no commit of the trail records a discrepancy.
pub fn no_discrepancy(trail: &[Step]) -> bool {
    trail
        .iter()
        .all(|s| s.events.iter().all(|e| !e.starts_with("discrepancy")))
}

/// Waits until the sandbox has no callback queued, held or waiting for a retry.
pub async fn callbacks_idle(sandbox: &SandboxHandle) {
    assert!(
        sandbox.wait_callbacks_idle(WAIT).await,
        "sandbox callbacks never went idle"
    );
}

/// The kinds of the provider signals the order received, in order.
pub fn signal_kinds(trail: &[Step]) -> Vec<String> {
    trail.iter().filter_map(|s| s.signal.clone()).collect()
}

/// The verdicts the gateway stored for `provider`'s callbacks (`applied`, `duplicate`,
/// `rejected`, ...), oldest first, once every stored callback has one.
pub async fn verdicts_of(nats: &TestNats, provider: Provider) -> Vec<serde_json::Value> {
    super::providers::settled_verdicts(nats, provider).await
}
