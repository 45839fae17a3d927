//! Plural's JSON shapes: orders, payments, amounts and error bodies.

use super::{Order, Status};
use crate::http::json;
use crate::shared::Shared;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

/// An error as Plural answers it: `{"code": "...", "message": "..."}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, json!({"code": code, "message": message}))
}

pub(crate) fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

/// `{"value": <paise>, "currency": "INR"}` → (value, currency); value must be positive.
pub(crate) fn amount(v: Option<&Value>) -> Option<(u64, String)> {
    let v = v?;
    let value = v.get("value")?.as_u64().filter(|n| *n > 0)?;
    let currency = v.get("currency")?.as_str()?.to_string();
    Some((value, currency))
}

/// A string field, or a number rendered as text (the seed sends `merchant_order_reference`
/// as a number and answers it as a string).
pub(crate) fn text(body: &Value, field: &str) -> Option<String> {
    match body.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn money(value: u64, currency: &str) -> Value {
    json!({"value": value, "currency": currency})
}

/// The order object of every Plural answer and webhook.
pub(crate) fn order_json(shared: &Shared, o: &Order) -> Value {
    let mut m = Map::new();
    m.insert("order_id".into(), json!(o.order_id));
    m.insert("merchant_order_reference".into(), json!(o.reference));
    m.insert("type".into(), json!("CHARGE"));
    m.insert("status".into(), json!(o.status.as_str()));
    if let (Status::Pending, Some(url)) = (o.status, &o.challenge_url) {
        m.insert("challenge_url".into(), json!(url));
    }
    m.insert(
        "merchant_id".into(),
        json!(shared.config.plural.merchant_id),
    );
    m.insert("order_amount".into(), money(o.amount, &o.currency));
    m.insert("pre_auth".into(), json!(o.pre_auth));
    if let Some(url) = &o.callback_url {
        m.insert("callback_url".into(), json!(url));
    }
    for (k, v) in &o.echo {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    m.insert(
        "payments".into(),
        Value::Array(o.payment.iter().map(|_| payment_json(o)).collect()),
    );
    m.insert("created_at".into(), json!(o.created_at));
    m.insert("updated_at".into(), json!(o.updated_at));
    Value::Object(m)
}

fn payment_json(o: &Order) -> Value {
    let Some(p) = &o.payment else {
        return Value::Null;
    };
    let mut v = json!({
        "id": p.id,
        "status": o.status.as_str(),
        "payment_amount": money(o.amount, &o.currency),
        "payment_method": p.method,
        "payment_option": {"card_data": {
            "card_type": "CREDIT", "network_name": "VISA", "issuer_name": "SANDBOX",
            "card_category": "CONSUMER", "country_code": "IND", "token_txn_type": "ALT_TOKEN"
        }},
        "created_at": p.created_at,
        "updated_at": o.updated_at,
    });
    let authorized = !matches!(o.status, Status::Created | Status::Pending | Status::Failed);
    if authorized {
        v["acquirer_data"] = json!({"approval_code": "000000", "acquirer_reference": "202456643801053", "rrn": "420145000226"});
    }
    if let Some(c) = &o.capture {
        v["capture_data"] = json!([{
            "merchant_capture_reference": c.reference,
            "capture_amount": money(c.amount, &o.currency),
            "created_at": c.at,
        }]);
    }
    v
}

/// The refund order a refund call answers with.
pub(crate) fn refund_json(shared: &Shared, parent: &Order, refund: &super::Refund) -> Value {
    json!({
        "order_id": refund.order_id,
        "parent_order_id": parent.order_id,
        "merchant_order_reference": refund.reference,
        "type": "REFUND",
        "status": "PROCESSED",
        "merchant_id": shared.config.plural.merchant_id,
        "order_amount": money(refund.amount, &parent.currency),
        "created_at": refund.at,
        "updated_at": refund.at,
    })
}
