//! The gateway: paystate's HTTP face. A small axum server; each concern adds its routes to
//! the one router.
//!
//! - [`queries`]: `GET /orders/{id}` and `GET /orders?state=...`, served from the order
//!   projection (JSON; unknown order → 404 with a JSON error).
//! - [`callbacks`]: `POST /callbacks/{provider}`: stored raw first, verified, translated
//!   into provider signals, answered as each provider expects.
//! - [`attachments`]: `POST /attachments`: files that commands refer to (raw or multipart).
//! - [`router`]: composes every concern's routes over one shared [`AppState`].
//! - [`serve`]: runs a router on a listener until the caller's shutdown future completes.
//!
//! Errors are JSON everywhere: `{"error": {"code": "...", "message": "..."}}` with a stable
//! code, so clients branch on the code, not on the text.

pub mod attachments;
pub mod callbacks;
pub mod queries;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use paystate_projection::ProjectionStore;
use std::future::Future;

/// What every handler may use. Cheap to clone (handles only).
#[derive(Clone)]
pub struct AppState {
    /// The order projection queries read from.
    pub projection: ProjectionStore,
}

/// The gateway's router: every concern's routes over one state.
pub fn router(state: AppState) -> Router {
    Router::new().merge(queries::routes()).with_state(state)
}

/// The gateway's router with the callback routes and, beside them, the attachment uploads
/// (both carry their own state).
pub fn router_with_callbacks(state: AppState, callbacks: callbacks::Callbacks) -> Router {
    let uploads = attachments::routes(callbacks.attachments());
    router(state)
        .merge(callbacks::routes(callbacks))
        .merge(uploads)
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
