//! HTTP helpers shared by the providers: request fault gates and JSON answers.

use crate::faults::Op;
use crate::shared::Shared;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paystate_events::Provider;
use std::time::Duration;

/// Marks a response whose connection the server closes instead of answering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// The request faults of one operation, taken before the provider acts.
#[must_use = "finish the gate with the response"]
pub(crate) struct Gate {
    provider: Provider,
    drop_response: bool,
    withhold_ms: Option<u64>,
}

/// Applies the faults that come before acting: a delay, then maybe an echoed validation
/// error or a 5xx (no effect).
pub(crate) async fn gate(
    shared: &Shared,
    provider: Provider,
    op: Op,
    key: Option<&str>,
) -> Result<Gate, Response> {
    let faults = shared.faults.take_request(provider, op, key);
    if faults.delay_ms > 0 {
        shared.sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    if faults.echo_request {
        shared
            .counters
            .bump(provider, key.unwrap_or("-"), |c| c.injected_errors += 1);
        return Err(crate::echo::answer(provider));
    }
    if let Some(status) = faults.server_error {
        shared
            .counters
            .bump(provider, key.unwrap_or("-"), |c| c.injected_errors += 1);
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let text = status.canonical_reason().unwrap_or("Server Error");
        return Err((status, text.to_string()).into_response());
    }
    Ok(Gate {
        provider,
        drop_response: faults.drop_response,
        withhold_ms: faults.withhold_ms,
    })
}

impl Gate {
    /// Applies the faults that come after acting: drop the connection or withhold the answer.
    pub(crate) async fn finish(self, shared: &Shared, key: &str, mut resp: Response) -> Response {
        if self.drop_response || self.withhold_ms.is_some() {
            shared
                .counters
                .bump(self.provider, key, |c| c.dropped_responses += 1);
        }
        if let Some(ms) = self.withhold_ms {
            shared.sleep(Duration::from_millis(ms)).await;
        }
        if self.drop_response {
            resp.extensions_mut().insert(DropConnection);
        }
        resp
    }
}

/// A JSON answer with a status.
pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

/// Runs a gated operation: gate, act, finish. `act` returns the order key and the answer.
pub(crate) async fn gated<F>(
    shared: &Shared,
    provider: Provider,
    op: Op,
    key: Option<&str>,
    act: F,
) -> Response
where
    F: FnOnce() -> (String, Response),
{
    let gate = match gate(shared, provider, op, key).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let (key, resp) = act();
    gate.finish(shared, &key, resp).await
}
