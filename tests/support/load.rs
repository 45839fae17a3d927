//! A steady, realistic load for fault tests: clients that wait for each outcome and retry the
//! same command id when none comes (through engine crashes, broker restarts, elections).

use super::*;
use paystate_engine::check_invariants;
use paystate_events::{OrderId, Outcome, SignalKind, Status};
pub use paystate_service::client::Path;
use paystate_service::ClientError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub const ORDERS_PER_CLIENT: usize = 4;
pub const CLIENTS: usize = 8;
/// How long a queue-path client waits for an outcome before publishing the same command
/// again (an outcome published while the client was disconnected is lost: only a resend
/// brings it).
pub const ATTEMPT_WAIT: Duration = Duration::from_secs(3);
/// The wait a fast-path client passes to `Client::send`, which retries no responders,
/// attempt timeouts and 503s inside it: long enough to cover an engine restart (the dead
/// instance's partitions move after the 3 s lease) or a broker restart (reconnect backoff,
/// JetStream recovery) without the caller resending.
pub const FAST_SEND_WAIT: Duration = Duration::from_secs(10);

/// The wait of one `Client::send` on `path`.
pub fn attempt_wait(path: Path) -> Duration {
    match path {
        Path::Fast => FAST_SEND_WAIT,
        Path::Queue => ATTEMPT_WAIT,
    }
}
/// How long a client keeps sending one command before the test fails: longer than any fault
/// here lasts (after an R3 leader kill on a loaded two-core machine, publishes were refused
/// with "no stream found for given subject" for over 6 s, and outcomes took up to 18 s).
pub const COMMAND_WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause before sending again after the broker refused a command.
pub const REFUSED_PAUSE: Duration = Duration::from_millis(200);
/// Every attempt takes at least [`REFUSED_PAUSE`] or a whole send wait, so the time bound
/// also bounds the attempts; this names it.
pub const ATTEMPTS_MAX: usize =
    (COMMAND_WAIT_MAX.as_millis() / REFUSED_PAUSE.as_millis()) as usize + 1;

/// The script each order goes through; ids are deterministic so retries reuse them.
pub fn script(o: &OrderId) -> Vec<CommandEnvelope> {
    let refund_a = env_with_id(o, &format!("{o}.refund-a"), refund(Some(1_000)));
    let refund_done = SignalKind::Refunded {
        refund_id: Some(refund_a.command_id.to_string()),
        amount: None,
    };
    vec![
        env_with_id(o, &format!("{o}.create"), create(10_000)),
        env_with_id(o, &format!("{o}.start"), start()),
        env_with_id(o, &format!("{o}.auth"), authorized()),
        env_with_id(o, &format!("{o}.capture"), capture(Some(8_000))),
        env_with_id(o, &format!("{o}.captured"), captured(8_000)),
        refund_a,
        env_with_id(
            o,
            &format!("{o}.refunded"),
            signal(refund_done, "ev-refund-a"),
        ),
        env_with_id(o, &format!("{o}.refund-b"), refund(Some(500))),
    ]
}

/// A command whose outcome took longer than this waited out a fault (a healthy one takes
/// milliseconds).
pub const STALLED_AFTER: Duration = Duration::from_millis(500);

/// What the clients went through during a fault. The fast-path client retries "no
/// responders", attempt timeouts and 503s inside one `send` (with the same bytes), so on that
/// path an outage shows as commands that stalled, not as resends.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// `Client::send` calls that ended without an outcome and were made again (same bytes).
    pub resends: AtomicU64,
    /// Commands answered only after [`STALLED_AFTER`].
    pub stalled: AtomicU64,
    /// The longest wait for one command's outcome, first send to outcome, in ms.
    pub slowest_ms: AtomicU64,
}

/// The client on `path` (same connection and reply inbox).
pub fn on_path(client: Client, path: Path) -> Client {
    match path {
        Path::Fast => client,
        Path::Queue => client.via_queue(),
    }
}

/// Sends `cmd` until an outcome arrives, retrying with the same id through outages.
pub async fn send_until_answered(
    client: &Client,
    cmd: &CommandEnvelope,
    stats: &LoadStats,
) -> Outcome {
    let started = Instant::now();
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS_MAX {
        if started.elapsed() >= COMMAND_WAIT_MAX {
            break;
        }
        if attempt > 0 {
            stats.resends.fetch_add(1, Relaxed);
        }
        match client.send(cmd, attempt_wait(client.path())).await {
            Ok(outcome) => {
                let took = started.elapsed();
                if took > STALLED_AFTER {
                    stats.stalled.fetch_add(1, Relaxed);
                }
                stats.slowest_ms.fetch_max(took.as_millis() as u64, Relaxed);
                return outcome;
            }
            Err(e @ ClientError::Timeout(_)) => last_error = e.to_string(),
            Err(e @ ClientError::NotAccepted(_)) => {
                last_error = e.to_string();
                tokio::time::sleep(REFUSED_PAUSE).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!(
        "no outcome for {} within {COMMAND_WAIT_MAX:?}; last: {last_error}",
        cmd.command_id
    )
}

async fn drive_orders(client: Client, prefix: String, stats: Arc<LoadStats>) -> Vec<OrderId> {
    let mut orders = Vec::new();
    for i in 0..ORDERS_PER_CLIENT {
        let o = order(&format!("{prefix}{i}"));
        for cmd in script(&o) {
            let outcome = send_until_answered(&client, &cmd, &stats).await;
            assert!(
                matches!(outcome, Outcome::Accepted { .. }),
                "{} rejected: {outcome:?}",
                cmd.command_id
            );
        }
        orders.push(o);
    }
    orders
}

/// A running load: the clients' tasks and what they went through.
pub struct Load {
    tasks: Vec<tokio::task::JoinHandle<Vec<OrderId>>>,
    pub stats: Arc<LoadStats>,
    /// The path the clients send on.
    pub path: Path,
}

/// Starts [`CLIENTS`] clients on `client`'s path, each driving [`ORDERS_PER_CLIENT`] orders
/// through [`script`].
pub fn spawn_clients(client: &Client, tag: &str) -> Load {
    let stats = Arc::new(LoadStats::default());
    let tasks = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(drive_orders(
                client.clone(),
                format!("{tag}{c}x"),
                stats.clone(),
            ))
        })
        .collect();
    Load {
        tasks,
        stats,
        path: client.path(),
    }
}

/// What [`assert_all_complete`] found.
#[derive(Debug)]
pub struct Completed {
    pub orders: usize,
    /// Commits checked (each a distinct command of the script).
    pub commands: usize,
    /// Script commands missing from their order's log.
    pub lost: usize,
    /// Commits beyond the first of the same command id.
    pub duplicated: usize,
    pub resends: u64,
    pub stalled: u64,
    pub slowest: Duration,
}

impl std::fmt::Display for Completed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} orders, {} commands, lost {}, duplicated {}; clients: {} stalled over {STALLED_AFTER:?}, slowest {:?}, {} resends",
            self.orders, self.commands, self.lost, self.duplicated, self.stalled, self.slowest, self.resends
        )
    }
}

/// Waits for the clients, then checks every order in the log: each script command exactly
/// once (none lost, none duplicated), invariants hold, the final state is the script's.
pub async fn assert_all_complete(journal: &Journal, load: Load) -> Completed {
    let (mut orders, mut commands, mut lost, mut duplicated) = (0, 0, 0, 0);
    for t in load.tasks {
        for o in t.await.expect("client finished") {
            let commits = journal.read_order(&o).await.expect("read");
            let ids: Vec<String> = commits
                .iter()
                .map(|c| c.commit.command.command_id.to_string())
                .collect();
            let distinct: std::collections::HashSet<&String> = ids.iter().collect();
            let (order_lost, order_dups) = (
                script(&o)
                    .iter()
                    .filter(|c| !distinct.contains(&c.command_id.to_string()))
                    .count(),
                ids.len() - distinct.len(),
            );
            assert_eq!(
                (order_lost, order_dups, commits.len()),
                (0, 0, script(&o).len()),
                "order {o}: (lost, duplicated, commits) of its script; log: {ids:?}"
            );
            let s = paystate_journal::read::fold(&o, &commits)
                .expect("fold")
                .expect("exists");
            assert!(check_invariants(&s).is_empty());
            assert_eq!(
                (
                    s.status,
                    s.captured.0,
                    s.refunded.0,
                    s.refunds_pending.len()
                ),
                (Status::Captured, 8_000, 1_000, 1)
            );
            orders += 1;
            commands += commits.len();
            lost += order_lost;
            duplicated += order_dups;
        }
    }
    assert_eq!(orders, CLIENTS * ORDERS_PER_CLIENT);
    Completed {
        orders,
        commands,
        lost,
        duplicated,
        resends: load.stats.resends.load(Relaxed),
        stalled: load.stats.stalled.load(Relaxed),
        slowest: Duration::from_millis(load.stats.slowest_ms.load(Relaxed)),
    }
}

/// How long a fault test waits for the log to grow (leader elections on a loaded 2-core
/// machine take seconds).
pub const LOG_WAIT_MS_MAX: u64 = 90_000;

/// Waits until the log holds at least `at_least` messages.
pub async fn wait_for_log_messages(journal: &Journal, at_least: u64) {
    for _ in 0..(LOG_WAIT_MS_MAX / 25) {
        if journal
            .stream()
            .get_info()
            .await
            .map(|i| i.state.messages)
            .unwrap_or(0)
            >= at_least
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never reached {at_least} messages");
}

/// Messages in the log now.
pub async fn log_messages(journal: &Journal) -> u64 {
    journal
        .stream()
        .get_info()
        .await
        .map(|i| i.state.messages)
        .unwrap_or(0)
}

/// Waits until the log holds more than `before` messages; returns when it did (the end of an
/// outage as the log sees it).
pub async fn wait_for_log_growth(journal: &Journal, before: u64) -> Instant {
    wait_for_log_messages(journal, before + 1).await;
    Instant::now()
}
