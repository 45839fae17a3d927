//! Plexy's HTTP API: `/v1/payment-links` (create, read, read by order reference, cancel,
//! expiry update),
//! `/v1/transactions/...`, and `/payments/{id}/capture|cancel|refund` (served with and
//! without the `/v1` prefix).

use super::wire::{self, error};
use super::{now, set_status, Link, TxStatus, P};
use crate::config::DuplicateReference;
use crate::faults::Op;
use crate::http::{gated, json};
use crate::ids;
use crate::shared::{lock, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut r = Router::new()
        .route("/v1/payment-links", post(create_link))
        .route("/v1/payment-links/{id}", get(get_link))
        .route(
            "/v1/payment-links/by-order-reference/{reference}",
            get(by_reference),
        )
        .route("/v1/payment-links/{id}/cancel", post(cancel_link))
        .route("/v1/payment-links/{id}/expiration", put(update_expiration))
        .route("/v1/transactions/by-payment-link/{id}", get(by_link))
        .route("/v1/transactions/{id}", get(get_tx));
    for prefix in ["", "/v1"] {
        r = r
            .route(&format!("{prefix}/payments/{{id}}/capture"), post(capture))
            .route(&format!("{prefix}/payments/{{id}}/cancel"), post(cancel))
            .route(&format!("{prefix}/payments/{{id}}/refund"), post(refund));
    }
    r
}

/// `Authorization: <api key>`, verbatim (no "Bearer").
fn authorize(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get("authorization")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    match crate::sig::ct_eq(given, s.config.plexy.api_key.as_bytes()) {
        true => Ok(()),
        false => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid API key",
        )),
    }
}

fn parse(body: &[u8]) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be a JSON object",
        )),
    }
}

async fn create_link(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let amount = body
        .get("amount")
        .and_then(Value::as_u64)
        .filter(|a| *a > 0);
    let currency = body
        .get("currency")
        .and_then(Value::as_str)
        .map(str::to_string);
    let reference = body
        .get("orderReference")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (Some(amount), Some(currency), Some(reference)) = (amount, currency, reference) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "amount (minor units), currency and orderReference are required",
        );
    };
    gated(&s, P, Op::Create, None, || {
        let mut st = lock(&s.plexy);
        if let Some(existing) = st
            .by_reference
            .get(&reference)
            .and_then(|id| st.links.get(id))
        {
            let same = existing.amount == amount && existing.currency == currency;
            let resp = match (s.config.plexy.duplicate_reference, same) {
                (DuplicateReference::ReturnExisting, true) => {
                    json(StatusCode::OK, wire::link_json(existing))
                }
                _ => error(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a payment link with this orderReference exists",
                ),
            };
            return (existing.id.clone(), resp);
        }
        let id = format!("pl_{}", ids::alnum(24));
        let mut echo = body.as_object().cloned().unwrap_or_default();
        echo.retain(|k, _| {
            ["customerId", "description", "expiresAt", "metadata"].contains(&k.as_str())
        });
        let link = Link {
            url: format!("{}/checkout/{id}", s.base_url(P)),
            id: id.clone(),
            status: "active",
            amount,
            currency,
            auto_clearing: body
                .get("autoClearing")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            order_reference: reference.clone(),
            echo,
            created_at: now(),
            tx: None,
        };
        s.counters.bump(P, &id, |c| c.created += 1);
        let resp = json(StatusCode::OK, wire::link_json(&link));
        st.by_reference.insert(reference, id.clone());
        st.links.insert(id.clone(), link);
        (id, resp)
    })
    .await
}

async fn get_link(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    read(&s, &headers, &id, wire::link_json).await
}

/// "Retrieve Payment Link by Order Reference" (seed 000 names it; the path is the adapters'
/// reading): the link created under `orderReference`, 404 when there is none. Request faults
/// match the reference (no link id is known before the lookup).
async fn by_reference(State(s): S, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    gated(&s, P, Op::Status, Some(&reference), || {
        let st = lock(&s.plexy);
        match st
            .by_reference
            .get(&reference)
            .and_then(|id| st.links.get(id))
        {
            Some(l) => (l.id.clone(), json(StatusCode::OK, wire::link_json(l))),
            None => (
                reference.clone(),
                error(StatusCode::NOT_FOUND, "not_found", "payment link not found"),
            ),
        }
    })
    .await
}

/// Closes an unpaid link (`active` → `cancelled`); a paid or closed link is 400.
async fn cancel_link(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    change_link(&s, &headers, &id, Op::Cancel, |l| {
        if l.status != "active" || l.tx.as_ref().is_some_and(|t| !t.status.is_open()) {
            return Err(format!(
                "payment link is {}; only an unpaid active link can be cancelled",
                l.status
            ));
        }
        l.status = "cancelled";
        Ok(())
    })
    .await
}

/// `{"expiresAt": "<RFC 3339>"}` on an active link.
async fn update_expiration(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let at = body
        .get("expiresAt")
        .and_then(Value::as_str)
        .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
        .map(str::to_string);
    let Some(at) = at else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expiresAt (RFC 3339) is required",
        );
    };
    change_link(&s, &headers, &id, Op::Status, move |l| {
        if l.status != "active" {
            return Err(format!("payment link is {}", l.status));
        }
        l.echo.insert("expiresAt".into(), json!(at));
        Ok(())
    })
    .await
}

/// Applies `change` to one link and answers the link (404 unknown, 400 refused).
async fn change_link(
    s: &Shared,
    headers: &HeaderMap,
    id: &str,
    op: Op,
    change: impl FnOnce(&mut Link) -> Result<(), String>,
) -> Response {
    if let Err(r) = authorize(s, headers) {
        return r;
    }
    gated(s, P, op, Some(id), || {
        let mut st = lock(&s.plexy);
        let resp = match st.links.get_mut(id) {
            None => error(StatusCode::NOT_FOUND, "not_found", "payment link not found"),
            Some(l) => match change(l) {
                Ok(()) => json(StatusCode::OK, wire::link_json(l)),
                Err(m) => error(StatusCode::BAD_REQUEST, "invalid_request", &m),
            },
        };
        (id.to_string(), resp)
    })
    .await
}

async fn by_link(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    read(&s, &headers, &id, |l| {
        let txs: Vec<Value> = l.tx.iter().map(|t| wire::tx_json(l, t)).collect();
        json!({"total": txs.len(), "transactions": txs})
    })
    .await
}

async fn get_tx(State(s): S, headers: HeaderMap, Path(tx): Path<String>) -> Response {
    let link = lock(&s.plexy)
        .tx_links
        .get(&tx)
        .cloned()
        .unwrap_or_default();
    read(&s, &headers, &link, |l| {
        l.tx.as_ref()
            .map(|t| wire::tx_json(l, t))
            .unwrap_or_default()
    })
    .await
}

async fn read(
    s: &Shared,
    headers: &HeaderMap,
    link_id: &str,
    view: impl FnOnce(&Link) -> Value,
) -> Response {
    if let Err(r) = authorize(s, headers) {
        return r;
    }
    gated(s, P, Op::Status, Some(link_id), || {
        let st = lock(&s.plexy);
        let resp = match st.links.get(link_id) {
            Some(l) => json(StatusCode::OK, view(l)),
            None => error(StatusCode::NOT_FOUND, "not_found", "not found"),
        };
        (link_id.to_string(), resp)
    })
    .await
}

async fn capture(State(s): S, headers: HeaderMap, Path(tx): Path<String>, body: Bytes) -> Response {
    manage(&s, &headers, &tx, &body, Op::Capture).await
}

async fn cancel(State(s): S, headers: HeaderMap, Path(tx): Path<String>, body: Bytes) -> Response {
    manage(&s, &headers, &tx, &body, Op::Cancel).await
}

async fn refund(State(s): S, headers: HeaderMap, Path(tx): Path<String>, body: Bytes) -> Response {
    manage(&s, &headers, &tx, &body, Op::Refund).await
}

/// Capture and cancel from `authorized`, refund from `charged`; answers the transaction.
async fn manage(s: &Shared, headers: &HeaderMap, tx: &str, body: &[u8], op: Op) -> Response {
    let body = match authorize(s, headers).and_then(|_| parse(body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let link_id = lock(&s.plexy).tx_links.get(tx).cloned().unwrap_or_default();
    gated(s, P, op, Some(&link_id), || {
        let mut st = lock(&s.plexy);
        let Some(link) = st.links.get_mut(&link_id) else {
            return (
                link_id.clone(),
                error(StatusCode::NOT_FOUND, "not_found", "transaction not found"),
            );
        };
        let resp = match apply(s, link, &body, op) {
            Ok(()) => json(
                StatusCode::OK,
                link.tx
                    .as_ref()
                    .map(|t| wire::tx_json(link, t))
                    .unwrap_or_default(),
            ),
            Err(message) => error(StatusCode::BAD_REQUEST, "invalid_request", &message),
        };
        (link_id.clone(), resp)
    })
    .await
}

/// Capture (partial allowed, once) and cancel from `authorized`; refund from `charged`,
/// repeatable while something is left: a partial refund keeps the transaction `charged`
/// (no webhook; the answer carries `refundedAmount`), the refund that reaches the charged
/// amount moves it to `refunded`.
fn apply(s: &Shared, link: &mut Link, body: &Value, op: Op) -> Result<(), String> {
    let requested = wire::decimal_amount(body, &link.currency)?;
    let amount = link.amount;
    let tx = link.tx.as_mut().ok_or("transaction not found")?;
    let (from, mut to) = match op {
        Op::Capture => (TxStatus::Authorized, TxStatus::Charged),
        Op::Cancel => (TxStatus::Authorized, TxStatus::Cancelled),
        _ => (TxStatus::Charged, TxStatus::Refunded),
    };
    if tx.status != from {
        return Err(format!(
            "transaction is {}; expected {}",
            tx.status.as_str(),
            from.as_str()
        ));
    }
    match op {
        Op::Capture => {
            let value = requested.unwrap_or(amount);
            if value == 0 || value > amount {
                return Err("amount exceeds the authorized amount".into());
            }
            tx.processed_amount = value;
        }
        Op::Refund => {
            let left = tx.processed_amount.saturating_sub(tx.refunded_amount);
            let value = requested.unwrap_or(left);
            if value == 0 || value > left {
                return Err("amount exceeds what is left to refund".into());
            }
            tx.refunded_amount += value;
            if tx.refunded_amount < tx.processed_amount {
                to = TxStatus::Charged;
            }
        }
        _ => {}
    }
    if to == TxStatus::Charged && op == Op::Refund {
        tx.updated_at = now();
        s.counters.bump(P, &link.id, |c| c.refunded += 1);
        return Ok(());
    }
    set_status(s, link, to);
    Ok(())
}
