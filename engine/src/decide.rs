//! `decide`: the business rules for client commands. Provider signals are in `signals`.

use crate::signals;
use paystate_events::capabilities::{self, Capability};
use paystate_events::command::{Attachment, METADATA_ENTRIES_MAX, TEXT_LEN_MAX};
use paystate_events::limits::{
    EXPIRES_AT_MAX_UNIX_S, REFUNDS_PENDING_MAX, REJECTIONS_LOGGED_PER_ORDER_MAX,
};
use paystate_events::{
    CancelledBy, Command, CommandEnvelope, Event, MinorUnits, Money, OrderState, Rejection,
    RejectionCode as Code, Status, Timestamp,
};

/// Bound on commits per order: an order with this many commits takes no more commands.
/// Real orders have a handful; the bound keeps state (applied command ids) small. Defined
/// with the other limits in `paystate_events::limits`.
pub use paystate_events::limits::COMMITS_PER_ORDER_MAX;

/// What a command means for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append these events (never empty) as one commit.
    Commit(Vec<Event>),
    /// This command id was already applied with the same body, in commit `commit`.
    /// Idempotency is an outcome, not an error: nothing is appended.
    AlreadyApplied { commit: u64 },
}

/// Whether a rejection (`code`) of a command on the order in `state` is appended to the
/// order's log as a commit whose only event is `command_rejected` (decision 0013), so a retry
/// is answered with it from the log. Not without an order (nothing to append to), not
/// `idempotency_key_reused` (the id belongs to the original command), not
/// `order_history_full` (no room), and not once the order logged
/// [`REJECTIONS_LOGGED_PER_ORDER_MAX`] rejections (answered, decided again on retry). The
/// audit holds logged rejections to the same rule.
pub fn logs_rejection(state: Option<&OrderState>, code: Code) -> bool {
    let Some(s) = state else { return false };
    !matches!(code, Code::IdempotencyKeyReused | Code::OrderHistoryFull)
        && s.rejections_logged < REJECTIONS_LOGGED_PER_ORDER_MAX
        && s.commits < COMMITS_PER_ORDER_MAX
}

/// Decides what `cmd` means for the order in `state` (`None`: the order does not exist yet),
/// at `now` (the broker's receive time of the command). Pure and deterministic.
pub fn decide(
    state: Option<&OrderState>,
    cmd: &CommandEnvelope,
    now: Timestamp,
) -> Result<Decision, Rejection> {
    if let Some(s) = state {
        if let Some(applied) = s.applied.get(&cmd.command_id) {
            return if applied.fingerprint == cmd.fingerprint() {
                Ok(Decision::AlreadyApplied {
                    commit: applied.commit,
                })
            } else {
                Err(reject(
                    Code::IdempotencyKeyReused,
                    format!(
                        "command id {} was used before with a different body",
                        cmd.command_id
                    ),
                ))
            };
        }
        if s.commits >= COMMITS_PER_ORDER_MAX {
            return Err(reject(
                Code::OrderHistoryFull,
                "order reached its bound on commits",
            ));
        }
    }
    let events = match (&cmd.command, state) {
        (Command::CreateOrder { .. }, None) => create(cmd, now)?,
        (Command::CreateOrder { .. }, Some(_)) => {
            return Err(reject(
                Code::OrderAlreadyExists,
                format!("order {} already exists", cmd.order_id),
            ))
        }
        (_, None) => {
            return Err(reject(
                Code::OrderNotFound,
                format!("order {} does not exist", cmd.order_id),
            ))
        }
        (command, Some(s)) if s.needs_review && blocked_under_review(command) => {
            return Err(reject(
                Code::UnderReview,
                format!(
                    "order {} is flagged for review; an operator must resolve it (resolve_review) before {}",
                    cmd.order_id,
                    command.name()
                ),
            ))
        }
        (Command::ResolveReview { operator, reason }, Some(s)) => {
            resolve_review(s, operator, reason)?
        }
        (Command::StartPayment { initiation }, Some(s)) => {
            require(s, &[Status::Created], "start_payment")?;
            check_texts(initiation.params.iter().flat_map(|(k, v)| [k, v]))?;
            vec![Event::PaymentRequested {
                initiation: initiation.clone(),
            }]
        }
        (Command::Capture { amount }, Some(s)) => capture(s, cmd, *amount)?,
        (Command::Cancel { reason }, Some(s)) => cancel(s, reason.clone())?,
        (Command::Refund { amount }, Some(s)) => refund(s, cmd, *amount)?,
        (Command::Expire, Some(s)) => expire(s, now)?,
        (
            Command::ConfirmTransfer {
                reference,
                attachment,
            },
            Some(s),
        ) => confirm_transfer(s, cmd, reference, attachment)?,
        (Command::ProviderSignal { signal }, Some(s)) => {
            if signal.provider != s.provider {
                return Err(reject(
                    Code::ProviderMismatch,
                    format!(
                        "signal from {} for an order with {}",
                        signal.provider, s.provider
                    ),
                ));
            }
            signals::decide_signal(s, signal)
        }
    };
    Ok(Decision::Commit(events))
}

fn create(cmd: &CommandEnvelope, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    let Command::CreateOrder {
        merchant_reference,
        amount,
        provider,
        capture_mode,
        expires_at,
        merchant_account,
        metadata,
    } = &cmd.command
    else {
        unreachable!("create is only called for create_order")
    };
    if merchant_reference.is_empty() {
        return Err(reject(
            Code::InvalidField,
            "merchant_reference must not be empty",
        ));
    }
    if metadata.len() > METADATA_ENTRIES_MAX {
        return Err(reject(
            Code::InvalidField,
            format!("metadata has more than {METADATA_ENTRIES_MAX} entries"),
        ));
    }
    check_texts(
        std::iter::once(merchant_reference)
            .chain(merchant_account.iter())
            .chain(metadata.iter().flat_map(|(k, v)| [k, v])),
    )?;
    if let Some(exp) = expires_at {
        if *exp <= now {
            return Err(reject(
                Code::InvalidField,
                "expires_at is not in the future",
            ));
        }
        if *exp > latest_expiry() {
            return Err(reject(
                Code::InvalidField,
                "expires_at is after 9999-12-31T23:59:59Z (the latest expiry that can be scheduled)",
            ));
        }
    }
    Ok(vec![Event::OrderCreated {
        order_id: cmd.order_id.clone(),
        merchant_reference: merchant_reference.clone(),
        amount: *amount,
        provider: *provider,
        capture_mode: *capture_mode,
        expires_at: *expires_at,
        merchant_account: merchant_account.clone(),
        metadata: metadata.clone(),
        created_at: now,
    }])
}

fn capture(
    s: &OrderState,
    cmd: &CommandEnvelope,
    amount: Option<Money>,
) -> Result<Vec<Event>, Rejection> {
    require(s, &[Status::Authorized], "capture")?;
    no_operation_in_flight(s)?;
    let amount = amount_or(s, amount, s.authorized)?;
    if amount.minor_units.units() > s.authorized {
        return Err(reject(
            Code::AmountExceedsAuthorized,
            format!(
                "capture of {} exceeds the authorized {}",
                amount.minor_units, s.authorized
            ),
        ));
    }
    Ok(vec![Event::CaptureRequested {
        capture_id: cmd.command_id.to_string(),
        amount,
    }])
}

fn cancel(s: &OrderState, reason: Option<String>) -> Result<Vec<Event>, Rejection> {
    require(
        s,
        &[Status::Created, Status::Pending, Status::Authorized],
        "cancel",
    )?;
    check_texts(reason.iter())?;
    if s.status == Status::Created {
        // Nothing reached the provider: the cancellation is ours alone.
        return Ok(vec![Event::OrderCancelled {
            by: CancelledBy::Merchant,
            evidence: None,
        }]);
    }
    no_operation_in_flight(s)?;
    Ok(vec![Event::CancelRequested { reason }])
}

fn refund(
    s: &OrderState,
    cmd: &CommandEnvelope,
    amount: Option<Money>,
) -> Result<Vec<Event>, Rejection> {
    require(s, &[Status::Captured], "refund")?;
    if s.refunds_completed.contains_key(cmd.command_id.as_str()) {
        // The command id is the refund id; the provider already reported a refund under it.
        return Err(reject(
            Code::IdempotencyKeyReused,
            format!(
                "refund id {} is already a completed refund of this order",
                cmd.command_id
            ),
        ));
    }
    if s.refunds_pending.len() >= REFUNDS_PENDING_MAX {
        // Why: the state's view (outcomes, projection records) carries every pending refund.
        return Err(reject(
            Code::OperationInProgress,
            format!("{REFUNDS_PENDING_MAX} refunds are already waiting for the provider"),
        ));
    }
    let refundable = s.refundable();
    if refundable == MinorUnits::ZERO {
        return Err(reject(
            Code::AmountExceedsRefundable,
            "nothing left to refund",
        ));
    }
    let amount = amount_or(s, amount, refundable)?;
    if amount.minor_units.units() > refundable {
        return Err(reject(
            Code::AmountExceedsRefundable,
            format!(
                "refund of {} exceeds the refundable {}",
                amount.minor_units, refundable
            ),
        ));
    }
    Ok(vec![Event::RefundRequested {
        refund_id: cmd.command_id.to_string(),
        amount,
    }])
}

/// Digits in a transfer reference (Paykassma `key1`).
const TRANSFER_REFERENCE_DIGITS: usize = 12;

fn confirm_transfer(
    s: &OrderState,
    cmd: &CommandEnvelope,
    reference: &str,
    attachment: &Attachment,
) -> Result<Vec<Event>, Rejection> {
    if !capabilities::supports(s.provider, Capability::TransferConfirmation) {
        return Err(reject(
            Code::UnsupportedByProvider,
            format!("{} has no transfer confirmation", s.provider),
        ));
    }
    require(s, &[Status::Pending], "confirm_transfer")?;
    if reference.len() != TRANSFER_REFERENCE_DIGITS
        || !reference.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(reject(
            Code::InvalidField,
            format!("reference must be exactly {TRANSFER_REFERENCE_DIGITS} digits"),
        ));
    }
    check_texts(
        [
            &attachment.object,
            &attachment.file_name,
            &attachment.content_type,
        ]
        .into_iter(),
    )?;
    Ok(vec![Event::TransferConfirmationSubmitted {
        confirmation_id: cmd.command_id.to_string(),
        reference: reference.to_string(),
        attachment: attachment.clone(),
    }])
}

fn expire(s: &OrderState, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    match s.expires_at {
        Some(at) if now >= at => {}
        Some(at) => return Err(reject(Code::NotExpired, format!("order expires at {at}"))),
        None => return Err(reject(Code::NotExpired, "order has no expiry")),
    }
    require(
        s,
        &[Status::Created, Status::Pending, Status::Authorized],
        "expire",
    )?;
    // A started payment is cancelled at the provider where it can be (the worker voids it;
    // the provider's confirmation cancels the order); otherwise only the order is cancelled
    // here, and a payment the provider completes later becomes a discrepancy for review.
    let at_provider = match s.status {
        Status::Authorized => true,
        Status::Pending => capabilities::supports(s.provider, Capability::Cancel),
        _ => false,
    };
    if at_provider {
        no_operation_in_flight(s)?;
        return Ok(vec![Event::CancelRequested {
            reason: Some("expired".into()),
        }]);
    }
    Ok(vec![Event::OrderCancelled {
        by: CancelledBy::Expiry,
        evidence: None,
    }])
}

/// Commands a flagged order refuses: everything a merchant asks of the provider. Provider
/// reports are facts and still apply; expiry still applies (an order must not outlive its
/// `expires_at` because nobody has looked at it yet); `resolve_review` is how the flag ends.
fn blocked_under_review(command: &Command) -> bool {
    match command {
        Command::StartPayment { .. }
        | Command::Capture { .. }
        | Command::Cancel { .. }
        | Command::Refund { .. }
        | Command::ConfirmTransfer { .. } => true,
        Command::CreateOrder { .. }
        | Command::Expire
        | Command::ResolveReview { .. }
        | Command::ProviderSignal { .. } => false,
    }
}

/// An operator clears the review flag, in any status (a terminal order can be flagged too).
fn resolve_review(s: &OrderState, operator: &str, reason: &str) -> Result<Vec<Event>, Rejection> {
    if operator.trim().is_empty() || reason.trim().is_empty() {
        return Err(reject(
            Code::InvalidField,
            "resolve_review needs an operator and a reason",
        ));
    }
    check_texts([operator, reason].into_iter())?;
    if !s.needs_review {
        return Err(reject(
            Code::NotUnderReview,
            format!("order {} is not flagged for review", s.order_id),
        ));
    }
    Ok(vec![Event::ReviewResolved {
        operator: operator.to_string(),
        reason: reason.to_string(),
    }])
}

/// Rejects unless the order is in one of `allowed`; terminal orders get `order_terminal`.
fn require(s: &OrderState, allowed: &[Status], what: &str) -> Result<(), Rejection> {
    if allowed.contains(&s.status) {
        return Ok(());
    }
    let code = if s.status.is_terminal() {
        Code::OrderTerminal
    } else {
        Code::InvalidTransition
    };
    Err(reject(
        code,
        format!("{what} is not allowed when the order is {}", s.status),
    ))
}

fn no_operation_in_flight(s: &OrderState) -> Result<(), Rejection> {
    if s.capture_pending.is_some() || s.cancel_pending {
        return Err(reject(
            Code::OperationInProgress,
            "a capture or cancellation is waiting for the provider",
        ));
    }
    Ok(())
}

/// The command's amount checked against the order currency, or `default` in that currency.
fn amount_or(
    s: &OrderState,
    amount: Option<Money>,
    default: MinorUnits,
) -> Result<Money, Rejection> {
    match amount {
        Some(m) if m.currency != s.currency() => Err(reject(
            Code::CurrencyMismatch,
            format!("amount in {} for an order in {}", m.currency, s.currency()),
        )),
        Some(m) => Ok(m),
        None => paystate_events::Amount::new(default.0)
            .map(|a| Money::new(a, s.currency()))
            .map_err(|_| {
                reject(
                    Code::InvalidAmount,
                    "nothing to take: the amount would be zero",
                )
            }),
    }
}

fn check_texts<'a, T: AsRef<str> + ?Sized + 'a>(
    texts: impl Iterator<Item = &'a T>,
) -> Result<(), Rejection> {
    for t in texts {
        if t.as_ref().len() > TEXT_LEN_MAX {
            return Err(reject(
                Code::InvalidField,
                format!("a text field exceeds {TEXT_LEN_MAX} bytes"),
            ));
        }
    }
    Ok(())
}

/// [`EXPIRES_AT_MAX_UNIX_S`] as a time.
fn latest_expiry() -> Timestamp {
    Timestamp::from_timestamp(EXPIRES_AT_MAX_UNIX_S, 0).unwrap_or_default()
}

pub(crate) fn reject(code: Code, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}
