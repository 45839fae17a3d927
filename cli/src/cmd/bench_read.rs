//! `paystate bench-read`: how fast the log is re-read. Fills a fresh nats-server with N events
//! (through the pure core with pipelined appends, or through the real engine), then measures,
//! on the same data in the same run: the raw ordered-consumer read (the yardstick), the audit
//! and the projection rebuild, and prints a table with rates and ratios.
//! Goals: audit ≥ [`AUDIT_GOAL`]× raw, rebuild ≥ [`REBUILD_GOAL`]× raw. Run it in release mode.

use crate::cmd::bench::cpu::CpuMeter;
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
    /// CPU seconds this process used in the step.
    pub cpu_seconds: f64,
    /// CPU seconds the nats-server used in the step (0 when its process is not known).
    pub server_cpu_seconds: f64,
    pub rss_mb: f64,
}

impl Row {
    /// CPU of this process and the server together per second of the step.
    pub fn cores_busy(&self) -> f64 {
        (self.cpu_seconds + self.server_cpu_seconds) / self.seconds.max(1e-9)
    }

    /// CPU per commit: (this process, the server), in microseconds.
    pub fn cpu_per_commit_us(&self) -> (f64, f64) {
        let commits = (self.commits_per_sec * self.seconds).max(1.0);
        (
            self.cpu_seconds * 1e6 / commits,
            self.server_cpu_seconds * 1e6 / commits,
        )
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; measure with `cargo run --release -p paystate -- bench-read`"
        );
    }
    let server = NatsServer::start(ServerOptions::default()).await?;
    let client = async_nats::ConnectOptions::new()
        .connect(server.url())
        .await?;
    let js = async_nats::jetstream::new(client.clone());
    let log = LogSettings::default();
    let journal = Journal::open(js.clone(), &log).await?;
    eprintln!(
        "filling {} with {} events via {} on {}",
        log.events_stream,
        args.events,
        args.via,
        server.url()
    );
    let started = Instant::now();
    let filled = match args.via.as_str() {
        "engine" => {
            fill_via_engine(client.clone(), &journal, args.events, args.orders_in_flight).await?
        }
        _ => fill_via_core(&js, args.events, args.orders_in_flight).await?,
    };
    let fill_secs = started.elapsed().as_secs_f64();
    let info = journal.stream().get_info().await?;
    eprintln!(
        "filled in {fill_secs:.1}s: {} commits, {} events, {} orders, {} MB stored",
        filled.commits,
        filled.events,
        filled.orders,
        info.state.bytes / 1_000_000
    );
    let (rows, writes) = measure(&journal, &js, &log, &filled, server.pid()).await?;
    print_table(&rows, &filled, info.state.bytes, writes);
    let (decode_us, audit_us) = cpu_costs(&journal).await?;
    println!("CPU per commit, in memory: decode + hash {decode_us:.2} us; whole audit check {audit_us:.2} us");
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"filled": filled, "rows": rows}))?
        );
    }
    let (audit_ok, rebuild_ok) = (
        rows[1].ratio_to_raw >= AUDIT_GOAL,
        rows[2].ratio_to_raw >= REBUILD_GOAL,
    );
    println!(
        "goal audit >= {AUDIT_GOAL}x raw: {}",
        if audit_ok { "met" } else { "NOT met" }
    );
    println!(
        "goal rebuild >= {REBUILD_GOAL}x raw: {}",
        if rebuild_ok { "met" } else { "NOT met" }
    );
    drop(server);
    Ok(ExitCode::SUCCESS)
}

/// The three steps over the log as it is: raw ordered read (the yardstick), audit, projection
/// rebuild; rows in that order, and the records the rebuild wrote. `paystate bench` calls
/// this for its read rows, over the log its engine scenario wrote.
pub async fn measure(
    journal: &Journal,
    js: &async_nats::jetstream::Context,
    log: &LogSettings,
    filled: &Filled,
    server_pid: Option<u32>,
) -> anyhow::Result<(Vec<Row>, u64)> {
    let mut rows = Vec::new();
    let cpu = CpuMeter::start(server_pid);
    // Every step runs as a task on the runtime, as `paystate audit` runs its audit (see there).
    let j = journal.clone();
    let raw = tokio::spawn(async move { raw_read(&j).await }).await??;
    rows.push(row("raw ordered read", raw, raw, filled, &cpu));
    let cpu = CpuMeter::start(server_pid);
    let t = Instant::now();
    // BENCH_AUDIT_WORKERS overrides the worker count (one per core but one) for experiments.
    let workers = std::env::var("BENCH_AUDIT_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(paystate_audit::run::default_workers);
    // BENCH_ORDERS_PER_PASS overrides the orders one pass of the audit and of the rebuild
    // keeps (several passes over the log past it), to measure their memory and time per pass.
    let orders_per_pass = std::env::var("BENCH_ORDERS_PER_PASS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(paystate_journal::passes::ORDERS_PER_PASS_DEFAULT);
    let opts = AuditOptions {
        compare_projection: false,
        workers,
        orders_per_pass,
        ..Default::default()
    };
    let (j, o) = (journal.clone(), opts.clone());
    let report = tokio::spawn(async move { audit(&j, None, &o, &mut |_, _| {}).await }).await??;
    let audit_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.is_clean(false),
        "the benchmark log did not audit clean: {}",
        report.render(10)
    );
    rows.push(row("audit", audit_secs, raw, filled, &cpu));
    let store = ProjectionStore::open(js.clone(), &log.events_stream, 1).await?;
    let cpu = CpuMeter::start(server_pid);
    let t = Instant::now();
    let (j, s) = (journal.clone(), store.clone());
    let rebuild_opts = RebuildOptions {
        orders_per_pass,
        ..Default::default()
    };
    let rebuilt =
        tokio::spawn(async move { rebuild(&s, &j, &rebuild_opts, &mut |_, _| {}).await }).await??;
    let rebuild_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "rebuild: fold and write {} ms of {} ms ({} records, {} passes); audit: {} passes",
        rebuilt.fold_ms, rebuilt.total_ms, rebuilt.writes, rebuilt.passes, report.passes
    );
    rows.push(row("projection rebuild", rebuild_secs, raw, filled, &cpu));
    // Not timed: the rebuilt projection must equal the audit's fold, order by order.
    let check = AuditOptions {
        compare_projection: true,
        ..opts
    };
    let compared = audit(journal, Some(&store), &check, &mut |_, _| {}).await?;
    anyhow::ensure!(
        compared.is_clean(false),
        "the rebuilt projection differs from the fold: {}",
        compared.render(10)
    );
    eprintln!(
        "rebuilt projection equals the fold: {} records compared",
        compared.projection.map_or(0, |p| p.compared)
    );
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
    eprintln!(
        "raw read: {n} messages, {} MB in {secs:.2}s",
        bytes / 1_000_000
    );
    Ok(secs)
}

fn row(step: &'static str, seconds: f64, raw_seconds: f64, filled: &Filled, cpu: &CpuMeter) -> Row {
    let secs = seconds.max(1e-9);
    let (cpu_seconds, server_cpu_seconds) = cpu.seconds();
    Row {
        step,
        seconds,
        commits_per_sec: filled.commits as f64 / secs,
        events_per_sec: filled.events as f64 / secs,
        ratio_to_raw: raw_seconds / secs,
        cpu_seconds,
        server_cpu_seconds,
        rss_mb: rss_mb(),
    }
}

fn print_table(rows: &[Row], filled: &Filled, stored_bytes: u64, writes: u64) {
    println!();
    println!("log: {} events in {} commits of {} orders, {:.0} MB stored; rebuild wrote {writes} records", filled.events, filled.commits, filled.orders, stored_bytes as f64 / 1e6);
    println!(
        "{:<20} {:>9} {:>13} {:>13} {:>8} {:>8} {:>10} {:>6} {:>9}",
        "step", "seconds", "commits/s", "events/s", "x raw", "CPU s", "server s", "cores", "RSS MB"
    );
    for r in rows {
        println!(
            "{:<20} {:>9.2} {:>13.0} {:>13.0} {:>8.2} {:>8.2} {:>10.2} {:>6.2} {:>9.0}",
            r.step,
            r.seconds,
            r.commits_per_sec,
            r.events_per_sec,
            r.ratio_to_raw,
            r.cpu_seconds,
            r.server_cpu_seconds,
            r.cores_busy(),
            r.rss_mb
        );
    }
    println!("cores: CPU seconds of this process and the nats-server together per second of the step (the machine has {}); a step near the machine's cores is bound by CPU, one below it by waiting", std::thread::available_parallelism().map_or(1, |n| n.get()));
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
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Commits held in memory for the CPU-cost breakdown.
const COST_SAMPLE_MAX: u64 = 50_000;

/// Where an audit's CPU goes, per commit, on an in-memory sample of the log (no broker):
/// decoding alone, and the whole audit check. Printed after the table.
pub async fn cpu_costs(journal: &Journal) -> anyhow::Result<(f64, f64)> {
    let mut scan = journal.scan(ScanOptions::default()).await?;
    let mut sample = Vec::new();
    while let Some(entry) = scan.next().await {
        sample.push(entry?);
        if sample.len() as u64 >= COST_SAMPLE_MAX {
            break;
        }
    }
    let n = sample.len().max(1) as f64;
    let t = Instant::now();
    for e in &sample {
        let _ = std::hint::black_box(e.decode());
    }
    let decode_us = t.elapsed().as_secs_f64() * 1e6 / n;
    let t = Instant::now();
    let mut auditor = paystate_audit::Auditor::new("sample", u64::MAX);
    for e in &sample {
        auditor.observe(e);
    }
    let audit_us = t.elapsed().as_secs_f64() * 1e6 / n;
    Ok((decode_us, audit_us))
}
