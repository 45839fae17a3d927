//! Given/when/then tests of review resolution: a flagged order (`needs_review`) refuses the
//! merchant's provider operations until an operator sends `resolve_review`; provider reports
//! and expiry still apply; the resolution is refused, typed, when there is nothing to resolve.

mod support;

use paystate_events::{Command, Event, RejectionCode as Code, Status};
use support::*;

fn flagged(status: Status) -> Vec<Command> {
    let mut v = in_status(status);
    v.push(signal(needs_review()));
    v
}

#[test]
fn a_flagged_order_refuses_the_merchants_provider_operations() {
    let cases: [(Status, Command); 6] = [
        (Status::Created, start()),
        (Status::Created, cancel()),
        (Status::Authorized, capture_all()),
        (Status::Authorized, cancel()),
        (Status::Captured, refund_all()),
        (Status::Pending, cancel()),
    ];
    for (status, cmd) in cases {
        given(flagged(status))
            .when(cmd)
            .then_rejected(Code::UnderReview)
            .then_status(status);
    }
}

#[test]
fn resolving_clears_the_flag_keeps_the_discrepancies_and_lets_the_order_move() {
    given(flagged(Status::Authorized))
        .when(resolve_review())
        .then_events(vec![Event::ReviewResolved {
            operator: "op-ana".into(),
            reason: "checked at the provider: funds arrived".into(),
        }])
        .then_status(Status::Authorized)
        .then_state(|st| {
            assert!(!st.needs_review);
            assert_eq!(
                st.discrepancies.len(),
                1,
                "the discrepancy stays in history"
            );
        })
        .and_then()
        .when_id("capture-1", capture_all())
        .then_event_names(&["capture_requested"]);
}

#[test]
fn resolving_an_order_not_under_review_is_refused() {
    for status in Status::ALL {
        given(in_status(status))
            .when(resolve_review())
            .then_rejected(Code::NotUnderReview);
    }
    // Resolved once: a second resolution (another command id) has nothing left to resolve.
    given(flagged(Status::Pending))
        .and(vec![resolve_review()])
        .when(resolve_review())
        .then_rejected(Code::NotUnderReview);
}

#[test]
fn resolving_a_missing_order_is_refused() {
    given_no_order()
        .when(resolve_review())
        .then_rejected(Code::OrderNotFound);
}

#[test]
fn a_terminal_flagged_order_can_be_resolved_and_stays_terminal() {
    for status in [
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(flagged(status))
            .when(resolve_review())
            .then_status(status)
            .then_state(|st| assert!(!st.needs_review));
    }
}

#[test]
fn a_resolution_needs_an_operator_and_a_bounded_reason() {
    let with = |operator: &str, reason: String| Command::ResolveReview {
        operator: operator.into(),
        reason,
    };
    for cmd in [
        with("", "ok".into()),
        with("op-ana", " ".into()),
        with(
            "op-ana",
            "x".repeat(paystate_events::command::TEXT_LEN_MAX + 1),
        ),
    ] {
        given(flagged(Status::Pending))
            .when(cmd)
            .then_rejected(Code::InvalidField);
    }
}

#[test]
fn provider_reports_and_expiry_still_apply_to_a_flagged_order() {
    given(flagged(Status::Pending))
        .when(signal(authorized(None)))
        .then_status(Status::Authorized)
        .then_state(|st| assert!(st.needs_review, "a report does not end the review"));
    given(vec![
        create_expiring(minutes(5)),
        start(),
        signal(needs_review()),
    ])
    .at(minutes(6))
    .when(expire())
    // A started payment the provider can cancel: the expiry asks for the void.
    .then_state(|st| assert!(st.cancel_pending, "the expiry applies under review"));
}

#[test]
fn a_retried_resolution_is_already_applied() {
    given(flagged(Status::Authorized))
        .and_id("resolve-1", resolve_review())
        .when_id("resolve-1", resolve_review())
        .then_already_applied(5);
}

#[test]
fn a_new_discrepancy_after_a_resolution_flags_the_order_again() {
    given(flagged(Status::Authorized))
        .and(vec![resolve_review()])
        .when(signal(needs_review()))
        .then_discrepancy("needs_review")
        .and_then()
        .when_id("capture-1", capture_all())
        .then_rejected(Code::UnderReview);
}
