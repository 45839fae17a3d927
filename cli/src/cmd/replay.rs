//! `paystate replay <order_id> [--at <RFC 3339 time | sequence>] [--json]`: the order's
//! timeline re-derived from the log by the core, and its state at a point.

use crate::cmd::common;
use crate::settings::Settings;
use paystate_audit::timeline::{self, Cause, Entry, Point};
use std::fmt::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    order_id: String,
    /// Show the timeline up to, and the state as of, this point: a stream sequence, or an
    /// RFC 3339 time compared with each commit's decision time.
    #[arg(long, value_parser = Point::parse)]
    at: Option<Point>,
    /// Machine output: {order_id, at, entries, state}.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let order = common::order_id(&args.order_id)?;
    let h = common::open(&settings).await?;
    let commits = h.journal.read_order(&order).await?;
    if commits.is_empty() {
        eprintln!("order {order} not found in the log");
        return Ok(ExitCode::from(1));
    }
    let all = timeline::timeline(&commits);
    let shown = timeline::until(&all, args.at);
    let state = timeline::state_at(&all, args.at);
    if args.json {
        let out = paystate::answers::ReplayOutput {
            order_id: order,
            at: args.at,
            entries: shown.to_vec(),
            state: state.cloned(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "order {order}: {} of {} commits{}",
        shown.len(),
        all.len(),
        args.at
            .map(|p| format!(" up to {}", describe(p)))
            .unwrap_or_default()
    );
    for e in shown {
        print!("{}", render(e));
    }
    match state {
        // `summary` reads "state: <status> | amounts ...".
        Some(s) => println!(
            "{}{}",
            args.at
                .map(|p| format!("at {}, ", describe(p)))
                .unwrap_or_default(),
            crate::timeline::summary(s)
        ),
        None => println!("state: the order did not exist yet at that point"),
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(p: Point) -> String {
    match p {
        Point::Sequence(s) => format!("seq {s}"),
        Point::Time(t) => t.to_rfc3339(),
    }
}

/// One commit: sequence, times, cause (command or provider evidence), events, state after.
fn render(e: &Entry) -> String {
    let mut out = String::new();
    let cause = match &e.cause {
        Cause::Command { name, command_id } => format!("command {name} ({command_id})"),
        Cause::Provider {
            provider,
            status,
            provider_ref,
            evidence_ref,
            observed_at,
            ..
        } => format!(
            "{provider} reported {status} (ref {}, evidence {evidence_ref}, observed {})",
            provider_ref.as_deref().unwrap_or("-"),
            observed_at.to_rfc3339()
        ),
    };
    let status = e
        .state_after
        .as_ref()
        .map_or("?".to_string(), |s| s.status.to_string());
    let _ = writeln!(
        out,
        "seq {:<8} #{:<3} decided {}  stored {}  -> {status}",
        e.sequence,
        e.commit,
        e.decided_at.to_rfc3339(),
        e.time.to_rfc3339()
    );
    let _ = writeln!(out, "    cause: {cause}");
    for ev in &e.events {
        let _ = writeln!(out, "    · {}", crate::timeline::describe(ev));
    }
    if let Some(err) = &e.error {
        let _ = writeln!(out, "    ! history does not fold: {err}");
    }
    out
}
