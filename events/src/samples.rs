//! The sample order lifecycle every benchmark sends: `paystate bench`, the core's criterion
//! bench and the per-command cost examples. Create, start, authorized, capture, captured,
//! refund, each command's id its step name (a resend is a retry), at one fixed instant (the
//! core reads no clock, and neither does the workload).

use crate::command::money;
use crate::{
    CaptureMode, Command, CommandEnvelope, CommandId, Money, OrderId, Provider, ProviderSignal,
    SignalKind, Timestamp,
};

/// Commands in one order's full lifecycle ([`lifecycle`]).
pub const LIFECYCLE_COMMANDS: usize = 6;
/// Amount of every sample order, in minor units.
pub const ORDER_AMOUNT_MINOR: u64 = 10_000;
/// What the lifecycle captures and refunds, in minor units.
pub const CAPTURE_MINOR: u64 = 8_000;
pub const REFUND_MINOR: u64 = 1_000;
/// The provider every sample order names (any works: no provider is called).
pub const PROVIDER: Provider = Provider::Plural;

/// The fixed instant every sample command is issued and observed at: 2026-11-22T10:00:00Z.
/// Built from its parts, not parsed: the bench builds every command's envelope with it, and
/// its clients' CPU counts in the fast path's figure.
pub fn instant() -> Timestamp {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A command with a deterministic id (`<step>`), so a resend is a retry, not a new command.
pub fn envelope(order: &OrderId, step: &str, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: CommandId::parse(step).unwrap_or_else(|e| panic!("sample step id: {e}")),
        order_id: order.clone(),
        issued_at: instant(),
        command,
    }
}

pub fn create(amount_minor: u64) -> Command {
    Command::CreateOrder {
        merchant_reference: "bench-shop".into(),
        amount: usd(amount_minor),
        provider: PROVIDER,
        capture_mode: CaptureMode::Manual,
        expires_at: None,
        merchant_account: None,
        metadata: Default::default(),
    }
}

pub fn signal(kind: SignalKind, evidence: &str) -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: PROVIDER,
            provider_ref: Some("bench-ref".into()),
            evidence_ref: evidence.to_string(),
            observed_at: instant(),
            kind,
        },
    }
}

pub fn refund(minor: u64) -> Command {
    Command::Refund {
        amount: Some(usd(minor)),
    }
}

pub fn usd(minor: u64) -> Money {
    money(minor, "USD").unwrap_or_else(|| panic!("sample amount {minor} USD"))
}

/// One order's lifecycle: create, start, authorized, capture, captured, refund.
pub fn lifecycle(order: &OrderId) -> Vec<CommandEnvelope> {
    let start = Command::StartPayment {
        initiation: Default::default(),
    };
    let authorized = signal(SignalKind::Authorized { amount: None }, "ev-auth");
    let capture = Command::Capture {
        amount: Some(usd(CAPTURE_MINOR)),
    };
    let captured = signal(
        SignalKind::Captured {
            amount: Some(usd(CAPTURE_MINOR)),
        },
        "ev-capture",
    );
    vec![
        envelope(order, "create", create(ORDER_AMOUNT_MINOR)),
        envelope(order, "start", start),
        envelope(order, "auth", authorized),
        envelope(order, "capture", capture),
        envelope(order, "captured", captured),
        envelope(order, "refund", refund(REFUND_MINOR)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_has_its_six_steps_in_order() {
        let order = OrderId::parse("sample-1").unwrap_or_else(|e| panic!("{e}"));
        let steps: Vec<String> = lifecycle(&order)
            .iter()
            .map(|e| e.command_id.to_string())
            .collect();
        assert_eq!(
            steps,
            ["create", "start", "auth", "capture", "captured", "refund"]
        );
        assert_eq!(steps.len(), LIFECYCLE_COMMANDS);
    }

    #[test]
    fn the_instant_is_the_documented_one() {
        let parsed: Timestamp = "2026-11-22T10:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(instant(), parsed);
    }
}
