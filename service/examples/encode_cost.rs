//! How much CPU encoding one commit costs, and how much of it is timestamps:
//! `cargo run --release -p paystate-service --example encode_cost`.

use paystate_events::{Commit, Timestamp};
use std::time::Instant;

const COMMIT: &str = r#"{"v":1,"order_id":"thr-12345","commit":3,"prev_hash":"5f2c8e0a9d7b6c4e3f1a2b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e","decided_at":"2026-12-02T08:41:03.123456789Z","fingerprint":"0f2c8e0a9d7b6c4e3f1a2b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e","command":{"command_id":"auth","order_id":"thr-12345","issued_at":"2026-11-22T10:00:00Z","type":"provider_signal","signal":{"provider":"plural","provider_ref":"bench-ref","evidence_ref":"ev-auth","observed_at":"2026-11-22T10:00:00Z","status":"authorized"}},"events":[{"type":"payment_authorized","amount":{"minor_units":10000,"currency":"USD"},"evidence":{"provider_ref":"bench-ref","evidence_ref":"ev-auth","observed_at":"2026-11-22T10:00:00Z"}}]}"#;

fn main() {
    let n = 200_000;
    let commit: Commit = match serde_json::from_str(COMMIT) {
        Ok(c) => c,
        Err(e) => {
            println!("sample commit does not decode: {e}");
            return;
        }
    };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(commit.encode());
    }
    let encode_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let bytes = commit.encode();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(paystate_events::CommitHash::of(&bytes));
    }
    let hash_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let ts: Timestamp = commit.decided_at;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_vec(&ts).unwrap_or_default());
    }
    let ts_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "commit of {} bytes: encode {encode_us:.2} µs, hash {hash_us:.2} µs; one timestamp alone {ts_us:.3} µs",
        bytes.len()
    );
}
