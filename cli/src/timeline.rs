//! Rendering an order's history as a human timeline.

use paystate_events::{Command, Event, OrderState, SignalKind};
use paystate_journal::StoredCommit;
use std::fmt::Write;

/// One line per commit (sequence, time, cause) and one per event, with the state after each
/// commit.
pub fn render(commits: &[StoredCommit]) -> String {
    let mut out = String::new();
    let mut state: Option<OrderState> = None;
    for c in commits {
        state = paystate_engine::apply_commit(state.take(), &c.commit, &c.hash).ok();
        let status = state
            .as_ref()
            .map_or("?".to_string(), |s| s.status.to_string());
        let _ = writeln!(
            out,
            "  #{:<3} seq {:<6} {}  {:<34} -> {}",
            c.commit.commit,
            c.sequence,
            c.commit.decided_at.format("%H:%M:%S%.3f"),
            cause(&c.commit.command.command),
            status
        );
        for e in &c.commit.events {
            let _ = writeln!(out, "        · {}", describe(e));
        }
    }
    if let Some(s) = state {
        let _ = writeln!(out, "  {}", summary(&s));
    }
    out
}

/// What caused a commit: the command, or the provider's report.
pub fn cause(cmd: &Command) -> String {
    match cmd {
        Command::ProviderSignal { signal } => {
            format!("{} reports {}", signal.provider, signal.kind.name())
        }
        other => format!("command {}", other.name()),
    }
}

pub fn describe(e: &Event) -> String {
    match e {
        Event::OrderCreated {
            amount,
            provider,
            capture_mode,
            ..
        } => {
            format!("order_created {amount} via {provider} ({capture_mode:?} capture)")
        }
        Event::PaymentAuthorized { amount, .. } => format!("payment_authorized {amount}"),
        Event::CaptureRequested { amount, .. } => format!("capture_requested {amount}"),
        Event::PaymentCaptured { amount, .. } => format!("payment_captured {amount}"),
        Event::RefundRequested { amount, refund_id } => {
            format!("refund_requested {amount} ({refund_id})")
        }
        Event::RefundCompleted {
            amount, refund_id, ..
        } => format!("refund_completed {amount} ({refund_id})"),
        Event::PaymentFailed { code, message, .. } => format!("payment_failed {code}: {message}"),
        Event::CustomerActionRequired {
            action: Some(a), ..
        } => {
            let details: Vec<String> = a.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let shown = a.url.clone().unwrap_or_else(|| details.join(" "));
            format!("customer_action_required {:?} {shown}", a.kind)
        }
        Event::SignalRecorded {
            signal,
            disposition,
        } => {
            format!(
                "signal_recorded {} ({disposition:?})",
                signal_name(&signal.kind)
            )
        }
        Event::DiscrepancyDetected { code, detail, .. } => format!("DISCREPANCY {code}: {detail}"),
        Event::ReviewResolved { operator, reason } => {
            format!("review_resolved by {operator}: {reason}")
        }
        Event::CommandRejected { code, message } => format!("rejected: {code} ({message})"),
        other => other.name().to_string(),
    }
}

fn signal_name(k: &SignalKind) -> String {
    match k {
        SignalKind::Unrecognised { raw_status } => format!("unrecognised status {raw_status:?}"),
        other => other.name().to_string(),
    }
}

pub fn summary(s: &OrderState) -> String {
    let c = s.currency();
    format!(
        "state: {} | amount {} {c} | authorized {} | captured {} | refunded {} | commits {}{}",
        s.status,
        paystate_events::money::minor_to_decimal(s.amount.minor_units.get(), c.exponent()),
        paystate_events::money::minor_to_decimal(s.authorized.0, c.exponent()),
        paystate_events::money::minor_to_decimal(s.captured.0, c.exponent()),
        paystate_events::money::minor_to_decimal(s.refunded.0, c.exponent()),
        s.commits,
        if s.discrepancies.is_empty() {
            String::new()
        } else {
            format!(" | {} discrepancies", s.discrepancies.len())
        }
    )
}
