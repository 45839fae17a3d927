//! The control API: tests and humans play the customer and the provider's back office.
//!
//! [`Action`]s move an order the way the customer or the provider would; each provider
//! module interprets them in its own vocabulary (see README). The same actions are
//! offered as Rust methods on [`crate::SandboxHandle`] and over HTTP under `/_sandbox`.

mod routes;

pub(crate) use routes::routes;

use crate::shared::Shared;
use crate::{exchanger, flitt, paykassma, plexy, plural};
use paystate_events::Provider;
use serde::{Deserialize, Serialize};

/// Something the customer or the provider's back office does to one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The customer pays / authorizes; Paykassma: the back office confirms the activation.
    Approve,
    /// The bank or the customer's wallet declines.
    Decline,
    /// The customer abandons the payment; the provider expires it.
    Expire,
    /// The customer reaches the 3DS / SCA step (Plexy `3d`, Flitt `processing`,
    /// exchanger `waitPayment`).
    Challenge,
    /// The customer finishes 3DS / SCA.
    Complete3ds { success: bool },
    /// A system error at the provider (Plexy `failed`).
    Fail,
    /// Paykassma: the customer transferred `amount` to the wallet given for this label;
    /// the outcome's `reference` is the 12-digit transaction number (`key1`).
    TransferMade { amount: u64 },
    /// Exchanger: the payout was sent (`done`).
    PayoutDone,
    /// Exchanger: the payout failed (`errorPayout`).
    ErrorPayout,
    /// Exchanger: any documented transition, by status name.
    SetStatus { status: String },
}

/// What an action left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// The order's status afterwards, in the provider's vocabulary.
    pub status: String,
    /// Where the customer's browser lands afterwards, signed as the provider signs it.
    pub return_url: Option<String>,
    /// A value the action produced (Paykassma: the transaction number `key1`).
    pub reference: Option<String>,
}

impl ActionOutcome {
    pub(crate) fn status(status: impl Into<String>) -> ActionOutcome {
        ActionOutcome {
            status: status.into(),
            return_url: None,
            reference: None,
        }
    }
}

/// Why a control action was refused; the order is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("not_found: {provider} has no order {id:?}")]
    NotFound { provider: Provider, id: String },
    #[error("invalid_transition: {provider} order {id:?} is {status}; {action} does not apply")]
    InvalidTransition {
        provider: Provider,
        id: String,
        status: String,
        action: String,
    },
    #[error("unsupported: {provider} has no {action}")]
    Unsupported { provider: Provider, action: String },
    #[error("bad_request: {0}")]
    BadRequest(String),
}

impl ControlError {
    pub(crate) fn not_found(provider: Provider, id: &str) -> ControlError {
        ControlError::NotFound {
            provider,
            id: id.to_string(),
        }
    }
    pub(crate) fn transition(
        provider: Provider,
        id: &str,
        status: &str,
        action: &Action,
    ) -> ControlError {
        ControlError::InvalidTransition {
            provider,
            id: id.to_string(),
            status: status.to_string(),
            action: action_name(action),
        }
    }
    pub(crate) fn unsupported(provider: Provider, action: &Action) -> ControlError {
        ControlError::Unsupported {
            provider,
            action: action_name(action),
        }
    }
}

fn action_name(action: &Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("{action:?}"))
}

/// Applies one action to one order of one provider.
pub(crate) fn act(
    shared: &Shared,
    provider: Provider,
    id: &str,
    action: Action,
) -> Result<ActionOutcome, ControlError> {
    match provider {
        Provider::Plexy => plexy::act(shared, id, action),
        Provider::Paykassma => paykassma::act(shared, id, action),
        Provider::Plural => plural::act(shared, id, action),
        Provider::Exchanger => exchanger::act(shared, id, action),
        Provider::Flitt => flitt::act(shared, id, action),
    }
}

/// A JSON snapshot of one order in the provider's own shape, or of all orders.
pub(crate) fn snapshot(shared: &Shared, provider: Provider, id: Option<&str>) -> serde_json::Value {
    match provider {
        Provider::Plexy => plexy::snapshot(shared, id),
        Provider::Paykassma => paykassma::snapshot(shared, id),
        Provider::Plural => plural::snapshot(shared, id),
        Provider::Exchanger => exchanger::snapshot(shared, id),
        Provider::Flitt => flitt::snapshot(shared, id),
    }
}
