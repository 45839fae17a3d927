//! The adapter workers' consumer: every commit in the log is looked at once (durable
//! consumer shared by all worker instances); commits with provider work are performed and
//! acknowledged only after their signals are stored.
//!
//! Work that cannot be done now ("try again later": the provider unreachable, credentials
//! refused, configuration missing) is retried in-process along [`WorkerConfig::retry_delays`]
//! while its order waits (a later commit of the same order never overtakes it). Past
//! [`WorkerConfig::deliveries_max`] attempts the commit is set aside in the dead-letter
//! stream with its reason, and the order's next work goes on. `paystate dlq redrive` sends it
//! back: a redrive request the workers take from their own durable consumer on the
//! dead-letter stream and perform like the commit itself.
//!
//! Every message a partition holds (being worked on, queued behind its order's earlier work,
//! or parked until its retry) gets a progress ack every `ack_wait /`
//! [`PROGRESS_ACKS_PER_ACK_WAIT`], so JetStream never hands it to a second worker while a
//! slow provider call or a long queue keeps this one busy; a redelivered copy of a held
//! message is not worked twice (see [`crate::held`]). A provider's answer that could not be
//! submitted is re-sent on the next attempt, never asked for again (see [`crate::work`]).

use crate::held::{
    progress_every, HeldAnswers, HeldKey, Holding, ACK_WAIT_MIN, LOG_ACK_PENDING_MAX,
    PROGRESS_ACKS_PER_ACK_WAIT, REDRIVE_ACK_PENDING_MAX,
};
use crate::work::{perform, Done, Env};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use paystate_adapters::Adapters;
use paystate_events::OrderId;
use paystate_journal::dead_letters::{self, Outgoing, Source, SERVER_DELIVERIES_SLACK};
use paystate_journal::{Journal, LogSettings};
use paystate_service::order_queues::{sleep_until, OrderQueues};
use paystate_service::refs::ProviderRefs;
use paystate_service::Client;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Durable consumer name of the adapter workers.
pub const WORKERS_CONSUMER: &str = "paystate-workers";
/// Pauses before retrying after "try again later", by attempt (the last one repeats).
const RETRY_DELAYS_MS: [u64; 5] = [500, 2_000, 10_000, 30_000, 60_000];
/// Default for [`WorkerConfig::deliveries_max`]: along [`RETRY_DELAYS_MS`], about 16 minutes
/// of trying before a commit's work is set aside for a person.
pub const DELIVERIES_MAX_DEFAULT: i64 = 20;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Partition tasks; one order's work is always done by the same task, in log order.
    pub partitions: usize,
    /// Messages on their way from the consumers to a partition (the partition takes them in
    /// at once, even while it works; what it holds is bounded by the consumers'
    /// `max_ack_pending`, [`crate::held::HELD_MESSAGES_MAX`]).
    pub partition_queue_max: usize,
    /// How long JetStream waits for word from the worker holding a message before handing it
    /// to another. Every held message (in work, queued or parked) gets a progress ack every
    /// `ack_wait / PROGRESS_ACKS_PER_ACK_WAIT`, so neither provider calls with their retries
    /// nor queues nor `retry_delays` need to fit in it; it is how long a crashed worker's
    /// messages wait before another worker takes them. At least [`ACK_WAIT_MIN`].
    pub ack_wait: Duration,
    /// Attempts at a commit's work (deliveries plus in-process retries) before it is set
    /// aside in the dead-letter stream.
    pub deliveries_max: i64,
    /// Pauses between attempts (the last one repeats).
    pub retry_delays: Vec<Duration>,
}

impl WorkerConfig {
    /// Refuses settings the workers cannot keep their promises with (checked at start).
    pub fn check(&self) -> Result<(), String> {
        if self.ack_wait < ACK_WAIT_MIN {
            return Err(format!(
                "workers ack_wait {:?} is under {ACK_WAIT_MIN:?}: progress acks go out every \
                 {PROGRESS_ACKS_PER_ACK_WAIT}th of it and must keep that pace",
                self.ack_wait
            ));
        }
        Ok(())
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            partitions: 16,
            partition_queue_max: 64,
            ack_wait: Duration::from_secs(120),
            deliveries_max: DELIVERIES_MAX_DEFAULT,
            retry_delays: RETRY_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }
}

/// Counters for tests and logs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub performed: AtomicU64,
    pub skipped: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub redriven: AtomicU64,
    /// Redelivered copies of messages a partition already held (not worked twice).
    pub duplicates: AtomicU64,
    /// Provider answers re-sent from what the worker held (their first submission failed).
    pub resubmitted: AtomicU64,
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
    cfg.check()?;
    let js = jetstream::new(nats.clone());
    let journal = Journal::existing(js.clone(), &log.events_stream)
        .await
        .map_err(|e| e.to_string())?;
    let refs = ProviderRefs::open(&js, log.replicas).await?;
    let attachments = paystate_service::attachments::open(&js, log.replicas).await?;
    // Create or update: an existing consumer takes the current bounds (`max_deliver`).
    let consumer = journal
        .stream()
        .create_consumer(pull::Config {
            durable_name: Some(WORKERS_CONSUMER.into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            max_deliver: cfg.deliveries_max + SERVER_DELIVERIES_SLACK,
            // What a worker can hold (and progress-ack) is bounded by this.
            max_ack_pending: LOG_ACK_PENDING_MAX as i64,
            num_replicas: log.replicas,
            description: Some("paystate adapter workers".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let redrive = redrive_consumer(&js, log, &cfg).await?;
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
            js: js.clone(),
            refs: refs.clone(),
            stats: stats.clone(),
            cfg: cfg.clone(),
        };
        tasks.spawn(partition(shared, rx));
    }
    tasks.spawn(paystate_service::intake::pull_loop(
        js.clone(),
        redrive,
        senders.clone(),
        by_redriven_subject,
        shutdown_rx.clone(),
    ));
    tasks.spawn(paystate_service::intake::pull_loop(
        js.clone(),
        consumer,
        senders,
        paystate_service::intake::by_subject,
        shutdown_rx,
    ));
    Ok(WorkersHandle {
        shutdown,
        tasks,
        stats,
    })
}

/// The workers' durable consumer of redrive requests on the dead-letter stream.
async fn redrive_consumer(
    js: &jetstream::Context,
    log: &LogSettings,
    cfg: &WorkerConfig,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let name = dead_letters::redrive_consumer(Source::Workers);
    js.get_stream_no_info(paystate_events::subjects::DEAD_LETTERS_STREAM)
        .await
        .map_err(|e| e.to_string())?
        .create_consumer(pull::Config {
            durable_name: Some(name),
            filter_subject: Source::Workers.redrive_subject(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            max_deliver: cfg.deliveries_max + SERVER_DELIVERIES_SLACK,
            max_ack_pending: REDRIVE_ACK_PENDING_MAX as i64,
            num_replicas: log.replicas,
            description: Some("paystate adapter workers: redriven dead letters".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())
}

/// [`paystate_service::intake::pull_loop`]'s route for redrive requests: the partition of
/// their order (the original commit's subject), so they queue behind that order's other work.
fn by_redriven_subject(msg: &jetstream::Message, partitions: usize) -> usize {
    paystate_service::intake::partition_of(&Item::of(msg).subject, partitions)
}

struct Shared {
    adapters: Arc<Adapters>,
    attachments: async_nats::jetstream::object_store::ObjectStore,
    journal: Journal,
    client: Client,
    js: jetstream::Context,
    refs: ProviderRefs,
    stats: Arc<WorkerStats>,
    cfg: WorkerConfig,
}

/// A work item: a commit of the log, delivered by the log's consumer or redriven from the
/// dead-letter stream.
struct Item {
    /// The commit's subject in the log (`paystate.events.<order>`).
    subject: String,
    headers: Option<async_nats::HeaderMap>,
    payload: bytes::Bytes,
    /// Its sequence in the log (0 when unknown).
    seq: u64,
    /// Deliveries of the message in hand.
    delivered: i64,
    redriven: bool,
}

impl Item {
    /// The order token of its subject ("" if it has none: such an item holds no answers).
    fn order(&self) -> &str {
        paystate_events::subjects::order_token(&self.subject).unwrap_or("")
    }

    fn of(msg: &jetstream::Message) -> Item {
        let (stream_seq, delivered) = msg
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 1));
        let request = match msg
            .subject
            .starts_with(paystate_events::subjects::DEAD_LETTERS_PREFIX)
        {
            true => dead_letters::redrive_request(msg.headers.as_ref(), &msg.payload),
            false => None,
        };
        match request {
            Some(r) => Item {
                subject: r.subject,
                headers: Some(r.headers),
                payload: r.payload,
                seq: r.origin_seq.unwrap_or(0),
                delivered,
                redriven: true,
            },
            None => Item {
                subject: msg.subject.to_string(),
                headers: msg.headers.clone(),
                payload: msg.payload.clone(),
                seq: stream_seq,
                delivered,
                redriven: false,
            },
        }
    }
}

/// One partition: its orders' work one at a time, each order's in log order (see
/// [`OrderQueues`]); work to be tried again waits, parked, before the rest of its order.
/// While an item is worked on, the partition still takes in what arrives and sends the
/// progress acks of everything it holds (see the module docs).
async fn partition(shared: Shared, mut rx: mpsc::Receiver<jetstream::Message>) {
    let env = Env {
        adapters: &shared.adapters,
        attachments: &shared.attachments,
        journal: &shared.journal,
        client: &shared.client,
        refs: &shared.refs,
    };
    let mut queues = OrderQueues::default();
    let mut holding = Holding::default();
    let mut answers = HeldAnswers::default();
    let mut sweep = tokio::time::interval(progress_every(shared.cfg.ack_wait));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // False once the consumers stopped (shutdown): what is ready is still done, then the
    // task ends; what is held is redelivered after the ack wait.
    let mut open = true;
    loop {
        while let Ok(msg) = rx.try_recv() {
            admit(&shared, &mut queues, &mut holding, msg).await;
        }
        if let Some((order, head)) = queues.take_next() {
            let key = held_key(&head.item);
            let work = work_on(&shared, &env, &mut answers, head.item, head.retries);
            tokio::pin!(work);
            let outcome = loop {
                tokio::select! {
                    out = &mut work => break out,
                    next = rx.recv(), if open => match next {
                        Some(msg) => admit(&shared, &mut queues, &mut holding, msg).await,
                        None => open = false,
                    },
                    _ = sweep.tick() => progress(&holding).await,
                }
            };
            match outcome {
                Some((msg, pause)) => {
                    let at = tokio::time::Instant::now() + pause;
                    queues.retry(order, msg, head.retries, at);
                }
                None => {
                    if let Some(key) = key {
                        holding.release(&key);
                    }
                    queues.done(order);
                }
            }
            continue;
        }
        if !open {
            return;
        }
        tokio::select! {
            next = rx.recv() => match next {
                Some(msg) => admit(&shared, &mut queues, &mut holding, msg).await,
                None => open = false,
            },
            _ = sleep_until(queues.wake_at()) => {}
            _ = sweep.tick() => progress(&holding).await,
        }
    }
}

/// Takes a message in: held and queued behind its order's earlier work, unless it is a
/// redelivered copy of one already held (its ack wait ran out before a progress ack reached
/// the broker): then the held one goes on and the copy only restarts the wait.
async fn admit(
    shared: &Shared,
    queues: &mut OrderQueues<jetstream::Message>,
    holding: &mut Holding<jetstream::Message>,
    msg: jetstream::Message,
) {
    let Some(key) = held_key(&msg) else {
        // Not a JetStream message: nothing to acknowledge, nothing to hold.
        queues.push(order_of(&msg), msg);
        return;
    };
    if holding.admit(key.clone(), msg.clone()).is_ok() {
        queues.push(order_of(&msg), msg);
        return;
    }
    shared.stats.duplicates.fetch_add(1, Relaxed);
    tracing::warn!(stream = %key.0, seq = key.1, "redelivered copy of a message this worker holds; not worked twice");
    let _ = msg.ack_with(AckKind::Progress).await;
}

/// Restarts the ack wait of every message the partition holds.
async fn progress(holding: &Holding<jetstream::Message>) {
    let mut failed = 0_usize;
    for msg in holding.items() {
        if msg.ack_with(AckKind::Progress).await.is_err() {
            failed += 1;
        }
    }
    if failed > 0 {
        tracing::warn!(
            failed,
            held = holding.len(),
            "progress acks not sent; held work may be redelivered to another worker"
        );
    }
}

/// Which message this is, for [`Holding`]: its stream and stream sequence.
fn held_key(msg: &jetstream::Message) -> Option<HeldKey> {
    msg.info()
        .ok()
        .map(|i| (i.stream.to_string(), i.stream_sequence))
}

fn order_of(msg: &jetstream::Message) -> String {
    let subject = Item::of(msg).subject;
    paystate_events::subjects::order_token(&subject)
        .unwrap_or(&subject)
        .to_string()
}

/// Performs one work item; gives it back with the pause before its next attempt when it is
/// to be tried again, or sets it aside past the bound.
async fn work_on(
    shared: &Shared,
    env: &Env<'_>,
    answers: &mut HeldAnswers,
    msg: jetstream::Message,
    retries: u32,
) -> Option<(jetstream::Message, Duration)> {
    let item = Item::of(&msg);
    let (reason, permanent) = match handle(env, answers, &item).await {
        Ok(outcomes) => {
            for d in outcomes {
                match d {
                    Done::Reported { .. } => shared.stats.performed.fetch_add(1, Relaxed),
                    Done::Resent { .. } => {
                        shared.stats.resubmitted.fetch_add(1, Relaxed);
                        shared.stats.performed.fetch_add(1, Relaxed)
                    }
                    _ => shared.stats.skipped.fetch_add(1, Relaxed),
                };
            }
            if item.redriven {
                shared.stats.redriven.fetch_add(1, Relaxed);
            }
            answers.release(item.order(), item.seq);
            ack(&msg).await;
            return None;
        }
        Err(postponed) => postponed,
    };
    let attempts = item.delivered + i64::from(retries);
    if permanent || attempts >= shared.cfg.deliveries_max {
        let reason = match permanent {
            true => format!("provider work cannot be done (trying again cannot help): {reason}"),
            false => format!("provider work not done after {attempts} attempts: {reason}"),
        };
        match dead_letter(shared, &msg, &item, attempts, &reason).await {
            Ok(dead_seq) => {
                shared.stats.dead_lettered.fetch_add(1, Relaxed);
                tracing::error!(seq = item.seq, dead_seq, %reason, "provider work moved to the dead-letter stream");
                unsubmitted_set_aside(&item, answers.release(item.order(), item.seq));
                ack(&msg).await;
                return None;
            }
            Err(e) => {
                tracing::error!(seq = item.seq, error = %e, "dead-letter write failed; the work stays held");
            }
        }
    } else {
        shared.stats.retried.fetch_add(1, Relaxed);
        tracing::warn!(seq = item.seq, attempts, %reason, "provider work postponed");
    }
    // Held, not given back: a NAK would let the order's next work overtake it. The progress
    // ack restarts the ack wait at once (the partition's sweep keeps it going while it waits).
    let _ = msg.ack_with(AckKind::Progress).await;
    let delays = &shared.cfg.retry_delays;
    let pause = delays
        .get(usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX))
        .or(delays.last())
        .copied()
        .unwrap_or(Duration::from_secs(1));
    Some((msg, pause))
}

/// A commit set aside with a provider answer that was never submitted: the answer is
/// dropped with it, so it goes to the log for the person who looks at the dead letter (a
/// redrive would call the provider again: ask the provider first).
fn unsubmitted_set_aside(item: &Item, dropped: Vec<paystate_events::CommandEnvelope>) {
    if dropped.is_empty() {
        return;
    }
    let commands = serde_json::to_string(&dropped).unwrap_or_default();
    tracing::error!(
        seq = item.seq,
        order = item.order(),
        %commands,
        "a provider answer set aside unsubmitted: a redrive calls the provider again; check the provider's status first"
    );
}

async fn dead_letter(
    shared: &Shared,
    msg: &jetstream::Message,
    item: &Item,
    attempts: i64,
    reason: &str,
) -> Result<u64, dead_letters::DeadLetterError> {
    let info = msg.info().ok();
    let stream = info.as_ref().map(|i| i.stream.to_string());
    let out = Outgoing {
        source: Source::Workers,
        consumer: WORKERS_CONSUMER,
        subject: &item.subject,
        order: None,
        headers: item.headers.as_ref(),
        payload: item.payload.clone(),
        // The message in hand (the log's commit, or the redrive request): its own dedup id.
        origin: stream
            .as_deref()
            .zip(info.as_ref().map(|i| i.stream_sequence)),
        deliveries: u64::try_from(attempts).unwrap_or(0),
        reason,
    };
    dead_letters::send(&shared.js, &out).await
}

async fn ack(msg: &jetstream::Message) {
    if let Err(e) = msg.ack().await {
        tracing::warn!(error = %e, "ack failed; the work item will be looked at again");
    }
}

/// Performs every piece of provider work in one commit, in order. Any "try again later"
/// postpones the whole commit (the done parts are re-sent from `answers` next time, or
/// skipped as resolved); the error says why, and whether trying again can help at all.
async fn handle(
    env: &Env<'_>,
    answers: &mut HeldAnswers,
    item: &Item,
) -> Result<Vec<Done>, (String, bool)> {
    let Some(token) = paystate_events::subjects::order_token(&item.subject) else {
        return Ok(Vec::new());
    };
    let Ok(order) = OrderId::parse(token) else {
        return Ok(Vec::new());
    };
    let seq = item.seq;
    let commit = match paystate_events::Commit::decode(&item.payload) {
        Ok(c) => c,
        Err(_) if paystate_journal::read::is_stray(item.headers.as_ref(), &item.payload) => {
            paystate_journal::read::stray_skipped("workers", &item.subject, seq);
            return Ok(Vec::new());
        }
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
        match perform(env, answers, &order, seq, index, event).await {
            Done::RetryLater(reason) => return Err((reason, false)),
            Done::Unsubmitted { signals, reason } => {
                let reason =
                    format!("answer known, not yet submitted ({signals} signals): {reason}");
                return Err((reason, false));
            }
            Done::Permanent(reason) => return Err((reason, true)),
            other => done.push(other),
        }
    }
    Ok(done)
}
