//! Row 6, the pure core: `decide` + `evolve` per event on one thread, no IO. The same
//! workload as `cargo bench -p paystate-engine` (criterion), measured here so the table is
//! complete without criterion.

use super::workload::{instant, lifecycle, order_id};
use paystate_engine::{decide, evolve_in_place, Decision};
use paystate_events::{CommandEnvelope, Event, OrderState, Timestamp};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Distinct orders in the workload (their commands are built once, outside the timing).
const ORDERS: usize = 2_000;

/// What one pass measured. Rates are per second of this thread's CPU time (what one core
/// does when nothing else runs: on a shared 2-core machine other processes preempt the
/// thread, which wall-clock rates would count against the core) and per wall-clock second.
pub struct CoreRates {
    /// Events decided and folded per CPU second (decide + evolve).
    pub decide_evolve_per_s: f64,
    pub decide_evolve_per_wall_s: f64,
    /// Events folded per CPU second (evolve alone: replay, audit and projections do this).
    pub evolve_per_s: f64,
}

/// Runs each measurement for about `budget`.
pub fn measure(budget: Duration) -> CoreRates {
    let scripts: Vec<Vec<CommandEnvelope>> = (0..ORDERS)
        .map(|i| lifecycle(&order_id("core", i)))
        .collect();
    let now = instant();
    let events: Vec<Vec<Event>> = scripts.iter().map(|s| events_of(s, now)).collect();
    let (decide_evolve_per_s, decide_evolve_per_wall_s) = rate(budget, || {
        scripts.iter().map(|s| decide_all(black_box(s), now)).sum()
    });
    let (evolve_per_s, _) = rate(budget, || {
        events.iter().map(|e| evolve_all(black_box(e))).sum()
    });
    CoreRates {
        decide_evolve_per_s,
        decide_evolve_per_wall_s,
        evolve_per_s,
    }
}

/// Repeats `pass` (which returns the events it handled) for about `budget`; events per
/// CPU second of this thread and per wall-clock second.
fn rate(budget: Duration, mut pass: impl FnMut() -> usize) -> (f64, f64) {
    pass(); // warm-up
    let (started, cpu_started) = (Instant::now(), thread_cpu_s());
    let mut events = 0usize;
    while started.elapsed() < budget {
        events += pass();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu_started;
    // Where /proc is missing the CPU time reads 0: fall back to wall-clock time.
    let cpu = if cpu > 0.0 { cpu } else { wall };
    (events as f64 / cpu, events as f64 / wall)
}

/// This thread's CPU time (utime + stime of /proc/thread-self/stat).
fn thread_cpu_s() -> f64 {
    paystate_broker::cpu_seconds("thread-self")
}

/// Decides each command on the state so far and folds its events; the events handled.
fn decide_all(script: &[CommandEnvelope], now: Timestamp) -> usize {
    let mut state: Option<OrderState> = None;
    let mut handled = 0;
    for env in script {
        let Ok(Decision::Commit(events)) = decide(state.as_ref(), env, now) else {
            continue;
        };
        for e in &events {
            fold_in(&mut state, e);
        }
        handled += events.len();
    }
    black_box(&state);
    handled
}

/// The events a script produces (built once, outside the timing).
fn events_of(script: &[CommandEnvelope], now: Timestamp) -> Vec<Event> {
    let mut state: Option<OrderState> = None;
    let mut all = Vec::new();
    for env in script {
        if let Ok(Decision::Commit(events)) = decide(state.as_ref(), env, now) {
            for e in &events {
                fold_in(&mut state, e);
            }
            all.extend(events);
        }
    }
    all
}

fn evolve_all(events: &[Event]) -> usize {
    let mut state: Option<OrderState> = None;
    for e in events {
        fold_in(&mut state, e);
    }
    black_box(&state);
    events.len()
}

/// Folds `e` where the state lies, as the engine's commit fold does; an event that cannot be
/// folded leaves no order (as `evolve(state, e).ok()` would).
fn fold_in(state: &mut Option<OrderState>, e: &Event) {
    if evolve_in_place(state, e).is_err() {
        *state = None;
    }
}
