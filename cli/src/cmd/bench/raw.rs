//! Row 1, the physical yardstick: pipelined JetStream publishes of real commit bodies, with
//! the same headers the journal writes (hash, commit number, message id and the per-subject
//! expected-sequence check), across many subjects. This is what hand-written code on
//! JetStream could reach at best for the same bytes.

use super::workload::{lifecycle_commits, order_id, LIFECYCLE_COMMANDS};
use anyhow::Context;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use async_nats::HeaderMap;
use futures::stream::{FuturesUnordered, StreamExt};
use paystate_events::subjects::{COMMIT_HEADER, HASH_HEADER};
use std::time::Instant;

/// Stream the yardstick writes to (beside paystate's own streams, same storage).
pub const RAW_STREAM: &str = "BENCH_RAW";
const RAW_PREFIX: &str = "bench.raw";
/// Publishes in flight at once (the pipeline depth).
const WINDOW: usize = 512;

/// What a raw append run measured.
pub struct RawAppend {
    pub messages: u64,
    pub bytes_per_message: usize,
    pub per_s: f64,
    /// Publishes the broker refused (expected none).
    pub errors: u64,
}

/// Publishes `messages` commit bodies over `messages / 6` subjects, `WINDOW` in flight.
pub async fn append(client: async_nats::Client, messages: usize) -> anyhow::Result<RawAppend> {
    let js = jetstream::new(client);
    let _ = js.delete_stream(RAW_STREAM).await; // a previous run's data (none on a fresh server)
    js.create_stream(stream::Config {
        name: RAW_STREAM.into(),
        subjects: vec![format!("{RAW_PREFIX}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the yardstick stream")?;
    let template = lifecycle_commits(&order_id("raw", 0));
    let subjects = (messages / LIFECYCLE_COMMANDS).max(1);
    let mut last_seq = vec![0u64; subjects];
    let mut in_flight = vec![false; subjects];
    let mut pending = FuturesUnordered::new();
    let (mut errors, mut bytes) = (0u64, 0usize);
    let started = Instant::now();
    for k in 0..messages {
        let (subject, round) = (k % subjects, k / subjects);
        while pending.len() >= WINDOW || in_flight[subject] {
            let Some((s, result)) = pending.next().await else {
                break;
            };
            settle(&mut last_seq, &mut in_flight, &mut errors, s, result);
        }
        let (body, hash) = &template[round % template.len()];
        bytes += body.len();
        let publish = message(body, hash, subject, round, last_seq[subject]);
        let ack = js
            .send_publish(format!("{RAW_PREFIX}.{subject}"), publish)
            .await
            .context("publishing")?;
        in_flight[subject] = true;
        pending.push(wait(subject, ack));
    }
    while let Some((s, result)) = pending.next().await {
        settle(&mut last_seq, &mut in_flight, &mut errors, s, result);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(RawAppend {
        messages: messages as u64,
        bytes_per_message: bytes / messages.max(1),
        per_s: messages as f64 / elapsed,
        errors,
    })
}

async fn wait(subject: usize, ack: PublishAckFuture) -> (usize, Option<u64>) {
    (subject, ack.await.ok().map(|a| a.sequence))
}

fn settle(
    last_seq: &mut [u64],
    in_flight: &mut [bool],
    errors: &mut u64,
    subject: usize,
    result: Option<u64>,
) {
    in_flight[subject] = false;
    match result {
        Some(seq) => last_seq[subject] = seq,
        None => *errors += 1,
    }
}

/// One message as the journal writes it: body, hash and commit headers, message id and the
/// optimistic-concurrency check.
fn message(body: &[u8], hash: &str, subject: usize, round: usize, expected: u64) -> PublishMessage {
    let mut headers = HeaderMap::new();
    headers.insert(HASH_HEADER, hash);
    headers.insert(COMMIT_HEADER, (round + 1).to_string().as_str());
    PublishMessage::build()
        .payload(body.to_vec().into())
        .headers(headers)
        .message_id(format!("raw-{subject}:{round}"))
        .expected_last_subject_sequence(expected)
}
