//! Exchanger wire types, request builders and IPN translation. Pure: no IO.
//!
//! The docs name the create method (`public/exchanger/order/create`) and its parameters but
//! not the verb, path, auth or response. Our documented, configurable choice (the sandbox
//! implements the same):
//!
//! - Create: `POST {base}{create_path}` with the documented parameters, as a JSON body
//!   (`encoding = "json"`, the default: `fromValues` etc. as arrays of `{key, value}`) or as
//!   a PHP-style form (`encoding = "form"`: `fromValues[0][key]=...`, as the docs' parameter
//!   table spells them).
//! - Its answer, optionally wrapped in `{"data": ...}`: `orderId` (the request id the IPN
//!   signs; our provider reference), `orderUID` (or `uid`) and `secret` (the payment page
//!   `{payment_page_base}/{lang}/payment/{uid}/{secret}`, as documented). An answer without
//!   `orderId` uses the uid as the reference.
//! - Status: `POST {base}{status_path}` with `{<status_id_field>: <reference>}`
//!   (`orderId` by default), same encoding, answered with the order
//!   (`{"status": "<IPN status>", "inAmount", "xml_from", ...}`, `newStatus` also read,
//!   optionally under `data`).
//! - The API key, if configured, goes in `auth_header`.

use crate::config::{ExchangerAccount, ExchangerConfig};
use crate::flow::json_text;
use crate::http::{HttpRequest, Method, Replay};
use paystate_events::{
    Currency, CustomerAction, CustomerActionKind, Money, Operation, OrderState, PaymentInitiation,
    SignalKind,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Form fields that may carry the IPN signature, in the order they are tried (the field name
/// is not documented), then the `x-signature` header.
pub const IPN_SIGNATURE_FIELDS: [&str; 3] = ["signature", "sign", "hash"];
/// Our marker on `ipnUrl`, so IPNs name our order.
pub const IPN_ORDER_PARAM: &str = "order_id";

/// How create and status requests are encoded (the real API is private: configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A JSON object; key-value lists as arrays of `{key, value}`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, lists PHP-style (`toValues[0][key]`).
    Form,
}

/// A POST of `body` to `url`, authenticated and encoded as configured.
fn authed(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    url: String,
    replay: Replay,
    body: Value,
) -> HttpRequest {
    let req = HttpRequest::new(Method::Post, url, replay);
    let req = match &account.api_key {
        Some(key) => req.secret_header(&cfg.auth_header, key.clone()),
        None => req,
    };
    match cfg.encoding {
        Encoding::Json => req.json(body),
        Encoding::Form => req.form(form_fields(&body)),
    }
}

/// A JSON object as PHP-style form fields: scalars as text (nulls left out), arrays of
/// objects as `name[i][field]`.
pub fn form_fields(body: &Value) -> Vec<(String, String)> {
    let scalar = |v: &Value| match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let mut out = Vec::new();
    let Value::Object(m) = body else {
        return out;
    };
    for (k, v) in m {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(fields) = item else {
                        continue;
                    };
                    for (f, fv) in fields {
                        if let Some(text) = scalar(fv) {
                            out.push((format!("{k}[{i}][{f}]"), text));
                        }
                    }
                }
            }
            other => out.extend(scalar(other).map(|t| (k.clone(), t))),
        }
    }
    out
}

/// `[{key, value}]` from `initiation.params` entries named `{prefix}.{key}`.
fn values(initiation: &PaymentInitiation, prefix: &str) -> Value {
    let items: Vec<Value> = initiation
        .params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .and_then(|k| k.strip_prefix('.'))
                .map(|k| json!({"key": k, "value": v}))
        })
        .collect();
    Value::Array(items)
}

/// The amount as a JSON number whose text is the exact decimal (`FLOAT` in the docs).
/// Trailing zeros of the fraction are dropped first (`100.00` is sent as `100`, an integer;
/// `100.50` as `100.5`), so the number's text is exactly the decimal's.
pub fn amount_number(m: Money) -> Result<Value, String> {
    let text = m.to_decimal();
    let normalized = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    let v: Value = serde_json::from_str(normalized).map_err(|e| e.to_string())?;
    let sent = v.to_string();
    if sent != normalized {
        return Err(format!("{text} cannot be sent exactly as a JSON number"));
    }
    Ok(v)
}

/// Create order. No idempotency key exists: not replay-safe (an unknown outcome needs review).
pub fn create_request(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    order: &OrderState,
    initiation: &PaymentInitiation,
) -> Result<HttpRequest, String> {
    let ipn_url = cfg.common.callback_url.as_ref().map(|u| {
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}{IPN_ORDER_PARAM}={}", order.order_id)
    });
    let body = json!({
        "routeId": initiation.params.get("route_id").unwrap_or(&account.route_id),
        "partner": account.partner,
        "amount": amount_number(order.amount)?,
        "fromValues": values(initiation, "from"),
        "toValues": values(initiation, "to"),
        "routeValues": values(initiation, "route"),
        "lang": account.lang,
        "agreement": true,
        "hideOutData": initiation.params.get("hide_out_data").is_some_and(|v| v == "true"),
        "clientCallbackUrl": initiation.return_url,
        "ipnUrl": ipn_url,
        "ipnSecret": account.ipn_secret.expose(),
    });
    Ok(authed(
        cfg,
        account,
        cfg.common.url(&cfg.create_path),
        Replay::Unsafe,
        body,
    ))
}

/// The status of the order whose provider reference is `reference`.
pub fn status_request(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    reference: &str,
) -> HttpRequest {
    let mut body = serde_json::Map::new();
    body.insert(cfg.status_id_field.clone(), json!(reference));
    authed(
        cfg,
        account,
        cfg.common.url(&cfg.status_path),
        Replay::Safe,
        Value::Object(body),
    )
}

/// The create answer (see the module docs) → (provider reference, payment page action).
pub fn created(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    body: &Value,
) -> Result<(String, CustomerAction), String> {
    let obj = body.get("data").filter(|d| d.is_object()).unwrap_or(body);
    let text = |k: &str| obj.get(k).and_then(json_text);
    let uid = text("orderUID")
        .or_else(|| text("uid"))
        .ok_or("no orderUID")?;
    let secret = text("secret").ok_or("no secret")?;
    let reference = text("orderId").unwrap_or_else(|| uid.clone());
    let base = cfg
        .payment_page_base
        .as_deref()
        .unwrap_or(&cfg.common.base_url)
        .trim_end_matches('/');
    let url = format!("{base}/{}/payment/{uid}/{secret}", account.lang);
    Ok((
        reference,
        CustomerAction {
            kind: CustomerActionKind::Redirect,
            url: Some(url),
            details: BTreeMap::new(),
        },
    ))
}

/// Exchanger order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangerStatus {
    New,
    WaitPayment,
    ErrorPayment,
    InProgress,
    InProgressPayout,
    ErrorPayout,
    Hold,
    Done,
    Returned,
    Deleted,
}

impl ExchangerStatus {
    pub fn parse(s: &str) -> Option<ExchangerStatus> {
        Some(match s {
            "new" => ExchangerStatus::New,
            "waitPayment" => ExchangerStatus::WaitPayment,
            "errorPayment" => ExchangerStatus::ErrorPayment,
            "inProgress" => ExchangerStatus::InProgress,
            "inProgressPayout" => ExchangerStatus::InProgressPayout,
            "errorPayout" => ExchangerStatus::ErrorPayout,
            "hold" => ExchangerStatus::Hold,
            "done" => ExchangerStatus::Done,
            "returned" => ExchangerStatus::Returned,
            "deleted" => ExchangerStatus::Deleted,
            _ => return None,
        })
    }
}

/// What a status means. `in_amount` counts only when `xml_from` is an ISO 4217 code
/// (exchanger codes such as `CARDUAH` are not; then the order amount is implied).
/// `errorPayout` happens after the funds were received: reported as captured (the money did
/// arrive) and as needing a person (a discrepancy, not a plain failure). `returned` means
/// paid then sent back: reported as captured then refunded.
pub fn status_signals(
    raw: &str,
    in_amount: Option<&str>,
    xml_from: Option<&str>,
) -> Result<Vec<SignalKind>, String> {
    let Some(status) = ExchangerStatus::parse(raw) else {
        return Ok(vec![SignalKind::Unrecognised {
            raw_status: raw.to_string(),
        }]);
    };
    let amount = match (in_amount, xml_from.and_then(|c| Currency::parse(c).ok())) {
        (Some(a), Some(c)) => Some(Money::from_decimal(a, c).map_err(|e| e.to_string())?),
        _ => None,
    };
    Ok(match status {
        ExchangerStatus::New
        | ExchangerStatus::WaitPayment
        | ExchangerStatus::InProgress
        | ExchangerStatus::Hold => {
            vec![SignalKind::Accepted { action: None }]
        }
        ExchangerStatus::ErrorPayment => vec![SignalKind::Failed {
            operation: Operation::Payment,
            code: "errorPayment".into(),
            message: "customer payment error".into(),
            refund_id: None,
        }],
        ExchangerStatus::InProgressPayout => vec![SignalKind::Captured { amount }],
        ExchangerStatus::ErrorPayout => vec![
            SignalKind::Captured { amount },
            SignalKind::NeedsReview {
                reason: "exchanger errorPayout: payout failed after the funds were received".into(),
            },
        ],
        ExchangerStatus::Done => vec![SignalKind::Settled { amount }],
        ExchangerStatus::Returned => {
            vec![
                SignalKind::Captured { amount },
                SignalKind::Refunded {
                    refund_id: None,
                    amount: None,
                },
            ]
        }
        ExchangerStatus::Deleted => vec![SignalKind::Cancelled],
    })
}

/// An IPN's fields (form-urlencoded), as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipn {
    pub fields: Vec<(String, String)>,
}

impl Ipn {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    /// The signed fields, in documented order (missing ones are empty and will not verify).
    pub fn signed(&self) -> super::signature::IpnFields<'_> {
        let g = |k| self.get(k).unwrap_or_default();
        super::signature::IpnFields {
            order_id: g("orderId"),
            new_status: g("newStatus"),
            in_amount: g("inAmount"),
            out_amount: g("outAmount"),
            xml_from: g("xml_from"),
            xml_to: g("xml_to"),
            timestamp: g("timestamp"),
        }
    }
    pub fn signature(&self, header: Option<&str>) -> Option<String> {
        IPN_SIGNATURE_FIELDS
            .iter()
            .find_map(|f| self.get(f))
            .or(header)
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests;
