//! `evolve`: folds one event into the state. No rules here (those are in `decide`): only
//! bookkeeping, so that replaying the log can never disagree with what was decided.

use paystate_events::{Discrepancy, Event, MinorUnits, OrderState, SignalDisposition, Status};

/// An event that cannot be folded: the log is not one this engine could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvolveError {
    #[error("the first event of an order must be order_created, found {0}")]
    NotCreated(&'static str),
    #[error("order_created for an order that already exists")]
    CreatedTwice,
}

/// Folds `event` into `state` (`None` before the order exists).
pub fn evolve(mut state: Option<OrderState>, event: &Event) -> Result<OrderState, EvolveError> {
    evolve_in_place(&mut state, event)?;
    // Why: folding in place leaves an order on success; the error is never produced.
    state.ok_or(EvolveError::NotCreated(event.name()))
}

/// Folds `event` into `state` where it lies (`None` before the order exists). On an error
/// `state` is left as it was. What every fold uses: an order's state is hundreds of bytes,
/// and passing it by value moved it several times per event (most of the core's time).
pub fn evolve_in_place(state: &mut Option<OrderState>, event: &Event) -> Result<(), EvolveError> {
    let creates = matches!(event, Event::OrderCreated { .. });
    match state {
        None if creates => {
            *state = Some(created(event));
            Ok(())
        }
        None => Err(EvolveError::NotCreated(event.name())),
        Some(_) if creates => Err(EvolveError::CreatedTwice),
        Some(s) => {
            apply(s, event);
            Ok(())
        }
    }
}

/// The bookkeeping of one event on an existing order.
fn apply(s: &mut OrderState, event: &Event) {
    match event {
        Event::OrderCreated { .. } => {}
        Event::PaymentRequested { .. } => s.status = Status::Pending,
        Event::CustomerActionRequired { action, evidence } => {
            s.status = Status::Pending;
            s.customer_action = action.clone();
            remember_ref(s, &evidence.provider_ref);
        }
        Event::PaymentAuthorized { amount, evidence } => {
            s.status = Status::Authorized;
            s.authorized = amount.minor_units.units();
            remember_ref(s, &evidence.provider_ref);
        }
        Event::CaptureRequested { capture_id, amount } => {
            s.capture_pending = Some((capture_id.clone(), amount.minor_units.units()));
        }
        Event::PaymentCaptured { amount, evidence } => {
            s.status = Status::Captured;
            s.captured = amount.minor_units.units();
            s.authorized = s.authorized.max(s.captured);
            s.capture_pending = None;
            // A capture answers a cancellation still waiting: the void lost the race.
            s.cancel_pending = false;
            s.customer_action = None;
            remember_ref(s, &evidence.provider_ref);
        }
        Event::CaptureFailed { .. } => s.capture_pending = None,
        Event::CancelRequested { .. } => s.cancel_pending = true,
        Event::OrderCancelled { .. } => {
            s.status = Status::Cancelled;
            s.cancel_pending = false;
            s.capture_pending = None;
            s.customer_action = None;
        }
        Event::CancelFailed { .. } => s.cancel_pending = false,
        Event::RefundRequested { refund_id, amount } => {
            s.refunds_pending
                .insert(refund_id.clone(), amount.minor_units.units());
        }
        Event::RefundCompleted {
            refund_id, amount, ..
        } => {
            s.refunds_pending.remove(refund_id);
            s.refunds_completed
                .insert(refund_id.clone(), amount.minor_units.units());
            s.refunded = s.refunded.plus(amount.minor_units.units());
            if s.refunded >= s.captured && s.captured > MinorUnits::ZERO {
                s.status = Status::Returned;
            }
        }
        // The confirmation travels to the provider; the order stays pending until it answers.
        Event::TransferConfirmationSubmitted { .. } => {}
        Event::RefundFailed { refund_id, .. } => {
            s.refunds_pending.remove(refund_id);
        }
        Event::OrderSettled { .. } => s.status = Status::Done,
        Event::PaymentFailed { code, message, .. } => {
            s.status = Status::Failed;
            s.failure = Some((code.clone(), message.clone()));
            s.capture_pending = None;
            s.cancel_pending = false;
            s.customer_action = None;
        }
        Event::SignalRecorded { disposition, .. } => match disposition {
            SignalDisposition::Duplicate
            | SignalDisposition::Late
            | SignalDisposition::Unrecognised
            | SignalDisposition::OutcomeUnknown
            | SignalDisposition::Probe => {}
        },
        Event::DiscrepancyDetected {
            signal,
            code,
            detail,
        } => {
            s.needs_review = true;
            s.discrepancies.push(Discrepancy {
                code: code.clone(),
                detail: detail.clone(),
                signal: signal.kind.name().to_string(),
                evidence_ref: signal.evidence_ref.clone(),
                commit: s.commits,
            });
        }
        // The discrepancies stay: they are history. Only the flag that holds the order ends.
        Event::ReviewResolved { .. } => s.needs_review = false,
        // A refused command changes nothing of the order; only the count (and, in `fold`, the
        // commit number, chain head and applied ids, as for every commit) moves.
        Event::CommandRejected { .. } => s.rejections_logged += 1,
    }
}

fn remember_ref(s: &mut OrderState, provider_ref: &Option<String>) {
    if s.provider_ref.is_none() {
        s.provider_ref.clone_from(provider_ref);
    }
}

fn created(event: &Event) -> OrderState {
    let Event::OrderCreated {
        order_id,
        merchant_reference,
        amount,
        provider,
        capture_mode,
        expires_at,
        merchant_account,
        metadata,
        created_at,
    } = event
    else {
        unreachable!("created is only called for order_created")
    };
    OrderState {
        order_id: order_id.clone(),
        status: Status::Created,
        merchant_reference: merchant_reference.clone(),
        provider: *provider,
        merchant_account: merchant_account.clone(),
        capture_mode: *capture_mode,
        amount: *amount,
        authorized: MinorUnits::ZERO,
        captured: MinorUnits::ZERO,
        refunded: MinorUnits::ZERO,
        capture_pending: None,
        cancel_pending: false,
        refunds_pending: Default::default(),
        refunds_completed: Default::default(),
        provider_ref: None,
        customer_action: None,
        failure: None,
        discrepancies: Vec::new(),
        needs_review: false,
        expires_at: *expires_at,
        metadata: metadata.clone(),
        created_at: *created_at,
        updated_at: *created_at,
        commits: 0,
        head_hash: String::new(),
        applied: Default::default(),
        rejections_logged: 0,
    }
}
