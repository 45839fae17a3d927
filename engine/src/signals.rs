//! What a provider signal means for an order. Signals are facts from outside: a well-formed
//! signal always produces a commit, so the evidence is kept. It either moves the order
//! forward, is recorded without effect (duplicate, late, unrecognised, outcome unknown), or is
//! recorded as a discrepancy when it contradicts the log. State never regresses. A signal
//! naming a provider reference other than the order's ([`REFERENCE_MISMATCH`]) never moves
//! the order: it is a discrepancy and flags the order for review.

use paystate_events::{
    CancelledBy, Event, Evidence, MinorUnits, Money, Operation, OrderState, ProviderSignal,
    SignalDisposition as Disposition, SignalKind, Status,
};

pub(crate) fn decide_signal(s: &OrderState, sig: &ProviderSignal) -> Vec<Event> {
    // A report about another provider object (another payment, another exchange order) is
    // never about this order, whatever routed it here: it is kept as evidence and a person
    // looks at it. Only an order's first reference is its reference (see `evolve`).
    if let Some((known, reported)) = contradicting_reference(s, sig) {
        return discrepancy(
            sig,
            REFERENCE_MISMATCH,
            format!(
                "signal names provider reference {:?}; the order's is {:?}",
                bounded(reported),
                bounded(known)
            ),
        );
    }
    if let Some(m) = signal_money(sig).filter(|m| m.currency != s.currency()) {
        return discrepancy(
            sig,
            "currency_mismatch",
            format!("{} reported for an order in {}", m.currency, s.currency()),
        );
    }
    let ev = Evidence::from(sig);
    match &sig.kind {
        SignalKind::Unrecognised { .. } => record(sig, Disposition::Unrecognised),
        SignalKind::OutcomeUnknown { .. } => record(sig, Disposition::OutcomeUnknown),
        SignalKind::NeedsReview { reason } => discrepancy(sig, "needs_review", reason.clone()),
        SignalKind::Probed { .. } => record(sig, Disposition::Probe),
        SignalKind::Accepted { action } => match s.status {
            // Nothing new for a pending order (a resend, or a status probe saying "still
            // pending"): keep the customer action already shown.
            Status::Pending if action.is_none() || *action == s.customer_action => {
                record(sig, Disposition::Duplicate)
            }
            Status::Created | Status::Pending => {
                vec![Event::CustomerActionRequired {
                    action: action.clone(),
                    evidence: ev,
                }]
            }
            _ => record(sig, Disposition::Late),
        },
        SignalKind::Authorized { amount } => authorized(s, sig, ev, *amount),
        SignalKind::Captured { amount } => captured(s, sig, ev, *amount),
        SignalKind::Failed {
            operation,
            code,
            message,
            refund_id,
        } => failed(s, sig, ev, *operation, code, message, refund_id.as_deref()),
        SignalKind::Cancelled => match s.status {
            Status::Created | Status::Pending | Status::Authorized => {
                vec![Event::OrderCancelled {
                    by: CancelledBy::Provider,
                    evidence: Some(ev),
                }]
            }
            Status::Cancelled => record(sig, Disposition::Duplicate),
            Status::Failed => record(sig, Disposition::Late),
            Status::Captured | Status::Done | Status::Returned => discrepancy(
                sig,
                "cancelled_after_capture",
                format!("provider reports cancelled; order is {}", s.status),
            ),
        },
        SignalKind::Refunded { refund_id, amount } => {
            refunded(s, sig, ev, refund_id.as_deref(), *amount)
        }
        SignalKind::Settled { amount } => settled(s, sig, ev, *amount),
    }
}

fn authorized(
    s: &OrderState,
    sig: &ProviderSignal,
    ev: Evidence,
    amount: Option<Money>,
) -> Vec<Event> {
    let amount = amount.unwrap_or(s.amount);
    if amount.minor_units > s.amount.minor_units {
        return discrepancy(
            sig,
            "amount_exceeds_order",
            format!("authorized {} of an order of {}", amount, s.amount),
        );
    }
    match s.status {
        Status::Created | Status::Pending => vec![Event::PaymentAuthorized {
            amount,
            evidence: ev,
        }],
        Status::Authorized if amount.minor_units.units() == s.authorized => {
            record(sig, Disposition::Duplicate)
        }
        Status::Authorized => discrepancy(
            sig,
            "authorized_amount_changed",
            format!(
                "provider reports {} authorized; log has {}",
                amount.minor_units, s.authorized
            ),
        ),
        Status::Captured | Status::Done | Status::Returned => record(sig, Disposition::Late),
        Status::Cancelled => discrepancy(
            sig,
            "authorized_after_cancel",
            "funds authorized on a cancelled order",
        ),
        Status::Failed => discrepancy(
            sig,
            "authorized_after_failure",
            "funds authorized on a failed order",
        ),
    }
}

fn captured(
    s: &OrderState,
    sig: &ProviderSignal,
    ev: Evidence,
    amount: Option<Money>,
) -> Vec<Event> {
    let default = match s.capture_pending {
        Some((_, pending)) => pending,
        None if s.authorized > MinorUnits::ZERO => s.authorized,
        None => s.amount.minor_units.units(),
    };
    let amount = amount.unwrap_or_else(|| with_units(s, default));
    if amount.minor_units > s.amount.minor_units {
        return discrepancy(
            sig,
            "amount_exceeds_order",
            format!("captured {} of an order of {}", amount, s.amount),
        );
    }
    match s.status {
        Status::Created | Status::Pending => vec![Event::PaymentCaptured {
            amount,
            evidence: ev,
        }],
        Status::Authorized if amount.minor_units.units() <= s.authorized => {
            vec![Event::PaymentCaptured {
                amount,
                evidence: ev,
            }]
        }
        Status::Authorized => discrepancy(
            sig,
            "capture_exceeds_authorized",
            format!(
                "provider reports {} captured; {} authorized",
                amount.minor_units, s.authorized
            ),
        ),
        Status::Captured | Status::Done | Status::Returned
            if amount.minor_units.units() == s.captured =>
        {
            record(sig, Disposition::Duplicate)
        }
        Status::Captured | Status::Done | Status::Returned => discrepancy(
            sig,
            "capture_amount_mismatch",
            format!(
                "provider reports {} captured; log has {}",
                amount.minor_units, s.captured
            ),
        ),
        Status::Cancelled => discrepancy(
            sig,
            "captured_after_cancel",
            "provider reports funds captured on a cancelled order",
        ),
        Status::Failed => discrepancy(
            sig,
            "captured_after_failure",
            "provider reports funds captured on a failed order",
        ),
    }
}

fn failed(
    s: &OrderState,
    sig: &ProviderSignal,
    ev: Evidence,
    operation: Operation,
    code: &str,
    message: &str,
    refund_id: Option<&str>,
) -> Vec<Event> {
    let (code, message) = (code.to_string(), message.to_string());
    match operation {
        Operation::Payment => match s.status {
            Status::Created | Status::Pending | Status::Authorized => {
                vec![Event::PaymentFailed {
                    code,
                    message,
                    evidence: ev,
                }]
            }
            Status::Failed => record(sig, Disposition::Duplicate),
            Status::Cancelled => record(sig, Disposition::Late),
            Status::Captured | Status::Done | Status::Returned => discrepancy(
                sig,
                "failed_after_capture",
                format!("provider reports payment failed; order is {}", s.status),
            ),
        },
        Operation::Capture if s.capture_pending.is_some() => vec![Event::CaptureFailed {
            code,
            message,
            evidence: ev,
        }],
        Operation::Cancel if s.cancel_pending => vec![Event::CancelFailed {
            code,
            message,
            evidence: ev,
        }],
        Operation::Refund => match pending_refund(s, refund_id, None) {
            Some((id, _)) => vec![Event::RefundFailed {
                refund_id: id,
                code,
                message,
                evidence: ev,
            }],
            None => record(sig, Disposition::Late),
        },
        Operation::Capture | Operation::Cancel => record(sig, Disposition::Late),
    }
}

fn refunded(
    s: &OrderState,
    sig: &ProviderSignal,
    ev: Evidence,
    refund_id: Option<&str>,
    amount: Option<Money>,
) -> Vec<Event> {
    // A refund we did not ask for is kept under `provider:<evidence>`: the same evidence again
    // is the same refund, not a second one.
    let unrequested_id = format!("provider:{}", sig.evidence_ref);
    if s.refunds_completed
        .contains_key(refund_id.unwrap_or(&unrequested_id))
    {
        return record(sig, Disposition::Duplicate);
    }
    match s.status {
        Status::Captured => {}
        Status::Returned if amount.is_none() && refund_id.is_none() => {
            return record(sig, Disposition::Duplicate)
        }
        Status::Returned => {
            return discrepancy(
                sig,
                "refund_after_returned",
                "provider reports a refund beyond the captured amount",
            )
        }
        other => {
            return discrepancy(
                sig,
                "refund_not_captured",
                format!("provider reports a refund; order is {other}"),
            )
        }
    }
    let amount_units = amount.map(|m| m.minor_units.units());
    if let Some((id, pending)) = pending_refund(s, refund_id, amount_units) {
        let units = amount_units.unwrap_or(pending);
        let in_flight_others = s.refundable().plus(pending);
        if units > in_flight_others {
            return discrepancy(
                sig,
                "refund_exceeds_captured",
                format!("refund of {units} exceeds what is refundable"),
            );
        }
        return vec![Event::RefundCompleted {
            refund_id: id,
            amount: with_units(s, units),
            evidence: ev,
        }];
    }
    // A refund we did not ask for (dashboard, provider-initiated): accepted while it fits.
    let units = amount_units.unwrap_or(s.refundable());
    if units == MinorUnits::ZERO || units > s.refundable() {
        return discrepancy(
            sig,
            "refund_exceeds_captured",
            format!("refund of {units} exceeds what is refundable"),
        );
    }
    let id = refund_id.map(str::to_string).unwrap_or(unrequested_id);
    vec![Event::RefundCompleted {
        refund_id: id,
        amount: with_units(s, units),
        evidence: ev,
    }]
}

fn settled(
    s: &OrderState,
    sig: &ProviderSignal,
    ev: Evidence,
    amount: Option<Money>,
) -> Vec<Event> {
    match s.status {
        Status::Captured => vec![Event::OrderSettled { evidence: ev }],
        Status::Created | Status::Pending | Status::Authorized => {
            // Settled straight from pending (wallet transfer credited, exchange done):
            // the funds were taken, so they count as captured first.
            let mut events = captured(s, sig, ev.clone(), amount);
            if matches!(events.as_slice(), [Event::PaymentCaptured { .. }]) {
                events.push(Event::OrderSettled { evidence: ev });
            }
            events
        }
        Status::Done => record(sig, Disposition::Duplicate),
        Status::Returned => record(sig, Disposition::Late),
        Status::Cancelled => discrepancy(
            sig,
            "settled_after_cancel",
            "provider reports settlement of a cancelled order",
        ),
        Status::Failed => discrepancy(
            sig,
            "settled_after_failure",
            "provider reports settlement of a failed order",
        ),
    }
}

/// The pending refund a signal refers to: by id, or the only one pending (matching `amount`
/// when given).
fn pending_refund(
    s: &OrderState,
    refund_id: Option<&str>,
    amount: Option<MinorUnits>,
) -> Option<(String, MinorUnits)> {
    match refund_id {
        Some(id) => s.refunds_pending.get(id).map(|a| (id.to_string(), *a)),
        None => {
            let mut matching = s
                .refunds_pending
                .iter()
                .filter(|(_, a)| amount.is_none_or(|want| **a == want));
            match (matching.next(), matching.next()) {
                (Some((id, a)), None) => Some((id.clone(), *a)),
                _ => None,
            }
        }
    }
}

fn signal_money(sig: &ProviderSignal) -> Option<Money> {
    match &sig.kind {
        SignalKind::Authorized { amount }
        | SignalKind::Captured { amount }
        | SignalKind::Refunded { amount, .. }
        | SignalKind::Settled { amount } => *amount,
        _ => None,
    }
}

/// `units` in the order's currency. Callers pass a non-zero amount bounded by the order's.
fn with_units(s: &OrderState, units: MinorUnits) -> Money {
    match paystate_events::Amount::new(units.0) {
        Ok(a) => Money::new(a, s.currency()),
        // Why: only reachable with zero; the order amount is the safe, visible fallback.
        Err(_) => s.amount,
    }
}

/// Discrepancy code of a signal whose provider reference is not the order's.
pub const REFERENCE_MISMATCH: &str = "provider_reference_mismatch";
/// Longest reference text quoted in a discrepancy's detail (the signal keeps it whole).
const REFERENCE_IN_DETAIL_MAX: usize = 80;

/// `(known, reported)` when the signal names a provider reference and the order already has
/// another one.
fn contradicting_reference<'a>(
    s: &'a OrderState,
    sig: &'a ProviderSignal,
) -> Option<(&'a str, &'a str)> {
    match (s.provider_ref.as_deref(), sig.provider_ref.as_deref()) {
        (Some(known), Some(reported)) if known != reported => Some((known, reported)),
        _ => None,
    }
}

fn bounded(text: &str) -> String {
    text.chars().take(REFERENCE_IN_DETAIL_MAX).collect()
}

fn record(sig: &ProviderSignal, disposition: Disposition) -> Vec<Event> {
    vec![Event::SignalRecorded {
        signal: sig.clone(),
        disposition,
    }]
}

fn discrepancy(sig: &ProviderSignal, code: &str, detail: impl Into<String>) -> Vec<Event> {
    vec![Event::DiscrepancyDetected {
        signal: sig.clone(),
        code: code.to_string(),
        detail: detail.into(),
    }]
}
