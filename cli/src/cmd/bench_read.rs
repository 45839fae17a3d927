//! `paystate bench-read`: how fast the log is re-read. Fills a fresh nats-server with N events
//! (through the pure core with pipelined appends, or through the real engine), then measures,
//! on the same data in the same run: the raw ordered-consumer read (the yardstick), the audit
//! and the projection rebuild, and prints a table with rates and ratios.
//! Goals: audit ≥ [`AUDIT_GOAL`]× raw, rebuild ≥ [`REBUILD_GOAL`]× raw. Run it in release mode.

use crate::cmd::bench_fill::{fill_via_core, fill_via_engine, Filled};
use paystate_audit::{audit, AuditOptions};
use paystate_broker::{NatsServer, ServerOptions};
use paystate_journal::{Journal, LogSettings, ScanOptions};
use paystate_projection::{rebuild, ProjectionStore, RebuildOptions};
use std::process::ExitCode;
use std::time::Instant;

/// Audit rate goal, as a fraction of the raw read rate.
pub const AUDIT_GOAL: f64 = 0.8;
/// Projection rebuild rate goal, as a fraction of the raw read rate.
pub const REBUILD_GOAL: f64 = 0.5;
/// Most events a run may ask for (bounds disk and time).
pub const EVENTS_MAX: u64 = 20_000_000;

#[derive(clap::Args)]
pub struct Args {
    /// Events to put in the log (each commit holds one or two).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=EVENTS_MAX))]
    events: u64,
    /// How to fill: `core` (decide + fold in process, pipelined appends) or `engine` (commands
    /// through the real command service).
    #[arg(long, default_value = "core", value_parser = ["core", "engine"])]
    via: String,
    /// Orders in flight at once while filling (their commits interleave in the log).
    #[arg(long, default_value_t = 2_000)]
    orders_in_flight: usize,
    /// Also print the table as JSON.
    #[arg(long)]
    json: bool,
}

/// One measured step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub step: &'static str,
    pub seconds: f64,
    pub commits_per_sec: f64,
    pub events_per_sec: f64,
    pub ratio_to_raw: f64,
    pub rss_mb: f64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; measure with `cargo run --release -p paystate -- bench-read`");
    }
    let server = NatsServer::start(ServerOptions::default()).await?;
    let client = async_nats::ConnectOptions::new().connect(server.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let log = LogSettings::default();
    let journal = Journal::open(js.clone(), &log).await?;
    eprintln!("filling {} with {} events via {} on {}", log.events_stream, args.events, args.via, server.url());
    let started = Instant::now();
    let filled = match args.via.as_str() {
        "engine" => fill_via_engine(client.clone(), &journal, args.events, args.orders_in_flight).await?,
        _ => fill_via_core(&js, args.events, args.orders_in_flight).await?,
    };
    let fill_secs = started.elapsed().as_secs_f64();
    let info = journal.stream().get_info().await?;
    eprintln!("filled in {fill_secs:.1}s: {} commits, {} events, {} orders, {} MB stored", filled.commits, filled.events, filled.orders, info.state.bytes / 1_000_000);
    let (rows, writes) = measure(&journal, &js, &log, &filled).await?;
    print_table(&rows, &filled, info.state.bytes, writes);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"filled": filled, "rows": rows}))?);
    }
    let (audit_ok, rebuild_ok) = (rows[1].ratio_to_raw >= AUDIT_GOAL, rows[2].ratio_to_raw >= REBUILD_GOAL);
    println!("goal audit >= {AUDIT_GOAL}x raw: {}", if audit_ok { "met" } else { "NOT met" });
    println!("goal rebuild >= {REBUILD_GOAL}x raw: {}", if rebuild_ok { "met" } else { "NOT met" });
    drop(server);
    Ok(ExitCode::SUCCESS)
}

/// The three steps over the log as it is: raw ordered read (the yardstick), audit, projection
/// rebuild; rows in that order, and the records the rebuild wrote. `paystate bench` calls
/// this for its read rows, over the log its engine scenario wrote.
pub async fn measure(journal: &Journal, js: &async_nats::jetstream::Context, log: &LogSettings, filled: &Filled) -> anyhow::Result<(Vec<Row>, u64)> {
    let mut rows = Vec::new();
    let raw = raw_read(journal).await?;
    rows.push(row("raw ordered read", raw, raw, filled));
    let t = Instant::now();
    let report = audit(journal, None, &AuditOptions { compare_projection: false, ..Default::default() }, &mut |_, _| {}).await?;
    let audit_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.is_clean(false), "the benchmark log did not audit clean: {}", report.render(10));
    rows.push(row("audit", audit_secs, raw, filled));
    let store = ProjectionStore::open(js.clone(), &log.events_stream, 1).await?;
    let t = Instant::now();
    let rebuilt = rebuild(&store, journal, &RebuildOptions::default(), &mut |_, _| {}).await?;
    let rebuild_secs = t.elapsed().as_secs_f64();
    rows.push(row("projection rebuild", rebuild_secs, raw, filled));
    Ok((rows, rebuilt.writes))
}

/// Reads the whole log with the same ordered-consumer scan the audit uses, doing nothing
/// with the messages but counting them; returns seconds.
async fn raw_read(journal: &Journal) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut scan = journal.scan(ScanOptions::default()).await?;
    let (mut n, mut bytes) = (0u64, 0usize);
    while let Some(entry) = scan.next().await {
        bytes += entry?.payload.len();
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!("raw read: {n} messages, {} MB in {secs:.2}s", bytes / 1_000_000);
    Ok(secs)
}

fn row(step: &'static str, seconds: f64, raw_seconds: f64, filled: &Filled) -> Row {
    let secs = seconds.max(1e-9);
    Row {
        step,
        seconds,
        commits_per_sec: filled.commits as f64 / secs,
        events_per_sec: filled.events as f64 / secs,
        ratio_to_raw: raw_seconds / secs,
        rss_mb: rss_mb(),
    }
}

fn print_table(rows: &[Row], filled: &Filled, stored_bytes: u64, writes: u64) {
    println!();
    println!("log: {} events in {} commits of {} orders, {:.0} MB stored; rebuild wrote {writes} records", filled.events, filled.commits, filled.orders, stored_bytes as f64 / 1e6);
    println!("{:<20} {:>9} {:>13} {:>13} {:>8} {:>9}", "step", "seconds", "commits/s", "events/s", "x raw", "RSS MB");
    for r in rows {
        println!("{:<20} {:>9.2} {:>13.0} {:>13.0} {:>8.2} {:>9.0}", r.step, r.seconds, r.commits_per_sec, r.events_per_sec, r.ratio_to_raw, r.rss_mb);
    }
    println!("peak RSS of this process: {:.0} MB", peak_rss_mb());
}

/// Resident memory now, from /proc (0 where unavailable).
fn rss_mb() -> f64 {
    proc_status_kb("VmRSS:") / 1024.0
}

fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:") / 1024.0
}

fn proc_status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0.0)
}
