//! What must hold of every order after every step. Checked by the proptests after every
//! command and signal, by the engine before it commits (assertions stay on) and by the audit
//! over the whole log.

use paystate_events::{MinorUnits, OrderState, Status};

/// A broken invariant, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: &'static str,
    pub detail: String,
}

/// Every invariant violated by `s` (empty when all hold).
pub fn check_invariants(s: &OrderState) -> Vec<Violation> {
    let mut v = Vec::new();
    let amount = s.amount.minor_units.units();
    let pending_refunds = s
        .refunds_pending
        .values()
        .fold(MinorUnits::ZERO, |a, b| a.plus(*b));
    let completed_refunds = s
        .refunds_completed
        .values()
        .fold(MinorUnits::ZERO, |a, b| a.plus(*b));
    // Why the detail is a closure: the audit checks every order after every commit, and
    // formatting every detail up front (to throw it away when all holds) showed in its profile.
    let mut check = |ok: bool, code: &'static str, detail: &dyn Fn() -> String| {
        if !ok {
            v.push(Violation {
                code,
                detail: detail(),
            });
        }
    };
    check(s.authorized <= amount, "authorized_exceeds_amount", &|| {
        format!("{} > {}", s.authorized, amount)
    });
    check(
        s.captured <= s.authorized,
        "captured_exceeds_authorized",
        &|| format!("{} > {}", s.captured, s.authorized),
    );
    check(
        s.refunded <= s.captured,
        "refunded_exceeds_captured",
        &|| format!("{} > {}", s.refunded, s.captured),
    );
    check(
        s.refunded.plus(pending_refunds) <= s.captured,
        "refunds_in_flight_exceed_captured",
        &|| format!("{} + {} > {}", s.refunded, pending_refunds, s.captured),
    );
    check(
        completed_refunds == s.refunded,
        "refund_ledger_mismatch",
        &|| format!("{} != {}", completed_refunds, s.refunded),
    );
    if let Some((_, c)) = &s.capture_pending {
        check(
            *c <= s.authorized,
            "capture_pending_exceeds_authorized",
            &|| format!("{} > {}", c, s.authorized),
        );
    }
    check(
        s.applied.len() as u64 == s.commits,
        "applied_commands_mismatch",
        &|| format!("{} commands for {} commits", s.applied.len(), s.commits),
    );
    // The flag is only ever raised by a recorded discrepancy (and lowered by a resolution).
    check(
        !s.needs_review || !s.discrepancies.is_empty(),
        "review_without_discrepancy",
        &|| "needs_review is set but no discrepancy is recorded".to_string(),
    );
    let (captured, refunded) = (s.captured > MinorUnits::ZERO, s.refunded > MinorUnits::ZERO);
    let ok = match s.status {
        Status::Created | Status::Pending => !captured && s.authorized == MinorUnits::ZERO,
        Status::Authorized => !captured && s.authorized > MinorUnits::ZERO,
        Status::Captured => captured && s.refunded < s.captured,
        Status::Done => captured,
        Status::Returned => captured && s.refunded == s.captured,
        Status::Cancelled | Status::Failed => !captured && !refunded,
    };
    check(ok, "status_inconsistent_with_amounts", &|| {
        format!(
            "{} with authorized {} captured {} refunded {}",
            s.status, s.authorized, s.captured, s.refunded
        )
    });
    if s.status.is_terminal() {
        check(
            s.capture_pending.is_none() && !s.cancel_pending,
            "terminal_with_operation_in_flight",
            &|| format!("{} with an operation waiting", s.status),
        );
    }
    v
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Created => 0,
        Status::Pending => 1,
        Status::Authorized => 2,
        Status::Captured => 3,
        Status::Done | Status::Cancelled | Status::Returned | Status::Failed => 4,
    }
}

/// Whether an order may move from `from` to `to`: forward only, terminal states never move,
/// `returned` only from `captured`, `done` only with funds, `cancelled`/`failed` only before capture.
pub fn is_legal_transition(from: Status, to: Status) -> bool {
    if from == to {
        return true;
    }
    if from.is_terminal() || rank(to) <= rank(from) {
        return false;
    }
    match to {
        Status::Returned => from == Status::Captured,
        Status::Cancelled | Status::Failed => from != Status::Captured,
        _ => true,
    }
}
