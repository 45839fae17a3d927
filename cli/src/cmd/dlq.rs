//! `paystate dlq list | show SEQ | redrive SEQ`: the dead-letter stream, for an operator.
//!
//! A dead letter is a message a consumer gave up on after its delivery bound (engine,
//! workers, projector, reconciler, callback re-drive), kept with its reason. `list` shows
//! the ones not yet redriven (oldest first, bounded, paged with `--from`); `show` one with
//! its original headers and payload; `redrive` sends it back once its cause is fixed (see
//! `paystate_journal::dead_letters` for where it goes and how the redrive is recorded).

use crate::settings::Settings;
use anyhow::Context;
use paystate::permissions::Role;
use paystate_events::subjects::{plane_of, Plane};
use paystate_journal::dead_letters::{
    self, DeadLetter, DeadLetterFilter, Source, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX,
};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Dead letters not yet redriven, oldest first.
    List(ListArgs),
    /// One dead letter: reason, origin, original headers and payload.
    Show {
        seq: u64,
        #[arg(long)]
        json: bool,
    },
    /// Send a dead letter back to where it came from (after fixing its cause).
    Redrive { seq: u64 },
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only this consumer kind: engine (cmd), workers, projector, reconciler, callbacks.
    #[arg(long)]
    consumer: Option<String>,
    /// Only this order.
    #[arg(long)]
    order: Option<String>,
    /// Start at this sequence of the dead-letter stream.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// At most this many (at most 1000).
    #[arg(long, default_value_t = LIST_LIMIT_DEFAULT)]
    limit: usize,
    /// Also the ones already redriven.
    #[arg(long)]
    all: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<ExitCode> {
    let client = settings.connect_as(Role::Operator).await?;
    let js = async_nats::jetstream::new(client);
    match cmd {
        Command::List(a) => list(&js, a).await,
        Command::Show { seq, json } => show(&js, seq, json).await,
        Command::Redrive { seq } => redrive(&settings, &js, seq).await,
    }
}

async fn list(js: &async_nats::jetstream::Context, a: ListArgs) -> anyhow::Result<ExitCode> {
    if a.limit == 0 || a.limit > LIST_LIMIT_MAX {
        anyhow::bail!("--limit must be 1..={LIST_LIMIT_MAX}");
    }
    let source = match a.consumer.as_deref() {
        None => None,
        Some(name) => Some(Source::parse(name).with_context(|| {
            format!(
                "unknown consumer {name:?}: engine, workers, projector, reconciler or callbacks"
            )
        })?),
    };
    let filter = DeadLetterFilter {
        source,
        order: a.order,
        from_seq: a.from,
        limit: a.limit,
        include_redriven: a.all,
    };
    let page = dead_letters::list(js, &filter).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    if page.letters.is_empty() {
        println!("no dead letters");
    }
    for l in &page.letters {
        println!("{}", line(l));
    }
    if let Some(next) = page.next_seq {
        println!("(more: paystate dlq list --from {next})");
    }
    Ok(ExitCode::SUCCESS)
}

fn line(l: &DeadLetter) -> String {
    let redriven = match &l.redriven {
        Some(r) => format!(" [redriven {} to {}]", r.at.to_rfc3339(), r.to),
        None => String::new(),
    };
    format!(
        "{seq:>8}  {time}  {source:<10} order {order}  {size} B  {reason}{redriven}",
        seq = l.seq,
        time = l.time.to_rfc3339(),
        source = l.source.token(),
        order = l.order,
        size = l.size,
        reason = l.reason,
    )
}

async fn show(
    js: &async_nats::jetstream::Context,
    seq: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let body = dead_letters::show(js, seq).await?;
    let payload = match std::str::from_utf8(&body.payload) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(text)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
        Err(_) => serde_json::Value::String(format!("<{} bytes, not UTF-8>", body.payload.len())),
    };
    if json {
        let v = paystate::answers::DlqShowOutput {
            letter: body.letter.clone(),
            headers: body.headers.clone(),
            payload,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let l = &body.letter;
    println!("dead letter {}", l.seq);
    println!("  consumer   {} ({})", l.source.token(), l.consumer);
    println!("  order      {}", l.order);
    println!("  subject    {}", l.subject);
    println!("  reason     {}", l.reason);
    println!("  set aside  {}", l.time.to_rfc3339());
    if let Some((stream, s)) = &l.origin {
        println!("  origin     {stream} seq {s}");
    }
    if let Some(d) = l.deliveries {
        println!("  deliveries {d}");
    }
    match &l.redriven {
        Some(r) => println!(
            "  redriven   {} to {} (seq {})",
            r.at.to_rfc3339(),
            r.to,
            r.seq
        ),
        None => println!("  redriven   no (paystate dlq redrive {})", l.seq),
    }
    for (name, value) in &body.headers {
        println!("  header     {name}: {value}");
    }
    println!("{}", serde_json::to_string_pretty(&payload)?);
    Ok(ExitCode::SUCCESS)
}

/// Redrives through the role allowed to publish where the letter goes: commands as the
/// client role, signals as the reporter role, operator commands, redrive requests (and the
/// marker) as the operator.
async fn redrive(
    settings: &Settings,
    js: &async_nats::jetstream::Context,
    seq: u64,
) -> anyhow::Result<ExitCode> {
    let body = dead_letters::show(js, seq).await?;
    let to = dead_letters::redrive_target(&body.letter);
    let publisher = match plane_of(&to) {
        Some(Plane::Signal) => Some(settings.connect_as(Role::Reporter).await?),
        Some(Plane::Client) => Some(settings.connect_as(Role::Client).await?),
        Some(Plane::Operator) => Some(settings.connect_as(Role::Operator).await?),
        None => None,
    };
    let r = match publisher {
        Some(client) => {
            let publisher = async_nats::jetstream::new(client);
            dead_letters::redrive_via(js, &publisher, seq).await?
        }
        None => dead_letters::redrive(js, seq).await?,
    };
    println!(
        "dead letter {seq} redriven to {} (seq {}); `paystate dlq list` no longer shows it",
        r.to, r.seq
    );
    Ok(ExitCode::SUCCESS)
}
