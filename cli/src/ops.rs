//! Every `paystate run` process's operations listener (setting `metrics_listen`): `GET
//! /metrics` (Prometheus text), `GET /healthz` (alive) and `GET /readyz` (ready), without keys
//! (see docs/operations.md), plus the projection sampler that turns the projection's status
//! into gauges in processes that run the projector.
//!
//! Ready means: every role started, every NATS connection connected, and the streams the
//! roles need present (the log; the command stream too for the engine), asked of the server
//! within [`READY_CHECK_TIMEOUT`] each.

use anyhow::Context;
use paystate_events::metric_names as m;
use paystate_events::Status;
use paystate_gateway::limits::HttpLimits;
use paystate_gateway::telemetry::{ops_router, ReadyCheck};
use paystate_projection::ProjectionStore;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Longest a readiness probe waits for the server's answer about a stream.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the projection's lag and orders by state are sampled.
pub const PROJECTION_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Above this many orders the per-state gauge is not refreshed (a full scan each interval
/// would cost more than the gauge is worth; `paystate orders list` still answers).
pub const ORDERS_SCAN_MAX: u64 = 200_000;

/// What `/readyz` checks. The listener serves before NATS is connected (alive, not ready);
/// the caller hands over the connections once it has them ([`Readiness::connected`]) and
/// says when every role runs ([`Readiness::started`]).
#[derive(Clone)]
pub struct Readiness {
    started: Arc<AtomicBool>,
    clients: Arc<OnceLock<Vec<async_nats::Client>>>,
    /// Streams that must exist (asked with the first connection).
    streams: Arc<Vec<String>>,
}

impl Readiness {
    /// Not connected, not started; `streams` must exist to be ready.
    pub fn new(streams: Vec<String>) -> Readiness {
        Readiness {
            started: Arc::new(AtomicBool::new(false)),
            clients: Arc::new(OnceLock::new()),
            streams: Arc::new(streams),
        }
    }

    /// The process's NATS connections (set once).
    pub fn connected(&self, clients: Vec<async_nats::Client>) {
        let _ = self.clients.set(clients);
    }

    /// Every role runs.
    pub fn started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// The check, for [`ops_router`].
    pub fn check(self) -> ReadyCheck {
        Arc::new(move || {
            let this = self.clone();
            Box::pin(async move { this.problems().await })
        })
    }

    async fn problems(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.started.load(Ordering::Acquire) {
            problems.push("roles are still starting".to_string());
        }
        let Some(clients) = self.clients.get() else {
            problems.push("not connected to NATS yet".to_string());
            return Err(problems);
        };
        let disconnected = clients
            .iter()
            .filter(|c| c.connection_state() != async_nats::connection::State::Connected)
            .count();
        if disconnected > 0 {
            problems.push(format!("{disconnected} NATS connection(s) not connected"));
        }
        if let Some(client) = clients.first().filter(|_| disconnected == 0) {
            let js = async_nats::jetstream::new(client.clone());
            for stream in self.streams.iter() {
                match tokio::time::timeout(READY_CHECK_TIMEOUT, js.get_stream(stream)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => problems.push(format!("stream {stream}: {e}")),
                    Err(_) => problems.push(format!(
                        "no answer about stream {stream} within {READY_CHECK_TIMEOUT:?}"
                    )),
                }
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems),
        }
    }
}

/// Binds the operations listener on `addr` and serves it until the process ends. Returns
/// its `http://` URL.
pub async fn serve(
    addr: &str,
    ready: Readiness,
    limits: HttpLimits,
) -> anyhow::Result<(String, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("the operations listener cannot listen on {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = ops_router(ready.check(), limits);
    let task = tokio::spawn(async move {
        if let Err(e) = paystate_gateway::serve(listener, router, std::future::pending()).await {
            tracing::error!(error = %e, "operations listener stopped");
        }
    });
    Ok((url, task))
}

/// Samples the projection every [`PROJECTION_SAMPLE_INTERVAL`]: its lag, and orders by state
/// (every state set, zero included, so an emptied state drops to 0).
pub fn spawn_projection_sampler(store: ProjectionStore) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROJECTION_SAMPLE_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(e) = sample(&store).await {
                tracing::debug!(error = %e, "projection not sampled this time");
            }
        }
    })
}

async fn sample(store: &ProjectionStore) -> Result<(), paystate_projection::ProjectionError> {
    let status = store.status().await?;
    metrics::gauge!(m::PROJECTION_LAG_MESSAGES).set(status.lag as f64);
    if status.orders > ORDERS_SCAN_MAX {
        return Ok(());
    }
    let mut by_state: BTreeMap<Status, u64> = Status::ALL.into_iter().map(|s| (s, 0)).collect();
    store
        .scan(&status.generation, |record| {
            *by_state.entry(record.state.status).or_default() += 1;
            true
        })
        .await?;
    for (state, n) in by_state {
        metrics::gauge!(m::ORDERS, "state" => state.as_str()).set(n as f64);
    }
    Ok(())
}
