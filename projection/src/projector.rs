//! The live projector: a durable consumer on the log that folds each commit into its order's
//! record in the live generation's bucket, following the pointer across swaps.
//!
//! Per batch: load each order's record (bounded LRU cache, else KV with its revision), apply
//! the batch's commits in log order ([`crate::record::apply`]), write each changed record once
//! with compare-and-set on its revision, then acknowledge. A crash anywhere leads to
//! redelivery, and redelivery is harmless: a record remembers its last applied sequence.
//! A commit whose predecessors are not applied yet (their delivery went to a projector that
//! died; they come back only after the ack wait) is not waited for: the order's missing
//! commits are read from the log by subject and applied first. Only a commit that is truly
//! gone from the log makes the record note a problem.
//! Any number of projectors may share a generation's consumer: compare-and-set writes and
//! the sequence check keep them from losing or repeating updates.
//! A commit given back [`ProjectorConfig::deliveries_max`] times is set aside in the
//! dead-letter stream with its reason ([`crate::redrive`]); a redrive re-projects its order.

use crate::layout::{order_key, Generation};
use crate::record::{apply, ProjectedOrder, Step};
use crate::store::{broker, get_record, Pointer, ProjectionStore};
use crate::ProjectionError;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{kv, AckKind, Message};
use futures::StreamExt;
use lru::LruCache;
use paystate_events::subjects::EVENTS_PREFIX;
use paystate_events::OrderId;
use paystate_journal::pull::{PullError, Puller, PULL_IDLE_MAX};
use paystate_journal::read::to_chrono;
use paystate_journal::{Journal, RawEntry, StoredCommit};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Pause after a broker error before trying again, growing per failure up to the last value.
const FAILURE_BACKOFF_MS: [u64; 4] = [100, 500, 1000, 2000];

/// Default for [`ProjectorConfig::deliveries_max`]: with the growing pause between
/// deliveries (`retry_delay` times the delivery count, at most ten times), about 70 s.
pub const DELIVERIES_MAX_DEFAULT: i64 = 20;
/// The pause before a given-back commit's next delivery grows with its deliveries up to this
/// multiple of `retry_delay`.
const RETRY_DELAY_FACTOR_MAX: u32 = 10;

/// Projector tuning; every bound named.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most commits handled per batch (one KV write per changed order per batch).
    pub batch_max: usize,
    /// Order records cached (LRU) between batches.
    pub cache_orders_max: usize,
    /// Unacknowledged commits the consumer hands out (JetStream `max_ack_pending`).
    pub ack_pending_max: i64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Delay before a given-back commit is delivered again.
    pub retry_delay: Duration,
    /// How often the pointer is re-read to notice a swap (and, catching up, the lag).
    pub pointer_check: Duration,
    /// KV writes in flight per batch.
    pub write_concurrency: usize,
    /// Deliveries of a commit given back each time before it is set aside in the
    /// dead-letter stream (the server's `max_deliver` is a little above).
    pub deliveries_max: i64,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_max: 512,
            cache_orders_max: 20_000,
            ack_pending_max: 10_000,
            ack_wait: Duration::from_secs(5),
            retry_delay: Duration::from_millis(500),
            pointer_check: Duration::from_millis(500),
            write_concurrency: 64,
            deliveries_max: DELIVERIES_MAX_DEFAULT,
        }
    }
}

/// Counters for tests, benchmarks and logs.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    pub applied: AtomicU64,
    pub already_applied: AtomicU64,
    pub given_back: AtomicU64,
    pub broken: AtomicU64,
    pub write_conflicts: AtomicU64,
    pub batches: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// A running projector.
pub struct ProjectorHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    pub stats: Arc<ProjectorStats>,
}

impl ProjectorHandle {
    /// Finishes the batch in hand, then stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
    /// Stops at once (what a crash looks like to the broker).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Starts a projector. Before returning it makes sure a live generation exists (creating
/// generation 1, which folds the log from its start, when there is none).
pub async fn start_projector(
    store: ProjectionStore,
    cfg: ProjectorConfig,
) -> Result<ProjectorHandle, ProjectionError> {
    ensure_generation(&store).await?;
    let (shutdown, rx) = watch::channel(false);
    let stats = Arc::new(ProjectorStats::default());
    let task = tokio::spawn(run(store, cfg, stats.clone(), rx));
    Ok(ProjectorHandle {
        shutdown,
        task,
        stats,
    })
}

/// The live generation, creating generation 1 if there is none yet. A pointer holding a value
/// paystate did not write is taken over (compare-and-set on that value's revision, never over
/// a generation): with the generation written before it, else as if there were none.
pub async fn ensure_generation(store: &ProjectionStore) -> Result<Generation, ProjectionError> {
    resolve(store, None).await
}

/// The generation to follow, as [`ensure_generation`]. `following`: the generation a running
/// projector follows; it leaves an unset pointer unset ([`ProjectionError::NoProjection`]) and
/// takes a planted value over with it when the key's history holds no generation.
async fn resolve(
    store: &ProjectionStore,
    following: Option<&Generation>,
) -> Result<Generation, ProjectionError> {
    match store.pointer().await? {
        Pointer::Set { generation, .. } => Ok(generation),
        Pointer::Junk { revision, before } => match before.or_else(|| following.cloned()) {
            Some(g) => take_over(store, g, revision).await,
            None => {
                tracing::warn!(
                    revision,
                    "the projection pointer holds a value paystate did not write and its \
                     history no generation: starting generation 1 from the log (if a later \
                     generation was live, `paystate project rebuild` makes a complete one)"
                );
                create_first(store, revision).await
            }
        },
        Pointer::Unset { revision } => match following {
            None => create_first(store, revision).await,
            Some(_) => Err(ProjectionError::NoProjection),
        },
    }
}

/// Writes `generation` over the planted pointer value at `revision`.
async fn take_over(
    store: &ProjectionStore,
    generation: Generation,
    revision: u64,
) -> Result<Generation, ProjectionError> {
    match store.set_pointer(&generation, revision).await {
        Ok(_) => {
            tracing::warn!(
                generation = generation.generation,
                revision,
                "the projection pointer held a value paystate did not write; generation written over it"
            );
            Ok(generation)
        }
        // Someone wrote the pointer meanwhile (another projector, a swap): theirs stands.
        Err(ProjectionError::SwapRace(_)) => store.live().await,
        Err(e) => Err(e),
    }
}

/// Generation 1, folding the log from its start, pointed at if the pointer is still at
/// `revision` (0: unset).
async fn create_first(
    store: &ProjectionStore,
    revision: u64,
) -> Result<Generation, ProjectionError> {
    let first = Generation::new(1, 1, chrono::Utc::now());
    create_bucket(store, &first).await?;
    durable_consumer(store, &first, &ProjectorConfig::default()).await?;
    match store.set_pointer(&first, revision).await {
        Ok(_) => Ok(first),
        // Another projector created it first: use theirs.
        Err(ProjectionError::SwapRace(_)) => store.live().await,
        Err(e) => Err(e),
    }
}

/// Why [`follow`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Shutdown,
    Swapped,
    CaughtUp,
}

async fn run(
    store: ProjectionStore,
    cfg: ProjectorConfig,
    stats: Arc<ProjectorStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0usize;
    let mut following: Option<Generation> = None;
    while !*shutdown.borrow() {
        let generation = match resolve(&store, following.as_ref()).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "projection pointer unreadable; retrying");
                pause(&mut failures).await;
                continue;
            }
        };
        following = Some(generation.clone());
        match follow(&store, &generation, &cfg, &stats, &mut shutdown, false).await {
            Ok(Exit::Shutdown) => return,
            Ok(_) => failures = 0,
            Err(e) => {
                tracing::warn!(generation = generation.generation, error = %e, "projector stopped; restarting");
                pause(&mut failures).await;
            }
        }
    }
}

/// Projects `generation` until shut down, swapped out or (with `until_caught_up`) level
/// with the log.
pub(crate) async fn follow(
    store: &ProjectionStore,
    generation: &Generation,
    cfg: &ProjectorConfig,
    stats: &ProjectorStats,
    shutdown: &mut watch::Receiver<bool>,
    until_caught_up: bool,
) -> Result<Exit, ProjectionError> {
    let consumer = durable_consumer(store, generation, cfg).await?;
    let bucket = store.bucket(generation).await?;
    let journal = Journal::existing(store.context().clone(), &store.events_stream)
        .await
        .map_err(broker)?;
    let mut cache =
        LruCache::new(NonZeroUsize::new(cfg.cache_orders_max.max(1)).unwrap_or(NonZeroUsize::MIN));
    // Pulled through the reader-counted puller (decision 0014: async-nats's pull stream can
    // wait up to 35 s for messages it never asked for).
    let pull_from = || Puller::start(store.context(), consumer.cached_info(), cfg.batch_max);
    let mut puller = pull_from().await.map_err(broker)?;
    // Redrives are for the live generation (a rebuild catching up leaves them alone).
    let mut redrives = match until_caught_up {
        true => None,
        false => crate::redrive::requests(store, cfg).await,
    };
    let mut ticker = tokio::time::interval(cfg.pointer_check);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(Exit::Shutdown),
            next = paystate_journal::follow::next_if_any(&mut redrives) => {
                crate::redrive::handle(&bucket, &journal, &mut cache, next, cfg).await;
            }
            _ = ticker.tick() => {
                if until_caught_up {
                    if lag(store, generation).await? == 0 {
                        return Ok(Exit::CaughtUp);
                    }
                } else if resolve(store, Some(generation)).await?.generation
                    != generation.generation
                {
                    return Ok(Exit::Swapped);
                }
            }
            next = puller.next_batch(cfg.batch_max.max(1), PULL_IDLE_MAX) => match next {
                Ok(msgs) => process_batch(&bucket, &journal, &mut cache, msgs, cfg, stats).await,
                // The server lost the request (a restart, a new consumer leader): pull anew.
                Err(e @ (PullError::Idle(_) | PullError::Closed)) => {
                    tracing::warn!(error = %e, "projection pull interrupted; pulling anew");
                    puller = pull_from().await.map_err(broker)?;
                }
                Err(e) => return Err(broker(e)),
            },
        }
    }
}

/// Events of the log not yet applied by `generation`'s consumer.
pub(crate) async fn lag(
    store: &ProjectionStore,
    generation: &Generation,
) -> Result<u64, ProjectionError> {
    let stream = store
        .context()
        .get_stream(&store.events_stream)
        .await
        .map_err(broker)?;
    let info = stream
        .consumer_info(&generation.consumer)
        .await
        .map_err(broker)?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// An order's record as loaded for a batch, with its KV revision (0: not in the bucket).
struct Slot {
    record: Option<ProjectedOrder>,
    revision: u64,
    dirty: bool,
}

pub(crate) type Cache = LruCache<OrderId, (Option<ProjectedOrder>, u64)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    GiveBack,
}

async fn process_batch(
    bucket: &kv::Store,
    journal: &Journal,
    cache: &mut Cache,
    batch: Vec<Message>,
    cfg: &ProjectorConfig,
    stats: &ProjectorStats,
) {
    stats.batches.fetch_add(1, Relaxed);
    let mut slots: HashMap<OrderId, Slot> = HashMap::new();
    let mut plan: Vec<(Option<OrderId>, Message, Action)> = Vec::with_capacity(batch.len());
    // Why an order's commits are given back (the reason a dead letter keeps).
    let mut why: HashMap<OrderId, String> = HashMap::new();
    for msg in batch {
        let entry = match raw_entry(&msg) {
            Some(x) => x,
            None => {
                plan.push((None, msg, Action::Ack));
                continue;
            }
        };
        let order = entry.subject_order().and_then(|t| OrderId::parse(t).ok());
        let (Some(order), Ok(stored)) = (order, entry.decode()) else {
            // Not a commit this projector can read: the audit reports it with its sequence.
            tracing::warn!(seq = entry.sequence, subject = %entry.subject, "unreadable commit skipped by the projector");
            plan.push((None, msg, Action::Ack));
            continue;
        };
        if !slots.contains_key(&order) {
            match load(bucket, cache, &order).await {
                Ok(slot) => slots.insert(order.clone(), slot),
                Err(e) => {
                    tracing::warn!(%order, error = %e, "record unreadable; giving the commit back");
                    why.insert(order.clone(), format!("record unreadable: {e}"));
                    plan.push((Some(order), msg, Action::GiveBack));
                    continue;
                }
            };
        }
        let Some(slot) = slots.get_mut(&order) else {
            continue;
        };
        let step = match apply(&mut slot.record, &stored, false) {
            Step::Ahead { .. } => fill_gap(journal, &mut slot.record, &order, &stored).await,
            other => other,
        };
        let action = match step {
            Step::Applied => {
                stats.applied.fetch_add(1, Relaxed);
                slot.dirty = true;
                Action::Ack
            }
            Step::AlreadyApplied => {
                stats.already_applied.fetch_add(1, Relaxed);
                Action::Ack
            }
            Step::Ahead { expected, found } => {
                stats.given_back.fetch_add(1, Relaxed);
                why.insert(
                    order.clone(),
                    format!("commit {found} waits for commit {expected}, which could not be read from the log"),
                );
                Action::GiveBack
            }
            Step::Broken(detail) => {
                tracing::warn!(%order, seq = stored.sequence, %detail, "commit does not continue the order's history");
                stats.broken.fetch_add(1, Relaxed);
                slot.dirty = slot.record.is_some();
                Action::Ack
            }
        };
        plan.push((Some(order), msg, action));
    }
    let failed = write_slots(bucket, cache, slots, cfg, stats).await;
    settle(journal, plan, &failed, &why, cfg, stats).await;
}

fn raw_entry(msg: &Message) -> Option<RawEntry> {
    let info = msg.info().ok()?;
    let entry = RawEntry {
        sequence: info.stream_sequence,
        subject: msg.subject.clone(),
        time: to_chrono(info.published),
        headers: msg.headers.clone(),
        payload: msg.payload.clone(),
    };
    Some(entry)
}

/// The commits of `order` between the record and `current` were delivered elsewhere (to a
/// projector that died) or not yet: read them from the log and apply them, then `current`.
/// A broker failure gives `current` back; a commit missing from the log is final (broken).
async fn fill_gap(
    journal: &Journal,
    record: &mut Option<ProjectedOrder>,
    order: &OrderId,
    current: &StoredCommit,
) -> Step {
    let from = record.as_ref().map_or(1, |r| r.seq + 1);
    let tail = match journal.read_order_from(order, from).await {
        Ok(tail) => tail,
        Err(e) => {
            tracing::warn!(%order, error = %e, "cannot read the order's missing commits; giving the commit back");
            return Step::Ahead {
                expected: record.as_ref().map_or(1, |r| r.state.commits + 1),
                found: current.commit.commit,
            };
        }
    };
    for c in tail.iter().filter(|c| c.sequence < current.sequence) {
        if let Step::Broken(detail) = apply(record, c, true) {
            return Step::Broken(detail);
        }
    }
    apply(record, current, true)
}

async fn load(
    bucket: &kv::Store,
    cache: &mut Cache,
    order: &OrderId,
) -> Result<Slot, ProjectionError> {
    if let Some((record, revision)) = cache.pop(order) {
        return Ok(Slot {
            record,
            revision,
            dirty: false,
        });
    }
    // A value paystate did not write is no record (with its revision, so the write takes the
    // key over): the order's first commit applies onto it, a later one reads the order's log
    // from its start (`fill_gap`).
    let (record, revision) = get_record(bucket, order).await?;
    Ok(Slot {
        record,
        revision,
        dirty: false,
    })
}

/// Writes every changed record with compare-and-set; returns the orders whose write failed,
/// with the error (their commits are given back; the cache forgets them).
async fn write_slots(
    bucket: &kv::Store,
    cache: &mut Cache,
    slots: HashMap<OrderId, Slot>,
    cfg: &ProjectorConfig,
    stats: &ProjectorStats,
) -> HashMap<OrderId, String> {
    let mut clean = Vec::new();
    let mut writes = Vec::new();
    for (order, slot) in slots {
        match (slot.dirty, &slot.record) {
            (true, Some(record)) => writes.push((order, slot.revision, record.clone())),
            _ => clean.push((order, slot)),
        }
    }
    for (order, slot) in clean {
        cache.put(order, (slot.record, slot.revision));
    }
    let results: Vec<_> = futures::stream::iter(writes)
        .map(|(order, revision, record)| async move {
            let result = write_record(bucket, &order, revision, &record).await;
            (order, record, result)
        })
        .buffer_unordered(cfg.write_concurrency.max(1))
        .collect()
        .await;
    let mut failed = HashMap::new();
    for (order, record, result) in results {
        match result {
            Ok(revision) => {
                cache.put(order, (Some(record), revision));
            }
            Err(e) => {
                stats.write_conflicts.fetch_add(1, Relaxed);
                tracing::debug!(%order, error = %e, "record write failed; commits given back");
                failed.insert(order, format!("record write failed: {e}"));
            }
        }
    }
    failed
}

async fn write_record(
    bucket: &kv::Store,
    order: &OrderId,
    revision: u64,
    record: &ProjectedOrder,
) -> Result<u64, String> {
    let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    if revision == 0 {
        bucket
            .create(order_key(order), bytes.into())
            .await
            .map_err(|e| e.to_string())
    } else {
        bucket
            .update(order_key(order), bytes.into(), revision)
            .await
            .map_err(|e| e.to_string())
    }
}

async fn settle(
    journal: &Journal,
    plan: Vec<(Option<OrderId>, Message, Action)>,
    failed: &HashMap<OrderId, String>,
    why: &HashMap<OrderId, String>,
    cfg: &ProjectorConfig,
    stats: &ProjectorStats,
) {
    for (order, msg, action) in plan {
        let write_failed = order.as_ref().and_then(|o| failed.get(o));
        let give_back = action == Action::GiveBack || write_failed.is_some();
        let reason = write_failed.or_else(|| order.as_ref().and_then(|o| why.get(o)));
        let delivered = msg.info().map_or(1, |i| i.delivered);
        let result = if !give_back {
            msg.ack().await
        } else if delivered >= cfg.deliveries_max
            && crate::redrive::give_up(journal, &msg, delivered, reason).await
        {
            stats.dead_lettered.fetch_add(1, Relaxed);
            msg.ack().await
        } else {
            let factor = u32::try_from(delivered.max(1))
                .unwrap_or(RETRY_DELAY_FACTOR_MAX)
                .min(RETRY_DELAY_FACTOR_MAX);
            msg.ack_with(AckKind::Nak(Some(cfg.retry_delay * factor)))
                .await
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ack failed; the commit will be redelivered and skipped");
        }
    }
}

/// The generation's bucket, created if missing.
pub(crate) async fn create_bucket(
    store: &ProjectionStore,
    generation: &Generation,
) -> Result<kv::Store, ProjectionError> {
    let js = store.context();
    if let Ok(kv) = js.get_key_value(&generation.bucket).await {
        return Ok(kv);
    }
    js.create_key_value(kv::Config {
        bucket: generation.bucket.clone(),
        history: 1,
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: store.replicas,
        description: format!(
            "paystate: order projection, generation {}",
            generation.generation
        ),
        ..Default::default()
    })
    .await
    .map_err(broker)
}

/// The generation's durable consumer on the log, created if missing.
pub(crate) async fn durable_consumer(
    store: &ProjectionStore,
    generation: &Generation,
    cfg: &ProjectorConfig,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, ProjectionError> {
    let stream = store
        .context()
        .get_stream(&store.events_stream)
        .await
        .map_err(broker)?;
    let deliver_policy = match generation.start_seq {
        0 | 1 => DeliverPolicy::All,
        start_sequence => DeliverPolicy::ByStartSequence { start_sequence },
    };
    let config = pull::Config {
        durable_name: Some(generation.consumer.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_ack_pending: cfg.ack_pending_max,
        max_deliver: cfg.deliveries_max + paystate_journal::dead_letters::SERVER_DELIVERIES_SLACK,
        deliver_policy,
        filter_subject: format!("{EVENTS_PREFIX}.>"),
        num_replicas: store.replicas,
        description: Some(format!(
            "paystate projector, generation {}",
            generation.generation
        )),
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&generation.consumer, config)
        .await
        .map_err(broker)
}

async fn pause(failures: &mut usize) {
    let idx = (*failures).min(FAILURE_BACKOFF_MS.len() - 1);
    *failures += 1;
    tokio::time::sleep(Duration::from_millis(FAILURE_BACKOFF_MS[idx])).await;
}

/// Waits until `generation` has no lag (or `timeout` passes); returns the last lag seen.
pub async fn wait_caught_up(
    store: &ProjectionStore,
    timeout: Duration,
) -> Result<u64, ProjectionError> {
    let started = Instant::now();
    loop {
        let generation = store.live().await?;
        let lag = lag(store, &generation).await?;
        if lag == 0 || started.elapsed() >= timeout {
            return Ok(lag);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
