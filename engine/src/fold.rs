//! Folding whole commits, the unit the journal stores. A commit is applied only if it is the
//! next one of its order (number and hash chain); its events are folded in place with
//! [`evolve_in_place`].

use crate::evolve::{evolve_in_place, EvolveError};
use paystate_events::commit::GENESIS_HASH;
use paystate_events::{Applied, Commit, Event, OrderState};

/// A commit that does not continue the order's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("commit {found} follows commit {expected_prev}: history is missing or reordered")]
    Gap { expected_prev: u64, found: u64 },
    #[error(
        "commit {commit} names previous hash {found}, but the previous commit hashes to {expected}"
    )]
    ChainBroken {
        commit: u64,
        expected: String,
        found: String,
    },
    #[error("commit {commit} is for order {found}, not {expected}")]
    WrongOrder {
        commit: u64,
        expected: String,
        found: String,
    },
    #[error("commit {commit} has no events")]
    Empty { commit: u64 },
    #[error("commit {commit} has command_rejected beside other events")]
    RejectionNotAlone { commit: u64 },
    #[error("commit {commit}: {source}")]
    Event { commit: u64, source: EvolveError },
}

/// Folds `commit` (whose bytes hash to `hash`) into `state`.
pub fn apply_commit(
    mut state: Option<OrderState>,
    commit: &Commit,
    hash: &str,
) -> Result<OrderState, FoldError> {
    let (prev_commits, prev_hash) = match &state {
        Some(s) => (s.commits, s.head_hash.as_str()),
        None => (0, GENESIS_HASH),
    };
    if commit.commit != prev_commits + 1 {
        return Err(FoldError::Gap {
            expected_prev: prev_commits,
            found: commit.commit,
        });
    }
    if commit.prev_hash != prev_hash {
        return Err(FoldError::ChainBroken {
            commit: commit.commit,
            expected: prev_hash.to_string(),
            found: commit.prev_hash.clone(),
        });
    }
    if let Some(s) = &state {
        if s.order_id != commit.order_id {
            return Err(FoldError::WrongOrder {
                commit: commit.commit,
                expected: s.order_id.to_string(),
                found: commit.order_id.to_string(),
            });
        }
    }
    if commit.events.is_empty() {
        return Err(FoldError::Empty {
            commit: commit.commit,
        });
    }
    // A refusal is a commit of its own: it must never carry events that change the order.
    let rejects = |e: &Event| matches!(e, Event::CommandRejected { .. });
    if commit.events.len() > 1 && commit.events.iter().any(rejects) {
        return Err(FoldError::RejectionNotAlone {
            commit: commit.commit,
        });
    }
    if let Some(s) = state.as_mut() {
        s.commits = commit.commit;
    }
    for event in &commit.events {
        evolve_in_place(&mut state, event).map_err(|source| FoldError::Event {
            commit: commit.commit,
            source,
        })?;
        if let Some(s) = state.as_mut() {
            s.commits = commit.commit;
        }
    }
    // Why: the loop ran at least once (events is not empty), so state is Some.
    let mut s = state.ok_or(FoldError::Empty {
        commit: commit.commit,
    })?;
    s.head_hash = hash.to_string();
    s.updated_at = commit.decided_at;
    s.applied.insert(
        commit.command.command_id.clone(),
        Applied {
            commit: commit.commit,
            fingerprint: commit.fingerprint.clone(),
        },
    );
    Ok(s)
}
