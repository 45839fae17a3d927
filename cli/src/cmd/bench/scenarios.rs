//! Each scenario run and turned into report rows (with yardsticks, ratios and goals).

use super::bare::Shape;
use super::cpu::{CpuMeter, CpuPerOp};
use super::load::Path;
use super::table::{human, Report, Row};
use super::{cache_miss, contention, engine, memory, pure, raw, read, Plan};

/// Goal: fast-path throughput at least this share of the raw append, by rate and by CPU per
/// operation (bench process and nats-server together).
pub const THROUGHPUT_GOAL_RATIO: f64 = 0.5;
/// Goal: queue-path throughput at least this share of the raw append rate.
pub const QUEUE_THROUGHPUT_GOAL_RATIO: f64 = 0.25;
/// Goals of the hot-order row: p99 latency and conflict retries per command.
pub const HOT_P99_GOAL_MS: f64 = 100.0;
pub const HOT_CONFLICTS_PER_COMMAND_MAX: f64 = 0.05;
/// Goal: p99 command-to-outcome latency under this, at the latency run's offered rate.
pub const LATENCY_P99_GOAL_MS: f64 = 5.0;
/// Goal: events decided and folded per second on one thread.
pub const CORE_GOAL_PER_S: f64 = 5_000_000.0;
/// Goal: peak resident memory of `paystate run` at the default cache.
pub const MEMORY_GOAL_MIB: f64 = 300.0;
/// Goals of the read rows (from the projections issue), as shares of the raw read.
const AUDIT_GOAL_RATIO: f64 = crate::cmd::bench_read::AUDIT_GOAL;
const REBUILD_GOAL_RATIO: f64 = crate::cmd::bench_read::REBUILD_GOAL;

/// Rows 1, 2, 5, 9, 3 and 4, in that order, on one server with the default fsync interval.
pub async fn on_default_server(
    url: &str,
    server_pid: Option<u32>,
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    if plan.runs("raw") {
        eprintln!("1 raw append: {} messages", plan.raw_messages);
        let row = raw_row(url, server_pid, plan.raw_messages).await?;
        report.rows.push(row);
    }
    if plan.runs("engine") {
        let orders = plan.orders.min(BARE_ORDERS_MAX);
        if plan.runs("bare") {
            eprintln!(
                "2 bare request path (ceilings): one command, batched, batched with the engine's work, one command with the work batched: {orders} orders x 6 requests, {} clients",
                plan.clients
            );
            for shape in [
                Shape::OnePerRequest,
                Shape::Batched,
                Shape::BatchedWork,
                Shape::MicroBatched,
            ] {
                let row = bare_row(url, server_pid, orders, plan.clients, shape, report).await?;
                report.rows.push(row);
            }
        }
        let paths = [(Path::Fast, "fast"), (Path::Queue, "queue")];
        for path in paths
            .into_iter()
            .filter_map(|(p, name)| plan.runs(name).then_some(p))
        {
            eprintln!(
                "2 engine throughput, {}: {} orders x 6 commands, {} clients",
                path.name(),
                plan.orders,
                plan.clients
            );
            let tag = match path {
                Path::Fast => "thr",
                Path::Queue => "thq",
            };
            let row = throughput_row(url, server_pid, tag, plan.orders, plan.clients, path).await?;
            report.rows.extend(throughput_rows(row, path, report));
        }
        if plan.runs("queue") {
            eprintln!(
                "2 engine throughput, queue path, fire-and-forget: {} orders x 6 commands, {} publishers",
                plan.orders, plan.clients
            );
            let row =
                fire_and_forget_row(url, server_pid, plan.orders, plan.clients, report).await?;
            report.rows.push(row);
        }
        if plan.runs("read") {
            read_rows(url, server_pid, plan, report).await?;
        }
    }
    if plan.runs("cache_miss") {
        eprintln!(
            "9 cache-miss load: an order with {} commits: one request per commit, batched, snapshot",
            cache_miss::COMMITS
        );
        report
            .rows
            .extend(cache_miss::rows(url, plan.load_budget).await?);
    }
    if plan.runs("latency") {
        latency(url, plan, report).await?;
    }
    if plan.runs("contention") {
        for path in [Path::Fast, Path::Queue] {
            hot_orders(url, plan, path, report).await?;
        }
    }
    Ok(())
}

/// Row 4: hot orders on `path`, two engines. The fast path's rows carry the goals on p99 and
/// conflicts; the queue path's shows its conflicts (order affinity by forwarding).
async fn hot_orders(url: &str, plan: &Plan, path: Path, report: &mut Report) -> anyhow::Result<()> {
    eprintln!(
        "4 hot orders, {}: {} refunds on {} orders from {} clients",
        path.name(),
        plan.hot_commands,
        plan.hot_orders,
        plan.hot_clients
    );
    let c = contention::hot_orders(
        url,
        plan.hot_orders,
        plan.hot_clients,
        plan.hot_commands,
        path,
    )
    .await?;
    let mut r = c.report;
    let (p50, p99) = (r.percentile_ms(50.0), r.percentile_ms(99.0));
    let per_command = c.counters.conflicts as f64 / r.commands.max(1) as f64;
    let (id, label, conflicts_id, conflicts_label) = match path {
        Path::Fast => (
            "hot_orders",
            "hot orders, fast path",
            "hot_orders_conflicts",
            "hot orders conflict retries",
        ),
        Path::Queue => (
            "hot_orders_queue",
            "hot orders, queue path",
            "hot_orders_queue_conflicts",
            "hot orders queue conflicts",
        ),
    };
    let mut row = Row::new(id, 4, label, r.per_s(), "cmd/s");
    if let Some(base) = report.value("engine_throughput") {
        row = row.against("engine throughput", base);
    }
    let detail = format!(
        "{} clients on {} orders, {} engines: {} conflict retries ({per_command:.3} per command), {} given back, {} forwarded to the order's instance, {} handed on but decided here after no answer; p50 {p50:.1} ms, p99 {p99:.1} ms; {}",
        c.clients, c.orders, contention::ENGINES, c.counters.conflicts,
        c.counters.retried_later, c.counters.forwarded, c.counters.forward_fallbacks, outcomes(&r),
    );
    report.rows.push(row.detail(detail));
    if path == Path::Fast {
        report.rows.push(
            Row::new("hot_orders_p99", 4, "hot orders p99", p99, "ms")
                .goal(format!("p99 < {HOT_P99_GOAL_MS} ms"), p99 < HOT_P99_GOAL_MS),
        );
    }
    report.rows.push(
        Row::new(conflicts_id, 4, conflicts_label, per_command, "per cmd").goal(
            format!("< {HOT_CONFLICTS_PER_COMMAND_MAX} per command"),
            per_command < HOT_CONFLICTS_PER_COMMAND_MAX,
        ),
    );
    Ok(())
}

async fn latency(url: &str, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let Some(max) = report.value("engine_throughput") else {
        eprintln!("3 latency: skipped (needs the throughput row for its offered rate)");
        return Ok(());
    };
    let rate = max * plan.latency_share;
    eprintln!(
        "3 engine latency: {rate:.0} cmd/s offered for {:?}, after the bare path at the same rate",
        plan.latency_run
    );
    if !plan.latency_pause.is_zero() {
        eprintln!("3 latency: pausing {:?} first", plan.latency_pause);
        tokio::time::sleep(plan.latency_pause).await;
    }
    // The yardstick first, at the same offered rate: the bare request path's round trips.
    let bare_before = super::table::load_average();
    let run = plan.latency_run;
    let bare = match super::bare::latency(url, rate, run).await {
        Ok(mut b) => {
            let p99 = b.percentile_ms(99.0);
            report.rows.push(
                Row::new("bare_latency_p99", 3, "bare path latency p99", p99, "ms").detail(format!(
                    "yardstick: the bare request path (row 2) offered the same {} cmd/s, open loop, achieved {}: p50 {:.2} ms, p99 {p99:.2} ms, p99.9 {:.2} ms, max {:.1} ms; load average {bare_before:.2} before; {} answered, {} unanswered",
                    human(rate), human(b.per_s()), b.percentile_ms(50.0), b.percentile_ms(99.9), b.percentile_ms(100.0), b.accepted, b.unanswered
                )),
            );
            Some(p99)
        }
        Err(e) => {
            eprintln!("3 latency: bare yardstick skipped ({e:#})");
            None
        }
    };
    let load_before = super::table::load_average();
    let mut r = engine::latency(url, rate, run).await?;
    let (p50, p99, p999) = (
        r.percentile_ms(50.0),
        r.percentile_ms(99.0),
        r.percentile_ms(99.9),
    );
    let mut row = Row::new("engine_latency_p99", 3, "engine latency p99", p99, "ms").goal(
        format!("p99 < {LATENCY_P99_GOAL_MS} ms"),
        p99 < LATENCY_P99_GOAL_MS,
    );
    if let Some(bare) = bare {
        row = row.against("bare path p99", bare);
    }
    let row = row.detail(format!(
            "fast path, offered {} cmd/s ({:.0}% of row 2) for {run:?} after a pause of {:?}, achieved {}: p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {:.1} ms; load average {:.2} before, {:.2} after; {}",
            human(rate), plan.latency_share * 100.0, plan.latency_pause, human(r.per_s()), r.percentile_ms(100.0), load_before, super::table::load_average(), outcomes(&r)
        ));
    report.rows.push(Row::new(
        "engine_latency_p50",
        3,
        "engine latency p50",
        p50,
        "ms",
    ));
    report.rows.push(row);
    report.rows.push(Row::new(
        "engine_latency_p999",
        3,
        "engine latency p99.9",
        p999,
        "ms",
    ));
    Ok(())
}

async fn read_rows(
    url: &str,
    server_pid: Option<u32>,
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("5 read: raw ordered read, audit, projection rebuild over the engine's log");
    let rows = read::rows(url, server_pid, plan.orders as u64).await?;
    let ids = [
        ("raw_read", "raw read (yardstick)"),
        ("audit", "audit"),
        ("projection_rebuild", "projection rebuild"),
    ];
    let raw = rows.first().map_or(f64::NAN, |r| r.commits_per_sec);
    for (r, (id, name)) in rows.iter().zip(ids) {
        let (bench_us, server_us) = r.cpu_per_commit_us();
        let mut row = Row::new(id, 5, name, r.commits_per_sec, "commit/s")
            .detail(format!(
                "{:.2} s, {:.0} events/s; {:.2} cores busy (this process and nats-server)",
                r.seconds,
                r.events_per_sec,
                r.cores_busy()
            ))
            .cpu(CpuPerOp {
                bench_us,
                server_us,
            });
        match id {
            "audit" => {
                row = row.against("raw read", raw);
                row = row.goal(
                    format!(">= {AUDIT_GOAL_RATIO}x raw read"),
                    r.ratio_to_raw >= AUDIT_GOAL_RATIO,
                );
            }
            "projection_rebuild" => {
                row = row.against("raw read", raw);
                row = row.goal(
                    format!(">= {REBUILD_GOAL_RATIO}x raw read"),
                    r.ratio_to_raw >= REBUILD_GOAL_RATIO,
                );
            }
            _ => {}
        }
        report.rows.push(row);
    }
    Ok(())
}

/// Row 6, in this process, single thread.
pub fn pure_core(plan: &Plan, report: &mut Report) {
    if !plan.runs("core") {
        return;
    }
    eprintln!("6 pure core: decide + evolve, one thread");
    let rates = pure::measure(plan.core_budget);
    report.rows.push(
        Row::new(
            "core_decide_evolve",
            6,
            "pure core decide+evolve",
            rates.decide_evolve_per_s,
            "event/s",
        )
        .goal(
            format!(">= {} event/s", human(CORE_GOAL_PER_S)),
            rates.decide_evolve_per_s >= CORE_GOAL_PER_S,
        )
        .detail(format!(
            "per CPU second of the thread; {} event/s by the wall clock (other processes preempt it); evolve alone (replay, audit, projections): {} event/s",
                human(rates.decide_evolve_per_wall_s),
            human(rates.evolve_per_s)
        )),
    );
}

/// Row 7, on its own fresh server.
pub async fn memory(url: &str, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let cache = paystate_service::EngineConfig::default().cache_orders_max;
    eprintln!(
        "7 memory: `paystate run` (cache {cache} orders) fed {} orders",
        plan.memory_orders
    );
    let m = memory::engine_process(url, plan.memory_orders, cache, plan.clients).await?;
    let curve: Vec<String> = m
        .samples
        .iter()
        .map(|(n, mib)| format!("{} orders: {mib:.0} MiB", human(*n as f64)))
        .collect();
    report.rows.push(
        Row::new("memory_peak", 7, "memory: peak RSS", m.peak_mib, "MiB")
            .goal(format!("<= {MEMORY_GOAL_MIB} MiB at cache {}", human(m.cache_orders_max as f64)), m.peak_mib <= MEMORY_GOAL_MIB)
            .detail(format!(
                "{} orders in {:.0} s ({} cmd/s; engine + projector + HTTP, as `paystate run`); resident: {}; {}",
                human(m.orders as f64), m.report.elapsed.as_secs_f64(), human(m.report.per_s()), curve.join(", "), outcomes(&m.report)
            )),
    );
    Ok(())
}

/// Row 8: rows 1 and 2 again with an fsync on every write.
pub async fn durability(
    url: &str,
    server_pid: Option<u32>,
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("8 durability: sync_interval: always");
    let raw = raw_row(url, server_pid, plan.durable_raw_messages).await?;
    let mut raw = Row {
        id: "raw_append_sync",
        number: 8,
        name: "raw append, fsync always",
        ..raw
    };
    if let Some(base) = report.value("raw_append") {
        raw = raw.against("raw append", base);
    }
    let raw_per_s = raw.value;
    report.rows.push(raw);
    let row = throughput_row(
        url,
        server_pid,
        "dur",
        plan.durable_orders,
        plan.clients,
        Path::Fast,
    )
    .await?;
    let mut row = Row {
        id: "engine_throughput_sync",
        number: 8,
        name: "engine, fsync always",
        ..row
    };
    if let Some(base) = report.value("engine_throughput") {
        row = row.against("engine throughput", base);
    }
    row.detail = format!(
        "{:.2}x raw append with fsync always; {}",
        row.value / raw_per_s,
        row.detail
    );
    report
        .rows
        .push(with_cpu_ratio(row, report, "raw_append_sync"));
    Ok(())
}

/// The raw append yardstick as a row (row 1; row 8 renames it).
async fn raw_row(url: &str, server_pid: Option<u32>, messages: usize) -> anyhow::Result<Row> {
    let nats = paystate_service::connect(url, "paystate-bench-raw")
        .await
        .map_err(anyhow::Error::msg)?;
    let cpu = CpuMeter::start(server_pid);
    // Why a task, like every client of the other rows: on the main thread each ack wakes it
    // from the connection's thread, which made the yardstick 8 % slower and 15 % dearer in
    // CPU (A/B, three runs each: 50-52k against 54-56k msg/s), flattering every ratio.
    let r = tokio::spawn(raw::append(nats, messages)).await??;
    let cpu = cpu.per_op(r.messages);
    Ok(
        Row::new("raw_append", 1, "raw append (yardstick)", r.per_s, "msg/s")
            .cpu(cpu)
            .detail(format!(
                "{} messages of {} bytes, expected-sequence header, {} refused",
                r.messages, r.bytes_per_message, r.errors
            )),
    )
}

/// Orders of the bare request path's run (enough for a steady rate; it only sets a ceiling).
const BARE_ORDERS_MAX: usize = 20_000;

/// Row 2's ceilings: the bare request path against the raw append, by rate and by CPU.
async fn bare_row(
    url: &str,
    server_pid: Option<u32>,
    orders: usize,
    clients: usize,
    shape: Shape,
    report: &Report,
) -> anyhow::Result<Row> {
    let cpu = CpuMeter::start(server_pid);
    let b = super::bare::run(url, orders, clients, shape).await?;
    let cpu = cpu.per_op(b.commands);
    let (id, label, what) = match shape {
        Shape::OnePerRequest => (
            "bare_request_path",
            "bare request path (ceiling)",
            "request, JSON parse, one awaited OCC append with a message id, reply".to_string(),
        ),
        Shape::Batched => (
            "bare_request_path_batched",
            "bare path, batched (ceiling)",
            format!(
                "one request per client connection carrying every waiting command (at most {}), an OCC append with a message id each, one reply",
                super::bare::BATCH_COMMANDS_MAX
            ),
        ),
        Shape::MicroBatched => (
            "bare_request_path_micro_batched",
            "one request each, work batched (ceiling)",
            format!(
                "one request per command as on the fast path; each of {} responder tasks takes every request waiting (at most {}), decides and sends all their commits, confirms each and answers each with its outcome (the engine's work as in the batched row)",
                super::engine::CLIENT_CONNECTIONS,
                super::bare::BATCH_COMMANDS_MAX
            ),
        ),
        Shape::BatchedWork => (
            "bare_request_path_batched_work",
            "batched, engine work (ceiling)",
            format!(
                "as batched (at most {}), each command parsed, decided on its cached order, its commit encoded, hashed and sent to the engine's log stream, folded, its outcome encoded and decoded",
                super::bare::BATCH_COMMANDS_MAX
            ),
        ),
    };
    let mut row = Row::new(id, 2, label, b.per_s, "cmd/s").cpu(cpu);
    if let Some(base) = report.value("raw_append") {
        row = row.against("raw append", base);
    }
    let by_cpu = report
        .rows
        .iter()
        .find(|r| r.id == "raw_append")
        .and_then(|r| r.cpu)
        .map(|raw| raw.total_us() / cpu.total_us().max(1e-9));
    Ok(row.detail(format!(
        "{what}; no engine: {} commands, {} failed; by CPU per operation {}",
        b.commands,
        b.errors,
        by_cpu.map_or("-".to_string(), |r| format!("{r:.2}x raw append")),
    )))
}

/// Lifecycles through one engine in this process, as a row (row 2; row 8 renames it).
async fn throughput_row(
    url: &str,
    server_pid: Option<u32>,
    tag: &'static str,
    orders: usize,
    clients: usize,
    path: Path,
) -> anyhow::Result<Row> {
    let cpu = CpuMeter::start(server_pid);
    let r = engine::throughput(url, tag, orders, clients, path).await?;
    let cpu = cpu.per_op(r.commands);
    Ok(Row::new(
        "engine_throughput",
        2,
        "engine throughput",
        r.per_s(),
        "cmd/s",
    )
    .cpu(cpu)
    .detail(load_detail(r)))
}

/// The queue path as fire-and-forget callers use it (row 2): publish, the broker's ack, no
/// outcome awaited; the rate of commands the engine decided.
async fn fire_and_forget_row(
    url: &str,
    server_pid: Option<u32>,
    orders: usize,
    publishers: usize,
    report: &Report,
) -> anyhow::Result<Row> {
    let cpu = CpuMeter::start(server_pid);
    let r = engine::queue_fire_and_forget(url, "thf", orders, publishers).await?;
    let cpu = cpu.per_op(r.commands);
    let mut row = Row::new(
        "engine_throughput_queue_ff",
        2,
        "queue path, fire-and-forget",
        r.per_s(),
        "cmd/s",
    )
    .cpu(cpu)
    .detail(format!(
        "{} commands published (each awaited for the broker's ack only) and decided in {:.1} s; {}",
        human(r.commands as f64),
        r.elapsed.as_secs_f64(),
        outcomes(&r)
    ));
    if let Some(raw) = report.value("raw_append") {
        row = row.against("raw append", raw);
    }
    Ok(with_cpu_ratio(row, report, "raw_append"))
}

/// Row 2 of one path: its rate against the raw append, and for the fast path also its CPU
/// per command against the raw append's CPU per message (bench process and server together).
fn throughput_rows(row: Row, path: Path, report: &Report) -> Vec<Row> {
    let (id, name, goal) = match path {
        Path::Fast => (
            "engine_throughput",
            "engine throughput, fast path",
            THROUGHPUT_GOAL_RATIO,
        ),
        Path::Queue => (
            "engine_throughput_queue",
            "engine throughput, queue path",
            QUEUE_THROUGHPUT_GOAL_RATIO,
        ),
    };
    let mut row = Row { id, name, ..row };
    if let Some(raw) = report.value("raw_append") {
        row = row.against("raw append", raw);
        let ratio = row.ratio.unwrap_or(0.0);
        row = row.goal(format!(">= {goal}x raw append"), ratio >= goal);
    }
    let row = with_cpu_ratio(row, report, "raw_append");
    let mut rows = vec![row.clone()];
    let base = report
        .rows
        .iter()
        .find(|r| r.id == "raw_append")
        .and_then(|r| r.cpu);
    if let (Path::Fast, Some(base), Some(own)) = (path, base, row.cpu) {
        let ratio = base.total_us() / own.total_us();
        let mut cpu_row = Row::new("engine_cpu", 2, "fast path, by CPU per operation", own.total_us(), "µs/cmd")
            .goal(format!(">= {goal}x raw append by CPU"), ratio >= goal)
            .detail(format!(
                "{:.1} µs in the bench process (clients and engine), {:.1} µs in nats-server; raw append {:.1} µs per message",
                own.bench_us, own.server_us, base.total_us()
            ));
        cpu_row.yardstick = Some("raw append CPU per message");
        cpu_row.ratio = Some(ratio);
        rows.push(cpu_row);
    }
    rows
}

/// Adds the load-independent comparison: yardstick CPU per message / CPU per command.
fn with_cpu_ratio(mut row: Row, report: &Report, yardstick: &str) -> Row {
    let base = report
        .rows
        .iter()
        .find(|r| r.id == yardstick)
        .and_then(|r| r.cpu);
    if let (Some(base), Some(own)) = (base, row.cpu) {
        row.detail = format!(
            "{}; by CPU per operation (steadier on a shared machine): {:.2}x {yardstick}",
            row.detail,
            base.total_us() / own.total_us()
        );
    }
    row
}

fn load_detail(mut r: super::load::LoadReport) -> String {
    format!(
        "{} commands in {:.1} s; p50 {:.1} ms, p99 {:.1} ms at saturation; {}",
        human(r.commands as f64),
        r.elapsed.as_secs_f64(),
        r.percentile_ms(50.0),
        r.percentile_ms(99.0),
        outcomes(&r)
    )
}

fn outcomes(r: &super::load::LoadReport) -> String {
    format!(
        "{} accepted, {} rejected, {} resent, {} unanswered",
        r.accepted, r.rejected, r.resent, r.unanswered
    )
}
