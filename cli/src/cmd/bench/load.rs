//! Load generators: many concurrent clients sending commands over NATS and waiting for each
//! outcome (closed loop), or orders started at a fixed rate (open loop). Every command's
//! command-to-outcome latency is recorded. A command that gets no outcome in time is resent
//! with the same id (a retry), as a real client would.

use super::workload::{create_only, lifecycle, order_id, LIFECYCLE_COMMANDS};
use paystate_events::{CommandEnvelope, Outcome};
use paystate_service::{Client, ClientError};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long a client waits for one outcome before resending the same command.
const OUTCOME_WAIT: Duration = Duration::from_secs(10);
/// Sends of one command before the client gives up on it.
const SEND_ATTEMPTS_MAX: usize = 5;
/// Pause after the broker refused a publish.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// Orders an open-loop run may have in flight; more means the engine fell behind.
const OPEN_ORDERS_IN_FLIGHT_MAX: usize = 20_000;
/// The open loop's scheduling tick.
const OPEN_TICK: Duration = Duration::from_millis(1);

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub commands: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Sends repeated after no outcome came in time.
    pub resent: u64,
    /// Commands that never got an outcome (expected none).
    pub unanswered: u64,
    /// Orders the open loop could not start because too many were in flight.
    pub overload: u64,
    pub elapsed: Duration,
    /// Command-to-outcome latency of every answered command, microseconds.
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    pub fn per_s(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency (0..=100) in milliseconds; sorts the samples.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let idx = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[idx.min(self.latencies_us.len() - 1)]) / 1000.0
    }

    pub fn merge(&mut self, other: LoadReport) {
        self.commands += other.commands;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.resent += other.resent;
        self.unanswered += other.unanswered;
        self.overload += other.overload;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Which commands each order gets.
#[derive(Debug, Clone, Copy)]
pub enum Mix {
    /// Every order goes through its whole lifecycle.
    Lifecycle,
    /// Every order is created; one in `n` also goes through its whole lifecycle.
    CreatesWithLifecycleEvery(usize),
}

fn script(mix: Mix, tag: &str, i: usize) -> Vec<CommandEnvelope> {
    let order = order_id(tag, i);
    match mix {
        Mix::Lifecycle => lifecycle(&order),
        Mix::CreatesWithLifecycleEvery(n) if i.is_multiple_of(n.max(1)) => lifecycle(&order),
        Mix::CreatesWithLifecycleEvery(_) => create_only(&order),
    }
}

/// A closed-loop run: `concurrency` clients, each taking the next order and sending its
/// commands one after the other, until `orders` orders are done.
pub struct ClosedLoop {
    pub tag: &'static str,
    pub orders: usize,
    pub concurrency: usize,
    pub mix: Mix,
    /// Orders completed so far (for samplers running beside the load).
    pub done: Arc<AtomicU64>,
    /// Whether each command's outcome is awaited, or only the broker's ack of its publish.
    pub wait: Wait,
}

/// What a closed-loop client waits for after each command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The outcome (resending the same command when none comes in time).
    Outcome,
    /// The broker's ack of a durable publish (fire and forget; the queue path only).
    Stored,
}

pub async fn closed_loop(clients: &[Client], run: ClosedLoop) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..run.concurrency.max(1) {
        let client = clients[w % clients.len()].clone();
        let (next, done, tag, mix, orders, wait) = (
            next.clone(),
            run.done.clone(),
            run.tag,
            run.mix,
            run.orders,
            run.wait,
        );
        workers.spawn(async move {
            let mut report = LoadReport::default();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= orders {
                    return report;
                }
                for cmd in script(mix, tag, i) {
                    match wait {
                        Wait::Outcome => send_answered(&client, &cmd, &mut report).await,
                        Wait::Stored => publish_stored(&client, &cmd, &mut report).await,
                    }
                }
                done.fetch_add(1, Relaxed);
            }
        });
    }
    let mut total = LoadReport::default();
    while let Some(part) = workers.join_next().await {
        if let Ok(part) = part {
            total.merge(part);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Publishes `cmd` to the durable queue until the broker stores it (fire and forget: no
/// outcome awaited), recording it; a publish the broker refuses is sent again after a pause,
/// up to [`SEND_ATTEMPTS_MAX`] times, then counted unanswered.
async fn publish_stored(client: &Client, cmd: &CommandEnvelope, report: &mut LoadReport) {
    report.commands += 1;
    for _ in 0..SEND_ATTEMPTS_MAX {
        if client.publish(cmd).await.is_ok() {
            return;
        }
        report.resent += 1;
        tokio::time::sleep(REFUSED_PAUSE).await;
    }
    report.unanswered += 1;
}

/// An open-loop run: orders started at `commands_per_s / 6` per second for `duration`, each
/// sending its lifecycle as fast as its outcomes come back.
pub async fn open_loop(
    clients: &[Client],
    tag: &'static str,
    commands_per_s: f64,
    duration: Duration,
) -> LoadReport {
    let clients = clients.to_vec();
    open_loop_with(commands_per_s, duration, move |i| {
        let client = clients[i % clients.len()].clone();
        async move {
            let mut report = LoadReport::default();
            for cmd in script(Mix::Lifecycle, tag, i) {
                send_answered(&client, &cmd, &mut report).await;
            }
            report
        }
    })
    .await
}

/// The open loop itself: order `i` started (`order(i)`, which sends its whole lifecycle and
/// reports it) when `i / (commands_per_s / 6)` seconds have passed, for `duration`; an order
/// due while [`OPEN_ORDERS_IN_FLIGHT_MAX`] are in flight is counted as overload, not started.
pub async fn open_loop_with<F, Fut>(commands_per_s: f64, duration: Duration, order: F) -> LoadReport
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = LoadReport> + Send + 'static,
{
    let orders_per_s = commands_per_s / LIFECYCLE_COMMANDS as f64;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let mut total = LoadReport::default();
    let mut tick = tokio::time::interval(OPEN_TICK);
    let started = Instant::now();
    let mut spawned = 0usize;
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * orders_per_s) as usize;
        while spawned < due {
            let i = spawned;
            spawned += 1;
            if in_flight.load(Relaxed) >= OPEN_ORDERS_IN_FLIGHT_MAX {
                total.overload += 1;
                continue;
            }
            in_flight.fetch_add(1, Relaxed);
            let (run, in_flight) = (order(i), in_flight.clone());
            tasks.spawn(async move {
                let report = run.await;
                in_flight.fetch_sub(1, Relaxed);
                report
            });
        }
        while let Some(Ok(part)) = tasks.try_join_next() {
            total.merge(part);
        }
    }
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            total.merge(part);
        }
    }
    total.elapsed = duration;
    total
}

/// Set once a command went unanswered through all its attempts: something is broken (the
/// engine died, the broker stopped answering), so every later send gives up at once instead
/// of waiting out its own attempts. A bench that stalled exits with a failure.
static STALLED: AtomicBool = AtomicBool::new(false);

/// Whether some command got no outcome at all during this run.
pub fn stalled() -> bool {
    STALLED.load(Relaxed)
}

/// Sends `cmd` until an outcome comes back (resending the same command id), recording it.
pub async fn send_answered(client: &Client, cmd: &CommandEnvelope, report: &mut LoadReport) {
    report.commands += 1;
    if stalled() {
        report.unanswered += 1;
        return;
    }
    let started = Instant::now();
    for _ in 0..SEND_ATTEMPTS_MAX {
        match client.send(cmd, OUTCOME_WAIT).await {
            Ok(outcome) => {
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                report.latencies_us.push(us);
                match outcome {
                    Outcome::Accepted { .. } => report.accepted += 1,
                    Outcome::Rejected { .. } => report.rejected += 1,
                }
                return;
            }
            Err(ClientError::Timeout(_)) => report.resent += 1,
            Err(_) => {
                report.resent += 1;
                tokio::time::sleep(REFUSED_PAUSE).await;
            }
        }
    }
    report.unanswered += 1;
    STALLED.store(true, Relaxed);
}

/// How the clients reach the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Request/reply to the `paystate` NATS service: one store per accepted command.
    Fast,
    /// Published to the durable command queue, outcome on a reply inbox: two stores.
    Queue,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Fast => "fast path",
            Path::Queue => "queue path",
        }
    }
}

/// `n` clients, each on its own NATS connection, using `path`.
pub async fn clients(url: &str, n: usize, path: Path) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let nats = paystate_service::connect(url, "paystate-bench-client")
            .await
            .map_err(anyhow::Error::msg)?;
        out.push(match path {
            Path::Fast => Client::new(nats),
            Path::Queue => Client::queue(nats),
        });
    }
    Ok(out)
}
