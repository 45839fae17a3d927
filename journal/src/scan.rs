//! Reading the whole log in stream order: what projection rebuilds, audits, exports and
//! benchmarks read. Messages come back raw (bytes, headers, sequence): a caller that audits
//! the log decides for itself what an unreadable message means.
//!
//! A scan is a snapshot: it stops at the stream's last sequence as of when it was opened, so
//! a live log does not keep it running. Deleted messages leave gaps in the sequence numbers,
//! which the caller sees (the consumer skips them).
//!
//! It reads an ephemeral consumer without acks through [`crate::pull::Puller`] (not
//! async-nats's ordered consumer, whose pull accounting can stall a read; see that module),
//! with the ordered consumer's guarantee: a message lost between the server and this reader
//! shows as a gap in the consumer's sequence, and the scan then starts a new consumer at the
//! first stream sequence it has not read (a bounded number of times).

use crate::pull::{
    open_ordered, OrderedPosition, PullError, PullSize, Puller, PULL_BYTES_MAX,
    SCAN_CONSUMER_INACTIVE,
};
use crate::read::{to_chrono, ReadError, StoredCommit};
use crate::Journal;
use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use paystate_events::subjects::{order_token, EVENTS_PREFIX, HASH_HEADER};
use paystate_events::{Commit, CommitHash, OrderId, Timestamp};
use std::time::Duration;

/// Longest wait for the next message before a scan gives up (the server stopped answering).
pub const SCAN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages asked for per pull request (and at most [`PULL_BYTES_MAX`] bytes).
/// Why this many: the raw read of 1.19 M commits took 5.0–5.3 s asking for 500 at a time, 4.8–5.1
/// s for 1,000, 4.5–4.7 s for 2,000, 4.1–4.3 s for 4,000, 4.1 s for 8,000 and 4.0 s for 16,000
/// (`bench-read --events 1200000`, alternating, docs/benchmarks.md fifteenth pass); the audit,
/// bound by CPU, took the same time with each.
const SCAN_BATCH: usize = 4000;
/// Consumers a scan may start after its first (a message lost on the way, a consumer the
/// server dropped) before it gives up.
const SCAN_RESTARTS_MAX: u32 = 5;

// Idle heartbeats must come well within the idle bound, or a quiet wait reads as dead.
const _: () = assert!(crate::pull::PULL_HEARTBEAT.as_nanos() * 2 < SCAN_IDLE_TIMEOUT.as_nanos());

/// One message of the log as stored, undecoded.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub sequence: u64,
    /// As the broker sent it (no copy per message on a long read).
    pub subject: async_nats::Subject,
    /// The broker's store time.
    pub time: Timestamp,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
}

/// The `Paystate-Commit-Hash` header of a message as written (`None` if absent).
pub fn hash_header(headers: &HeaderMap) -> Option<&str> {
    // Why a scan of the two or three headers instead of `HeaderMap::get`: `get` turns the
    // name into a `HeaderName` (validation, a compare against every standard header, an
    // allocation) on every call, a visible share of an audit's time per commit.
    let (_, values) = headers
        .iter()
        .find(|(name, _)| AsRef::<str>::as_ref(*name) == HASH_HEADER)?;
    values.first().map(|v| v.as_str())
}

impl RawEntry {
    /// The hash header as written (`None` if absent).
    pub fn header_hash(&self) -> Option<&str> {
        hash_header(self.headers.as_ref()?)
    }

    /// Whether this is a stray, not written by paystate ([`crate::read::is_stray`]).
    pub fn is_stray(&self) -> bool {
        crate::read::is_stray(self.headers.as_ref(), &self.payload)
    }

    /// The order named by the subject, if the subject is a well-formed order subject.
    pub fn subject_order(&self) -> Option<&str> {
        order_token(&self.subject)
    }

    /// Decodes the commit, checking the hash header against the body (as `read` does).
    pub fn decode(&self) -> Result<StoredCommit, ReadError> {
        let order = self.subject_order().unwrap_or("?").to_string();
        let corrupt = |detail: String| ReadError::Corrupt {
            order: order.clone(),
            sequence: self.sequence,
            detail,
        };
        let commit = decode_commit(&self.payload).map_err(|e| corrupt(e.to_string()))?;
        let hash = CommitHash::of(&self.payload).0;
        let header_hash = self.header_hash().map(str::to_string);
        if header_hash.as_deref() != Some(hash.as_str()) {
            return Err(corrupt(format!(
                "hash header {header_hash:?} does not match the body's hash {hash}"
            )));
        }
        Ok(StoredCommit {
            sequence: self.sequence,
            subject: self.subject.to_string(),
            time: self.time,
            hash,
            header_hash,
            commit,
        })
    }
}

/// [`Commit::decode`] in one pass for the current schema version as this build writes it (the
/// common case on a long read), falling back to it for anything else so old versions upcast
/// and errors read the same.
pub fn decode_commit(bytes: &[u8]) -> Result<Commit, paystate_events::commit::DecodeError> {
    // Why through `&str`: the body is checked as UTF-8 once, in one fast pass, instead of
    // serde_json checking every string of it on its own (visible in an audit's profile).
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Commit::decode(bytes); // not UTF-8: the same error as ever
    };
    // Why the one-pass decoder first: it reads a commit as this build writes it without
    // serde's buffering of tagged enums (most of the decode cost); it answers only what serde
    // would answer, and anything else falls back to serde for the same value or error.
    if let Ok(c) = paystate_events::fast_decode::decode_commit(text) {
        return Ok(c);
    }
    match serde_json::from_str::<Commit>(text) {
        Ok(c) if c.v == paystate_events::COMMIT_SCHEMA_VERSION => Ok(c),
        _ => Commit::decode(bytes),
    }
}

/// Where a scan starts and which subjects it reads.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// First stream sequence to read (0 or 1: from the start).
    pub from_seq: u64,
    /// Only this order's subject (default: every order).
    pub order: Option<OrderId>,
    /// Last stream sequence to read (default: the stream's last when the scan is opened). A
    /// scan repeated over the same snapshot (an audit in several passes) ends where the
    /// first one did, whatever was written since.
    pub until_seq: Option<u64>,
}

/// An open scan over the log (see the module docs).
pub struct LogScan {
    source: Option<Source>,
    /// The stream's last sequence when the scan was opened: the scan ends there.
    pub end_seq: u64,
    /// The stream's first sequence when the scan was opened.
    pub first_seq: u64,
    /// Messages in the stream when the scan was opened.
    pub messages_total: u64,
    /// Subjects in the stream when the scan was opened: the orders, on the log.
    pub subjects_total: u64,
    done: bool,
}

/// Where a scan's messages come from, and how to start over after a lost message.
struct Source {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    filter_subject: String,
    puller: Puller,
    position: OrderedPosition,
    restarts: u32,
}

impl Journal {
    /// Opens a scan of the log in stream order, up to its current last sequence.
    pub async fn scan(&self, opts: ScanOptions) -> Result<LogScan, ReadError> {
        let info = self
            .stream()
            .get_info()
            .await
            .map_err(|e| ReadError::Broker(e.to_string()))?;
        let (first_seq, last_seq, total) = (
            info.state.first_sequence,
            info.state.last_sequence,
            info.state.messages,
        );
        let end_seq = opts.until_seq.map_or(last_seq, |until| until.min(last_seq));
        let subjects_total = info.state.subjects_count;
        let start = opts.from_seq.max(1);
        if total == 0 || start > end_seq {
            return Ok(LogScan {
                source: None,
                end_seq,
                first_seq,
                messages_total: total,
                subjects_total,
                done: true,
            });
        }
        let filter_subject = match &opts.order {
            Some(o) => paystate_events::subjects::events_subject(o),
            None => format!("{EVENTS_PREFIX}.>"),
        };
        let stream = self.stream().clone();
        let puller = open_consumer(&self.js, &stream, &filter_subject, start).await?;
        Ok(LogScan {
            source: Some(Source {
                js: self.js.clone(),
                stream,
                filter_subject,
                puller,
                position: OrderedPosition::from(start),
                restarts: 0,
            }),
            end_seq,
            first_seq,
            messages_total: total,
            subjects_total,
            done: false,
        })
    }
}

/// A fresh consumer of the log from `start` and its puller.
async fn open_consumer(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    filter_subject: &str,
    start: u64,
) -> Result<Puller, ReadError> {
    let consumer = ("paystate: whole-log scan", SCAN_CONSUMER_INACTIVE);
    let size = PullSize {
        batch: SCAN_BATCH,
        bytes: Some(PULL_BYTES_MAX),
    };
    open_ordered(js, stream, filter_subject, start, consumer, size)
        .await
        .map_err(ReadError::Broker)
}

impl LogScan {
    /// The next message, `None` once the snapshot's end is reached.
    pub async fn next(&mut self) -> Option<Result<RawEntry, ReadError>> {
        loop {
            if self.done {
                return None;
            }
            let source = self.source.as_mut()?;
            let (msg, meta) = match source.puller.next_with_info(SCAN_IDLE_TIMEOUT).await {
                Ok(next) => next,
                Err(PullError::Idle(_)) => {
                    return Some(Err(
                        self.fail(format!("no message for {SCAN_IDLE_TIMEOUT:?}"))
                    ))
                }
                Err(e @ (PullError::Gone(_) | PullError::Closed)) => {
                    if let Err(e) = self.restart(&e.to_string()).await {
                        return Some(Err(e));
                    }
                    continue;
                }
                Err(e) => return Some(Err(self.fail(e.to_string()))),
            };
            let info = match meta {
                Ok(m) => (
                    m.consumer_sequence,
                    m.stream_sequence,
                    m.pending,
                    to_chrono(m.published),
                ),
                Err(e) => {
                    return Some(Err(
                        self.fail(format!("message without JetStream metadata: {e}"))
                    ))
                }
            };
            let (consumer_seq, sequence, pending, time) = info;
            if let Err(why) = source.position.advance(consumer_seq, sequence) {
                if let Err(e) = self.restart(&why).await {
                    return Some(Err(e));
                }
                continue;
            }
            if sequence >= self.end_seq || pending == 0 {
                self.done = true;
            }
            if sequence > self.end_seq {
                // Written after the snapshot: not part of this scan.
                return None;
            }
            return Some(Ok(RawEntry {
                sequence,
                subject: msg.subject,
                time,
                headers: msg.headers,
                payload: msg.payload,
            }));
        }
    }

    /// Starts a new consumer at the first stream sequence not read yet (bounded).
    async fn restart(&mut self, why: &str) -> Result<(), ReadError> {
        let Some(source) = self.source.as_mut() else {
            return Err(self.fail(why.to_string()));
        };
        if source.restarts >= SCAN_RESTARTS_MAX {
            let detail = format!("{why}; gave up after {SCAN_RESTARTS_MAX} new consumers");
            return Err(self.fail(detail));
        }
        source.restarts += 1;
        let from = source.position.next_seq;
        tracing::warn!(reason = %why, from, "log scan: starting a new consumer");
        match open_consumer(&source.js, &source.stream, &source.filter_subject, from).await {
            Ok(puller) => {
                source.puller = puller;
                source.position.new_consumer();
                Ok(())
            }
            Err(e) => Err(self.fail(e.to_string())),
        }
    }

    fn fail(&mut self, detail: String) -> ReadError {
        self.done = true;
        ReadError::Broker(detail)
    }
}
