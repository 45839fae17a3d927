//! An exchanger in payment-processor mode: `public/exchanger/order/create`, a status read
//! for reconciliation, and the IPN: form-urlencoded, signed with SHA-256 over colon-joined
//! fields, sent ONCE, never retried, and a configurable share never sent at all.
//!
//! Statuses: new, waitPayment, inProgress, inProgressPayout, done, errorPayment,
//! errorPayout, hold, returned, deleted (transitions in [`allowed`]).

mod api;
mod decimal;

pub(crate) use api::routes;

use crate::control::{Action, ActionOutcome, ControlError};
use crate::outbox::{Ack, Callback, Outgoing, Policy, Render};
use crate::shared::{lock, Shared};
use crate::sig;
use paystate_events::Provider;
use std::collections::BTreeMap;
use std::time::Duration;

const P: Provider = Provider::Exchanger;
/// The IPN is sent once: no retries.
pub const IPN_RETRY_DELAYS_S: [u64; 0] = [];
/// How long the one IPN attempt may take (a sandbox choice).
pub const IPN_TIMEOUT: Duration = Duration::from_secs(10);

/// Every documented status.
pub const STATUSES: [&str; 10] = [
    "new",
    "waitPayment",
    "inProgress",
    "inProgressPayout",
    "done",
    "errorPayment",
    "errorPayout",
    "hold",
    "returned",
    "deleted",
];

/// The transitions the sandbox allows (the exchanger does not publish its own).
pub fn allowed(from: &str, to: &str) -> bool {
    let next: &[&str] = match from {
        "new" => &["waitPayment", "inProgress", "errorPayment", "deleted"],
        "waitPayment" => &["inProgress", "errorPayment", "deleted"],
        "inProgress" => &[
            "inProgressPayout",
            "done",
            "hold",
            "returned",
            "errorPayment",
        ],
        "inProgressPayout" => &["done", "errorPayout", "hold"],
        "errorPayout" => &["inProgressPayout", "done", "returned", "hold"],
        "hold" => &["inProgress", "inProgressPayout", "returned", "deleted"],
        _ => &[],
    };
    next.contains(&to)
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub order_id: String,
    pub uid: u64,
    pub secret: String,
    pub status: &'static str,
    pub in_amount: String,
    pub out_amount: String,
    pub xml_from: String,
    pub xml_to: String,
    pub lang: String,
    pub ipn_url: Option<String>,
    pub ipn_secret: String,
    pub to_values: Vec<(String, String)>,
    pub created_at: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    orders: BTreeMap<String, Order>,
    next_uid: u64,
}

/// Applies a customer or back-office action (see README for the mapping).
pub(crate) fn act(
    shared: &Shared,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    let mut st = lock(&shared.exchanger);
    let o = st
        .orders
        .get_mut(id)
        .ok_or_else(|| ControlError::not_found(P, id))?;
    let target = match &action {
        Action::Challenge => "waitPayment",
        Action::Approve => "inProgress",
        Action::Decline => "errorPayment",
        Action::Expire => "deleted",
        Action::PayoutDone => "done",
        Action::ErrorPayout => "errorPayout",
        Action::SetStatus { status } => match STATUSES.iter().find(|s| **s == status) {
            Some(s) => s,
            None => {
                return Err(ControlError::BadRequest(format!(
                    "unknown status {status:?}"
                )))
            }
        },
        _ => return Err(ControlError::unsupported(P, &action)),
    };
    if !allowed(o.status, target) {
        return Err(ControlError::transition(P, id, o.status, &action));
    }
    transition(shared, o, target);
    if target == "inProgress" && shared.config.exchanger.auto_payout {
        transition(shared, o, "inProgressPayout");
    }
    Ok(ActionOutcome::status(o.status))
}

/// Moves the order, counts the effect and sends (or drops) the IPN.
fn transition(shared: &Shared, o: &mut Order, to: &'static str) {
    o.status = to;
    shared.counters.bump(P, &o.order_id, |c| match to {
        "inProgress" => c.credited += 1,
        "done" => c.paid_out += 1,
        "errorPayout" => c.payout_failed += 1,
        "errorPayment" => c.declined += 1,
        "deleted" => c.cancelled += 1,
        _ => c.other_transitions += 1,
    });
    let url = o
        .ipn_url
        .clone()
        .or_else(|| shared.callback_url(P))
        .filter(|_| !shared.drop_next_ipn());
    let render = Ipn {
        fields: ipn_fields(o),
        secret: o.ipn_secret.clone(),
        signature_field: shared.config.exchanger.ipn_signature_field.clone(),
    };
    shared.outbox.enqueue(Callback {
        provider: P,
        key: o.order_id.clone(),
        label: format!("ipn:{to}"),
        url,
        policy: Policy {
            retry_delays_s: &IPN_RETRY_DELAYS_S,
            ack: Ack::Any2xx,
            timeout: IPN_TIMEOUT,
        },
        render: Box::new(render),
    });
}

fn ipn_fields(o: &Order) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = vec![
        ("orderUID".into(), o.uid.to_string()),
        ("orderId".into(), o.order_id.clone()),
        ("newStatus".into(), o.status.into()),
        ("inAmount".into(), o.in_amount.clone()),
        ("outAmount".into(), o.out_amount.clone()),
        ("xml_from".into(), o.xml_from.clone()),
        ("xml_to".into(), o.xml_to.clone()),
        (
            "timestamp".into(),
            chrono::Utc::now().timestamp().to_string(),
        ),
    ];
    for (i, (key, value)) in o.to_values.iter().enumerate() {
        f.push((format!("toValues[{i}][key]"), key.clone()));
        f.push((format!("toValues[{i}][name]"), key.clone()));
        f.push((format!("toValues[{i}][value]"), value.clone()));
    }
    f
}

/// The IPN form, signed over the documented fields exactly as sent.
struct Ipn {
    fields: Vec<(String, String)>,
    secret: String,
    signature_field: String,
}

impl Render for Ipn {
    fn render(&self, corrupt: bool) -> Outgoing {
        let get = |k: &str| {
            self.fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let signed = [
            "orderId",
            "newStatus",
            "inAmount",
            "outAmount",
            "xml_from",
            "xml_to",
            "timestamp",
        ]
        .map(get);
        let mut signature = sig::exchanger_ipn(signed, &self.secret);
        if corrupt {
            signature = sig::corrupt(&signature);
        }
        let mut fields = self.fields.clone();
        fields.push((self.signature_field.clone(), signature));
        Outgoing {
            content_type: "application/x-www-form-urlencoded",
            headers: Vec::new(),
            body: serde_urlencoded::to_string(&fields)
                .unwrap_or_default()
                .into_bytes(),
        }
    }
}

pub(crate) fn snapshot(shared: &Shared, id: Option<&str>) -> serde_json::Value {
    let st = lock(&shared.exchanger);
    match id {
        Some(id) => st
            .orders
            .get(id)
            .map(|o| api::order_json(shared, o))
            .unwrap_or_default(),
        None => st
            .orders
            .values()
            .map(|o| api::order_json(shared, o))
            .collect(),
    }
}
