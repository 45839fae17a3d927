//! The engine's metrics and its per-command tracing span, in one place so the intake and the
//! processor each need one line per fact. Names come from
//! [`paystate_events::metric_names`]; label values are closed sets (command types, outcome
//! words, rejection codes), never ids.

use paystate_events::metric_names as m;
use paystate_events::{Command, CommandEnvelope, OrderState, Outcome};
use std::time::Instant;
use tracing::field::Empty;
use tracing::Span;

/// The span one command is handled in, from intake through decide and append to the reply:
/// `order_id` from the subject at once; `command_id`, `command` (its type) and `provider`
/// once the command parses ([`record_command`]) or its order is loaded ([`record_order`]).
pub fn command_span(order_token: Option<&str>) -> Span {
    tracing::info_span!(
        "command",
        order_id = order_token.unwrap_or(""),
        command_id = Empty,
        command = Empty,
        provider = Empty
    )
}

/// Fills the current span's command fields from a parsed command.
pub fn record_command(env: &CommandEnvelope) {
    let span = Span::current();
    span.record("command_id", env.command_id.as_str());
    span.record("command", env.command.name());
    let provider = match &env.command {
        Command::CreateOrder { provider, .. } => Some(*provider),
        Command::ProviderSignal { signal } => Some(signal.provider),
        _ => None,
    };
    if let Some(p) = provider {
        span.record("provider", p.as_str());
    }
}

/// Fills the current span's provider from the order (commands that do not name it).
pub fn record_order(state: Option<&OrderState>) {
    if let Some(s) = state {
        Span::current().record("provider", s.provider.as_str());
    }
}

/// A command answered: counted by type, outcome and code; its time observed.
pub fn answered(kind: &'static str, outcome: &Outcome, started: Instant) {
    counted(kind, outcome);
    metrics::histogram!(m::COMMAND_DURATION_SECONDS, "type" => kind)
        .record(started.elapsed().as_secs_f64());
}

/// A command answered without being processed (refused reply target, dead-lettered):
/// counted by type, outcome and code.
pub fn counted(kind: &'static str, outcome: &Outcome) {
    let (word, code) = match outcome {
        Outcome::Accepted {
            duplicate: false, ..
        } => (m::outcome::ACCEPTED, m::CODE_NONE),
        Outcome::Accepted {
            duplicate: true, ..
        } => (m::outcome::DUPLICATE, m::CODE_NONE),
        Outcome::Rejected {
            duplicate: true,
            code,
            ..
        } => (m::outcome::DUPLICATE, code.as_str()),
        Outcome::Rejected { code, .. } => (m::outcome::REJECTED, code.as_str()),
    };
    metrics::counter!(m::COMMANDS_TOTAL, "type" => kind, "outcome" => word, "code" => code)
        .increment(1);
    tracing::debug!(outcome = word, code, "answered");
}

/// An optimistic-concurrency conflict on append.
pub fn conflict() {
    metrics::counter!(m::COMMAND_CONFLICTS_TOTAL).increment(1);
}

/// A command attempt that ended without an answer (it is retried).
pub fn requeued() {
    metrics::counter!(m::COMMAND_RETRIES_TOTAL).increment(1);
}
