//! Exchanger wire types, request builders and IPN translation. Pure: no IO.
//!
//! The docs name the create method (`public/exchanger/order/create`) and its parameters but
//! not the verb, path, auth or response. Our documented, configurable choice (the sandbox
//! implements the same): `POST {base}{create_path}` with a JSON body of the documented
//! parameters, answered with `{"uid": <number|string>, "secret": "<string>"}` (optionally
//! wrapped in `{"data": ...}`); the payment page is
//! `{payment_page_base}/{lang}/payment/{uid}/{secret}`. Status: `POST {base}{status_path}`
//! with `{"uid"}`, answered with `{"status": "<IPN status>", ...}` (`newStatus` also read).
//! The API key, if configured, goes in `auth_header`.

use crate::config::{ExchangerAccount, ExchangerConfig};
use crate::flow::json_text;
use crate::http::{HttpRequest, Method, Replay};
use paystate_events::{
    Currency, CustomerAction, CustomerActionKind, Money, Operation, OrderState, PaymentInitiation,
    SignalKind,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Form fields that may carry the IPN signature, in the order they are tried (the field name
/// is not documented), then the `x-signature` header.
pub const IPN_SIGNATURE_FIELDS: [&str; 3] = ["signature", "sign", "hash"];
/// Our marker on `ipnUrl`, so IPNs name our order.
pub const IPN_ORDER_PARAM: &str = "order_id";

fn authed(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    url: String,
    replay: Replay,
) -> HttpRequest {
    let req = HttpRequest::new(Method::Post, url, replay);
    match &account.api_key {
        Some(key) => req.secret_header(&cfg.auth_header, key.clone()),
        None => req,
    }
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
pub fn amount_number(m: Money) -> Result<Value, String> {
    let text = m.to_decimal();
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let normalized = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
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
    )
    .json(body))
}

pub fn status_request(cfg: &ExchangerConfig, account: &ExchangerAccount, uid: &str) -> HttpRequest {
    authed(cfg, account, cfg.common.url(&cfg.status_path), Replay::Safe).json(json!({"uid": uid}))
}

/// `{uid, secret}` (or under `data`) → (uid, payment page action).
pub fn created(
    cfg: &ExchangerConfig,
    account: &ExchangerAccount,
    body: &Value,
) -> Result<(String, CustomerAction), String> {
    let obj = body.get("data").filter(|d| d.is_object()).unwrap_or(body);
    let uid = obj.get("uid").and_then(json_text).ok_or("no uid")?;
    let secret = obj.get("secret").and_then(json_text).ok_or("no secret")?;
    let base = cfg
        .payment_page_base
        .as_deref()
        .unwrap_or(&cfg.common.base_url)
        .trim_end_matches('/');
    let url = format!("{base}/{}/payment/{uid}/{secret}", account.lang);
    Ok((
        uid,
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
/// `errorPayout` happens after the funds were received: a person must look (not a plain
/// failure). `returned` means paid then sent back: reported as captured then refunded.
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
        ExchangerStatus::ErrorPayout => vec![SignalKind::NeedsReview {
            reason: "exchanger errorPayout: payout failed after the funds were received".into(),
        }],
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
