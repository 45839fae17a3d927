//! Appending one commit with optimistic concurrency.

use crate::Journal;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use paystate_events::subjects::{events_subject, COMMIT_HEADER, HASH_HEADER};
use paystate_events::{Commit, CommitHash};
use std::error::Error as _;

/// JetStream error codes that mean "someone else wrote this order first": wrong last
/// sequence (10071), and since 2.11 a second in-flight write to the subject (10163, 10164).
const CONFLICT_CODES: [u64; 3] = [10071, 10163, 10164];

/// A commit that is in the log.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Its stream sequence (the order's new last subject sequence).
    pub sequence: u64,
    /// SHA-256 of its bytes.
    pub hash: String,
    /// The broker already had a message with this id (a retry of our own write).
    pub duplicate: bool,
}

/// Why a commit was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The order changed since it was loaded: re-load and re-decide.
    #[error("conflict: order changed since it was read")]
    Conflict,
    /// The broker did not confirm: the commit may or may not be in the log. Re-load (the
    /// order's applied command ids tell) before anything else.
    #[error("append not confirmed: {0}")]
    Unconfirmed(String),
}

/// A commit with its bytes and hash, encoded once: the bytes folded are the bytes stored.
#[derive(Debug, Clone)]
pub struct EncodedCommit {
    pub commit: Commit,
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl EncodedCommit {
    pub fn new(commit: Commit) -> EncodedCommit {
        let bytes = commit.encode();
        let hash = CommitHash::of(&bytes).0;
        EncodedCommit {
            commit,
            bytes,
            hash,
        }
    }
}

/// A commit sent to the log, its acknowledgement still to come ([`Journal::send`]): several
/// commits of different orders can be in flight from one task, each confirmed on its own.
pub struct Sent {
    ack: async_nats::jetstream::context::PublishAckFuture,
    hash: String,
}

impl Sent {
    /// The broker's answer: in the log, a conflict, or not confirmed.
    pub async fn confirmed(self) -> Result<Appended, AppendError> {
        match self.ack.await {
            Ok(ack) => Ok(Appended {
                sequence: ack.sequence,
                hash: self.hash,
                duplicate: ack.duplicate,
            }),
            Err(e) if is_conflict(&e) => Err(AppendError::Conflict),
            Err(e) => Err(AppendError::Unconfirmed(e.to_string())),
        }
    }
}

impl Journal {
    /// Appends the commit to its order's subject if the subject's last stream sequence is
    /// still `expected_last_seq` (0: the order has no commit yet).
    pub async fn append(
        &self,
        encoded: &EncodedCommit,
        expected_last_seq: u64,
    ) -> Result<Appended, AppendError> {
        self.send(encoded, expected_last_seq)
            .await?
            .confirmed()
            .await
    }

    /// Sends the commit as [`Journal::append`] does without waiting for the broker's answer;
    /// [`Sent::confirmed`] waits for it.
    pub async fn send(
        &self,
        encoded: &EncodedCommit,
        expected_last_seq: u64,
    ) -> Result<Sent, AppendError> {
        let (commit, hash) = (&encoded.commit, encoded.hash.clone());
        let mut headers = HeaderMap::new();
        headers.insert(HASH_HEADER, hash.as_str());
        headers.insert(COMMIT_HEADER, commit.commit.to_string().as_str());
        let msg_id = format!("{}:{}", commit.order_id, commit.command.command_id);
        let publish = PublishMessage::build()
            .payload(encoded.bytes.clone().into())
            .headers(headers)
            .message_id(msg_id)
            .expected_last_subject_sequence(expected_last_seq);
        let subject = events_subject(&commit.order_id);
        match self.js.send_publish(subject, publish).await {
            Ok(ack) => Ok(Sent { ack, hash }),
            Err(e) if is_conflict(&e) => Err(AppendError::Conflict),
            Err(e) => Err(AppendError::Unconfirmed(e.to_string())),
        }
    }
}

fn is_conflict(e: &async_nats::jetstream::context::PublishError) -> bool {
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    e.source()
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|js| CONFLICT_CODES.contains(&js.error_code().0))
}
