//! The commands every scenario sends: one order's lifecycle (create, start, authorized,
//! capture, captured, refund), with deterministic ids so a retry reuses them, and the real
//! commits those commands produce (what the raw yardstick publishes: the same bytes).

use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::commit::GENESIS_HASH;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, CommitHash, OrderId, OrderState,
    Provider, ProviderSignal, SignalKind, Timestamp, COMMIT_SCHEMA_VERSION,
};

/// Commands in one order's full lifecycle ([`lifecycle`]).
pub const LIFECYCLE_COMMANDS: usize = 6;
/// Amount of every benchmark order, in minor units.
const ORDER_AMOUNT_MINOR: u64 = 10_000;
const CAPTURE_MINOR: u64 = 8_000;
const REFUND_MINOR: u64 = 1_000;
/// The provider every benchmark order names (any works: no provider is called).
const PROVIDER: Provider = Provider::Plural;

/// A fixed instant: the core never reads a clock, and neither does the workload.
pub fn instant() -> Timestamp {
    // Why: a constant, well-formed RFC 3339 literal.
    "2026-11-22T10:00:00Z".parse().unwrap_or_default()
}

/// The order id of order number `i` of a scenario tagged `tag`.
pub fn order_id(tag: &str, i: usize) -> OrderId {
    // Why: tags are short ASCII words chosen in this module's callers; ids stay in the alphabet.
    OrderId::parse(format!("{tag}-{i}")).unwrap_or_else(|_| unreachable_id())
}

fn unreachable_id() -> OrderId {
    // Why: "bench" is a valid id; only reached if a caller picked an invalid tag.
    OrderId::parse("bench").unwrap_or_else(|e| panic!("benchmark order id: {e}"))
}

/// A command with a deterministic id (`<step>`), so a resend is a retry, not a new command.
pub fn envelope(order: &OrderId, step: &str, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: CommandId::parse(step).unwrap_or_else(|e| panic!("benchmark step id: {e}")),
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

fn usd(minor: u64) -> paystate_events::Money {
    money(minor, "USD").unwrap_or_else(|| panic!("benchmark amount {minor} USD"))
}

/// The create command alone (the bulk of the memory scenario).
pub fn create_only(order: &OrderId) -> Vec<CommandEnvelope> {
    vec![envelope(order, "create", create(ORDER_AMOUNT_MINOR))]
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

/// The commits the engine writes for one order's lifecycle, encoded: body and hash.
pub fn lifecycle_commits(order: &OrderId) -> Vec<(Vec<u8>, String)> {
    let mut state: Option<OrderState> = None;
    let mut out = Vec::new();
    for env in lifecycle(order) {
        let Ok(Decision::Commit(events)) = decide(state.as_ref(), &env, instant()) else {
            panic!("the benchmark lifecycle is accepted by the core")
        };
        let (commits, prev_hash) = state.as_ref().map_or((0, GENESIS_HASH.to_string()), |s| {
            (s.commits, s.head_hash.clone())
        });
        let commit = Commit {
            v: COMMIT_SCHEMA_VERSION,
            order_id: order.clone(),
            commit: commits + 1,
            prev_hash,
            decided_at: instant(),
            fingerprint: env.fingerprint(),
            command: env,
            events,
        };
        let bytes = commit.encode();
        let hash = CommitHash::of(&bytes).0;
        state = apply_commit(state, &commit, &hash).ok();
        out.push((bytes, hash));
    }
    out
}
