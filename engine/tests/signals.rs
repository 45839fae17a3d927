//! Given/when/then tests of the provider signal rules in `signals.rs`: every signal kind in
//! every status where it means something different.

mod support;

use paystate_events::{
    CancelledBy, Event, Evidence, MinorUnits, Operation, SignalDisposition as Disposition, Status,
};
use support::*;

const ALL: [Status; 8] = Status::ALL;

// --- accepted ---------------------------------------------------------------------------

#[test]
fn accepted_moves_a_created_or_pending_order_to_pending() {
    for status in [Status::Created, Status::Pending] {
        let s = sig(accepted());
        let paystate_events::SignalKind::Accepted { action } = s.kind.clone() else {
            unreachable!()
        };
        given(in_status(status))
            .when(provider_signal(s.clone()))
            .then_events(vec![Event::CustomerActionRequired {
                action: action.clone(),
                evidence: Evidence::from(&s),
            }])
            .then_status(Status::Pending)
            .then_state(|st| {
                assert_eq!(st.customer_action, action);
                assert_eq!(st.provider_ref.as_deref(), Some("px-123"));
            });
    }
}

#[test]
fn accepted_again_with_nothing_new_is_a_duplicate() {
    let s = sig(accepted());
    let again = sig(accepted());
    given(in_pending())
        .and(vec![provider_signal(s)])
        .when(provider_signal(again))
        .then_recorded(Disposition::Duplicate);
    given(in_pending())
        .when(signal(paystate_events::SignalKind::Accepted {
            action: None,
        }))
        .then_recorded(Disposition::Duplicate);
}

#[test]
fn accepted_with_a_new_customer_action_replaces_the_old_one() {
    let challenge = paystate_events::CustomerAction {
        kind: paystate_events::CustomerActionKind::Challenge,
        url: Some("https://acs.example/3ds".into()),
        details: Default::default(),
    };
    given(in_pending())
        .and(vec![signal(accepted())])
        .when(signal(paystate_events::SignalKind::Accepted {
            action: Some(challenge.clone()),
        }))
        .then_event_names(&["customer_action_required"])
        .then_state(|st| assert_eq!(st.customer_action, Some(challenge)));
}

#[test]
fn accepted_after_the_order_moved_on_is_late() {
    for status in [
        Status::Authorized,
        Status::Captured,
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(signal(accepted()))
            .then_recorded(Disposition::Late);
    }
}

// --- authorized -------------------------------------------------------------------------

#[test]
fn authorized_without_amount_authorizes_the_order_amount() {
    for status in [Status::Created, Status::Pending] {
        let s = sig(authorized(None));
        given(in_status(status))
            .when(provider_signal(s.clone()))
            .then_events(vec![Event::PaymentAuthorized {
                amount: usd(AMOUNT),
                evidence: Evidence::from(&s),
            }])
            .then_status(Status::Authorized)
            .then_state(|st| assert_eq!(st.authorized, MinorUnits(AMOUNT)));
    }
}

#[test]
fn authorized_for_part_authorizes_that_part() {
    given(in_pending())
        .when(signal(authorized(Some(usd(600)))))
        .then_status(Status::Authorized)
        .then_state(|st| assert_eq!(st.authorized, MinorUnits(600)));
}

#[test]
fn authorized_beyond_the_order_amount_is_a_discrepancy() {
    given(in_pending())
        .when(signal(authorized(Some(usd(AMOUNT + 1)))))
        .then_discrepancy("amount_exceeds_order");
}

#[test]
fn authorized_in_another_currency_is_a_discrepancy() {
    given(in_pending())
        .when(signal(authorized(Some(eur(AMOUNT)))))
        .then_discrepancy("currency_mismatch");
}

#[test]
fn authorized_again_with_the_same_amount_is_a_duplicate() {
    given(in_authorized())
        .when(signal(authorized(Some(usd(AMOUNT)))))
        .then_recorded(Disposition::Duplicate);
    given(in_authorized())
        .when(signal(authorized(None)))
        .then_recorded(Disposition::Duplicate);
}

#[test]
fn authorized_again_with_another_amount_is_a_discrepancy() {
    given(in_authorized())
        .when(signal(authorized(Some(usd(500)))))
        .then_discrepancy("authorized_amount_changed");
}

#[test]
fn authorized_after_capture_is_late() {
    for status in [Status::Captured, Status::Done, Status::Returned] {
        given(in_status(status))
            .when(signal(authorized(None)))
            .then_recorded(Disposition::Late);
    }
}

#[test]
fn authorized_after_cancel_or_failure_is_a_discrepancy() {
    given(in_cancelled())
        .when(signal(authorized(None)))
        .then_discrepancy("authorized_after_cancel");
    given(in_failed())
        .when(signal(authorized(None)))
        .then_discrepancy("authorized_after_failure");
}

// --- captured ---------------------------------------------------------------------------

#[test]
fn captured_before_authorized_captures_then_late_authorized_is_recorded() {
    let s = sig(captured(None));
    given(in_pending())
        .when(provider_signal(s.clone()))
        .then_events(vec![Event::PaymentCaptured {
            amount: usd(AMOUNT),
            evidence: Evidence::from(&s),
        }])
        .then_status(Status::Captured)
        .then_state(|st| {
            assert_eq!(st.captured, MinorUnits(AMOUNT));
            assert_eq!(st.authorized, MinorUnits(AMOUNT));
        });
    given(in_pending())
        .and(vec![signal(captured(None))])
        .when(signal(authorized(None)))
        .then_recorded(Disposition::Late)
        .then_status(Status::Captured);
}

#[test]
fn captured_from_created_captures() {
    given(in_created())
        .when(signal(captured(Some(usd(700)))))
        .then_status(Status::Captured)
        .then_state(|st| {
            assert_eq!(st.captured, MinorUnits(700));
            assert_eq!(st.authorized, MinorUnits(700));
        });
}

#[test]
fn captured_without_amount_takes_the_pending_capture() {
    given(in_authorized())
        .and(vec![capture(usd(400))])
        .when(signal(captured(None)))
        .then_status(Status::Captured)
        .then_state(|st| {
            assert_eq!(st.captured, MinorUnits(400));
            assert_eq!(st.authorized, MinorUnits(AMOUNT));
            assert_eq!(st.capture_pending, None);
        });
}

#[test]
fn captured_without_amount_or_pending_capture_takes_the_authorization() {
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(signal(captured(None)))
        .then_state(|st| assert_eq!(st.captured, MinorUnits(600)));
}

#[test]
fn captured_beyond_the_authorization_is_a_discrepancy() {
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(signal(captured(Some(usd(601)))))
        .then_discrepancy("capture_exceeds_authorized");
}

#[test]
fn captured_beyond_the_order_amount_is_a_discrepancy() {
    for status in [
        Status::Created,
        Status::Pending,
        Status::Authorized,
        Status::Captured,
        Status::Cancelled,
    ] {
        given(in_status(status))
            .when(signal(captured(Some(usd(AMOUNT + 1)))))
            .then_discrepancy("amount_exceeds_order");
    }
}

#[test]
fn captured_in_another_currency_is_a_discrepancy() {
    given(in_authorized())
        .when(signal(captured(Some(eur(AMOUNT)))))
        .then_discrepancy("currency_mismatch");
}

#[test]
fn captured_again_with_the_same_amount_is_a_duplicate() {
    for status in [Status::Captured, Status::Done, Status::Returned] {
        given(in_status(status))
            .when(signal(captured(None)))
            .then_recorded(Disposition::Duplicate);
        given(in_status(status))
            .when(signal(captured(Some(usd(AMOUNT)))))
            .then_recorded(Disposition::Duplicate);
    }
}

#[test]
fn captured_again_with_another_amount_is_a_discrepancy() {
    for status in [Status::Captured, Status::Done, Status::Returned] {
        given(in_status(status))
            .when(signal(captured(Some(usd(999)))))
            .then_discrepancy("capture_amount_mismatch");
    }
}

#[test]
fn captured_after_cancel_or_failure_is_a_discrepancy() {
    given(in_cancelled())
        .when(signal(captured(None)))
        .then_discrepancy("captured_after_cancel");
    given(in_failed())
        .when(signal(captured(None)))
        .then_discrepancy("captured_after_failure");
}

#[test]
fn captured_while_a_cancellation_is_pending_captures() {
    // The provider captured before it saw our void: the capture is a fact and wins.
    given(in_authorized())
        .and(vec![cancel()])
        .when(signal(captured(None)))
        .then_status(Status::Captured)
        .then_state(|st| assert!(!st.cancel_pending, "the capture answered the cancellation"));
}

#[test]
fn settled_after_a_capture_that_raced_a_cancellation_leaves_nothing_in_flight() {
    given(in_pending())
        .and(vec![cancel(), signal(captured(None))])
        .when(signal(settled(None)))
        .then_status(Status::Done);
    given(in_pending())
        .and(vec![cancel()])
        .when(signal(settled(None)))
        .then_status(Status::Done);
}

#[test]
fn cancel_failed_after_the_capture_won_the_race_is_late() {
    given(in_authorized())
        .and(vec![cancel(), signal(captured(None))])
        .when(signal(failed(Operation::Cancel)))
        .then_recorded(Disposition::Late);
}

// --- failed -----------------------------------------------------------------------------

#[test]
fn payment_failed_fails_an_open_order() {
    for status in [Status::Created, Status::Pending, Status::Authorized] {
        given(in_status(status))
            .when(signal(failed(Operation::Payment)))
            .then_event_names(&["payment_failed"])
            .then_status(Status::Failed)
            .then_state(|st| {
                assert_eq!(
                    st.failure,
                    Some(("declined".into(), "the provider said no".into()))
                )
            });
    }
}

#[test]
fn payment_failed_clears_operations_in_flight() {
    given(in_authorized())
        .and(vec![capture_all()])
        .when(signal(failed(Operation::Payment)))
        .then_state(|st| {
            assert_eq!(st.status, Status::Failed);
            assert_eq!(st.capture_pending, None);
        });
    given(in_authorized())
        .and(vec![cancel()])
        .when(signal(failed(Operation::Payment)))
        .then_state(|st| assert!(!st.cancel_pending));
}

#[test]
fn payment_failed_again_is_a_duplicate_and_after_cancel_is_late() {
    given(in_failed())
        .when(signal(failed(Operation::Payment)))
        .then_recorded(Disposition::Duplicate);
    given(in_cancelled())
        .when(signal(failed(Operation::Payment)))
        .then_recorded(Disposition::Late);
}

#[test]
fn payment_failed_after_capture_is_a_discrepancy() {
    for status in [Status::Captured, Status::Done, Status::Returned] {
        given(in_status(status))
            .when(signal(failed(Operation::Payment)))
            .then_discrepancy("failed_after_capture");
    }
}

#[test]
fn capture_failed_releases_the_pending_capture() {
    given(in_authorized())
        .and(vec![capture_all()])
        .when(signal(failed(Operation::Capture)))
        .then_event_names(&["capture_failed"])
        .then_status(Status::Authorized)
        .then_state(|st| assert_eq!(st.capture_pending, None));
}

#[test]
fn capture_failed_without_a_pending_capture_is_late() {
    for status in ALL {
        given(in_status(status))
            .when(signal(failed(Operation::Capture)))
            .then_recorded(Disposition::Late);
    }
}

#[test]
fn cancel_failed_releases_the_pending_cancellation() {
    for base in [in_pending(), in_authorized()] {
        let status = given(base.clone()).state().status;
        given(base)
            .and(vec![cancel()])
            .when(signal(failed(Operation::Cancel)))
            .then_event_names(&["cancel_failed"])
            .then_status(status)
            .then_state(|st| assert!(!st.cancel_pending));
    }
}

#[test]
fn cancel_failed_without_a_pending_cancellation_is_late() {
    for status in ALL {
        given(in_status(status))
            .when(signal(failed(Operation::Cancel)))
            .then_recorded(Disposition::Late);
    }
}

#[test]
fn refund_failed_by_id_releases_the_amount_in_flight() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and_id("r-2", refund(usd(700)))
        .when(signal(refund_failed(Some("r-1"))))
        .then_event_names(&["refund_failed"])
        .then_status(Status::Captured)
        .then_state(|st| {
            assert!(!st.refunds_pending.contains_key("r-1"));
            assert!(st.refunds_pending.contains_key("r-2"));
            assert_eq!(st.refundable(), MinorUnits(300));
            assert_eq!(st.refunded, MinorUnits::ZERO);
        });
}

#[test]
fn refund_failed_without_id_releases_the_only_pending_refund() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .when(signal(refund_failed(None)))
        .then_state(|st| {
            assert!(st.refunds_pending.is_empty());
            assert_eq!(st.refundable(), MinorUnits(AMOUNT));
        });
}

#[test]
fn refund_failed_without_id_and_several_pending_is_late() {
    given(in_captured())
        .and(vec![refund(usd(300)), refund(usd(200))])
        .when(signal(refund_failed(None)))
        .then_recorded(Disposition::Late);
}

#[test]
fn refund_failed_for_an_unknown_or_completed_refund_is_late() {
    given(in_captured())
        .when(signal(refund_failed(Some("nope"))))
        .then_recorded(Disposition::Late);
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and(vec![signal(refunded(Some("r-1"), None))])
        .when(signal(refund_failed(Some("r-1"))))
        .then_recorded(Disposition::Late);
}

// --- cancelled --------------------------------------------------------------------------

#[test]
fn cancelled_cancels_an_open_order() {
    for status in [Status::Created, Status::Pending, Status::Authorized] {
        let s = sig(cancelled());
        given(in_status(status))
            .when(provider_signal(s.clone()))
            .then_events(vec![Event::OrderCancelled {
                by: CancelledBy::Provider,
                evidence: Some(Evidence::from(&s)),
            }])
            .then_status(Status::Cancelled);
    }
}

#[test]
fn cancelled_answers_a_pending_cancellation_and_drops_a_pending_capture() {
    given(in_authorized())
        .and(vec![cancel()])
        .when(signal(cancelled()))
        .then_state(|st| {
            assert_eq!(st.status, Status::Cancelled);
            assert!(!st.cancel_pending);
        });
    given(in_authorized())
        .and(vec![capture_all()])
        .when(signal(cancelled()))
        .then_state(|st| {
            assert_eq!(st.status, Status::Cancelled);
            assert_eq!(st.capture_pending, None);
        });
}

#[test]
fn cancelled_again_is_a_duplicate_and_after_failure_is_late() {
    given(in_cancelled())
        .when(signal(cancelled()))
        .then_recorded(Disposition::Duplicate);
    given(in_failed())
        .when(signal(cancelled()))
        .then_recorded(Disposition::Late);
}

#[test]
fn cancelled_after_capture_is_a_discrepancy() {
    for status in [Status::Captured, Status::Done, Status::Returned] {
        given(in_status(status))
            .when(signal(cancelled()))
            .then_discrepancy("cancelled_after_capture");
    }
}

// --- refunded ---------------------------------------------------------------------------

#[test]
fn refunded_by_id_completes_that_refund() {
    let s = sig(refunded(Some("r-2"), None));
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and_id("r-2", refund(usd(200)))
        .when(provider_signal(s.clone()))
        .then_events(vec![Event::RefundCompleted {
            refund_id: "r-2".into(),
            amount: usd(200),
            evidence: Evidence::from(&s),
        }])
        .then_state(|st| {
            assert_eq!(st.refunded, MinorUnits(200));
            assert!(st.refunds_pending.contains_key("r-1"));
        });
}

#[test]
fn refunded_by_id_with_a_smaller_amount_completes_that_amount() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .when(signal(refunded(Some("r-1"), Some(usd(250)))))
        .then_state(|st| assert_eq!(st.refunds_completed.get("r-1"), Some(&MinorUnits(250))));
}

#[test]
fn refunded_by_id_beyond_the_captured_amount_is_a_discrepancy() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and_id("r-2", refund(usd(600)))
        .when(signal(refunded(Some("r-1"), Some(usd(401)))))
        .then_discrepancy("refund_exceeds_captured");
}

#[test]
fn refunded_without_id_completes_the_only_pending_refund() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .when(signal(refunded(None, None)))
        .then_state(|st| {
            assert_eq!(st.refunds_completed.get("r-1"), Some(&MinorUnits(300)));
            assert!(st.refunds_pending.is_empty());
        });
}

#[test]
fn refunded_without_id_picks_the_pending_refund_of_that_amount() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and_id("r-2", refund(usd(200)))
        .when(signal(refunded(None, Some(usd(200)))))
        .then_state(|st| {
            assert_eq!(st.refunds_completed.get("r-2"), Some(&MinorUnits(200)));
            assert!(st.refunds_pending.contains_key("r-1"));
        });
}

#[test]
fn refunded_that_we_did_not_ask_for_is_counted_as_provider_initiated() {
    let s = sig(refunded(None, Some(usd(250))));
    let id = format!("provider:{}", s.evidence_ref);
    given(in_captured())
        .when(provider_signal(s.clone()))
        .then_events(vec![Event::RefundCompleted {
            refund_id: id.clone(),
            amount: usd(250),
            evidence: Evidence::from(&s),
        }])
        .then_status(Status::Captured)
        .then_state(|st| assert_eq!(st.refunds_completed.get(&id), Some(&MinorUnits(250))));
}

#[test]
fn refunded_with_an_unknown_id_keeps_the_providers_id() {
    given(in_captured())
        .when(signal(refunded(Some("dash-7"), Some(usd(100)))))
        .then_state(|st| assert_eq!(st.refunds_completed.get("dash-7"), Some(&MinorUnits(100))));
}

#[test]
fn refunded_that_we_did_not_ask_for_beyond_what_is_left_is_a_discrepancy() {
    given(in_captured())
        .and(vec![refund(usd(600))])
        .when(signal(refunded(Some("dash-7"), Some(usd(401)))))
        .then_discrepancy("refund_exceeds_captured");
    given(in_captured())
        .and(vec![refund_all()])
        .when(signal(refunded(Some("dash-7"), None)))
        .then_discrepancy("refund_exceeds_captured");
}

#[test]
fn refunded_again_for_a_completed_refund_is_a_duplicate() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and(vec![signal(refunded(Some("r-1"), None))])
        .when(signal(refunded(Some("r-1"), None)))
        .then_recorded(Disposition::Duplicate);
}

#[test]
fn refunded_resent_with_the_same_evidence_is_a_duplicate() {
    // The same provider-initiated refund observed twice (e.g. a status query repeated with the
    // same call key) must not be counted twice.
    let s = sig(refunded(None, Some(usd(100))));
    given(in_captured())
        .and(vec![provider_signal(s.clone())])
        .when(provider_signal(s))
        .then_recorded(Disposition::Duplicate)
        .then_state(|st| assert_eq!(st.refunded, MinorUnits(100)));
}

#[test]
fn refunded_in_full_returns_the_order() {
    given(in_captured())
        .and_id("r-1", refund_all())
        .when(signal(refunded(Some("r-1"), None)))
        .then_status(Status::Returned);
    given(in_captured())
        .when(signal(refunded(None, None)))
        .then_status(Status::Returned);
}

#[test]
fn refunded_again_after_return_is_a_duplicate_or_a_discrepancy() {
    given(in_returned())
        .when(signal(refunded(None, None)))
        .then_recorded(Disposition::Duplicate);
    given(in_returned())
        .when(signal(refunded(None, Some(usd(1)))))
        .then_discrepancy("refund_after_returned");
    given(in_returned())
        .when(signal(refunded(Some("dash-8"), None)))
        .then_discrepancy("refund_after_returned");
}

#[test]
fn refunded_when_nothing_was_captured_is_a_discrepancy() {
    for status in [
        Status::Created,
        Status::Pending,
        Status::Authorized,
        Status::Done,
        Status::Cancelled,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(signal(refunded(None, Some(usd(100)))))
            .then_discrepancy("refund_not_captured");
    }
}

#[test]
fn refunded_in_another_currency_is_a_discrepancy() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .when(signal(refunded(Some("r-1"), Some(eur(300)))))
        .then_discrepancy("currency_mismatch");
}

// --- settled ----------------------------------------------------------------------------

#[test]
fn settled_after_capture_is_done() {
    let s = sig(settled(None));
    given(in_captured())
        .when(provider_signal(s.clone()))
        .then_events(vec![Event::OrderSettled {
            evidence: Evidence::from(&s),
        }])
        .then_status(Status::Done);
}

#[test]
fn settled_from_pending_captures_then_settles() {
    let s = sig(settled(None));
    let ev = Evidence::from(&s);
    given(in_pending())
        .when(provider_signal(s))
        .then_events(vec![
            Event::PaymentCaptured {
                amount: usd(AMOUNT),
                evidence: ev.clone(),
            },
            Event::OrderSettled { evidence: ev },
        ])
        .then_status(Status::Done)
        .then_state(|st| assert_eq!(st.captured, MinorUnits(AMOUNT)));
}

#[test]
fn settled_from_created_or_authorized_captures_then_settles() {
    given(in_created())
        .when(signal(settled(Some(usd(800)))))
        .then_status(Status::Done)
        .then_state(|st| {
            assert_eq!(st.captured, MinorUnits(800));
        });
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(signal(settled(None)))
        .then_status(Status::Done)
        .then_state(|st| assert_eq!(st.captured, MinorUnits(600)));
}

#[test]
fn settled_beyond_what_could_be_captured_is_a_discrepancy() {
    given(in_pending())
        .when(signal(settled(Some(usd(AMOUNT + 1)))))
        .then_discrepancy("amount_exceeds_order");
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(signal(settled(Some(usd(601)))))
        .then_discrepancy("capture_exceeds_authorized");
}

#[test]
fn settled_in_another_currency_is_a_discrepancy() {
    given(in_pending())
        .when(signal(settled(Some(eur(AMOUNT)))))
        .then_discrepancy("currency_mismatch");
}

#[test]
fn settled_again_is_a_duplicate_and_after_return_is_late() {
    given(in_done())
        .when(signal(settled(None)))
        .then_recorded(Disposition::Duplicate);
    given(in_returned())
        .when(signal(settled(None)))
        .then_recorded(Disposition::Late);
}

#[test]
fn settled_after_cancel_or_failure_is_a_discrepancy() {
    given(in_cancelled())
        .when(signal(settled(None)))
        .then_discrepancy("settled_after_cancel");
    given(in_failed())
        .when(signal(settled(None)))
        .then_discrepancy("settled_after_failure");
}

// --- unrecognised, outcome unknown, needs review ----------------------------------------

#[test]
fn unrecognised_is_recorded_in_every_status() {
    for status in ALL {
        given(in_status(status))
            .when(signal(unrecognised()))
            .then_recorded(Disposition::Unrecognised);
    }
}

#[test]
fn outcome_unknown_is_recorded_in_every_status() {
    for status in ALL {
        given(in_status(status))
            .when(signal(outcome_unknown()))
            .then_recorded(Disposition::OutcomeUnknown);
    }
}

#[test]
fn probed_is_recorded_in_every_status() {
    for status in ALL {
        given(in_status(status))
            .when(signal(probed()))
            .then_recorded(Disposition::Probe);
    }
}

#[test]
fn needs_review_is_a_discrepancy_in_every_status() {
    for status in ALL {
        given(in_status(status))
            .when(signal(needs_review()))
            .then_discrepancy("needs_review")
            .then_state(|st| {
                assert!(st.needs_review);
                let d = st.discrepancies.last().expect("kept");
                assert_eq!(d.signal, "needs_review");
                assert_eq!(d.detail, "errorPayout after funds arrived");
                assert!(d.evidence_ref.starts_with("callbacks:"));
            });
    }
}

#[test]
fn discrepancies_accumulate_with_their_commit_numbers() {
    given(in_cancelled())
        .and(vec![signal(captured(None))])
        .when(signal(settled(None)))
        .then_state(|st| {
            let codes: Vec<(&str, u64)> = st
                .discrepancies
                .iter()
                .map(|d| (d.code.as_str(), d.commit))
                .collect();
            assert_eq!(
                codes,
                vec![("captured_after_cancel", 3), ("settled_after_cancel", 4)]
            );
        });
}

#[test]
fn a_refund_command_under_an_id_the_provider_already_used_is_rejected() {
    // The provider reported a dashboard refund under "r-9" (e.g. echoing the merchant's own
    // reference). A refund command with id "r-9" would be a second refund under the same id:
    // completed without an echoed id it used to overwrite the first in the refund ledger.
    given(in_captured())
        .and(vec![signal(refunded(Some("r-9"), Some(usd(100))))])
        .when_id("r-9", refund(usd(200)))
        .then_rejected(paystate_events::RejectionCode::IdempotencyKeyReused);
}

// --- provider references ----------------------------------------------------------------

/// A signal of `kind` naming another provider object than the order's `px-123`.
fn foreign(kind: paystate_events::SignalKind) -> paystate_events::ProviderSignal {
    let mut s = sig(kind);
    s.provider_ref = Some("px-999".into());
    s
}

/// Pending, with the provider's reference known (the start was accepted).
fn in_pending_with_ref() -> Vec<paystate_events::Command> {
    let mut v = in_pending();
    v.push(signal(accepted()));
    v
}

#[test]
fn a_signal_naming_another_provider_reference_never_moves_the_order() {
    let givens = [
        in_pending_with_ref(),
        in_status(Status::Authorized),
        in_status(Status::Captured),
        in_status(Status::Done),
        in_status(Status::Returned),
    ];
    let kinds = [
        accepted(),
        authorized(None),
        captured(None),
        settled(None),
        cancelled(),
        failed(Operation::Payment),
        refunded(None, None),
        unrecognised(),
        probed(),
    ];
    for g in givens {
        for kind in kinds.clone() {
            given(g.clone())
                .when(provider_signal(foreign(kind)))
                .then_discrepancy(paystate_engine::REFERENCE_MISMATCH)
                .then_state(|st| assert_eq!(st.provider_ref.as_deref(), Some("px-123")));
        }
    }
}

#[test]
fn a_contradicting_reference_is_kept_with_its_evidence() {
    let s = foreign(captured(None));
    let evidence = s.evidence_ref.clone();
    given(in_pending_with_ref())
        .when(provider_signal(s.clone()))
        .then_events(vec![Event::DiscrepancyDetected {
            signal: s,
            code: paystate_engine::REFERENCE_MISMATCH.to_string(),
            detail: r#"signal names provider reference "px-999"; the order's is "px-123""#
                .to_string(),
        }])
        .then_status(Status::Pending)
        .then_state(|st| {
            assert!(st.needs_review);
            let d = st.discrepancies.last().expect("kept");
            assert_eq!(d.signal, "captured");
            assert_eq!(d.evidence_ref, evidence);
            assert_eq!(st.captured, MinorUnits::ZERO);
        });
}

#[test]
fn the_orders_own_reference_still_moves_it_after_a_contradicting_one() {
    given(in_pending_with_ref())
        .and(vec![provider_signal(foreign(captured(None)))])
        .when(signal(captured(None)))
        .then_event_names(&["payment_captured"])
        .then_status(Status::Captured)
        .then_state(|st| {
            assert!(st.needs_review, "the earlier discrepancy stays flagged");
            assert_eq!(st.provider_ref.as_deref(), Some("px-123"));
        });
}

#[test]
fn a_reference_is_only_checked_once_the_order_has_one() {
    // No reference yet (start accepted without one): the first report sets it.
    given(in_pending())
        .when(provider_signal(foreign(authorized(None))))
        .then_event_names(&["payment_authorized"])
        .then_state(|st| assert_eq!(st.provider_ref.as_deref(), Some("px-999")));
    // A report naming no reference is judged on what it says.
    let mut unnamed = sig(captured(None));
    unnamed.provider_ref = None;
    given(in_status(Status::Authorized))
        .when(provider_signal(unnamed))
        .then_event_names(&["payment_captured"])
        .then_state(|st| assert_eq!(st.provider_ref.as_deref(), Some("px-123")));
}

#[test]
fn a_contradicting_reference_on_a_closed_order_is_still_a_discrepancy() {
    // Not merely "late": the report is about something else, and a person should see it.
    given(in_status(Status::Done))
        .when(provider_signal(foreign(settled(None))))
        .then_discrepancy(paystate_engine::REFERENCE_MISMATCH);
}
