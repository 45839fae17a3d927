//! Paykassma (`bnb_ml` wallet method): the deposit request gives the customer a wallet,
//! the customer transfers, the merchant activates the transfer with its 12-digit number
//! (`key1`), Paykassma verifies and credits, and the `ingoing` postback is resent until the
//! merchant answers HTTP 200 with `{"status":"ok"}`.
//!
//! Activation statuses here: verifying → credited | rejected. No authorize, cancel or refund.
//! A rejection sends a postback with `"status": "fail"` (the public docs show only the
//! success postback; `PaykassmaConfig::postback_on_reject` turns it off).

mod api;

pub(crate) use api::routes;

use crate::control::{Action, ActionOutcome, ControlError};
use crate::outbox::{Ack, Callback, Outgoing, Policy, Render};
use crate::shared::{lock, Shared};
use crate::{ids, sig};
use paystate_events::Provider;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

const P: Provider = Provider::Paykassma;
/// "Resent with a certain periodicity": the sandbox resends after 1, 5, 10, 30 min, 1, 2, 4,
/// 8 h, then gives up (the real count is unpublished).
pub const POSTBACK_RESEND_DELAYS_S: [u64; 8] = [60, 300, 600, 1800, 3600, 7200, 14400, 28800];
/// How long one postback attempt may take (a sandbox choice).
pub const POSTBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Transfers remembered per sandbox; the oldest are forgotten first.
pub const TRANSFERS_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Verifying,
    Credited,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Verifying => "verifying",
            Status::Credited => "credited",
            Status::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DepositRequest {
    pub label: String,
    pub currency: String,
    pub wallet_number: String,
    pub account_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Transfer {
    pub key1: String,
    pub label: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Activation {
    pub custom_transaction_id: String,
    pub label: String,
    pub currency: String,
    pub wallet_type: String,
    pub key1: String,
    pub amount: u64,
    pub status: Status,
    pub activated_at: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    requests: BTreeMap<String, DepositRequest>,
    transfers: BTreeMap<String, Transfer>,
    activations: BTreeMap<String, Activation>,
    next_stockpiling_id: u64,
}

pub(crate) fn datetime() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// TransferMade on a label; Approve / Decline on a `custom_transaction_id`.
pub(crate) fn act(
    shared: &Shared,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    let mut st = lock(&shared.paykassma);
    if let Action::TransferMade { amount } = action {
        if !st.requests.contains_key(id) {
            return Err(ControlError::not_found(P, id));
        }
        if amount == 0 {
            return Err(ControlError::BadRequest("amount must be positive".into()));
        }
        if st.transfers.len() >= TRANSFERS_MAX {
            st.transfers.pop_first();
        }
        let key1 = ids::digits(12);
        st.transfers.insert(
            key1.clone(),
            Transfer {
                key1: key1.clone(),
                label: id.to_string(),
                amount,
            },
        );
        return Ok(ActionOutcome {
            status: "transferred".into(),
            return_url: None,
            reference: Some(key1),
        });
    }
    let state = &mut *st;
    let a = state
        .activations
        .get_mut(id)
        .ok_or_else(|| ControlError::not_found(P, id))?;
    if a.status != Status::Verifying {
        return Err(ControlError::transition(P, id, a.status.as_str(), &action));
    }
    match action {
        Action::Approve => {
            let amount = state
                .transfers
                .get(&a.key1)
                .map(|t| t.amount)
                .unwrap_or(a.amount);
            state.next_stockpiling_id += 1;
            credit(shared, a, amount, state.next_stockpiling_id);
        }
        Action::Decline | Action::Expire => {
            a.status = Status::Rejected;
            shared.counters.bump(P, id, |c| c.declined += 1);
            if shared.config.paykassma.postback_on_reject {
                state.next_stockpiling_id += 1;
                postback(shared, a, a.amount, state.next_stockpiling_id);
            }
        }
        other => return Err(ControlError::unsupported(P, &other)),
    }
    Ok(ActionOutcome::status(a.status.as_str()))
}

/// Credits an activation and queues its postback.
pub(crate) fn credit(shared: &Shared, a: &mut Activation, amount: u64, stockpiling_id: u64) {
    a.status = Status::Credited;
    shared
        .counters
        .bump(P, &a.custom_transaction_id, |c| c.credited += 1);
    postback(shared, a, amount, stockpiling_id);
}

/// Queues the postback of a decided activation: `ingoing` when credited, with
/// `"status": "fail"` added when rejected.
fn postback(shared: &Shared, a: &Activation, amount: u64, stockpiling_id: u64) {
    let failed = a.status == Status::Rejected;
    let extra = AdditionalData {
        activated_datetime: a.activated_at.clone(),
        exchanger_identifier: None,
        comment: String::new(),
        amount: amount.to_string(),
        currency_code: a.currency.clone(),
        wallet_type: a.wallet_type.clone(),
        stockpiling_id,
        transaction_id: a.key1.clone(),
        transaction_type: 0,
        plugin_custom_order_id: a.custom_transaction_id.clone(),
        withdrawal_id: None,
        withdrawal_status: None,
        account_number: String::new(),
        account_name: String::new(),
        account_email: String::new(),
        bank_details: BankDetails {
            bank_code: String::new(),
            branch_code: String::new(),
        },
    };
    let cfg = &shared.config.paykassma;
    let render = Postback {
        status: failed.then_some("fail"),
        wallet_type: a.wallet_type.clone(),
        amount,
        currency_code: a.currency.clone(),
        label: a.label.clone(),
        created_datetime: datetime(),
        access_key: cfg.access_key.clone(),
        private_key: cfg.private_key.clone(),
        additional_data: vec![extra],
    };
    shared.outbox.enqueue(Callback {
        provider: P,
        key: a.custom_transaction_id.clone(),
        label: if failed {
            "postback:fail"
        } else {
            "postback:ingoing"
        }
        .into(),
        url: shared.callback_url(P),
        policy: Policy {
            retry_delays_s: &POSTBACK_RESEND_DELAYS_S,
            ack: Ack::StatusOkBody,
            timeout: POSTBACK_TIMEOUT,
        },
        render: Box::new(render),
    });
}

/// One entry of `additional_data`, fields in the order of the documented example.
#[derive(Debug, Clone, Serialize)]
struct AdditionalData {
    activated_datetime: String,
    exchanger_identifier: Option<String>,
    comment: String,
    amount: String,
    currency_code: String,
    wallet_type: String,
    stockpiling_id: u64,
    transaction_id: String,
    transaction_type: u8,
    plugin_custom_order_id: String,
    withdrawal_id: Option<String>,
    withdrawal_status: Option<String>,
    account_number: String,
    account_name: String,
    account_email: String,
    bank_details: BankDetails,
}

#[derive(Debug, Clone, Serialize)]
struct BankDetails {
    bank_code: String,
    branch_code: String,
}

/// The postback, rendered per attempt (same body every time unless the signature is spoiled).
struct Postback {
    /// `Some("fail")` for a rejected activation; absent on success (as in the docs).
    status: Option<&'static str>,
    wallet_type: String,
    amount: u64,
    currency_code: String,
    label: String,
    created_datetime: String,
    access_key: String,
    private_key: String,
    additional_data: Vec<AdditionalData>,
}

/// The wire body, fields in the documented order.
#[derive(Serialize)]
struct PostbackBody<'a> {
    signature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    wallet_type: &'a str,
    amount: u64,
    currency_code: &'a str,
    label: &'a str,
    direction: &'a str,
    created_datetime: &'a str,
    access_key: &'a str,
    additional_data: &'a [AdditionalData],
}

impl Render for Postback {
    fn render(&self, corrupt: bool) -> Outgoing {
        let compact = serde_json::to_string(&self.additional_data).unwrap_or_default();
        let mut signature = sig::paykassma_postback(&self.access_key, &self.private_key, &compact);
        if corrupt {
            signature = sig::corrupt(&signature);
        }
        let body = PostbackBody {
            signature,
            status: self.status,
            wallet_type: &self.wallet_type,
            amount: self.amount,
            currency_code: &self.currency_code,
            label: &self.label,
            direction: "ingoing",
            created_datetime: &self.created_datetime,
            access_key: &self.access_key,
            additional_data: &self.additional_data,
        };
        Outgoing {
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

pub(crate) fn snapshot(shared: &Shared, id: Option<&str>) -> serde_json::Value {
    let st = lock(&shared.paykassma);
    let activation = |a: &Activation| {
        serde_json::json!({"custom_transaction_id": a.custom_transaction_id, "label": a.label, "currency_code": a.currency,
            "wallet_type": a.wallet_type, "key1": a.key1, "amount": a.amount, "status": a.status.as_str(),
            "activated_datetime": a.activated_at})
    };
    match id {
        Some(id) => match (st.activations.get(id), st.requests.get(id)) {
            (Some(a), _) => activation(a),
            (None, Some(r)) => serde_json::json!(r),
            (None, None) => serde_json::Value::Null,
        },
        None => serde_json::json!({
            "deposit_requests": st.requests.values().collect::<Vec<_>>(),
            "transfers": st.transfers.values().collect::<Vec<_>>(),
            "activations": st.activations.values().map(activation).collect::<Vec<_>>(),
        }),
    }
}
