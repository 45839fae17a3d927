//! The rebuild's fold on the full state (`rebuild_fold::apply_full`) gives exactly the
//! records `record::apply` gives, commit by commit: in order, redelivered, after a break in
//! the chain and after a commit that does not fold (the record before it stays).

use paystate_events::{Event, RejectionCode};
use paystate_journal::{EncodedCommit, StoredCommit};
use paystate_projection::rebuild_fold::{apply_full, FoldedOrder};
use paystate_projection::record::apply;

mod support;
use support::stored;
/// Feeds `commits` to both folds and checks the steps and records stay equal throughout.
fn same_as_record_apply(commits: &[StoredCommit]) {
    let (mut record, mut full): (_, Option<Box<FoldedOrder>>) = (None, None);
    for c in commits {
        let expected = apply(&mut record, c, true);
        let step = apply_full(&mut full, c.sequence, &c.commit, &c.hash);
        assert_eq!(step, expected, "step at seq {}", c.sequence);
        assert_eq!(
            full.as_deref().map(FoldedOrder::record),
            record,
            "record after seq {}",
            c.sequence
        );
    }
}

#[test]
fn in_order_and_redelivered_commits_give_the_same_records() {
    let (commits, _) = stored("r1");
    let twice: Vec<_> = commits.iter().chain(&commits).cloned().collect();
    same_as_record_apply(&twice);
}

#[test]
fn a_break_in_the_chain_gives_the_same_problem() {
    let (commits, _) = stored("r2");
    same_as_record_apply(&[commits[0].clone(), commits[2].clone()]);
}

#[test]
fn a_commit_that_does_not_fold_keeps_the_record_before_it() {
    let (commits, _) = stored("r3");
    let mut bad = commits[2].clone();
    // A refusal beside another event does not fold (engine::apply_commit), nor does a second
    // order_created; both must leave the order's record as it was, problem noted.
    bad.commit.events.push(Event::CommandRejected {
        code: RejectionCode::InvalidField,
        message: "x".into(),
    });
    let e = EncodedCommit::new(bad.commit.clone());
    bad.hash = e.hash;
    let mut created_twice = commits[2].clone();
    created_twice.commit.events = commits[0].commit.events.clone();
    same_as_record_apply(&[commits[0].clone(), commits[1].clone(), bad]);
    same_as_record_apply(&[commits[0].clone(), commits[1].clone(), created_twice]);
}
