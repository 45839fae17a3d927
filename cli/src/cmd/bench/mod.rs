//! `paystate bench`: how fast paystate is, each number beside a yardstick measured in the
//! same run (these shared 2-core machines drift, so ratios are what compare across runs).
//!
//! The bench starts its own nats-servers (free port, fresh store) and runs, in order:
//!
//! 1. [`raw`]: pipelined JetStream publishes of real commit bodies with the journal's headers
//!    and the per-subject expected-sequence check: the physical yardstick.
//! 2. [`engine`]: many clients driving order lifecycles through the engine: commands/s; and
//!    [`bare`], the bare request path (request, one append, reply; no engine) as its ceiling.
//! 5. [`read`]: raw ordered-consumer read, audit, projection rebuild over that log.
//! 3. [`engine`] again at a fixed share of row 2's rate: latency percentiles.
//! 4. [`contention`]: many clients on few orders, two engine instances: conflict retries.
//! 6. [`pure`]: `decide` + `evolve` per event on one thread (no IO).
//! 7. [`memory`]: a `paystate run` process fed a million orders: its peak resident memory.
//! 8. rows 1 and 2 again on a server that fsyncs every write (`sync_interval: always`).
//! 9. [`cache_miss`]: an order with 1,000 commits loaded as on a cache miss: one request per
//!    commit (the old read) beside the batched read and the engine's snapshot + tail.
//!
//! [`load`] drives clients, [`workload`] makes the commands, [`table`] prints the report.

mod bare;
mod batched_work;
mod cache_miss;
mod contention;
pub(crate) mod cpu;
mod engine;
mod load;
mod memory;
mod pure;
mod raw;
mod read;
mod scenarios;
mod table;
mod workload;

use paystate_broker::{locate, server_version, NatsServer, ServerOptions};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use table::Report;

/// Scenario names accepted by `--skip`.
pub const SCENARIOS: [&str; 12] = [
    "raw",
    "engine",
    "bare",
    "fast",
    "queue",
    "read",
    "cache_miss",
    "latency",
    "contention",
    "core",
    "memory",
    "durability",
];

/// File name and JSON Schema of `paystate bench --json`'s report (written by `paystate schemas`).
pub fn report_schema() -> (&'static str, serde_json::Value) {
    (
        "cli_bench.schema.json",
        serde_json::to_value(schemars::schema_for!(Report)).unwrap_or_default(),
    )
}

#[derive(clap::Args)]
pub struct Args {
    /// A smoke run of about a minute with small sizes (figures are indicative only).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Orders in the engine throughput run, 6 commands each [default: 100000; quick: 2000].
    #[arg(long)]
    orders: Option<usize>,
    /// Orders fed to the `paystate run` process in the memory run [default: 1000000; quick: 20000].
    #[arg(long)]
    memory_orders: Option<usize>,
    /// Concurrent clients in the throughput runs [default: 256].
    #[arg(long)]
    clients: Option<usize>,
    /// Offered rate of the latency run, as a share of the measured throughput.
    #[arg(long, default_value_t = 0.2)]
    latency_share: f64,
    /// How long the latency run (and its bare-path yardstick before it) offers load, seconds
    /// [default: 20; quick: 5].
    #[arg(long)]
    latency_seconds: Option<u64>,
    /// Pause before the latency run, seconds: the broker then measures it after it has
    /// digested row 2's burst (the log's 2-minute duplicate window holds every command of
    /// it until then) rather than right after.
    #[arg(long, default_value_t = 0)]
    latency_pause_seconds: u64,
    /// Scenarios to leave out, comma-separated: raw, engine, read, cache_miss, latency,
    /// contention, core, memory, durability; within row 2 (engine) also bare (the request
    /// path's ceilings), fast (the fast path; row 3 then has no offered rate) and queue
    /// (the queue path and fire-and-forget), so that `--skip bare,queue,read,...` measures
    /// the fast path alone beside its yardstick, `--skip bare,fast,read,...` the queue path.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    skip: Vec<String>,
}

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub raw_messages: usize,
    pub orders: usize,
    pub clients: usize,
    pub latency_share: f64,
    pub latency_run: Duration,
    pub latency_pause: Duration,
    pub hot_orders: usize,
    pub hot_clients: usize,
    pub hot_commands: usize,
    pub core_budget: Duration,
    /// How long each side of the cache-miss load row measures.
    pub load_budget: Duration,
    pub memory_orders: usize,
    pub durable_raw_messages: usize,
    pub durable_orders: usize,
    pub skip: Vec<String>,
}

impl Plan {
    fn from(args: &Args) -> Plan {
        let q = args.quick;
        let pick = |full: usize, quick: usize| if q { quick } else { full };
        Plan {
            raw_messages: pick(300_000, 30_000),
            orders: args.orders.unwrap_or(pick(100_000, 2_000)),
            clients: args.clients.unwrap_or(256),
            latency_share: args.latency_share,
            latency_run: Duration::from_secs(
                args.latency_seconds.unwrap_or(pick(20, 5) as u64).max(1),
            ),
            latency_pause: Duration::from_secs(args.latency_pause_seconds),
            hot_orders: pick(8, 4),
            hot_clients: pick(64, 32),
            hot_commands: pick(4_000, 400),
            core_budget: Duration::from_millis(pick(2_000, 300) as u64),
            load_budget: Duration::from_millis(pick(3_000, 500) as u64),
            memory_orders: args.memory_orders.unwrap_or(pick(1_000_000, 20_000)),
            durable_raw_messages: pick(5_000, 1_000),
            durable_orders: pick(1_000, 100),
            skip: args.skip.clone(),
        }
    }

    pub fn runs(&self, scenario: &str) -> bool {
        !self.skip.iter().any(|s| s == scenario)
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) && !args.quick {
        eprintln!("warning: a debug build; measure with `cargo build --release -p paystate`");
    }
    let plan = Plan::from(&args);
    let nats_server = locate()
        .and_then(|p| server_version(&p))
        .map_or("unknown".to_string(), |v| v.to_string());
    let mut report = Report {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: table::machine(),
        nats_server,
        mode: if args.quick { "quick" } else { "full" },
        load_before: table::load_average(),
        load_after: f64::NAN,
        seconds: 0.0,
        rows: Vec::new(),
    };
    let started = Instant::now();
    {
        let server = NatsServer::start(ServerOptions::default()).await?;
        scenarios::on_default_server(&server.url(), server.pid(), &plan, &mut report).await?;
    }
    scenarios::pure_core(&plan, &mut report);
    if plan.runs("memory") {
        let server = NatsServer::start(ServerOptions::default()).await?;
        let result = scenarios::memory(&server.url(), &plan, &mut report).await;
        failed(&mut report, "memory", result);
    }
    if plan.runs("durability") {
        let server = NatsServer::start(ServerOptions {
            sync_always: true,
            ..Default::default()
        })
        .await?;
        let result = scenarios::durability(&server.url(), server.pid(), &plan, &mut report).await;
        failed(&mut report, "durability", result);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.load_after = table::load_average();
    if args.json {
        eprintln!("{}", report.render());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.render());
    }
    if load::stalled() {
        eprintln!("error: some commands got no outcome at all (see `unanswered` above): the figures are not valid");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A scenario that failed leaves a note in the report; the other rows still print.
fn failed(report: &mut Report, scenario: &'static str, result: anyhow::Result<()>) {
    if let Err(e) = result {
        eprintln!("{scenario}: failed: {e:#}");
        report.rows.push(
            table::Row::new("failed", 0, scenario, f64::NAN, "")
                .detail(format!("{scenario} failed: {e:#}")),
        );
    }
}
