//! Events: what happened to an order, past tense. They are only ever appended; `engine::evolve`
//! folds them into [`crate::OrderState`]. Events are tagged by `type`; the commit envelope
//! carries the schema version used for upcasting (see `commit`).

use crate::command::Attachment;
use crate::{
    CaptureMode, CustomerAction, Money, OrderId, PaymentInitiation, Provider, ProviderSignal,
    Timestamp,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a provider-caused event came from: enough to find the raw evidence again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    pub evidence_ref: String,
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub observed_at: Timestamp,
}

impl From<&ProviderSignal> for Evidence {
    fn from(s: &ProviderSignal) -> Evidence {
        Evidence {
            provider_ref: s.provider_ref.clone(),
            evidence_ref: s.evidence_ref.clone(),
            observed_at: s.observed_at,
        }
    }
}

/// Who or what cancelled an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    /// Cancelled before anything reached the provider, on the merchant's command.
    Merchant,
    /// The provider confirmed the cancellation (void, reversal before capture, expiry there).
    Provider,
    /// The order expired before payment.
    Expiry,
}

/// Why a signal was recorded without changing the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalDisposition {
    /// The order already reflects this fact (e.g. a resent callback with new evidence).
    Duplicate,
    /// An earlier stage reported after a later one (AUTHORIZED after PROCESSED).
    Late,
    /// A status the adapter could not map.
    Unrecognised,
    /// A provider call whose outcome is unknown; a status query will resolve it.
    OutcomeUnknown,
    /// A reconciler probe whose answer changes nothing.
    Probe,
}

/// Everything that can happen to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    OrderCreated {
        order_id: OrderId,
        merchant_reference: String,
        amount: Money,
        provider: Provider,
        capture_mode: CaptureMode,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "crate::timestamp_json::write_opt"
        )]
        expires_at: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merchant_account: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<String, String>,
        #[serde(serialize_with = "crate::timestamp_json::write")]
        created_at: Timestamp,
    },
    /// Adapter work: start the payment at the provider.
    PaymentRequested {
        initiation: PaymentInitiation,
    },
    /// The provider accepted the payment; the customer may have to act.
    CustomerActionRequired {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<CustomerAction>,
        evidence: Evidence,
    },
    PaymentAuthorized {
        amount: Money,
        evidence: Evidence,
    },
    /// Adapter work: capture `amount` (the capture id is the command id that asked for it).
    CaptureRequested {
        capture_id: String,
        amount: Money,
    },
    PaymentCaptured {
        amount: Money,
        evidence: Evidence,
    },
    CaptureFailed {
        code: String,
        message: String,
        evidence: Evidence,
    },
    /// Adapter work: void the authorization / cancel the payment at the provider.
    CancelRequested {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    OrderCancelled {
        by: CancelledBy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Evidence>,
    },
    CancelFailed {
        code: String,
        message: String,
        evidence: Evidence,
    },
    /// Adapter work: send the customer's transfer confirmation (Paykassma activation); the
    /// confirmation id is the command id.
    TransferConfirmationSubmitted {
        confirmation_id: String,
        reference: String,
        attachment: Attachment,
    },
    /// Adapter work: refund `amount` (the refund id is the command id that asked for it).
    RefundRequested {
        refund_id: String,
        amount: Money,
    },
    RefundCompleted {
        refund_id: String,
        amount: Money,
        evidence: Evidence,
    },
    RefundFailed {
        refund_id: String,
        code: String,
        message: String,
        evidence: Evidence,
    },
    OrderSettled {
        evidence: Evidence,
    },
    PaymentFailed {
        code: String,
        message: String,
        evidence: Evidence,
    },
    /// A signal kept for the audit trail that does not move the order.
    SignalRecorded {
        signal: ProviderSignal,
        disposition: SignalDisposition,
    },
    /// A signal that contradicts the log (e.g. captured after cancelled), or a provider report
    /// that needs a person. Surfaced by projections and audits.
    DiscrepancyDetected {
        signal: ProviderSignal,
        code: String,
        detail: String,
    },
    /// An operator resolved the order's review: `needs_review` is cleared and the order takes
    /// commands again. Earlier discrepancies stay recorded.
    ReviewResolved {
        operator: String,
        reason: String,
    },
    /// The core refused the command on this order (decision 0013): the commit changes no
    /// state but remembers the command id, so a retry is answered with this very rejection
    /// from the log. `message` is cut to [`crate::limits::REJECTION_MESSAGE_BYTES_MAX`].
    CommandRejected {
        code: crate::RejectionCode,
        message: String,
    },
}

impl Event {
    /// The `type` tag, for logs and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrderCreated { .. } => "order_created",
            Event::PaymentRequested { .. } => "payment_requested",
            Event::CustomerActionRequired { .. } => "customer_action_required",
            Event::PaymentAuthorized { .. } => "payment_authorized",
            Event::CaptureRequested { .. } => "capture_requested",
            Event::PaymentCaptured { .. } => "payment_captured",
            Event::CaptureFailed { .. } => "capture_failed",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::OrderCancelled { .. } => "order_cancelled",
            Event::CancelFailed { .. } => "cancel_failed",
            Event::TransferConfirmationSubmitted { .. } => "transfer_confirmation_submitted",
            Event::RefundRequested { .. } => "refund_requested",
            Event::RefundCompleted { .. } => "refund_completed",
            Event::RefundFailed { .. } => "refund_failed",
            Event::OrderSettled { .. } => "order_settled",
            Event::PaymentFailed { .. } => "payment_failed",
            Event::SignalRecorded { .. } => "signal_recorded",
            Event::DiscrepancyDetected { .. } => "discrepancy_detected",
            Event::ReviewResolved { .. } => "review_resolved",
            Event::CommandRejected { .. } => "command_rejected",
        }
    }

    /// The `command_rejected` event of a rejection, its message cut at a character boundary
    /// to [`crate::limits::REJECTION_MESSAGE_BYTES_MAX`] (the core's messages are far
    /// shorter; the cut only guarantees the commit's size bound).
    pub fn rejected(rejection: &crate::Rejection) -> Event {
        let max = crate::limits::REJECTION_MESSAGE_BYTES_MAX;
        let mut end = rejection.message.len().min(max);
        while !rejection.message.is_char_boundary(end) {
            end -= 1;
        }
        Event::CommandRejected {
            code: rejection.code,
            message: rejection.message[..end].to_string(),
        }
    }

    /// True for events that ask adapter workers to call the provider.
    pub fn is_provider_work(&self) -> bool {
        matches!(
            self,
            Event::PaymentRequested { .. }
                | Event::CaptureRequested { .. }
                | Event::CancelRequested { .. }
                | Event::RefundRequested { .. }
                | Event::TransferConfirmationSubmitted { .. }
        )
    }
}
