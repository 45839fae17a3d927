//! Row 2 "bare request path": the ceiling of any design with one request, one append and one
//! reply per command on this machine, measured in the same run as the engine (issue 15's
//! prototype): a queue-group subscriber, a JSON parse, one awaited optimistic-concurrency
//! append with a message id, a small reply. No decision, no state, no outcome: what is left
//! is NATS's own cost of the six messages per command (request in and out, append, ack,
//! reply in and out) against the raw append's two. The engine's fast path cannot be faster
//! than this; how far below it the engine is, is the engine's own cost.

use super::engine::CLIENT_CONNECTIONS;
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
use tokio::sync::mpsc;

/// Requests are served on this prefix; appends go to the yardstick stream's subjects.
const REQUEST_PREFIX: &str = "bench.bare.req";
const APPEND_PREFIX: &str = "bench.raw.bare";
/// Worker tasks of the responder, each owning the orders that hash to it (as the engine's
/// partition tasks do): one awaited append at a time per worker.
const WORKERS: usize = 256;
/// Requests queued per worker.
const WORKER_QUEUE_MAX: usize = 1024;
/// Longest wait for one reply (a lost one is counted, never waited on forever).
const REPLY_WAIT: Duration = Duration::from_secs(10);

pub struct Bare {
    pub commands: u64,
    pub per_s: f64,
    /// Requests that got no reply or a failed append.
    pub errors: u64,
}

/// `orders` lifecycles (6 commands each) from `concurrency` sequential request clients over
/// [`CLIENT_CONNECTIONS`] connections to one responder on its own connection.
pub async fn run(url: &str, orders: usize, concurrency: usize) -> anyhow::Result<Bare> {
    let responder = paystate_service::connect(url, "paystate-bench-bare-responder")
        .await
        .map_err(anyhow::Error::msg)?;
    let js = jetstream::new(responder.clone());
    js.get_stream(RAW_STREAM)
        .await
        .context("the yardstick stream (row 1 creates it)")?;
    let errors = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let (tx, rx) = mpsc::channel(WORKER_QUEUE_MAX);
        senders.push(tx);
        tokio::spawn(worker(rx, js.clone(), responder.clone(), errors.clone()));
    }
    let mut sub = responder
        .queue_subscribe(format!("{REQUEST_PREFIX}.>"), "bare".to_string())
        .await
        .map_err(|e| anyhow::anyhow!("subscribing: {e}"))?;
    let router = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            msg.subject.as_str().hash(&mut h);
            if senders[(h.finish() % WORKERS as u64) as usize]
                .send(msg)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    responder
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conns = Vec::with_capacity(CLIENT_CONNECTIONS);
    for _ in 0..CLIENT_CONNECTIONS {
        conns.push(
            paystate_service::connect(url, "paystate-bench-bare-client")
                .await
                .map_err(anyhow::Error::msg)?,
        );
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..concurrency.max(1) {
        let (nats, next, errors) = (conns[c % conns.len()].clone(), next.clone(), errors.clone());
        clients.spawn(async move {
            let mut sent = 0u64;
            loop {
                let i = next.fetch_add(1, Relaxed) as usize;
                if i >= orders {
                    return sent;
                }
                let order = order_id("bare", i);
                for env in lifecycle(&order) {
                    let Ok(body) = serde_json::to_vec(&env) else {
                        errors.fetch_add(1, Relaxed);
                        continue;
                    };
                    let request = nats.request(format!("{REQUEST_PREFIX}.{order}"), body.into());
                    match tokio::time::timeout(REPLY_WAIT, request).await {
                        Ok(Ok(reply)) if reply.payload.starts_with(b"{\"seq\"") => {}
                        _ => {
                            errors.fetch_add(1, Relaxed);
                        }
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
    router.abort();
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
    errors: Arc<AtomicU64>,
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
        if answer.starts_with("{\"error\"") {
            errors.fetch_add(1, Relaxed);
        }
        if nats.publish(reply, answer.into()).await.is_err() {
            errors.fetch_add(1, Relaxed);
        }
    }
}
