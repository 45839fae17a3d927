//! The engine's metrics and its per-command tracing span, in one place so the intake and the
//! processor each need one line per fact. Names come from
//! [`paystate_events::metric_names`]; label values are closed sets (command types, outcome
//! words, rejection codes), never ids.

use paystate_events::metric_names as m;
use paystate_events::{Command, CommandEnvelope, OrderState, Outcome};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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

/// Most warnings about bad input (a command that does not parse, a forbidden reply subject:
/// what a publisher sent, not what the engine did) logged per [`BAD_INPUT_WINDOW`]. Why a
/// bound: a publisher can send them as fast as NATS carries them, and one log line each would
/// let it fill the engine's disk. Every one is still counted in the engine's stats (and in
/// `paystate_commands_total` with its code when the command parses); the next line logged
/// says how many were not.
pub const BAD_INPUT_WARNINGS_PER_WINDOW: u64 = 20;
/// See [`BAD_INPUT_WARNINGS_PER_WINDOW`].
pub const BAD_INPUT_WINDOW: Duration = Duration::from_secs(10);
const _: () = assert!(BAD_INPUT_WARNINGS_PER_WINDOW >= 1);

/// A budget of log lines per window of time; see [`BAD_INPUT_WARNINGS_PER_WINDOW`].
#[derive(Debug)]
pub struct WarnBudget {
    per_window: u64,
    window: Duration,
    /// (when the current window started, lines logged in it, lines not logged since the
    /// last one that was).
    state: Mutex<Option<(Instant, u64, u64)>>,
}

impl WarnBudget {
    pub const fn new(per_window: u64, window: Duration) -> WarnBudget {
        WarnBudget {
            per_window,
            window,
            state: Mutex::new(None),
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the lines not logged since the
    /// last one that was (0 mostly), `None` when it is over budget (it is counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        // Why: the state stays consistent even if a holder panicked (plain counters).
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (started, logged, suppressed) = state.get_or_insert((now, 0, 0));
        if now.saturating_duration_since(*started) >= self.window {
            (*started, *logged) = (now, 0);
        }
        if *logged >= self.per_window {
            *suppressed += 1;
            return None;
        }
        *logged += 1;
        Some(std::mem::take(suppressed))
    }
}

static BAD_INPUT: WarnBudget = WarnBudget::new(BAD_INPUT_WARNINGS_PER_WINDOW, BAD_INPUT_WINDOW);

/// Whether a warning about bad input may be logged now ([`WarnBudget::admit`] on the engine's
/// one budget for them).
pub fn bad_input_warning() -> Option<u64> {
    BAD_INPUT.admit(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::WarnBudget;
    use std::time::{Duration, Instant};

    #[test]
    fn a_budget_logs_its_lines_per_window_then_counts_and_names_what_it_did_not_log() {
        // Given a budget of 3 lines per 10 s ...
        let budget = WarnBudget::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // ... the first 3 lines of a window are logged, the next ones counted ...
        assert_eq!(budget.admit(at(0)), Some(0));
        assert_eq!(budget.admit(at(1)), Some(0));
        assert_eq!(budget.admit(at(2)), Some(0));
        for ms in 3..1003 {
            assert_eq!(budget.admit(at(ms)), None, "over budget at {ms} ms");
        }
        assert_eq!(
            budget.admit(at(9_999)),
            None,
            "the window is still the first"
        );
        // ... and the first line of the next window says how many were not logged.
        assert_eq!(budget.admit(at(10_000)), Some(1001));
        assert_eq!(budget.admit(at(10_001)), Some(0));
        assert_eq!(budget.admit(at(10_002)), Some(0));
        assert_eq!(budget.admit(at(10_003)), None);
        assert_eq!(budget.admit(at(25_000)), Some(1));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_open_a_window() {
        let budget = WarnBudget::new(1, Duration::from_secs(10));
        let t0 = Instant::now() + Duration::from_secs(60);
        assert_eq!(budget.admit(t0), Some(0));
        assert_eq!(budget.admit(t0 - Duration::from_secs(30)), None);
        assert_eq!(budget.admit(t0 + Duration::from_secs(10)), Some(1));
    }
}
