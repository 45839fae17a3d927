//! Plural (Pine Labs Online): OAuth token, orders, one card payment with a challenge URL,
//! capture / cancel / refund, and webhooks signed `v1,<base64 HMAC-SHA256>`.
//!
//! Order statuses: CREATED → PENDING (payment, challenge) → AUTHORIZED → PROCESSED, or
//! FAILED, CANCELLED (from AUTHORIZED), PARTIALLY_REFUNDED / FULLY_REFUNDED (from PROCESSED).

mod api;
mod wire;

pub(crate) use api::routes;

use crate::control::{Action, ActionOutcome, ControlError};
use crate::outbox::{Ack, Callback, Outgoing, Policy, Render};
use crate::shared::{lock, Shared};
use crate::{ids, sig};
use paystate_events::Provider;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const P: Provider = Provider::Plural;
/// Tokens kept at once; expired ones are evicted first, then the oldest.
pub const TOKENS_MAX: usize = 1024;
/// Documented webhook retries: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const WEBHOOK_RETRY_DELAYS_S: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
/// Plural expects a 2xx within 5 s.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Plural's order status vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Pending,
    Authorized,
    Processed,
    Cancelled,
    Failed,
    PartiallyRefunded,
    FullyRefunded,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Created => "CREATED",
            Status::Pending => "PENDING",
            Status::Authorized => "AUTHORIZED",
            Status::Processed => "PROCESSED",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
            Status::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Status::FullyRefunded => "FULLY_REFUNDED",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub order_id: String,
    pub reference: String,
    pub status: Status,
    pub amount: u64,
    pub currency: String,
    pub pre_auth: bool,
    pub callback_url: Option<String>,
    /// Echoed as sent (`purchase_details`, `notes`, ...).
    pub echo: serde_json::Map<String, serde_json::Value>,
    pub payment: Option<Payment>,
    pub capture: Option<Capture>,
    pub refunds: Vec<Refund>,
    pub challenge_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Payment {
    pub id: String,
    pub method: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub reference: String,
    pub amount: u64,
    pub at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Refund {
    pub order_id: String,
    pub reference: String,
    pub amount: u64,
    pub at: String,
}

impl Order {
    fn refunded(&self) -> u64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }
    fn captured(&self) -> u64 {
        match (&self.capture, self.pre_auth) {
            (Some(c), _) => c.amount,
            (None, false) if self.status_reached_processed() => self.amount,
            _ => 0,
        }
    }
    fn status_reached_processed(&self) -> bool {
        matches!(
            self.status,
            Status::Processed | Status::PartiallyRefunded | Status::FullyRefunded
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    tokens: HashMap<String, Instant>,
    /// Access tokens issued since start (tests check the adapter's token cache).
    tokens_issued: u64,
    orders: BTreeMap<String, Order>,
    by_reference: HashMap<String, String>,
    /// Refund `merchant_order_reference` → parent order id.
    refunds_by_reference: HashMap<String, String>,
    /// Challenge token → order id.
    challenges: HashMap<String, String>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Invalidates every token issued so far.
pub(crate) fn expire_tokens(shared: &Shared) {
    lock(&shared.plural).tokens.clear();
}

/// How many access tokens were issued since start.
pub(crate) fn tokens_issued(shared: &Shared) -> u64 {
    lock(&shared.plural).tokens_issued
}

/// Applies a customer action: the challenge succeeds (AUTHORIZED, then PROCESSED without
/// pre-auth), fails or is abandoned (FAILED).
pub(crate) fn act(
    shared: &Shared,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    let mut st = lock(&shared.plural);
    let order = st
        .orders
        .get_mut(id)
        .ok_or_else(|| ControlError::not_found(P, id))?;
    let success = match &action {
        Action::Approve | Action::Complete3ds { success: true } => true,
        Action::Decline | Action::Expire | Action::Complete3ds { success: false } => false,
        Action::Challenge if order.status == Status::Pending => {
            return Ok(outcome(shared, order, None));
        }
        Action::Challenge => {
            return Err(ControlError::transition(
                P,
                id,
                order.status.as_str(),
                &action,
            ))
        }
        _ => return Err(ControlError::unsupported(P, &action)),
    };
    if order.status != Status::Pending {
        return Err(ControlError::transition(
            P,
            id,
            order.status.as_str(),
            &action,
        ));
    }
    order.updated_at = now();
    if success {
        order.status = Status::Authorized;
        shared.counters.bump(P, id, |c| c.authorized += 1);
        webhook(shared, order);
        if !order.pre_auth {
            order.status = Status::Processed;
            shared.counters.bump(P, id, |c| c.captured += 1);
            webhook(shared, order);
        }
        return Ok(outcome(shared, order, None));
    }
    order.status = Status::Failed;
    shared.counters.bump(P, id, |c| {
        if action == Action::Expire {
            c.expired += 1
        } else {
            c.declined += 1
        }
    });
    webhook(shared, order);
    let error = ("PAYMENT_DECLINED", "Consumer Authentication Failed");
    Ok(outcome(shared, order, Some(error)))
}

/// The outcome of a customer action, with the signed return URL when the order has one.
fn outcome(shared: &Shared, order: &Order, error: Option<(&str, &str)>) -> ActionOutcome {
    let mut out = ActionOutcome::status(order.status.as_str());
    out.return_url = order
        .callback_url
        .as_deref()
        .and_then(|url| return_url(shared, url, order, error));
    out
}

/// `{callback_url}?error_code=..&error_message=..&order_id=..&status=..&signature=..`.
fn return_url(
    shared: &Shared,
    url: &str,
    order: &Order,
    error: Option<(&str, &str)>,
) -> Option<String> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("order_id", &order.order_id),
        ("status", order.status.as_str()),
    ];
    if let Some((code, message)) = error {
        fields.push(("error_code", code));
        fields.push(("error_message", message));
    }
    let signature = sig::plural_return_url(&shared.config.plural.return_url_secret_hex, &fields)?;
    fields.push(("signature", &signature));
    let query = serde_urlencoded::to_string(&fields).ok()?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}{query}"))
}

/// Queues the webhook for the order's current status (`ORDER_<STATUS>`).
pub(crate) fn webhook(shared: &Shared, order: &Order) {
    let event = format!("ORDER_{}", order.status.as_str());
    let body = serde_json::json!({"event_type": event, "data": wire::order_json(shared, order)});
    let render = Webhook {
        secret: shared.config.plural.webhook_secret.clone(),
        id: format!("msg_{}", ids::alnum(24)),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    };
    shared.outbox.enqueue(Callback {
        provider: P,
        key: order.order_id.clone(),
        label: event,
        url: shared.callback_url(P),
        policy: Policy {
            retry_delays_s: &WEBHOOK_RETRY_DELAYS_S,
            ack: Ack::Any2xx,
            timeout: WEBHOOK_TIMEOUT,
        },
        render: Box::new(render),
    });
}

/// One webhook: the id and body stay the same on every resend; the timestamp is the
/// attempt's, and the signature covers `id.timestamp.body`.
struct Webhook {
    secret: String,
    id: String,
    body: Vec<u8>,
}

impl Render for Webhook {
    fn render(&self, corrupt: bool) -> Outgoing {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut signature = sig::plural_webhook(&self.secret, &self.id, &timestamp, &self.body);
        if corrupt {
            signature = sig::corrupt(&signature);
        }
        Outgoing {
            content_type: "application/json",
            headers: vec![
                ("webhook-id".into(), self.id.clone()),
                ("webhook-timestamp".into(), timestamp),
                ("webhook-signature".into(), signature),
            ],
            body: self.body.clone(),
        }
    }
}

/// One order as Plural shows it, or every order.
pub(crate) fn snapshot(shared: &Shared, id: Option<&str>) -> serde_json::Value {
    let st = lock(&shared.plural);
    match id {
        Some(id) => st
            .orders
            .get(id)
            .map(|o| wire::order_json(shared, o))
            .unwrap_or_default(),
        None => st
            .orders
            .values()
            .map(|o| wire::order_json(shared, o))
            .collect(),
    }
}
