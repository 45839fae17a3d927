//! The pure core on one thread, no IO: `decide` + `evolve` per event, and `evolve` alone
//! (what replay, audit and projections do). Goal: at least 5 million events/s folded.
//! `cargo bench -p paystate-engine`; `paystate bench` measures the same workload in its
//! table (row 6) so the table is complete without criterion.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paystate_engine::{decide, evolve_in_place, Decision};
use paystate_events::samples::instant as now;
use paystate_events::{CommandEnvelope, Event, OrderId, OrderState, Timestamp};
use std::hint::black_box;

/// Orders in the workload; each goes through [`lifecycle`] (six commands, six events).
const ORDERS: usize = 1_000;

/// Create, start, authorized, capture, captured, refund: the same lifecycle as `paystate bench`.
fn lifecycle(i: usize) -> Vec<CommandEnvelope> {
    let order = OrderId::parse(format!("core-{i}")).expect("a valid order id");
    paystate_events::samples::lifecycle(&order)
}

/// Decides every command on the state so far and folds its events; calls `keep` with each
/// decision's events (the timed loop drops them, the setup keeps them).
fn decide_all(script: &[CommandEnvelope], at: Timestamp, mut keep: impl FnMut(Vec<Event>)) {
    let mut state: Option<OrderState> = None;
    for env in script {
        if let Ok(Decision::Commit(events)) = decide(state.as_ref(), env, at) {
            for e in &events {
                fold_in(&mut state, e);
            }
            keep(events);
        }
    }
    black_box(state);
}

fn core(c: &mut Criterion) {
    let at = now();
    let scripts: Vec<Vec<CommandEnvelope>> = (0..ORDERS).map(lifecycle).collect();
    let events: Vec<Vec<Event>> = scripts
        .iter()
        .map(|s| {
            let mut all = Vec::new();
            decide_all(s, at, |e| all.extend(e));
            all
        })
        .collect();
    let total: usize = events.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("decide+evolve", |b| {
        b.iter(|| {
            for s in &scripts {
                decide_all(black_box(s), at, |e| drop(black_box(e)));
            }
        })
    });
    group.bench_function("evolve", |b| {
        b.iter(|| {
            for order in &events {
                let mut state: Option<OrderState> = None;
                for e in black_box(order) {
                    fold_in(&mut state, e);
                }
                black_box(state);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);

/// Folds `e` where the state lies, as the engine's commit fold does; an event that cannot be
/// folded leaves no order (as `evolve(state, e).ok()` would).
fn fold_in(state: &mut Option<OrderState>, e: &Event) {
    if evolve_in_place(state, e).is_err() {
        *state = None;
    }
}
