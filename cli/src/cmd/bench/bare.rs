//! Row 2 "bare request path": the ceiling of any design with one request, one append and one
//! reply per command on this machine, measured in the same run as the engine (issue 15's
//! prototype): a queue-group subscriber, a JSON parse, one awaited optimistic-concurrency
//! append with a message id, a small reply. No decision, no state, no outcome: what is left
//! is NATS's own cost of the six messages per command (request in and out, append, ack,
//! reply in and out) against the raw append's two. The engine's fast path cannot be faster
//! than this; how far below it the engine is, is the engine's own cost.
//!
//! [`Shape::Batched`] is the same with fewer messages: each client connection gathers the
//! commands waiting on it into one request (a JSON array, at most [`BATCH_COMMANDS_MAX`]),
//! the responder appends each one (pipelined, every ack awaited) and answers one array. It
//! measures what a batching protocol would leave for the engine's own work on this machine.
//!
//! [`Shape::BatchedWork`] and [`Shape::MicroBatched`] add the engine's own work per command to
//! the batched and the one-request shapes ([`super::batched_work`]).

use super::engine::CLIENT_CONNECTIONS;
use super::load::{open_loop_with, LoadReport};
use super::raw::RAW_STREAM;
use super::workload::{lifecycle, order_id};
use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage};
use futures::StreamExt;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Requests are served on this prefix; appends go to the yardstick stream's subjects.
const REQUEST_PREFIX: &str = "bench.bare.req";
const APPEND_PREFIX: &str = "bench.raw.bare";
/// Worker tasks of the responder, each owning the orders that hash to it (as the engine's
/// partition tasks do): one awaited append at a time per worker.
const WORKERS: usize = 256;
/// Requests queued per worker.
const WORKER_QUEUE_MAX: usize = 1024;
/// Longest wait for one reply (a lost one is counted, never waited on forever).
pub(super) const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Batched shape: requests go to `bench.bare.batch.<connection>`.
const BATCH_PREFIX: &str = "bench.bare.batch";
/// Batched shape: commands in one request at most (64 commands of about 600 bytes stay far
/// below the server's payload limit).
pub const BATCH_COMMANDS_MAX: usize = 64;

/// How the bare path's clients send their commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One request per command (the fast path's protocol).
    OnePerRequest,
    /// Every command waiting on a client connection in one request, the outcomes in one reply.
    Batched,
    /// [`Shape::Batched`] with paystate's own work per command ([`super::batched_work`]).
    BatchedWork,
    /// One request per command, paystate's work done in batches of the requests waiting
    /// ([`super::batched_work::micro_worker`]).
    MicroBatched,
}

pub struct Bare {
    pub commands: u64,
    pub per_s: f64,
    /// Requests that got no reply or a failed append.
    pub errors: u64,
}

/// The bare responder (one queue-group subscription, its workers), serving until dropped.
struct Responder {
    router: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    /// The router goes, its senders with it, and the workers end.
    fn drop(&mut self) {
        self.router.abort();
    }
}

impl Responder {
    async fn start(url: &str, shape: Shape) -> anyhow::Result<Responder> {
        let responder = paystate_service::connect(url, "paystate-bench-bare-responder")
            .await
            .map_err(anyhow::Error::msg)?;
        let js = jetstream::new(responder.clone());
        js.get_stream(RAW_STREAM)
            .await
            .context("the yardstick stream (row 1 creates it)")?;
        let (workers, prefix) = match shape {
            Shape::OnePerRequest => (WORKERS, REQUEST_PREFIX),
            Shape::Batched => (CLIENT_CONNECTIONS, BATCH_PREFIX),
            Shape::BatchedWork => (CLIENT_CONNECTIONS, super::batched_work::PREFIX),
            Shape::MicroBatched => (CLIENT_CONNECTIONS, super::batched_work::MICRO_PREFIX),
        };
        let journal = match shape {
            Shape::BatchedWork | Shape::MicroBatched => Some(
                paystate_journal::Journal::open(
                    js.clone(),
                    &paystate_journal::LogSettings::default(),
                )
                .await
                .context("the engine's log stream")?,
            ),
            _ => None,
        };
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE_MAX);
            senders.push(tx);
            let (js, nats) = (js.clone(), responder.clone());
            match (shape, &journal) {
                (Shape::BatchedWork, Some(journal)) => {
                    tokio::spawn(super::batched_work::worker(rx, journal.clone(), nats))
                }
                (Shape::MicroBatched, Some(journal)) => {
                    tokio::spawn(super::batched_work::micro_worker(rx, journal.clone(), nats))
                }
                (Shape::Batched, _) => tokio::spawn(batch_worker(rx, js, nats)),
                _ => tokio::spawn(worker(rx, js, nats)),
            };
        }
        let mut sub = responder
            .queue_subscribe(format!("{prefix}.>"), "bare".to_string())
            .await
            .map_err(|e| anyhow::anyhow!("subscribing: {e}"))?;
        let router = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                msg.subject.as_str().hash(&mut h);
                let to = (h.finish() % senders.len() as u64) as usize;
                if senders[to].send(msg).await.is_err() {
                    return;
                }
            }
        });
        responder
            .flush()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Responder { router })
    }
}

/// Row 3's yardstick: the bare request path (one request per command) offered
/// `commands_per_s` in the same open loop as the engine's latency row (orders started at a
/// fixed rate, each sending its lifecycle request by request); every round trip recorded.
/// What this machine's NATS gives six messages and one store per command at that rate, with
/// none of paystate's work.
pub async fn latency(
    url: &str,
    commands_per_s: f64,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let _responder = Responder::start(url, Shape::OnePerRequest).await?;
    let conns = client_connections(url).await?;
    let report = open_loop_with(commands_per_s, duration, move |i| {
        let nats = conns[i % conns.len()].clone();
        async move {
            let mut report = LoadReport::default();
            let order = order_id("barelat", i);
            for env in lifecycle(&order) {
                report.commands += 1;
                let Ok(body) = serde_json::to_vec(&env) else {
                    report.unanswered += 1;
                    continue;
                };
                let started = Instant::now();
                if one_request(&nats, order.as_str(), body).await {
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    report.latencies_us.push(us);
                    report.accepted += 1;
                } else {
                    report.unanswered += 1;
                }
            }
            report
        }
    })
    .await;
    Ok(report)
}

/// The bare path's client connections ([`CLIENT_CONNECTIONS`], as the engine rows use).
async fn client_connections(url: &str) -> anyhow::Result<Vec<async_nats::Client>> {
    let mut conns = Vec::with_capacity(CLIENT_CONNECTIONS);
    for _ in 0..CLIENT_CONNECTIONS {
        conns.push(
            paystate_service::connect(url, "paystate-bench-bare-client")
                .await
                .map_err(anyhow::Error::msg)?,
        );
    }
    Ok(conns)
}

/// One command as one request; true once its append is acknowledged.
async fn one_request(nats: &async_nats::Client, order: &str, body: Vec<u8>) -> bool {
    let request = nats.request(format!("{REQUEST_PREFIX}.{order}"), body.into());
    matches!(
        tokio::time::timeout(REPLY_WAIT, request).await,
        Ok(Ok(reply)) if reply.payload.starts_with(b"{\"seq\"")
    )
}

/// `orders` lifecycles (6 commands each) from `concurrency` sequential request clients over
/// [`CLIENT_CONNECTIONS`] connections to one responder on its own connection.
pub async fn run(
    url: &str,
    orders: usize,
    concurrency: usize,
    shape: Shape,
) -> anyhow::Result<Bare> {
    let responder = Responder::start(url, shape).await?;
    let errors = Arc::new(AtomicU64::new(0));
    let conns = client_connections(url).await?;
    let batchers: Vec<Batcher> = match shape {
        Shape::OnePerRequest | Shape::MicroBatched => Vec::new(),
        Shape::Batched => conns.iter().enumerate().map(batcher).collect(),
        Shape::BatchedWork => conns
            .iter()
            .enumerate()
            .map(|(i, c)| super::batched_work::batcher(i, c))
            .collect(),
    };
    // Each shape its own orders: they append to the same streams in one run.
    let tag = match shape {
        Shape::OnePerRequest => "bare",
        Shape::Batched => "bareb",
        Shape::BatchedWork => "barew",
        Shape::MicroBatched => "barem",
    };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..concurrency.max(1) {
        let (nats, next, errors) = (conns[c % conns.len()].clone(), next.clone(), errors.clone());
        let batch = batchers.get(c % conns.len().max(1)).cloned();
        clients.spawn(async move {
            let mut sent = 0u64;
            loop {
                let i = next.fetch_add(1, Relaxed) as usize;
                if i >= orders {
                    return sent;
                }
                let order = order_id(tag, i);
                for env in lifecycle(&order) {
                    let body = match shape {
                        Shape::BatchedWork | Shape::MicroBatched => {
                            super::batched_work::frame(&env)
                        }
                        _ => serde_json::to_vec(&env).ok(),
                    };
                    let Some(body) = body else {
                        errors.fetch_add(1, Relaxed);
                        continue;
                    };
                    let answered = match &batch {
                        Some(batch) => batched_request(batch, body).await,
                        None if shape == Shape::MicroBatched => {
                            super::batched_work::micro_request(&nats, order.as_str(), body).await
                        }
                        None => one_request(&nats, order.as_str(), body).await,
                    };
                    if !answered {
                        errors.fetch_add(1, Relaxed);
                    }
                    sent += 1;
                }
            }
        });
    }
    let mut commands = 0;
    while let Some(sent) = clients.join_next().await {
        commands += sent.unwrap_or(0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(responder);
    Ok(Bare {
        commands,
        per_s: commands as f64 / elapsed.max(1e-9),
        errors: errors.load(Relaxed),
    })
}

/// One worker: parse, append with the order's expected last sequence and a message id, await
/// the ack, reply.
async fn worker(
    mut rx: mpsc::Receiver<async_nats::Message>,
    js: jetstream::Context,
    nats: async_nats::Client,
) {
    let mut last_seq: HashMap<String, (u64, u64)> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(&msg.payload);
        let order = msg
            .subject
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        let (seq, n) = last_seq.get(&order).copied().unwrap_or((0, 0));
        let answer = match parsed {
            Ok(_) => {
                let publish = PublishMessage::build()
                    .payload(msg.payload.clone())
                    .message_id(format!("bare-{order}:{}", n + 1))
                    .expected_last_subject_sequence(seq);
                match js
                    .send_publish(format!("{APPEND_PREFIX}.{order}"), publish)
                    .await
                {
                    Ok(ack) => match ack.await {
                        Ok(ack) => {
                            last_seq.insert(order, (ack.sequence, n + 1));
                            format!("{{\"seq\":{}}}", ack.sequence)
                        }
                        Err(e) => format!("{{\"error\":{:?}}}", e.to_string()),
                    },
                    Err(e) => format!("{{\"error\":{:?}}}", e.to_string()),
                }
            }
            Err(e) => format!("{{\"error\":{:?}}}", e.to_string()),
        };
        // A reply not sent is counted by its client (no answer within REPLY_WAIT).
        let _ = nats.publish(reply, answer.into()).await;
    }
}

/// A command waiting in its connection's batch, and where its answer goes.
pub(super) type Waiting = (Vec<u8>, oneshot::Sender<bool>);
/// Where a client hands a command to its connection's batch.
pub(super) type Batcher = mpsc::Sender<Waiting>;

/// Sends `body` in its connection's next batch; true once its append is acknowledged.
async fn batched_request(batch: &Batcher, body: Vec<u8>) -> bool {
    let (tx, rx) = oneshot::channel();
    batch.send((body, tx)).await.is_ok() && rx.await.unwrap_or(false)
}

/// How a batched shape frames its commands into one request and reads each command's
/// answer (true: appended or accepted) from the reply.
pub(super) struct Framing {
    pub body: fn(&[Waiting]) -> Vec<u8>,
    pub answers: fn(&[u8]) -> Vec<bool>,
}

/// The next item of `rx` and every other one already waiting, at most
/// [`BATCH_COMMANDS_MAX`]; `None` once `rx` is closed and empty.
pub(super) async fn gather<T>(rx: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
    let mut batch = vec![rx.recv().await?];
    while batch.len() < BATCH_COMMANDS_MAX {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// A client connection's batch task on `subject`: one request in flight at a time, carrying
/// every command that arrived while the previous one was out (at most [`BATCH_COMMANDS_MAX`]).
pub(super) fn spawn_batcher(
    nats: &async_nats::Client,
    subject: String,
    framing: Framing,
) -> Batcher {
    let (tx, mut rx) = mpsc::channel::<Waiting>(WORKER_QUEUE_MAX);
    let nats = nats.clone();
    tokio::spawn(async move {
        while let Some(batch) = gather(&mut rx).await {
            let request = nats.request(subject.clone(), (framing.body)(&batch).into());
            let reply = match tokio::time::timeout(REPLY_WAIT, request).await {
                Ok(Ok(reply)) => reply.payload,
                _ => Default::default(),
            };
            let answers = (framing.answers)(&reply);
            let answers = answers.into_iter().chain(std::iter::repeat(false));
            for ((_, answer), ok) in batch.into_iter().zip(answers) {
                let _ = answer.send(ok);
            }
        }
    });
    tx
}

/// The batch task of client connection `index` for [`Shape::Batched`]: a JSON array of the
/// commands, answered by an array of `{"seq"}` objects.
fn batcher((index, nats): (usize, &async_nats::Client)) -> Batcher {
    let framing = Framing {
        body: |batch| {
            let mut body = Vec::with_capacity(batch.iter().map(|(b, _)| b.len() + 1).sum());
            body.push(b'[');
            for (i, (command, _)) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(command);
            }
            body.push(b']');
            body
        },
        answers: |reply| {
            serde_json::from_slice::<Vec<serde_json::Value>>(reply)
                .unwrap_or_default()
                .iter()
                .map(|a| a.get("seq").is_some())
                .collect()
        },
    };
    spawn_batcher(nats, format!("{BATCH_PREFIX}.{index}"), framing)
}

/// One batch worker: parse the array, send every append (the order's expected last sequence
/// and a message id each), await every ack, answer one array in the request's order.
async fn batch_worker(
    mut rx: mpsc::Receiver<async_nats::Message>,
    js: jetstream::Context,
    nats: async_nats::Client,
) {
    let mut last_seq: HashMap<String, (u64, u64)> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        // Parsed whole and written again per command: the ceiling errs low, never high.
        let commands: Vec<serde_json::Value> =
            serde_json::from_slice(&msg.payload).unwrap_or_default();
        let mut pending = Vec::with_capacity(commands.len());
        for command in commands {
            let order = command.get("order_id").and_then(|o| o.as_str());
            let (Some(order), Ok(body)) = (order, serde_json::to_vec(&command)) else {
                pending.push(None);
                continue;
            };
            let order = order.to_string();
            let (seq, n) = last_seq.get(&order).copied().unwrap_or((0, 0));
            let publish = PublishMessage::build()
                .payload(body.into())
                .message_id(format!("bare-{order}:{}", n + 1))
                .expected_last_subject_sequence(seq);
            let sent = js.send_publish(format!("{APPEND_PREFIX}.{order}"), publish);
            pending.push(sent.await.ok().map(|ack| (order, n, ack)));
        }
        let mut answer = String::from("[");
        for (i, sent) in pending.into_iter().enumerate() {
            if i > 0 {
                answer.push(',');
            }
            let acked = match sent {
                Some((order, n, ack)) => ack.await.ok().map(|a| (order, n, a.sequence)),
                None => None,
            };
            match acked {
                Some((order, n, sequence)) => {
                    last_seq.insert(order, (sequence, n + 1));
                    answer.push_str(&format!("{{\"seq\":{sequence}}}"));
                }
                None => answer.push_str("{\"error\":\"not appended\"}"),
            }
        }
        answer.push(']');
        // A reply not sent is counted by its client (no answer within REPLY_WAIT).
        let _ = nats.publish(reply, answer.into()).await;
    }
}
