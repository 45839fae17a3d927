//! How much CPU parsing and fingerprinting one command costs (the engine's per-command work
//! before the core runs): `cargo run --release -p paystate-service --example parse_cost`.

use std::time::Instant;

const CREATE: &str = r#"{"command_id":"create","order_id":"thr-12345","issued_at":"2026-11-22T10:00:00Z","type":"create_order","merchant_reference":"bench-shop","amount":{"minor_units":10000,"currency":"USD"},"provider":"plural","capture_mode":"manual"}"#;
const SIGNAL: &str = r#"{"command_id":"auth","order_id":"thr-12345","issued_at":"2026-11-22T10:00:00Z","type":"provider_signal","signal":{"provider":"plural","provider_ref":"bench-ref","evidence_ref":"ev-auth","observed_at":"2026-11-22T10:00:00Z","status":"authorized"}}"#;

fn main() {
    let n = 200_000;
    for (name, body, subject) in [
        ("create_order", CREATE, "paystate.cmd.thr-12345"),
        ("provider_signal", SIGNAL, "paystate.signal.thr-12345"),
    ] {
        let parsed = paystate_service::parse::parse_command(body.as_bytes(), subject);
        if let Err(e) = &parsed {
            println!("{name}: does not parse: {e:?}");
            continue;
        }
        let started = Instant::now();
        for _ in 0..n {
            let env = paystate_service::parse::parse_command(body.as_bytes(), subject);
            std::hint::black_box(&env);
        }
        let parse_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        let env = parsed.unwrap_or_else(|_| unreachable!());
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(env.fingerprint());
        }
        let fp_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{name}: parse {parse_us:.2} µs, fingerprint {fp_us:.2} µs");
    }
}
