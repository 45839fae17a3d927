//! Given/when/then tests of the client command rules in `decide.rs`: one short test per rule.

mod support;

use paystate_engine::COMMITS_PER_ORDER_MAX;
use paystate_events::command::{METADATA_ENTRIES_MAX, TEXT_LEN_MAX};
use paystate_events::{
    CancelledBy, CaptureMode, Command, Event, MinorUnits, Operation, PaymentInitiation, Provider,
    RejectionCode as Code, Status,
};
use std::collections::BTreeMap;
use support::*;

// --- create_order -----------------------------------------------------------------------

#[test]
fn create_records_the_order() {
    given_no_order()
        .when(create())
        .then_events(vec![Event::OrderCreated {
            order_id: order_id(),
            merchant_reference: "inv-42".into(),
            amount: usd(AMOUNT),
            provider: PROVIDER,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: BTreeMap::new(),
            created_at: t0(),
        }])
        .then_status(Status::Created)
        .then_state(|s| {
            assert_eq!(s.commits, 1);
            assert_eq!(s.amount, usd(AMOUNT));
            assert_eq!(
                (s.authorized, s.captured, s.refunded),
                (MinorUnits::ZERO, MinorUnits::ZERO, MinorUnits::ZERO)
            );
        });
}

#[test]
fn create_of_an_existing_order_is_rejected() {
    given(in_created())
        .when(create())
        .then_rejected(Code::OrderAlreadyExists);
}

#[test]
fn create_with_an_empty_merchant_reference_is_rejected() {
    let cmd = Create {
        merchant_reference: String::new(),
        ..Create::default()
    }
    .cmd();
    given_no_order().when(cmd).then_rejected(Code::InvalidField);
}

#[test]
fn create_with_too_many_metadata_entries_is_rejected() {
    let metadata: BTreeMap<String, String> = (0..=METADATA_ENTRIES_MAX)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let cmd = Create {
        metadata,
        ..Create::default()
    }
    .cmd();
    given_no_order().when(cmd).then_rejected(Code::InvalidField);
}

#[test]
fn create_with_the_most_metadata_entries_is_accepted() {
    let metadata: BTreeMap<String, String> = (0..METADATA_ENTRIES_MAX)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let cmd = Create {
        metadata,
        ..Create::default()
    }
    .cmd();
    given_no_order().when(cmd).then_status(Status::Created);
}

#[test]
fn create_with_an_overlong_text_is_rejected() {
    let long = "x".repeat(TEXT_LEN_MAX + 1);
    let cases = [
        Create {
            merchant_reference: long.clone(),
            ..Create::default()
        },
        Create {
            merchant_account: Some(long.clone()),
            ..Create::default()
        },
        Create {
            metadata: BTreeMap::from([("k".to_string(), long.clone())]),
            ..Create::default()
        },
        Create {
            metadata: BTreeMap::from([(long.clone(), "v".to_string())]),
            ..Create::default()
        },
    ];
    for c in cases {
        given_no_order()
            .when(c.cmd())
            .then_rejected(Code::InvalidField);
    }
    let at_limit = Create {
        merchant_reference: "x".repeat(TEXT_LEN_MAX),
        ..Create::default()
    };
    given_no_order()
        .when(at_limit.cmd())
        .then_status(Status::Created);
}

#[test]
fn create_expiring_in_the_past_or_now_is_rejected() {
    given_no_order()
        .at(minutes(10))
        .when(create_expiring(minutes(5)))
        .then_rejected(Code::InvalidField);
    given_no_order()
        .at(minutes(10))
        .when(create_expiring(minutes(10)))
        .then_rejected(Code::InvalidField);
}

/// The expiry schedule carries a four-digit year (rounded up to the second): the latest
/// second of year 9999 is the last expiry accepted.
#[test]
fn create_expiring_after_the_latest_schedulable_second_is_rejected() {
    let latest =
        chrono::DateTime::from_timestamp(paystate_events::limits::EXPIRES_AT_MAX_UNIX_S, 0)
            .expect("a time");
    given_no_order()
        .when(create_expiring(latest))
        .then_state(|s| assert_eq!(s.expires_at, Some(latest)));
    for later in [
        latest + chrono::Duration::nanoseconds(1),
        latest + chrono::Duration::days(400),
    ] {
        given_no_order()
            .when(create_expiring(later))
            .then_rejected(Code::InvalidField);
    }
}

#[test]
fn create_expiring_in_the_future_keeps_the_expiry() {
    given_no_order()
        .when(create_expiring(minutes(30)))
        .then_state(|s| assert_eq!(s.expires_at, Some(minutes(30))));
}

#[test]
fn commands_for_a_missing_order_are_rejected() {
    for cmd in [
        start(),
        capture_all(),
        cancel(),
        refund_all(),
        expire(),
        signal(captured(None)),
    ] {
        given_no_order()
            .when(cmd)
            .then_rejected(Code::OrderNotFound);
    }
}

// --- start_payment ----------------------------------------------------------------------

#[test]
fn start_payment_from_created_requests_the_payment() {
    given(in_created())
        .when(start())
        .then_events(vec![Event::PaymentRequested {
            initiation: PaymentInitiation::default(),
        }])
        .then_status(Status::Pending);
}

#[test]
fn start_payment_is_only_allowed_from_created() {
    for status in [Status::Pending, Status::Authorized, Status::Captured] {
        given(in_status(status))
            .when(start())
            .then_rejected(Code::InvalidTransition);
    }
    for status in [
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(start())
            .then_rejected(Code::OrderTerminal);
    }
}

#[test]
fn start_payment_with_an_overlong_param_is_rejected() {
    let initiation = PaymentInitiation {
        params: BTreeMap::from([("label".to_string(), "x".repeat(TEXT_LEN_MAX + 1))]),
        ..PaymentInitiation::default()
    };
    given(in_created())
        .when(Command::StartPayment { initiation })
        .then_rejected(Code::InvalidField);
}

// --- capture ----------------------------------------------------------------------------

#[test]
fn capture_without_amount_requests_everything_authorized() {
    given(in_authorized())
        .when(capture_all())
        .then_events(vec![Event::CaptureRequested {
            capture_id: WHEN_ID.into(),
            amount: usd(AMOUNT),
        }])
        .then_status(Status::Authorized)
        .then_state(|s| {
            assert_eq!(
                s.capture_pending,
                Some((WHEN_ID.to_string(), MinorUnits(AMOUNT)))
            )
        });
}

#[test]
fn capture_of_part_requests_that_part() {
    given(in_authorized())
        .when(capture(usd(400)))
        .then_events(vec![Event::CaptureRequested {
            capture_id: WHEN_ID.into(),
            amount: usd(400),
        }]);
}

#[test]
fn capture_of_exactly_the_authorized_amount_is_accepted() {
    given(in_authorized())
        .when(capture(usd(AMOUNT)))
        .then_event_names(&["capture_requested"]);
}

#[test]
fn capture_without_amount_takes_a_partial_authorization() {
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(capture_all())
        .then_events(vec![Event::CaptureRequested {
            capture_id: WHEN_ID.into(),
            amount: usd(600),
        }]);
}

#[test]
fn capture_exceeding_the_authorized_amount_is_rejected() {
    given(in_authorized())
        .when(capture(usd(AMOUNT + 1)))
        .then_rejected(Code::AmountExceedsAuthorized);
    // Within the order amount but beyond a partial authorization.
    given(vec![create(), start(), signal(authorized(Some(usd(600))))])
        .when(capture(usd(601)))
        .then_rejected(Code::AmountExceedsAuthorized);
}

#[test]
fn capture_in_another_currency_is_rejected() {
    given(in_authorized())
        .when(capture(eur(100)))
        .then_rejected(Code::CurrencyMismatch);
}

#[test]
fn capture_while_a_capture_is_pending_is_rejected() {
    given(in_authorized())
        .and(vec![capture(usd(100))])
        .when(capture(usd(100)))
        .then_rejected(Code::OperationInProgress);
}

#[test]
fn capture_while_a_cancellation_is_pending_is_rejected() {
    given(in_authorized())
        .and(vec![cancel()])
        .when(capture_all())
        .then_rejected(Code::OperationInProgress);
}

#[test]
fn capture_before_authorization_is_an_invalid_transition() {
    for status in [Status::Created, Status::Pending, Status::Captured] {
        given(in_status(status))
            .when(capture_all())
            .then_rejected(Code::InvalidTransition);
    }
}

#[test]
fn capture_of_a_terminal_order_is_rejected() {
    for status in [
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(capture_all())
            .then_rejected(Code::OrderTerminal);
    }
}

#[test]
fn capture_is_allowed_again_after_a_capture_failure() {
    given(in_authorized())
        .and(vec![capture_all(), signal(failed(Operation::Capture))])
        .when(capture(usd(500)))
        .then_event_names(&["capture_requested"]);
}

// --- cancel -----------------------------------------------------------------------------

#[test]
fn cancel_of_a_created_order_cancels_it_at_once() {
    given(in_created())
        .when(cancel())
        .then_events(vec![Event::OrderCancelled {
            by: CancelledBy::Merchant,
            evidence: None,
        }])
        .then_status(Status::Cancelled);
}

#[test]
fn cancel_of_a_pending_order_asks_the_provider() {
    given(in_pending())
        .when(cancel())
        .then_events(vec![Event::CancelRequested {
            reason: Some("customer asked".into()),
        }])
        .then_status(Status::Pending)
        .then_state(|s| assert!(s.cancel_pending));
}

#[test]
fn cancel_of_an_authorized_order_asks_the_provider() {
    given(in_authorized())
        .when(Command::Cancel { reason: None })
        .then_events(vec![Event::CancelRequested { reason: None }])
        .then_status(Status::Authorized)
        .then_state(|s| assert!(s.cancel_pending));
}

#[test]
fn cancel_while_an_operation_is_pending_is_rejected() {
    given(in_authorized())
        .and(vec![cancel()])
        .when(cancel())
        .then_rejected(Code::OperationInProgress);
    given(in_authorized())
        .and(vec![capture_all()])
        .when(cancel())
        .then_rejected(Code::OperationInProgress);
    given(in_pending())
        .and(vec![cancel()])
        .when(cancel())
        .then_rejected(Code::OperationInProgress);
}

#[test]
fn cancel_after_capture_is_an_invalid_transition() {
    given(in_captured())
        .when(cancel())
        .then_rejected(Code::InvalidTransition);
}

#[test]
fn cancel_of_a_terminal_order_is_rejected() {
    for status in [
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(cancel())
            .then_rejected(Code::OrderTerminal);
    }
}

#[test]
fn cancel_with_an_overlong_reason_is_rejected() {
    let cmd = Command::Cancel {
        reason: Some("x".repeat(TEXT_LEN_MAX + 1)),
    };
    given(in_pending())
        .when(cmd)
        .then_rejected(Code::InvalidField);
}

// --- refund -----------------------------------------------------------------------------

#[test]
fn refund_of_part_requests_that_part() {
    given(in_captured())
        .when(refund(usd(300)))
        .then_events(vec![Event::RefundRequested {
            refund_id: WHEN_ID.into(),
            amount: usd(300),
        }])
        .then_status(Status::Captured)
        .then_state(|s| {
            assert_eq!(s.refunds_pending.get(WHEN_ID), Some(&MinorUnits(300)));
            assert_eq!(s.refundable(), MinorUnits(700));
        });
}

#[test]
fn refund_without_amount_requests_everything_refundable() {
    given(in_captured())
        .and(vec![refund(usd(300))])
        .when(refund_all())
        .then_events(vec![Event::RefundRequested {
            refund_id: WHEN_ID.into(),
            amount: usd(700),
        }]);
}

#[test]
fn refunds_repeat_until_the_captured_amount_is_used() {
    given(in_captured())
        .and(vec![refund(usd(300)), refund(usd(300)), refund(usd(300))])
        .when(refund(usd(100)))
        .then_event_names(&["refund_requested"])
        .then_state(|s| {
            assert_eq!(s.refunds_pending.len(), 4);
            assert_eq!(s.refundable(), MinorUnits::ZERO);
        });
}

#[test]
fn refund_exceeding_the_captured_amount_is_rejected() {
    given(in_captured())
        .when(refund(usd(AMOUNT + 1)))
        .then_rejected(Code::AmountExceedsRefundable);
}

#[test]
fn refund_exceeding_what_is_left_after_refunds_in_flight_is_rejected() {
    given(in_captured())
        .and(vec![refund(usd(600))])
        .when(refund(usd(401)))
        .then_rejected(Code::AmountExceedsRefundable);
}

#[test]
fn refund_exceeding_what_is_left_after_completed_refunds_is_rejected() {
    given(in_captured())
        .and_id("r-1", refund(usd(600)))
        .and(vec![signal(refunded(Some("r-1"), None))])
        .when(refund(usd(401)))
        .then_rejected(Code::AmountExceedsRefundable);
}

#[test]
fn refund_while_the_most_refunds_are_pending_is_rejected() {
    use paystate_events::limits::REFUNDS_PENDING_MAX;
    let big = 10 * REFUNDS_PENDING_MAX as u64;
    let mut history = vec![
        Create {
            amount: usd(big),
            ..Create::default()
        }
        .cmd(),
        start(),
        signal(authorized(None)),
        capture_all(),
        signal(captured(None)),
    ];
    history.extend((0..REFUNDS_PENDING_MAX).map(|_| refund(usd(1))));
    given(history)
        .when(refund(usd(1)))
        .then_rejected(Code::OperationInProgress);
}

#[test]
fn refund_when_everything_is_in_flight_is_rejected() {
    given(in_captured())
        .and(vec![refund_all()])
        .when(refund_all())
        .then_rejected(Code::AmountExceedsRefundable);
}

#[test]
fn refund_in_another_currency_is_rejected() {
    given(in_captured())
        .when(refund(eur(100)))
        .then_rejected(Code::CurrencyMismatch);
}

#[test]
fn refund_before_capture_is_an_invalid_transition() {
    for status in [Status::Created, Status::Pending, Status::Authorized] {
        given(in_status(status))
            .when(refund_all())
            .then_rejected(Code::InvalidTransition);
    }
}

#[test]
fn refund_of_a_terminal_order_is_rejected() {
    for status in [
        Status::Done,
        Status::Cancelled,
        Status::Returned,
        Status::Failed,
    ] {
        given(in_status(status))
            .when(refund_all())
            .then_rejected(Code::OrderTerminal);
    }
}

#[test]
fn completed_partial_refund_keeps_the_order_captured() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .when(signal(refunded(Some("r-1"), None)))
        .then_event_names(&["refund_completed"])
        .then_status(Status::Captured)
        .then_state(|s| {
            assert_eq!(s.refunded, MinorUnits(300));
            assert!(s.refunds_pending.is_empty());
            assert_eq!(s.refunds_completed.get("r-1"), Some(&MinorUnits(300)));
        });
}

#[test]
fn completed_full_refund_returns_the_order() {
    given(in_captured())
        .and_id("r-1", refund(usd(300)))
        .and_id("r-2", refund_all())
        .and(vec![signal(refunded(Some("r-1"), None))])
        .when(signal(refunded(Some("r-2"), None)))
        .then_status(Status::Returned)
        .then_state(|s| assert_eq!(s.refunded, MinorUnits(AMOUNT)));
}

// --- expire -----------------------------------------------------------------------------

#[test]
fn expire_before_the_expiry_is_rejected() {
    given(vec![create_expiring(minutes(30))])
        .at(minutes(29))
        .when(expire())
        .then_rejected(Code::NotExpired);
}

#[test]
fn expire_of_an_order_without_expiry_is_rejected() {
    given(in_created())
        .at(minutes(10_000))
        .when(expire())
        .then_rejected(Code::NotExpired);
}

#[test]
fn expire_of_a_created_order_cancels_it() {
    given(vec![create_expiring(minutes(30))])
        .at(minutes(30))
        .when(expire())
        .then_events(vec![Event::OrderCancelled {
            by: CancelledBy::Expiry,
            evidence: None,
        }])
        .then_status(Status::Cancelled);
}

#[test]
fn expire_of_a_started_payment_cancels_it_at_the_provider() {
    given(vec![create_expiring(minutes(30)), start()])
        .at(minutes(31))
        .when(expire())
        .then_events(vec![Event::CancelRequested {
            reason: Some("expired".into()),
        }])
        .then_status(Status::Pending)
        .then_state(|s| assert!(s.cancel_pending));
}

#[test]
fn expire_of_a_started_payment_the_provider_cannot_cancel_cancels_the_order() {
    let paykassma = Create {
        provider: Provider::Paykassma,
        expires_at: Some(minutes(30)),
        ..Create::default()
    };
    given(vec![paykassma.cmd(), start()])
        .at(minutes(31))
        .when(expire())
        .then_events(vec![Event::OrderCancelled {
            by: CancelledBy::Expiry,
            evidence: None,
        }])
        .then_status(Status::Cancelled);
}

#[test]
fn expire_of_an_authorized_order_asks_for_a_void() {
    given(vec![
        create_expiring(minutes(30)),
        start(),
        signal(authorized(None)),
    ])
    .at(minutes(31))
    .when(expire())
    .then_events(vec![Event::CancelRequested {
        reason: Some("expired".into()),
    }])
    .then_status(Status::Authorized)
    .then_state(|s| assert!(s.cancel_pending));
}

#[test]
fn expire_of_an_authorized_order_with_an_operation_pending_is_rejected() {
    given(vec![
        create_expiring(minutes(30)),
        start(),
        signal(authorized(None)),
        capture_all(),
    ])
    .at(minutes(31))
    .when(expire())
    .then_rejected(Code::OperationInProgress);
}

#[test]
fn expire_after_capture_is_rejected() {
    let captured_order = vec![
        create_expiring(minutes(30)),
        start(),
        signal(authorized(None)),
        capture_all(),
        signal(captured(None)),
    ];
    given(captured_order.clone())
        .at(minutes(31))
        .when(expire())
        .then_rejected(Code::InvalidTransition);
    let mut done = captured_order;
    done.push(signal(settled(None)));
    given(done)
        .at(minutes(31))
        .when(expire())
        .then_rejected(Code::OrderTerminal);
}

#[test]
fn expire_of_a_cancelled_order_is_rejected() {
    given(vec![create_expiring(minutes(30)), cancel()])
        .at(minutes(31))
        .when(expire())
        .then_rejected(Code::OrderTerminal);
}

// --- idempotency, provider, bounds ------------------------------------------------------

#[test]
fn a_retried_command_is_already_applied() {
    let g = given(in_authorized()).and_id("cap-1", capture(usd(400)));
    let commit = g.state().applied[&command_id("cap-1")].commit;
    assert_eq!(commit, 4);
    g.when_id("cap-1", capture(usd(400)))
        .then_already_applied(4);
}

#[test]
fn a_retried_create_is_already_applied() {
    given(vec![])
        .and_id("create-1", create())
        .when_id("create-1", create())
        .then_already_applied(1);
}

#[test]
fn a_retried_command_is_already_applied_even_after_the_order_moved_on() {
    given(in_authorized())
        .and_id("cap-1", capture_all())
        .and(vec![signal(captured(None)), signal(settled(None))])
        .when_id("cap-1", capture_all())
        .then_already_applied(4);
}

#[test]
fn a_retried_signal_is_already_applied() {
    let s = sig(authorized(None));
    given(in_pending())
        .and_id("sig-1", provider_signal(s.clone()))
        .when_id("sig-1", provider_signal(s))
        .then_already_applied(3);
}

#[test]
fn a_command_id_reused_with_another_body_is_rejected() {
    given(in_authorized())
        .and_id("cap-1", capture(usd(400)))
        .when_id("cap-1", capture(usd(500)))
        .then_rejected(Code::IdempotencyKeyReused);
    given(in_authorized())
        .and_id("cap-1", capture(usd(400)))
        .when_id("cap-1", cancel())
        .then_rejected(Code::IdempotencyKeyReused);
}

#[test]
fn a_rejected_command_id_is_not_remembered() {
    // A rejection appends nothing, so the id is free for a corrected command.
    given(in_authorized())
        .when_id("cap-1", capture(usd(AMOUNT + 1)))
        .then_rejected(Code::AmountExceedsAuthorized)
        .then_state(|s| assert!(!s.applied.contains_key(&command_id("cap-1"))))
        .and_then()
        .when_id("cap-1", capture(usd(AMOUNT)))
        .then_event_names(&["capture_requested"]);
}

#[test]
fn a_retry_after_the_order_moved_on_is_still_already_applied() {
    given(in_authorized())
        .when_id("cap-1", capture(usd(400)))
        .then_event_names(&["capture_requested"])
        .and_then()
        .and(vec![signal(captured(None))])
        .when_id("cap-1", capture(usd(400)))
        .then_already_applied(4)
        .then_status(Status::Captured);
}

#[test]
fn a_signal_from_another_provider_is_rejected() {
    let s = sig_from(Provider::Plural, captured(None));
    given(in_authorized())
        .when(provider_signal(s))
        .then_rejected(Code::ProviderMismatch);
}

#[test]
fn an_order_at_its_bound_on_commits_takes_no_more_commands() {
    given(in_authorized())
        .tamper(|s| s.commits = COMMITS_PER_ORDER_MAX)
        .when(capture_all())
        .then_rejected(Code::OrderHistoryFull);
}

#[test]
fn a_retry_is_still_already_applied_at_the_bound_on_commits() {
    given(in_authorized())
        .and_id("cap-1", capture_all())
        .tamper(|s| s.commits = COMMITS_PER_ORDER_MAX)
        .when_id("cap-1", capture_all())
        .then_already_applied(4);
}
