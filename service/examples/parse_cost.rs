//! How much CPU parsing and fingerprinting one command costs (the engine's per-command work
//! before the core runs): `cargo run --release -p paystate-service --example parse_cost`.
//! Each command of one order's lifecycle (the bench's commands, serialized as the bench sends
//! them) is parsed by the engine's parser and by the parser before issue 15
//! (`parse::reference`), in alternating rounds so both see the same machine load.

use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, OrderId, Provider, ProviderSignal, SignalKind,
};
use paystate_service::parse::{parse_command, reference};
use std::time::Instant;

/// Parses per command per round, and rounds per parser.
const PARSES: usize = 20_000;
const ROUNDS: usize = 5;

fn lifecycle() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let usd = |m| money(m, "USD").unwrap_or_else(|| unreachable!());
    let signal = |kind, evidence: &str| Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("bench-ref".into()),
            evidence_ref: evidence.into(),
            observed_at: at(),
            kind,
        },
    };
    let commands = vec![
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
        .map(|(step, command)| {
            let subject = match command {
                Command::ProviderSignal { .. } => "paystate.signal.thr-12345",
                _ => "paystate.cmd.thr-12345",
            };
            let env = CommandEnvelope {
                command_id: CommandId::parse(step).unwrap_or_else(|e| panic!("{e}")),
                order_id: OrderId::parse("thr-12345").unwrap_or_else(|e| panic!("{e}")),
                issued_at: at(),
                command,
            };
            let body = serde_json::to_vec(&env).unwrap_or_default();
            (step, body, subject)
        })
        .collect()
}

fn at() -> paystate_events::Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap_or_default()
}

/// Microseconds per parse of each command, best of the rounds.
fn cost(
    commands: &[(&str, Vec<u8>, &str)],
    parse: fn(&[u8], &str) -> Result<CommandEnvelope, paystate_events::Rejection>,
    best: &mut [f64],
) {
    for (i, (_, body, subject)) in commands.iter().enumerate() {
        let started = Instant::now();
        for _ in 0..PARSES {
            std::hint::black_box(parse(std::hint::black_box(body), subject)).ok();
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / PARSES as f64;
        best[i] = best[i].min(us);
    }
}

fn main() {
    let commands = lifecycle();
    for (step, body, subject) in &commands {
        let ours = parse_command(body, subject);
        assert_eq!(ours, reference::parse_command(body, subject), "{step}");
        if let Err(e) = ours {
            println!("{step}: does not parse: {e:?}");
            return;
        }
    }
    let mut new = vec![f64::MAX; commands.len()];
    let mut old = vec![f64::MAX; commands.len()];
    for _ in 0..ROUNDS {
        cost(&commands, reference::parse_command, &mut old);
        cost(&commands, parse_command, &mut new);
    }
    for (i, (step, body, subject)) in commands.iter().enumerate() {
        let env = parse_command(body, subject).unwrap_or_else(|e| panic!("{e:?}"));
        let started = Instant::now();
        for _ in 0..PARSES {
            std::hint::black_box(env.fingerprint());
        }
        let fp_us = started.elapsed().as_secs_f64() * 1e6 / PARSES as f64;
        println!(
            "{step:>9}: parse {:.2} µs (before issue 15: {:.2} µs), fingerprint {fp_us:.2} µs",
            new[i], old[i]
        );
    }
    let (n, o): (f64, f64) = (new.iter().sum(), old.iter().sum());
    println!(
        "lifecycle of {} commands: {:.2} µs per parse (before: {:.2} µs), {:.0} % less",
        commands.len(),
        n / commands.len() as f64,
        o / commands.len() as f64,
        100.0 * (1.0 - n / o)
    );
}
