//! Row 7, memory: a real `paystate run` process (this very binary) against the benchmark's
//! nats-server, fed a million orders (creates, one in fifty through its whole lifecycle);
//! its resident memory is sampled as orders complete and its peak (VmHWM) read at the end.
//! Bounded memory means the curve flattens once the order cache is full.

use super::load::{clients, closed_loop, ClosedLoop, LoadReport, Mix};
use anyhow::Context;
use paystate_journal::{Journal, LogSettings};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// One order in this many goes through its whole lifecycle; the rest are only created.
const LIFECYCLE_EVERY: usize = 50;
/// Resident-memory samples taken during the run (at equal shares of the orders).
const CHECKPOINTS: u64 = 4;
/// How often the sampler looks at the process.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long the sampler may take for its last checkpoints once the load is done.
const SAMPLER_GRACE: Duration = Duration::from_secs(3);
/// NATS connections the clients share.
const CLIENT_CONNECTIONS: usize = 4;

/// What the memory run measured.
pub struct Memory {
    pub orders: usize,
    pub cache_orders_max: usize,
    pub peak_mib: f64,
    /// (orders done, resident MiB) at each checkpoint.
    pub samples: Vec<(u64, f64)>,
    pub report: LoadReport,
}

/// Runs `paystate run` with `cache_orders_max` and feeds it `orders` orders.
pub async fn engine_process(
    url: &str,
    orders: usize,
    cache_orders_max: usize,
    concurrency: usize,
) -> anyhow::Result<Memory> {
    // The streams must exist before clients publish (the engine would create them too).
    let nats = paystate_service::connect(url, "paystate-bench-setup")
        .await
        .map_err(anyhow::Error::msg)?;
    Journal::open(async_nats::jetstream::new(nats), &LogSettings::default()).await?;
    let mut child = tokio::process::Command::new(paystate_binary()?)
        .arg("run")
        // Any free port: `run` refuses to start when its gateway address is taken.
        .args(["--http", "127.0.0.1:0"])
        .env("PAYSTATE_NATS_URL", url)
        .env(
            "PAYSTATE_ENGINE__CACHE_ORDERS_MAX",
            cache_orders_max.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `paystate run`")?;
    let pid = child.id().context("the engine process has no pid")?;
    let done = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn(sample(pid, done.clone(), orders as u64));
    let clients = clients(url, CLIENT_CONNECTIONS, super::load::Path::Fast).await?;
    let load = closed_loop(
        &clients,
        ClosedLoop {
            tag: "mem",
            orders,
            concurrency,
            mix: Mix::CreatesWithLifecycleEvery(LIFECYCLE_EVERY),
            done,
            wait: super::load::Wait::Outcome,
        },
    );
    // If the engine process dies, nothing would answer the clients: stop at once.
    let report = tokio::select! {
        report = load => report,
        status = child.wait() => anyhow::bail!("`paystate run` exited during the run: {status:?}"),
    };
    let peak_mib = status_kib(pid, "VmHWM:").map_or(f64::NAN, |k| k / 1024.0);
    let samples = tokio::time::timeout(SAMPLER_GRACE, sampler)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(Memory {
        orders,
        cache_orders_max,
        peak_mib,
        samples,
        report,
    })
}

/// Samples resident memory each time another 1/[`CHECKPOINTS`] of the orders is done.
async fn sample(pid: u32, done: Arc<AtomicU64>, orders: u64) -> Vec<(u64, f64)> {
    let mut samples = Vec::new();
    let mut next = 1u64;
    while next <= CHECKPOINTS {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let n = done.load(Relaxed);
        if n * CHECKPOINTS >= next * orders {
            let mib = status_kib(pid, "VmRSS:").map_or(f64::NAN, |k| k / 1024.0);
            samples.push((n, mib));
            next += 1;
        }
    }
    samples
}

/// This very binary. If it was rebuilt while the bench ran, Linux names the running one
/// `<path> (deleted)`; the new build at `<path>` is used then.
fn paystate_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating the paystate binary")?;
    if exe.is_file() {
        return Ok(exe);
    }
    let path = exe.to_string_lossy();
    match path.strip_suffix(" (deleted)") {
        Some(rebuilt) if std::path::Path::new(rebuilt).is_file() => Ok(rebuilt.into()),
        _ => anyhow::bail!("the paystate binary {path} is gone"),
    }
}

/// A `kB` field of /proc/<pid>/status (Linux).
fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
