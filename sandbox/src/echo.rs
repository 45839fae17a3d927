//! The `echo_request` fault: the provider answers an operation with a validation error that
//! quotes the whole request back (method, path and query, headers, body), credentials
//! included, the way many real APIs quote a rejected field. It shows whether paystate keeps
//! any secret out of what it stores, logs and answers when a provider does that.
//!
//! [`capture`] runs around each provider's routes: while an `echo_request` rule of that
//! provider is pending it reads the request once and keeps its text for the task that
//! handles it; [`crate::http::gate`] consumes the rule for the matching operation and answers
//! with [`answer`], in the provider's own error shape.

use crate::faults::FaultKind;
use crate::http::json;
use crate::shared::Shared;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paystate_events::Provider;
use serde_json::json;
use std::sync::Arc;

/// Largest request body read for an echo (bigger ones are answered 413 while a rule waits).
pub const ECHO_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most characters of the body quoted back.
pub const ECHO_BODY_CHARS_MAX: usize = 4096;
/// Headers left out of the echo (they say nothing about the caller).
const QUIET_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "accept",
    "accept-encoding",
    "user-agent",
];

tokio::task_local! {
    static REQUEST_TEXT: Arc<String>;
}

/// Middleware state: the sandbox and which provider's routes it wraps.
pub(crate) type EchoState = (Arc<Shared>, Provider);

/// Keeps the request's text for [`answer`] while an echo rule of the provider is pending.
pub(crate) async fn capture(
    State((shared, provider)): State<EchoState>,
    req: Request,
    next: Next,
) -> Response {
    let pending = shared
        .faults
        .list(provider)
        .iter()
        .any(|r| r.kind == FaultKind::EchoRequest);
    if !pending {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ECHO_BODY_BYTES_MAX).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let text = render(&parts, &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    REQUEST_TEXT.scope(Arc::new(text), next.run(req)).await
}

/// `POST /path?query | name: value | ... | body: ...`, credentials and all.
fn render(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let mut out = format!("{} {target}", parts.method);
    for (name, value) in &parts.headers {
        if QUIET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        out.push_str(&format!(
            " | {name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body: String = String::from_utf8_lossy(body)
        .chars()
        .take(ECHO_BODY_CHARS_MAX)
        .collect();
    out.push_str(" | body: ");
    out.push_str(&body);
    out
}

/// The provider's validation error quoting the request (outside [`capture`]: no request text).
pub(crate) fn answer(provider: Provider) -> Response {
    let text = REQUEST_TEXT
        .try_with(|t| t.as_str().to_string())
        .unwrap_or_default();
    let message = format!("invalid request: {text}");
    match provider {
        Provider::Plexy => json(
            StatusCode::BAD_REQUEST,
            json!({"code": "validation_error", "message": message}),
        ),
        Provider::Paykassma => json(
            StatusCode::BAD_REQUEST,
            json!({"status": "fail", "message": message}),
        ),
        Provider::Plural => json(
            StatusCode::BAD_REQUEST,
            json!({"code": "INVALID_REQUEST", "message": message}),
        ),
        Provider::Exchanger => json(
            StatusCode::BAD_REQUEST,
            json!({"status": "error", "message": message}),
        ),
        // Flitt answers errors with HTTP 200 and a failure body.
        Provider::Flitt => json(
            StatusCode::OK,
            json!({"response": {"response_status": "failure", "error_code": 1011,
                "error_message": message, "request_id": crate::ids::alnum(13)}}),
        ),
    }
}
