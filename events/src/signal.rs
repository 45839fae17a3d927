//! Provider signals: what a payment provider told us, already translated by an adapter into
//! the canonical vocabulary. Signals are facts from outside: the engine never rejects a
//! well-formed one for being late or contradictory; it records it (see `engine`).

use crate::{Money, Provider, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One thing a provider reported about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderSignal {
    /// Who reported it; must be the order's provider.
    pub provider: Provider,
    /// The provider's own reference for the payment or operation (transaction id, order id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    /// Where the raw evidence is kept, e.g. `callbacks:1234` (stream sequence of the raw
    /// callback) or `call:<idempotency key>` (an adapter's API response).
    pub evidence_ref: String,
    /// When the provider said it (or, if unknown, when we received it).
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub observed_at: Timestamp,
    /// What it said.
    #[serde(flatten)]
    pub kind: SignalKind,
}

/// The canonical meaning of a provider status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignalKind {
    /// The provider accepted the payment and may be waiting for the customer (redirect,
    /// 3-D Secure challenge, wallet transfer).
    Accepted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<CustomerAction>,
    },
    /// Funds are reserved. `amount` absent means the order amount.
    Authorized {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// Funds were captured. `amount` absent means everything authorized (or the order amount).
    Captured {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// An operation failed at the provider.
    Failed {
        operation: Operation,
        code: String,
        message: String,
        /// For refund failures: which refund (our refund id) failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<String>,
    },
    /// The payment or authorization was cancelled (voided) at the provider.
    Cancelled,
    /// A refund completed. `refund_id` is ours when the provider echoes it; `amount` absent
    /// means everything still refundable.
    Refunded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// Money has settled; nothing more will happen (Paykassma credited, exchanger done).
    /// From a pending order this also means the funds were taken: `amount` (the order amount
    /// if absent) counts as captured.
    Settled {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// A status the adapter does not know. Recorded, never guessed.
    Unrecognised { raw_status: String },
    /// A provider call whose outcome is unknown (timed out after sending). Recorded; a status
    /// query resolves it.
    OutcomeUnknown {
        operation: Operation,
        detail: String,
    },
    /// Someone must look at this order (e.g. exchanger `errorPayout` after funds arrived, or
    /// an order the reconciler could not resolve before its final deadline).
    NeedsReview { reason: String },
    /// The reconciler asked the provider and learned nothing that moves the order (e.g.
    /// still pending). Recorded, so the audit trail shows every probe and its answer.
    Probed { answer: String },
}

impl SignalKind {
    /// A stable name for logs and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            SignalKind::Accepted { .. } => "accepted",
            SignalKind::Authorized { .. } => "authorized",
            SignalKind::Captured { .. } => "captured",
            SignalKind::Failed { .. } => "failed",
            SignalKind::Cancelled => "cancelled",
            SignalKind::Refunded { .. } => "refunded",
            SignalKind::Settled { .. } => "settled",
            SignalKind::Unrecognised { .. } => "unrecognised",
            SignalKind::OutcomeUnknown { .. } => "outcome_unknown",
            SignalKind::NeedsReview { .. } => "needs_review",
            SignalKind::Probed { .. } => "probed",
        }
    }
}

/// Which provider operation a failure or unknown outcome concerns.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Payment,
    Capture,
    Cancel,
    Refund,
}

/// What the customer has to do for a pending payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerAction {
    pub kind: CustomerActionKind,
    /// Where to send the customer (hosted page, challenge URL), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Other details to show, e.g. Paykassma's wallet number and account name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerActionKind {
    /// Open a hosted payment page.
    Redirect,
    /// Complete a 3-D Secure / OTP challenge.
    Challenge,
    /// Transfer money to the shown wallet, then confirm.
    WalletTransfer,
}
