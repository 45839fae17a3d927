//! Where the reconciler starts: from the projection of waiting orders when there is one,
//! else from the start of the log.
//!
//! With a projection: the live projector's ack floor `F` is read first (every commit at or
//! below it is in the records), then the records are scanned for open orders that wait on a
//! provider; each of those is read back from the log (its own commits only) to know its
//! full state and since when it waits (and, likewise, open orders past their `expires_at`,
//! whose expiry may have run out of attempts). The log is followed from `F + 1`; commits
//! already in a loaded order are skipped by their sequence. Orders that start waiting later
//! are read from the log when their commit arrives.

use super::{waiting_on, Tracked};
use crate::reconciler::SETTLES_AFTER_CAPTURE;
use futures::StreamExt;
use paystate_events::{OrderId, OrderState, Status, Timestamp};
use paystate_journal::{Journal, StoredCommit};
use paystate_projection::layout::POINTER_BUCKET;
use paystate_projection::ProjectionStore;
use std::collections::HashMap;

/// Orders read back from the log at once while starting.
const STARTUP_LOADS_IN_FLIGHT_MAX: usize = 16;

/// The start: orders already loaded, and the log sequence to follow from.
pub(crate) struct Start {
    pub tracked: HashMap<OrderId, Loaded>,
    pub follow_from: u64,
}

/// One order read back from the log.
pub(crate) struct Loaded {
    pub state: OrderState,
    /// Stream sequence of its last commit.
    pub seq: u64,
    /// What it waits on, and since when (the commit that made it wait on that).
    pub waiting_on: String,
    pub since: Timestamp,
}

impl Loaded {
    pub fn into_tracked(self, first_probe: impl Fn(&OrderState) -> chrono::Duration) -> Tracked {
        let next_probe = self.since + first_probe(&self.state);
        Tracked {
            state: self.state,
            seq: self.seq,
            waiting_on: self.waiting_on,
            since: self.since,
            next_probe,
            probes: 0,
            flagged: false,
            expiry_flagged: false,
            flag_retry_at: None,
        }
    }
}

/// Why the projection could not be used (the reconciler then folds the whole log).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("no projection")]
    NoProjection,
    #[error("projection: {0}")]
    Projection(#[from] paystate_projection::ProjectionError),
}

/// The waiting orders of the projection that are `mine`, loaded from the log.
pub(crate) async fn from_projection(
    js: &async_nats::jetstream::Context,
    journal: &Journal,
    events_stream: &str,
    mine: impl Fn(&OrderId) -> bool,
    tracked_max: usize,
) -> Result<Start, StartError> {
    // Only an existing projection: the reconciler never creates the pointer bucket.
    if js.get_key_value(POINTER_BUCKET).await.is_err() {
        return Err(StartError::NoProjection);
    }
    let store = ProjectionStore::open(js.clone(), events_stream, 1).await?;
    let Some((generation, _)) = store.current().await? else {
        return Err(StartError::NoProjection);
    };
    let floor = store.status().await?.applied_seq;
    let now = chrono::Utc::now();
    let mut waiting = Vec::new();
    store
        .scan(&generation, |r| {
            let s = &r.state;
            // Open past its expiry: its expiry may have made every attempt (then it is flagged).
            let outlived = s.expires_at.is_some_and(|at| at <= now)
                && matches!(
                    s.status,
                    Status::Created | Status::Pending | Status::Authorized
                );
            let waits = !s.needs_review
                && !s.status.is_terminal()
                && (s.status == Status::Pending
                    || (s.status == Status::Captured
                        && SETTLES_AFTER_CAPTURE.contains(&s.provider))
                    || s.capture_pending.is_some()
                    || s.cancel_pending
                    || !s.refunds_pending.is_empty()
                    || outlived);
            if waits && mine(&s.order_id) {
                waiting.push(s.order_id.clone());
            }
            waiting.len() < tracked_max
        })
        .await?;
    let loaded: Vec<(OrderId, Option<Loaded>)> = futures::stream::iter(waiting)
        .map(|order| async move {
            let loaded = load(journal, &order).await;
            (order, loaded)
        })
        .buffer_unordered(STARTUP_LOADS_IN_FLIGHT_MAX)
        .collect()
        .await;
    let tracked = loaded
        .into_iter()
        .filter_map(|(o, l)| l.map(|l| (o, l)))
        .collect();
    Ok(Start {
        tracked,
        follow_from: floor + 1,
    })
}

/// Reads `order` back from the log and folds it (`None`: unreadable, or nothing to track;
/// a read or fold failure is logged).
pub(crate) async fn load(journal: &Journal, order: &OrderId) -> Option<Loaded> {
    match journal.read_order(order).await {
        Ok(commits) => match fold_history(&commits) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(%order, error = %e, "reconciler: the order's history does not fold; not tracked (the audit reports it)");
                None
            }
        },
        Err(e) => {
            tracing::warn!(%order, error = %e, "reconciler: cannot read the order from the log; not tracked");
            None
        }
    }
}

/// Folds an order's commits, noting when it started waiting on what it waits on now.
/// `Ok(None)`: no commits, or the order is finished.
pub(crate) fn fold_history(commits: &[StoredCommit]) -> Result<Option<Loaded>, String> {
    let mut state: Option<OrderState> = None;
    let mut waiting = String::new();
    let mut since = Timestamp::default();
    let mut seq = 0;
    for c in commits {
        let next = paystate_engine::apply_commit(state.take(), &c.commit, &c.hash)
            .map_err(|e| format!("commit {} (seq {}): {e}", c.commit.commit, c.sequence))?;
        let now_waiting = waiting_on(&next);
        if now_waiting != waiting || seq == 0 {
            since = c.commit.decided_at;
            waiting = now_waiting;
        }
        seq = c.sequence;
        state = Some(next);
    }
    Ok(state
        .filter(|s| !s.status.is_terminal())
        .map(|state| Loaded {
            state,
            seq,
            waiting_on: waiting,
            since,
        }))
}
