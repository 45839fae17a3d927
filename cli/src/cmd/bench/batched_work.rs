//! Row 2 "batched, with paystate's work" (ceiling of a batching protocol): the batched bare
//! path ([`super::bare::Shape::Batched`]) with every step of paystate's own per-command work
//! added, so the question "would several commands per request reach 0.5× of the raw append?"
//! is answered by a measurement rather than by adding up rows.
//!
//! Each client connection gathers the commands waiting on it into one request (at most
//! [`BATCH_COMMANDS_MAX`]); the responder parses and checks each one as the engine does
//! (`parse_command`), fingerprints it, decides it on its cached order, encodes and hashes the
//! commit, sends it to the engine's own log stream (`Journal::send`: the order's expected last
//! sequence, a message id, the chain headers), then awaits every acknowledgement, folds each
//! commit, checks the invariants and encodes each outcome (the state view included) into one
//! reply; the client decodes every outcome. What it leaves out of the engine: the outcome of a
//! retry answered from the log, conflicts and retries, the cache's bound, counters and spans,
//! the service's statistics. So it errs high: a batching engine would not be faster than this.
//!
//! Row 2 "one request each, work batched" ([`micro_worker`]): the same work with today's
//! protocol, one request per command, the responder taking every request waiting for it and
//! deciding, sending and confirming them together: what a pipelined processor alone would give.
//!
//! Framing (a prototype's, not a protocol): a request is `<subject> <length>\n<command>`
//! repeated, a reply `<length>\n<outcome>` repeated (`0\n`, an empty outcome, for a command
//! that failed).

use super::bare::{spawn_batcher, Batcher, Framing, BATCH_COMMANDS_MAX};
use paystate_engine::{apply_commit, check_invariants, decide, Decision};
use paystate_events::{Command, CommandEnvelope, OrderId, OrderState, Outcome};
use paystate_journal::append::{EncodedCommit, Sent};
use paystate_journal::Journal;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Requests go to `bench.batw.<connection>`.
pub const PREFIX: &str = "bench.batw";

/// The queue subject the engine would parse a command as coming from (its plane by kind).
pub fn subject_of(env: &CommandEnvelope) -> String {
    match env.command {
        Command::ProviderSignal { .. } => format!("paystate.signal.{}", env.order_id),
        _ => format!("paystate.cmd.{}", env.order_id),
    }
}

/// The batch task of client connection `index`: the framed commands one after another,
/// each answered by its outcome, decoded (true: accepted, not as a duplicate).
pub fn batcher(index: usize, nats: &async_nats::Client) -> Batcher {
    let framing = Framing {
        body: |batch| {
            batch
                .iter()
                .map(|(framed, _)| framed.as_slice())
                .collect::<Vec<_>>()
                .concat()
        },
        answers: |reply| {
            Frames(reply)
                .map(|(_, outcome)| {
                    matches!(
                        Outcome::from_json(outcome),
                        Ok(Outcome::Accepted {
                            duplicate: false,
                            ..
                        })
                    )
                })
                .collect()
        },
    };
    spawn_batcher(nats, format!("{PREFIX}.{index}"), framing)
}

/// One command framed for a batch: `<subject> <length>\n<body>`.
pub fn frame(env: &CommandEnvelope) -> Option<Vec<u8>> {
    let body = serde_json::to_vec(env).ok()?;
    let mut framed = format!("{} {}\n", subject_of(env), body.len()).into_bytes();
    framed.extend_from_slice(&body);
    Some(framed)
}

/// Frames `<head> <length>\n<body>` (or `<length>\n<body>`, head empty) until the first
/// malformed one.
struct Frames<'a>(&'a [u8]);

impl<'a> Iterator for Frames<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let nl = self.0.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&self.0[..nl]).ok()?;
        let (head, len) = line.rsplit_once(' ').unwrap_or(("", line));
        let len: usize = len.parse().ok()?;
        let rest = &self.0[nl + 1..];
        let body = rest.get(..len)?;
        self.0 = &rest[len..];
        Some((head, body))
    }
}

/// A command decided and sent, waiting for its acknowledgement.
struct InFlight {
    order: OrderId,
    state: Option<OrderState>,
    encoded: EncodedCommit,
    sent: Sent,
}

/// One batch worker: every command of a request decided and sent, then every
/// acknowledgement awaited and every outcome encoded into one reply in the request's order.
pub async fn worker(
    mut rx: mpsc::Receiver<async_nats::Message>,
    journal: Journal,
    nats: async_nats::Client,
) {
    // Each order's state and its last stream sequence (the OCC expectation).
    let mut orders: HashMap<OrderId, (OrderState, u64)> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let now = chrono::Utc::now();
        let mut in_flight = Vec::with_capacity(BATCH_COMMANDS_MAX);
        for (subject, body) in Frames(&msg.payload) {
            in_flight.push(send(&journal, &mut orders, subject, body, now).await);
        }
        let mut answer = Vec::with_capacity(in_flight.len() * 1024);
        for sent in in_flight {
            let outcome = match sent {
                Some(sent) => settle(&mut orders, sent).await,
                None => None,
            };
            match outcome {
                Some(json) => {
                    answer.extend_from_slice(format!("{}\n", json.len()).as_bytes());
                    answer.extend_from_slice(&json);
                }
                None => answer.extend_from_slice(b"0\n"),
            }
        }
        // A reply not sent is counted by its client (no answer within REPLY_WAIT).
        let _ = nats.publish(reply, answer.into()).await;
    }
}

/// Requests of [`super::bare::Shape::MicroBatched`] go to `bench.batw1.<order>`.
pub const MICRO_PREFIX: &str = "bench.batw1";

/// One command as one request (framed as in a batch); true once its outcome says accepted.
pub async fn micro_request(nats: &async_nats::Client, order: &str, framed: Vec<u8>) -> bool {
    let request = nats.request(format!("{MICRO_PREFIX}.{order}"), framed.into());
    match tokio::time::timeout(super::bare::REPLY_WAIT, request).await {
        Ok(Ok(reply)) => matches!(
            Outcome::from_json(&reply.payload),
            Ok(Outcome::Accepted {
                duplicate: false,
                ..
            })
        ),
        _ => false,
    }
}

/// One micro-batching worker: one request per command as the fast path has, but the worker
/// takes every request waiting for it at once (at most [`BATCH_COMMANDS_MAX`]), decides and
/// sends all their commits, then confirms each and answers each request with its outcome:
/// what a pipelined processor would give without a change of protocol.
pub async fn micro_worker(
    mut rx: mpsc::Receiver<async_nats::Message>,
    journal: Journal,
    nats: async_nats::Client,
) {
    let mut orders: HashMap<OrderId, (OrderState, u64)> = HashMap::new();
    while let Some(batch) = super::bare::gather(&mut rx).await {
        let now = chrono::Utc::now();
        let mut in_flight = Vec::with_capacity(batch.len());
        for msg in &batch {
            let sent = match Frames(&msg.payload).next() {
                Some((subject, body)) => send(&journal, &mut orders, subject, body, now).await,
                None => None,
            };
            in_flight.push(sent);
        }
        for (msg, sent) in batch.into_iter().zip(in_flight) {
            let outcome = match sent {
                Some(sent) => settle(&mut orders, sent).await,
                None => None,
            };
            if let Some(reply) = msg.reply {
                // A reply not sent is counted by its client (no answer within REPLY_WAIT).
                let _ = nats
                    .publish(reply, outcome.unwrap_or_default().into())
                    .await;
            }
        }
    }
}

/// Parses, decides and sends one command; `None` if any step failed.
async fn send(
    journal: &Journal,
    orders: &mut HashMap<OrderId, (OrderState, u64)>,
    subject: &str,
    body: &[u8],
    now: paystate_events::Timestamp,
) -> Option<InFlight> {
    let parsed = paystate_service::parse::parse_command(body, subject).ok()?;
    let fingerprint = parsed.fingerprint();
    let (state, last_seq) = match orders.remove(&parsed.order_id) {
        Some((state, seq)) => (Some(state), seq),
        None => (None, 0),
    };
    let Ok(Decision::Commit(events)) = decide(state.as_ref(), &parsed, now) else {
        return None;
    };
    let order = parsed.order_id.clone();
    let commit = paystate_events::Commit::after(state.as_ref(), parsed, fingerprint, now, events);
    let encoded = EncodedCommit::new(commit);
    let sent = journal.send(&encoded, last_seq).await.ok()?;
    Some(InFlight {
        order,
        state,
        encoded,
        sent,
    })
}

/// Awaits one acknowledgement, folds the commit and encodes the outcome.
async fn settle(
    orders: &mut HashMap<OrderId, (OrderState, u64)>,
    in_flight: InFlight,
) -> Option<Vec<u8>> {
    let InFlight {
        order,
        state,
        encoded,
        sent,
    } = in_flight;
    let appended = sent.confirmed().await.ok()?;
    let after = apply_commit(state, &encoded.commit, &appended.hash).ok()?;
    if !check_invariants(&after).is_empty() {
        return None;
    }
    let commit = &encoded.commit;
    let outcome = paystate_service::processor::outcome_of(&commit.command, commit, &after);
    let json = outcome.to_json().ok();
    orders.insert(order, (after, appended.sequence));
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stop_at_a_malformed_one() {
        let env =
            &paystate_events::samples::lifecycle(&super::super::workload::order_id("f", 1))[0];
        let one = frame(env).expect("framed");
        let two = [one.clone(), one.clone(), b"x 99\nshort".to_vec()].concat();
        let frames: Vec<_> = Frames(&two).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, subject_of(env));
        assert_eq!(
            frames[0].1,
            serde_json::to_vec(env).expect("json").as_slice()
        );
        assert_eq!(Frames(b"0\n").next(), Some(("", &b""[..])));
    }
}
