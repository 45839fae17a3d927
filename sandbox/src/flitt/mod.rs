//! Flitt (Pay by Payme): checkout URL / token, status, capture (one, preauth only), reverse
//! (idempotent on `reverse_id`), and server callbacks signed with SHA-1 protocol 1.0.
//!
//! order_status: created → processing (SCA in the Payme app) → approved | declined |
//! expired; approved → reversed (full reversal); `capture_status` hold → captured.

mod api;
mod wire;

pub(crate) use api::routes;

use crate::control::{Action, ActionOutcome, ControlError};
use crate::outbox::{Ack, Callback, Outgoing, Policy, Render};
use crate::shared::{lock, Shared};
use crate::sig;
use paystate_events::Provider;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const P: Provider = Provider::Flitt;
/// Documented callback retries: 2 s, 60 s, 5 min, 10 min, 1 h, 24 h.
pub const CALLBACK_RETRY_DELAYS_S: [u64; 6] = [2, 60, 300, 600, 3600, 86400];
/// Flitt waits 30 s for the merchant's answer.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Processing,
    Approved,
    Declined,
    Expired,
    Reversed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Processing => "processing",
            Status::Approved => "approved",
            Status::Declined => "declined",
            Status::Expired => "expired",
            Status::Reversed => "reversed",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub order_id: String,
    pub payment_id: u64,
    pub amount: u64,
    pub currency: String,
    pub order_desc: String,
    pub status: Status,
    pub preauth: bool,
    /// `Some(false)` = hold, `Some(true)` = captured; `None` without preauth approval.
    pub captured: Option<bool>,
    pub capture_amount: u64,
    pub reversal_amount: u64,
    pub callback_url: Option<String>,
    pub merchant_data: String,
    pub token: String,
    pub checkout_url: String,
    pub order_time: String,
    /// `purchase`, `capture` or `reverse`: the last transaction.
    pub tran_type: &'static str,
}

impl Order {
    /// What can still be reversed: the captured amount (or the hold) less reversals.
    fn reversible(&self) -> u64 {
        let base = match self.captured {
            Some(true) => self.capture_amount,
            _ => self.amount,
        };
        base.saturating_sub(self.reversal_amount)
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    orders: BTreeMap<String, Order>,
    /// `reverse_id` → (order id, the answer given).
    reversals: HashMap<String, (String, Map<String, Value>)>,
    next_payment_id: u64,
}

/// Applies a customer action in the Payme app.
pub(crate) fn act(
    shared: &Shared,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    let mut st = lock(&shared.flitt);
    let o = st
        .orders
        .get_mut(id)
        .ok_or_else(|| ControlError::not_found(P, id))?;
    let open = matches!(o.status, Status::Created | Status::Processing);
    let next = match &action {
        Action::Challenge if o.status == Status::Created => Status::Processing,
        Action::Approve | Action::Complete3ds { success: true } if open => Status::Approved,
        Action::Decline | Action::Complete3ds { success: false } if open => Status::Declined,
        Action::Expire if open => Status::Expired,
        Action::Challenge
        | Action::Approve
        | Action::Decline
        | Action::Expire
        | Action::Complete3ds { .. } => {
            return Err(ControlError::transition(P, id, o.status.as_str(), &action))
        }
        _ => return Err(ControlError::unsupported(P, &action)),
    };
    o.status = next;
    let preauth = o.preauth;
    shared.counters.bump(P, id, |c| match next {
        Status::Processing => c.attempted += 1,
        Status::Approved => {
            c.authorized += 1;
            c.captured += u32::from(!preauth);
        }
        Status::Declined => c.declined += 1,
        _ => c.expired += 1,
    });
    if next == Status::Approved && o.preauth {
        o.captured = Some(false);
    }
    if next != Status::Processing {
        callback(shared, o);
    }
    Ok(ActionOutcome::status(o.status.as_str()))
}

/// Queues the server callback: every order parameter, signed.
pub(crate) fn callback(shared: &Shared, o: &Order) {
    let params = wire::order_params(shared, o);
    shared.outbox.enqueue(Callback {
        provider: P,
        key: o.order_id.clone(),
        label: format!("{}:{}", o.tran_type, o.status.as_str()),
        url: o.callback_url.clone().or_else(|| shared.callback_url(P)),
        policy: Policy {
            retry_delays_s: &CALLBACK_RETRY_DELAYS_S,
            ack: Ack::Exactly200,
            timeout: CALLBACK_TIMEOUT,
        },
        render: Box::new(SignedJson {
            password: shared.config.flitt.password.clone(),
            params,
        }),
    });
}

/// A callback body: the parameters plus their signature (spoiled on request).
struct SignedJson {
    password: String,
    params: Map<String, Value>,
}

impl Render for SignedJson {
    fn render(&self, corrupt: bool) -> Outgoing {
        let mut params = self.params.clone();
        let mut signature = sig::flitt_sign(&self.password, &params);
        if corrupt {
            signature = sig::corrupt(&signature);
        }
        params.insert("signature".into(), Value::String(signature));
        Outgoing {
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&params).unwrap_or_default(),
        }
    }
}

pub(crate) fn snapshot(shared: &Shared, id: Option<&str>) -> Value {
    let st = lock(&shared.flitt);
    match id {
        Some(id) => st
            .orders
            .get(id)
            .map(|o| Value::Object(wire::order_params(shared, o)))
            .unwrap_or_default(),
        None => st
            .orders
            .values()
            .map(|o| Value::Object(wire::order_params(shared, o)))
            .collect(),
    }
}
