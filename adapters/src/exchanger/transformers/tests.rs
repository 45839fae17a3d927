use super::*;
use crate::testing::{money, order};
use paystate_events::{CaptureMode, Provider};

fn cfg() -> ExchangerConfig {
    toml::from_str(
        r#"base_url = "https://www.exchanger.test"
        callback_url = "https://gw.example/callbacks/exchanger"
        [accounts.default]
        partner = "p1"
        route_id = "65a1f0c2e4b0a1b2c3d4e5f0"
        ipn_secret = "ipn-secret-1""#,
    )
    .expect("valid config")
}

#[test]
fn create_request_and_payment_page() {
    let c = cfg();
    let account = &c.common.accounts["default"];
    let o = order(Provider::Exchanger, 10050, "UAH", CaptureMode::Auto);
    let mut init = PaymentInitiation {
        return_url: Some("https://shop/back".into()),
        ..Default::default()
    };
    init.params.insert("to.wallet".into(), "bc1q...".into());
    let req = create_request(&c, account, &o, &init).expect("valid");
    assert_eq!(
        req.url,
        "https://www.exchanger.test/public/exchanger/order/create"
    );
    assert_eq!(req.replay, Replay::Unsafe);
    let b = req.json_body().expect("json");
    assert_eq!(b["amount"].to_string(), "100.5");
    assert_eq!(
        b["toValues"],
        json!([{"key": "wallet", "value": "bc1q..."}])
    );
    assert_eq!(
        b["ipnUrl"],
        "https://gw.example/callbacks/exchanger?order_id=ord-1"
    );
    assert_eq!(b["partner"], "p1");
    let (reference, action) = created(
        &c,
        account,
        &json!({"status": "success", "data": {"orderId": "65a1f0c2e4b0a1b2c3d4e5f6",
            "orderUID": 1409, "secret": "dGqwF2M2eBPaSN1G5ljMS1cb"}}),
    )
    .expect("created");
    assert_eq!(reference, "65a1f0c2e4b0a1b2c3d4e5f6");
    assert_eq!(
        action.url.as_deref(),
        Some("https://www.exchanger.test/en/payment/1409/dGqwF2M2eBPaSN1G5ljMS1cb")
    );
    assert_eq!(
        created(&c, account, &json!({"data": {"uid": "7", "secret": "s"}}))
            .expect("uid only")
            .0,
        "7",
        "without orderId the uid is the reference"
    );
    assert!(created(&c, account, &json!({"uid": "7"})).is_err());
    assert_eq!(
        amount_number(money(10_000, "UAH"))
            .expect("whole")
            .to_string(),
        "100",
        "a whole amount is an integer, not 100.0"
    );
    assert_eq!(
        amount_number(money(1700, "JPY"))
            .expect("exact")
            .to_string(),
        "1700"
    );
}

#[test]
fn every_status_maps() {
    let s = |raw| status_signals(raw, Some("100"), Some("CARDUAH")).expect("maps");
    for pending in ["new", "waitPayment", "inProgress", "hold"] {
        assert_eq!(
            s(pending),
            vec![SignalKind::Accepted { action: None }],
            "{pending}"
        );
    }
    assert!(matches!(
        s("errorPayment").as_slice(),
        [SignalKind::Failed {
            operation: Operation::Payment,
            ..
        }]
    ));
    assert_eq!(
        s("inProgressPayout"),
        vec![SignalKind::Captured { amount: None }]
    );
    assert!(
        matches!(
            s("errorPayout").as_slice(),
            [
                SignalKind::Captured { amount: None },
                SignalKind::NeedsReview { .. }
            ]
        ),
        "the funds arrived, then the payout failed: not a plain failure"
    );
    assert_eq!(s("done"), vec![SignalKind::Settled { amount: None }]);
    assert_eq!(
        s("returned"),
        vec![
            SignalKind::Captured { amount: None },
            SignalKind::Refunded {
                refund_id: None,
                amount: None
            }
        ]
    );
    assert_eq!(s("deleted"), vec![SignalKind::Cancelled]);
    assert_eq!(
        s("paused"),
        vec![SignalKind::Unrecognised {
            raw_status: "paused".into()
        }]
    );
    assert_eq!(
        status_signals("done", Some("100.50"), Some("UAH")).expect("maps"),
        vec![SignalKind::Settled {
            amount: Some(money(10050, "UAH"))
        }]
    );
    assert!(status_signals("done", Some("1.005"), Some("UAH")).is_err());
}

#[test]
fn form_encoding_and_status_request() {
    let mut c = cfg();
    let account = c.common.accounts["default"].clone();
    let status = status_request(&c, &account, "65a1f0c2e4b0a1b2c3d4e5f6");
    assert_eq!(
        status.json_body().expect("json"),
        &json!({"orderId": "65a1f0c2e4b0a1b2c3d4e5f6"})
    );
    c.encoding = Encoding::Form;
    c.status_id_field = "uid".into();
    let o = order(Provider::Exchanger, 10050, "UAH", CaptureMode::Auto);
    let mut init = PaymentInitiation::default();
    init.params.insert("to.wallet".into(), "bc1q".into());
    let req = create_request(&c, &account, &o, &init).expect("valid");
    assert!(req.json_body().is_none(), "a form, not JSON");
    let fields = form_fields(
        &json!({"amount": 100.5, "clientCallbackUrl": null, "agreement": true,
        "toValues": [{"key": "wallet", "value": "bc1q"}]}),
    );
    assert_eq!(
        fields,
        vec![
            ("agreement".to_string(), "true".to_string()),
            ("amount".to_string(), "100.5".to_string()),
            ("toValues[0][key]".to_string(), "wallet".to_string()),
            ("toValues[0][value]".to_string(), "bc1q".to_string()),
        ]
    );
    assert!(status_request(&c, &account, "1409").json_body().is_none());
}
