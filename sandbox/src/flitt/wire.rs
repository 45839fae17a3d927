//! Flitt's wire shapes: `{"request": {...}}` in and `{"response": {...}}` out as JSON, or the
//! same parameters flat as a form (the official SDKs' `form` request type: Flitt answers in
//! the request's format); error codes; the order parameters of status answers and callbacks.

use super::Order;
use crate::http::json;
use crate::shared::Shared;
use crate::{ids, sig};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Error codes the sandbox answers (1007 is documented; the others are sandbox choices).
pub(crate) const INTERNAL: u32 = 1000;
pub(crate) const BAD_MERCHANT: u32 = 1002;
pub(crate) const BAD_SIGNATURE: u32 = 1007;
pub(crate) const MISSING: u32 = 1011;
pub(crate) const DUPLICATE_ORDER: u32 = 1013;
pub(crate) const NOT_FOUND: u32 = 1018;
pub(crate) const BAD_STATE: u32 = 1031;

/// How a request's parameters came, and so how its answer goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `{"request": {...}}`, answered `{"response": {...}}`.
    Json,
    /// `application/x-www-form-urlencoded`, flat, answered flat in the same encoding.
    Form,
    /// XML (the Python SDK can send it); not simulated, refused with a JSON failure.
    Xml,
}

impl Format {
    /// The body's format from `Content-Type`, matched as a substring: the Node SDK sends the
    /// header value `Content-type: application/json; charset=utf-8`, the Python SDK adds
    /// `; charset=utf-8`. Without a known type, a body starting with `{` (or empty) is JSON
    /// and anything else a form.
    pub(crate) fn of(headers: &HeaderMap, body: &[u8]) -> Format {
        let ct = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ct.contains("x-www-form-urlencoded") {
            return Format::Form;
        }
        if ct.contains("json") {
            return Format::Json;
        }
        if ct.contains("xml") {
            return Format::Xml;
        }
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None | Some(b'{') => Format::Json,
            Some(b'<') => Format::Xml,
            Some(_) => Format::Form,
        }
    }
}

/// A form body's parameters, every value a string; a repeated name is refused (which one
/// counts would be a guess).
pub(crate) fn parse_form(body: &[u8]) -> Result<Map<String, Value>, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| "Request body is not a valid form".to_string())?;
    let mut out = Map::new();
    for (k, v) in pairs {
        if out.contains_key(&k) {
            return Err(format!("Parameter `{k}` is repeated"));
        }
        out.insert(k, Value::String(v));
    }
    Ok(out)
}

/// A value as a form carries it (and as it is signed in a form answer).
fn form_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// The answer parameters in `format`, HTTP 200 (Flitt answers errors with 200 too).
fn answer(format: Format, fields: Map<String, Value>) -> Response {
    match format {
        Format::Json | Format::Xml => json(StatusCode::OK, json!({ "response": fields })),
        Format::Form => {
            let pairs: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.clone(), form_text(v)))
                .collect();
            let body = serde_urlencoded::to_string(pairs).unwrap_or_default();
            (
                StatusCode::OK,
                [(
                    CONTENT_TYPE,
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
    }
}

/// A failure answer in the request's format.
pub(crate) fn failure(format: Format, code: u32, message: &str) -> Response {
    let fields = json!({
        "response_status": "failure", "error_code": code, "error_message": message,
        "request_id": ids::alnum(13)
    });
    answer(format, obj(fields))
}

/// A success answer: `fields` plus `response_status`, signed when `signed`. A form answer is
/// signed over the text it carries.
pub(crate) fn success(
    shared: &Shared,
    format: Format,
    mut fields: Map<String, Value>,
    signed: bool,
) -> Response {
    fields.insert("response_status".into(), json!("success"));
    if format == Format::Form {
        fields = fields
            .into_iter()
            .map(|(k, v)| {
                let text = form_text(&v);
                (k, Value::String(text))
            })
            .collect();
    }
    if signed {
        let signature = sig::flitt_sign(&shared.config.flitt.password, &fields);
        fields.insert("signature".into(), json!(signature));
    }
    answer(format, fields)
}

/// The object inside a JSON object value (empty otherwise).
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
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
