//! The gateway: paystate's HTTP face, on two listeners.
//!
//! - The **public** listener ([`public_router`]) faces the internet: provider callbacks only
//!   ([`callbacks`]: `POST /callbacks/{provider}`, which also receives Plural's signed return
//!   redirects). No key is needed; each provider's signature is checked instead.
//! - The **private** listener ([`private_router`]) faces operators and merchant back ends:
//!   [`queries`] (`GET /orders`, `GET /orders/{id}`, `GET /projection`) with a `read` key and
//!   [`attachments`] (`POST /attachments`) with a `write` key, and `GET /metrics`
//!   ([`telemetry`], Prometheus text) with an `admin` key. Every request there needs `Authorization: Bearer <key>`
//!   ([`auth`]); without one every path, known or not, answers the same 401. The operations
//!   [`dashboard`] (`/dashboard`, HTML for a browser) logs in with the same keys and keeps a
//!   session cookie instead.
//!
//! Both listeners have a request timeout, a concurrency limit and per-route body limits
//! ([`limits`]); [`serve`] runs a router on a listener until the caller's shutdown future
//! completes.
//!
//! Errors are JSON everywhere: `{"error": {"code": "...", "message": "..."}}` with a stable
//! code, so clients branch on the code, not on the text (provider callbacks get the answers
//! their providers expect instead).

pub mod attachments;
pub mod auth;
pub mod callbacks;
pub mod dashboard;
pub mod limits;
pub mod queries;
pub mod telemetry;

use async_nats::jetstream::object_store::ObjectStore;
use auth::{ApiKeys, Scope};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use limits::{HttpLimits, CALLBACK_BODY_BYTES_MAX, QUERY_BODY_BYTES_MAX, UPLOAD_BODY_BYTES_MAX};
use paystate_projection::ProjectionStore;
use std::future::Future;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// What every query handler may use. Cheap to clone (handles only).
#[derive(Clone)]
pub struct AppState {
    /// The order projection queries read from.
    pub projection: ProjectionStore,
}

/// The public listener's router: provider callbacks (when providers are configured) and
/// nothing else; every other path is a JSON 404.
pub fn public_router(callbacks: Option<callbacks::Callbacks>, limits: HttpLimits) -> Router {
    let routes = match callbacks {
        Some(cb) => with_body_limit(callbacks::routes(cb), CALLBACK_BODY_BYTES_MAX),
        None => Router::new(),
    };
    bounded(routes.fallback(not_found), limits)
}

/// The private listener's router: queries (`read`), attachment uploads (`write`, when the
/// store is there), all behind [`auth::authenticate`].
pub fn private_router(
    state: AppState,
    attachments: Option<ObjectStore>,
    keys: ApiKeys,
    limits: HttpLimits,
) -> Router {
    private_router_with_dashboard(state, attachments, keys, limits, None)
}

/// [`private_router`] plus the operations [`dashboard`] under `/dashboard` (its own login
/// and session cookie instead of the bearer header; the same keys and scopes).
pub fn private_router_with_dashboard(
    state: AppState,
    attachments: Option<ObjectStore>,
    keys: ApiKeys,
    limits: HttpLimits,
    dashboard: Option<dashboard::Dashboard>,
) -> Router {
    let mut routes = needs(
        Scope::Read,
        with_body_limit(queries::routes().with_state(state), QUERY_BODY_BYTES_MAX),
    );
    if let Some(store) = attachments {
        routes = routes.merge(needs(
            Scope::Write,
            with_body_limit(attachments::routes(store), UPLOAD_BODY_BYTES_MAX),
        ));
    }
    // Prometheus text format of this process's metrics (telemetry), for an `admin` key.
    routes = routes.merge(needs(Scope::Admin, telemetry::metrics_routes()));
    let mut routes = routes
        .fallback(not_found)
        .layer(from_fn_with_state(keys, auth::authenticate));
    if let Some(d) = dashboard {
        // Merged after the bearer check: the dashboard checks its session cookie itself.
        routes = routes.merge(with_body_limit(
            dashboard::routes(d),
            limits::DASHBOARD_FORM_BYTES_MAX,
        ));
    }
    bounded(routes, limits)
}

/// Routes that need a key of at least `scope` (checked before their body is read).
fn needs(scope: Scope, routes: Router) -> Router {
    routes.route_layer(from_fn_with_state(scope, auth::require))
}

/// One body limit for every body of `routes` (axum's own default limit replaced by it).
fn with_body_limit(routes: Router, bytes: usize) -> Router {
    routes
        .layer(DefaultBodyLimit::max(bytes))
        .layer(RequestBodyLimitLayer::new(bytes))
}

/// A listener's timeout and concurrency limit (one semaphore for the whole listener), and
/// JSON bodies for the errors those layers answer with.
pub(crate) fn bounded(router: Router, limits: HttpLimits) -> Router {
    router
        .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency_max))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(map_response(json_errors))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The plain-text or empty answers of the timeout, body-limit and method layers, as JSON
/// errors with stable codes. JSON answers and providers' acknowledgements pass unchanged.
async fn json_errors(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    match resp.status() {
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long",
        )
        .into_response(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is over this route's limit",
        )
        .into_response(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
        .into_response(),
        _ => resp,
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes requests in hand.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON error response with a stable code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
