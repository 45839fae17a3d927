//! `paystate service ls | info | stats`: the engine's NATS service as `nats micro ls | info |
//! stats paystate` show it, over the same protocol (`$SRV.PING|INFO|STATS.paystate`): every
//! live instance answers once, with its endpoints (the fast-path partitions it serves) and
//! their request and error counts and processing times. For machines without the `nats` CLI.

use crate::settings::Settings;
use anyhow::Context;
use futures::StreamExt;
use paystate::permissions::Role;
use paystate_events::subjects::SERVICE_NAME;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// How long answers are collected: every live instance answers well within it.
const COLLECT: Duration = Duration::from_millis(500);
/// Answers read at most (instances of one deployment).
const ANSWERS_MAX: usize = 256;

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
        Command::Ls(a) => ("PING", a),
        Command::Info(a) => ("INFO", a),
        Command::Stats(a) => ("STATS", a),
    };
    let nats = settings.connect_as(Role::Operator).await?;
    let answers = ask(&nats, verb).await?;
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

/// Every instance's answer to `$SRV.<verb>.paystate`, sorted by instance id.
pub async fn ask(nats: &async_nats::Client, verb: &str) -> anyhow::Result<Vec<Value>> {
    let inbox = nats.new_inbox();
    let mut sub = nats.subscribe(inbox.clone()).await?;
    nats.publish_with_reply(format!("$SRV.{verb}.{SERVICE_NAME}"), inbox, "".into())
        .await
        .context("asking the service")?;
    let mut answers = Vec::new();
    let until = tokio::time::sleep(COLLECT);
    tokio::pin!(until);
    while answers.len() < ANSWERS_MAX {
        tokio::select! {
            _ = &mut until => break,
            next = sub.next() => match next {
                Some(msg) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) {
                        answers.push(v);
                    }
                }
                None => break,
            },
        }
    }
    answers.sort_by(|a, b| text(a, "id").cmp(text(b, "id")));
    Ok(answers)
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
        if verb == "PING" {
            out.push_str(&format!("  serving {} partitions\n", endpoints.len()));
        }
    }
    out
}
