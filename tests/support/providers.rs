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
        ProviderStack::start_with(
            SandboxConfig {
                time_scale: TimeScale::MILLIS,
                ..Default::default()
            },
            fast_reconciler(),
        )
        .await
    }

    pub async fn start_with(
        sandbox_cfg: SandboxConfig,
        reconciler: ReconcilerConfig,
    ) -> ProviderStack {
        let nats = TestNats::start().await;
        let workers = WorkerConfig {
            ack_wait: Duration::from_secs(10),
            ..Default::default()
        };
        let (stack, sandbox, sandbox_cfg) = with_sandbox(
            nats.connect().await,
            log_settings(),
            engine_config(),
            workers,
            reconciler,
            sandbox_cfg,
            gateway_listeners().await,
        )
        .await
        .expect("stack starts");
        let client = nats.client().await;
        let journal = nats.journal().await;
        ProviderStack {
            nats,
            stack,
            sandbox,
            sandbox_cfg,
            client,
            journal,
        }
    }

    /// Polls the log until `pred` holds for the order's state (panics after `WAIT`).
    pub async fn wait_until(
        &self,
        order: &OrderId,
        what: &str,
        pred: impl Fn(&OrderState) -> bool,
    ) -> OrderState {
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
        self.wait_until(order, status.as_str(), |s| s.status == status)
            .await
    }
}

/// A create command for `provider` in `currency`.
pub fn create_for(provider: Provider, minor: u64, currency: &str, mode: CaptureMode) -> Command {
    let amount = Money::new(
        paystate_events::Amount::new(minor).expect("amount"),
        Currency::parse(currency).expect("currency"),
    );
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

// ---- Helpers for the Plexy, Paykassma, exchanger and reconciler tests ----

use futures::StreamExt as _;
use paystate_adapters::Adapters;
use paystate_events::command::Attachment;
use paystate_events::Event;

/// One `provider_signal` command in an order's log: its evidence, what it said, and the
/// events the engine made of it.
#[derive(Debug, Clone)]
pub struct SignalCommit {
    pub evidence_ref: String,
    pub kind: SignalKind,
    pub events: Vec<Event>,
}

impl SignalCommit {
    pub fn event_names(&self) -> Vec<&'static str> {
        self.events.iter().map(Event::name).collect()
    }
}

impl ProviderStack {
    /// `http://addr` of the stack's gateway: its public listener (provider callbacks).
    pub fn gateway_url(&self) -> String {
        self.stack.gateway_url.clone().expect("the gateway runs")
    }

    /// `http://addr` of the gateway's private listener (queries, attachments; API keys).
    pub fn private_url(&self) -> String {
        self.stack.private_url.clone().expect("the gateway runs")
    }

    /// Adapters configured like the stack's own (to call provider operations directly).
    pub fn adapters(&self) -> Adapters {
        let cfg = paystate_sandbox::wiring::adapters_config(
            &self.sandbox,
            &self.sandbox_cfg,
            &self.gateway_url(),
        )
        .expect("wiring");
        Adapters::new(cfg).expect("adapters")
    }

    /// Uploads a file as a raw body to the gateway's `POST /attachments` (write key).
    pub async fn upload(&self, file_name: &str, content_type: &str, bytes: Vec<u8>) -> Attachment {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/attachments?name={file_name}",
                self.private_url()
            ))
            .bearer_auth(&test_keys().write)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload sent");
        assert_eq!(resp.status().as_u16(), 201, "upload accepted");
        resp.json().await.expect("attachment JSON")
    }

    /// Every provider signal in the order's log, in order.
    pub async fn signals(&self, order: &OrderId) -> Vec<SignalCommit> {
        let commits = self.journal.read_order(order).await.expect("read order");
        commits
            .into_iter()
            .filter_map(|c| match c.commit.command.command {
                Command::ProviderSignal { signal } => Some(SignalCommit {
                    evidence_ref: signal.evidence_ref,
                    kind: signal.kind,
                    events: c.commit.events,
                }),
                _ => None,
            })
            .collect()
    }
}

impl ProviderStack {
    /// Every verdict the gateway recorded for `provider`'s callbacks (`applied`,
    /// `duplicate`, `rejected`, ...), oldest first, once every stored callback has one (see
    /// [`settled_verdicts`]).
    pub async fn callback_verdicts(&self, provider: Provider) -> Vec<serde_json::Value> {
        settled_verdicts(&self.nats, provider).await
    }

    /// Every raw callback the gateway stored for `provider`, oldest first.
    pub async fn raw_callbacks(&self, provider: Provider) -> Vec<serde_json::Value> {
        callbacks_subject(&self.nats, &format!("paystate.callbacks.{provider}.raw"))
            .await
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    }
}

/// The verdicts the gateway stored for `provider`'s callbacks, oldest first, read once every
/// raw callback stored so far has at least one. Why wait: the gateway stores a callback, has
/// it applied (the order moves), then writes its verdict before answering, so a test that saw
/// the order move can otherwise read before the verdict is there. Past [`WAIT`] it returns
/// what there is (a callback whose gateway crashed before its verdict never gets one).
pub async fn settled_verdicts(nats: &TestNats, provider: Provider) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let raw = callbacks_subject(nats, &format!("paystate.callbacks.{provider}.raw")).await;
        let verdicts: Vec<serde_json::Value> =
            callbacks_subject(nats, &format!("paystate.callbacks.{provider}.verdict"))
                .await
                .into_iter()
                .map(|(_, record)| record)
                .collect();
        let judged: std::collections::HashSet<u64> = verdicts
            .iter()
            .filter_map(|v| v["raw_seq"].as_u64())
            .collect();
        if raw.iter().all(|(seq, _)| judged.contains(seq)) || Instant::now() >= deadline {
            return verdicts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON records of one subject of the callbacks stream with their stream sequences,
/// oldest first.
async fn callbacks_subject(nats: &TestNats, subject: &str) -> Vec<(u64, serde_json::Value)> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let js = async_nats::jetstream::new(nats.connect().await);
    let stream = js
        .get_stream(paystate_gateway::callbacks::CALLBACKS_STREAM)
        .await
        .expect("callbacks stream");
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let pending = consumer.info().await.expect("consumer info").num_pending;
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    for _ in 0..pending {
        let msg = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("stored record")
            .expect("stream open")
            .expect("message");
        let seq = msg.info().expect("JetStream metadata").stream_sequence;
        out.push((
            seq,
            serde_json::from_slice(&msg.payload).expect("a JSON record"),
        ));
    }
    out
}

/// A second gateway's public listener (provider callbacks) in its own runtime, so that a crash cuts
/// everything it holds (listener, keep-alive connections, requests in hand) at once, and a
/// restart serves the same address with fresh process state.
pub struct CrashableGateway {
    pub addr: std::net::SocketAddr,
    nats_url: String,
    adapters: paystate_adapters::AdaptersConfig,
    runtime: Option<tokio::runtime::Runtime>,
}

impl CrashableGateway {
    /// Starts on a free port with the stack's provider configuration.
    pub async fn start(ps: &ProviderStack) -> CrashableGateway {
        let cfg = paystate_sandbox::wiring::adapters_config(
            &ps.sandbox,
            &ps.sandbox_cfg,
            &ps.gateway_url(),
        )
        .expect("wiring");
        let mut g = CrashableGateway {
            addr: "127.0.0.1:0".parse().expect("addr"),
            nats_url: ps.nats.url(),
            adapters: cfg,
            runtime: None,
        };
        g.serve().await;
        g
    }

    /// `http://addr/callbacks/{provider}`.
    pub fn callback_url(&self, provider: Provider) -> String {
        format!("http://{}/callbacks/{provider}", self.addr)
    }

    /// Everything stops at once: no answer is finished, every connection is cut.
    pub fn crash(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Serves again on the same address, with fresh state (as a restarted process).
    pub async fn restart(&mut self) {
        self.crash();
        self.serve().await;
    }

    async fn serve(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (addr, url, adapters) = (self.addr, self.nats_url.clone(), self.adapters.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .expect("gateway address free");
            let bound = listener.local_addr().expect("bound");
            let nats = async_nats::connect(url).await.expect("nats");
            let adapters = std::sync::Arc::new(Adapters::new(adapters).expect("adapters"));
            let callbacks = paystate_gateway::callbacks::Callbacks::open(nats.clone(), adapters, 1)
                .await
                .expect("callbacks");
            let router = paystate_gateway::public_router(Some(callbacks), Default::default());
            let _ = ready_tx.send(bound);
            let _ = paystate_gateway::serve(listener, router, std::future::pending()).await;
        });
        self.addr = tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("gateway ready in time")
            .expect("gateway started");
        self.runtime = Some(rt);
    }
}

impl Drop for CrashableGateway {
    fn drop(&mut self) {
        self.crash();
    }
}
