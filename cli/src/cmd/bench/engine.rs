//! Rows 2, 3 and 8: the command service end to end. Engines run in this process on their own
//! NATS connections (as `paystate run` does, with the default settings); clients publish
//! commands to the command stream and wait for each outcome on their reply inbox.

use super::load::{clients, closed_loop, open_loop, ClosedLoop, LoadReport, Mix, Path, Wait};
use paystate_journal::LogSettings;
use paystate_service::fast::discovery::coverage;
use paystate_service::processor::Stats;
use paystate_service::{run_engine, EngineConfig, EngineHandle};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// NATS connections the clients share.
pub const CLIENT_CONNECTIONS: usize = 4;

/// Engine counters summed over instances.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub accepted: u64,
    pub rejected: u64,
    pub conflicts: u64,
    pub retried_later: u64,
    /// Queued commands handed to the instance serving their order.
    pub forwarded: u64,
    /// Queued commands handed on that the owner gave no outcome for (decided here instead).
    pub forward_fallbacks: u64,
}

/// Engine instances running in this process.
pub struct Engines {
    handles: Vec<EngineHandle>,
}

impl Engines {
    /// Starts `n` instances with the default engine settings, each on its own connection.
    pub async fn start(url: &str, n: usize) -> anyhow::Result<Engines> {
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let nats = paystate_service::connect(url, "paystate-bench-engine")
                .await
                .map_err(anyhow::Error::msg)?;
            handles.push(run_engine(nats, LogSettings::default(), EngineConfig::default()).await?);
        }
        served_once(url, n.max(1)).await?;
        Ok(Engines { handles })
    }

    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for h in &self.handles {
            let s: &Stats = &h.stats;
            c.accepted += s.accepted.load(Relaxed);
            c.rejected += s.rejected.load(Relaxed);
            c.conflicts += s.conflicts.load(Relaxed);
            c.retried_later += s.retried_later.load(Relaxed);
            c.forwarded += s.forwarded.load(Relaxed);
            c.forward_fallbacks += s.forward_fallbacks.load(Relaxed);
        }
        c
    }

    /// Drains and stops every instance (the next scenario starts its own).
    pub async fn stop(self) {
        for h in self.handles {
            h.shutdown().await;
        }
    }
}

/// Row 2 (and 8 on a syncing server): `orders` lifecycles from `concurrency` clients over
/// `path`.
pub async fn throughput(
    url: &str,
    tag: &'static str,
    orders: usize,
    concurrency: usize,
    path: Path,
) -> anyhow::Result<LoadReport> {
    let engines = Engines::start(url, 1).await?;
    let clients = clients(url, CLIENT_CONNECTIONS, path).await?;
    let report = closed_loop(
        &clients,
        ClosedLoop {
            tag,
            orders,
            concurrency,
            mix: Mix::Lifecycle,
            done: Arc::new(AtomicU64::new(0)),
            wait: Wait::Outcome,
        },
    )
    .await;
    engines.stop().await;
    Ok(report)
}

/// How long the engine may go without deciding a queued command before a fire-and-forget
/// run is given up (the rest counted unanswered).
const DRAIN_STALL_MAX: Duration = Duration::from_secs(30);
/// How often a fire-and-forget run looks at the engine's counters.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Row 2, queue path as fire-and-forget callers use it: `orders` lifecycles published to the
/// durable queue by `publishers` tasks that await the broker's ack of each publish and no
/// outcome. The run ends when the engine has decided every stored command (its counters, not
/// the clock); the rate is commands decided per second from the first publish.
pub async fn queue_fire_and_forget(
    url: &str,
    tag: &'static str,
    orders: usize,
    publishers: usize,
) -> anyhow::Result<LoadReport> {
    let engines = Engines::start(url, 1).await?;
    let clients = clients(url, CLIENT_CONNECTIONS, Path::Queue).await?;
    let before = engines.counters();
    let started = Instant::now();
    let mut report = closed_loop(
        &clients,
        ClosedLoop {
            tag,
            orders,
            concurrency: publishers,
            mix: Mix::Lifecycle,
            done: Arc::new(AtomicU64::new(0)),
            wait: Wait::Stored,
        },
    )
    .await;
    let stored = report.commands - report.unanswered;
    let decided = |c: Counters| (c.accepted + c.rejected) - (before.accepted + before.rejected);
    let (mut seen, mut progressed) = (0, Instant::now());
    loop {
        let now = decided(engines.counters());
        if now >= stored {
            break;
        }
        if now > seen {
            (seen, progressed) = (now, Instant::now());
        } else if progressed.elapsed() > DRAIN_STALL_MAX {
            report.unanswered += stored - now;
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    report.elapsed = started.elapsed();
    let after = engines.counters();
    report.accepted = after.accepted - before.accepted;
    report.rejected = after.rejected - before.rejected;
    engines.stop().await;
    Ok(report)
}

/// Row 3: lifecycles at a fixed offered rate; latency percentiles of every command.
pub async fn latency(
    url: &str,
    commands_per_s: f64,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let engines = Engines::start(url, 1).await?;
    let clients = clients(url, CLIENT_CONNECTIONS, Path::Fast).await?;
    let report = open_loop(&clients, "lat", commands_per_s, duration).await;
    engines.stop().await;
    Ok(report)
}

/// How long the engines may take to share out the fast-path partitions.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);
/// How long one discovery round collects answers from the instances.
const DISCOVERY_ROUND: Duration = Duration::from_millis(300);

/// Waits until `instances` instances answer the service discovery and every fast-path
/// partition is served by exactly one of them (the measurement must not start mid hand-over).
pub async fn served_once(url: &str, instances: usize) -> anyhow::Result<()> {
    let nats = paystate_service::connect(url, "paystate-bench-discovery")
        .await
        .map_err(anyhow::Error::msg)?;
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    loop {
        let (answered, served) = coverage(&nats, DISCOVERY_ROUND)
            .await
            .map_err(|e| anyhow::anyhow!("service discovery: {e}"))?;
        if answered == instances && served.iter().all(|&n| n == 1) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the engines did not share out the fast-path partitions within {SETTLE_DEADLINE:?} ({answered} of {instances} answered; served {served:?})"
        );
    }
}
