//! The commands every scenario sends: one order's lifecycle (create, start, authorized,
//! capture, captured, refund, defined in [`paystate_events::samples`]), with deterministic ids
//! so a retry reuses them, and the real commits those commands produce (what the raw
//! yardstick publishes: the same bytes).

use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::commit::GENESIS_HASH;
pub use paystate_events::samples::{
    create, envelope, instant, lifecycle, refund, signal, LIFECYCLE_COMMANDS, ORDER_AMOUNT_MINOR,
};
use paystate_events::{
    CommandEnvelope, Commit, CommitHash, OrderId, OrderState, COMMIT_SCHEMA_VERSION,
};

/// The order id of order number `i` of a scenario tagged `tag`.
pub fn order_id(tag: &str, i: usize) -> OrderId {
    // Why: tags are short ASCII words chosen in this module's callers; ids stay in the alphabet.
    OrderId::parse(format!("{tag}-{i}")).unwrap_or_else(|_| unreachable_id())
}

fn unreachable_id() -> OrderId {
    // Why: "bench" is a valid id; only reached if a caller picked an invalid tag.
    OrderId::parse("bench").unwrap_or_else(|e| panic!("benchmark order id: {e}"))
}

/// The create command alone (the bulk of the memory scenario).
pub fn create_only(order: &OrderId) -> Vec<CommandEnvelope> {
    vec![envelope(order, "create", create(ORDER_AMOUNT_MINOR))]
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
