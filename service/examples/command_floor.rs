//! The floor of paystate's own work per fast-path command, with no broker and no scheduler:
//! `cargo run --release -p paystate-service --example command_floor`.
//!
//! Every step a command takes between the client and the log and back, as the fast path runs
//! them, on one thread with warm caches: the client encodes the command; the engine parses and
//! checks it, fingerprints it, decides on the cached order, encodes and hashes the commit,
//! folds it, checks the invariants and encodes the outcome (the state view included); the
//! client decodes the outcome. `ORDERS` orders go through the bench's lifecycle interleaved
//! (the first command of each, then the second ...), as the bench's 256 clients interleave
//! them, so the cached orders are not all in the CPU's caches. What it leaves out is the NATS
//! side of the bare request path (`paystate bench`'s ceiling rows measure that): together they
//! bound from below what a fast-path command can cost on this machine.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use paystate_engine::{apply_commit, check_invariants, decide, Decision};
use paystate_events::samples::{lifecycle, LIFECYCLE_COMMANDS};
use paystate_events::{
    Command, CommandEnvelope, Commit, CommitHash, OrderId, OrderState, Outcome, Timestamp,
};
use paystate_service::parse::parse_command;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Orders per pass, each through the six commands of the bench's lifecycle.
const ORDERS: usize = 20_000;
const PASSES: usize = 5;

/// The step names, in the order they run, for the table.
const STEPS: [&str; 9] = [
    "client: encode the command",
    "parse and check the command",
    "fingerprint",
    "decide (cached order)",
    "encode the commit",
    "hash the commit",
    "fold and check invariants",
    "encode the outcome",
    "client: decode the outcome",
];

fn main() {
    let now = at("2026-11-22T10:00:01Z");
    let mut best = [Duration::MAX; STEPS.len()];
    let mut best_total = Duration::MAX;
    for pass in 0..PASSES {
        let orders: Vec<OrderId> = (0..ORDERS)
            .map(|i| {
                OrderId::parse(format!("floor-{pass}-{i:06}")).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let scripts: Vec<Vec<CommandEnvelope>> = orders.iter().map(lifecycle).collect();
        let mut cache: HashMap<OrderId, OrderState> = HashMap::with_capacity(ORDERS);
        let mut spent = [Duration::ZERO; STEPS.len()];
        let mut lap = |step: usize, started: &mut Instant| {
            let t = Instant::now();
            spent[step] += t - *started;
            *started = t;
        };
        let whole = Instant::now();
        for step in 0..LIFECYCLE_COMMANDS {
            for (order, script) in orders.iter().zip(&scripts) {
                let env = &script[step];
                let step_id = env.command_id.as_str();
                let subject = match env.command {
                    Command::ProviderSignal { .. } => format!("paystate.signal.{order}"),
                    _ => format!("paystate.cmd.{order}"),
                };
                let mut t = Instant::now();
                let body = serde_json::to_vec(env).unwrap_or_default();
                lap(0, &mut t);
                let parsed = match parse_command(black_box(&body), &subject) {
                    Ok(p) => p,
                    Err(e) => panic!("{step_id} does not parse: {e:?}"),
                };
                lap(1, &mut t);
                let fingerprint = parsed.fingerprint();
                lap(2, &mut t);
                let state = cache.remove(order);
                let events = match decide(state.as_ref(), &parsed, now) {
                    Ok(Decision::Commit(events)) => events,
                    other => panic!("{step_id} not committed: {other:?}"),
                };
                lap(3, &mut t);
                let commit =
                    Commit::after(state.as_ref(), parsed.clone(), fingerprint, now, events);
                let bytes = commit.encode();
                lap(4, &mut t);
                let hash = CommitHash::of(&bytes).0;
                lap(5, &mut t);
                let after = apply_commit(state, &commit, &hash).unwrap_or_else(|e| panic!("{e}"));
                assert!(check_invariants(&after).is_empty());
                lap(6, &mut t);
                let outcome = paystate_service::processor::outcome_of(&parsed, &commit, &after);
                let reply = outcome.to_json().unwrap_or_else(|e| panic!("{e}"));
                lap(7, &mut t);
                black_box(Outcome::from_json(&reply).unwrap_or_else(|e| panic!("{e}")));
                lap(8, &mut t);
                cache.insert(order.clone(), after);
            }
        }
        let total = whole.elapsed();
        best_total = best_total.min(total);
        for (b, s) in best.iter_mut().zip(spent) {
            *b = (*b).min(s);
        }
    }
    let commands = (ORDERS * LIFECYCLE_COMMANDS) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / commands;
    println!(
        "{ORDERS} orders x {LIFECYCLE_COMMANDS} commands, best of {PASSES} passes, µs per command:"
    );
    for (name, d) in STEPS.iter().zip(best) {
        println!("  {name:<32} {:>6.2}", per(d));
    }
    let steps: f64 = best.iter().map(|d| per(*d)).sum();
    println!("  {:<32} {steps:>6.2}", "sum of the steps");
    println!(
        "  {:<32} {:>6.2}   (with the envelopes built, the clocks read and the cache moved)",
        "whole loop",
        per(best_total)
    );
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}
