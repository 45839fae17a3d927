//! PlexyPay Pay API: payment links (hosted checkout), the transaction a customer's payment
//! creates, capture / cancel / refund, and `transaction.<status>` webhooks authenticated by
//! `Authorization: Bearer <webhook token>`.
//!
//! Transaction statuses: created → 3d → authorized → charged → refunded; authorized →
//! cancelled; rejected (bank decline) and failed (system error) from any open status.

mod api;
mod wire;

pub(crate) use api::routes;

use crate::control::{Action, ActionOutcome, ControlError};
use crate::outbox::{Ack, Callback, Outgoing, Policy, Render};
use crate::shared::{lock, Shared};
use crate::{ids, sig};
use paystate_events::Provider;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const P: Provider = Provider::Plexy;
/// Plexy documents no retry schedule; the sandbox retries after 1 min, 5 min, 30 min, 2 h.
pub const WEBHOOK_RETRY_DELAYS_S: [u64; 4] = [60, 300, 1800, 7200];
/// How long one webhook attempt may take (a sandbox choice).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxStatus {
    Created,
    ThreeD,
    Authorized,
    Charged,
    Cancelled,
    Refunded,
    Rejected,
    Failed,
}

impl TxStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TxStatus::Created => "created",
            TxStatus::ThreeD => "3d",
            TxStatus::Authorized => "authorized",
            TxStatus::Charged => "charged",
            TxStatus::Cancelled => "cancelled",
            TxStatus::Refunded => "refunded",
            TxStatus::Rejected => "rejected",
            TxStatus::Failed => "failed",
        }
    }
    fn is_open(self) -> bool {
        matches!(self, TxStatus::Created | TxStatus::ThreeD)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub id: String,
    pub url: String,
    /// `active`, `paid` or `expired`.
    pub status: &'static str,
    pub amount: u64,
    pub currency: String,
    pub auto_clearing: bool,
    pub order_reference: String,
    /// The request's other fields, echoed as sent.
    pub echo: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub tx: Option<Tx>,
}

#[derive(Debug, Clone)]
pub(crate) struct Tx {
    pub id: String,
    pub status: TxStatus,
    pub processed_amount: u64,
    pub refunded_amount: u64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    links: BTreeMap<String, Link>,
    by_reference: HashMap<String, String>,
    /// Transaction id → link id.
    tx_links: HashMap<String, String>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Applies a customer action on the hosted checkout of a payment link (id `pl_...`).
pub(crate) fn act(
    shared: &Shared,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    let mut st = lock(&shared.plexy);
    let link = st
        .links
        .get_mut(id)
        .ok_or_else(|| ControlError::not_found(P, id))?;
    let open = link.status == "active" && link.tx.as_ref().is_none_or(|t| t.status.is_open());
    let current = link
        .tx
        .as_ref()
        .map(|t| t.status.as_str())
        .unwrap_or(link.status)
        .to_string();
    if !open && action != Action::Fail {
        return Err(ControlError::transition(P, id, &current, &action));
    }
    let target = match &action {
        Action::Challenge => TxStatus::ThreeD,
        Action::Approve | Action::Complete3ds { success: true } => TxStatus::Authorized,
        Action::Decline | Action::Complete3ds { success: false } => TxStatus::Rejected,
        Action::Fail if open => TxStatus::Failed,
        Action::Expire => {
            link.status = "expired";
            shared.counters.bump(P, id, |c| c.expired += 1);
            return Ok(ActionOutcome::status("expired"));
        }
        Action::Fail => return Err(ControlError::transition(P, id, &current, &action)),
        _ => return Err(ControlError::unsupported(P, &action)),
    };
    let tx_id = link.tx.get_or_insert_with(new_tx).id.clone();
    set_status(shared, link, target);
    if target == TxStatus::Authorized && link.auto_clearing {
        let amount = link.amount;
        if let Some(tx) = link.tx.as_mut() {
            tx.processed_amount = amount;
        }
        set_status(shared, link, TxStatus::Charged);
    }
    if matches!(target, TxStatus::Authorized) {
        link.status = "paid";
    }
    let mut out = ActionOutcome::status(
        link.tx
            .as_ref()
            .map(|t| t.status.as_str())
            .unwrap_or("created"),
    );
    out.reference = Some(tx_id.clone());
    st.tx_links.insert(tx_id, id.to_string());
    Ok(out)
}

fn new_tx() -> Tx {
    let at = now();
    Tx {
        id: ids::uuid(),
        status: TxStatus::Created,
        processed_amount: 0,
        refunded_amount: 0,
        created_at: at.clone(),
        updated_at: at,
    }
}

/// Moves the link's transaction to `status`, counts the effect and queues the webhook.
pub(crate) fn set_status(shared: &Shared, link: &mut Link, status: TxStatus) {
    let Some(tx) = link.tx.as_mut() else { return };
    tx.status = status;
    tx.updated_at = now();
    shared.counters.bump(P, &link.id, |c| match status {
        TxStatus::Created | TxStatus::ThreeD => c.attempted += 1,
        TxStatus::Authorized => c.authorized += 1,
        TxStatus::Charged => c.captured += 1,
        TxStatus::Cancelled => c.cancelled += 1,
        TxStatus::Refunded => c.refunded += 1,
        TxStatus::Rejected => c.declined += 1,
        TxStatus::Failed => c.other_transitions += 1,
    });
    webhook(shared, link);
}

fn webhook(shared: &Shared, link: &Link) {
    let Some(tx) = &link.tx else { return };
    let name = format!("transaction.{}", tx.status.as_str());
    let body = serde_json::json!({
        "name": name,
        "merchantId": shared.config.plexy.merchant_id,
        "data": wire::tx_json(link, tx),
    });
    shared.outbox.enqueue(Callback {
        provider: P,
        key: link.id.clone(),
        label: name,
        url: shared.callback_url(P),
        policy: Policy {
            retry_delays_s: &WEBHOOK_RETRY_DELAYS_S,
            ack: Ack::Any2xx,
            timeout: WEBHOOK_TIMEOUT,
        },
        render: Box::new(Webhook {
            token: shared.config.plexy.webhook_token.clone(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }),
    });
}

/// A webhook: JSON body, static bearer token (spoiled on request).
struct Webhook {
    token: String,
    body: Vec<u8>,
}

impl Render for Webhook {
    fn render(&self, corrupt: bool) -> Outgoing {
        let token = if corrupt {
            sig::corrupt(&self.token)
        } else {
            self.token.clone()
        };
        Outgoing {
            content_type: "application/json",
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            body: self.body.clone(),
        }
    }
}

pub(crate) fn snapshot(shared: &Shared, id: Option<&str>) -> serde_json::Value {
    let st = lock(&shared.plexy);
    match id {
        Some(id) => st.links.get(id).map(wire::link_with_tx).unwrap_or_default(),
        None => st.links.values().map(wire::link_with_tx).collect(),
    }
}
