//! Starting, serving and stopping one sandbox server, and the handle tests hold.
//!
//! The server is a hand-rolled accept loop over hyper so that a response marked with
//! [`DropConnection`] closes the connection without an answer (the "dropped response
//! after the provider acted" fault); everything else is plain axum routing.

use crate::config::SandboxConfig;
use crate::control::{self, Action, ActionOutcome, ControlError};
use crate::counters::{CounterStore, Counters};
use crate::faults::{FaultRule, FaultStore};
use crate::http::DropConnection;
use crate::outbox::{DeliveryRecord, Outbox};
use crate::shared::Shared;
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use paystate_events::Provider;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Open connections get this long to finish after shutdown is asked for.
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(5);

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// Starts sandboxes.
pub struct Sandbox;

impl Sandbox {
    /// Starts one server hosting all five providers on `127.0.0.1`, port 0.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        Sandbox::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on a chosen address (`paystate dev` uses a fixed port).
    pub async fn start_on(
        addr: SocketAddr,
        config: SandboxConfig,
    ) -> Result<SandboxHandle, SandboxError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(CounterStore::default());
        let faults = Arc::new(FaultStore::default());
        let (outbox, mut tasks) = Outbox::start(
            counters.clone(),
            faults.clone(),
            config.time_scale,
            shutdown_rx.clone(),
        );
        let origin = format!("http://{addr}");
        let shared = Arc::new(Shared::new(
            config,
            origin,
            counters,
            faults,
            outbox,
            shutdown_rx.clone(),
        ));
        let router = app(shared.clone());
        tasks.push(tokio::spawn(serve(listener, router, shutdown_rx)));
        Ok(SandboxHandle {
            shared,
            addr,
            shutdown_tx,
            tasks,
        })
    }

    /// Starts like [`Sandbox::start`] and shuts down when `signal` completes.
    pub async fn start_until<F>(
        config: SandboxConfig,
        signal: F,
    ) -> Result<SandboxHandle, SandboxError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = Sandbox::start(config).await?;
        let tx = handle.shutdown_tx.clone();
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Ok(handle)
    }
}

fn app(shared: Arc<Shared>) -> Router {
    // Each provider's routes keep the request text for the `echo_request` fault.
    let echo = |p: Provider| {
        axum::middleware::from_fn_with_state((shared.clone(), p), crate::echo::capture)
    };
    Router::new()
        .nest(
            "/plexy",
            crate::plexy::routes().layer(echo(Provider::Plexy)),
        )
        .nest(
            "/paykassma",
            crate::paykassma::routes().layer(echo(Provider::Paykassma)),
        )
        .nest(
            "/plural",
            crate::plural::routes().layer(echo(Provider::Plural)),
        )
        .nest(
            "/exchanger",
            crate::exchanger::routes().layer(echo(Provider::Exchanger)),
        )
        .nest(
            "/flitt",
            crate::flitt::routes().layer(echo(Provider::Flitt)),
        )
        .nest("/_sandbox", control::routes())
        .with_state(shared)
}

/// Accepts until shutdown, then lets open connections drain for [`SHUTDOWN_DRAIN_MAX`].
async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            async move {
                let Ok(resp) = router.oneshot(req.map(Body::new)).await;
                if resp.extensions().get::<DropConnection>().is_some() {
                    return Err(std::io::Error::other(
                        "sandbox: response dropped on purpose",
                    ));
                }
                Ok(resp)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_DRAIN_MAX, graceful.shutdown()).await;
}

/// A running sandbox: its URLs, its control API and its shutdown.
pub struct SandboxHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SandboxHandle {
    /// The socket the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL paystate's adapter config points at for `provider`; the provider's
    /// documented paths follow it (e.g. `{base}/api/pay/v1/orders` for Plural).
    pub fn base_url(&self, provider: Provider) -> String {
        self.shared.base_url(provider)
    }

    /// The control API's HTTP prefix (`http://127.0.0.1:<port>/_sandbox`).
    pub fn control_url(&self) -> String {
        format!("{}/_sandbox", self.shared.origin)
    }

    /// Applies a customer or back-office action to one order (see [`Action`]).
    pub fn act(
        &self,
        provider: Provider,
        id: &str,
        action: Action,
    ) -> Result<ActionOutcome, ControlError> {
        control::act(&self.shared, provider, id, action)
    }

    /// The customer pays / authorizes (see [`Action::Approve`]).
    pub fn approve(&self, provider: Provider, id: &str) -> Result<ActionOutcome, ControlError> {
        self.act(provider, id, Action::Approve)
    }

    /// The payment is declined (see [`Action::Decline`]).
    pub fn decline(&self, provider: Provider, id: &str) -> Result<ActionOutcome, ControlError> {
        self.act(provider, id, Action::Decline)
    }

    /// The customer abandons; the provider expires the order.
    pub fn expire(&self, provider: Provider, id: &str) -> Result<ActionOutcome, ControlError> {
        self.act(provider, id, Action::Expire)
    }

    /// Counters of one order (keyed by the provider's own order id; see README).
    pub fn counters(&self, provider: Provider, id: &str) -> Counters {
        self.shared.counters.get(provider, id)
    }

    /// Counters of every order of `provider`.
    pub fn all_counters(&self, provider: Provider) -> BTreeMap<String, Counters> {
        self.shared.counters.all(provider)
    }

    /// Counters summed over every order of `provider`.
    pub fn totals(&self, provider: Provider) -> Counters {
        self.shared.counters.totals(provider)
    }

    /// A JSON snapshot of one order in the provider's shape (`Null` if unknown).
    pub fn order(&self, provider: Provider, id: &str) -> serde_json::Value {
        control::snapshot(&self.shared, provider, Some(id))
    }

    /// A JSON snapshot of every order of `provider`.
    pub fn orders(&self, provider: Provider) -> serde_json::Value {
        control::snapshot(&self.shared, provider, None)
    }

    /// Adds a fault rule for `provider`.
    pub fn add_fault(&self, provider: Provider, rule: FaultRule) {
        self.shared.faults.add(provider, rule);
    }

    /// Removes every fault rule of `provider`.
    pub fn clear_faults(&self, provider: Provider) {
        self.shared.faults.clear(provider);
    }

    /// The fault rules of `provider` not yet spent.
    pub fn faults(&self, provider: Provider) -> Vec<FaultRule> {
        self.shared.faults.list(provider)
    }

    /// Overrides (or, with `None`, un-overrides) where `provider`'s configured callbacks go.
    pub fn set_callback_url(&self, provider: Provider, url: Option<String>) {
        self.shared.set_callback_url(provider, url);
    }

    /// Sets the share of exchanger IPNs that are never sent (percent, capped at 100).
    pub fn set_ipn_drop_percent(&self, percent: u8) {
        self.shared
            .ipn_drop_percent
            .store(percent.min(100), Ordering::SeqCst);
    }

    /// Invalidates every Plural access token issued so far (the next call gets 401).
    pub fn expire_plural_tokens(&self) {
        crate::plural::expire_tokens(&self.shared);
    }

    /// How many Plural access tokens were issued since start.
    pub fn plural_tokens_issued(&self) -> u64 {
        crate::plural::tokens_issued(&self.shared)
    }

    /// Every callback delivery attempt of `provider` remembered so far.
    pub fn deliveries(&self, provider: Provider) -> Vec<DeliveryRecord> {
        self.shared.outbox.deliveries(provider)
    }

    /// Waits until no callback is queued, held back or waiting for a retry; false on timeout.
    pub async fn wait_callbacks_idle(&self, max: Duration) -> bool {
        self.shared.outbox.wait_idle(max).await
    }

    /// Stops accepting, lets open connections drain, stops callback delivery.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
