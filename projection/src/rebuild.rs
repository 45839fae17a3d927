//! Rebuilding the projection from scratch into a fresh generation, then swapping it in.
//!
//! 1. Fold the whole log (a [`paystate_journal::LogScan`] snapshot) in memory, one record per
//!    order, on one thread per core but one ([`rebuild_workers`]) that split the orders (each order's
//!    commits stay in stream order). Changed records are handed to a writer every
//!    [`FLUSH_EVERY`] commits (those changed within the last [`RECENT_WINDOW`] sequences wait
//!    for the next hand-over: they are probably not done changing) and written with pipelined
//!    puts while the read goes on (the new bucket has no other writer yet). Memory: one
//!    record per order, never the log.
//! 2. Create the generation's durable consumer starting right after the snapshot and catch up
//!    with the live projector's code until the lag is zero.
//! 3. Swap: compare-and-set the pointer from the old generation to the new one. Readers that
//!    resolved the old pointer keep reading the old bucket, which is removed only after a
//!    grace period (or kept with `keep_old`).

use crate::layout::{Generation, ORDER_KEY_PREFIX};
use crate::projector::{
    create_bucket, durable_consumer, follow, lag, Exit, ProjectorConfig, ProjectorStats,
};
use crate::rebuild_fold::{apply_full, FoldedOrder};
use crate::record::Step;
use crate::store::{broker, Pointer, ProjectionStore};
use crate::ProjectionError;
use async_nats::jetstream::context::PublishAckFuture;
use paystate_events::OrderId;
use paystate_journal::passes::{feed, Plan, ORDERS_PER_PASS_DEFAULT};
use paystate_journal::{Journal, LogScan, RawEntry, ScanOptions};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Puts in flight while writing a rebuilt bucket; below async-nats' default bound on
/// unacknowledged publishes per context (5000), which would otherwise block the sender.
const PUT_WINDOW_MAX: usize = 2048;
/// How long an old generation keeps serving readers that resolved the pointer before a swap.
pub const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for a generation to catch up with the log before it is swapped in (a rebuild's
/// default, and `paystate project swap`'s); past it nothing is swapped, and trying again
/// resumes the catch-up where it stopped (the generation's consumer is durable).
pub const CATCH_UP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Compare-and-set attempts of a swap whose pointer was rewritten meanwhile with the same
/// generation (a planted value, or a projector taking one over).
const SWAP_ATTEMPTS_MAX: usize = 3;

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Point readers at the new generation when it has caught up.
    pub swap: bool,
    /// Keep the old generation's bucket after the swap (its consumer is removed either way).
    pub keep_old: bool,
    /// Longest wait for the new generation to catch up with the live log before swapping.
    pub catch_up_timeout: Duration,
    /// Most orders one pass over the log folds in memory; a log with more is folded in
    /// several passes ([`paystate_journal::passes`]), each writing its share of the records.
    pub orders_per_pass: u64,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            swap: true,
            keep_old: false,
            catch_up_timeout: CATCH_UP_TIMEOUT_DEFAULT,
            orders_per_pass: ORDERS_PER_PASS_DEFAULT,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    pub generation: Generation,
    pub previous: Option<Generation>,
    /// Commits read from the log snapshot.
    pub commits: u64,
    pub orders: u64,
    /// Commits that could not be applied (broken history; see `paystate audit`).
    pub broken: u64,
    /// Records written (an order that changes again more than [`RECENT_WINDOW`] sequences
    /// after a hand-over wrote it is written again).
    pub writes: u64,
    pub snapshot_last_seq: u64,
    pub swapped: bool,
    /// Passes over the log's snapshot (more than one past `orders_per_pass` orders).
    pub passes: u64,
    /// Time to read and fold the snapshot and write the bucket.
    pub fold_ms: u64,
    pub total_ms: u64,
}

/// Rebuilds into generation (live + 1) and, with `opts.swap`, swaps it in. `progress` is called
/// with (commits read, commits in the snapshot).
pub async fn rebuild(
    store: &ProjectionStore,
    journal: &Journal,
    opts: &RebuildOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let previous = store.pointer().await?;
    let number = previous.generation().map_or(0, |g| g.generation) + 1;
    let draft = Generation::new(number, 1, chrono::Utc::now());
    discard(store, &draft).await; // leftovers of an interrupted rebuild of the same number
    create_bucket(store, &draft).await?;
    let mut folded = fold_snapshot(store, journal, &draft, opts.orders_per_pass, progress).await?;
    let generation = Generation {
        start_seq: folded.snapshot_last_seq + 1,
        ..draft
    };
    folded.generation = generation.clone();
    folded.fold_ms = started.elapsed().as_millis() as u64;
    let cfg = ProjectorConfig::default();
    durable_consumer(store, &generation, &cfg).await?;
    catch_up(store, &generation, &cfg, opts.catch_up_timeout).await?;
    if opts.swap {
        swap_pointer(store, &generation, &previous).await?;
        folded.swapped = true;
        if let Some(old) = previous.generation() {
            retire(store, old, opts.keep_old).await;
        }
    }
    folded.previous = previous.generation().cloned();
    folded.total_ms = started.elapsed().as_millis() as u64;
    Ok(folded)
}

/// Folds the log's snapshot into the new bucket, in as many passes as its orders need.
async fn fold_snapshot(
    store: &ProjectionStore,
    journal: &Journal,
    generation: &Generation,
    orders_per_pass: u64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<RebuildReport, ProjectionError> {
    let mut scan = journal.scan(ScanOptions::default()).await?;
    let plan = Plan::of(&scan, orders_per_pass)?;
    let (out_tx, mut out_rx) =
        tokio::sync::mpsc::channel::<Vec<(String, Vec<u8>)>>(QUEUE_BATCHES_MAX);
    // Records are written while the log is still being read (workers hand over what changed
    // every `FLUSH_EVERY` commits), so the bucket fills alongside the fold.
    let mut bulk = BulkWriter::new(store, generation);
    let writer = tokio::spawn(async move {
        while let Some(records) = out_rx.recv().await {
            bulk.put_all(records).await?;
        }
        bulk.finish().await?;
        Ok::<u64, ProjectionError>(bulk.written)
    });
    let (mut commits, mut orders, mut broken, mut failure) = (0u64, 0u64, 0u64, None);
    for pass in 0..plan.passes {
        if pass > 0 {
            // The same snapshot again: what was written since, the catch-up applies.
            scan = match plan.rescan(journal).await {
                Ok(scan) => scan,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
        }
        let folded = fold_pass(&mut scan, &plan, pass, out_tx.clone(), progress).await?;
        commits = folded.commits;
        orders += folded.orders;
        broken += folded.broken;
        if let Some(e) = folded.failure {
            failure = Some(e);
            break;
        }
    }
    drop(out_tx); // the writer ends once the workers' last records are written
    let written = writer.await.map_err(broker)??;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(RebuildReport {
        generation: generation.clone(),
        previous: None,
        commits,
        orders,
        broken,
        writes: written,
        snapshot_last_seq: plan.end_seq,
        swapped: false,
        passes: plan.passes,
        fold_ms: 0,
        total_ms: 0,
    })
}

/// What one pass folded: commits read (all of the snapshot's), its orders, its commits that
/// could not be applied, and the read's failure if it failed.
struct Pass {
    commits: u64,
    orders: u64,
    broken: u64,
    failure: Option<paystate_journal::ReadError>,
}

/// Reads the snapshot once (pass `pass` of `plan`), folding the pass's share of the orders
/// on the worker threads (which write their records through `out` as they go and at the end).
async fn fold_pass(
    scan: &mut LogScan,
    plan: &Plan,
    pass: u64,
    out: RecordsOut,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Pass, ProjectionError> {
    let (senders, workers) = spawn_workers(out, rebuild_workers());
    let (commits, failure) = feed(scan, plan, pass, senders, progress, |_| {}).await;
    let parts = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|h| h.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(broker)?
    .map_err(|_| ProjectionError::Broker("a rebuild worker panicked".into()))?;
    Ok(Pass {
        commits,
        orders: parts.iter().map(|p| p.0).sum(),
        broken: parts.iter().map(|p| p.1).sum(),
        failure,
    })
}

/// A worker's orders by order id, folded on the full state ([`crate::rebuild_fold`]). Boxed
/// for the reason the audit's tracks are (`paystate_audit::check::Tracks`): the map's growth
/// then moves a pointer per order, not a 500-byte state.
type Records = HashMap<String, Option<Box<FoldedOrder>>>;
/// Serialized records on their way to the writer: (KV key, value).
type RecordsOut = tokio::sync::mpsc::Sender<Vec<(String, Vec<u8>)>>;

/// Most threads folding a rebuild (orders split by a hash of the order id).
pub const REBUILD_WORKERS_MAX: usize = 16;

/// One fold thread per core but one, within 1..=[`REBUILD_WORKERS_MAX`], for the reason the
/// audit's default has (`paystate_audit::run::default_workers`): the reader and its connection
/// take about a core. On 2 cores one worker rebuilt faster than two in each of four
/// alternating pairs of bench-read runs (600k events: 6.5-8.4 s against 7.5-10.8 s).
pub fn rebuild_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, REBUILD_WORKERS_MAX)
}
/// Serialized records handed to the writer at a time.
const BATCH_MAX: usize = 256;
/// Batches queued per channel before the sender waits (bounds memory).
const QUEUE_BATCHES_MAX: usize = 16;
/// A worker hands its changed records to the writer every this many commits. Orders open
/// across a hand-over are written again later (the last write is the full record).
pub const FLUSH_EVERY: u64 = 32_768;
/// At a hand-over, an order whose last commit is within this many stream sequences of the
/// newest one read stays changed for a later hand-over (or the last): it is probably still
/// in its lifecycle, and writing it now would only be overwritten. Half the hand-over
/// period, so what is held back waits at most one more period.
pub const RECENT_WINDOW: u64 = FLUSH_EVERY / 2;

type Workers = (
    Vec<tokio::sync::mpsc::Sender<Vec<RawEntry>>>,
    Vec<std::thread::JoinHandle<(u64, u64)>>,
);

/// Each worker folds its orders' commits, sending changed records serialized to `out` as it
/// goes and the rest at the end; it returns (orders, commits that could not be applied).
fn spawn_workers(out: RecordsOut, n: usize) -> Workers {
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<RawEntry>>(QUEUE_BATCHES_MAX);
        let out = out.clone();
        handles.push(std::thread::spawn(move || {
            let mut records = Records::new();
            let mut dirty: HashSet<String> = HashSet::new();
            let (mut broken, mut folded) = (0u64, 0u64);
            let mut newest = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                for entry in &batch {
                    broken += u64::from(!fold_one(&mut records, &mut dirty, entry));
                }
                newest = batch.last().map_or(newest, |e| e.sequence);
                folded += batch.len() as u64;
                let settled_before = newest.saturating_sub(RECENT_WINDOW);
                if folded >= FLUSH_EVERY && !hand_over(&records, &mut dirty, settled_before, &out) {
                    break; // the writer failed; its error is reported
                }
                folded %= FLUSH_EVERY;
            }
            hand_over(&records, &mut dirty, u64::MAX, &out);
            let orders = records.values().filter(|r| r.is_some()).count() as u64;
            (orders, broken)
        }));
        senders.push(tx);
    }
    (senders, handles)
}

/// Serializes the changed records whose last commit came at or before `settled_before` and
/// sends them to the writer (the others stay changed, see [`RECENT_WINDOW`]); false if the
/// writer is gone.
fn hand_over(
    records: &Records,
    dirty: &mut HashSet<String>,
    settled_before: u64,
    out: &RecordsOut,
) -> bool {
    let seq_of = |order: &str| records.get(order).and_then(|r| r.as_ref()).map(|f| f.seq);
    let (settled, recent) = split_settled(std::mem::take(dirty), seq_of, settled_before);
    *dirty = recent;
    let mut chunk = Vec::with_capacity(BATCH_MAX);
    for order in settled {
        let Some(Some(folded)) = records.get(&order) else {
            continue;
        };
        // Why: serializing our own typed value cannot fail (all map keys are strings).
        let bytes = serde_json::to_vec(&folded.record()).unwrap_or_default();
        chunk.push((format!("{ORDER_KEY_PREFIX}{order}"), bytes));
        if chunk.len() >= BATCH_MAX && out.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return false;
        }
    }
    chunk.is_empty() || out.blocking_send(chunk).is_ok()
}

/// The changed orders to write now (last commit at or before `settled_before`, or no record
/// to hold back) and those to keep for a later hand-over.
fn split_settled(
    dirty: HashSet<String>,
    seq_of: impl Fn(&str) -> Option<u64>,
    settled_before: u64,
) -> (HashSet<String>, HashSet<String>) {
    let (recent, settled) = dirty
        .into_iter()
        .partition(|order| seq_of(order).is_some_and(|seq| seq > settled_before));
    (settled, recent)
}

/// Applies one message to its order's record (noting the order as changed); false when it
/// could not be applied. Keys are the order ids as text, so a known order costs no allocation.
fn fold_one(records: &mut Records, dirty: &mut HashSet<String>, entry: &RawEntry) -> bool {
    let Some(token) = entry.subject_order() else {
        return false;
    };
    if !records.contains_key(token) {
        if OrderId::parse(token).is_err() {
            return false;
        }
        records.insert(token.to_string(), None);
    }
    // Decoded and hashed as `RawEntry::decode` does (a commit whose hash header is not its
    // body's is not applied), without copying the subject and header into a `StoredCommit`.
    let Ok(commit) = paystate_journal::scan::decode_commit(&entry.payload) else {
        return false;
    };
    let hash = paystate_events::CommitHash::of(&entry.payload).0;
    let (Some(slot), true) = (
        records.get_mut(token),
        entry.header_hash() == Some(hash.as_str()),
    ) else {
        return false;
    };
    let step = apply_full(slot, entry.sequence, &commit, &hash);
    if matches!(step, Step::Applied | Step::Broken(_)) && !dirty.contains(token) {
        dirty.insert(token.to_string());
    }
    !matches!(step, Step::Broken(_))
}

/// Runs the live projector's loop on `generation` until its lag is zero.
async fn catch_up(
    store: &ProjectionStore,
    generation: &Generation,
    cfg: &ProjectorConfig,
    timeout: Duration,
) -> Result<(), ProjectionError> {
    let stats = ProjectorStats::default();
    let (_keep, mut never) = tokio::sync::watch::channel(false);
    match tokio::time::timeout(
        timeout,
        follow(store, generation, cfg, &stats, &mut never, true),
    )
    .await
    {
        Ok(Ok(Exit::CaughtUp)) => Ok(()),
        Ok(Ok(other)) => Err(ProjectionError::Broker(format!(
            "catching up stopped: {other:?}"
        ))),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let behind = match lag(store, generation).await {
                Ok(lag) => format!(" ({lag} events behind)"),
                Err(_) => String::new(),
            };
            Err(ProjectionError::Broker(format!(
                "generation {} did not catch up with the log within {timeout:?}{behind}; \
                 nothing swapped (trying again resumes the catch-up)",
                generation.generation
            )))
        }
    }
}

/// Points readers at `target` if the pointer still names what `expected` named: a rewrite of
/// the same generation meanwhile (a planted value, a projector taking one over) is no race.
async fn swap_pointer(
    store: &ProjectionStore,
    target: &Generation,
    expected: &Pointer,
) -> Result<(), ProjectionError> {
    let mut revision = expected.revision();
    for _ in 1..SWAP_ATTEMPTS_MAX {
        match store.set_pointer(target, revision).await {
            Err(ProjectionError::SwapRace(now)) => {
                let pointer = store.pointer().await?;
                if pointer.generation() != expected.generation() {
                    return Err(ProjectionError::SwapRace(now));
                }
                revision = pointer.revision();
            }
            other => return other.map(|_| ()),
        }
    }
    store.set_pointer(target, revision).await.map(|_| ())
}

/// Points readers at an existing generation (after `paystate project rebuild --no-swap`), once
/// it has caught up with the log: nobody may have followed it since it was built, and readers
/// must never be sent to a generation behind the one they leave (decision 0005). A generation
/// that does not catch up within [`CATCH_UP_TIMEOUT_DEFAULT`] is not swapped in.
pub async fn swap_to(
    store: &ProjectionStore,
    generation: u64,
    keep_old: bool,
) -> Result<Generation, ProjectionError> {
    let current = store.pointer().await?;
    let target = existing_generation(store, generation).await?;
    let cfg = ProjectorConfig::default();
    catch_up(store, &target, &cfg, CATCH_UP_TIMEOUT_DEFAULT).await?;
    swap_pointer(store, &target, &current).await?;
    if let Some(old) = current.generation().filter(|g| g.generation != generation) {
        retire(store, old, keep_old).await;
    }
    Ok(target)
}

/// Generation `generation` as built: its bucket and consumer must exist; where its consumer
/// starts in the log.
async fn existing_generation(
    store: &ProjectionStore,
    generation: u64,
) -> Result<Generation, ProjectionError> {
    let target = Generation::new(generation, 1, chrono::Utc::now());
    let bucket = store
        .bucket(&target)
        .await
        .map_err(|_| ProjectionError::Broker(format!("generation {generation} has no bucket")))?;
    let stream = store
        .context()
        .get_stream(&store.events_stream)
        .await
        .map_err(broker)?;
    let info = stream.consumer_info(&target.consumer).await.map_err(|e| {
        ProjectionError::Broker(format!("generation {generation} has no consumer: {e}"))
    })?;
    drop(bucket);
    let start_seq = match info.config.deliver_policy {
        async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence } => {
            start_sequence
        }
        _ => 1,
    };
    Ok(Generation {
        start_seq,
        ..target
    })
}

/// Removes an old generation's consumer and, after the grace period, its bucket.
async fn retire(store: &ProjectionStore, old: &Generation, keep_bucket: bool) {
    if let Ok(stream) = store.context().get_stream(&store.events_stream).await {
        let _ = stream.delete_consumer(&old.consumer).await;
    }
    if !keep_bucket {
        tokio::time::sleep(RETIRE_GRACE).await;
        let _ = store.context().delete_key_value(&old.bucket).await;
    }
}

/// Removes a non-live generation's bucket and consumer, if any.
async fn discard(store: &ProjectionStore, generation: &Generation) {
    if let Ok(stream) = store.context().get_stream(&store.events_stream).await {
        let _ = stream.delete_consumer(&generation.consumer).await;
    }
    let _ = store.context().delete_key_value(&generation.bucket).await;
}

/// Pipelined puts into a bucket nobody else writes yet.
struct BulkWriter {
    js: async_nats::jetstream::Context,
    subject_prefix: String,
    inflight: VecDeque<PublishAckFuture>,
    written: u64,
}

impl BulkWriter {
    fn new(store: &ProjectionStore, generation: &Generation) -> BulkWriter {
        BulkWriter {
            js: store.context().clone(),
            subject_prefix: format!("$KV.{}.", generation.bucket),
            inflight: VecDeque::new(),
            written: 0,
        }
    }

    async fn put_all(&mut self, records: Vec<(String, Vec<u8>)>) -> Result<(), ProjectionError> {
        for (key, bytes) in records {
            if self.inflight.len() >= PUT_WINDOW_MAX {
                if let Some(ack) = self.inflight.pop_front() {
                    ack.await.map_err(broker)?;
                }
            }
            let subject = format!("{}{key}", self.subject_prefix);
            self.inflight.push_back(
                self.js
                    .publish(subject, bytes.into())
                    .await
                    .map_err(broker)?,
            );
            self.written += 1;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ProjectionError> {
        while let Some(ack) = self.inflight.pop_front() {
            ack.await.map_err(broker)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_changed_within_the_recent_window_wait_for_a_later_hand_over() {
        let seqs: HashMap<&str, u64> = [("old", 10), ("edge", 100), ("recent", 101)].into();
        let dirty: HashSet<String> = ["old", "edge", "recent", "unknown"]
            .map(String::from)
            .into();
        let (settled, recent) = split_settled(dirty, |o| seqs.get(o).copied(), 100);
        assert_eq!(settled, ["edge", "old", "unknown"].map(String::from).into());
        assert_eq!(recent, HashSet::from(["recent".to_string()]));
        let (settled, recent) = split_settled(recent, |o| seqs.get(o).copied(), u64::MAX);
        assert_eq!(
            settled,
            HashSet::from(["recent".to_string()]),
            "the last hand-over writes everything"
        );
        assert!(recent.is_empty());
    }
}
