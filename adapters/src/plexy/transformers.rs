//! Plexy wire types, request builders and status translation. Pure: no IO.
//!
//! Paths are relative to the host (`base_url` = `https://api.plexypay.com`): the live API
//! lives under `/v1`. Payment-link amounts are integer minor units (documented); capture and
//! refund amounts are decimals in major units (older docs), converted exactly. The unit of
//! transaction and webhook amounts (`amount`, `processedAmount`) is not documented: it is
//! [`AmountUnit`] configuration, minor units by default (the transaction echoes the link's
//! `amount`, which is documented in minor units). Capture/cancel/refund paths follow the older official
//! docs (`/payments/{transactionId}/...`); the link cancel/expiry paths and the lookup by
//! order reference ([`LINK_BY_REFERENCE_PATH`]) are our reading of the docs' operation names.
//! All of them are constants here, the one place to change.

use crate::config::{PlexyAccount, PlexyConfig};
use crate::flow::{json_decimal_money, json_minor, minor_money};
use crate::http::{HttpRequest, HttpResponse, Method, Replay};
use crate::secret::Secret;
use paystate_events::{
    CaptureMode, Currency, CustomerAction, CustomerActionKind, Money, Operation, OrderId,
    OrderState, PaymentInitiation, SignalKind, Timestamp,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const LINKS_PATH: &str = "/v1/payment-links";
pub const TX_BY_LINK_PATH: &str = "/v1/transactions/by-payment-link";
pub const PAYMENTS_PATH: &str = "/v1/payments";
/// "Retrieve Payment Link by Order Reference" (seed 000 names the operation, a GET; the path
/// is our reading, after `/v1/transactions/by-payment-link/{id}`). Answers the link
/// (`response.PaymentLink`: id, url, status, amount, currency, orderReference); 404 = none.
pub const LINK_BY_REFERENCE_PATH: &str = "/v1/payment-links/by-order-reference";
/// Webhook event names are `transaction.<status>`.
pub const WEBHOOK_PREFIX: &str = "transaction.";

fn authed(method: Method, url: String, account: &PlexyAccount, replay: Replay) -> HttpRequest {
    HttpRequest::new(method, url, replay).secret_header("Authorization", account.api_key.clone())
}

/// Create a payment link. `orderReference` is our order id; `autoClearing` is auto capture.
/// Not replay-safe: Plexy documents no de-duplication by reference.
pub fn create_link_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    order: &OrderState,
    initiation: &PaymentInitiation,
    expires_at: Timestamp,
) -> HttpRequest {
    let url = |k: &str| {
        initiation
            .params
            .get(k)
            .cloned()
            .or_else(|| initiation.return_url.clone())
    };
    let body = json!({
        "amount": order.amount.minor_units.get(),
        "currency": order.currency().code(),
        "customerId": initiation.customer_id,
        "description": initiation.params.get("description").cloned().unwrap_or_else(|| order.merchant_reference.clone()),
        "expiresAt": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "metadata": {"successUrl": url("success_url"), "failureUrl": url("failure_url"), "cancelUrl": url("cancel_url")},
        "orderReference": order.order_id.as_str(),
        "autoClearing": order.capture_mode == CaptureMode::Auto,
    });
    authed(
        Method::Post,
        cfg.common.url(LINKS_PATH),
        account,
        Replay::Unsafe,
    )
    .json(body)
}

pub fn cancel_link_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    link_id: &str,
) -> HttpRequest {
    authed(
        Method::Post,
        cfg.common.url(&format!("{LINKS_PATH}/{link_id}/cancel")),
        account,
        Replay::Safe,
    )
}

/// Reads one payment link (its status tells an unpaid link that was closed).
pub fn link_request(cfg: &PlexyConfig, account: &PlexyAccount, link_id: &str) -> HttpRequest {
    authed(
        Method::Get,
        cfg.common.url(&format!("{LINKS_PATH}/{link_id}")),
        account,
        Replay::Safe,
    )
}

/// Finds the payment link created under our order reference (`orderReference` = our order
/// id): how a create whose answer was lost is resolved.
pub fn link_by_reference_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    reference: &OrderId,
) -> HttpRequest {
    authed(
        Method::Get,
        cfg.common
            .url(&format!("{LINK_BY_REFERENCE_PATH}/{}", reference.as_str())),
        account,
        Replay::Safe,
    )
}

pub fn update_expiry_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    link_id: &str,
    at: Timestamp,
) -> HttpRequest {
    let body = json!({"expiresAt": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    authed(
        Method::Put,
        cfg.common
            .url(&format!("{LINKS_PATH}/{link_id}/expiration")),
        account,
        Replay::Safe,
    )
    .json(body)
}

pub fn transactions_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    link_id: &str,
) -> HttpRequest {
    authed(
        Method::Get,
        cfg.common.url(&format!("{TX_BY_LINK_PATH}/{link_id}")),
        account,
        Replay::Safe,
    )
}

/// Capture, cancel or refund one transaction. Capture and refund take a decimal amount
/// (`null` = full). No idempotency key is documented: not replay-safe.
pub fn payment_op_request(
    cfg: &PlexyConfig,
    account: &PlexyAccount,
    tx_id: &str,
    op: &str,
    amount: Option<Money>,
) -> HttpRequest {
    let url = cfg.common.url(&format!("{PAYMENTS_PATH}/{tx_id}/{op}"));
    let req = authed(Method::Post, url, account, Replay::Unsafe);
    match op {
        "cancel" => req,
        _ => req.json(json!({"amount": amount.map(|m| m.to_decimal())})),
    }
}

/// How transaction and webhook amounts are written (unconfirmed upstream: configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountUnit {
    /// Integer minor units (`1050` = 10.50 USD), like the payment link's `amount`.
    #[default]
    MinorUnits,
    /// Decimal major units (`10.5` or `"10.50"`), like the capture/refund request amount.
    Decimal,
}

/// Link statuses a link without a transaction can be in: `active` (waiting for the
/// customer), or closed without payment (`cancelled`, `expired`).
pub const LINK_CLOSED_STATUSES: [&str; 2] = ["cancelled", "expired"];

/// A payment link (create and read answers). `amount` is integer minor units (documented).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentLink {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub amount: Option<Value>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub order_reference: Option<String>,
}

/// Why a link found by our order reference is not this order's (`None`: it is). The lookup
/// asked by our reference; what the answer echoes must agree with the order: the reference,
/// and the amount and currency when the answer has them.
pub fn foreign_link(order: &OrderState, link: &PaymentLink) -> Option<String> {
    let ours = order.order_id.as_str();
    if let Some(r) = link.order_reference.as_deref().filter(|r| *r != ours) {
        return Some(format!(
            "payment link {} found by order reference {ours} names reference {}",
            short_text(&link.id),
            short_text(r)
        ));
    }
    let currency = order.currency().code();
    if let Some(c) = link.currency.as_deref().filter(|c| *c != currency) {
        return Some(format!(
            "payment link {} found by order reference {ours} is in {}, the order in {currency}",
            short_text(&link.id),
            short_text(c)
        ));
    }
    let want = order.amount.minor_units.get();
    match link.amount.as_ref().filter(|v| !v.is_null()) {
        None => None,
        Some(v) if json_minor(v) == Some(want) => None,
        Some(v) => Some(format!(
            "payment link {} found by order reference {ours} is for amount {}, the order for {want}",
            short_text(&link.id),
            short_text(&v.to_string())
        )),
    }
}

/// Longest provider text quoted in a review reason.
const TEXT_IN_REASON_MAX: usize = 80;

fn short_text(s: &str) -> String {
    s.chars().take(TEXT_IN_REASON_MAX).collect()
}

/// What a link without transactions says, and its raw status for the evidence: `active` (or
/// any open status) is still waiting for the customer; `cancelled` / `expired` closed it
/// without payment.
pub fn link_status_signals(link: &PaymentLink) -> (Vec<SignalKind>, String) {
    let closed = link
        .status
        .as_deref()
        .is_some_and(|s| LINK_CLOSED_STATUSES.contains(&s));
    let signal = match closed {
        true => SignalKind::Cancelled,
        false => SignalKind::Accepted { action: None },
    };
    let raw = format!("link.{}", link.status.as_deref().unwrap_or("unknown"));
    (vec![signal], raw)
}

/// The create did not happen: Plexy has no payment link under our order reference. The
/// payment fails (the engine starts a payment only from `created`: the merchant starts a new
/// order, whose new reference cannot meet this one's link should it appear late).
/// What a lookup by our order reference that found no link records. Why not "the create did
/// not happen" (a failed payment): the lookup's path is not in the provider documents we hold
/// (seed 000 names the operation only), and a wrong path answers 404 too — a payment failed
/// on it could still be paid through a link that exists. So the order keeps waiting: the
/// reconciler asks again and flags it for a person at its final deadline.
pub fn no_link_found(order: &OrderState) -> SignalKind {
    SignalKind::Probed {
        answer: format!(
            "no payment link found under order reference {} (not taken as proof that the \
             create did not happen)",
            order.order_id
        ),
    }
}

pub fn link_action(link: &PaymentLink) -> CustomerAction {
    CustomerAction {
        kind: CustomerActionKind::Redirect,
        url: link.url.clone(),
        details: BTreeMap::new(),
    }
}

/// A transaction (API responses and webhook `data`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub amount: Option<Value>,
    #[serde(default)]
    pub processed_amount: Option<Value>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub merchant_reference: Option<String>,
    #[serde(default)]
    pub order_reference: Option<String>,
}

/// The transactions of a link: a bare array, or an object holding one under `data`,
/// `transactions` or `items` (the list schema's envelope is not in the seed).
pub fn transactions_of(body: &Value) -> Result<Vec<Transaction>, String> {
    let list = match body {
        Value::Array(_) => body,
        Value::Object(m) => ["data", "transactions", "items"]
            .iter()
            .find_map(|k| m.get(*k).filter(|v| v.is_array()))
            .ok_or("no transaction list")?,
        _ => return Err("transactions response is not a list".into()),
    };
    serde_json::from_value(list.clone()).map_err(|e| e.to_string())
}

/// Transaction states in order of preference for a status report (most advanced first).
pub const STATUS_ORDER: [&str; 8] = [
    "refunded",
    "charged",
    "cancelled",
    "authorized",
    "3d",
    "created",
    "rejected",
    "failed",
];

/// The transaction a status report is about: the most advanced, else the first listed.
pub fn reported(txs: &[Transaction]) -> Option<&Transaction> {
    pick(txs, &STATUS_ORDER).or(txs.first())
}

/// The operations the order waits for that the link's transactions show were not made.
/// Capture and void are made only from `authorized` and move the transaction on (`charged`,
/// `cancelled`; the documented vocabulary has no in-between state), so a link whose most
/// advanced transaction is still `authorized` shows that a pending capture or void did not
/// happen. Only an unambiguous answer concludes: a transaction whose status we do not know
/// (it could be a capture in progress) concludes nothing. The caller decides whether our
/// own call can still be on its way (see `Plexy::settled`).
pub fn not_made(order: &OrderState, txs: &[Transaction]) -> Vec<SignalKind> {
    let all_known = txs.iter().all(|t| PlexyStatus::parse(&t.status).is_some());
    let Some(tx) = reported(txs).filter(|t| all_known && t.status == "authorized") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some((capture_id, _)) = &order.capture_pending {
        out.push(SignalKind::Failed {
            operation: Operation::Capture,
            code: "not_captured".to_string(),
            message: format!(
                "capture {capture_id} not made: Plexy shows transaction {} still authorized",
                short_text(&tx.id)
            ),
            refund_id: None,
        });
    }
    if order.cancel_pending {
        out.push(SignalKind::Failed {
            operation: Operation::Cancel,
            code: "not_cancelled".to_string(),
            message: format!(
                "void not made: Plexy shows transaction {} still authorized",
                short_text(&tx.id)
            ),
            refund_id: None,
        });
    }
    out
}

/// The transaction an operation acts on: the first in `wanted` status order.
pub fn pick<'t>(txs: &'t [Transaction], wanted: &[&str]) -> Option<&'t Transaction> {
    wanted
        .iter()
        .find_map(|w| txs.iter().find(|t| t.status == *w))
}

/// Plexy transaction statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlexyStatus {
    Created,
    ThreeD,
    Authorized,
    Charged,
    Cancelled,
    Refunded,
    Rejected,
    Failed,
}

impl PlexyStatus {
    pub fn parse(s: &str) -> Option<PlexyStatus> {
        Some(match s {
            "created" => PlexyStatus::Created,
            "3d" => PlexyStatus::ThreeD,
            "authorized" => PlexyStatus::Authorized,
            "charged" => PlexyStatus::Charged,
            "cancelled" => PlexyStatus::Cancelled,
            "refunded" => PlexyStatus::Refunded,
            "rejected" => PlexyStatus::Rejected,
            "failed" => PlexyStatus::Failed,
            _ => return None,
        })
    }
}

/// True for a transaction the customer has not finished (`created`, `3d`).
pub fn is_open(t: &Transaction) -> bool {
    matches!(
        PlexyStatus::parse(&t.status),
        Some(PlexyStatus::Created | PlexyStatus::ThreeD)
    )
}

/// What a transaction's status means. `rejected` is a bank decline, `failed` a system error.
/// `refunded` means everything charged was refunded (a partial refund leaves `charged`).
pub fn transaction_signals(t: &Transaction, unit: AmountUnit) -> Result<Vec<SignalKind>, String> {
    let Some(status) = PlexyStatus::parse(&t.status) else {
        return Ok(vec![SignalKind::Unrecognised {
            raw_status: t.status.clone(),
        }]);
    };
    let failed = |code: &str| SignalKind::Failed {
        operation: Operation::Payment,
        code: code.to_string(),
        message: format!("transaction {}", t.status),
        refund_id: None,
    };
    Ok(match status {
        PlexyStatus::Created | PlexyStatus::ThreeD => vec![SignalKind::Accepted { action: None }],
        PlexyStatus::Authorized => vec![SignalKind::Authorized {
            amount: amount(t, &t.amount, unit)?,
        }],
        PlexyStatus::Charged => {
            let processed = amount(t, &t.processed_amount, unit)?;
            vec![SignalKind::Captured {
                amount: processed.or(amount(t, &t.amount, unit)?),
            }]
        }
        PlexyStatus::Cancelled => vec![SignalKind::Cancelled],
        PlexyStatus::Refunded => vec![SignalKind::Refunded {
            refund_id: None,
            amount: None,
        }],
        PlexyStatus::Rejected => vec![failed("rejected")],
        PlexyStatus::Failed => vec![failed("failed")],
    })
}

/// A transaction amount in `unit`; zero and absent mean "not said".
fn amount(t: &Transaction, v: &Option<Value>, unit: AmountUnit) -> Result<Option<Money>, String> {
    let Some(v) = v.as_ref().filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let code = t.currency.as_deref().ok_or("amount without currency")?;
    if unit == AmountUnit::MinorUnits {
        return match json_minor(v) {
            Some(0) => Ok(None),
            Some(minor) => minor_money(minor, code).map(Some),
            None => Err(format!("amount {v} is not a count of minor units")),
        };
    }
    let currency = Currency::parse(code).map_err(|e| e.to_string())?;
    match json_decimal_money(v, currency) {
        Ok(m) => Ok(Some(m)),
        Err(_) if v.as_f64() == Some(0.0) || v.as_str() == Some("0") => Ok(None),
        Err(e) => Err(e),
    }
}

/// A webhook: `{"name": "transaction.<status>", "merchantId", "data": {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub name: String,
    #[serde(default)]
    pub merchant_id: Option<Value>,
    pub data: Value,
}

impl Webhook {
    /// The transaction; its status from `data.status`, else from the event name.
    pub fn transaction(&self) -> Result<Transaction, String> {
        let mut data = self.data.clone();
        // Indexing a non-object `Value` by key panics: refuse anything but an object first.
        if !data.is_object() {
            return Err("webhook data is not an object".into());
        }
        if data.get("status").is_none() {
            let status = self
                .name
                .strip_prefix(WEBHOOK_PREFIX)
                .ok_or("event name is not transaction.<status>")?;
            data["status"] = json!(status);
        }
        serde_json::from_value(data).map_err(|e| e.to_string())
    }
}

/// Code and message of an error response (`{"code","message"}` or `{"error": ...}`).
pub fn error_of(r: &HttpResponse) -> (String, String) {
    let v: Value = r.json().unwrap_or(Value::Null);
    let code = v
        .get("code")
        .or_else(|| v.get("error"))
        .and_then(crate::flow::json_text);
    let message = v.get("message").and_then(crate::flow::json_text);
    (
        code.unwrap_or_else(|| format!("http_{}", r.status)),
        message.unwrap_or_else(|| r.body_excerpt()),
    )
}

/// Tilda form fields for an order, signed. `reference` = `<project_id>_<order id>`.
pub fn tilda_form(
    store_id: &str,
    secret: &Secret,
    mode: super::signature::TildaMode,
    project_id: &str,
    order: &OrderState,
) -> Vec<(String, String)> {
    let currency = order.currency().code();
    let amount = order.amount.minor_units.get().to_string();
    let signature =
        super::signature::tilda_signature(store_id, currency, &amount, secret.expose(), mode);
    vec![
        ("order[store_id]".into(), store_id.into()),
        ("order[currency]".into(), currency.into()),
        ("order[amount]".into(), amount),
        (
            "order[reference]".into(),
            format!("{project_id}_{}", order.order_id),
        ),
        ("signature".into(), signature),
    ]
}

/// Verifies a received Tilda form's signature over its own fields.
pub fn verify_tilda_form(
    fields: &[(String, String)],
    secret: &Secret,
    mode: super::signature::TildaMode,
) -> bool {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (
        get("order[store_id]"),
        get("order[currency]"),
        get("order[amount]"),
        get("signature"),
    ) {
        (Some(s), Some(c), Some(a), Some(sig)) => {
            super::signature::verify_tilda(s, c, a, secret.expose(), mode, sig)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
