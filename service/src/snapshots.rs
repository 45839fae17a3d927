//! Snapshots of an order's full state, so a cache miss reads a recent snapshot plus the
//! commits after it instead of the whole order.
//!
//! The engine writes one every [`SNAPSHOT_EVERY_COMMITS`] commits, beside the outcomes (key
//! `<order_id>.=snapshot` of the outcome bucket: `=` never occurs in a command id, and the
//! bucket is the engine's alone). A snapshot holds the full state `decide` needs — including
//! the applied command ids — with the stream sequence of its last commit. Loading reads the
//! order's log from that sequence on (one batched read): the first message must be the
//! snapshot's own commit, hashing to the snapshot's chain head with the same commit number,
//! and every later commit must continue the chain (`apply_commit` checks `prev_hash`).
//! Anything else — no snapshot, an unreadable or oversized one, a mismatch — falls back to
//! reading the whole order, so a snapshot can only ever save work, never change a state.
//!
//! A snapshot too large for a KV value (an order past about 4,000 commits with long command
//! ids) is not written; the order keeps its last snapshot and a longer tail. Snapshots
//! expire with the bucket (`OUTCOME_TTL`): an order idle that long is read whole once.

use crate::outcomes::Outcomes;
use paystate_engine::apply_commit;
use paystate_events::limits::KV_VALUE_BYTES_MAX;
use paystate_events::{OrderId, OrderState};
use paystate_journal::{Journal, LoadedOrder, ReadError};
use serde::{Deserialize, Serialize};

/// The engine snapshots an order after every this many commits.
pub const SNAPSHOT_EVERY_COMMITS: u64 = 100;
/// Version of the stored snapshot format.
const SNAPSHOT_VERSION: u32 = 1;

/// An order's full state right after one of its commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub v: u32,
    /// Stream sequence of the commit the state ends with (`state.commits`, `state.head_hash`).
    pub commit_seq: u64,
    pub state: OrderState,
}

/// The bucket key of an order's snapshot.
pub fn key(order: &OrderId) -> String {
    format!("{order}.=snapshot")
}

/// Why a snapshot was not used (the load then reads the whole order).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot unreadable: {0}")]
    Decode(String),
    #[error("snapshot does not match the log: {0}")]
    Mismatch(String),
    #[error("snapshot of {bytes} bytes exceeds a KV value")]
    TooLarge { bytes: usize },
    #[error("outcome bucket: {0}")]
    Bucket(String),
}

/// Whether the engine snapshots `state` now (after its commit).
pub fn due(state: &OrderState) -> bool {
    state.commits.is_multiple_of(SNAPSHOT_EVERY_COMMITS)
}

/// Stores `state` (right after the commit at `commit_seq`) as the order's snapshot.
pub async fn put(
    outcomes: &Outcomes,
    commit_seq: u64,
    state: &OrderState,
) -> Result<(), SnapshotError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        v: u32,
        commit_seq: u64,
        state: &'a OrderState,
    }
    let bytes = serde_json::to_vec(&Borrowed {
        v: SNAPSHOT_VERSION,
        commit_seq,
        state,
    })
    .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if bytes.len() > KV_VALUE_BYTES_MAX {
        return Err(SnapshotError::TooLarge { bytes: bytes.len() });
    }
    outcomes
        .put_raw(key(&state.order_id), bytes)
        .await
        .map_err(SnapshotError::Bucket)
}

/// The order from its snapshot plus the commits after it, or read whole when there is no
/// usable snapshot. Errors are the log's (a snapshot problem only costs the whole read).
pub async fn load(
    journal: &Journal,
    outcomes: &Outcomes,
    order: &OrderId,
) -> Result<LoadedOrder, ReadError> {
    match from_snapshot(journal, outcomes, order).await {
        Ok(Some(loaded)) => return Ok(loaded),
        Ok(None) => {}
        Err(Load::Log(e)) => return Err(e),
        Err(Load::Snapshot(e)) => {
            tracing::warn!(%order, error = %e, "snapshot not used; reading the whole order");
        }
    }
    journal.load(order).await
}

enum Load {
    Log(ReadError),
    Snapshot(SnapshotError),
}

async fn from_snapshot(
    journal: &Journal,
    outcomes: &Outcomes,
    order: &OrderId,
) -> Result<Option<LoadedOrder>, Load> {
    let bytes = match outcomes.get_raw(&key(order)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Load::Snapshot(SnapshotError::Bucket(e))),
    };
    let snap: Snapshot = serde_json::from_slice(&bytes)
        .map_err(|e| Load::Snapshot(SnapshotError::Decode(e.to_string())))?;
    let mismatch = |detail: String| Load::Snapshot(SnapshotError::Mismatch(detail));
    if snap.v != SNAPSHOT_VERSION || snap.state.order_id != *order {
        return Err(mismatch(format!("version {} or order", snap.v)));
    }
    let tail = journal
        .read_order_tail(order, snap.commit_seq)
        .await
        .map_err(Load::Log)?;
    let mut commits = tail.commits.into_iter();
    match commits.next() {
        Some(c)
            if c.sequence == snap.commit_seq
                && c.hash == snap.state.head_hash
                && c.commit.commit == snap.state.commits => {}
        other => {
            return Err(mismatch(format!(
                "commit at sequence {} is {:?}, not commit {} hashing to {}",
                snap.commit_seq,
                other.map(|c| (c.sequence, c.commit.commit, c.hash)),
                snap.state.commits,
                snap.state.head_hash
            )))
        }
    }
    let mut state = snap.state;
    for c in commits {
        state = apply_commit(Some(state), &c.commit, &c.hash).map_err(|e| {
            Load::Log(ReadError::Corrupt {
                order: order.to_string(),
                sequence: c.sequence,
                detail: e.to_string(),
            })
        })?;
    }
    Ok(Some(LoadedOrder {
        state: Some(state),
        last_seq: tail.last_seq,
    }))
}
