//! How much CPU parsing and fingerprinting one command costs (the engine's per-command work
//! before the core runs): `cargo run --release -p paystate-service --example parse_cost`.
//! Each command of one order's lifecycle (the bench's commands, serialized as the bench sends
//! them) is parsed by the engine's parser and by the parser before issue 15
//! (`parse::reference`), in alternating rounds so both see the same machine load.

use paystate_events::{Command, CommandEnvelope, OrderId};
use paystate_service::parse::{parse_command, reference};
use std::time::Instant;

/// Parses per command per round, and rounds per parser.
const PARSES: usize = 20_000;
const ROUNDS: usize = 5;

/// The bench's lifecycle ([`paystate_events::samples`]) as the bench sends it: each command's
/// step, its JSON body and the subject it goes on.
fn lifecycle() -> Vec<(String, Vec<u8>, &'static str)> {
    let order = OrderId::parse("thr-12345").unwrap_or_else(|e| panic!("{e}"));
    paystate_events::samples::lifecycle(&order)
        .into_iter()
        .map(|env: CommandEnvelope| {
            let subject = match env.command {
                Command::ProviderSignal { .. } => "paystate.signal.thr-12345",
                _ => "paystate.cmd.thr-12345",
            };
            let body = serde_json::to_vec(&env).unwrap_or_default();
            (env.command_id.to_string(), body, subject)
        })
        .collect()
}

/// Microseconds per parse of each command, best of the rounds.
fn cost(
    commands: &[(String, Vec<u8>, &str)],
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
