//! Given/when/then tests of logged rejections (decision 0013): a command the core refuses on
//! an existing order becomes a commit whose only event is `command_rejected`. It changes no
//! business state, counts as a commit, moves the chain head and remembers the command id, so
//! a retry is `AlreadyApplied` (answered from the log) and another body under the id is
//! `idempotency_key_reused`. Logged rejections are bounded per order.

mod support;

use paystate_engine::{apply_commit, decide, logs_rejection, Decision, FoldError};
use paystate_events::limits::{
    COMMITS_PER_ORDER_MAX, REJECTIONS_LOGGED_PER_ORDER_MAX, REJECTION_MESSAGE_BYTES_MAX,
};
use paystate_events::{Event, Rejection, RejectionCode as Code, Status};
use support::*;

#[test]
fn a_logged_rejection_changes_no_state_but_counts_as_a_commit() {
    let then = given(in_authorized())
        .when(capture(eur(100)))
        .then_rejected(Code::CurrencyMismatch)
        .then_logged()
        .then_status(Status::Authorized);
    let (before, after) = (then.before(), then.state());
    assert_eq!(after.commits, before.commits + 1);
    assert_ne!(after.head_hash, before.head_hash, "the chain head moves");
    assert_eq!(after.rejections_logged, 1);
    assert_eq!(
        (after.authorized, after.captured),
        (before.authorized, before.captured)
    );
    let applied = &after.applied[&command_id(WHEN_ID)];
    assert_eq!(
        applied.commit, after.commits,
        "the command id is remembered"
    );
}

#[test]
fn a_retry_of_a_logged_rejection_is_already_applied_even_after_the_order_moved() {
    // A capture refused while pending; the order is then authorized. The retry must not be
    // decided afresh (it would now be accepted): it is the logged rejection.
    let given_after = given(in_pending())
        .when_id("cap-1", capture_all())
        .then_rejected(Code::InvalidTransition)
        .then_logged()
        .and_then()
        .and(vec![signal(authorized(None))]);
    let rejected_at = given_after.log()[2].commit;
    given_after
        .when_id("cap-1", capture_all())
        .then_already_applied(rejected_at);
}

#[test]
fn another_body_under_a_rejected_commands_id_is_idempotency_key_reused() {
    given(in_authorized())
        .when_id("cap-1", capture(eur(100)))
        .then_rejected(Code::CurrencyMismatch)
        .then_logged()
        .and_then()
        .when_id("cap-1", capture(usd(100)))
        .then_rejected(Code::IdempotencyKeyReused);
}

#[test]
fn a_new_command_id_is_decided_afresh_after_a_logged_rejection() {
    given(in_authorized())
        .when_id("cap-1", capture(eur(100)))
        .then_rejected(Code::CurrencyMismatch)
        .then_logged()
        .and_then()
        .when_id("cap-2", capture(usd(100)))
        .then_event_names(&["capture_requested"]);
}

#[test]
fn logged_rejections_are_bounded_per_order() {
    let order = given(in_authorized());
    let s = order.state();
    assert!(logs_rejection(Some(s), Code::CurrencyMismatch));
    assert!(
        !logs_rejection(None, Code::OrderNotFound),
        "no order, no log"
    );
    assert!(!logs_rejection(Some(s), Code::IdempotencyKeyReused));
    assert!(!logs_rejection(Some(s), Code::OrderHistoryFull));
    let mut at_bound = s.clone();
    at_bound.rejections_logged = REJECTIONS_LOGGED_PER_ORDER_MAX - 1;
    assert!(logs_rejection(Some(&at_bound), Code::InvalidTransition));
    at_bound.rejections_logged = REJECTIONS_LOGGED_PER_ORDER_MAX;
    assert!(!logs_rejection(Some(&at_bound), Code::InvalidTransition));
    let mut full = s.clone();
    full.commits = COMMITS_PER_ORDER_MAX;
    assert!(!logs_rejection(Some(&full), Code::InvalidTransition));
    // Past the bound the rejection is still decided (answered, not logged).
    given(in_authorized())
        .tamper(|s| s.rejections_logged = REJECTIONS_LOGGED_PER_ORDER_MAX)
        .when(capture(eur(100)))
        .then_rejected(Code::CurrencyMismatch);
}

#[test]
fn command_rejected_beside_other_events_does_not_fold() {
    let order = given(in_authorized());
    let env = envelope(WHEN_ID, ORDER_ID, capture_all(), t0());
    let Ok(Decision::Commit(mut events)) = decide(Some(order.state()), &env, t0()) else {
        panic!("the capture is accepted");
    };
    events.push(Event::rejected(&Rejection::new(
        Code::InvalidTransition,
        "no",
    )));
    let commit = commit_after(Some(order.state()), &env, events, t0());
    let folded = apply_commit(Some(order.state().clone()), &commit, &hash_of(&commit));
    assert_eq!(
        folded,
        Err(FoldError::RejectionNotAlone {
            commit: commit.commit
        })
    );
}

#[test]
fn command_rejected_on_no_order_does_not_fold() {
    let env = envelope(WHEN_ID, ORDER_ID, capture_all(), t0());
    let event = Event::rejected(&Rejection::new(Code::OrderNotFound, "none"));
    let commit = commit_after(None, &env, vec![event], t0());
    assert!(apply_commit(None, &commit, &hash_of(&commit)).is_err());
}

#[test]
fn a_rejections_message_is_cut_at_a_character_boundary() {
    let long = "é".repeat(REJECTION_MESSAGE_BYTES_MAX);
    let Event::CommandRejected { code, message } =
        Event::rejected(&Rejection::new(Code::InvalidField, long.clone()))
    else {
        panic!("a command_rejected event");
    };
    assert_eq!(code, Code::InvalidField);
    assert!(message.len() <= REJECTION_MESSAGE_BYTES_MAX && long.starts_with(&message));
}

#[test]
fn a_state_without_the_rejection_count_decodes_with_zero() {
    let order = given(in_authorized());
    let mut json = serde_json::to_value(order.state()).expect("state");
    json.as_object_mut()
        .expect("an object")
        .remove("rejections_logged");
    let old: paystate_events::OrderState = serde_json::from_value(json).expect("decodes");
    assert_eq!(old.rejections_logged, 0);
    assert_eq!(&old, order.state());
}
