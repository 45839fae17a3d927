//! Metrics export and health endpoints.
//!
//! - [`install`] sets the process-wide `metrics` recorder (Prometheus text renderer, the
//!   names and help of [`paystate_events::metric_names::CATALOG`], histogram buckets from
//!   [`DURATION_BUCKETS_SECONDS`]). Every recording site in every crate writes to it.
//! - `GET /metrics` renders it: on the private listener behind an `admin` key
//!   ([`metrics_routes`], merged by [`crate::private_router`]), and on each process's own
//!   operations listener ([`ops_router`]).
//! - The operations listener ([`ops_router`], setting `metrics_listen`) also answers
//!   `GET /healthz` (the process is alive: always 200) and `GET /readyz` (200 when the
//!   caller's [`ReadyCheck`] finds nothing wrong, else 503 `not_ready` naming what is wrong).
//!   It has no keys: it is meant for loopback or a private network (Prometheus, Docker
//!   health checks), and it serves nothing about any single order.

use crate::limits::HttpLimits;
use crate::ApiError;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use paystate_events::metric_names::{Kind, CATALOG, DURATION_BUCKETS_SECONDS};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often the recorder's histograms are compacted when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The installed recorder's renderer (one per process).
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Held while installing.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("metrics recorder: {0}")]
    Recorder(String),
}

/// Installs the process-wide recorder (once; later calls return the same handle) and, inside
/// a Tokio runtime, a task that compacts its histograms every [`UPKEEP_INTERVAL`].
pub fn install() -> Result<PrometheusHandle, TelemetryError> {
    // Why: one installer at a time, so two callers racing both get the one recorder.
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &DURATION_BUCKETS_SECONDS,
        )
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
    for m in CATALOG {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help),
        }
    }
    let handle = HANDLE.get_or_init(|| handle).clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let h = handle.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        });
    }
    Ok(handle)
}

/// The metrics in Prometheus text format, if a recorder is installed.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// `GET /metrics` (the caller puts it behind whatever authentication its listener has).
pub fn metrics_routes() -> Router {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> Response {
    match render() {
        Some(text) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "this process records no metrics",
        )
        .into_response(),
    }
}

/// What `/readyz` asks: `Ok` when ready, else the problems (short, no secrets).
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), Vec<String>>> + Send>> + Send + Sync>;

/// The operations listener's router: `/metrics`, `/healthz`, `/readyz`, no keys.
pub fn ops_router(ready: ReadyCheck, limits: HttpLimits) -> Router {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ready);
    crate::bounded(
        metrics_routes().merge(health).fallback(crate::not_found),
        limits,
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(ready): State<ReadyCheck>) -> Response {
    match ready().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(problems) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            problems.join("; "),
        )
        .into_response(),
    }
}
