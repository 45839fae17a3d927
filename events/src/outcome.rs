//! What a caller gets back for a command: accepted with its events and the bounded view of
//! the order's state after them ([`StateView`]), or a typed rejection with a stable code. A
//! retry of an already processed command gets the original outcome again with
//! `duplicate: true`, rebuilt from its commit in the order's log (decision 0013; rejections
//! with no order to live in are kept in the outcome bucket instead).

use crate::{CommandId, Event, OrderId, StateView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable rejection codes. The string forms never change meaning; new codes may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    // --- bad input: the message itself is wrong; fix it, do not retry as is ---
    /// The message is not valid JSON.
    MalformedJson,
    /// `type` is missing or not a known command type.
    UnknownCommand,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type or an invalid value.
    InvalidField,
    /// An order or command id is empty, too long or has characters outside the alphabet.
    InvalidId,
    /// An amount is zero, negative or not an integer number of minor units.
    InvalidAmount,
    /// An amount exceeds the maximum accepted.
    AmountOverflow,
    /// A currency is not an ISO 4217 code with minor units.
    UnknownCurrency,
    /// The message exceeds the size limit.
    CommandTooLarge,
    /// The order id in the body differs from the subject the command was published on, or
    /// the command type does not belong on that subject's plane (only `provider_signal` on
    /// `paystate.signal.<order>`, only operator commands on `paystate.op.<order>`).
    SubjectMismatch,
    /// The same key appears twice in one JSON object: readers disagree on which one counts.
    DuplicateKey,
    /// Card data (a 13–19 digit number passing the Luhn check, or a field named like a PAN,
    /// CVV or CVC) would enter the immutable log.
    SensitiveData,
    /// A `provider_signal` published on the client command subjects: provider reports come
    /// only from the signal-reporting role, on `paystate.signal.<order>`.
    SignalNotAllowed,
    /// An operator command (`resolve_review`) published on the client command subjects:
    /// operator commands come only from the operator role, on `paystate.op.<order>`.
    OperatorOnly,
    /// The `Paystate-Reply-To` header names a subject that is not a reply inbox.
    ReplyTargetRefused,
    // --- business rules: the order's state does not allow it ---
    OrderNotFound,
    OrderAlreadyExists,
    /// The command is not allowed in the order's current status.
    InvalidTransition,
    /// The order is in a terminal state.
    OrderTerminal,
    /// Amount's currency differs from the order's.
    CurrencyMismatch,
    /// Capture larger than what is authorized.
    AmountExceedsAuthorized,
    /// Refund larger than what is captured and not yet refunded.
    AmountExceedsRefundable,
    /// A capture or cancellation is already waiting for the provider.
    OperationInProgress,
    /// Expire before the order's `expires_at` (or an order without one).
    NotExpired,
    /// A provider signal from a provider other than the order's.
    ProviderMismatch,
    /// The order's provider has no such operation (e.g. a transfer confirmation for a card
    /// provider).
    UnsupportedByProvider,
    /// The same command id was used before with a different body.
    IdempotencyKeyReused,
    /// The order reached its bound on commits.
    OrderHistoryFull,
    /// The order's log holds a message that is not a valid commit; an operator must repair
    /// it (docs/security.md) before the order takes commands again.
    OrderUnreadable,
    /// The order is flagged for review (`needs_review`): it takes no start, capture, cancel,
    /// refund or transfer confirmation until an operator sends `resolve_review`. Provider
    /// reports and expiry still apply.
    UnderReview,
    /// `resolve_review` for an order that is not flagged for review.
    NotUnderReview,
    // --- infrastructure: try again later ---
    /// The engine could not commit after its bounded retries (conflicts or broker errors).
    Unavailable,
    /// The command failed on every one of its bounded deliveries and was moved to the
    /// dead-letter stream with its reason; nothing was written to the log.
    DeadLettered,
}

impl RejectionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::MalformedJson => "malformed_json",
            RejectionCode::UnknownCommand => "unknown_command",
            RejectionCode::MissingField => "missing_field",
            RejectionCode::InvalidField => "invalid_field",
            RejectionCode::InvalidId => "invalid_id",
            RejectionCode::InvalidAmount => "invalid_amount",
            RejectionCode::AmountOverflow => "amount_overflow",
            RejectionCode::UnknownCurrency => "unknown_currency",
            RejectionCode::CommandTooLarge => "command_too_large",
            RejectionCode::SubjectMismatch => "subject_mismatch",
            RejectionCode::DuplicateKey => "duplicate_key",
            RejectionCode::SensitiveData => "sensitive_data",
            RejectionCode::SignalNotAllowed => "signal_not_allowed",
            RejectionCode::OperatorOnly => "operator_only",
            RejectionCode::ReplyTargetRefused => "reply_target_refused",
            RejectionCode::OrderNotFound => "order_not_found",
            RejectionCode::OrderAlreadyExists => "order_already_exists",
            RejectionCode::InvalidTransition => "invalid_transition",
            RejectionCode::OrderTerminal => "order_terminal",
            RejectionCode::CurrencyMismatch => "currency_mismatch",
            RejectionCode::AmountExceedsAuthorized => "amount_exceeds_authorized",
            RejectionCode::AmountExceedsRefundable => "amount_exceeds_refundable",
            RejectionCode::OperationInProgress => "operation_in_progress",
            RejectionCode::NotExpired => "not_expired",
            RejectionCode::ProviderMismatch => "provider_mismatch",
            RejectionCode::UnsupportedByProvider => "unsupported_by_provider",
            RejectionCode::IdempotencyKeyReused => "idempotency_key_reused",
            RejectionCode::OrderHistoryFull => "order_history_full",
            RejectionCode::OrderUnreadable => "order_unreadable",
            RejectionCode::UnderReview => "under_review",
            RejectionCode::NotUnderReview => "not_under_review",
            RejectionCode::Unavailable => "unavailable",
            RejectionCode::DeadLettered => "dead_lettered",
        }
    }

    pub const ALL: [RejectionCode; 33] = [
        RejectionCode::MalformedJson,
        RejectionCode::UnknownCommand,
        RejectionCode::MissingField,
        RejectionCode::InvalidField,
        RejectionCode::InvalidId,
        RejectionCode::InvalidAmount,
        RejectionCode::AmountOverflow,
        RejectionCode::UnknownCurrency,
        RejectionCode::CommandTooLarge,
        RejectionCode::SubjectMismatch,
        RejectionCode::DuplicateKey,
        RejectionCode::SensitiveData,
        RejectionCode::SignalNotAllowed,
        RejectionCode::OperatorOnly,
        RejectionCode::ReplyTargetRefused,
        RejectionCode::OrderNotFound,
        RejectionCode::OrderAlreadyExists,
        RejectionCode::InvalidTransition,
        RejectionCode::OrderTerminal,
        RejectionCode::CurrencyMismatch,
        RejectionCode::AmountExceedsAuthorized,
        RejectionCode::AmountExceedsRefundable,
        RejectionCode::OperationInProgress,
        RejectionCode::NotExpired,
        RejectionCode::ProviderMismatch,
        RejectionCode::UnsupportedByProvider,
        RejectionCode::IdempotencyKeyReused,
        RejectionCode::OrderHistoryFull,
        RejectionCode::OrderUnreadable,
        RejectionCode::UnderReview,
        RejectionCode::NotUnderReview,
        RejectionCode::Unavailable,
        RejectionCode::DeadLettered,
    ];

    pub fn parse(s: &str) -> Option<RejectionCode> {
        RejectionCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Rejections of the message itself (never stored as an idempotent outcome: the command
    /// id may not even be readable).
    pub fn is_bad_input(self) -> bool {
        use RejectionCode::*;
        matches!(
            self,
            MalformedJson
                | UnknownCommand
                | MissingField
                | InvalidField
                | InvalidId
                | InvalidAmount
                | AmountOverflow
                | UnknownCurrency
                | CommandTooLarge
                | SubjectMismatch
                | DuplicateKey
                | SensitiveData
                | SignalNotAllowed
                | OperatorOnly
                | ReplyTargetRefused
        )
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed rejection: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The reply to a command.
// Why: an outcome is built once per command and serialized straight away; boxing the state
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
// Deserialize is written out below (same JSON): serde's derive for an internally tagged enum
// buffers the whole value before choosing the variant, a tenth of a fast-path client's CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Committed: the events appended and the order's state right after them (its bounded
    /// view: no idempotency data, whatever the number of commits).
    Accepted {
        command_id: CommandId,
        order_id: OrderId,
        /// The order's commit number that holds these events.
        commit: u64,
        events: Vec<Event>,
        state: StateView,
        /// True when this is a retry of a command processed before: nothing new happened.
        #[serde(default)]
        duplicate: bool,
    },
    /// Refused: the order did not change. On an existing order the refusal is logged as a
    /// `command_rejected` commit (its retries are answered from it); otherwise nothing was
    /// written to the log.
    Rejected {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        code: RejectionCode,
        message: String,
        #[serde(default)]
        duplicate: bool,
    },
}

/// Every field of either outcome, read in one pass whatever their order. `E` and `S` are how
/// events and the state are read: [`Event`] and [`StateView`] for serde's path (kept for the
/// differential tests), [`fast::FastEvent`] and [`fast::FastStateView`] for the fast one.
// Why the explicit bound: serde's derive would ask `E: Default` for the defaulted fields.
#[derive(Deserialize)]
#[serde(bound = "E: Deserialize<'de>, S: Deserialize<'de>")]
struct FlatOutcome<E, S> {
    outcome: OutcomeKind,
    #[serde(default)]
    command_id: Option<String>,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    commit: Option<u64>,
    #[serde(default)]
    events: Option<Vec<E>>,
    #[serde(default)]
    state: Option<S>,
    #[serde(default)]
    code: Option<RejectionCode>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeKind {
    Accepted,
    Rejected,
}

impl<E: Into<Event>, S: Into<StateView>> FlatOutcome<E, S> {
    fn into_outcome<Er: serde::de::Error>(self) -> Result<Outcome, Er> {
        let f = self;
        let missing = |field: &'static str| Er::missing_field(field);
        Ok(match f.outcome {
            OutcomeKind::Accepted => Outcome::Accepted {
                command_id: CommandId::try_from(f.command_id.ok_or_else(|| missing("command_id"))?)
                    .map_err(Er::custom)?,
                order_id: OrderId::try_from(f.order_id.ok_or_else(|| missing("order_id"))?)
                    .map_err(Er::custom)?,
                commit: f.commit.ok_or_else(|| missing("commit"))?,
                events: f
                    .events
                    .ok_or_else(|| missing("events"))?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                state: f.state.ok_or_else(|| missing("state"))?.into(),
                duplicate: f.duplicate,
            },
            OutcomeKind::Rejected => Outcome::Rejected {
                command_id: f.command_id,
                order_id: f.order_id,
                code: f.code.ok_or_else(|| missing("code"))?,
                message: f.message.ok_or_else(|| missing("message"))?,
                duplicate: f.duplicate,
            },
        })
    }
}

// The state is read by [`fast::FastStateView`]: the same derived reader as `StateView`'s but
// with timestamps read by the fast path's own parser (chrono's value for every input), so
// this stays exactly the serde reader for any deserializer (tests: `outcome::tests`).
impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        FlatOutcome::<Event, fast::FastStateView>::deserialize(d)?.into_outcome()
    }
}

impl Outcome {
    /// Reads an outcome from JSON: the same value or refusal as `serde_json::from_slice`,
    /// cheaper for outcomes as the engine writes them (events read in one pass, see
    /// [`crate::fast_decode`]); anything else is read by serde.
    pub fn from_json(bytes: &[u8]) -> Result<Outcome, serde_json::Error> {
        match fast::one_pass(bytes) {
            Ok(outcome) => Ok(outcome),
            Err(_) => serde_json::from_slice(bytes),
        }
    }

    /// The outcome's JSON: the same bytes as `serde_json::to_vec`, written cheaper for an
    /// accepted outcome (its state's timestamps without chrono's formatter, no regrowing).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        encode::to_vec(self)
    }

    /// serde's reader alone, as before the fast paths: the differential tests' reference and
    /// the cost example's baseline (not for callers: [`Outcome::from_json`] reads the same).
    #[doc(hidden)]
    pub fn from_json_serde_only(bytes: &[u8]) -> Result<Outcome, serde_json::Error> {
        serde_json::from_slice::<FlatOutcome<Event, StateView>>(bytes)?.into_outcome()
    }
}

impl Outcome {
    pub fn rejection_code(&self) -> Option<RejectionCode> {
        match self {
            Outcome::Rejected { code, .. } => Some(*code),
            Outcome::Accepted { .. } => None,
        }
    }
    pub fn is_duplicate(&self) -> bool {
        match self {
            Outcome::Accepted { duplicate, .. } | Outcome::Rejected { duplicate, .. } => *duplicate,
        }
    }
    pub fn state(&self) -> Option<&StateView> {
        match self {
            Outcome::Accepted { state, .. } => Some(state),
            Outcome::Rejected { .. } => None,
        }
    }
}

mod encode;
mod fast;
#[cfg(test)]
mod tests;
