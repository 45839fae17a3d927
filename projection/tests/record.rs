//! Applying commits to a projected record: idempotent on redelivery, "try later" when ahead
//! (live), a problem when the history is broken (rebuild), and equal to the engine's fold.

use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, OrderId, Provider, ProviderSignal, SignalKind, StateView,
};
use paystate_projection::record::{apply, fold_fresh, Step};

mod support;
use support::{at, stored, stored_from};
#[test]
fn the_record_is_the_view_of_the_engines_fold_with_the_last_sequence_and_provider_refs() {
    let (commits, state) = stored("o1");
    let record = fold_fresh(&commits).expect("record");
    assert_eq!((record.seq, &record.state), (30, &StateView::of(&state)));
    assert!(!serde_json::to_string(&record)
        .expect("json")
        .contains("applied"));
    assert_eq!(
        record.provider_refs.iter().collect::<Vec<_>>(),
        vec!["pl-1"]
    );
    assert!(record.problem.is_none());
}

#[test]
fn redelivered_commits_are_already_applied_and_change_nothing() {
    let (commits, _) = stored("o2");
    let mut slot = None;
    for c in &commits {
        assert_eq!(apply(&mut slot, c, false), Step::Applied);
    }
    let before = slot.clone();
    for c in &commits {
        assert_eq!(apply(&mut slot, c, false), Step::AlreadyApplied);
    }
    assert_eq!(slot, before, "nothing double-counted");
}

#[test]
fn a_commit_ahead_waits_live_and_is_a_problem_in_a_rebuild() {
    let (commits, _) = stored("o3");
    let mut live = None;
    apply(&mut live, &commits[0], false);
    assert_eq!(
        apply(&mut live, &commits[2], false),
        Step::Ahead {
            expected: 2,
            found: 3
        }
    );
    assert_eq!(
        live.as_ref().map(|r| r.seq),
        Some(10),
        "unchanged while waiting"
    );
    apply(&mut live, &commits[1], false);
    assert_eq!(apply(&mut live, &commits[2], false), Step::Applied);
    let mut rebuilt = None;
    apply(&mut rebuilt, &commits[0], true);
    assert!(matches!(
        apply(&mut rebuilt, &commits[2], true),
        Step::Broken(_)
    ));
    let record = rebuilt.expect("record kept");
    assert_eq!(
        (record.seq, record.state.commits),
        (30, 1),
        "moves past the commit, keeps the state"
    );
    assert_eq!(record.problem.as_ref().map(|p| p.seq), Some(30));
}

/// A long order: more completed refunds and discrepancies than a view lists. The record,
/// folded commit by commit onto its own bounded view, equals the view of the engine's fold.
#[test]
fn a_long_order_folds_onto_its_bounded_view_exactly() {
    use paystate_events::view::{VIEW_DISCREPANCIES_MAX, VIEW_REFUNDS_COMPLETED_MAX};
    let order = OrderId::parse("long").expect("id");
    let sig = |kind, evidence: String| Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("pl-1".into()),
            evidence_ref: evidence,
            observed_at: at(0),
            kind,
        },
    };
    let refunds = 3 * VIEW_REFUNDS_COMPLETED_MAX;
    let mut commands = vec![
        Command::CreateOrder {
            merchant_reference: "m".into(),
            amount: money(100_000, "USD").expect("money"),
            provider: Provider::Plural,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
        },
        Command::StartPayment {
            initiation: Default::default(),
        },
        sig(SignalKind::Authorized { amount: None }, "auth".into()),
        sig(SignalKind::Captured { amount: None }, "cap".into()),
    ];
    for i in 0..refunds {
        // Requested refunds and refunds the provider reports on its own, in turn.
        if i % 2 == 0 {
            commands.push(Command::Refund {
                amount: money(10, "USD"),
            });
        }
        commands.push(sig(
            SignalKind::Refunded {
                refund_id: None,
                amount: money(10, "USD"),
            },
            format!("refund-{i}-{}", "x".repeat(300)),
        ));
    }
    for i in 0..3 * VIEW_DISCREPANCIES_MAX {
        let reason = format!("look {i}: {}", "y".repeat(500));
        commands.push(sig(
            SignalKind::NeedsReview { reason },
            format!("review-{i}"),
        ));
    }
    let (commits, state) = stored_from(&order, commands);
    let record = fold_fresh(&commits).expect("record");
    let view = StateView::of(&state);
    assert_eq!(record.state, view);
    assert_eq!(view.refunds_completed_count, refunds as u64);
    assert_eq!(view.refunds_completed.len(), VIEW_REFUNDS_COMPLETED_MAX);
    assert_eq!(view.discrepancies_count, 3 * VIEW_DISCREPANCIES_MAX as u64);
    assert_eq!(view.discrepancies.len(), VIEW_DISCREPANCIES_MAX);
    assert!(view.refunds_pending.is_empty());
}
