//! The consumer loop: pull commands from the shared durable consumer, route each to the
//! partition task that owns its order, acknowledge after the outcome is durable.

use crate::cache::OrderCache;
use crate::config::EngineConfig;
use crate::order_queues::{sleep_until, OrderQueues};
use crate::outcomes::Outcomes;
use crate::parse::parse_command;
use crate::processor::{Disposition, Processor, Stats};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use paystate_events::metric_names::TYPE_UNKNOWN;
use paystate_events::subjects::{
    check_reply_target, order_token, ReplyTargetError, ENGINE_CONSUMER, REPLY_HEADER,
};
use paystate_events::{Outcome, Rejection, RejectionCode, Timestamp};
use paystate_journal::follow::Follow;
use paystate_journal::{Journal, LogSettings};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Attempts at creating streams, bucket and consumer, one second apart (cluster elections).
const SETUP_ATTEMPTS_MAX: u32 = 30;
/// Commands pulled per request from the consumer.
const PULL_BATCH_MAX: usize = 512;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("log setup: {0}")]
    Setup(String),
    #[error("consumer setup: {0}")]
    Consumer(String),
}

/// A running engine instance.
pub struct EngineHandle {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub stats: Arc<Stats>,
}

impl EngineHandle {
    /// Stops pulling, lets every partition finish what it holds, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
    /// Stops at once, without draining (what a crash looks like to the broker).
    pub fn abort(mut self) {
        self.tasks.abort_all();
    }
}

/// Starts an engine instance: ensures streams, consumer and outcome bucket, then processes
/// commands until shut down. Any number of instances may run against the same streams.
pub async fn run_engine(
    client: async_nats::Client,
    log: LogSettings,
    mut cfg: EngineConfig,
) -> Result<EngineHandle, EngineError> {
    // paystate's own processes wait below their role's inbox (`subjects::ENGINE_INBOX`...):
    // answered whatever prefixes the clients are configured with.
    for own in paystate_events::subjects::PAYSTATE_REPLY_INBOXES {
        let prefix = format!("{own}.");
        if !cfg.inbox_prefixes.contains(&prefix) {
            cfg.inbox_prefixes.push(prefix);
        }
    }
    let js = jetstream::new(client.clone());
    let (journal, outcomes, consumer) = setup(&js, &log, &cfg).await?;
    let stats = Arc::new(Stats::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut senders = Vec::with_capacity(cfg.partitions);
    // The fast-path partitions this instance serves: queued commands of the others are
    // handed to their owner (order affinity on the queue path too).
    let ownership = Arc::new(crate::fast::forward::Ownership::default());
    for _ in 0..cfg.partitions.max(1) {
        let (tx, rx) = mpsc::channel(cfg.partition_queue_max.max(1));
        senders.push(tx);
        let processor = Processor {
            journal: journal.clone(),
            outcomes: outcomes.clone(),
            cache: OrderCache::new(cfg.cache_orders_max / cfg.partitions.max(1)),
            cfg: cfg.clone(),
            stats: stats.clone(),
            rebuilt: None,
        };
        let affinity = cfg.queue_affinity.then(|| ownership.clone());
        tasks.spawn(partition(processor, rx, client.clone(), affinity));
    }
    // The fast path (request/reply service) feeds the same partition tasks.
    tasks.spawn(crate::fast::serve(
        client.clone(),
        log.replicas,
        cfg.clone(),
        senders.clone(),
        shutdown_rx.clone(),
        stats.clone(),
        ownership,
    ));
    tasks.spawn(pull_loop(
        js.clone(),
        consumer,
        senders,
        by_subject,
        shutdown_rx,
    ));
    Ok(EngineHandle {
        shutdown,
        tasks,
        stats,
    })
}

/// Streams, bucket and consumer, retried while the cluster elects leaders (bounded). A
/// server older than the supported minimum is refused at once.
async fn setup(
    js: &jetstream::Context,
    log: &LogSettings,
    cfg: &EngineConfig,
) -> Result<
    (
        Journal,
        Outcomes,
        jetstream::consumer::Consumer<pull::Config>,
    ),
    EngineError,
> {
    let mut last = None;
    for attempt in 0..SETUP_ATTEMPTS_MAX {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let journal = match Journal::open(js.clone(), log).await {
            Ok(j) => j,
            Err(e @ paystate_journal::SetupError::ServerTooOld { .. }) => {
                return Err(EngineError::Setup(e.to_string()))
            }
            Err(e) => {
                last = Some(EngineError::Setup(e.to_string()));
                continue;
            }
        };
        let outcomes = match Outcomes::open(js, log.replicas).await {
            Ok(o) => o,
            Err(e) => {
                last = Some(EngineError::Setup(e));
                continue;
            }
        };
        match engine_consumer(js, log, cfg).await {
            Ok(consumer) => return Ok((journal, outcomes, consumer)),
            Err(e) => last = Some(e),
        }
        tracing::warn!(attempt, "setup not complete yet; retrying");
    }
    Err(last.unwrap_or_else(|| EngineError::Setup("setup failed".into())))
}

async fn engine_consumer(
    js: &jetstream::Context,
    log: &LogSettings,
    cfg: &EngineConfig,
) -> Result<jetstream::consumer::Consumer<pull::Config>, EngineError> {
    let stream = js
        .get_stream(&log.commands_stream)
        .await
        .map_err(|e| EngineError::Consumer(e.to_string()))?;
    let config = pull::Config {
        durable_name: Some(ENGINE_CONSUMER.to_string()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_ack_pending: cfg.ack_pending_max,
        // The server gives up too, a little after the engine's own bound (which counts
        // in-process retries as well), so nothing is delivered forever.
        max_deliver: cfg.deliveries_max + paystate_journal::dead_letters::SERVER_DELIVERIES_SLACK,
        num_replicas: log.replicas,
        description: Some("paystate engine instances (competing consumers)".into()),
        ..Default::default()
    };
    // Create or update: an existing consumer takes the current bounds (`max_deliver`).
    stream
        .create_consumer(config)
        .await
        .map_err(|e| EngineError::Consumer(e.to_string()))
}

/// Pulls messages and routes them by order (`route`: the partition of a message among
/// `senders.len()`); pulls anew after broker trouble. Shared by every partitioned consumer
/// (engine intake, adapter workers and their redrive requests). Pulls through
/// [`Follow`] (the reader keeps the count of what is due; async-nats's pull stream can lose
/// it and then wait up to 35 s with commands queued). A request the server lost (a restart,
/// a new consumer leader) shows as silence past its idle bound; the follow then pulls anew.
pub async fn pull_loop<T: From<jetstream::Message>>(
    js: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    senders: Vec<mpsc::Sender<T>>,
    route: fn(&jetstream::Message, usize) -> usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut follow = Follow::durable(&js, consumer.cached_info(), PULL_BATCH_MAX);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = shutdown.changed() => return,
            msg = follow.next() => {
                let idx = route(&msg, senders.len());
                if senders[idx].send(msg.into()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// [`pull_loop`]'s route for messages on order subjects: by the subject's order token.
pub fn by_subject(msg: &jetstream::Message, partitions: usize) -> usize {
    partition_of(&msg.subject, partitions)
}

/// The partition of a message: by the order token of its subject, so one order's messages
/// are always handled by the same task, in order.
pub fn partition_of(subject: &str, partitions: usize) -> usize {
    partition_of_order(order_token(subject).unwrap_or(subject), partitions)
}

/// The partition task of an order token: the fast path routes requests with it, so a request
/// and a queued command of one order meet in the same task, in arrival order.
pub fn partition_of_order(order: &str, partitions: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    order.hash(&mut h);
    (h.finish() % partitions.max(1) as u64) as usize
}

/// What a partition task takes in: a command from the durable queue, or a fast-path request.
pub enum Work {
    Queued(jetstream::Message),
    Request(crate::fast::FastRequest),
}

impl From<jetstream::Message> for Work {
    fn from(msg: jetstream::Message) -> Work {
        Work::Queued(msg)
    }
}

impl Work {
    /// The order the work belongs to (the subject's order token).
    pub fn order(&self) -> &str {
        match self {
            Work::Queued(msg) => order_of(msg),
            Work::Request(req) => req.order(),
        }
    }
}

/// One partition: its orders' commands one at a time, each order's in arrival order, the
/// orders taken in turn (round robin), so thousands of commands queued for one order do not
/// hold up the other orders that hash to the same partition. Everything the channel holds is
/// taken into per-order queues at once; their total is bounded by the consumer's
/// `max_ack_pending` (JetStream hands out no more unacknowledged commands than that).
/// A command that cannot be processed now is retried in-process, first in its order's queue,
/// after `retry_later` (the order is parked meanwhile, the other orders go on): a later
/// command of the same order never overtakes it. Past `deliveries_max` attempts it is
/// dead-lettered and the order's next command goes on.
async fn partition(
    mut processor: Processor,
    mut rx: mpsc::Receiver<Work>,
    client: async_nats::Client,
    affinity: Option<Arc<crate::fast::forward::Ownership>>,
) {
    let mut queues = OrderQueues::default();
    let mut requests = crate::fast::HeldRequests::default();
    // Queued commands handed to their partition's owner come back here; their order stays
    // busy meanwhile (its next command waits), the other orders go on. Bounded by the
    // commands this task holds (`max_ack_pending`).
    let (forwarded_tx, mut forwarded_rx) = mpsc::unbounded_channel::<Forwarded>();
    loop {
        if !queues.ready() {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(work) => requests.take_in(&mut queues, work).await,
                    // Shutdown: what is held is redelivered after the ack wait.
                    None => return,
                },
                Some(back) = forwarded_rx.recv() => {
                    settle(&mut processor, &client, &mut queues, back).await;
                    continue;
                }
                _ = sleep_until(queues.wake_at()) => continue,
            }
        }
        while let Ok(work) = rx.try_recv() {
            requests.take_in(&mut queues, work).await;
        }
        while let Ok(back) = forwarded_rx.try_recv() {
            settle(&mut processor, &client, &mut queues, back).await;
        }
        let Some((order, head)) = queues.take_next() else {
            continue;
        };
        let span = crate::telemetry::command_span(Some(order.as_str()));
        let retry = match head.item {
            Work::Queued(msg) if forwards(&processor, affinity.as_deref(), &msg) => {
                // Never awaited here: the owner may be waiting on this very task (it may
                // be forwarding to this instance too), and the other orders go on.
                let (client, back) = (client.clone(), forwarded_tx.clone());
                let wait = crate::fast::forward::forward_wait(processor.cfg.ack_wait);
                tokio::spawn(async move {
                    let outcome = to_owner(&client, &msg, wait).await;
                    let _ = back.send(Forwarded {
                        order,
                        msg,
                        retries: head.retries,
                        outcome,
                    });
                });
                continue;
            }
            Work::Queued(msg) => handle(&mut processor, &client, msg, head.retries)
                .instrument(span)
                .await
                .map(Work::Queued),
            Work::Request(req) => {
                requests.release();
                crate::fast::answer(&mut processor, &client, &mut requests, req)
                    .instrument(span)
                    .await;
                None
            }
        };
        finish(&mut processor, &mut queues, order, retry, head.retries);
    }
}

/// The head of `order` is finished (`None`) or to be retried first in its order after a pause.
fn finish(
    processor: &mut Processor,
    queues: &mut OrderQueues<Work>,
    order: String,
    retry: Option<Work>,
    retries: u32,
) {
    match retry {
        Some(work) => {
            let at = tokio::time::Instant::now() + processor.cfg.retry_later;
            queues.retry(order, work, retries, at);
        }
        None => queues.done(order),
    }
}

/// A queued command back from its partition's owner.
struct Forwarded {
    order: String,
    msg: jetstream::Message,
    retries: u32,
    /// The owner's outcome JSON; `None`: it gave none, decide it here.
    outcome: Option<bytes::Bytes>,
}

/// Relays the owner's outcome and acknowledges the command (the owner answered once the log
/// held it; a crash in between redelivers the command, answered from the log as a
/// duplicate), or decides it here when the owner gave no outcome.
async fn settle(
    processor: &mut Processor,
    client: &async_nats::Client,
    queues: &mut OrderQueues<Work>,
    back: Forwarded,
) {
    let Forwarded {
        order,
        msg,
        retries,
        outcome,
    } = back;
    let Some(outcome_json) = outcome else {
        processor.stats.forward_fallbacks.fetch_add(1, Relaxed);
        let span = crate::telemetry::command_span(Some(order.as_str()));
        let retry = handle(processor, client, msg, retries)
            .instrument(span)
            .await
            .map(Work::Queued);
        finish(processor, queues, order, retry, retries);
        return;
    };
    // Checked before it was forwarded.
    if let Ok(Some(to)) = reply_target(&msg, &processor.cfg.inbox_prefixes) {
        reply(client, to, outcome_json).await;
    }
    processor.stats.forwarded.fetch_add(1, Relaxed);
    ack(&msg).await;
    queues.done(order);
}

/// Whether a queued command goes to its fast-path partition's owner: affinity on, another
/// instance serves its partition, and its reply target is one the engine answers (a refused
/// one is handled here).
fn forwards(
    processor: &Processor,
    affinity: Option<&crate::fast::forward::Ownership>,
    msg: &jetstream::Message,
) -> bool {
    let elsewhere = match (affinity, order_token(&msg.subject)) {
        (Some(owned), Some(order)) => owned.elsewhere(order),
        _ => false,
    };
    elsewhere && reply_target(msg, &processor.cfg.inbox_prefixes).is_ok()
}

/// The owner's outcome JSON for a queued command, on the plane it was queued on.
async fn to_owner(
    client: &async_nats::Client,
    msg: &jetstream::Message,
    wait: Duration,
) -> Option<bytes::Bytes> {
    let order = order_token(&msg.subject)?;
    let plane = paystate_events::subjects::plane_of(&msg.subject)?;
    let seq = msg.info().ok()?.stream_sequence;
    crate::fast::forward::to_owner(client, plane, order, msg.payload.clone(), seq, wait).await
}

/// The order a command belongs to (its subject's order token).
fn order_of(msg: &jetstream::Message) -> &str {
    order_token(&msg.subject).unwrap_or(&msg.subject)
}

/// One command message, start to finish: reply target, processing, answer, acknowledgement.
/// Gives the message back when it is to be retried in-process (`retries` so far).
async fn handle(
    processor: &mut Processor,
    client: &async_nats::Client,
    msg: jetstream::Message,
    retries: u32,
) -> Option<jetstream::Message> {
    let started = std::time::Instant::now();
    let (received_at, delivered) = match msg.info() {
        Ok(info) => (
            paystate_journal::read::to_chrono(info.published),
            info.delivered,
        ),
        Err(_) => (chrono::Utc::now(), 1), // Why: only a non-JetStream message lacks info; never the case here.
    };
    let reply_to = match reply_target(&msg, &processor.cfg.inbox_prefixes) {
        Ok(to) => to,
        Err(refused) => {
            Box::pin(refuse_reply_target(processor, &msg, refused)).await;
            ack(&msg).await;
            return None;
        }
    };
    let (kind, disposition) = process(processor, &msg, received_at).await;
    // Attempts so far: deliveries by the broker plus retries in this process.
    let attempts = delivered + i64::from(retries);
    if !expiry_scheduled(processor, client, &disposition).await {
        // Committed, but its expiry is not stored yet: nothing is answered or acknowledged;
        // the retry (first in its order, a duplicate answered from the log) writes the
        // schedule again. Bounded like every retry: past `deliveries_max` attempts the
        // command is set aside in the dead-letter stream (redriving it, once schedules can be
        // stored, writes the schedule: it is answered from the log again) and its outcome,
        // already in the log, is answered below.
        let held = attempts < processor.cfg.deliveries_max
            || !Box::pin(set_aside(
                processor,
                client,
                &msg,
                &crate::expiry::not_stored_reason(attempts),
            ))
            .await;
        if held {
            let _ = msg.ack_with(AckKind::Progress).await;
            return Some(msg);
        }
    }
    match disposition {
        Disposition::Done(outcome) => {
            if let (Some(to), Some(bytes)) = (reply_to, encode(&outcome)) {
                reply(client, to, bytes).await;
            }
            crate::telemetry::answered(kind, &outcome, started);
            ack(&msg).await;
        }
        Disposition::Committed { outcome } => {
            // The commit is durable in the log, which is all that is stored (decision 0013):
            // answer, then acknowledge (a crash in between redelivers the command, which the
            // log answers as a duplicate).
            if let (Some(to), Some(bytes)) = (reply_to, encode(&outcome)) {
                reply(client, to, bytes).await;
            }
            crate::telemetry::answered(kind, &outcome, started);
            ack(&msg).await;
        }
        Disposition::RetryLater if attempts >= processor.cfg.deliveries_max => {
            if !Box::pin(dead_letter(processor, client, &msg, reply_to, attempts)).await {
                let _ = msg.ack_with(AckKind::Progress).await;
                return Some(msg);
            }
        }
        Disposition::RetryLater => {
            crate::telemetry::requeued();
            // Held, not given back: a NAK would let the order's next command overtake it.
            // The progress ack restarts the ack wait while it waits for its retry.
            let _ = msg.ack_with(AckKind::Progress).await;
            return Some(msg);
        }
    }
    None
}

/// Stores the expiry schedule an outcome asks for (see [`crate::expiry::due`]: an accepted
/// `create_order` with `expires_at`, or a failed capture or void that leaves open an order its
/// expiry already tried); false if it could not be stored.
pub(crate) async fn expiry_scheduled(
    processor: &Processor,
    client: &async_nats::Client,
    disposition: &Disposition,
) -> bool {
    let outcome = match disposition {
        Disposition::Done(o) | Disposition::Committed { outcome: o, .. } => o,
        Disposition::RetryLater => return true,
    };
    let retry_after = &processor.cfg.expiry_retry_after;
    let Some(due) = crate::expiry::due(outcome, &processor.cache, retry_after) else {
        return true;
    };
    let js = jetstream::new(client.clone());
    // Boxed: only expiring creates and expiry retries get here; every command's future stays
    // small.
    match Box::pin(crate::expiry::schedule(&js, &due)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "expiry schedule not stored; the command is redelivered");
            false
        }
    }
}

/// The command's reply subject: `None` without the header, an error for a subject outside
/// the configured inboxes (the engine never publishes there, whatever the command says).
fn reply_target(
    msg: &jetstream::Message,
    inboxes: &[String],
) -> Result<Option<String>, ReplyTargetError> {
    let Some(value) = msg.headers.as_ref().and_then(|h| h.get(REPLY_HEADER)) else {
        return Ok(None);
    };
    let to = value.as_str();
    check_reply_target(to, inboxes)?;
    Ok(Some(to.to_string()))
}

/// A command whose reply header names a forbidden subject is not processed; its rejection
/// is recorded in the outcome bucket (the only place its caller can read it) when the
/// command can be parsed, and published nowhere.
async fn refuse_reply_target(
    processor: &mut Processor,
    msg: &jetstream::Message,
    refused: ReplyTargetError,
) {
    processor.stats.bad_input.fetch_add(1, Relaxed);
    if let Some(not_logged) = crate::telemetry::bad_input_warning() {
        tracing::warn!(subject = %msg.subject, reason = %refused, earlier_not_logged = not_logged, "reply target refused; command not processed");
    }
    if let Ok(env) = parse_command(&msg.payload, &msg.subject) {
        let outcome = crate::processor::rejection(
            &env,
            RejectionCode::ReplyTargetRefused,
            format!("{refused}; the command was not processed (retry with a reply inbox)"),
        );
        crate::telemetry::counted(env.command.name(), &outcome);
        processor.remember_refusal(&env, &outcome).await;
    }
}

/// The last attempt at a command that could not be processed: set it aside with its reason
/// in the dead-letter stream, tell the caller, and take it off the queue. If the dead-letter
/// write fails the command stays held (retried in-process, still first in its order's
/// queue): nothing is dropped. True once it is set aside.
async fn dead_letter(
    processor: &Processor,
    client: &async_nats::Client,
    msg: &jetstream::Message,
    reply_to: Option<String>,
    delivered: i64,
) -> bool {
    let reason = format!(
        "not processed after {delivered} deliveries (broker trouble or conflicts each time)"
    );
    if !set_aside(processor, client, msg, &reason).await {
        return false;
    }
    if let Ok(env) = parse_command(&msg.payload, &msg.subject) {
        let outcome = crate::processor::rejection(&env, RejectionCode::DeadLettered, reason);
        crate::telemetry::counted(env.command.name(), &outcome);
        if let (Some(to), Some(bytes)) = (reply_to, encode(&outcome)) {
            reply(client, to, bytes).await;
        }
    }
    ack(msg).await;
    true
}

/// Writes `msg` to the dead-letter stream with `reason`; true once it is stored.
async fn set_aside(
    processor: &Processor,
    client: &async_nats::Client,
    msg: &jetstream::Message,
    reason: &str,
) -> bool {
    let js = jetstream::new(client.clone());
    let stored = paystate_journal::dead_letters::send_message(
        &js,
        paystate_journal::dead_letters::Source::Engine,
        ENGINE_CONSUMER,
        msg,
        reason,
    )
    .await;
    counted_aside(processor, &msg.subject, reason, stored)
}

/// Counts and logs a dead-letter write (either path's); true once it is stored. A failed
/// write leaves the command to be retried: held on the queue path, the client's on the fast.
pub(crate) fn counted_aside(
    processor: &Processor,
    subject: &str,
    reason: &str,
    stored: Result<u64, paystate_journal::dead_letters::DeadLetterError>,
) -> bool {
    if let Err(e) = stored {
        tracing::error!(%subject, error = %e, "dead-letter write failed; the command is retried");
        return false;
    }
    processor.stats.dead_lettered.fetch_add(1, Relaxed);
    tracing::error!(%subject, %reason, "command moved to the dead-letter stream");
    true
}

async fn ack(msg: &jetstream::Message) {
    if let Err(e) = msg.ack().await {
        tracing::warn!(error = %e, "ack failed; the command will be redelivered and answered idempotently");
    }
}

async fn process(
    processor: &mut Processor,
    msg: &jetstream::Message,
    received_at: Timestamp,
) -> (&'static str, Disposition) {
    process_bytes(processor, &msg.payload, &msg.subject, received_at).await
}

/// Parses and processes a command's bytes as if published on the queue subject `subject`
/// (the fast path passes its plane's queue subject, so both paths apply the same rules).
pub(crate) async fn process_bytes(
    processor: &mut Processor,
    payload: &[u8],
    subject: &str,
    received_at: Timestamp,
) -> (&'static str, Disposition) {
    match parse_command(payload, subject) {
        Ok(env) => {
            crate::telemetry::record_command(&env);
            (
                env.command.name(),
                processor.handle(&env, received_at).await,
            )
        }
        Err(rejection) => {
            bad_command_seen(&processor.stats, subject, &rejection);
            let outcome = bad_command_outcome(payload, subject, rejection);
            (TYPE_UNKNOWN, Disposition::Done(outcome))
        }
    }
}

/// Counts a command the parser refused as bad input, and logs it (rate-limited).
pub(crate) fn bad_command_seen(stats: &Stats, subject: &str, rejection: &Rejection) {
    stats.bad_input.fetch_add(1, Relaxed);
    if let Some(not_logged) = crate::telemetry::bad_input_warning() {
        tracing::warn!(subject = %subject, code = %rejection.code, message = %rejection.message, earlier_not_logged = not_logged, "bad command rejected");
    }
}

/// The answer to a command the parser refused (published on `subject`): its rejection, with
/// the command id when it can be read. Also what the fast path's endpoint answers to a
/// request too large to be a command, so both paths answer alike.
pub(crate) fn bad_command_outcome(payload: &[u8], subject: &str, rejection: Rejection) -> Outcome {
    let command_id = match rejection.code {
        // Why: the id itself may be where the card number is.
        RejectionCode::SensitiveData => None,
        _ => command_id_hint(payload),
    };
    Outcome::Rejected {
        command_id,
        order_id: order_token(subject).map(str::to_string),
        code: rejection.code,
        message: rejection.message,
        duplicate: false,
    }
}

/// The command id of an unparseable command, if one can be read, to help the caller.
fn command_id_hint(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let id = v.get("command_id")?.as_str()?;
    (id.len() <= paystate_events::ids::COMMAND_ID_LEN_MAX).then(|| id.to_string())
}

/// The outcome as JSON, for the reply.
pub(crate) fn encode(outcome: &Outcome) -> Option<bytes::Bytes> {
    // Why not serde_json::to_vec: the same bytes, written cheaper (issue 15).
    match outcome.to_json() {
        Ok(bytes) => Some(bytes.into()),
        Err(e) => {
            tracing::error!(error = %e, "outcome did not serialize");
            None
        }
    }
}

async fn reply(client: &async_nats::Client, to: String, outcome_json: bytes::Bytes) {
    if let Err(e) = client.publish(to, outcome_json).await {
        tracing::warn!(error = %e, "could not publish the outcome (a retry of the command is answered from the log)");
    }
}
