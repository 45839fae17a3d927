//! How a rebuild worker folds its orders: on the engine's full state, turned into a
//! [`ProjectedOrder`] only when the record is handed to the writer.
//!
//! Why not [`crate::record::apply`] per commit: it folds onto [`StateView::fold_state`] and
//! cuts the result back to a [`StateView`], two copies of the whole state per commit, which
//! was the largest cost of a rebuild after decoding. Here a commit costs one
//! `engine::apply_commit` on the state held in memory, and the view is cut once per hand-over.
//! The record is the same: the view of the full fold is what `paystate audit` compares every
//! projection record with (the cut lists only ever grow, so cutting at the end or after
//! every commit gives the same lists), and the counts, provider references, problem and
//! sequence follow `record::apply` step by step.

use crate::record::{counts_after, remember_refs, Problem, ProjectedOrder, Step};
use paystate_engine::apply_commit;
use paystate_events::{Commit, Event, OrderState, StateView};
use std::collections::BTreeSet;

/// One order as a rebuild worker holds it.
#[derive(Debug, Clone)]
pub struct FoldedOrder {
    /// Stream sequence of the last commit taken (applied or noted as a problem).
    pub seq: u64,
    pub state: OrderState,
    /// `(refunds completed, discrepancies)` counted as `record::apply` counts them.
    pub counts: (u64, u64),
    pub provider_refs: BTreeSet<String>,
    pub problem: Option<Problem>,
}

impl FoldedOrder {
    /// The record `record::apply` would have built from the same commits.
    pub fn record(&self) -> ProjectedOrder {
        ProjectedOrder {
            seq: self.seq,
            state: StateView::with_counts(&self.state, self.counts),
            provider_refs: self.provider_refs.clone(),
            problem: self.problem.clone(),
        }
    }
}

/// Applies the commit at stream sequence `seq` (whose bytes hash to `hash`) to the order in
/// `slot`, as `record::apply(slot, commit, ahead_is_final = true)` does to a record.
pub fn apply_full(
    slot: &mut Option<Box<FoldedOrder>>,
    seq: u64,
    commit: &Commit,
    hash: &str,
) -> Step {
    let Some(folded) = slot.as_deref_mut() else {
        // The order's first commit (or a first one that did not fold: it stays unknown).
        return match apply_commit(None, commit, hash) {
            Ok(state) => {
                let mut provider_refs = BTreeSet::new();
                remember_refs(&mut provider_refs, commit);
                *slot = Some(Box::new(FoldedOrder {
                    seq,
                    state,
                    counts: counts_after((0, 0), commit),
                    provider_refs,
                    problem: None,
                }));
                Step::Applied
            }
            Err(e) => Step::Broken(e.to_string()),
        };
    };
    if seq <= folded.seq {
        return Step::AlreadyApplied;
    }
    let s = &folded.state;
    if s.commits + 1 != commit.commit || s.head_hash != commit.prev_hash {
        let detail = format!(
            "commit {} does not continue commit {} (hash chain or numbering)",
            commit.commit, s.commits
        );
        return broken(folded, seq, detail);
    }
    if may_not_fold(s, commit) {
        // Folded on a copy: the state before stays when the commit does not fold.
        return match apply_commit(Some(s.clone()), commit, hash) {
            Ok(state) => {
                folded.state = state;
                applied(folded, seq, commit)
            }
            Err(e) => broken(folded, seq, e.to_string()),
        };
    }
    // Moved out and back: `apply_commit` takes the state by value, and cannot refuse it here.
    let Some(mut folded) = slot.take() else {
        return Step::AlreadyApplied; // not reached: the slot was checked above
    };
    match apply_commit(Some(folded.state), commit, hash) {
        Ok(state) => {
            folded.state = state;
            let step = applied(&mut folded, seq, commit);
            *slot = Some(folded);
            step
        }
        // Not reached: `may_not_fold` lists every way a chained commit fails to fold onto a
        // state. Were it reached, the order's record is dropped rather than kept wrong, and
        // the audit's projection comparison reports it missing.
        Err(e) => Step::Broken(e.to_string()),
    }
}

/// Whether `engine::apply_commit` may refuse `commit`, chained onto `s`: another order, no
/// events, an `order_created` (`evolve` refuses it on an existing order) or a
/// `command_rejected` (refused beside other events; rare enough to always fold on a copy).
fn may_not_fold(s: &OrderState, commit: &Commit) -> bool {
    s.order_id != commit.order_id
        || commit.events.is_empty()
        || commit.events.iter().any(|e| {
            matches!(
                e,
                Event::OrderCreated { .. } | Event::CommandRejected { .. }
            )
        })
}

/// Bookkeeping after `commit` folded (its state already in `folded`).
fn applied(folded: &mut FoldedOrder, seq: u64, commit: &Commit) -> Step {
    // Why: the applied command ids (with fingerprints) grow with every commit, and neither a
    // record nor `evolve` reads them; dropping them keeps a worker's memory near one record
    // per order, as it was when it held the records themselves.
    folded.state.applied.clear();
    remember_refs(&mut folded.provider_refs, commit);
    folded.counts = counts_after(folded.counts, commit);
    folded.seq = seq;
    folded.problem = None;
    Step::Applied
}

/// The state before stays; the commit's sequence is passed and the problem noted.
fn broken(folded: &mut FoldedOrder, seq: u64, detail: String) -> Step {
    folded.seq = seq;
    folded.problem = Some(Problem {
        seq,
        detail: detail.clone(),
    });
    Step::Broken(detail)
}
