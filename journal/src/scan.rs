//! Reading the whole log in stream order with an ordered consumer: what projection rebuilds,
//! audits, exports and benchmarks read. Messages come back raw (bytes, headers, sequence):
//! a caller that audits the log decides for itself what an unreadable message means.
//!
//! A scan is a snapshot: it stops at the stream's last sequence as of when it was opened, so
//! a live log does not keep it running. Deleted messages leave gaps in the sequence numbers,
//! which the caller sees (the consumer skips them).

use crate::read::{to_chrono, ReadError, StoredCommit};
use crate::Journal;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use paystate_events::subjects::{order_token, EVENTS_PREFIX, HASH_HEADER};
use paystate_events::{Commit, CommitHash, OrderId, Timestamp};
use std::time::Duration;

/// Longest wait for the next message before a scan gives up (the server stopped answering).
pub const SCAN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One message of the log as stored, undecoded.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub sequence: u64,
    pub subject: String,
    /// The broker's store time.
    pub time: Timestamp,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
}

impl RawEntry {
    /// The hash header as written (`None` if absent).
    pub fn header_hash(&self) -> Option<&str> {
        // Why a scan of the two or three headers instead of `HeaderMap::get`: `get` turns the
        // name into a `HeaderName` (validation, a compare against every standard header, an
        // allocation) on every call, a visible share of an audit's time per commit.
        let headers = self.headers.as_ref()?;
        let (_, values) = headers
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name) == HASH_HEADER)?;
        values.first().map(|v| v.as_str())
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
            subject: self.subject.clone(),
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
}

/// An open scan over the log (see the module docs).
pub struct LogScan {
    messages: Option<Ordered>,
    /// The stream's last sequence when the scan was opened: the scan ends there.
    pub end_seq: u64,
    /// The stream's first sequence when the scan was opened.
    pub first_seq: u64,
    /// Messages in the stream when the scan was opened.
    pub messages_total: u64,
    done: bool,
}

impl Journal {
    /// Opens a scan of the log in stream order, up to its current last sequence.
    pub async fn scan(&self, opts: ScanOptions) -> Result<LogScan, ReadError> {
        let info = self
            .stream()
            .get_info()
            .await
            .map_err(|e| ReadError::Broker(e.to_string()))?;
        let (first_seq, end_seq, total) = (
            info.state.first_sequence,
            info.state.last_sequence,
            info.state.messages,
        );
        let start = opts.from_seq.max(1);
        if total == 0 || start > end_seq {
            return Ok(LogScan {
                messages: None,
                end_seq,
                first_seq,
                messages_total: total,
                done: true,
            });
        }
        let filter_subject = match &opts.order {
            Some(o) => paystate_events::subjects::events_subject(o),
            None => format!("{EVENTS_PREFIX}.>"),
        };
        let config = OrderedConfig {
            filter_subject,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            description: Some("paystate: whole-log scan".into()),
            ..Default::default()
        };
        let consumer = self
            .stream()
            .create_consumer(config)
            .await
            .map_err(|e| ReadError::Broker(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| ReadError::Broker(e.to_string()))?;
        Ok(LogScan {
            messages: Some(messages),
            end_seq,
            first_seq,
            messages_total: total,
            done: false,
        })
    }
}

impl LogScan {
    /// The next message, `None` once the snapshot's end is reached.
    pub async fn next(&mut self) -> Option<Result<RawEntry, ReadError>> {
        if self.done {
            return None;
        }
        let messages = self.messages.as_mut()?;
        let next = match tokio::time::timeout(SCAN_IDLE_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => return Some(Err(self.fail(e.to_string()))),
            Ok(None) => return Some(Err(self.fail("the consumer closed".into()))),
            Err(_) => {
                return Some(Err(
                    self.fail(format!("no message for {SCAN_IDLE_TIMEOUT:?}"))
                ))
            }
        };
        let info = match next.info() {
            Ok(i) => (i.stream_sequence, i.pending, to_chrono(i.published)),
            Err(e) => {
                return Some(Err(
                    self.fail(format!("message without JetStream metadata: {e}"))
                ))
            }
        };
        let (sequence, pending, time) = info;
        if sequence >= self.end_seq || pending == 0 {
            self.done = true;
        }
        if sequence > self.end_seq {
            // Written after the snapshot: not part of this scan.
            return None;
        }
        let msg = next.message;
        Some(Ok(RawEntry {
            sequence,
            subject: msg.subject.to_string(),
            time,
            headers: msg.headers,
            payload: msg.payload,
        }))
    }

    fn fail(&mut self, detail: String) -> ReadError {
        self.done = true;
        ReadError::Broker(detail)
    }
}
