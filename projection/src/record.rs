//! An order's projected record and how one stored commit is applied to it. The record holds
//! the order's bounded state view ([`StateView`]: never the engine's idempotency data, so a
//! record stays far below the KV value limit at the commit bound). The folding is
//! `engine::apply_commit` (the engine's own fold) onto [`StateView::fold_state`], which has
//! everything `evolve` reads; this module adds the bookkeeping a projection needs: the last
//! applied stream sequence (idempotency), the full counts of the lists the view cuts, and
//! the provider references seen.

use paystate_events::{Command, Commit, Event, StateView};
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
    pub state: StateView,
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
    let (view, refs) = match record {
        Some(r) => (Some(r.state), r.provider_refs),
        None => (None, BTreeSet::new()),
    };
    let chained = view
        .as_ref()
        .is_none_or(|v| v.commits + 1 == commit.commit && v.head_hash == commit.prev_hash);
    if !chained {
        let detail = match view.as_ref() {
            Some(v) => format!(
                "commit {} does not continue commit {} (hash chain or numbering)",
                commit.commit, v.commits
            ),
            None => format!("commit {} has no earlier commits", commit.commit),
        };
        *slot = broken(view, seq, refs, &detail);
        return Step::Broken(detail);
    }
    let state = view.as_ref().map(StateView::fold_state);
    match paystate_engine::apply_commit(state, commit, &c.hash) {
        Ok(state) => {
            let mut provider_refs = refs;
            remember_refs(&mut provider_refs, commit);
            let before = view.as_ref().map_or((0, 0), |v| {
                (v.refunds_completed_count, v.discrepancies_count)
            });
            let counts = counts_after(before, commit);
            *slot = Some(ProjectedOrder {
                seq,
                state: StateView::with_counts(&state, counts),
                provider_refs,
                problem: None,
            });
            Step::Applied
        }
        Err(e) => {
            let detail = e.to_string();
            *slot = broken(view, seq, refs, &detail);
            Step::Broken(detail)
        }
    }
}

/// The record after a commit that cannot be applied: the view before it, with the problem
/// noted and the commit's sequence passed (`None` stays `None`).
fn broken(
    view: Option<StateView>,
    seq: u64,
    provider_refs: BTreeSet<String>,
    detail: &str,
) -> Option<ProjectedOrder> {
    view.map(|state| ProjectedOrder {
        seq,
        state,
        provider_refs,
        problem: Some(Problem {
            seq,
            detail: detail.to_string(),
        }),
    })
}

/// Folds an order's stored commits from scratch: what a fresh projection of it holds.
pub fn fold_fresh(commits: &[StoredCommit]) -> Option<ProjectedOrder> {
    let mut slot = None;
    for c in commits {
        apply(&mut slot, c, true);
    }
    slot
}

/// The full counts a view keeps beside its cut lists, `(refunds completed, discrepancies)`,
/// after `commit`: the counts before plus what its events add.
pub(crate) fn counts_after((refunds, discrepancies): (u64, u64), commit: &Commit) -> (u64, u64) {
    let added = |f: fn(&Event) -> bool| commit.events.iter().filter(|e| f(e)).count() as u64;
    (
        refunds + added(|e| matches!(e, Event::RefundCompleted { .. })),
        discrepancies + added(|e| matches!(e, Event::DiscrepancyDetected { .. })),
    )
}

pub(crate) fn remember_refs(refs: &mut BTreeSet<String>, commit: &Commit) {
    if let Command::ProviderSignal { signal } = &commit.command.command {
        if let Some(r) = &signal.provider_ref {
            if refs.len() < PROVIDER_REFS_MAX {
                refs.insert(r.clone());
            }
        }
    }
}
