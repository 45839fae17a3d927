//! Plexy's JSON shapes: payment links, transactions, decimal amounts and error bodies.

use super::{Link, Tx};
use crate::http::json;
use axum::http::StatusCode;
use axum::response::Response;
use paystate_events::money::{decimal_to_minor, minor_to_decimal};
use paystate_events::Currency;
use serde_json::{json, Value};

/// An error as the sandbox answers it for Plexy: `{"code": "...", "message": "..."}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, json!({"code": code, "message": message}))
}

fn exponent(currency: &str) -> u16 {
    Currency::parse(currency)
        .map(Currency::exponent)
        .unwrap_or(2)
}

/// `{"amount": <decimal> | null}`: `Ok(None)` = the full amount; decimals are major units.
pub(crate) fn decimal_amount(body: &Value, currency: &str) -> Result<Option<u64>, String> {
    let text = match body.get("amount") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("amount must be a decimal or null, not {other}")),
    };
    decimal_to_minor(&text, exponent(currency))
        .map(Some)
        .map_err(|e| e.to_string())
}

pub(crate) fn link_json(l: &Link) -> Value {
    let mut m = l.echo.clone();
    m.insert("id".into(), json!(l.id));
    m.insert("url".into(), json!(l.url));
    m.insert("status".into(), json!(l.status));
    m.insert("amount".into(), json!(l.amount));
    m.insert("currency".into(), json!(l.currency));
    m.insert("orderReference".into(), json!(l.order_reference));
    m.insert("autoClearing".into(), json!(l.auto_clearing));
    m.insert("createdAt".into(), json!(l.created_at));
    Value::Object(m)
}

/// A transaction: amounts in minor units, plus `processedAmountDecimal` for readers of the
/// decimal capture/refund API.
pub(crate) fn tx_json(l: &Link, t: &Tx) -> Value {
    json!({
        "id": t.id,
        "paymentLinkId": l.id,
        "amount": l.amount,
        "currency": l.currency,
        "status": t.status.as_str(),
        "merchantReference": l.order_reference,
        "processedAmount": t.processed_amount,
        "processedAmountDecimal": minor_to_decimal(t.processed_amount, exponent(&l.currency)),
        "refundedAmount": t.refunded_amount,
        "createdAt": t.created_at,
        "updatedAt": t.updated_at,
    })
}

pub(crate) fn link_with_tx(l: &Link) -> Value {
    let mut v = link_json(l);
    v["transaction"] = l.tx.as_ref().map(|t| tx_json(l, t)).unwrap_or(Value::Null);
    v
}
