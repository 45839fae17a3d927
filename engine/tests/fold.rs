//! `apply_commit`: a commit folds only if it continues its order's history, and replaying the
//! stored bytes gives the same state. Also the hand-checkable parts of `invariants.rs`.

mod support;

use paystate_engine::{
    apply_commit, check_invariants, evolve, evolve_in_place, is_legal_transition, EvolveError,
    FoldError,
};
use paystate_events::commit::GENESIS_HASH;
use paystate_events::{Commit, Event, MinorUnits, OrderState, Status};
use support::*;

/// An order's log: create, start, authorized, capture.
fn log() -> Vec<Commit> {
    given(vec![
        create(),
        start(),
        signal(authorized(None)),
        capture_all(),
    ])
    .log()
    .to_vec()
}

/// Folds `commits` from nothing.
fn replay(commits: &[Commit]) -> Result<OrderState, FoldError> {
    let mut state = None;
    for c in commits {
        state = Some(apply_commit(state, c, &hash_of(c))?);
    }
    state.ok_or(FoldError::Empty { commit: 0 })
}

#[test]
fn folding_a_log_tracks_number_head_hash_time_and_applied_ids() {
    let log = log();
    let s = replay(&log).expect("a valid log folds");
    assert_eq!(s.commits, 4);
    assert_eq!(s.head_hash, hash_of(&log[3]));
    assert_eq!(s.updated_at, log[3].decided_at);
    assert_eq!(s.applied.len(), 4);
    assert_eq!(s.applied[&log[2].command.command_id].commit, 3);
    assert_eq!(
        s.applied[&log[2].command.command_id].fingerprint,
        log[2].command.fingerprint()
    );
    assert!(check_invariants(&s).is_empty());
}

#[test]
fn replaying_the_stored_bytes_gives_the_same_state() {
    let log = log();
    let decoded: Vec<Commit> = log
        .iter()
        .map(|c| Commit::decode(&c.encode()).expect("decodes"))
        .collect();
    assert_eq!(decoded, log);
    assert_eq!(replay(&decoded), replay(&log));
}

#[test]
fn a_first_commit_not_numbered_one_is_a_gap() {
    let mut c = log()[0].clone();
    c.commit = 2;
    assert_eq!(
        apply_commit(None, &c, &hash_of(&c)),
        Err(FoldError::Gap {
            expected_prev: 0,
            found: 2
        })
    );
}

#[test]
fn a_skipped_commit_is_a_gap() {
    let log = log();
    let s = replay(&log[..2]).unwrap();
    assert_eq!(
        apply_commit(Some(s), &log[3], &hash_of(&log[3])),
        Err(FoldError::Gap {
            expected_prev: 2,
            found: 4
        })
    );
}

#[test]
fn a_commit_applied_twice_is_a_gap() {
    let log = log();
    let s = replay(&log[..2]).unwrap();
    assert_eq!(
        apply_commit(Some(s), &log[1], &hash_of(&log[1])),
        Err(FoldError::Gap {
            expected_prev: 2,
            found: 2
        })
    );
}

#[test]
fn a_first_commit_not_chained_to_genesis_breaks_the_chain() {
    let mut c = log()[0].clone();
    c.prev_hash = "ab".repeat(32);
    let err = apply_commit(None, &c, &hash_of(&c)).unwrap_err();
    assert_eq!(
        err,
        FoldError::ChainBroken {
            commit: 1,
            expected: GENESIS_HASH.to_string(),
            found: "ab".repeat(32)
        }
    );
}

#[test]
fn an_edited_commit_breaks_the_chain_at_the_next_one() {
    let mut log = log();
    // Edit commit 2 after the fact: its bytes (and so its hash) change; commit 3 still names
    // the original hash.
    log[1].decided_at = minutes(1);
    let s = replay(&log[..2]).expect("the edited commit itself still folds");
    match apply_commit(Some(s), &log[2], &hash_of(&log[2])) {
        Err(FoldError::ChainBroken {
            commit: 3,
            expected,
            found,
        }) => {
            assert_eq!(expected, hash_of(&log[1]));
            assert_eq!(found, log[2].prev_hash);
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn reordered_commits_do_not_fold() {
    let mut log = log();
    log.swap(1, 2);
    assert!(matches!(
        replay(&log),
        Err(FoldError::Gap {
            expected_prev: 1,
            found: 3
        })
    ));
}

#[test]
fn a_commit_of_another_order_is_refused() {
    let log = log();
    let s = replay(&log[..1]).unwrap();
    let mut c = log[1].clone();
    c.order_id = paystate_events::OrderId::parse("ord-2").unwrap();
    assert_eq!(
        apply_commit(Some(s), &c, &hash_of(&c)),
        Err(FoldError::WrongOrder {
            commit: 2,
            expected: ORDER_ID.into(),
            found: "ord-2".into()
        })
    );
}

#[test]
fn a_commit_without_events_is_refused() {
    let log = log();
    let mut first = log[0].clone();
    first.events.clear();
    assert_eq!(
        apply_commit(None, &first, &hash_of(&first)),
        Err(FoldError::Empty { commit: 1 })
    );
    let s = replay(&log[..1]).unwrap();
    let mut second = log[1].clone();
    second.events.clear();
    assert_eq!(
        apply_commit(Some(s), &second, &hash_of(&second)),
        Err(FoldError::Empty { commit: 2 })
    );
}

#[test]
fn a_log_that_does_not_start_with_order_created_is_refused() {
    let mut c = log()[0].clone();
    c.events = log()[1].events.clone();
    assert_eq!(
        apply_commit(None, &c, &hash_of(&c)),
        Err(FoldError::Event {
            commit: 1,
            source: EvolveError::NotCreated("payment_requested")
        })
    );
}

#[test]
fn order_created_twice_is_refused() {
    let log = log();
    let s = replay(&log[..1]).unwrap();
    let mut c = log[1].clone();
    c.events = log[0].events.clone();
    assert_eq!(
        apply_commit(Some(s), &c, &hash_of(&c)),
        Err(FoldError::Event {
            commit: 2,
            source: EvolveError::CreatedTwice
        })
    );
}

#[test]
fn evolve_refuses_events_before_order_created() {
    let ev = Event::PaymentRequested {
        initiation: Default::default(),
    };
    assert_eq!(
        evolve(None, &ev),
        Err(EvolveError::NotCreated("payment_requested"))
    );
}

#[test]
fn evolving_in_place_refuses_without_touching_the_state_and_otherwise_equals_evolve() {
    let log = log();
    let s = replay(&log[..2]).unwrap();
    // Refused: an order created twice, an event before any order. Nothing changes.
    let mut held = Some(s.clone());
    assert_eq!(
        evolve_in_place(&mut held, &log[0].events[0]),
        Err(EvolveError::CreatedTwice)
    );
    assert_eq!(held.as_ref(), Some(&s));
    let mut none = None;
    assert!(evolve_in_place(&mut none, &log[1].events[0]).is_err());
    assert_eq!(none, None);
    // Accepted: the same state as folding by value, event by event, through the whole log.
    let (mut in_place, mut by_value) = (None, None::<OrderState>);
    for e in log.iter().flat_map(|c| &c.events) {
        evolve_in_place(&mut in_place, e).expect("folds in place");
        by_value = Some(evolve(by_value, e).expect("folds by value"));
        assert_eq!(in_place, by_value);
    }
}

// --- invariants -------------------------------------------------------------------------

#[test]
fn invariants_name_each_broken_rule() {
    let good = given(in_captured()).state().clone();
    assert!(check_invariants(&good).is_empty());
    let codes = |edit: fn(&mut OrderState)| {
        let mut s = good.clone();
        edit(&mut s);
        check_invariants(&s)
            .into_iter()
            .map(|v| v.code)
            .collect::<Vec<_>>()
    };
    assert!(codes(|s| s.authorized = MinorUnits(AMOUNT + 1)).contains(&"authorized_exceeds_amount"));
    assert!(codes(|s| s.authorized = MinorUnits(10)).contains(&"captured_exceeds_authorized"));
    assert!(codes(|s| s.refunded = MinorUnits(AMOUNT + 1)).contains(&"refunded_exceeds_captured"));
    assert!(codes(|s| {
        s.refunds_pending.insert("r".into(), MinorUnits(AMOUNT + 1));
    })
    .contains(&"refunds_in_flight_exceed_captured"));
    assert!(codes(|s| s.refunded = MinorUnits(5)).contains(&"refund_ledger_mismatch"));
    assert!(
        codes(|s| s.capture_pending = Some(("c".into(), MinorUnits(AMOUNT + 1))))
            .contains(&"capture_pending_exceeds_authorized")
    );
    assert!(codes(|s| s.commits += 1).contains(&"applied_commands_mismatch"));
    assert!(codes(|s| s.status = Status::Cancelled).contains(&"status_inconsistent_with_amounts"));
    assert!(codes(|s| {
        s.status = Status::Done;
        s.cancel_pending = true;
    })
    .contains(&"terminal_with_operation_in_flight"));
}

#[test]
fn legal_transitions_go_forward_only() {
    use Status::*;
    for s in Status::ALL {
        assert!(is_legal_transition(s, s), "staying is always legal");
    }
    for t in [
        Created, Pending, Authorized, Captured, Done, Cancelled, Returned, Failed,
    ] {
        for from in [Done, Cancelled, Returned, Failed] {
            assert_eq!(is_legal_transition(from, t), from == t, "{from} -> {t}");
        }
    }
    assert!(is_legal_transition(Created, Captured));
    assert!(is_legal_transition(Pending, Done));
    assert!(is_legal_transition(Authorized, Cancelled));
    assert!(is_legal_transition(Captured, Returned));
    assert!(!is_legal_transition(Captured, Cancelled));
    assert!(!is_legal_transition(Captured, Failed));
    assert!(!is_legal_transition(Authorized, Returned));
    assert!(!is_legal_transition(Authorized, Pending));
    assert!(!is_legal_transition(Captured, Authorized));
}
