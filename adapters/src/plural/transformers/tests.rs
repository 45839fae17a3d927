use super::*;
use crate::testing::{money, order};
use paystate_events::Provider;

fn cfg() -> ProviderConfig<PluralAccount> {
    toml::from_str(
        r#"base_url = "http://plural.test"
        [accounts.default]
        client_id = "cid"
        client_secret = "csecret"
        webhook_secret = "whsec""#,
    )
    .expect("valid config")
}

fn data(status: &str) -> OrderData {
    serde_json::from_value(json!({"order_id": "v1-1", "status": status,
        "order_amount": {"value": 1100, "currency": "INR"}}))
    .expect("order data")
}

#[test]
fn create_order_uses_reference_and_pre_auth() {
    let o = order(Provider::Plural, 1100, "INR", CaptureMode::Manual);
    let init = PaymentInitiation {
        return_url: Some("https://shop/ret".into()),
        ..Default::default()
    };
    let req = create_order_request(&cfg(), &Secret::new("tok"), &o, &init);
    assert_eq!(req.url, "http://plural.test/api/pay/v1/orders");
    assert_eq!(req.header_value("authorization"), Some("Bearer tok"));
    let body = req.json_body().expect("json body");
    assert_eq!(body["merchant_order_reference"], "ord-1");
    assert_eq!(
        body["order_amount"],
        json!({"value": 1100, "currency": "INR"})
    );
    assert_eq!(body["pre_auth"], true);
    assert_eq!(body["callback_url"], "https://shop/ret");
    assert_eq!(req.replay, Replay::Safe);
    let auto = order(Provider::Plural, 1100, "INR", CaptureMode::Auto);
    let body = create_order_request(&cfg(), &Secret::new("t"), &auto, &init)
        .json_body()
        .cloned()
        .expect("json");
    assert_eq!(body["pre_auth"], false);
}

#[test]
fn capture_and_refund_carry_derived_references() {
    let o = order(Provider::Plural, 1100, "INR", CaptureMode::Manual);
    let req = capture_request(
        &cfg(),
        &Secret::new("t"),
        "v1-1",
        &capture_reference(&o, "cap-1"),
        money(400, "INR"),
    );
    assert_eq!(req.method, Method::Put);
    assert_eq!(req.url, "http://plural.test/api/pay/v1/orders/v1-1/capture");
    let body = req.json_body().expect("json");
    assert_eq!(body["merchant_capture_reference"], "ord-1-cap-cap-1");
    assert_eq!(
        body["capture_amount"],
        json!({"value": 400, "currency": "INR"})
    );
    let req = refund_request(
        &cfg(),
        &Secret::new("t"),
        "v1-1",
        &refund_reference(&o, "r-1"),
        money(100, "INR"),
    );
    assert_eq!(req.url, "http://plural.test/api/pay/v1/refunds/v1-1");
    assert_eq!(
        req.json_body().expect("json")["merchant_order_reference"],
        "ord-1-ref-r-1"
    );
    assert_eq!(
        cancel_request(&cfg(), &Secret::new("t"), "v1-1").url,
        "http://plural.test/api/pay/v1/orders/v1-1/cancel"
    );
}

#[test]
fn payment_spec_reads_params() {
    let mut init = PaymentInitiation::default();
    assert_eq!(payment_spec(&init).expect("default").method, "CARD");
    init.params.insert("payment_method".into(), "UPI".into());
    init.params.insert(
        "payment_option".into(),
        r#"{"upi_details":{"txn_mode":"INTENT"}}"#.into(),
    );
    let spec = payment_spec(&init).expect("valid");
    assert_eq!(spec.method, "UPI");
    init.params.insert("payment_option".into(), "{".into());
    assert!(payment_spec(&init).is_err());
}

#[test]
fn every_status_maps() {
    let inr = |m| Some(money(m, "INR"));
    let cases: Vec<(&str, Vec<SignalKind>)> = vec![
        ("CREATED", vec![SignalKind::Accepted { action: None }]),
        ("PENDING", vec![SignalKind::Accepted { action: None }]),
        ("ATTEMPTED", vec![SignalKind::Accepted { action: None }]),
        (
            "AUTHORIZED",
            vec![SignalKind::Authorized { amount: inr(1100) }],
        ),
        ("PROCESSED", vec![SignalKind::Captured { amount: None }]),
        ("CANCELLED", vec![SignalKind::Cancelled]),
        (
            "FULLY_REFUNDED",
            vec![SignalKind::Refunded {
                refund_id: None,
                amount: None,
            }],
        ),
        (
            "PARTIALLY_REFUNDED",
            vec![SignalKind::Captured { amount: None }],
        ),
        (
            "SETTLED_SOMEHOW",
            vec![SignalKind::Unrecognised {
                raw_status: "SETTLED_SOMEHOW".into(),
            }],
        ),
    ];
    for (status, want) in cases {
        assert_eq!(
            order_signals(&data(status)).expect("maps"),
            want,
            "{status}"
        );
    }
    assert!(matches!(
        order_signals(&data("FAILED")).expect("maps").as_slice(),
        [SignalKind::Failed {
            operation: Operation::Payment,
            ..
        }]
    ));
}

#[test]
fn challenge_and_partial_capture_amounts() {
    let pending: OrderData =
        serde_json::from_value(json!({"order_id": "v1-1", "status": "PENDING",
        "challenge_url": "https://api.pluralpay.in/web/auth/landing/?token=x"}))
        .expect("data");
    match order_signals(&pending).expect("maps").as_slice() {
        [SignalKind::Accepted { action: Some(a) }] => {
            assert_eq!(a.kind, CustomerActionKind::Challenge);
            assert_eq!(
                a.url.as_deref(),
                Some("https://api.pluralpay.in/web/auth/landing/?token=x")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let processed: OrderData = serde_json::from_value(json!({"order_id": "v1-1", "status": "PROCESSED",
        "payments": [{"id": "p1", "status": "PROCESSED", "capture_data": [
            {"merchant_capture_reference": "c1", "capture_amount": {"value": 400, "currency": "INR"}}]}]}))
    .expect("data");
    assert_eq!(
        order_signals(&processed).expect("maps"),
        vec![SignalKind::Captured {
            amount: Some(money(400, "INR"))
        }]
    );
    let refunded = OrderData {
        status: "FULLY_REFUNDED".into(),
        ..processed.clone()
    };
    assert_eq!(
        order_signals(&refunded).expect("maps"),
        vec![
            SignalKind::Captured {
                amount: Some(money(400, "INR"))
            },
            SignalKind::Refunded {
                refund_id: None,
                amount: None
            },
        ]
    );
    let bad: OrderData = serde_json::from_value(json!({"order_id": "v1-1", "status": "AUTHORIZED",
        "order_amount": {"value": 1, "currency": "XXY"}}))
    .expect("data");
    assert!(order_signals(&bad).is_err());
}

#[test]
fn refund_responses_name_our_refund() {
    let amount = money(100, "INR");
    assert_eq!(
        refund_signals(&data("PROCESSED"), "r-1", amount),
        vec![SignalKind::Refunded {
            refund_id: Some("r-1".into()),
            amount: Some(amount)
        }]
    );
    assert!(
        matches!(refund_signals(&data("FAILED"), "r-1", amount).as_slice(),
        [SignalKind::Failed { operation: Operation::Refund, refund_id: Some(id), .. }] if id == "r-1")
    );
    assert!(refund_signals(&data("PENDING"), "r-1", amount).is_empty());
}

fn token_answer(body: &str) -> Result<TokenResponse, &'static str> {
    token_response(&HttpResponse {
        status: 200,
        headers: vec![],
        body: body.to_string().into(),
    })
}

#[test]
fn a_token_answer_is_read_field_by_field_and_its_errors_quote_nothing() {
    // Given token answers, readable and not.
    let ok = token_answer(r#"{"access_token":"eyJ.zq9.sig","expires_in":3600}"#).expect("readable");
    assert_eq!(
        (ok.access_token.expose(), ok.expires_in, ok.expires_at),
        ("eyJ.zq9.sig", Some(3600), None)
    );
    let at = token_answer(
        r#"{"access_token":"eyJ.zq9.sig","expires_at":"2026-01-01T00:00:00Z","expires_in":null}"#,
    )
    .expect("readable");
    assert_eq!(at.expires_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    // When one field is wrong, then the error names it and quotes no value.
    let cases = [
        (
            r#"{"access_token":"eyJ.zq9.sig","expires_in":"3600"}"#,
            "expires_in",
        ),
        (
            r#"{"access_token":"eyJ.zq9.sig","expires_in":1.5}"#,
            "expires_in",
        ),
        (
            r#"{"access_token":"eyJ.zq9.sig","expires_at":7}"#,
            "expires_at",
        ),
        (r#"{"access_token":""}"#, "access_token"),
        (r#"{"access_token":7}"#, "access_token"),
        (r#"{"token":"eyJ.zq9.sig"}"#, "access_token"),
        (r#"["eyJ.zq9.sig"]"#, "object"),
        (r#"{"access_token":"eyJ.zq9.sig""#, "not JSON"),
    ];
    for (body, named) in cases {
        let problem = token_answer(body).expect_err(body);
        assert!(problem.contains(named), "{body}: {problem}");
        assert!(!problem.contains("zq9"), "{body}: {problem}");
        assert!(!problem.contains("3600"), "{body}: {problem}");
    }
}
