//! Plural wire types, request builders and response/webhook translation. Pure: no IO.

use crate::config::{PluralAccount, ProviderConfig};
use crate::flow::minor_money;
use crate::http::{HttpRequest, HttpResponse, Method, Replay, BODY_EXCERPT_CHARS_MAX};
use crate::keys::{self, KeyRules};
use crate::secret::Secret;
use paystate_events::{
    CaptureMode, CustomerAction, CustomerActionKind, Money, Operation, OrderState,
    PaymentInitiation, SignalKind,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

pub const TOKEN_PATH: &str = "/api/auth/v1/token";
pub const ORDERS_PATH: &str = "/api/pay/v1/orders";
pub const REFUNDS_PATH: &str = "/api/pay/v1/refunds";
/// Assumed limit of Plural's merchant references (not stated in the seed).
pub const REFERENCE_LEN_MAX: usize = 50;
const REF_RULES: KeyRules = KeyRules {
    len_max: REFERENCE_LEN_MAX,
    sep: '-',
};
/// Order status before any payment: create payment starts from here.
pub const STATUS_CREATED: &str = "CREATED";
/// Order status that capture and cancel start from.
pub const STATUS_AUTHORIZED: &str = "AUTHORIZED";
/// Payment method when the initiation names none.
pub const PAYMENT_METHOD_DEFAULT: &str = "CARD";

/// `merchant_order_reference` of the payment order: our order id (hashed if too long).
pub fn order_reference(order: &OrderState) -> String {
    keys::order_reference(&order.order_id, REFERENCE_LEN_MAX)
}
/// `merchant_capture_reference` for our capture id.
pub fn capture_reference(order: &OrderState, capture_id: &str) -> String {
    keys::derive_key(&order.order_id, "cap", capture_id, REF_RULES)
}
/// `merchant_order_reference` of a refund, for our refund id.
pub fn refund_reference(order: &OrderState, refund_id: &str) -> String {
    keys::derive_key(&order.order_id, "ref", refund_id, REF_RULES)
}

/// `{value, currency}` with value in minor units (paise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountWire {
    pub value: u64,
    pub currency: String,
}

impl From<Money> for AmountWire {
    fn from(m: Money) -> AmountWire {
        AmountWire {
            value: m.minor_units.get(),
            currency: m.currency.code().to_string(),
        }
    }
}

impl AmountWire {
    pub fn money(&self) -> Result<Money, String> {
        minor_money(self.value, &self.currency)
    }
}

pub fn token_request(cfg: &ProviderConfig<PluralAccount>, account: &PluralAccount) -> HttpRequest {
    let body = json!({"client_id": account.client_id, "client_secret": account.client_secret.expose(),
        "grant_type": "client_credentials"});
    HttpRequest::new(Method::Post, cfg.url(TOKEN_PATH), Replay::Safe).json(body)
}

/// A token answer.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub expires_in: Option<i64>,
    /// The SDK's model also knows an absolute expiry (RFC 3339).
    pub expires_at: Option<String>,
}

/// Reads a token answer field by field. The error names the field that failed and quotes
/// nothing: the body holds a live access token, and a serde message would quote values
/// (`invalid type: string "…"`).
pub fn token_response(r: &HttpResponse) -> Result<TokenResponse, &'static str> {
    let body: serde_json::Value = r.json().map_err(|_| "the body is not JSON")?;
    let body = body.as_object().ok_or("the body is not a JSON object")?;
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let access_token = match field("access_token") {
        Some(serde_json::Value::String(t)) if !t.is_empty() => Secret::new(t.clone()),
        Some(_) => return Err("field access_token is not a non-empty string"),
        None => return Err("field access_token is missing"),
    };
    let expires_in = match field("expires_in") {
        Some(v) => Some(
            v.as_i64()
                .ok_or("field expires_in is not a whole number of seconds")?,
        ),
        None => None,
    };
    let expires_at = match field("expires_at") {
        Some(serde_json::Value::String(at)) => Some(at.clone()),
        Some(_) => return Err("field expires_at is not a string"),
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        expires_in,
        expires_at,
    })
}

fn authed(method: Method, url: String, token: &Secret, replay: Replay) -> HttpRequest {
    HttpRequest::new(method, url, replay).secret_header(
        "Authorization",
        Secret::new(format!("Bearer {}", token.expose())),
    )
}

/// Create order; `pre_auth` for manual capture. Replay-safe: the reference de-duplicates.
pub fn create_order_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    order: &OrderState,
    initiation: &PaymentInitiation,
) -> HttpRequest {
    let mut body = json!({
        "merchant_order_reference": order_reference(order),
        "order_amount": AmountWire::from(order.amount),
        "pre_auth": order.capture_mode == CaptureMode::Manual,
    });
    if let Some(url) = &initiation.return_url {
        body["callback_url"] = json!(url);
    }
    if let Some(customer) = &initiation.customer_id {
        body["purchase_details"] = json!({"customer": {"customer_id": customer}});
    }
    authed(Method::Post, cfg.url(ORDERS_PATH), token, Replay::Safe).json(body)
}

/// What the initiation says about the payment: `params.payment_method` (default CARD) and
/// `params.payment_option` (JSON text, passed through as is: card data never passes through
/// paystate, so PCI-scoped fields come from the caller's own vault or tokenizer).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentSpec {
    pub method: String,
    pub option: Option<serde_json::Value>,
}

pub fn payment_spec(initiation: &PaymentInitiation) -> Result<PaymentSpec, String> {
    let method = initiation
        .params
        .get("payment_method")
        .map(String::as_str)
        .unwrap_or(PAYMENT_METHOD_DEFAULT);
    let option = match initiation.params.get("payment_option") {
        Some(text) => Some(
            serde_json::from_str(text).map_err(|e| format!("payment_option is not JSON: {e}"))?,
        ),
        None => None,
    };
    Ok(PaymentSpec {
        method: method.to_string(),
        option,
    })
}

/// Create payment on a Plural order. Not replay-safe: Plural does not document
/// de-duplication of payments (we still send a derived `merchant_payment_reference`).
pub fn create_payment_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    plural_order_id: &str,
    order: &OrderState,
    spec: &PaymentSpec,
) -> HttpRequest {
    let mut payment = json!({
        "merchant_payment_reference": keys::derive_key(&order.order_id, "pay", "1", REF_RULES),
        "payment_method": spec.method,
        "payment_amount": AmountWire::from(order.amount),
    });
    if let Some(option) = &spec.option {
        payment["payment_option"] = option.clone();
    }
    let url = cfg.url(&format!("{ORDERS_PATH}/{plural_order_id}/payments"));
    authed(Method::Post, url, token, Replay::Unsafe).json(json!({"payments": [payment]}))
}

pub fn get_order_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    plural_order_id: &str,
) -> HttpRequest {
    authed(
        Method::Get,
        cfg.url(&format!("{ORDERS_PATH}/{plural_order_id}")),
        token,
        Replay::Safe,
    )
}

/// Capture (one partial capture; Plural reverses the rest). Replay-safe by reference.
pub fn capture_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    plural_order_id: &str,
    reference: &str,
    amount: Money,
) -> HttpRequest {
    let body = json!({"merchant_capture_reference": reference, "capture_amount": AmountWire::from(amount)});
    authed(
        Method::Put,
        cfg.url(&format!("{ORDERS_PATH}/{plural_order_id}/capture")),
        token,
        Replay::Safe,
    )
    .json(body)
}

/// Cancel (void) an authorized order. Not replay-safe: there is no idempotency key, and a
/// second cancel is refused (the order is no longer AUTHORIZED), so an unanswered cancel is
/// resolved by a status query, not by sending it again.
pub fn cancel_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    plural_order_id: &str,
) -> HttpRequest {
    authed(
        Method::Put,
        cfg.url(&format!("{ORDERS_PATH}/{plural_order_id}/cancel")),
        token,
        Replay::Unsafe,
    )
}

/// Refund; replay-safe by the refund's `merchant_order_reference`.
pub fn refund_request(
    cfg: &ProviderConfig<PluralAccount>,
    token: &Secret,
    plural_order_id: &str,
    reference: &str,
    amount: Money,
) -> HttpRequest {
    let body =
        json!({"merchant_order_reference": reference, "order_amount": AmountWire::from(amount)});
    authed(
        Method::Post,
        cfg.url(&format!("{REFUNDS_PATH}/{plural_order_id}")),
        token,
        Replay::Safe,
    )
    .json(body)
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderEnvelope {
    pub data: OrderData,
}

/// The order object of every order response and webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderData {
    pub order_id: String,
    #[serde(default)]
    pub merchant_order_reference: Option<String>,
    pub status: String,
    #[serde(default)]
    pub challenge_url: Option<String>,
    #[serde(default)]
    pub order_amount: Option<AmountWire>,
    #[serde(default)]
    pub payments: Vec<PaymentData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentData {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub capture_data: Vec<CaptureData>,
    #[serde(default)]
    pub error_detail: Option<ErrorBody>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaptureData {
    #[serde(default)]
    pub merchant_capture_reference: Option<String>,
    pub capture_amount: AmountWire,
}

/// Plural error bodies: `{code, message}` (some endpoints: `error_code`, `error_message`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "error_code")]
    pub code: Option<String>,
    #[serde(default, alias = "error_message")]
    pub message: Option<String>,
}

/// Plural order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluralStatus {
    Created,
    Pending,
    Attempted,
    Authorized,
    Processed,
    Cancelled,
    Failed,
    FullyRefunded,
    PartiallyRefunded,
}

impl PluralStatus {
    pub fn parse(s: &str) -> Option<PluralStatus> {
        Some(match s {
            "CREATED" => PluralStatus::Created,
            "PENDING" => PluralStatus::Pending,
            "ATTEMPTED" => PluralStatus::Attempted,
            "AUTHORIZED" => PluralStatus::Authorized,
            "PROCESSED" => PluralStatus::Processed,
            "CANCELLED" => PluralStatus::Cancelled,
            "FAILED" => PluralStatus::Failed,
            "FULLY_REFUNDED" => PluralStatus::FullyRefunded,
            "PARTIALLY_REFUNDED" => PluralStatus::PartiallyRefunded,
            _ => return None,
        })
    }
}

/// What an order's status means. Captured amounts come from `capture_data` when present
/// (a partial capture), else "everything authorized".
pub fn order_signals(d: &OrderData) -> Result<Vec<SignalKind>, String> {
    let Some(status) = PluralStatus::parse(&d.status) else {
        return Ok(vec![SignalKind::Unrecognised {
            raw_status: d.status.clone(),
        }]);
    };
    let captured = captured_amount(d)?;
    Ok(match status {
        PluralStatus::Created | PluralStatus::Pending | PluralStatus::Attempted => {
            vec![SignalKind::Accepted {
                action: challenge(d),
            }]
        }
        PluralStatus::Authorized => {
            vec![SignalKind::Authorized {
                amount: d.order_amount.as_ref().map(AmountWire::money).transpose()?,
            }]
        }
        PluralStatus::Processed => vec![SignalKind::Captured { amount: captured }],
        PluralStatus::Cancelled => vec![SignalKind::Cancelled],
        PluralStatus::Failed => {
            let (code, message) = failure(d);
            vec![SignalKind::Failed {
                operation: Operation::Payment,
                code,
                message,
                refund_id: None,
            }]
        }
        PluralStatus::FullyRefunded => {
            let mut out: Vec<SignalKind> = captured
                .map(|a| SignalKind::Captured { amount: Some(a) })
                .into_iter()
                .collect();
            out.push(SignalKind::Refunded {
                refund_id: None,
                amount: None,
            });
            out
        }
        // The refunded part is reported by the refund call itself (with our refund id).
        PluralStatus::PartiallyRefunded => vec![SignalKind::Captured { amount: captured }],
    })
}

/// A refund order's status (the refund call's response).
pub fn refund_signals(d: &OrderData, refund_id: &str, amount: Money) -> Vec<SignalKind> {
    let Some(status) = PluralStatus::parse(&d.status) else {
        return vec![SignalKind::Unrecognised {
            raw_status: d.status.clone(),
        }];
    };
    match status {
        PluralStatus::Processed | PluralStatus::FullyRefunded | PluralStatus::PartiallyRefunded => {
            vec![SignalKind::Refunded {
                refund_id: Some(refund_id.to_string()),
                amount: Some(amount),
            }]
        }
        PluralStatus::Failed | PluralStatus::Cancelled => {
            let (code, message) = failure(d);
            vec![SignalKind::Failed {
                operation: Operation::Refund,
                code,
                message,
                refund_id: Some(refund_id.to_string()),
            }]
        }
        // Still processing: the order stays with a pending refund until a status query.
        PluralStatus::Created
        | PluralStatus::Pending
        | PluralStatus::Attempted
        | PluralStatus::Authorized => vec![],
    }
}

fn challenge(d: &OrderData) -> Option<CustomerAction> {
    d.challenge_url.as_ref().map(|url| CustomerAction {
        kind: CustomerActionKind::Challenge,
        url: Some(url.clone()),
        details: BTreeMap::new(),
    })
}

fn captured_amount(d: &OrderData) -> Result<Option<Money>, String> {
    let captures: Vec<&CaptureData> = d
        .payments
        .iter()
        .flat_map(|p| p.capture_data.iter())
        .collect();
    let Some(first) = captures.first() else {
        return Ok(None);
    };
    let first = first.capture_amount.money()?;
    let total = captures.iter().try_fold(0u64, |acc, c| {
        let m = c.capture_amount.money()?;
        if m.currency != first.currency {
            return Err("captures in several currencies".to_string());
        }
        acc.checked_add(m.minor_units.get())
            .ok_or_else(|| "capture total overflows".to_string())
    })?;
    minor_money(total, first.currency.code()).map(Some)
}

fn failure(d: &OrderData) -> (String, String) {
    let detail = d
        .payments
        .iter()
        .find_map(|p| p.error_detail.clone())
        .unwrap_or_default();
    (
        detail.code.unwrap_or_else(|| d.status.clone()),
        detail
            .message
            .unwrap_or_else(|| "payment failed".to_string()),
    )
}

/// Code and message of an error response, each bounded like a body excerpt. Plural's
/// messages may quote our request (credentials, the bearer token): the cut is made after
/// the facade call's redactor has run, so it never leaves part of a secret behind.
pub fn error_of(r: &HttpResponse) -> (String, String) {
    let body: ErrorBody = r.json().unwrap_or_default();
    (
        body.code
            .map(|c| excerpt(&c))
            .unwrap_or_else(|| format!("http_{}", r.status)),
        body.message
            .map(|m| excerpt(&m))
            .unwrap_or_else(|| r.body_excerpt()),
    )
}

/// Provider text, redacted within the facade call, then cut to [`BODY_EXCERPT_CHARS_MAX`].
fn excerpt(text: &str) -> String {
    crate::redact::in_scope(text)
        .chars()
        .take(BODY_EXCERPT_CHARS_MAX)
        .collect()
}

/// What a verified return URL means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnMeaning {
    /// Applied as it is.
    Conclusive(Vec<SignalKind>),
    /// Signed, but it does not say what happened: an error code next to a status other than
    /// FAILED (the seed's failed return reads `payment_status=AUTHORIZED` with
    /// `error_code=USER_AUTHENTICATION_REQUIRED`), or two different statuses. The signal
    /// records the claim; the order moves only on Plural's answer to a status query.
    Inconclusive(SignalKind),
}

/// A verified return URL: the Plural order id and what the report means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnReport {
    pub order_id: String,
    pub meaning: ReturnMeaning,
}

/// Reads a return URL from its signed message (`k=v` sorted, joined with `&`, not encoded;
/// see [`super::signature::return_url_message`]). The message, not the decoded fields, is
/// what Plural signed: fields can be regrouped without changing it (a key
/// `error_code=E&error_message` hides `error_code` from a lookup by name), so it is split
/// here one way only, at each `&` and the first `=`, and the same signed message always
/// means the same thing. Only `order_id`, the status (`payment_status` or `status`: the seed
/// uses both), `error_code` and `error_message` are read.
pub fn read_return(message: &str) -> Result<ReturnReport, String> {
    let pairs: Vec<(&str, &str)> = message
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    let order_id = match values("order_id").as_slice() {
        [id] if !id.is_empty() => id.to_string(),
        _ => return Err("no single order_id".to_string()),
    };
    let mut statuses = values("payment_status");
    statuses.extend(values("status"));
    statuses.sort_unstable();
    statuses.dedup();
    let error_code = values("error_code").into_iter().find(|c| !c.is_empty());
    let error_message = values("error_message").into_iter().find(|m| !m.is_empty());
    let meaning = match (statuses.as_slice(), error_code) {
        ([], _) => return Err("no status".to_string()),
        ([_, _, ..], _) => ReturnMeaning::Inconclusive(SignalKind::Unrecognised {
            raw_status: format!("several statuses: {}", statuses.join(", ")),
        }),
        ([status], None) => ReturnMeaning::Conclusive(order_signals(&OrderData {
            order_id: order_id.clone(),
            merchant_order_reference: None,
            status: status.to_string(),
            challenge_url: None,
            order_amount: None,
            payments: vec![],
        })?),
        ([status], Some(code)) => match PluralStatus::parse(status) {
            Some(PluralStatus::Failed) => ReturnMeaning::Conclusive(vec![SignalKind::Failed {
                operation: Operation::Payment,
                code: code.to_string(),
                message: error_message.unwrap_or("payment failed").to_string(),
                refund_id: None,
            }]),
            // Never a success: a signed error code makes the status a claim to check.
            _ => ReturnMeaning::Inconclusive(SignalKind::Unrecognised {
                raw_status: format!("{status} with error_code {code}"),
            }),
        },
    };
    Ok(ReturnReport { order_id, meaning })
}

/// A webhook body: `{"event_type": "ORDER_…", "data": {order_id, status, …}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub event_type: String,
    pub data: OrderData,
}

#[cfg(test)]
mod tests;
