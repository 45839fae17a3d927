//! Flitt's JSON shapes: `{"request": {...}}` in, `{"response": {...}}` out, error codes,
//! and the order parameters of status answers and callbacks.

use super::Order;
use crate::http::json;
use crate::shared::Shared;
use crate::{ids, sig};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

/// Error codes the sandbox answers (1007 is documented; the others are sandbox choices).
pub(crate) const INTERNAL: u32 = 1000;
pub(crate) const BAD_MERCHANT: u32 = 1002;
pub(crate) const BAD_SIGNATURE: u32 = 1007;
pub(crate) const MISSING: u32 = 1011;
pub(crate) const DUPLICATE_ORDER: u32 = 1013;
pub(crate) const NOT_FOUND: u32 = 1018;
pub(crate) const BAD_STATE: u32 = 1031;

/// A failure answer; Flitt answers errors with HTTP 200.
pub(crate) fn failure(code: u32, message: &str) -> Response {
    json(
        StatusCode::OK,
        json!({"response": {
            "response_status": "failure", "error_code": code, "error_message": message, "request_id": ids::alnum(13)
        }}),
    )
}

/// A success answer: `fields` plus `response_status`, signed when `signed`.
pub(crate) fn success(shared: &Shared, mut fields: Map<String, Value>, signed: bool) -> Response {
    fields.insert("response_status".into(), json!("success"));
    if signed {
        let signature = sig::flitt_sign(&shared.config.flitt.password, &fields);
        fields.insert("signature".into(), json!(signature));
    }
    json(StatusCode::OK, json!({ "response": fields }))
}

/// A non-negative integer given as a number or a numeric string.
pub(crate) fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A string field (numbers rendered as text); empty strings count as absent.
pub(crate) fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The parameters Flitt sends about an order (status answers and callbacks), unsigned.
pub(crate) fn order_params(shared: &Shared, o: &Order) -> Map<String, Value> {
    let capture_status = match o.captured {
        Some(true) => "captured",
        Some(false) => "hold",
        None => "",
    };
    let approved = !matches!(o.status, super::Status::Created | super::Status::Processing);
    let v = json!({
        "order_id": o.order_id,
        "merchant_id": shared.config.flitt.merchant_id,
        "amount": o.amount.to_string(),
        "currency": o.currency,
        "order_status": o.status.as_str(),
        "response_status": "success",
        "tran_type": o.tran_type,
        "payment_id": o.payment_id,
        "actual_amount": o.amount.to_string(),
        "actual_currency": o.currency,
        "reversal_amount": o.reversal_amount.to_string(),
        "settlement_amount": "0",
        "settlement_currency": "",
        "settlement_date": "",
        "preauth": if o.preauth { "Y" } else { "N" },
        "capture_status": capture_status,
        "capture_amount": o.capture_amount.to_string(),
        "approval_code": if approved { "123456" } else { "" },
        "rrn": if approved { "111111111111" } else { "" },
        "masked_card": "",
        "card_bin": "",
        "card_type": "",
        "sender_email": "",
        "order_time": o.order_time,
        "order_desc": o.order_desc,
        "response_code": if o.status == super::Status::Declined { "1014" } else { "" },
        "response_description": "",
        "merchant_data": o.merchant_data,
        "product_id": "",
        "fee": "",
        "payment_system": "paybypayme",
        "eci": "",
        "rectoken": "",
        "parent_order_id": "",
        "verification_status": "",
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
