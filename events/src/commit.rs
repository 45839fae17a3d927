//! A commit: everything one decision appended to an order's log, as one JetStream message.
//!
//! Each commit names the command that caused it (in full, so audits can re-decide it), the
//! time the engine decided it, the events, its number within the order and the hash of the
//! order's previous commit. The commit's own hash is the SHA-256 of its exact bytes and
//! travels in the `Paystate-Commit-Hash` header; the next commit repeats it as `prev_hash`.
//! An edited, reordered or missing commit therefore breaks the chain.
//!
//! Versioning: `v` is the commit schema version. Readers decode every version they know
//! ([`Commit::decode`]) and upcast old shapes to the current types; writers write the
//! current one.

use crate::{CommandEnvelope, Event, OrderId, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The commit schema version this build writes.
pub const COMMIT_SCHEMA_VERSION: u16 = 1;
/// `prev_hash` of an order's first commit.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One atomic append to an order's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Commit {
    /// Commit schema version.
    pub v: u16,
    pub order_id: OrderId,
    /// 1 for the order's first commit, then +1 each: gaps mean missing history.
    pub commit: u64,
    /// Hash of the order's previous commit ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// When the engine decided: the broker's receive time of the command, never a local clock.
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub decided_at: Timestamp,
    /// Fingerprint of the command (see `CommandEnvelope::fingerprint`).
    pub fingerprint: String,
    /// The command that caused this commit, as received.
    pub command: CommandEnvelope,
    /// The events the decision produced, in order; never empty.
    pub events: Vec<Event>,
}

impl Commit {
    /// The commit that follows `state` (the order's first when there is none): the next
    /// number, the previous commit's hash ([`GENESIS_HASH`] first), this schema version.
    pub fn after(
        state: Option<&crate::OrderState>,
        command: CommandEnvelope,
        fingerprint: String,
        decided_at: Timestamp,
        events: Vec<Event>,
    ) -> Commit {
        let (commits, prev_hash) = match state {
            Some(s) => (s.commits, s.head_hash.clone()),
            None => (0, GENESIS_HASH.to_string()),
        };
        Commit {
            v: COMMIT_SCHEMA_VERSION,
            order_id: command.order_id.clone(),
            commit: commits + 1,
            prev_hash,
            decided_at,
            fingerprint,
            command,
            events,
        }
    }
}

/// Why bytes could not be read as a commit.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("commit is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "commit schema version {0} is newer than this build understands ({COMMIT_SCHEMA_VERSION})"
    )]
    UnknownVersion(u64),
    #[error("commit has no schema version")]
    NoVersion,
}

impl Commit {
    /// Reads a commit of any known schema version, upcasting old versions.
    pub fn decode(bytes: &[u8]) -> Result<Commit, DecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: Option<u64>,
        }
        let version: Version = serde_json::from_slice(bytes)?;
        match version.v {
            Some(1) => Ok(serde_json::from_slice(bytes)?),
            Some(v) => Err(DecodeError::UnknownVersion(v)),
            None => Err(DecodeError::NoVersion),
        }
    }

    /// The bytes that are stored and hashed.
    pub fn encode(&self) -> Vec<u8> {
        // Why: serializing our own typed value cannot fail (all map keys are strings).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The hash of a commit's bytes, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitHash(pub String);

impl CommitHash {
    pub fn of(bytes: &[u8]) -> CommitHash {
        CommitHash(sha256_hex(bytes))
    }
}

/// SHA-256 of `bytes` as lowercase hex. Why not `hex::encode`: it builds the string one
/// `char` at a time, which showed in an audit's profile (every commit is hashed, and its
/// command fingerprinted); `encode_to_slice` is a table lookup into a fixed buffer.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    // Why no error is possible: 32 digest bytes are exactly 64 hex digits, all ASCII.
    let _ = hex::encode_to_slice(Sha256::digest(bytes), &mut out);
    std::str::from_utf8(&out).unwrap_or_default().to_string()
}
