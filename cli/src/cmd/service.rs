//! `paystate service ls | info | stats`: the engine's NATS service as `nats micro ls | info |
//! stats paystate` show it, over the same protocol (`$SRV.PING|INFO|STATS.paystate`): every
//! live instance answers once, with its endpoints (the fast-path partitions it serves) and
//! their request and error counts and processing times. For machines without the `nats` CLI.

use crate::settings::Settings;
use paystate::permissions::Role;
use paystate_events::subjects::SERVICE_NAME;
use paystate_service::fast::discovery;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// How long answers are collected: every live instance answers well within it.
const COLLECT: Duration = Duration::from_millis(500);

#[derive(clap::Subcommand)]
pub enum Command {
    /// Live instances: id, version, endpoints served.
    Ls(Args),
    /// Each instance's description, metadata and endpoints (subjects, queue group).
    Info(Args),
    /// Each endpoint's requests, errors and processing times.
    Stats(Args),
}

#[derive(clap::Args)]
pub struct Args {
    /// Print the instances' answers as a JSON array.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, command: Command) -> anyhow::Result<ExitCode> {
    let (verb, args) = match &command {
        // INFO rather than PING: a ping answer does not list the endpoints.
        Command::Ls(a) => ("LS", a),
        Command::Info(a) => ("INFO", a),
        Command::Stats(a) => ("STATS", a),
    };
    let nats = settings.connect_as(Role::Operator).await?;
    let asked = if verb == "LS" { "INFO" } else { verb };
    let answers = discovery::ask(&nats, asked, COLLECT)
        .await
        .map_err(|e| anyhow::anyhow!("asking the {SERVICE_NAME} service: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    } else {
        print!("{}", render(verb, &answers));
    }
    Ok(if answers.is_empty() {
        eprintln!("no instance of the {SERVICE_NAME} service answered");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn render(verb: &str, answers: &[Value]) -> String {
    let mut out = String::new();
    for a in answers {
        let endpoints = a
            .get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} {}{}\n",
            text(a, "name"),
            text(a, "version"),
            text(a, "id"),
            match verb {
                "STATS" => format!(" (started {})", text(a, "started")),
                "INFO" => format!(": {}", text(a, "description")),
                _ => String::new(),
            }
        ));
        for e in &endpoints {
            let line = match verb {
                "STATS" => format!(
                    "  {:<6} {:<28} requests {:>9}  errors {:>6}  average {:>10} ns  total {:>14} ns\n",
                    text(e, "name"),
                    text(e, "subject"),
                    e.get("num_requests").and_then(Value::as_u64).unwrap_or(0),
                    e.get("num_errors").and_then(Value::as_u64).unwrap_or(0),
                    e.get("average_processing_time").and_then(Value::as_u64).unwrap_or(0),
                    e.get("processing_time").and_then(Value::as_u64).unwrap_or(0),
                ),
                "INFO" => format!(
                    "  {:<6} {:<28} queue group {}\n",
                    text(e, "name"),
                    text(e, "subject"),
                    text(e, "queue_group")
                ),
                _ => String::new(),
            };
            out.push_str(&line);
        }
        if verb == "LS" {
            let partitions = a
                .get("metadata")
                .and_then(|m| m.get("partitions"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push_str(&format!(
                "  serving {} partitions: {partitions}\n",
                endpoints.len()
            ));
        }
    }
    out
}
