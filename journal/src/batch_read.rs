//! Reading many messages of one subject in a few requests: JetStream's batched direct get
//! (ADR-31, nats-server 2.11+): one request `{"seq", "next_by_subj", "batch", "max_bytes"}`
//! to `$JS.API.DIRECT.GET.<stream>` answers with up to `batch` messages and then an empty
//! `204 EOB` status message (or a `404` when nothing matches).
//!
//! Direct gets may be answered by any replica of the stream, which can lag the leader; the
//! caller compares what a batch returned with the leader's last sequence of the subject and
//! reads anything missing from the leader ([`crate::read`]).

use async_nats::jetstream::message::StreamMessage;
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;

/// The JetStream API prefix paystate uses (no domains).
const JS_API_PREFIX: &str = "$JS.API";
/// Most messages asked for in one batch request.
pub const DIRECT_BATCH_MAX: usize = 1024;
/// Most bytes asked for in one batch request (a few full-size commits, many small ones).
pub const DIRECT_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Longest wait for the next message of a batch.
const DIRECT_BATCH_WAIT: Duration = Duration::from_secs(5);
/// `Status` of the message that ends a batch.
const STATUS_END_OF_BATCH: u16 = 204;
const STATUS_NOT_FOUND: u16 = 404;

#[derive(Serialize)]
struct BatchRequest<'a> {
    seq: u64,
    next_by_subj: &'a str,
    batch: usize,
    max_bytes: usize,
}

/// One page of a batched read.
pub(crate) struct Page {
    pub messages: Vec<StreamMessage>,
    /// The server said nothing more matched after this page (`Nats-Num-Pending: 0` on the
    /// end-of-batch message, or nothing found at all).
    pub complete: bool,
}

/// Why a batched read failed (the caller falls back to reading one message at a time).
#[derive(Debug, thiserror::Error)]
pub enum BatchReadError {
    #[error("direct get request: {0}")]
    Request(String),
    #[error("direct get: no answer within {0:?}")]
    Timeout(Duration),
    #[error("direct get answered status {status}: {description}")]
    Status { status: u16, description: String },
    #[error("direct get message without its stream headers: {0}")]
    Headers(String),
    #[error("direct get batch ended without its end-of-batch message")]
    Truncated,
}

/// The messages of `subject` in `stream` from sequence `from_seq` on, at most `batch` of them.
pub(crate) async fn page(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    from_seq: u64,
    batch: usize,
) -> Result<Page, BatchReadError> {
    let request = BatchRequest {
        seq: from_seq.max(1),
        next_by_subj: subject,
        batch: batch.clamp(1, DIRECT_BATCH_MAX),
        max_bytes: DIRECT_BATCH_BYTES_MAX,
    };
    let body = serde_json::to_vec(&request).map_err(|e| BatchReadError::Request(e.to_string()))?;
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| BatchReadError::Request(e.to_string()))?;
    client
        .publish_with_reply(
            format!("{JS_API_PREFIX}.DIRECT.GET.{stream}"),
            inbox,
            body.into(),
        )
        .await
        .map_err(|e| BatchReadError::Request(e.to_string()))?;
    let mut messages = Vec::new();
    // Why +1: the batch's messages, then its end-of-batch message.
    for _ in 0..=request.batch {
        let msg = match tokio::time::timeout(DIRECT_BATCH_WAIT, replies.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(BatchReadError::Truncated),
            Err(_) => return Err(BatchReadError::Timeout(DIRECT_BATCH_WAIT)),
        };
        match msg.status.map(|s| s.as_u16()) {
            None => messages.push(
                StreamMessage::try_from(msg).map_err(|e| BatchReadError::Headers(e.to_string()))?,
            ),
            Some(STATUS_END_OF_BATCH) => {
                let pending = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Num-Pending"))
                    .and_then(|v| v.as_str().parse::<u64>().ok());
                return Ok(Page {
                    messages,
                    complete: pending == Some(0),
                });
            }
            Some(STATUS_NOT_FOUND) if messages.is_empty() => {
                return Ok(Page {
                    messages,
                    complete: true,
                })
            }
            Some(status) => {
                return Err(BatchReadError::Status {
                    status,
                    description: msg.description.unwrap_or_default(),
                })
            }
        }
    }
    Err(BatchReadError::Truncated)
}
