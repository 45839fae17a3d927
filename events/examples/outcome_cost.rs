//! What one outcome costs to decode and encode, in µs, over the bench lifecycle's six replies
//! (create, start_payment, authorized signal, capture, captured signal, refund; the states
//! after each step): serde's decode as before issue 15's work
//! (`Outcome::from_json_serde_only`), `serde_json::from_slice::<Outcome>` (`Deserialize`,
//! with the state's timestamps read by the fast parser), the one-pass decode with fallback
//! ([`Outcome::from_json`]); and the encode: `serde_json::to_vec` (what the engine's intake
//! called before) and [`Outcome::to_json`] (the same bytes).
//!
//! `cargo run --release -p paystate-events --example outcome_cost`

use paystate_events::{
    Amount, CaptureMode, CommandId, Currency, Event, Evidence, MinorUnits, Money, OrderId, Outcome,
    Provider, StateView, Status, Timestamp,
};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 20_000;

fn main() {
    let outcomes = lifecycle_outcomes();
    let bodies: Vec<Vec<u8>> = outcomes
        .iter()
        .map(|o| serde_json::to_vec(o).expect("serializes"))
        .collect();
    for (o, b) in outcomes.iter().zip(&bodies) {
        assert_eq!(&Outcome::from_json(b).expect("decodes"), o);
        assert_eq!(&o.to_json().expect("serializes"), b);
    }
    let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!("{} outcomes, {mean} bytes on average", bodies.len());
    // Why the best of several passes: a shared, loaded machine adds only delays.
    let mut best = [f64::MAX; 5];
    for pass in 0..7 {
        let serde = per_outcome(&bodies, |b| {
            black_box(Outcome::from_json_serde_only(b).is_ok());
        });
        let derive = per_outcome(&bodies, |b| {
            black_box(serde_json::from_slice::<Outcome>(b).is_ok());
        });
        let fast = per_outcome(&bodies, |b| {
            black_box(Outcome::from_json(b).is_ok());
        });
        let encode = per_outcome_of(&outcomes, |o| {
            black_box(serde_json::to_vec(o).map(|v| v.len()).ok());
        });
        let to_json = per_outcome_of(&outcomes, |o| {
            black_box(o.to_json().map(|v| v.len()).ok());
        });
        println!(
            "pass {pass}: decode serde as before {serde:.2} µs, from_slice::<Outcome> {derive:.2} µs, Outcome::from_json {fast:.2} µs, encode serde_json::to_vec {encode:.2} µs, Outcome::to_json {to_json:.2} µs"
        );
        for (b, now) in best.iter_mut().zip([serde, derive, fast, encode, to_json]) {
            *b = b.min(now);
        }
    }
    let [serde, derive, fast, encode, to_json] = best;
    println!(
        "best: decode serde as before {serde:.2} µs, from_slice::<Outcome> {derive:.2} µs, Outcome::from_json {fast:.2} µs, encode serde_json::to_vec {encode:.2} µs, Outcome::to_json {to_json:.2} µs"
    );
}

fn per_outcome(bodies: &[Vec<u8>], f: impl Fn(&[u8])) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for b in bodies {
            f(b);
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / (ROUNDS * bodies.len()) as f64
}

fn per_outcome_of(outcomes: &[Outcome], f: impl Fn(&Outcome)) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for o in outcomes {
            f(o);
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / (ROUNDS * outcomes.len()) as f64
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a literal timestamp")
}

fn usd(minor: u64) -> Money {
    Money::new(
        Amount::new(minor).expect("positive"),
        Currency::parse("USD").expect("USD"),
    )
}

/// The replies of cli/src/cmd/bench/workload.rs's lifecycle, as the engine writes them:
/// commands and signals at the workload's fixed instant, the engine's own times with
/// nanoseconds (its clock).
fn lifecycle_outcomes() -> Vec<Outcome> {
    let order = OrderId::parse("bench-0-000042").expect("id");
    let signal_at = ts("2026-11-22T10:00:00Z");
    let evidence = |r: &str| Evidence {
        provider_ref: Some("bench-ref".into()),
        evidence_ref: r.into(),
        observed_at: signal_at,
    };
    let created_at = ts("2026-12-02T08:27:32.123456789Z");
    let mut state = StateView {
        order_id: order.clone(),
        status: Status::Created,
        merchant_reference: "bench-shop".into(),
        provider: Provider::Plural,
        merchant_account: None,
        capture_mode: CaptureMode::Manual,
        amount: usd(10_000),
        authorized: MinorUnits(0),
        captured: MinorUnits(0),
        refunded: MinorUnits(0),
        capture_pending: None,
        cancel_pending: false,
        refunds_pending: BTreeMap::new(),
        refunds_completed: BTreeMap::new(),
        refunds_completed_count: 0,
        provider_ref: None,
        customer_action: None,
        failure: None,
        discrepancies: Vec::new(),
        discrepancies_count: 0,
        needs_review: false,
        expires_at: None,
        metadata: BTreeMap::new(),
        created_at,
        updated_at: created_at,
        commits: 1,
        head_hash: "9f2c".repeat(16),
    };
    let mut out = Vec::new();
    let mut step = |state: &StateView, id: &str, events: Vec<Event>| {
        out.push(Outcome::Accepted {
            command_id: CommandId::parse(id).expect("id"),
            order_id: order.clone(),
            commit: state.commits,
            events,
            state: state.clone(),
            duplicate: false,
        });
    };
    step(
        &state,
        "create",
        vec![Event::OrderCreated {
            order_id: order.clone(),
            merchant_reference: "bench-shop".into(),
            amount: usd(10_000),
            provider: Provider::Plural,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: BTreeMap::new(),
            created_at,
        }],
    );
    let next = |state: &mut StateView, at: &str| {
        state.commits += 1;
        state.updated_at = ts(at);
        state.head_hash = format!("{:064x}", state.commits * 0x1234_5678_9abc);
    };
    next(&mut state, "2026-12-02T08:27:32.124001302Z");
    state.status = Status::Pending;
    step(
        &state,
        "start",
        vec![Event::PaymentRequested {
            initiation: Default::default(),
        }],
    );
    next(&mut state, "2026-12-02T08:27:32.125990011Z");
    state.status = Status::Authorized;
    state.authorized = MinorUnits(10_000);
    state.provider_ref = Some("bench-ref".into());
    step(
        &state,
        "auth",
        vec![Event::PaymentAuthorized {
            amount: usd(10_000),
            evidence: evidence("ev-auth"),
        }],
    );
    next(&mut state, "2026-12-02T08:27:32.127000457Z");
    state.capture_pending = Some(("capture:capture".into(), MinorUnits(8_000)));
    step(
        &state,
        "capture",
        vec![Event::CaptureRequested {
            capture_id: "capture:capture".into(),
            amount: usd(8_000),
        }],
    );
    next(&mut state, "2026-12-02T08:27:32.128800120Z");
    state.capture_pending = None;
    state.status = Status::Captured;
    state.captured = MinorUnits(8_000);
    step(
        &state,
        "captured",
        vec![Event::PaymentCaptured {
            amount: usd(8_000),
            evidence: evidence("ev-capture"),
        }],
    );
    next(&mut state, "2026-12-02T08:27:32.130100999Z");
    state
        .refunds_pending
        .insert("refund:refund".into(), MinorUnits(1_000));
    step(
        &state,
        "refund",
        vec![Event::RefundRequested {
            refund_id: "refund:refund".into(),
            amount: usd(1_000),
        }],
    );
    out
}
