//! An order's projected record and how one stored commit is applied to it. The folding is
//! `engine::apply_commit` (the engine's own fold); this module only adds the bookkeeping a
//! projection needs: the last applied stream sequence (idempotency) and the provider
//! references seen.

use paystate_events::{Command, Commit, Event, OrderState};
use paystate_journal::StoredCommit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most distinct provider references remembered per order (real orders have one or two).
pub const PROVIDER_REFS_MAX: usize = 16;

/// What the projection stores per order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectedOrder {
    /// Stream sequence of the last commit applied: a commit at this sequence or earlier is
    /// already in `state` and is skipped (redelivery, replay).
    pub seq: u64,
    pub state: OrderState,
    /// Every provider reference reported for the order (from provider signals), sorted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub provider_refs: BTreeSet<String>,
    /// A commit the projection could not apply (broken history); the audit says more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// A commit that does not continue the order's history as projected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub seq: u64,
    pub detail: String,
}

/// What applying one commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The record now includes the commit.
    Applied,
    /// The commit was applied before (its sequence is at or below the record's): nothing changed.
    AlreadyApplied,
    /// An earlier commit of the order has not been applied yet: try again later.
    Ahead { expected: u64, found: u64 },
    /// The commit cannot continue the history; the record keeps its state, notes the problem
    /// and moves past the commit. `None` slot stays `None` when the order has no state yet.
    Broken(String),
}

/// Applies `c` to the order's record in `slot`. `ahead_is_final`: a commit ahead of the record
/// (an earlier one missing) counts as broken instead of "try later" (a sequential rebuild
/// has seen everything before it; a live projector may see it again after a redelivery).
pub fn apply(slot: &mut Option<ProjectedOrder>, c: &StoredCommit, ahead_is_final: bool) -> Step {
    let (seq, commit) = (c.sequence, &c.commit);
    if slot.as_ref().is_some_and(|r| seq <= r.seq) {
        return Step::AlreadyApplied;
    }
    let expected = slot.as_ref().map_or(1, |r| r.state.commits + 1);
    if commit.commit > expected && !ahead_is_final {
        return Step::Ahead {
            expected,
            found: commit.commit,
        };
    }
    let record = slot.take();
    let (state, refs) = match record {
        Some(r) => (Some(r.state), r.provider_refs),
        None => (None, BTreeSet::new()),
    };
    // Why keep a copy: apply_commit consumes the state, and the checks it does on a commit
    // that mentions order creation or another order can fail after the state was moved.
    let backup = if needs_backup(state.as_ref(), commit) {
        state.clone()
    } else {
        None
    };
    let chained = state
        .as_ref()
        .is_none_or(|s| s.commits + 1 == commit.commit && s.head_hash == commit.prev_hash);
    if !chained {
        let detail = match state.as_ref() {
            Some(s) => format!(
                "commit {} does not continue commit {} (hash chain or numbering)",
                commit.commit, s.commits
            ),
            None => format!("commit {} has no earlier commits", commit.commit),
        };
        *slot = state.map(|state| ProjectedOrder {
            seq,
            state,
            provider_refs: refs,
            problem: Some(Problem {
                seq,
                detail: detail.clone(),
            }),
        });
        return Step::Broken(detail);
    }
    match paystate_engine::apply_commit(state, commit, &c.hash) {
        Ok(state) => {
            let mut provider_refs = refs;
            remember_refs(&mut provider_refs, commit);
            *slot = Some(ProjectedOrder {
                seq,
                state,
                provider_refs,
                problem: None,
            });
            Step::Applied
        }
        Err(e) => {
            let detail = e.to_string();
            *slot = backup.map(|state| ProjectedOrder {
                seq,
                state,
                provider_refs: refs,
                problem: Some(Problem {
                    seq,
                    detail: detail.clone(),
                }),
            });
            Step::Broken(detail)
        }
    }
}

/// Folds an order's stored commits from scratch: what a fresh projection of it holds.
pub fn fold_fresh(commits: &[StoredCommit]) -> Option<ProjectedOrder> {
    let mut slot = None;
    for c in commits {
        apply(&mut slot, c, true);
    }
    slot
}

fn needs_backup(state: Option<&paystate_events::OrderState>, commit: &Commit) -> bool {
    state.is_some_and(|s| {
        s.order_id != commit.order_id
            || commit.events.is_empty()
            || commit
                .events
                .iter()
                .any(|e| matches!(e, Event::OrderCreated { .. }))
    })
}

fn remember_refs(refs: &mut BTreeSet<String>, commit: &Commit) {
    if let Command::ProviderSignal { signal } = &commit.command.command {
        if let Some(r) = &signal.provider_ref {
            if refs.len() < PROVIDER_REFS_MAX {
                refs.insert(r.clone());
            }
        }
    }
}
