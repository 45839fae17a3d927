//! Paykassma wire types, request builders and postback translation. Pure: no IO.
//!
//! The plugin API secret travels as `?secret=` (a [`crate::http::Value::Secret`], never
//! printed). Activation `amount` is an integer: we read it as whole currency units (the seed's
//! example is 300 BTN) and refuse orders whose amount has a fractional part.

use crate::config::{PaykassmaAccount, ProviderConfig};
use crate::flow::json_decimal_money;
use crate::http::{HttpRequest, HttpResponse, Method, Part, Replay};
use crate::keys::{self, KeyRules};
use bytes::Bytes;
use paystate_events::{
    Currency, CustomerAction, CustomerActionKind, OrderId, OrderState, PaymentInitiation,
    SignalKind,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const CREATE_PATH: &str = "/api/v1/transaction/create";
pub const ACTIVATE_PATH: &str = "/api/v1/possible-transaction";
/// What Paykassma must receive, with HTTP 200, to stop resending a postback.
pub const POSTBACK_ACK: &str = r#"{"status":"ok"}"#;
/// Longest `label` and `custom_transaction_id`.
pub const TEXT_LEN_MAX: usize = 190;
/// Digits in the customer's transaction number (`key1`).
pub const KEY1_DIGITS: usize = 12;
/// Largest screenshot we upload.
pub const SCREENSHOT_LEN_MAX: usize = 10 * 1024 * 1024;
const KEY_RULES: KeyRules = KeyRules {
    len_max: TEXT_LEN_MAX,
    sep: '.',
};

/// The payer label: `initiation.params.label`, else the customer id.
pub fn label(initiation: &PaymentInitiation) -> Result<String, String> {
    let label = initiation
        .params
        .get("label")
        .or(initiation.customer_id.as_ref())
        .ok_or("label (payer id) is required")?;
    if label.is_empty() || label.len() > TEXT_LEN_MAX {
        return Err(format!("label must be 1..={TEXT_LEN_MAX} characters"));
    }
    Ok(label.clone())
}

/// Create the wallet transaction. No idempotency key exists: not replay-safe.
pub fn create_request(
    cfg: &ProviderConfig<PaykassmaAccount>,
    account: &PaykassmaAccount,
    order: &OrderState,
    label: &str,
) -> HttpRequest {
    let url = cfg.url(&format!("{CREATE_PATH}/{}", account.wallet_type));
    HttpRequest::new(Method::Post, url, Replay::Unsafe)
        .secret_query("secret", account.plugin_secret.clone())
        .json(json!({"currency": order.currency().code(), "label": label}))
}

/// `{"status":"ok","params":{"Wallet number","Account name","is_check_amount"}}` or
/// `{"status":"fail","message"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiAnswer {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub code: Option<Value>,
}

/// The wallet to pay into, as a `WalletTransfer` action (`wallet_number`, `account_name`,
/// and `is_check_amount` when given).
pub fn wallet_action(answer: &ApiAnswer) -> Result<CustomerAction, String> {
    let params = answer.params.as_ref().ok_or("no params")?;
    let text = |k: &str| params.get(k).and_then(crate::flow::json_text);
    let mut details = BTreeMap::new();
    details.insert(
        "wallet_number".to_string(),
        text("Wallet number").ok_or("no Wallet number")?,
    );
    details.insert(
        "account_name".to_string(),
        text("Account name").unwrap_or_default(),
    );
    if let Some(v) = params.get("is_check_amount").filter(|v| !v.is_null()) {
        details.insert("is_check_amount".to_string(), v.to_string());
    }
    Ok(CustomerAction {
        kind: CustomerActionKind::WalletTransfer,
        url: None,
        details,
    })
}

/// What the customer gives us after paying: their transaction number and a screenshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Our id for this activation attempt (e.g. the command id); part of
    /// `custom_transaction_id`.
    pub activation_id: String,
    /// The customer's 12-digit transaction number.
    pub key1: String,
    pub label: String,
    pub screenshot: Screenshot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screenshot {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

/// `custom_transaction_id`: `{order_id}.act.{activation_id}`; postbacks echo it as
/// `plugin_custom_order_id`, which gives the order back.
pub fn custom_transaction_id(order_id: &OrderId, activation_id: &str) -> String {
    keys::derive_key(order_id, "act", activation_id, KEY_RULES)
}

/// Activation multipart request, validated: `key1` is 12 digits, the amount is whole units.
/// Replay-safe: `custom_transaction_id` must be unique, so the provider refuses a second one.
pub fn activation_request(
    cfg: &ProviderConfig<PaykassmaAccount>,
    account: &PaykassmaAccount,
    order: &OrderState,
    a: &Activation,
) -> Result<HttpRequest, String> {
    if a.key1.len() != KEY1_DIGITS || !a.key1.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("key1 must be exactly {KEY1_DIGITS} digits"));
    }
    if a.screenshot.bytes.is_empty() || a.screenshot.bytes.len() > SCREENSHOT_LEN_MAX {
        return Err(format!("screenshot must be 1..={SCREENSHOT_LEN_MAX} bytes"));
    }
    let units = whole_units(order)?;
    let text = |name: &str, value: String| Part::Text {
        name: name.to_string(),
        value,
    };
    let parts = vec![
        text("currency_code", order.currency().code().to_string()),
        text("wallet_type", account.wallet_type.clone()),
        text("label", a.label.clone()),
        text("key1", a.key1.clone()),
        Part::File {
            name: "screenshot".into(),
            file_name: a.screenshot.file_name.clone(),
            content_type: a.screenshot.content_type.clone(),
            bytes: a.screenshot.bytes.clone(),
        },
        text("amount", units.to_string()),
        text(
            "custom_transaction_id",
            custom_transaction_id(&order.order_id, &a.activation_id),
        ),
    ];
    Ok(
        HttpRequest::new(Method::Post, cfg.url(ACTIVATE_PATH), Replay::Safe)
            .secret_query("secret", account.plugin_secret.clone())
            .multipart(parts),
    )
}

fn whole_units(order: &OrderState) -> Result<u64, String> {
    let scale = 10u64.pow(u32::from(order.currency().exponent()));
    let minor = order.amount.minor_units.get();
    if minor % scale != 0 {
        return Err(format!(
            "Paykassma takes whole amounts; {} has a fractional part",
            order.amount
        ));
    }
    Ok(minor / scale)
}

/// `ok` (create) or `success` (activation) is success; anything else is a refusal.
pub fn answer_ok(answer: &ApiAnswer) -> bool {
    matches!(answer.status.as_str(), "ok" | "success")
}

pub fn refusal(answer: &ApiAnswer, r: &HttpResponse) -> (String, String) {
    let code = answer
        .code
        .as_ref()
        .and_then(crate::flow::json_text)
        .unwrap_or_else(|| answer.status.clone());
    (
        code,
        answer
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| r.body_excerpt()),
    )
}

/// A postback's top-level fields we look at. None of them is signed (only
/// `additional_data` is): they may hold a report back, never decide one.
#[derive(Debug, Clone, Deserialize)]
pub struct Postback {
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// One transaction of the signed `additional_data`.
#[derive(Debug, Clone, Deserialize)]
pub struct PostbackItem {
    #[serde(default)]
    pub transaction_id: Option<Value>,
    #[serde(default)]
    pub plugin_custom_order_id: Option<String>,
    #[serde(default)]
    pub amount: Option<Value>,
    #[serde(default)]
    pub currency_code: Option<String>,
    /// Set on withdrawals (payouts), `null` on deposits.
    #[serde(default)]
    pub withdrawal_id: Option<Value>,
}

/// What paystate decided about a postback, and a stable label of that decision (part of the
/// dedup key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostbackDecision {
    pub signals: Vec<SignalKind>,
    pub label: String,
}

/// What a verified postback means, decided on the signed `additional_data` (`signed`):
///
/// - A signed deposit transaction (no `withdrawal_id`) with its signed `amount` and
///   `currency_code` is money credited: `Settled` with that exact amount. The documented
///   postback is sent when a deposit is credited.
/// - Paykassma signs no outcome field: the top-level `status` and `direction` (`unsigned`)
///   can only hold a report back, never move money. A `status` of `fail`/`failed` or a
///   `direction` other than `ingoing` is recorded as unrecognised (`unsigned ...`), and the
///   order waits (for the credited postback, or its expiry).
/// - Anything else (no transaction, a withdrawal) is recorded as unrecognised.
///
/// The first item decides (it also names the order, see `parse_callback`). `additional_data`
/// is an array and the seed shows one item; what further items would mean (other orders,
/// split payments) is unconfirmed, so none is dropped or applied: they are listed in a
/// `NeedsReview` after the first item's signals, and are part of the label, so a later
/// postback with other extra items is not taken for a resend of this one.
pub fn postback_signals(
    signed: &[PostbackItem],
    unsigned: &Postback,
) -> Result<PostbackDecision, String> {
    let mut decision = first_item_signals(signed, unsigned)?;
    if let Some(extra @ [_, ..]) = signed.get(1..) {
        decision.signals.push(SignalKind::NeedsReview {
            reason: extra_items_reason(extra),
        });
        decision.label.push_str(&extra_items_label(extra));
    }
    Ok(decision)
}

fn first_item_signals(
    signed: &[PostbackItem],
    unsigned: &Postback,
) -> Result<PostbackDecision, String> {
    let held = |what: String| PostbackDecision {
        signals: vec![SignalKind::Unrecognised {
            raw_status: format!("unsigned {what} (not applied: Paykassma signs no outcome)"),
        }],
        label: format!("held:{}", what.replace(' ', "_")),
    };
    let unrecognised = |what: &str| PostbackDecision {
        signals: vec![SignalKind::Unrecognised {
            raw_status: what.to_string(),
        }],
        label: what.replace(' ', "_"),
    };
    let Some(item) = signed.first() else {
        return Ok(unrecognised("no transaction"));
    };
    if item.withdrawal_id.as_ref().is_some_and(|v| !v.is_null()) {
        return Ok(unrecognised("withdrawal"));
    }
    if let Some(status @ ("fail" | "failed")) = unsigned.status.as_deref() {
        return Ok(held(format!("status:{status}")));
    }
    match unsigned.direction.as_deref() {
        Some("ingoing") | None => {}
        Some(other) => {
            let other: String = other.chars().take(STATUS_TEXT_MAX).collect();
            return Ok(held(format!("direction:{other}")));
        }
    }
    Ok(PostbackDecision {
        signals: vec![SignalKind::Settled {
            amount: Some(signed_amount(item)?),
        }],
        label: "credited".into(),
    })
}

/// Most extra items a needs-review reason names one by one; the rest are counted.
pub const EXTRA_ITEMS_LISTED_MAX: usize = 8;
/// Longest text copied from one field of an extra item into the reason.
const ITEM_FIELD_TEXT_MAX: usize = 64;

/// What an operator needs to find the extra items: each one's signed transaction id, order
/// reference, amount and currency, and whether it is a withdrawal.
fn extra_items_reason(extra: &[PostbackItem]) -> String {
    let field = |v: Option<String>| -> String {
        v.map(|t| t.chars().take(ITEM_FIELD_TEXT_MAX).collect())
            .unwrap_or_else(|| "-".into())
    };
    let listed: Vec<String> = extra
        .iter()
        .take(EXTRA_ITEMS_LISTED_MAX)
        .map(|i| {
            let withdrawal = i.withdrawal_id.as_ref().is_some_and(|v| !v.is_null());
            format!(
                "transaction_id {} (plugin_custom_order_id {}, amount {} {}{})",
                field(i.transaction_id.as_ref().and_then(crate::flow::json_text)),
                field(i.plugin_custom_order_id.clone()),
                field(i.amount.as_ref().and_then(crate::flow::json_text)),
                field(i.currency_code.clone()),
                if withdrawal { ", withdrawal" } else { "" },
            )
        })
        .collect();
    let more = extra.len().saturating_sub(EXTRA_ITEMS_LISTED_MAX);
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    format!(
        "paykassma postback: {} more signed transaction(s) after the first, not applied: {}{tail}",
        extra.len(),
        listed.join("; ")
    )
}

/// The part of the dedup label that tells the extra items apart: their count and a digest
/// of their signed fields (the same for a resend, another for other items).
fn extra_items_label(extra: &[PostbackItem]) -> String {
    let text = |v: &Option<Value>| v.as_ref().and_then(crate::flow::json_text);
    let rendered: Vec<String> = extra
        .iter()
        .map(|i| {
            [
                text(&i.transaction_id),
                i.plugin_custom_order_id.clone(),
                text(&i.amount),
                i.currency_code.clone(),
                text(&i.withdrawal_id),
            ]
            .map(Option::unwrap_or_default)
            .join("\u{1f}")
        })
        .collect();
    let digest = crate::crypto::sha256(rendered.join("\u{1e}").as_bytes());
    format!(
        "+{}:{}",
        extra.len(),
        &hex::encode(digest)[..EXTRA_DIGEST_HEX_LEN]
    )
}

/// Hex characters of the extra items' digest kept in the label (64 bits).
const EXTRA_DIGEST_HEX_LEN: usize = 16;

/// Longest unsigned status text copied into a signal.
const STATUS_TEXT_MAX: usize = 32;

/// The credited amount, from the signed item only (amount and currency both signed).
fn signed_amount(item: &PostbackItem) -> Result<paystate_events::Money, String> {
    let v = item
        .amount
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or("no signed amount in additional_data")?;
    let code = item
        .currency_code
        .as_deref()
        .ok_or("no signed currency_code in additional_data")?;
    let currency = Currency::parse(code).map_err(|e| e.to_string())?;
    json_decimal_money(v, currency)
}

#[cfg(test)]
mod tests;
