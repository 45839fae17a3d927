//! The adapter workers' consumer: every commit in the log is looked at once (durable
//! consumer shared by all worker instances); commits with provider work are performed and
//! acknowledged only after their signals are stored.

use crate::work::{perform, Done, Env};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use paystate_adapters::Adapters;
use paystate_events::OrderId;
use paystate_journal::{Journal, LogSettings};
use paystate_service::refs::ProviderRefs;
use paystate_service::Client;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Durable consumer name of the adapter workers.
pub const WORKERS_CONSUMER: &str = "paystate-workers";
/// Redelivery delays after "try again later", by delivery count (last one repeats).
const RETRY_DELAYS_MS: [u64; 5] = [500, 2_000, 10_000, 30_000, 60_000];

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Partition tasks; one order's work is always done by the same task, in log order.
    pub partitions: usize,
    /// Work items a partition may hold queued.
    pub partition_queue_max: usize,
    /// How long a work item may take before JetStream redelivers it (provider calls with
    /// retries must fit).
    pub ack_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            partitions: 16,
            partition_queue_max: 64,
            ack_wait: Duration::from_secs(120),
        }
    }
}

/// Counters for tests and logs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub performed: AtomicU64,
    pub skipped: AtomicU64,
    pub retried: AtomicU64,
}

pub struct WorkersHandle {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub stats: Arc<WorkerStats>,
}

impl WorkersHandle {
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
    /// Stops at once (what a crash looks like).
    pub fn abort(mut self) {
        self.tasks.abort_all();
    }
}

/// Starts the adapter workers against the log.
pub async fn run_workers(
    nats: async_nats::Client,
    log: &LogSettings,
    adapters: Arc<Adapters>,
    cfg: WorkerConfig,
) -> Result<WorkersHandle, String> {
    let js = jetstream::new(nats.clone());
    let journal = Journal::existing(js.clone(), &log.events_stream)
        .await
        .map_err(|e| e.to_string())?;
    let refs = ProviderRefs::open(&js, log.replicas).await?;
    let attachments = paystate_service::attachments::open(&js, log.replicas).await?;
    let consumer = journal
        .stream()
        .get_or_create_consumer(
            WORKERS_CONSUMER,
            pull::Config {
                durable_name: Some(WORKERS_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                num_replicas: log.replicas,
                description: Some("paystate adapter workers".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let stats = Arc::new(WorkerStats::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..cfg.partitions.max(1) {
        let (tx, rx) = mpsc::channel(cfg.partition_queue_max.max(1));
        senders.push(tx);
        let shared = Shared {
            adapters: adapters.clone(),
            attachments: attachments.clone(),
            journal: journal.clone(),
            client: Client::new(nats.clone()),
            refs: refs.clone(),
            stats: stats.clone(),
        };
        tasks.spawn(partition(shared, rx));
    }
    tasks.spawn(paystate_service::intake::pull_loop(
        consumer,
        senders,
        shutdown_rx,
    ));
    Ok(WorkersHandle {
        shutdown,
        tasks,
        stats,
    })
}

struct Shared {
    adapters: Arc<Adapters>,
    attachments: async_nats::jetstream::object_store::ObjectStore,
    journal: Journal,
    client: Client,
    refs: ProviderRefs,
    stats: Arc<WorkerStats>,
}

async fn partition(shared: Shared, mut rx: mpsc::Receiver<jetstream::Message>) {
    let env = Env {
        adapters: &shared.adapters,
        attachments: &shared.attachments,
        journal: &shared.journal,
        client: &shared.client,
        refs: &shared.refs,
    };
    while let Some(msg) = rx.recv().await {
        let (seq, delivered) = msg
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 1));
        match handle(&env, &msg, seq).await {
            Ok(outcomes) => {
                for d in outcomes {
                    match d {
                        Done::Reported { .. } => shared.stats.performed.fetch_add(1, Relaxed),
                        _ => shared.stats.skipped.fetch_add(1, Relaxed),
                    };
                }
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "ack failed; the work item will be looked at again");
                }
            }
            Err(reason) => {
                shared.stats.retried.fetch_add(1, Relaxed);
                let idx = (delivered.max(1) as usize - 1).min(RETRY_DELAYS_MS.len() - 1);
                tracing::warn!(seq, %reason, "provider work postponed");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_millis(
                        RETRY_DELAYS_MS[idx],
                    ))))
                    .await;
            }
        }
    }
}

/// Performs every piece of provider work in one commit, in order. Any "try again later"
/// postpones the whole commit (the done parts are skipped as resolved next time).
async fn handle(env: &Env<'_>, msg: &jetstream::Message, seq: u64) -> Result<Vec<Done>, String> {
    let Some(token) = paystate_events::subjects::order_token(&msg.subject) else {
        return Ok(Vec::new());
    };
    let Ok(order) = OrderId::parse(token) else {
        return Ok(Vec::new());
    };
    let commit = match paystate_events::Commit::decode(&msg.payload) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(seq, error = %e, "unreadable commit in the log; the audit will report it");
            return Ok(Vec::new());
        }
    };
    let mut done = Vec::new();
    for (index, event) in commit
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_provider_work())
    {
        match perform(env, &order, seq, index, event).await {
            Done::RetryLater(reason) => return Err(reason),
            other => done.push(other),
        }
    }
    Ok(done)
}
