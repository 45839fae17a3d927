//! HTTP face of the control API, under `/_sandbox` (see README for the list).

use super::{act, snapshot, Action, ControlError};
use crate::faults::FaultRule;
use crate::http::json;
use crate::shared::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use paystate_events::Provider;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `wait-idle` waits at most this long.
const WAIT_IDLE_MS_MAX: u64 = 60_000;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/wait-idle", post(wait_idle))
        .route("/plural/tokens", get(tokens_issued))
        .route("/plural/tokens/expire", post(expire_tokens))
        .route("/exchanger/ipn-drop", put(set_ipn_drop))
        .route("/{provider}/orders", get(list_orders))
        .route("/{provider}/orders/{id}", get(get_order))
        .route("/{provider}/orders/{id}/{action}", post(do_action))
        .route("/{provider}/counters", get(all_counters))
        .route("/{provider}/counters/{id}", get(order_counters))
        .route(
            "/{provider}/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/{provider}/callback-url", put(set_callback_url))
        .route("/{provider}/callbacks", get(deliveries))
}

fn provider(name: &str) -> Result<Provider, Response> {
    Provider::parse(name).ok_or_else(|| {
        json(
            StatusCode::NOT_FOUND,
            json!({"error": format!("not_found: no provider {name:?}")}),
        )
    })
}

fn control_error(e: ControlError) -> Response {
    let status = match e {
        ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
        ControlError::InvalidTransition { .. } => StatusCode::CONFLICT,
        ControlError::Unsupported { .. } | ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
    };
    json(status, json!({"error": e.to_string()}))
}

async fn index(State(s): State<Arc<Shared>>) -> Response {
    let bases: serde_json::Map<String, Value> = Provider::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), Value::String(s.base_url(*p))))
        .collect();
    json(
        StatusCode::OK,
        json!({"providers": bases, "control": format!("{}/_sandbox", s.origin)}),
    )
}

#[derive(Deserialize)]
struct WaitIdle {
    ms: Option<u64>,
}

async fn wait_idle(State(s): State<Arc<Shared>>, Query(q): Query<WaitIdle>) -> Response {
    let ms = q.ms.unwrap_or(5_000).min(WAIT_IDLE_MS_MAX);
    let idle = s.outbox.wait_idle(Duration::from_millis(ms)).await;
    json(StatusCode::OK, json!({ "idle": idle }))
}

async fn tokens_issued(State(s): State<Arc<Shared>>) -> Response {
    let issued = crate::plural::tokens_issued(&s);
    json(StatusCode::OK, json!({ "issued": issued }))
}

async fn expire_tokens(State(s): State<Arc<Shared>>) -> Response {
    crate::plural::expire_tokens(&s);
    json(StatusCode::OK, json!({"expired": true}))
}

async fn set_ipn_drop(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let percent = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("percent")?.as_u64());
    match percent {
        Some(p) if p <= 100 => {
            s.ipn_drop_percent.store(p as u8, Ordering::SeqCst);
            json(StatusCode::OK, json!({"percent": p}))
        }
        _ => json(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request: body must be {\"percent\": 0..=100}"}),
        ),
    }
}

async fn list_orders(State(s): State<Arc<Shared>>, Path(p): Path<String>) -> Response {
    match provider(&p) {
        Ok(p) => json(StatusCode::OK, snapshot(&s, p, None)),
        Err(r) => r,
    }
}

async fn get_order(
    State(s): State<Arc<Shared>>,
    Path((p, id)): Path<(String, String)>,
) -> Response {
    let p = match provider(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match snapshot(&s, p, Some(&id)) {
        Value::Null => control_error(ControlError::not_found(p, &id)),
        order => json(
            StatusCode::OK,
            json!({"order": order, "counters": s.counters.get(p, &id)}),
        ),
    }
}

async fn do_action(
    State(s): State<Arc<Shared>>,
    Path((p, id, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let p = match provider(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut params = match body.is_empty() {
        true => serde_json::Map::new(),
        false => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return control_error(ControlError::BadRequest(
                    "body must be a JSON object".into(),
                ))
            }
        },
    };
    params.insert("action".into(), Value::String(name));
    let action: Action = match serde_json::from_value(Value::Object(params)) {
        Ok(a) => a,
        Err(e) => return control_error(ControlError::BadRequest(e.to_string())),
    };
    match act(&s, p, &id, action) {
        Ok(outcome) => json(StatusCode::OK, json!(outcome)),
        Err(e) => control_error(e),
    }
}

async fn all_counters(State(s): State<Arc<Shared>>, Path(p): Path<String>) -> Response {
    match provider(&p) {
        Ok(p) => json(
            StatusCode::OK,
            json!({"totals": s.counters.totals(p), "orders": s.counters.all(p)}),
        ),
        Err(r) => r,
    }
}

async fn order_counters(
    State(s): State<Arc<Shared>>,
    Path((p, id)): Path<(String, String)>,
) -> Response {
    match provider(&p) {
        Ok(p) => json(StatusCode::OK, json!(s.counters.get(p, &id))),
        Err(r) => r,
    }
}

async fn list_faults(State(s): State<Arc<Shared>>, Path(p): Path<String>) -> Response {
    match provider(&p) {
        Ok(p) => json(StatusCode::OK, json!(s.faults.list(p))),
        Err(r) => r,
    }
}

async fn add_fault(State(s): State<Arc<Shared>>, Path(p): Path<String>, body: Bytes) -> Response {
    let p = match provider(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            s.faults.add(p, rule);
            json(StatusCode::OK, json!(s.faults.list(p)))
        }
        Err(e) => control_error(ControlError::BadRequest(e.to_string())),
    }
}

async fn clear_faults(State(s): State<Arc<Shared>>, Path(p): Path<String>) -> Response {
    match provider(&p) {
        Ok(p) => {
            s.faults.clear(p);
            json(StatusCode::OK, json!([]))
        }
        Err(r) => r,
    }
}

async fn set_callback_url(
    State(s): State<Arc<Shared>>,
    Path(p): Path<String>,
    body: Bytes,
) -> Response {
    let p = match provider(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let url = serde_json::from_slice::<Value>(&body)
        .ok()
        .map(|v| v.get("url").and_then(Value::as_str).map(str::to_string));
    match url {
        Some(url) => {
            s.set_callback_url(p, url);
            json(StatusCode::OK, json!({"url": s.callback_url(p)}))
        }
        None => control_error(ControlError::BadRequest(
            "body must be {\"url\": string | null}".into(),
        )),
    }
}

async fn deliveries(State(s): State<Arc<Shared>>, Path(p): Path<String>) -> Response {
    match provider(&p) {
        Ok(p) => json(StatusCode::OK, json!(s.outbox.deliveries(p))),
        Err(r) => r,
    }
}
