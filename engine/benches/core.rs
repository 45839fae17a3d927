//! The pure core on one thread, no IO: `decide` + `evolve` per event, and `evolve` alone
//! (what replay, audit and projections do). Goal: at least 5 million events/s folded.
//! `cargo bench -p paystate-engine`; `paystate bench` measures the same workload in its
//! table (row 6) so the table is complete without criterion.

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paystate_engine::{decide, evolve_in_place, Decision};
use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Event, OrderId, OrderState, Provider,
    ProviderSignal, SignalKind,
};
use std::hint::black_box;

/// Orders in the workload; each goes through [`lifecycle`] (six commands, six events).
const ORDERS: usize = 1_000;

fn now() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().expect("a valid instant")
}

fn usd(minor: u64) -> paystate_events::Money {
    money(minor, "USD").expect("a valid amount")
}

fn signal(kind: SignalKind, evidence: &str) -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("bench-ref".into()),
            evidence_ref: evidence.into(),
            observed_at: now(),
            kind,
        },
    }
}

/// Create, start, authorized, capture, captured, refund: the same lifecycle as `paystate bench`.
fn lifecycle(i: usize) -> Vec<CommandEnvelope> {
    let order = OrderId::parse(format!("core-{i}")).expect("a valid order id");
    let commands = [
        (
            "create",
            Command::CreateOrder {
                merchant_reference: "bench-shop".into(),
                amount: usd(10_000),
                provider: Provider::Plural,
                capture_mode: CaptureMode::Manual,
                expires_at: None,
                merchant_account: None,
                metadata: Default::default(),
            },
        ),
        (
            "start",
            Command::StartPayment {
                initiation: Default::default(),
            },
        ),
        (
            "auth",
            signal(SignalKind::Authorized { amount: None }, "ev-auth"),
        ),
        (
            "capture",
            Command::Capture {
                amount: Some(usd(8_000)),
            },
        ),
        (
            "captured",
            signal(
                SignalKind::Captured {
                    amount: Some(usd(8_000)),
                },
                "ev-capture",
            ),
        ),
        (
            "refund",
            Command::Refund {
                amount: Some(usd(1_000)),
            },
        ),
    ];
    commands
        .into_iter()
        .map(|(id, command)| CommandEnvelope {
            command_id: CommandId::parse(id).expect("a valid command id"),
            order_id: order.clone(),
            issued_at: now(),
            command,
        })
        .collect()
}

/// Decides every command on the state so far and folds its events; calls `keep` with each
/// decision's events (the timed loop drops them, the setup keeps them).
fn decide_all(script: &[CommandEnvelope], at: DateTime<Utc>, mut keep: impl FnMut(Vec<Event>)) {
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
