//! Probe for docs/benchmarks.md (issue 15, fourteenth pass): CPU per appended message, this
//! process and the nats-server together, of pipelined single appends (the yardstick's shape:
//! 580-byte body, message id, expected-last-subject-sequence check, 512 in flight) against
//! JetStream atomic batches of the same appends (nats-server 2.12+, `allow_atomic`; each
//! message keeps its id and check; the commit's ack gives every message's sequence, as a
//! batch is stored contiguously; up to 8 batches in flight).
//!
//! ```text
//! cargo run --release -p paystate --example batch_probe -- URL SERVER_PID raw|atomic MESSAGES [BATCH]
//! ```

use anyhow::{bail, Context};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{Client, HeaderMap, Message};
use futures::stream::{FuturesUnordered, StreamExt};
use paystate_broker::cpu_seconds as cpu_s;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// Subjects per message count: six appends per subject, as the yardstick's lifecycles.
const PER_SUBJECT: usize = 6;
const BODY_BYTES: usize = 580;
const SINGLE_WINDOW: usize = 512;
const BATCHES_IN_FLIGHT: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, pid, mode, messages, rest @ ..] = args.as_slice() else {
        bail!("usage: batch_probe URL SERVER_PID raw|atomic MESSAGES [BATCH]");
    };
    if !matches!(mode.as_str(), "raw" | "atomic") {
        bail!("mode {mode:?}: raw or atomic");
    }
    let messages: usize = messages.parse().context("MESSAGES")?;
    if messages == 0 {
        bail!("MESSAGES: at least 1");
    }
    let batch: usize = rest
        .first()
        .map_or(Ok(64), |b| b.parse())
        .context("BATCH")?;
    let client = async_nats::connect(url.as_str()).await?;
    let js = jetstream::new(client.clone());
    let name = format!("PROBE_{}", mode.to_uppercase());
    let _ = js.delete_stream(&name).await; // an earlier probe's
    js.create_stream(stream::Config {
        name,
        subjects: vec![format!("probe.{mode}.>")],
        storage: stream::StorageType::File,
        allow_atomic_publish: mode == "atomic",
        ..Default::default()
    })
    .await?;
    let mut log = Subjects::new((messages / PER_SUBJECT).max(1));
    let (own0, server0, started) = (cpu_s("self"), cpu_s(pid), Instant::now());
    if mode == "raw" {
        singles(&js, &mut log, messages).await?;
    } else {
        batches(&client, &mut log, messages, batch.max(1)).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (own, server) = (cpu_s("self") - own0, cpu_s(pid) - server0);
    let per = |s: f64| s * 1e6 / messages as f64;
    println!(
        "{mode} batch={batch} messages={messages}: {:.0} msg/s, CPU {:.1} µs/msg \
         (process {:.1}, server {:.1}), refused {}",
        messages as f64 / elapsed,
        per(own + server),
        per(own),
        per(server),
        log.refused
    );
    Ok(())
}

/// Each subject's last stored sequence and whether an append to it is in flight.
struct Subjects {
    last: Vec<u64>,
    busy: Vec<bool>,
    refused: u64,
}

impl Subjects {
    fn new(n: usize) -> Subjects {
        Subjects {
            last: vec![0; n],
            busy: vec![false; n],
            refused: 0,
        }
    }

    /// Message `k`: its subject and its round on that subject.
    fn place(&self, k: usize) -> (usize, usize) {
        (k % self.last.len(), k / self.last.len())
    }

    fn settle(&mut self, subject: usize, seq: Option<u64>) {
        self.busy[subject] = false;
        match seq {
            Some(seq) => self.last[subject] = seq,
            None => self.refused += 1,
        }
    }
}

fn headers(subject: usize, round: usize, expected: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", format!("p-{subject}:{round}").as_str());
    h.insert(
        "Nats-Expected-Last-Subject-Sequence",
        expected.to_string().as_str(),
    );
    h
}

async fn singles(
    js: &jetstream::Context,
    log: &mut Subjects,
    messages: usize,
) -> anyhow::Result<()> {
    let mut pending = FuturesUnordered::new();
    for k in 0..messages {
        let (subject, round) = log.place(k);
        while pending.len() >= SINGLE_WINDOW || log.busy[subject] {
            let Some((s, seq)) = pending.next().await else {
                break;
            };
            log.settle(s, seq);
        }
        let message = PublishMessage::build()
            .payload(vec![b'x'; BODY_BYTES].into())
            .headers(headers(subject, round, log.last[subject]));
        let ack = js
            .send_publish(format!("probe.raw.{subject}"), message)
            .await?;
        log.busy[subject] = true;
        pending.push(async move { (subject, ack.await.ok().map(|a| a.sequence)) });
    }
    while let Some((s, seq)) = pending.next().await {
        log.settle(s, seq);
    }
    Ok(())
}

/// A batch's commit answer: (sequence of its last message, messages stored), `None` if refused.
type Committed = Option<(u64, u64)>;
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Message>>>>;

async fn batches(
    client: &Client,
    log: &mut Subjects,
    messages: usize,
    batch: usize,
) -> anyhow::Result<()> {
    // One subscription for every commit's answer (a subscription per batch costs the server
    // more than the batch itself).
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.*")).await?;
    let waiters: Waiters = Arc::default();
    let routed = waiters.clone();
    tokio::spawn(async move {
        while let Some(m) = answers.next().await {
            let waiter = routed
                .lock()
                .ok()
                .and_then(|mut w| w.remove(m.subject.as_str()));
            if let Some(tx) = waiter {
                let _ = tx.send(m);
            }
        }
    });
    let mut pending = FuturesUnordered::new();
    let mut k = 0;
    while k < messages {
        let members: Vec<(usize, usize)> =
            (k..messages.min(k + batch)).map(|i| log.place(i)).collect();
        while pending.len() >= BATCHES_IN_FLIGHT || members.iter().any(|(s, _)| log.busy[*s]) {
            let Some((subjects, committed)): Option<(Vec<usize>, Committed)> = pending.next().await
            else {
                break;
            };
            settle_batch(log, &subjects, committed);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let reply = format!("{inbox}.{k}");
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = waiters.lock() {
            w.insert(reply.clone(), tx);
        }
        for (i, &(subject, round)) in members.iter().enumerate() {
            let mut h = headers(subject, round, log.last[subject]);
            h.insert("Nats-Batch-Id", id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            let to = format!("probe.atomic.{subject}");
            let body = vec![b'x'; BODY_BYTES].into();
            if i + 1 == members.len() {
                h.insert("Nats-Batch-Commit", "1");
                client
                    .publish_with_reply_and_headers(to, reply.clone(), h, body)
                    .await?;
            } else {
                client.publish_with_headers(to, h, body).await?;
            }
            log.busy[subject] = true;
        }
        k += members.len();
        let subjects: Vec<usize> = members.iter().map(|(s, _)| *s).collect();
        pending.push(async move { (subjects, committed(rx.await.ok())) });
    }
    while let Some((subjects, committed)) = pending.next().await {
        settle_batch(log, &subjects, committed);
    }
    Ok(())
}

fn committed(answer: Option<Message>) -> Committed {
    let answer: serde_json::Value = serde_json::from_slice(&answer?.payload).ok()?;
    let seq = answer.get("seq")?.as_u64()?;
    let count = answer.get("count")?.as_u64()?;
    Some((seq, count))
}

fn settle_batch(log: &mut Subjects, subjects: &[usize], committed: Committed) {
    for (i, &subject) in subjects.iter().enumerate() {
        log.busy[subject] = false;
        if let Some((last, count)) = committed {
            log.last[subject] = last + 1 + i as u64 - count;
        }
    }
    if committed.is_none() {
        log.refused += 1;
    }
}
