//! The shape of an order's state, as folded from its events by `engine::evolve`. It is what
//! the engine caches, what outcomes return and what projections store.

use crate::{
    CaptureMode, CommandId, Currency, CustomerAction, MinorUnits, Money, OrderId, Provider,
    Timestamp,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The canonical lifecycle states.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Order exists; nothing sent to the provider yet.
    Created,
    /// Payment started; waiting for the provider or the customer.
    Pending,
    /// Funds reserved; waiting for capture (manual mode) or the provider's own capture.
    Authorized,
    /// Funds captured (possibly partly refunded).
    Captured,
    /// Terminal: settled, nothing more will happen.
    Done,
    /// Terminal: cancelled or expired before capture.
    Cancelled,
    /// Terminal: everything captured has been refunded.
    Returned,
    /// Terminal: the payment failed.
    Failed,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Created,
        Status::Pending,
        Status::Authorized,
        Status::Captured,
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ];

    /// Terminal states never move again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Done | Status::Cancelled | Status::Returned | Status::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Pending => "pending",
            Status::Authorized => "authorized",
            Status::Captured => "captured",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded contradiction between a provider report and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Discrepancy {
    pub code: String,
    pub detail: String,
    /// The signal's status name (e.g. `captured`).
    pub signal: String,
    pub evidence_ref: String,
    /// The order's commit number that recorded it.
    pub commit: u64,
}

/// An order's state: identity, lifecycle status and money totals, all in the order currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderState {
    pub order_id: OrderId,
    pub status: Status,
    pub merchant_reference: String,
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_account: Option<String>,
    pub capture_mode: CaptureMode,
    pub amount: Money,
    pub authorized: MinorUnits,
    pub captured: MinorUnits,
    pub refunded: MinorUnits,
    /// A capture asked of the provider and not yet answered: (capture id, amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_pending: Option<(String, MinorUnits)>,
    /// A cancellation asked of the provider and not yet answered.
    #[serde(default)]
    pub cancel_pending: bool,
    /// Refunds asked of the provider and not yet answered, by refund id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds_pending: BTreeMap<String, MinorUnits>,
    /// Completed refunds by refund id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds_completed: BTreeMap<String, MinorUnits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_action: Option<CustomerAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discrepancies: Vec<Discrepancy>,
    /// Set when a provider report or the reconciler asked for a person to look.
    #[serde(default)]
    pub needs_review: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timestamp_json::write_opt"
    )]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub updated_at: Timestamp,
    /// Number of commits folded (the order's version). The next commit is `commits + 1`.
    pub commits: u64,
    /// Hash of the last folded commit (the chain head).
    pub head_hash: String,
    /// Command ids applied to this order with their fingerprints: idempotency across restarts
    /// and beyond the stream's duplicate window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<CommandId, Applied>,
    /// `command_rejected` commits folded (bounded by
    /// [`crate::limits::REJECTIONS_LOGGED_PER_ORDER_MAX`]); 0 in snapshots older than them.
    #[serde(default)]
    pub rejections_logged: u64,
}

/// A command applied to an order: which commit holds it and the command's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Applied {
    pub commit: u64,
    pub fingerprint: String,
}

impl OrderState {
    pub fn currency(&self) -> Currency {
        self.amount.currency
    }
    /// Captured and not refunded, less refunds in flight: what a new refund may take.
    pub fn refundable(&self) -> MinorUnits {
        let in_flight = self
            .refunds_pending
            .values()
            .fold(MinorUnits::ZERO, |a, b| a.plus(*b));
        self.captured
            .saturating_sub(self.refunded)
            .saturating_sub(in_flight)
    }
}
