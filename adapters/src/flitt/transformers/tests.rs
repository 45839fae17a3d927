use super::*;
use crate::testing::{money, order};
use paystate_events::Provider;

fn cfg() -> ProviderConfig<FlittAccount> {
    toml::from_str(
        r#"base_url = "https://pay.flitt.test"
        callback_url = "https://shop.example/cb"
        [accounts.default]
        merchant_id = 1549901
        password = "test""#,
    )
    .expect("valid config")
}

fn account() -> FlittAccount {
    cfg().accounts.remove("default").expect("default account")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn checkout_request_is_signed_like_the_sdk() {
    let mut o = order(Provider::Flitt, 12500, "GEL", CaptureMode::Auto);
    o.order_id = paystate_events::OrderId::parse("ord-1001").expect("id");
    o.merchant_reference = "x".into();
    let init = PaymentInitiation {
        params: [("order_desc".to_string(), "Test order".to_string())].into(),
        ..Default::default()
    };
    let req = checkout_request(&cfg(), &account(), &o, &init, Checkout::Url);
    assert_eq!(req.url, "https://pay.flitt.test/api/checkout/url");
    let params = obj(req.json_body().expect("json")["request"].clone());
    assert_eq!(params["payment_systems"], "paybypayme");
    assert_eq!(params["payment_method"], "paybypayme");
    assert_eq!(params["amount"], 12500);
    assert!(!params.contains_key("preauth"));
    assert!(signature::verify("test", &params));
    // The providers.md vector is this request without the Payme fields.
    let mut vector = params.clone();
    vector.remove("payment_systems");
    vector.remove("payment_method");
    vector.remove("signature");
    assert_eq!(
        signature::sign("test", &vector),
        "cdd4b5535a3c985d47d38ef2d755ab952a95a2bd"
    );
    let manual = order(Provider::Flitt, 12500, "GEL", CaptureMode::Manual);
    let token = checkout_request(&cfg(), &account(), &manual, &init, Checkout::Token);
    assert_eq!(token.url, "https://pay.flitt.test/api/checkout/token");
    assert_eq!(token.json_body().expect("json")["request"]["preauth"], "Y");
}

#[test]
fn reverse_and_capture_requests() {
    let o = order(Provider::Flitt, 12500, "GEL", CaptureMode::Manual);
    let rid = reverse_id(&o, "refund", "r-1");
    assert_eq!(rid, "ord-1-refund-r-1");
    let req = reverse_request(&cfg(), &account(), &o, money(500, "GEL"), &rid);
    let params = obj(req.json_body().expect("json")["request"].clone());
    assert_eq!(
        (params["reverse_id"].clone(), params["amount"].clone()),
        (json!("ord-1-refund-r-1"), json!(500))
    );
    assert!(signature::verify("test", &params));
    let cap = capture_request(&cfg(), &account(), &o, money(12500, "GEL"));
    assert_eq!(cap.url, "https://pay.flitt.test/api/capture/order_id");
}

fn resp(body: Value) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![],
        body: body.to_string().into(),
    }
}

#[test]
fn responses_are_checked() {
    let ok = resp(
        json!({"response": {"checkout_url": "https://pay/x", "payment_id": "150009301", "response_status": "success"}}),
    );
    let p = response_params(&ok, "test").expect("success");
    let action = checkout_action(&p, Checkout::Url).expect("url");
    assert_eq!(action.url.as_deref(), Some("https://pay/x"));
    let fail = resp(
        json!({"response": {"response_status": "failure", "error_code": 1007, "error_message": "Invalid signature"}}),
    );
    assert_eq!(
        response_params(&fail, "test"),
        Err(ResponseError::Failure {
            code: "1007".into(),
            message: "Invalid signature".into()
        })
    );
    let mut signed =
        obj(json!({"order_id": "ord-1", "order_status": "approved", "response_status": "success"}));
    signed.insert("signature".into(), json!(signature::sign("test", &signed)));
    assert!(response_params(&resp(json!({"response": signed.clone()})), "test").is_ok());
    signed.insert("order_status".into(), json!("declined"));
    assert!(matches!(
        response_params(&resp(json!({"response": signed})), "test"),
        Err(ResponseError::Unreadable(_))
    ));
}

#[test]
fn every_order_status_maps() {
    let gel = |m| Some(money(m, "GEL"));
    let base = |status: &str, extra: Value| {
        let mut p = obj(json!({"order_status": status, "amount": 12500, "currency": "GEL"}));
        p.extend(obj(extra));
        order_signals(&p, None).expect("maps")
    };
    assert_eq!(
        base("created", json!({})),
        vec![SignalKind::Accepted { action: None }]
    );
    assert_eq!(
        base("processing", json!({})),
        vec![SignalKind::Accepted { action: None }]
    );
    assert_eq!(
        base("approved", json!({})),
        vec![SignalKind::Captured { amount: gel(12500) }]
    );
    assert_eq!(
        base("approved", json!({"preauth": "Y"})),
        vec![SignalKind::Authorized { amount: gel(12500) }]
    );
    assert_eq!(
        base("approved", json!({"capture_status": "hold"})),
        vec![SignalKind::Authorized { amount: gel(12500) }]
    );
    assert_eq!(
        base(
            "approved",
            json!({"preauth": "Y", "capture_status": "captured", "capture_amount": "10000"})
        ),
        vec![SignalKind::Captured { amount: gel(10000) }]
    );
    assert_eq!(
        base("approved", json!({"reversal_amount": "2500"})),
        vec![SignalKind::Captured { amount: gel(12500) }],
        "a callback's reversal total says nothing about which refund it is"
    );
    assert_eq!(
        base("approved", json!({"preauth": "N", "capture_status": ""})),
        vec![SignalKind::Captured { amount: gel(12500) }],
        "an empty capture_status is not a preauth"
    );
    assert_eq!(
        base("approved", json!({"reversal_amount": 0})),
        vec![SignalKind::Captured { amount: gel(12500) }]
    );
    assert!(
        matches!(base("declined", json!({"response_code": 1014})).as_slice(),
        [SignalKind::Failed { operation: Operation::Payment, code, .. }] if code == "1014")
    );
    assert_eq!(base("expired", json!({})), vec![SignalKind::Cancelled]);
    assert_eq!(
        base("reversed", json!({"preauth": "Y"})),
        vec![SignalKind::Cancelled]
    );
    assert_eq!(
        base("reversed", json!({})),
        vec![SignalKind::Refunded {
            refund_id: None,
            amount: None
        }]
    );
    assert_eq!(
        base("frozen", json!({})),
        vec![SignalKind::Unrecognised {
            raw_status: "frozen".into()
        }]
    );
    assert!(order_signals(&obj(json!({"amount": 1})), None).is_err());
    assert!(order_signals(
        &obj(json!({"order_status": "approved", "amount": "1.5", "currency": "GEL"})),
        None
    )
    .is_err());
}

/// Regression: every callback after a partial reversal carried the reversal total, and each
/// was taken for a new refund (refunded twice, or a discrepancy). A status query knows the
/// order, so it reports only what the order does not show yet.
#[test]
fn reversal_totals_become_refunds_only_against_the_known_order() {
    let report = obj(
        json!({"order_status": "approved", "amount": 12500, "currency": "GEL",
        "preauth": "Y", "capture_status": "captured", "capture_amount": "10000",
        "reversal_amount": "4000"}),
    );
    let mut o = crate::testing::order(Provider::Flitt, 12500, "GEL", CaptureMode::Manual);
    o.status = paystate_events::Status::Captured;
    o.captured = paystate_events::MinorUnits(10000);
    o.refunded = paystate_events::MinorUnits(1500);
    o.refunds_pending
        .insert("r-2".into(), paystate_events::MinorUnits(2500));
    let captured = SignalKind::Captured {
        amount: Some(money(10000, "GEL")),
    };
    assert_eq!(
        order_signals(&report, Some(&o)).expect("maps"),
        vec![
            captured.clone(),
            SignalKind::Refunded {
                refund_id: Some("r-2".into()),
                amount: Some(money(2500, "GEL"))
            }
        ]
    );
    o.refunds_pending.clear();
    o.refunded = paystate_events::MinorUnits(4000);
    assert_eq!(
        order_signals(&report, Some(&o)).expect("maps"),
        vec![captured.clone()],
        "nothing new"
    );
    o.refunded = paystate_events::MinorUnits(3000);
    assert_eq!(
        order_signals(&report, Some(&o)).expect("maps"),
        vec![
            captured,
            SignalKind::Refunded {
                refund_id: None,
                amount: Some(money(1000, "GEL"))
            }
        ],
        "a reversal paystate did not ask for"
    );
}

/// A captured 10000 GEL order with `pending` refunds (our id, minor units) and nothing
/// refunded yet, and a status answer saying `reversal_amount` plus `extra`.
fn reversed_so_far(
    pending: &[(&str, u64)],
    reversal_amount: u64,
    extra: Value,
) -> (OrderState, Map<String, Value>) {
    let mut o = crate::testing::order(Provider::Flitt, 10000, "GEL", CaptureMode::Auto);
    o.status = paystate_events::Status::Captured;
    o.captured = paystate_events::MinorUnits(10000);
    for (id, units) in pending {
        o.refunds_pending
            .insert(id.to_string(), paystate_events::MinorUnits(*units));
    }
    let mut answer = obj(
        json!({"order_status": "approved", "amount": "10000", "currency": "GEL",
        "actual_amount": "10000", "reversal_amount": reversal_amount.to_string(),
        "payment_id": 814277784, "capture_status": "", "preauth": "N"}),
    );
    answer.extend(obj(extra));
    (o, answer)
}

fn refunded(id: Option<&str>, minor: u64) -> SignalKind {
    SignalKind::Refunded {
        refund_id: id.map(str::to_string),
        amount: Some(money(minor, "GEL")),
    }
}

/// The reversal signals of a status answer (after its `captured`).
fn reversal_signals(
    answer: &Map<String, Value>,
    o: &OrderState,
    attempted: Option<&str>,
) -> Vec<SignalKind> {
    let mut signals = order_signals_for(answer, Some(o), attempted).expect("maps");
    assert_eq!(
        signals.first(),
        Some(&SignalKind::Captured {
            amount: Some(money(10000, "GEL"))
        })
    );
    signals.remove(0);
    signals
}

/// Regression: refunds r-b and r-a (30 each) pending, Flitt made r-b, and a status answer
/// (the gateway confirming the reverse callback, or a reconciler probe) came before r-b's
/// own report: the new 30 was credited to r-a (first in key order), so the worker found r-a
/// no longer pending and never sent it. Which refund Flitt made cannot be told from the
/// total: nothing is completed, the answer is recorded for the worker's report or a person.
#[test]
fn a_reversal_two_pending_refunds_could_be_is_not_credited_to_either() {
    let (o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 3000, json!({}));
    let signals = reversal_signals(&answer, &o, None);
    let [SignalKind::Unrecognised { raw_status }] = signals.as_slice() else {
        panic!("recorded, not credited: {signals:?}");
    };
    assert!(
        raw_status.contains("reversal_amount:3000 GEL")
            && raw_status.contains("r-a=3000, r-b=3000")
            && raw_status.contains("payment_id:814277784"),
        "says what Flitt reported and which refunds it could be: {raw_status}"
    );
    // The same with one refund recorded already: 60 reversed, 30 in the log, two pending.
    let (mut o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 6000, json!({}));
    o.refunds_completed
        .insert("r-0".into(), paystate_events::MinorUnits(3000));
    o.refunded = paystate_events::MinorUnits(3000);
    assert!(matches!(
        reversal_signals(&answer, &o, None).as_slice(),
        [SignalKind::Unrecognised { .. }]
    ));
}

/// A pending refund smaller than what is new could be part of it (with a reversal we did
/// not ask for): not credited, and not booked as a reversal we did not ask for either (the
/// worker's report of the pending refund would then count it twice).
#[test]
fn a_reversal_a_smaller_pending_refund_could_be_part_of_is_not_attributed() {
    let (o, answer) = reversed_so_far(&[("r-a", 1000)], 3000, json!({}));
    assert!(matches!(
        reversal_signals(&answer, &o, None).as_slice(),
        [SignalKind::Unrecognised { .. }]
    ));
}

/// One pending refund of exactly the new amount, nothing else that could be part of it:
/// credited as before (a larger pending refund cannot be part of it).
#[test]
fn a_reversal_only_one_pending_refund_explains_completes_it() {
    let (o, answer) = reversed_so_far(&[("r-a", 3000), ("r-z", 5000)], 3000, json!({}));
    assert_eq!(
        reversal_signals(&answer, &o, None),
        vec![refunded(Some("r-a"), 3000)]
    );
    let (o, answer) = reversed_so_far(&[], 3000, json!({}));
    assert_eq!(
        reversal_signals(&answer, &o, None),
        vec![refunded(None, 3000)],
        "no pending refund: a reversal we did not ask for"
    );
}

/// Where the answer names the reversal by the `reverse_id` we sent (derived from our refund
/// id), that refund is credited, also among pending refunds of the same amount; at the top
/// level or in `additional_info`.
#[test]
fn a_reversal_is_matched_by_the_reverse_id_it_echoes() {
    let (o, _) = reversed_so_far(&[], 0, json!({}));
    let r_b = reverse_id(&o, "refund", "r-b");
    let top = json!({ "reverse_id": r_b });
    let info = json!({ "additional_info": json!({"capture_status": null, "reverse_id": r_b,
        "transaction_id": 2011273408u64}).to_string() });
    for extra in [top, info] {
        let (o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 3000, extra);
        assert_eq!(
            reversal_signals(&answer, &o, None),
            vec![refunded(Some("r-b"), 3000)]
        );
    }
    // 60 new, r-b named: r-b, and the rest is r-a, the only refund left that explains it.
    let extra = json!({ "reverse_id": r_b });
    let (o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 6000, extra);
    assert_eq!(
        reversal_signals(&answer, &o, None),
        vec![refunded(Some("r-b"), 3000), refunded(Some("r-a"), 3000)]
    );
    // A reverse_id that is none of our pending refunds (the void's, or unknown) names nothing.
    let extra = json!({ "reverse_id": reverse_id(&o, "cancel", "all") });
    let (o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 3000, extra);
    assert!(matches!(
        reversal_signals(&answer, &o, None).as_slice(),
        [SignalKind::Unrecognised { .. }]
    ));
}

/// Our own reverse call for r-b had an unknown outcome and its status query shows 30 new:
/// that is r-b (the worker performs an order's work one at a time, so r-a was not sent).
#[test]
fn a_reversal_after_our_unknown_reverse_call_is_the_refund_attempted() {
    let (o, answer) = reversed_so_far(&[("r-b", 3000), ("r-a", 3000)], 3000, json!({}));
    assert_eq!(
        reversal_signals(&answer, &o, Some("r-b")),
        vec![refunded(Some("r-b"), 3000)]
    );
    assert!(
        reversal_signals(
            &reversed_so_far(&[("r-b", 3000)], 0, json!({})).1,
            &o,
            Some("r-b")
        )
        .is_empty(),
        "nothing reversed: nothing credited"
    );
    let (o, answer) = reversed_so_far(&[("r-b", 5000), ("r-a", 3000)], 3000, json!({}));
    assert_eq!(
        reversal_signals(&answer, &o, Some("r-b")),
        vec![refunded(Some("r-a"), 3000)],
        "the attempted refund does not fit what is new: the usual rule"
    );
}

/// Regression: a preauth approval and its capture both say `approved` and were taken for
/// resends of each other, so the capture callback was dropped as a duplicate.
#[test]
fn callbacks_of_one_order_have_distinct_identities() {
    let hold = obj(
        json!({"payment_id": 7, "order_status": "approved", "tran_type": "purchase",
        "capture_status": "hold", "capture_amount": "0", "reversal_amount": "0"}),
    );
    let mut captured = hold.clone();
    captured.insert("tran_type".into(), json!("capture"));
    captured.insert("capture_status".into(), json!("captured"));
    captured.insert("capture_amount".into(), json!("10000"));
    let mut reversed = captured.clone();
    reversed.insert("tran_type".into(), json!("reverse"));
    reversed.insert("reversal_amount".into(), json!("2500"));
    let ids = [&hold, &captured, &reversed].map(callback_identity);
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(
        callback_identity(&hold.clone()),
        ids[0],
        "a resend is the same"
    );
}

#[test]
fn checkout_flow_is_chosen_by_a_param() {
    let with = |k: &str, v: &str| PaymentInitiation {
        params: [(k.to_string(), v.to_string())].into(),
        ..Default::default()
    };
    assert_eq!(
        checkout_kind(&PaymentInitiation::default()),
        Ok(Checkout::Url)
    );
    assert_eq!(checkout_kind(&with(FLOW_PARAM, "url")), Ok(Checkout::Url));
    assert_eq!(
        checkout_kind(&with(FLOW_PARAM, "token")),
        Ok(Checkout::Token)
    );
    assert_eq!(
        checkout_kind(&with(FLOW_PARAM_LEGACY, "token")),
        Ok(Checkout::Token)
    );
    assert!(checkout_kind(&with(FLOW_PARAM, "tokn")).is_err());
}

#[test]
fn capture_and_reverse_answers() {
    let m = money(500, "GEL");
    assert_eq!(
        capture_signals(&obj(json!({"capture_status": "captured"})), m),
        vec![SignalKind::Captured { amount: Some(m) }]
    );
    assert!(capture_signals(&obj(json!({"capture_status": "hold"})), m).is_empty());
    assert_eq!(
        reverse_signals(&obj(json!({"reverse_status": "approved"})), m, Some("r-1")),
        vec![SignalKind::Refunded {
            refund_id: Some("r-1".into()),
            amount: Some(m)
        }]
    );
    assert_eq!(
        reverse_signals(&obj(json!({"reverse_status": "approved"})), m, None),
        vec![SignalKind::Cancelled]
    );
    assert!(matches!(
        reverse_signals(&obj(json!({"reverse_status": "declined"})), m, None).as_slice(),
        [SignalKind::Failed {
            operation: Operation::Cancel,
            ..
        }]
    ));
    assert!(reverse_signals(&obj(json!({"reverse_status": "created"})), m, Some("r")).is_empty());
}

/// Flitt's documented status answer (docs.flitt.com, "Order status"): no `preauth` and no
/// `capture_status` at the top level; capture facts in `additional_info`, a JSON string,
/// `null` until a capture.
fn documented_status_answer(order_status: &str, additional_info: &str) -> Map<String, Value> {
    obj(json!({
        "order_id": "ord-1", "merchant_id": 1549901, "order_status": order_status,
        "response_status": "success", "tran_type": "purchase", "payment_id": 814543587,
        "amount": "12500", "actual_amount": "12500", "currency": "GEL", "reversal_amount": "0",
        "settlement_amount": "0", "response_code": "", "rrn": "111111111111",
        "additional_info": additional_info,
    }))
}

const INFO_NOT_CAPTURED: &str =
    r#"{"capture_status": null, "capture_amount": null, "reservation_data": null}"#;

fn known(mode: CaptureMode) -> OrderState {
    order(Provider::Flitt, 12500, "GEL", mode)
}

/// Regression: a manual-capture (preauth) order's status answer without `preauth` or
/// `capture_status` was read as captured, so paystate never captured and the hold expired.
#[test]
fn a_manual_capture_approval_without_capture_evidence_is_held() {
    let answer = documented_status_answer("approved", INFO_NOT_CAPTURED);
    assert_eq!(
        order_signals(&answer, Some(&known(CaptureMode::Manual))).expect("maps"),
        vec![SignalKind::Authorized {
            amount: Some(money(12500, "GEL"))
        }]
    );
    let mut bare = answer.clone();
    bare.remove(ADDITIONAL_INFO);
    assert_eq!(
        capture_state(&bare, Some(&known(CaptureMode::Manual))),
        Ok(CaptureState::Held),
        "no additional_info at all"
    );
    bare.insert(ADDITIONAL_INFO.into(), json!("not json"));
    assert_eq!(
        capture_state(&bare, Some(&known(CaptureMode::Manual))),
        Ok(CaptureState::Held),
        "an unreadable additional_info adds nothing"
    );
}

#[test]
fn an_automatic_capture_approval_without_capture_evidence_is_captured() {
    let answer = documented_status_answer("approved", INFO_NOT_CAPTURED);
    assert_eq!(
        order_signals(&answer, Some(&known(CaptureMode::Auto))).expect("maps"),
        vec![SignalKind::Captured {
            amount: Some(money(12500, "GEL"))
        }]
    );
    assert_eq!(
        capture_state(&answer, None),
        Ok(CaptureState::Captured),
        "a callback is evidence only and keeps its old reading"
    );
}

/// Explicit, signed capture facts decide whatever the order's capture mode.
#[test]
fn explicit_capture_evidence_decides_over_the_capture_mode() {
    let manual = known(CaptureMode::Manual);
    let auto = known(CaptureMode::Auto);
    let nested = documented_status_answer(
        "approved",
        r#"{"capture_status": "captured", "capture_amount": 10000}"#,
    );
    assert_eq!(
        order_signals(&nested, Some(&manual)).expect("maps"),
        vec![SignalKind::Captured {
            amount: Some(money(10000, "GEL"))
        }],
        "capture facts read from additional_info"
    );
    let hold = documented_status_answer("approved", r#"{"capture_status": "hold"}"#);
    assert_eq!(capture_state(&hold, Some(&auto)), Ok(CaptureState::Held));
    let mut top = documented_status_answer("approved", INFO_NOT_CAPTURED);
    top.insert("capture_status".into(), json!("captured"));
    assert_eq!(
        capture_state(&top, Some(&manual)),
        Ok(CaptureState::Captured)
    );
    top.insert("capture_status".into(), json!("hold"));
    assert_eq!(capture_state(&top, Some(&auto)), Ok(CaptureState::Held));
    let mut amount_only = documented_status_answer("approved", INFO_NOT_CAPTURED);
    amount_only.insert("capture_amount".into(), json!("12500"));
    assert_eq!(
        capture_state(&amount_only, Some(&manual)),
        Ok(CaptureState::Captured)
    );
    let mut one_stage = documented_status_answer("approved", INFO_NOT_CAPTURED);
    one_stage.insert("preauth".into(), json!("N"));
    assert_eq!(
        capture_state(&one_stage, Some(&manual)),
        Ok(CaptureState::Captured),
        "Flitt says it ran no preauth: approved is charged"
    );
    one_stage.insert("preauth".into(), json!("Y"));
    assert_eq!(
        capture_state(&one_stage, Some(&auto)),
        Ok(CaptureState::Held)
    );
}

/// A manual-capture order paystate already recorded as captured stays captured when an
/// answer says nothing about capture; a reversal is then a return, not a void.
#[test]
fn reversals_follow_what_the_order_shows_when_the_answer_is_silent() {
    let mut manual = known(CaptureMode::Manual);
    let reversed = documented_status_answer("reversed", INFO_NOT_CAPTURED);
    assert_eq!(
        order_signals(&reversed, Some(&manual)).expect("maps"),
        vec![SignalKind::Cancelled],
        "a held preauth reversed is voided"
    );
    manual.status = paystate_events::Status::Captured;
    manual.captured = paystate_events::MinorUnits(12500);
    assert_eq!(
        order_signals(&reversed, Some(&manual)).expect("maps"),
        vec![SignalKind::Refunded {
            refund_id: None,
            amount: None
        }]
    );
    let approved = documented_status_answer("approved", INFO_NOT_CAPTURED);
    assert_eq!(
        capture_state(&approved, Some(&manual)),
        Ok(CaptureState::Captured)
    );
    assert_eq!(
        order_signals(&reversed, Some(&known(CaptureMode::Auto))).expect("maps"),
        vec![SignalKind::Refunded {
            refund_id: None,
            amount: None
        }]
    );
}

mod capture_state_props {
    use super::*;
    use proptest::prelude::*;

    /// A field's presence and value: absent, null, empty, or one of `values`.
    fn field(values: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!(""))),
            proptest::sample::select(values).prop_map(|v| Some(json!(v))),
            "[a-z0-9_]{1,8}".prop_map(|v| Some(json!(v))),
        ]
    }

    fn report(
        capture_status: Option<Value>,
        capture_amount: Option<Value>,
        preauth: Option<Value>,
        nested: bool,
    ) -> Map<String, Value> {
        let mut p = documented_status_answer("approved", INFO_NOT_CAPTURED);
        let mut info = Map::new();
        for (k, v) in [
            ("capture_status", capture_status),
            ("capture_amount", capture_amount),
        ] {
            if let Some(v) = v {
                if nested {
                    info.insert(k.into(), v);
                } else {
                    p.insert(k.into(), v);
                }
            }
        }
        if nested {
            p.insert(
                ADDITIONAL_INFO.into(),
                json!(Value::Object(info).to_string()),
            );
        }
        if let Some(v) = preauth {
            p.insert("preauth".into(), v);
        }
        p
    }

    proptest! {
        /// Over every spelling of the three capture fields, at the top level or nested: an
        /// explicit `capture_status` decides; without one, a manual-capture order with no
        /// recorded capture is captured only on a captured amount or `preauth: N`.
        #[test]
        fn capture_evidence_decides_and_silence_follows_the_mode(
            cs in field(&["captured", "hold"]),
            amount in field(&["0", "12500", "1"]),
            preauth in field(&["Y", "N"]),
            nested: bool,
            manual: bool,
        ) {
            let mode = if manual { CaptureMode::Manual } else { CaptureMode::Auto };
            let p = report(cs.clone(), amount.clone(), preauth.clone(), nested);
            let got = capture_state(&p, Some(&known(mode)));
            let text_of = |v: &Option<Value>| v.as_ref().and_then(text_value);
            match text_of(&cs).as_deref() {
                Some("captured") => prop_assert_eq!(got, Ok(CaptureState::Captured)),
                Some(_) => prop_assert_eq!(got, Ok(CaptureState::Held)),
                None => {
                    let amount = text_of(&amount);
                    if amount.as_deref().is_some_and(|a| a.parse::<u64>().is_err()) {
                        prop_assert!(got.is_err(), "a capture_amount that is no amount");
                        return Ok(());
                    }
                    let captured_amount = amount.is_some_and(|a| a != "0");
                    let expected = match (captured_amount, text_of(&preauth).as_deref()) {
                        (true, _) | (false, Some("N")) => CaptureState::Captured,
                        (false, Some("Y")) => CaptureState::Held,
                        _ if manual => CaptureState::Held,
                        _ => CaptureState::Captured,
                    };
                    prop_assert_eq!(got, Ok(expected));
                }
            }
        }
    }
}
