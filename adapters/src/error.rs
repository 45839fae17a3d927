//! Errors, split by what the caller does about them:
//!
//! | variant | caller |
//! |---|---|
//! | [`AdapterError::Retryable`] | nothing reached the provider (or it asked us to come back): retry later |
//! | [`AdapterError::OutcomeUnknown`] | record `SignalKind::OutcomeUnknown`, resolve with a status query, never resend blindly |
//! | [`AdapterError::Rejected`] | the provider refused: record `SignalKind::Failed` |
//! | [`AdapterError::NotFound`] | the provider does not know the order/payment (e.g. a create that never arrived) |
//! | [`AdapterError::Unauthorized`], [`AdapterError::Config`] | operator must fix configuration; retry after |
//! | [`AdapterError::Unsupported`] | the provider has no such operation (see `paystate_events::capabilities`) |
//! | [`AdapterError::InvalidInput`] | the order or initiation lacks what the provider needs: fix the input |
//!
//! Messages never contain credentials: details come from provider bodies (truncated) and
//! transport errors with URLs stripped.

use crate::config::ConfigError;
use crate::crypto::SignatureError;
use paystate_events::{Operation, Provider, SignalKind};
use std::fmt;

/// Which adapter operation an error concerns (a superset of the events' [`Operation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Payment,
    Capture,
    Cancel,
    Refund,
    Status,
    /// Provider-specific extra steps: Plural token, Paykassma activation, Plexy link changes.
    Token,
    Activation,
    LinkUpdate,
}

impl Op {
    /// The canonical operation, for signals; `None` for reads and auxiliary steps.
    pub fn operation(self) -> Option<Operation> {
        match self {
            Op::Payment | Op::Activation => Some(Operation::Payment),
            Op::Capture => Some(Operation::Capture),
            Op::Cancel => Some(Operation::Cancel),
            Op::Refund => Some(Operation::Refund),
            Op::Status | Op::Token | Op::LinkUpdate => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Payment => "payment",
            Op::Capture => "capture",
            Op::Cancel => "cancel",
            Op::Refund => "refund",
            Op::Status => "status",
            Op::Token => "token",
            Op::Activation => "activation",
            Op::LinkUpdate => "link_update",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider operation that did not produce a provider report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("{provider} {op}: temporarily unavailable: {detail}")]
    Retryable {
        provider: Provider,
        op: Op,
        detail: String,
    },
    #[error("{provider} {op}: outcome unknown: {detail}")]
    OutcomeUnknown {
        provider: Provider,
        op: Op,
        detail: String,
    },
    #[error("{provider} {op}: rejected: {code}: {message}")]
    Rejected {
        provider: Provider,
        op: Op,
        code: String,
        message: String,
    },
    #[error("{provider} {op}: not found at the provider: {detail}")]
    NotFound {
        provider: Provider,
        op: Op,
        detail: String,
    },
    #[error("{provider} {op}: credentials refused (HTTP {status})")]
    Unauthorized {
        provider: Provider,
        op: Op,
        status: u16,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{provider} does not support {op}")]
    Unsupported { provider: Provider, op: Op },
    #[error("{provider} {op}: invalid input: {detail}")]
    InvalidInput {
        provider: Provider,
        op: Op,
        detail: String,
    },
}

impl AdapterError {
    /// The signal a worker records for this error, if any: a provider refusal is a
    /// `Failed` fact, an unknown outcome is recorded as such; everything else is ours to retry
    /// or fix and says nothing about the order. `refund_id` names the refund for refund errors.
    pub fn signal(&self, refund_id: Option<&str>) -> Option<SignalKind> {
        match self {
            AdapterError::Rejected {
                op, code, message, ..
            } => op.operation().map(|operation| SignalKind::Failed {
                operation,
                code: code.clone(),
                message: message.clone(),
                refund_id: refund_id
                    .filter(|_| operation == Operation::Refund)
                    .map(str::to_string),
            }),
            AdapterError::OutcomeUnknown { op, detail, .. } => {
                op.operation().map(|operation| SignalKind::OutcomeUnknown {
                    operation,
                    detail: detail.clone(),
                })
            }
            AdapterError::Retryable { .. }
            | AdapterError::NotFound { .. }
            | AdapterError::Unauthorized { .. }
            | AdapterError::Config(_)
            | AdapterError::Unsupported { .. }
            | AdapterError::InvalidInput { .. } => None,
        }
    }

    /// True when the same call may simply be made again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AdapterError::Retryable { .. })
    }
}

/// Why a callback was not accepted. The gateway stores the raw callback first either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Signature, token or timestamp check failed: record, never apply.
    #[error("{provider} callback: bad signature: {reason}")]
    BadSignature {
        provider: Provider,
        reason: SignatureError,
    },
    /// Not the documented shape (not JSON/form, required field missing, bad amount).
    #[error("{provider} callback: malformed: {detail}")]
    Malformed { provider: Provider, detail: String },
    /// The provider is not configured here.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// This provider sends no callbacks of this kind.
    #[error("{provider} callback: unsupported: {detail}")]
    Unsupported {
        provider: Provider,
        detail: &'static str,
    },
}

/// Most characters of the reason quoted back to a provider in a 4xx answer.
pub const ACK_REASON_CHARS_MAX: usize = 200;

impl CallbackError {
    /// What to answer the provider: 401 for a bad signature, 400 for malformed input, 503 when
    /// we cannot check (configuration), so the provider retries once we are fixed. 4xx bodies
    /// say why (`bad signature: <reason>`, `malformed: <what>`), never with secrets: the
    /// reasons name checks and JSON positions, not expected values.
    pub fn ack(&self) -> crate::callback::Ack {
        use crate::callback::Ack;
        let text = |status: u16, kind: &str, reason: &str| {
            let reason: String = reason.chars().take(ACK_REASON_CHARS_MAX).collect();
            Ack::text(status, &format!("{kind}: {reason}"))
        };
        match self {
            CallbackError::BadSignature { reason, .. } => {
                text(401, "bad signature", &reason.to_string())
            }
            CallbackError::Malformed { detail, .. } => text(400, "malformed", detail),
            CallbackError::Unsupported { detail, .. } => text(400, "unsupported", detail),
            CallbackError::Config(_) => Ack::text(503, "not configured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_in_bounded_text() {
        let bad = CallbackError::BadSignature {
            provider: Provider::Flitt,
            reason: SignatureError::Mismatch,
        };
        assert_eq!(
            (bad.ack().status, bad.ack().body),
            (401, "bad signature: signature mismatch".to_string())
        );
        let long = CallbackError::Malformed {
            provider: Provider::Plural,
            detail: "x".repeat(10 * ACK_REASON_CHARS_MAX),
        };
        let ack = long.ack();
        assert_eq!(ack.status, 400);
        assert!(ack.body.starts_with("malformed: xxx"));
        assert_eq!(ack.body.len(), "malformed: ".len() + ACK_REASON_CHARS_MAX);
    }
}
