use super::*;
use crate::testing::{money, order};
use paystate_events::{CaptureMode, Provider};

fn cfg() -> ProviderConfig<PaykassmaAccount> {
    toml::from_str(
        r#"base_url = "https://api.paykassma.test"
        [accounts.default]
        plugin_secret = "plug-1"
        access_key = "uowkn0b3LfBxpcWYHi4_"
        private_key = "PRIVATE_test_key_1""#,
    )
    .expect("valid config")
}

fn activation(key1: &str) -> Activation {
    Activation {
        activation_id: "cmd-9".into(),
        key1: key1.into(),
        label: "payer-1".into(),
        screenshot: Screenshot {
            file_name: "s.png".into(),
            content_type: "image/png".into(),
            bytes: Bytes::from_static(b"png"),
        },
    }
}

#[test]
fn create_request_and_wallet_action() {
    let c = cfg();
    let o = order(Provider::Paykassma, 30000, "BTN", CaptureMode::Auto);
    let req = create_request(&c, &c.accounts["default"], &o, "eligen1di1");
    assert_eq!(
        req.url,
        "https://api.paykassma.test/api/v1/transaction/create/bnb_ml"
    );
    assert_eq!(req.query[0].0, "secret");
    assert!(!format!("{req:?}").contains("plug-1"));
    assert_eq!(
        req.json_body(),
        Some(&json!({"currency": "BTN", "label": "eligen1di1"}))
    );
    let ok: ApiAnswer = serde_json::from_value(
        json!({"status": "ok", "params": {"Wallet number": "wallet_number",
        "Account name": "Account_name", "is_check_amount": null}}),
    )
    .expect("answer");
    let action = wallet_action(&ok).expect("wallet");
    assert_eq!(action.kind, CustomerActionKind::WalletTransfer);
    assert_eq!(action.details["wallet_number"], "wallet_number");
    assert_eq!(action.details["account_name"], "Account_name");
    assert!(!action.details.contains_key("is_check_amount"));
    let fail: ApiAnswer =
        serde_json::from_value(json!({"status": "fail", "message": "MESSAGE"})).expect("answer");
    assert!(!answer_ok(&fail));
    assert!(label(&PaymentInitiation::default()).is_err());
}

#[test]
fn activation_is_validated_multipart() {
    let c = cfg();
    let o = order(Provider::Paykassma, 30000, "BTN", CaptureMode::Auto);
    let req = activation_request(&c, &c.accounts["default"], &o, &activation("123456789012"))
        .expect("valid");
    assert_eq!(
        req.url,
        "https://api.paykassma.test/api/v1/possible-transaction"
    );
    let crate::http::Body::Multipart(parts) = &req.body else {
        panic!("not multipart")
    };
    let text = |n: &str| {
        parts.iter().find_map(|p| match p {
            Part::Text { name, value } if name == n => Some(value.clone()),
            _ => None,
        })
    };
    assert_eq!(text("amount").as_deref(), Some("300"));
    assert_eq!(
        text("custom_transaction_id").as_deref(),
        Some("ord-1.act.cmd-9")
    );
    assert_eq!(text("wallet_type").as_deref(), Some("bnb_ml"));
    assert!(parts
        .iter()
        .any(|p| matches!(p, Part::File { name, .. } if name == "screenshot")));
    for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
        assert!(
            activation_request(&c, &c.accounts["default"], &o, &activation(bad)).is_err(),
            "{bad}"
        );
    }
    let fractional = order(Provider::Paykassma, 30050, "BTN", CaptureMode::Auto);
    assert!(activation_request(
        &c,
        &c.accounts["default"],
        &fractional,
        &activation("123456789012")
    )
    .is_err());
    assert_eq!(
        keys::order_id_of("ord-1.act.cmd-9")
            .map(|o| o.to_string())
            .as_deref(),
        Some("ord-1")
    );
}

fn items(v: serde_json::Value) -> Vec<PostbackItem> {
    serde_json::from_value(v).expect("items")
}

fn top(v: serde_json::Value) -> Postback {
    serde_json::from_value(v).expect("pb")
}

#[test]
fn postback_statuses_are_decided_on_the_signed_items() {
    let credited = items(
        json!([{"amount": "300", "currency_code": "BTN", "transaction_id": "293397556789", "withdrawal_id": null}]),
    );
    let d = postback_signals(&credited, &top(json!({"direction": "ingoing"}))).expect("maps");
    assert_eq!(
        d.signals,
        vec![SignalKind::Settled {
            amount: Some(money(30000, "BTN"))
        }]
    );
    assert_eq!(d.label, "credited");
    // The unsigned top-level amount and currency play no part.
    let d2 = postback_signals(
        &credited,
        &top(json!({"direction": "ingoing", "amount": 1, "currency_code": "USD"})),
    )
    .expect("maps");
    assert_eq!(d2, d);
    // Unsigned fields can hold a report back, never move money.
    for unsigned in [
        json!({"status": "fail", "direction": "ingoing"}),
        json!({"status": "failed"}),
        json!({"direction": "outgoing"}),
    ] {
        let held = postback_signals(&credited, &top(unsigned.clone())).expect("maps");
        assert!(
            matches!(held.signals.as_slice(), [SignalKind::Unrecognised { raw_status }] if raw_status.starts_with("unsigned ")),
            "{unsigned}: {held:?}"
        );
        assert_ne!(held.label, d.label, "a flipped copy has its own dedup key");
    }
    // A signed withdrawal is not a deposit credited.
    let withdrawal = items(json!([{"amount": "300", "currency_code": "BTN", "withdrawal_id": 7}]));
    assert!(matches!(
        postback_signals(&withdrawal, &top(json!({"direction": "ingoing"})))
            .expect("maps")
            .signals
            .as_slice(),
        [SignalKind::Unrecognised { .. }]
    ));
    // The currency must be signed too: the top-level one is not used.
    let no_currency = items(json!([{"amount": "300", "transaction_id": "1"}]));
    assert!(postback_signals(
        &no_currency,
        &top(json!({"direction": "ingoing", "currency_code": "BTN"}))
    )
    .is_err());
    let no_amount = items(json!([{"currency_code": "BTN", "transaction_id": "1"}]));
    assert!(postback_signals(&no_amount, &top(json!({"direction": "ingoing"}))).is_err());
    let bad = items(json!([{"amount": "3.005", "currency_code": "BTN"}]));
    assert!(postback_signals(&bad, &top(json!({"direction": "ingoing"}))).is_err());
}

fn deposit(tx: &str, order: &str, amount: &str) -> serde_json::Value {
    json!({"amount": amount, "currency_code": "BTN", "transaction_id": tx,
        "plugin_custom_order_id": order, "withdrawal_id": null})
}

/// Regression: only the first signed item was read; a second one produced nothing and the
/// postback was acknowledged, so it was never resent and the transaction was lost.
#[test]
fn a_two_item_postback_settles_the_first_and_flags_the_second() {
    let ingoing = top(json!({"direction": "ingoing"}));
    let two = items(json!([
        deposit("293397556789", "ord-1.act.a1", "300"),
        deposit("293397556790", "ord-2.act.b2", "150"),
    ]));
    let d = postback_signals(&two, &ingoing).expect("maps");
    let [SignalKind::Settled { amount }, SignalKind::NeedsReview { reason }] = d.signals.as_slice()
    else {
        panic!("{d:?}")
    };
    assert_eq!(*amount, Some(money(30000, "BTN")), "the first item alone");
    assert!(
        reason.contains("transaction_id 293397556790")
            && reason.contains("ord-2.act.b2")
            && reason.contains("150 BTN")
            && !reason.contains("293397556789"),
        "{reason}"
    );
    assert!(d.label.starts_with("credited+1:"), "{}", d.label);
    let one = items(json!([deposit("293397556789", "ord-1.act.a1", "300")]));
    let single = postback_signals(&one, &ingoing).expect("maps");
    assert_eq!(
        single.label, "credited",
        "one-item postbacks keep their keys"
    );
    assert_ne!(single.label, d.label, "an added item is not a resend");
    let other = items(json!([
        deposit("293397556789", "ord-1.act.a1", "300"),
        deposit("293397556791", "ord-2.act.b2", "150"),
    ]));
    assert_ne!(
        postback_signals(&other, &ingoing).expect("maps").label,
        d.label,
        "other extra items, another key"
    );
    assert_eq!(
        postback_signals(&two, &ingoing).expect("maps"),
        d,
        "resends agree"
    );
}

/// Extra items are flagged whatever the first item says, and never move money.
#[test]
fn extra_items_are_flagged_when_the_first_is_held_or_a_withdrawal() {
    let extra = deposit("2", "ord-2.act.b", "150");
    let withdrawal_first = items(json!([
        {"amount": "300", "currency_code": "BTN", "transaction_id": "1", "withdrawal_id": 7},
        extra.clone(),
    ]));
    let d = postback_signals(&withdrawal_first, &top(json!({}))).expect("maps");
    assert!(
        matches!(
            d.signals.as_slice(),
            [
                SignalKind::Unrecognised { .. },
                SignalKind::NeedsReview { .. }
            ]
        ),
        "{d:?}"
    );
    let held = postback_signals(
        &items(json!([deposit("1", "ord-1.act.a", "300"), extra])),
        &top(json!({"status": "fail"})),
    )
    .expect("maps");
    assert!(
        matches!(held.signals.as_slice(), [SignalKind::Unrecognised { .. }, SignalKind::NeedsReview { reason }] if reason.contains("transaction_id 2 ")),
        "{held:?}"
    );
}

#[test]
fn the_review_reason_is_bounded() {
    let many: Vec<serde_json::Value> = (0..40)
        .map(|n| deposit(&format!("{n:0>300}"), &"o".repeat(500), "1"))
        .collect();
    let d = postback_signals(&items(json!(many)), &top(json!({}))).expect("maps");
    let Some(SignalKind::NeedsReview { reason }) = d.signals.last() else {
        panic!("{d:?}")
    };
    assert!(reason.ends_with("; and 31 more"), "{reason}");
    assert!(reason.len() < 2048, "{}", reason.len());
    assert!(d.label.len() < 64, "{}", d.label);
}

mod extra_item_props {
    use super::*;
    use proptest::prelude::*;

    fn item() -> impl Strategy<Value = serde_json::Value> {
        (
            "[0-9a-zA-Z._-]{0,20}",
            "[0-9a-z.-]{0,20}",
            "[1-9][0-9]{0,5}",
            any::<bool>(),
        )
            .prop_map(|(tx, order, amount, withdrawal)| {
                json!({"transaction_id": tx, "plugin_custom_order_id": order, "amount": amount,
                    "currency_code": "BTN", "withdrawal_id": if withdrawal { json!(9) } else { json!(null) }})
            })
    }

    proptest! {
        /// Over any signed items: the first alone decides (the same signals as a postback of
        /// it alone), money moves at most once, and every further item is flagged for
        /// review, named by its transaction id while within the listed bound.
        #[test]
        fn no_signed_item_is_dropped(list in proptest::collection::vec(item(), 1..12)) {
            let all = items(json!(list));
            let ingoing = top(json!({"direction": "ingoing"}));
            let d = postback_signals(&all, &ingoing).expect("maps");
            let first = postback_signals(&all[..1], &ingoing).expect("maps");
            prop_assert_eq!(&d.signals[..first.signals.len()], first.signals.as_slice());
            prop_assert!(d.label.starts_with(&first.label));
            let moving = d.signals.iter().filter(|s| matches!(s, SignalKind::Settled { .. })).count();
            prop_assert!(moving <= 1);
            if all.len() == 1 {
                prop_assert_eq!(d, first);
            } else {
                let Some(SignalKind::NeedsReview { reason }) = d.signals.last() else {
                    return Err(TestCaseError::fail(format!("{d:?}")));
                };
                prop_assert_eq!(d.signals.len(), first.signals.len() + 1);
                for i in all.iter().skip(1).take(EXTRA_ITEMS_LISTED_MAX) {
                    let tx = i.transaction_id.as_ref().and_then(crate::flow::json_text).unwrap_or_else(|| "-".into());
                    let named = format!("transaction_id {tx} ");
                    prop_assert!(reason.contains(&named), "{} not in {}", named, reason);
                }
            }
        }
    }
}
