use super::*;
use crate::plexy::signature::TildaMode;
use crate::testing::{money, order, t0};
use paystate_events::Provider;

fn cfg() -> PlexyConfig {
    toml::from_str(
        r#"base_url = "https://api.plexy.test"
        [accounts.default]
        api_key = "sk_live_1"
        webhook_token = "whk""#,
    )
    .expect("valid config")
}

#[test]
fn link_request_shape() {
    let c = cfg();
    let account = &c.common.accounts["default"];
    let o = order(Provider::Plexy, 999, "USD", CaptureMode::Manual);
    let init = PaymentInitiation {
        return_url: Some("https://shop/back".into()),
        customer_id: Some("cus_1".into()),
        ..Default::default()
    };
    let req = create_link_request(&c, account, &o, &init, t0());
    assert_eq!(req.url, "https://api.plexy.test/v1/payment-links");
    assert_eq!(
        req.header_value("authorization"),
        Some("sk_live_1"),
        "no Bearer prefix"
    );
    let b = req.json_body().expect("json");
    assert_eq!(
        (b["amount"].clone(), b["currency"].clone()),
        (json!(999), json!("USD"))
    );
    assert_eq!(b["orderReference"], "ord-1");
    assert_eq!(b["autoClearing"], false);
    assert_eq!(b["expiresAt"], "2024-07-19T09:33:23Z");
    assert_eq!(b["metadata"]["successUrl"], "https://shop/back");
    let cap = payment_op_request(&c, account, "tx_1", "capture", Some(money(950, "USD")));
    assert_eq!(cap.url, "https://api.plexy.test/v1/payments/tx_1/capture");
    assert_eq!(cap.json_body().expect("json")["amount"], "9.50");
    assert!(payment_op_request(&c, account, "tx_1", "cancel", None)
        .json_body()
        .is_none());
}

/// What a transaction with decimal amounts (`AmountUnit::Decimal`) means.
fn decimal_signals(status: &str) -> Result<Vec<SignalKind>, String> {
    transaction_signals(&tx(status), AmountUnit::Decimal)
}

fn tx(status: &str) -> Transaction {
    serde_json::from_value(
        json!({"id": "tx_1", "status": status, "amount": "9.99", "currency": "USD"}),
    )
    .expect("tx")
}

#[test]
fn every_status_maps() {
    let usd = Some(money(999, "USD"));
    assert_eq!(
        decimal_signals("created").expect("maps"),
        vec![SignalKind::Accepted { action: None }]
    );
    assert_eq!(
        decimal_signals("3d").expect("maps"),
        vec![SignalKind::Accepted { action: None }]
    );
    assert_eq!(
        decimal_signals("authorized").expect("maps"),
        vec![SignalKind::Authorized { amount: usd }]
    );
    assert_eq!(
        decimal_signals("charged").expect("maps"),
        vec![SignalKind::Captured { amount: usd }]
    );
    assert_eq!(
        decimal_signals("cancelled").expect("maps"),
        vec![SignalKind::Cancelled]
    );
    assert_eq!(
        decimal_signals("refunded").expect("maps"),
        vec![SignalKind::Refunded {
            refund_id: None,
            amount: None
        }]
    );
    for s in ["rejected", "failed"] {
        assert!(matches!(decimal_signals(s).expect("maps").as_slice(),
            [SignalKind::Failed { operation: Operation::Payment, code, .. }] if code == s));
    }
    assert_eq!(
        decimal_signals("chargeback").expect("maps"),
        vec![SignalKind::Unrecognised {
            raw_status: "chargeback".into()
        }]
    );
    let mut partial = tx("charged");
    partial.processed_amount = Some(json!(5.5));
    assert_eq!(
        transaction_signals(&partial, AmountUnit::Decimal).expect("maps"),
        vec![SignalKind::Captured {
            amount: Some(money(550, "USD"))
        }]
    );
    partial.processed_amount = Some(json!("5.555"));
    assert!(
        transaction_signals(&partial, AmountUnit::Decimal).is_err(),
        "never rounds"
    );
}

#[test]
fn minor_unit_amounts_are_the_default() {
    assert_eq!(cfg().transaction_amounts, AmountUnit::MinorUnits);
    let t: Transaction = serde_json::from_value(json!({"id": "tx_1", "status": "charged",
        "amount": 1050, "processedAmount": 550, "currency": "USD"}))
    .expect("tx");
    assert_eq!(
        transaction_signals(&t, AmountUnit::MinorUnits).expect("maps"),
        vec![SignalKind::Captured {
            amount: Some(money(550, "USD"))
        }]
    );
    let mut decimal = t.clone();
    decimal.processed_amount = Some(json!("5.50"));
    assert!(
        transaction_signals(&decimal, AmountUnit::MinorUnits).is_err(),
        "a decimal where minor units are expected is refused, not guessed"
    );
    assert!(is_open(&tx("3d")) && !is_open(&tx("authorized")));
}

#[test]
fn transaction_lists_and_picking() {
    let list =
        json!({"data": [{"id": "a", "status": "created"}, {"id": "b", "status": "authorized"}]});
    let txs = transactions_of(&list).expect("list");
    assert_eq!(
        pick(&txs, &["authorized"]).map(|t| t.id.as_str()),
        Some("b")
    );
    assert!(pick(&txs, &["charged"]).is_none());
    assert_eq!(
        transactions_of(&json!([{"id": "c", "status": "charged"}]))
            .expect("bare")
            .len(),
        1
    );
    assert!(transactions_of(&json!({"nothing": 1})).is_err());
}

#[test]
fn webhook_status_from_data_or_name() {
    let hook: Webhook =
        serde_json::from_value(json!({"name": "transaction.charged", "merchantId": "m1",
        "data": {"id": "tx_9", "amount": "9.99", "currency": "USD", "merchantReference": "ord-1"}}))
        .expect("hook");
    let t = hook.transaction().expect("tx");
    assert_eq!(
        (t.status.as_str(), t.merchant_reference.as_deref()),
        ("charged", Some("ord-1"))
    );
    let bad: Webhook =
        serde_json::from_value(json!({"name": "payout.done", "data": {"id": "x"}})).expect("hook");
    assert!(bad.transaction().is_err());
}

#[test]
fn tilda_form_round_trip() {
    let o = order(Provider::Plexy, 999, "USD", CaptureMode::Auto);
    let secret = Secret::new("s3cr3t");
    let form = tilda_form("store-42", &secret, TildaMode::HmacMd5, "P7", &o);
    assert!(form.contains(&(
        "signature".into(),
        "c9fc193bd7ecd2ac2a60196570db3aaa".into()
    )));
    assert!(form.contains(&("order[reference]".into(), "P7_ord-1".into())));
    assert!(verify_tilda_form(&form, &secret, TildaMode::HmacMd5));
    assert!(!verify_tilda_form(&form, &secret, TildaMode::PlainMd5));
    let mut tampered = form.clone();
    tampered[2].1 = "1".into();
    assert!(!verify_tilda_form(&tampered, &secret, TildaMode::HmacMd5));
}

#[test]
fn webhook_data_that_is_not_an_object_is_refused_not_a_panic() {
    // Found by adapters/tests/callback_fuzz.rs: `data["status"] = ...` panicked on a scalar.
    for data in [json!(1), json!("x"), json!([1]), json!(true)] {
        let hook = Webhook {
            name: "transaction.charged".into(),
            merchant_id: None,
            data,
        };
        assert!(hook.transaction().is_err());
    }
}

#[test]
fn link_lookup_by_order_reference() {
    let c = cfg();
    let o = order(Provider::Plexy, 999, "USD", CaptureMode::Manual);
    let req = link_by_reference_request(&c, &c.common.accounts["default"], &o.order_id);
    assert_eq!(
        req.url,
        "https://api.plexy.test/v1/payment-links/by-order-reference/ord-1"
    );
    assert_eq!(req.header_value("authorization"), Some("sk_live_1"));
    assert!(req.json_body().is_none(), "a read");
}

fn found(v: serde_json::Value) -> PaymentLink {
    serde_json::from_value(v).expect("link")
}

#[test]
fn a_link_found_by_reference_must_be_the_orders() {
    let o = order(Provider::Plexy, 999, "USD", CaptureMode::Manual);
    let ours = json!({"id": "pl_1", "url": "https://pay/pl_1", "status": "active",
        "amount": 999, "currency": "USD", "orderReference": "ord-1"});
    assert_eq!(foreign_link(&o, &found(ours.clone())), None);
    assert_eq!(
        foreign_link(&o, &found(json!({"id": "pl_1"}))),
        None,
        "what the answer does not say is not contradicted"
    );
    for (field, value) in [
        ("orderReference", json!("ord-2")),
        ("currency", json!("EUR")),
        ("amount", json!(1000)),
        ("amount", json!("9.99")),
    ] {
        let mut other = ours.clone();
        other[field] = value;
        assert!(
            foreign_link(&o, &found(other.clone())).is_some(),
            "not ours: {other}"
        );
    }
    let none = no_link_found(&o);
    assert!(
        matches!(&none, SignalKind::Probed { answer } if answer.contains("not taken as proof")),
        "a link not found decides nothing: {none:?}"
    );
}

#[test]
fn link_without_transactions() {
    let (open, raw) = link_status_signals(&found(json!({"id": "pl_1", "status": "active"})));
    assert_eq!(
        (open, raw.as_str()),
        (vec![SignalKind::Accepted { action: None }], "link.active")
    );
    for s in LINK_CLOSED_STATUSES {
        let (closed, _) = link_status_signals(&found(json!({"id": "pl_1", "status": s})));
        assert_eq!(closed, vec![SignalKind::Cancelled]);
    }
}

fn txs(statuses: &[&str]) -> Vec<Transaction> {
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::from_value(json!({"id": format!("tx_{i}"), "status": s})).expect("tx")
        })
        .collect()
}

#[test]
fn a_pending_capture_or_void_is_not_made_while_the_transaction_stays_authorized() {
    let mut o = order(Provider::Plexy, 999, "USD", CaptureMode::Manual);
    assert!(
        not_made(&o, &txs(&["authorized"])).is_empty(),
        "nothing pending"
    );
    o.capture_pending = Some(("cap-1".into(), paystate_events::MinorUnits(500)));
    let failed = not_made(&o, &txs(&["authorized"]));
    assert!(
        matches!(failed.as_slice(), [SignalKind::Failed { operation: Operation::Capture, code, message, .. }]
            if code == "not_captured" && message.contains("cap-1")),
        "{failed:?}"
    );
    for unsettled in [
        &["charged"][..],
        &["cancelled"],
        &["refunded"],
        &["3d"],
        &["authorized", "charged"],
        &["authorized", "capturing"],
        &[],
    ] {
        assert!(
            not_made(&o, &txs(unsettled)).is_empty(),
            "{unsettled:?} says nothing about a capture not made"
        );
    }
    o.capture_pending = None;
    o.cancel_pending = true;
    let failed = not_made(&o, &txs(&["failed", "authorized"]));
    assert!(
        matches!(failed.as_slice(), [SignalKind::Failed { operation: Operation::Cancel, code, .. }]
            if code == "not_cancelled"),
        "{failed:?}"
    );
}
