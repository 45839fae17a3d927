//! Flitt wire types, signed request builders and status translation. Pure: no IO.
//!
//! Every request is `{"request": {...params, "signature"}}` signed with protocol 1.0.
//! Responses are `{"response": {...}}`; those that carry a `signature` are verified.

use super::signature;
use crate::config::{FlittAccount, ProviderConfig};
use crate::flow::{json_minor, minor_money};
use crate::http::{HttpRequest, HttpResponse, Method, Replay};
use crate::keys::{self, KeyRules};
use paystate_events::{
    CaptureMode, CustomerAction, CustomerActionKind, Money, Operation, OrderState,
    PaymentInitiation, SignalKind,
};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const CHECKOUT_URL_PATH: &str = "/api/checkout/url";
pub const CHECKOUT_TOKEN_PATH: &str = "/api/checkout/token";
pub const STATUS_PATH: &str = "/api/status/order_id";
pub const CAPTURE_PATH: &str = "/api/capture/order_id";
pub const REVERSE_PATH: &str = "/api/reverse/order_id";
/// Pay by Payme needs both `payment_systems` and `payment_method` set to this.
pub const PAYBYPAYME: &str = "paybypayme";
/// Flitt's error code for a bad signature.
pub const ERROR_BAD_SIGNATURE: &str = "1007";
const REVERSE_RULES: KeyRules = KeyRules {
    len_max: 100,
    sep: '-',
};

/// Which checkout call starts the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkout {
    /// Hosted page: redirect the customer to `checkout_url`.
    Url,
    /// Embedded checkout: the front end uses the token.
    Token,
}

/// `initiation.params` key that chooses the checkout: `url` (default) or `token`.
pub const FLOW_PARAM: &str = "flow";
/// Earlier name of [`FLOW_PARAM`], still read.
pub const FLOW_PARAM_LEGACY: &str = "flitt_checkout";

/// The checkout the initiation asks for; an unknown value is refused, not guessed.
pub fn checkout_kind(initiation: &PaymentInitiation) -> Result<Checkout, String> {
    let params = &initiation.params;
    let chosen = params
        .get(FLOW_PARAM)
        .or_else(|| params.get(FLOW_PARAM_LEGACY));
    match chosen.map(String::as_str) {
        None | Some("url") => Ok(Checkout::Url),
        Some("token") => Ok(Checkout::Token),
        Some(other) => Err(format!(
            "{FLOW_PARAM} must be \"url\" or \"token\", not {other:?}"
        )),
    }
}

/// `reverse_id` for our refund id (or `cancel` for the full reversal that voids a preauth).
pub fn reverse_id(order: &OrderState, op: &str, id: &str) -> String {
    keys::derive_key(&order.order_id, op, id, REVERSE_RULES)
}

/// Signs `params` and wraps them as Flitt expects.
pub fn signed_request(
    url: String,
    password: &str,
    mut params: Map<String, Value>,
    replay: Replay,
) -> HttpRequest {
    let sig = signature::sign(password, &params);
    params.insert(signature::SIGNATURE_FIELD.to_string(), Value::String(sig));
    HttpRequest::new(Method::Post, url, replay).json(json!({ "request": params }))
}

/// Checkout URL or token request. Our order id is Flitt's `order_id` (unique per merchant,
/// so a replay cannot create a second order). `preauth: "Y"` in manual capture mode.
pub fn checkout_request(
    cfg: &ProviderConfig<FlittAccount>,
    account: &FlittAccount,
    order: &OrderState,
    initiation: &PaymentInitiation,
    kind: Checkout,
) -> HttpRequest {
    let mut p = Map::new();
    p.insert("order_id".into(), json!(order.order_id.as_str()));
    p.insert("merchant_id".into(), json!(account.merchant_id));
    p.insert("order_desc".into(), json!(order_desc(order, initiation)));
    p.insert("amount".into(), json!(order.amount.minor_units.get()));
    p.insert("currency".into(), json!(order.currency().code()));
    p.insert("payment_systems".into(), json!(PAYBYPAYME));
    p.insert("payment_method".into(), json!(PAYBYPAYME));
    p.insert(
        "server_callback_url".into(),
        json!(cfg.callback_url.clone().unwrap_or_default()),
    );
    p.insert(
        "response_url".into(),
        json!(initiation.return_url.clone().unwrap_or_default()),
    );
    if order.capture_mode == CaptureMode::Manual {
        p.insert("preauth".into(), json!("Y"));
    }
    let path = match kind {
        Checkout::Url => CHECKOUT_URL_PATH,
        Checkout::Token => CHECKOUT_TOKEN_PATH,
    };
    signed_request(cfg.url(path), account.password.expose(), p, Replay::Safe)
}

fn order_desc(order: &OrderState, initiation: &PaymentInitiation) -> String {
    initiation
        .params
        .get("order_desc")
        .cloned()
        .unwrap_or_else(|| format!("Order {}", order.merchant_reference))
}

fn base_params(account: &FlittAccount, order: &OrderState) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("order_id".into(), json!(order.order_id.as_str()));
    p.insert("merchant_id".into(), json!(account.merchant_id));
    p
}

pub fn status_request(
    cfg: &ProviderConfig<FlittAccount>,
    account: &FlittAccount,
    order: &OrderState,
) -> HttpRequest {
    signed_request(
        cfg.url(STATUS_PATH),
        account.password.expose(),
        base_params(account, order),
        Replay::Safe,
    )
}

/// Capture (one capture per order, so a replay cannot capture twice).
pub fn capture_request(
    cfg: &ProviderConfig<FlittAccount>,
    account: &FlittAccount,
    order: &OrderState,
    amount: Money,
) -> HttpRequest {
    let mut p = base_params(account, order);
    p.insert("amount".into(), json!(amount.minor_units.get()));
    p.insert("currency".into(), json!(amount.currency.code()));
    signed_request(
        cfg.url(CAPTURE_PATH),
        account.password.expose(),
        p,
        Replay::Safe,
    )
}

/// Reverse (refund, or void before capture); `reverse_id` is the idempotency key.
pub fn reverse_request(
    cfg: &ProviderConfig<FlittAccount>,
    account: &FlittAccount,
    order: &OrderState,
    amount: Money,
    reverse_id: &str,
) -> HttpRequest {
    let mut p = base_params(account, order);
    p.insert("amount".into(), json!(amount.minor_units.get()));
    p.insert("currency".into(), json!(amount.currency.code()));
    p.insert("reverse_id".into(), json!(reverse_id));
    signed_request(
        cfg.url(REVERSE_PATH),
        account.password.expose(),
        p,
        Replay::Safe,
    )
}

/// Why a Flitt response could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// `response_status: failure` with Flitt's code and message.
    Failure { code: String, message: String },
    /// Not `{"response": {...}}`, or a signature that does not verify.
    Unreadable(String),
}

/// The `response` object of a 2xx (or error) answer, failure mapped, signature verified
/// when present.
pub fn response_params(
    r: &HttpResponse,
    password: &str,
) -> Result<Map<String, Value>, ResponseError> {
    let body: Value = r
        .json()
        .map_err(|e| ResponseError::Unreadable(e.to_string()))?;
    let Some(Value::Object(params)) = body.get("response").cloned() else {
        return Err(ResponseError::Unreadable("no response object".into()));
    };
    if text(&params, "response_status").as_deref() == Some("failure") {
        return Err(ResponseError::Failure {
            code: text(&params, "error_code").unwrap_or_else(|| "failure".into()),
            message: text(&params, "error_message").unwrap_or_default(),
        });
    }
    if params.contains_key(signature::SIGNATURE_FIELD) && !signature::verify(password, &params) {
        return Err(ResponseError::Unreadable(
            "response signature does not verify".into(),
        ));
    }
    Ok(params)
}

/// A parameter as text (numbers too); `None` when absent, null or empty.
pub fn text(p: &Map<String, Value>, key: &str) -> Option<String> {
    text_value(p.get(key)?)
}

/// A value as text (numbers too); `None` when null, empty or not a string or number.
fn text_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The customer action of a checkout response.
pub fn checkout_action(p: &Map<String, Value>, kind: Checkout) -> Result<CustomerAction, String> {
    let mut details = BTreeMap::new();
    let url = match kind {
        Checkout::Url => Some(text(p, "checkout_url").ok_or("no checkout_url")?),
        Checkout::Token => {
            details.insert("token".to_string(), text(p, "token").ok_or("no token")?);
            None
        }
    };
    Ok(CustomerAction {
        kind: CustomerActionKind::Redirect,
        url,
        details,
    })
}

/// Flitt order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlittStatus {
    Created,
    Processing,
    Approved,
    Declined,
    Expired,
    Reversed,
}

impl FlittStatus {
    pub fn parse(s: &str) -> Option<FlittStatus> {
        Some(match s {
            "created" => FlittStatus::Created,
            "processing" => FlittStatus::Processing,
            "approved" => FlittStatus::Approved,
            "declined" => FlittStatus::Declined,
            "expired" => FlittStatus::Expired,
            "reversed" => FlittStatus::Reversed,
            _ => return None,
        })
    }
}

/// What an order report (callback or status response) means. `known` is the order as
/// paystate knows it (status queries have it; callbacks do not).
///
/// `approved` is "authorized" for a preauth order not yet captured, else "captured"; which
/// one is [`capture_state`]'s call. A partial reversal keeps `approved` with
/// `reversal_amount` > 0, the total reversed so far: with `known`, the part paystate has not
/// recorded yet is attributed by [`unrecorded_reversal`] (to a refund only when the answer
/// or a single candidate says which); without it, nothing is said about refunds, because
/// each reversal is reported by the reverse call with our refund id and a total cannot be
/// told apart from a new refund. `reversed` is "cancelled" before capture and "returned"
/// after.
pub fn order_signals(
    p: &Map<String, Value>,
    known: Option<&OrderState>,
) -> Result<Vec<SignalKind>, String> {
    order_signals_for(p, known, None)
}

/// [`order_signals`] for a status query asked right after our own reverse call for
/// `attempted_refund` (our refund id) whose outcome is unknown: that refund is the first
/// candidate for a reversal the order does not show yet.
pub fn order_signals_for(
    p: &Map<String, Value>,
    known: Option<&OrderState>,
    attempted_refund: Option<&str>,
) -> Result<Vec<SignalKind>, String> {
    let raw = text(p, "order_status").ok_or("no order_status")?;
    let Some(status) = FlittStatus::parse(&raw) else {
        return Ok(vec![SignalKind::Unrecognised { raw_status: raw }]);
    };
    let p = &with_additional_info(p);
    let held = || capture_state(p, known).map(|c| c == CaptureState::Held);
    Ok(match status {
        FlittStatus::Created | FlittStatus::Processing => {
            vec![SignalKind::Accepted { action: None }]
        }
        FlittStatus::Approved if held()? => vec![SignalKind::Authorized {
            amount: amount_of(p, "amount")?,
        }],
        FlittStatus::Approved => approved_captured(p, known, attempted_refund)?,
        FlittStatus::Declined => vec![SignalKind::Failed {
            operation: Operation::Payment,
            code: text(p, "response_code").unwrap_or_else(|| "declined".into()),
            message: text(p, "response_description").unwrap_or_else(|| "declined".into()),
            refund_id: None,
        }],
        FlittStatus::Expired => vec![SignalKind::Cancelled],
        FlittStatus::Reversed if held()? => vec![SignalKind::Cancelled],
        FlittStatus::Reversed => vec![SignalKind::Refunded {
            refund_id: None,
            amount: None,
        }],
    })
}

/// Whether an approved order's funds are only held (a preauth not captured yet) or taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureState {
    Held,
    Captured,
}

/// Held or captured, on the report's own (signed) evidence first, in this order:
///
/// 1. `capture_status`: `captured` is captured; `hold` or any other value is a preauth not
///    captured yet (Flitt sends it empty for orders without preauth).
/// 2. A non-zero `capture_amount`: captured.
/// 3. `preauth`: `Y` is held; `N` is a one-stage payment, so approved means charged (Flitt
///    charges at once where preauth is not supported, whatever was asked).
/// 4. Nothing said: the order's own capture mode. Flitt's documented status answer carries
///    none of the above at its top level (only in `additional_info`, see
///    [`with_additional_info`], and there `null` until a capture), and paystate creates a
///    manual-capture order with `preauth: Y`: reading its approval as captured would mean
///    paystate never captures and the hold expires. So a manual-capture order paystate has
///    not recorded a capture for is held; any other known order is captured. A callback (no
///    `known`) is only evidence (the status answer is applied), and reads as captured.
pub fn capture_state(
    p: &Map<String, Value>,
    known: Option<&OrderState>,
) -> Result<CaptureState, String> {
    let p = &with_additional_info(p);
    match text(p, "capture_status").as_deref() {
        Some("captured") => return Ok(CaptureState::Captured),
        Some(_) => return Ok(CaptureState::Held),
        None => {}
    }
    if amount_of(p, "capture_amount")?.is_some() {
        return Ok(CaptureState::Captured);
    }
    match text(p, "preauth").as_deref() {
        Some("Y") => return Ok(CaptureState::Held),
        Some("N") => return Ok(CaptureState::Captured),
        _ => {}
    }
    let held = known.is_some_and(|o| o.capture_mode == CaptureMode::Manual && o.captured.0 == 0);
    Ok(if held {
        CaptureState::Held
    } else {
        CaptureState::Captured
    })
}

/// The parameter Flitt's status answer nests capture facts in: a JSON object, sent as a
/// string (`"{\"capture_status\": null, \"capture_amount\": null, ...}"`). Its text is a
/// signed value like any other.
pub const ADDITIONAL_INFO: &str = "additional_info";
/// The facts read from [`ADDITIONAL_INFO`] when the top level does not say them: capture
/// status and amount, and the reversal facts [`unrecorded_reversal`] prefers to match by
/// (Flitt's reverse answer echoes `reverse_id`; its documented status answer carries none at
/// the top level, so it is read wherever it appears).
const ADDITIONAL_INFO_FIELDS: [&str; 4] = [
    "capture_status",
    "capture_amount",
    "reverse_id",
    "transaction_id",
];

/// `p` with [`ADDITIONAL_INFO_FIELDS`] taken from `additional_info` where the top level has
/// none (absent, null or empty). An `additional_info` that is not a JSON object adds nothing:
/// the report is then read on its other fields and the order's capture mode.
fn with_additional_info(p: &Map<String, Value>) -> Cow<'_, Map<String, Value>> {
    let info = match p.get(ADDITIONAL_INFO) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return Cow::Borrowed(p),
        },
        Some(Value::Object(m)) => m.clone(),
        _ => return Cow::Borrowed(p),
    };
    let mut merged = Cow::Borrowed(p);
    for key in ADDITIONAL_INFO_FIELDS {
        let nested = info.get(key).filter(|v| text_value(v).is_some());
        if let (None, Some(v)) = (text(p, key), nested) {
            merged.to_mut().insert(key.to_string(), v.clone());
        }
    }
    merged
}

fn approved_captured(
    p: &Map<String, Value>,
    known: Option<&OrderState>,
    attempted_refund: Option<&str>,
) -> Result<Vec<SignalKind>, String> {
    let captured = match amount_of(p, "capture_amount")? {
        Some(m) => Some(m),
        None => amount_of(p, "amount")?,
    };
    let mut out = vec![SignalKind::Captured { amount: captured }];
    if let (Some(total), Some(order)) = (amount_of(p, "reversal_amount")?, known) {
        out.extend(unrecorded_reversal(p, total, order, attempted_refund)?);
    }
    Ok(out)
}

/// How many candidate refunds an unattributed reversal's record names (the rest are counted).
const REVERSAL_CANDIDATES_LISTED_MAX: usize = 8;

/// The part of a reversal total that `order` does not show as refunded yet, attributed only
/// where nothing else could explain it:
///
/// 1. A pending refund the answer names (its echoed `reverse_id` is the one we derive for
///    it), then `attempted_refund` (our reverse call just now, outcome unknown), each
///    credited with its own amount when that fits in what is new.
/// 2. What is left, when exactly one pending refund could be part of it and it is exactly
///    that amount: that refund. When no pending refund could be part of it: a refund we did
///    not ask for (`refund_id: None`; no pending refund matches its amount, so the core books
///    it under the evidence).
/// 3. Otherwise (two pending refunds of that amount, or one smaller than it): which refund
///    Flitt made cannot be told. Crediting one would complete a refund Flitt never made and
///    the worker would then skip it; `refund_id: None` would be booked as a refund we did not
///    ask for and counted again when the worker reports it. So the answer is recorded as
///    `Unrecognised` (amount, candidates, Flitt's references) and changes nothing: the
///    worker's own report (the reverse call's answer, with our refund id) decides, or a
///    person when the reconciler's final deadline flags the order.
fn unrecorded_reversal(
    p: &Map<String, Value>,
    total: Money,
    order: &OrderState,
    attempted_refund: Option<&str>,
) -> Result<Vec<SignalKind>, String> {
    let mut rest = total.minor_units.get().saturating_sub(order.refunded.0);
    let mut pending = order.refunds_pending.clone();
    let currency = total.currency.code();
    let named = text(p, "reverse_id").and_then(|r| {
        pending
            .keys()
            .find(|id| reverse_id(order, "refund", id) == r)
            .cloned()
    });
    let mut out = Vec::new();
    for id in [named.as_deref(), attempted_refund].into_iter().flatten() {
        let Some(units) = pending
            .get(id)
            .map(|a| a.0)
            .filter(|a| *a > 0 && *a <= rest)
        else {
            continue;
        };
        pending.remove(id);
        rest -= units;
        out.push(SignalKind::Refunded {
            refund_id: Some(id.to_string()),
            amount: Some(minor_money(units, currency)?),
        });
    }
    if rest == 0 {
        return Ok(out);
    }
    let candidates: Vec<(&String, u64)> = pending
        .iter()
        .map(|(id, a)| (id, a.0))
        .filter(|(_, a)| *a <= rest)
        .collect();
    out.push(match candidates.as_slice() {
        [] => SignalKind::Refunded {
            refund_id: None,
            amount: Some(minor_money(rest, currency)?),
        },
        [(id, units)] if *units == rest => SignalKind::Refunded {
            refund_id: Some((*id).clone()),
            amount: Some(minor_money(rest, currency)?),
        },
        _ => SignalKind::Unrecognised {
            raw_status: unattributed_reversal(p, total, rest, &candidates),
        },
    });
    Ok(out)
}

/// The record of a reversal no single refund explains: what Flitt says and which of ours
/// could be part of it (at most [`REVERSAL_CANDIDATES_LISTED_MAX`] named).
fn unattributed_reversal(
    p: &Map<String, Value>,
    total: Money,
    rest: u64,
    candidates: &[(&String, u64)],
) -> String {
    let listed: Vec<String> = candidates
        .iter()
        .take(REVERSAL_CANDIDATES_LISTED_MAX)
        .map(|(id, units)| format!("{id}={units}"))
        .collect();
    let more = candidates
        .len()
        .saturating_sub(REVERSAL_CANDIDATES_LISTED_MAX);
    let mut out = format!(
        "reversal_amount:{} {}: {rest} not attributable to one refund (pending refunds that \
         could be part of it: {}{})",
        total.minor_units.get(),
        total.currency.code(),
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    );
    for key in ["reverse_id", "transaction_id", "payment_id"] {
        if let Some(v) = text(p, key) {
            let v: String = v.chars().take(REFERENCE_CHARS_MAX).collect();
            out.push_str(&format!("; {key}:{v}"));
        }
    }
    out
}

/// How much of one of Flitt's references a record keeps (its `reverse_id` is at most 50).
const REFERENCE_CHARS_MAX: usize = 64;

/// Parameters a callback must carry as keys (values may be empty where noted): what is
/// decided on (or located by) is never defaulted when its key is missing. Protocol 1.0 signs
/// values, not keys, so a renamed key still verifies; a callback missing one is malformed.
pub const CALLBACK_REQUIRED: [&str; 4] = ["order_id", "order_status", "amount", "currency"];
/// Keys a callback must carry, possibly empty (`capture_status` is empty without preauth).
pub const CALLBACK_REQUIRED_MAY_BE_EMPTY: [&str; 2] = ["preauth", "capture_status"];

/// `Err` naming the first key a callback lacks (see [`CALLBACK_REQUIRED`]).
pub fn callback_complete(p: &Map<String, Value>) -> Result<(), String> {
    if let Some(k) = CALLBACK_REQUIRED.iter().find(|k| text(p, k).is_none()) {
        return Err(format!("no {k}"));
    }
    match CALLBACK_REQUIRED_MAY_BE_EMPTY
        .iter()
        .find(|k| p.get(**k).is_none_or(Value::is_null))
    {
        Some(k) => Err(format!("no {k}")),
        None => Ok(()),
    }
}

/// What tells one callback apart from another of the same order: the transaction and the
/// state it reports (a preauth approval, its capture and each reversal all say `approved`;
/// they differ in `tran_type`, `capture_status` and the amounts). Resends are identical.
pub fn callback_identity(p: &Map<String, Value>) -> String {
    CALLBACK_IDENTITY_FIELDS
        .map(|k| text(p, k).unwrap_or_default())
        .join(":")
}

/// The parameters [`callback_identity`] is made of.
pub const CALLBACK_IDENTITY_FIELDS: [&str; 6] = [
    "payment_id",
    "order_status",
    "tran_type",
    "capture_status",
    "capture_amount",
    "reversal_amount",
];

/// A minor-unit amount field in the report's `currency`; zero or absent is `None`.
fn amount_of(p: &Map<String, Value>, key: &str) -> Result<Option<Money>, String> {
    let Some(v) = p
        .get(key)
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
    else {
        return Ok(None);
    };
    let minor = json_minor(v).ok_or_else(|| format!("{key} is not an amount"))?;
    if minor == 0 {
        return Ok(None);
    }
    let currency = text(p, "currency").ok_or("no currency")?;
    minor_money(minor, &currency).map(Some)
}

/// The capture call's answer: `captured` is done; `hold` (or anything else) is not final.
pub fn capture_signals(p: &Map<String, Value>, amount: Money) -> Vec<SignalKind> {
    match text(p, "capture_status").as_deref() {
        Some("captured") => vec![SignalKind::Captured {
            amount: Some(amount),
        }],
        Some("hold") | None => vec![],
        Some(other) => vec![SignalKind::Unrecognised {
            raw_status: format!("capture_status:{other}"),
        }],
    }
}

/// The reverse call's answer for a refund (`cancel = false`) or a void (`cancel = true`).
pub fn reverse_signals(
    p: &Map<String, Value>,
    amount: Money,
    refund_id: Option<&str>,
) -> Vec<SignalKind> {
    let status = text(p, "reverse_status").unwrap_or_default();
    let operation = if refund_id.is_some() {
        Operation::Refund
    } else {
        Operation::Cancel
    };
    match status.as_str() {
        "approved" if refund_id.is_none() => vec![SignalKind::Cancelled],
        "approved" => vec![SignalKind::Refunded {
            refund_id: refund_id.map(str::to_string),
            amount: Some(amount),
        }],
        "declined" => vec![SignalKind::Failed {
            operation,
            code: text(p, "response_code").unwrap_or_else(|| "declined".into()),
            message: text(p, "response_description").unwrap_or_else(|| "reverse declined".into()),
            refund_id: refund_id.map(str::to_string),
        }],
        "created" | "processing" => vec![],
        other => vec![SignalKind::Unrecognised {
            raw_status: format!("reverse_status:{other}"),
        }],
    }
}

#[cfg(test)]
mod tests;
