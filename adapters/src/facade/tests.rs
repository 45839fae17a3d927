//! The facade end to end: a Plural flow against a local fake Plural on port 0, and every
//! provider's callback through `verify_and_parse_callback`.

use super::*;
use crate::callback::InboundCallback;
use crate::testing::{headers, money, order, t0};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use paystate_events::{CaptureMode, CustomerActionKind, SignalKind};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

async fn fake_plural() -> (String, Arc<AtomicU32>) {
    let tokens = Arc::new(AtomicU32::new(0));
    let t = tokens.clone();
    let app = Router::new()
        .route("/api/auth/v1/token", post(move || {
            let n = t.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Json(json!({"access_token": format!("tok-{n}"), "expires_in": 3600})) }
        }))
        .route("/api/pay/v1/orders", post(|h: HeaderMap, Json(b): Json<Value>| async move {
            if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok-1") {
                return (StatusCode::UNAUTHORIZED, Json(json!({"code": "UNAUTHORIZED"})));
            }
            (StatusCode::OK, Json(json!({"data": {"order_id": "v1-9", "status": "CREATED",
                "merchant_order_reference": b["merchant_order_reference"], "order_amount": b["order_amount"]}})))
        }))
        .route("/api/pay/v1/orders/{id}/payments", post(|Path(id): Path<String>| async move {
            Json(json!({"data": {"order_id": id, "status": "PENDING", "challenge_url": "https://pay.test/challenge?t=1"}}))
        }))
        .route("/api/pay/v1/orders/{id}", get(|Path(id): Path<String>| async move {
            Json(json!({"data": {"order_id": id, "status": "AUTHORIZED", "order_amount": {"value": 1100, "currency": "INR"}}}))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), tokens)
}

fn config(plural_base: &str) -> AdaptersConfig {
    let text = format!(
        r#"
        [http]
        attempts_max = 2
        backoff_base_ms = 1
        backoff_max_ms = 5
        [plural]
        base_url = "{plural_base}"
        [plural.accounts.default]
        client_id = "cid"
        client_secret = "cs-secret-1"
        webhook_secret = "my_plural_secret"
        [paykassma]
        base_url = "http://127.0.0.1:1"
        [paykassma.accounts.default]
        plugin_secret = "plugin-secret-1"
        access_key = "uowkn0b3LfBxpcWYHi4_"
        private_key = "PRIVATE_test_key_1"
        [exchanger]
        base_url = "http://127.0.0.1:1"
        [exchanger.accounts.default]
        partner = "p"
        route_id = "r"
        ipn_secret = "ipn-secret-1"
        [flitt]
        base_url = "http://127.0.0.1:1"
        [flitt.accounts.default]
        merchant_id = 1549901
        password = "test"
        [plexy]
        base_url = "http://127.0.0.1:1"
        [plexy.accounts.default]
        api_key = "plexy-key-1"
        webhook_token = "whk_1"
    "#
    );
    toml::from_str(&text).expect("valid config")
}

#[tokio::test]
async fn plural_token_order_payment_then_status() {
    let (base, tokens) = fake_plural().await;
    let adapters = Adapters::new(config(&base)).expect("valid").with_clock(t0);
    let mut o = order(Provider::Plural, 1100, "INR", CaptureMode::Manual);
    let reported = adapters
        .start_payment(&o, &PaymentInitiation::default())
        .await
        .expect("started");
    assert_eq!(reported.provider_ref.as_deref(), Some("v1-9"));
    match reported.signals.as_slice() {
        [SignalKind::Accepted { action: Some(a) }] => {
            assert_eq!(a.kind, CustomerActionKind::Challenge)
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "one token for both calls");
    o.provider_ref = reported.provider_ref;
    let status = adapters.status(&o).await.expect("status");
    assert_eq!(
        status.signals,
        vec![SignalKind::Authorized {
            amount: Some(money(1100, "INR"))
        }]
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "cached token reused");
}

#[tokio::test]
async fn unsupported_operations_are_typed() {
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let o = order(Provider::Paykassma, 30000, "BTN", CaptureMode::Auto);
    for result in [
        adapters.refund(&o, "r-1", money(100, "BTN")).await,
        adapters.cancel(&o).await,
        adapters.status(&o).await,
        adapters.capture(&o, "c-1", money(100, "BTN")).await,
    ] {
        assert!(
            matches!(
                result,
                Err(AdapterError::Unsupported {
                    provider: Provider::Paykassma,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    let ex = order(Provider::Exchanger, 100, "UAH", CaptureMode::Auto);
    assert!(matches!(
        adapters.refund(&ex, "r", money(1, "UAH")).await,
        Err(AdapterError::Unsupported { .. })
    ));
    // The extras follow the capability table too: link updates only where there are links.
    let link = |r: Result<(), AdapterError>| {
        matches!(
            r,
            Err(AdapterError::Unsupported {
                op: Op::LinkUpdate,
                ..
            })
        )
    };
    assert!(link(adapters.plexy_cancel_link(&ex).await));
    assert!(link(adapters.plexy_update_link_expiry(&o, t0()).await));
}

/// Every operation the table denies is also the connector's own answer (the trait's
/// default), and every operation it allows is implemented: no call reaches `Unsupported`
/// through a connector whose row says yes.
#[tokio::test]
async fn connectors_agree_with_the_capability_table() {
    use crate::connector::{connect, AccessTokens, Env};
    use paystate_events::capabilities::{supports, Capability};
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let tokens = AccessTokens::default();
    let env = Env {
        config: adapters.config(),
        executor: &adapters.executor,
        tokens: &tokens,
        now: t0(),
    };
    for p in Provider::ALL {
        let c = connect(p, env).expect("configured");
        assert_eq!(c.provider(), p);
        let mut o = order(p, 1000, "USD", CaptureMode::Manual);
        o.provider_ref = Some("ref-1".into());
        let unsupported =
            |r: &Result<Reported, AdapterError>| matches!(r, Err(AdapterError::Unsupported { .. }));
        let m = money(100, "USD");
        for (cap, r) in [
            (Capability::ManualCapture, c.capture(&o, "c-1", m).await),
            (Capability::Cancel, c.cancel(&o).await),
            (Capability::Refund, c.refund(&o, "r-1", m).await),
            (Capability::StatusQuery, c.status(&o).await),
        ] {
            assert_eq!(unsupported(&r), !supports(p, cap), "{p} {cap}: {r:?}");
        }
        let r = c.cancel_link(&o).await;
        let denied = matches!(r, Err(AdapterError::Unsupported { .. }));
        assert_eq!(denied, !supports(p, Capability::PaymentLinkUpdates), "{p}");
    }
}

fn cb<'a>(h: &'a [(String, String)], query: &'a str, body: &'a [u8]) -> InboundCallback<'a> {
    InboundCallback {
        headers: h,
        query,
        body,
    }
}

#[test]
fn plural_webhook_through_the_facade() {
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let body = br#"{"event_type":"ORDER_PROCESSED","data":{"order_id":"v1-5757575757-aa-hU1rUd","status":"PROCESSED"}}"#;
    let h = headers(&[
        ("webhook-id", "msg_2mN8kYx1"),
        ("webhook-timestamp", "1721381603"),
        (
            "webhook-signature",
            "v1,4To0diMAs9t0sBip6f9vlmrfE+HQzmhr5fmCDEYUbtI=",
        ),
    ]);
    let parsed = adapters
        .verify_and_parse_callback(Provider::Plural, &cb(&h, "", body), t0())
        .expect("verified");
    assert_eq!(parsed.signals, vec![SignalKind::Captured { amount: None }]);
    assert_eq!(
        parsed.hint.provider_ref.as_deref(),
        Some("v1-5757575757-aa-hU1rUd")
    );
    assert_eq!(parsed.ack.status, 200);
    let late = t0() + chrono::Duration::seconds(301);
    let err = adapters
        .verify_and_parse_callback(Provider::Plural, &cb(&h, "", body), late)
        .expect_err("stale");
    assert_eq!(err.ack().status, 401);
}

#[test]
fn paykassma_postback_through_the_facade() {
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let body = crate::paykassma::signature::tests_seed_postback().replace(
        "92a8aa6aabda4cffe9fcfc595a28c321c91d36b2",
        "caa5b706a406b7d08ff6712ac9972342f7950a85",
    );
    let parsed = adapters
        .verify_and_parse_callback(Provider::Paykassma, &cb(&[], "", body.as_bytes()), t0())
        .expect("verified");
    assert_eq!(
        parsed.signals,
        vec![SignalKind::Settled {
            amount: Some(money(30000, "BTN"))
        }]
    );
    assert_eq!(parsed.ack.body, r#"{"status":"ok"}"#);
    assert_eq!(parsed.dedup_key.as_deref(), Some("293397556789:credited"));
    // The top-level fields are not signed: flipping them still verifies, but decides nothing.
    let flipped = body.replacen("\"direction\"", "\"status\": \"fail\", \"direction\"", 1);
    let held = adapters
        .verify_and_parse_callback(Provider::Paykassma, &cb(&[], "", flipped.as_bytes()), t0())
        .expect("additional_data unchanged: verified");
    assert!(
        matches!(held.signals.as_slice(), [SignalKind::Unrecognised { .. }]),
        "{:?}",
        held.signals
    );
    assert_ne!(
        held.dedup_key, parsed.dedup_key,
        "cannot use up the genuine key"
    );
    let recurrency = body.replacen(
        "\"currency_code\": \"BTN\"",
        "\"currency_code\": \"USD\"",
        1,
    );
    let same = adapters
        .verify_and_parse_callback(
            Provider::Paykassma,
            &cb(&[], "", recurrency.as_bytes()),
            t0(),
        )
        .expect("top-level currency is not signed");
    assert_eq!(same.signals, parsed.signals, "the signed currency decides");
    let forged = body.replace("\"amount\": \"300\"", "\"amount\": \"900\"");
    let err = adapters
        .verify_and_parse_callback(Provider::Paykassma, &cb(&[], "", forged.as_bytes()), t0())
        .expect_err("forged");
    assert!(matches!(err, CallbackError::BadSignature { .. }));
}

#[test]
fn exchanger_ipn_through_the_facade() {
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let sig = "73ace053c47b49541f8597ef95c5fdad58e5aa0669be887b8c9dee10dd89fe2c";
    let body = format!("orderUID=1409&orderId=65a1f0c2e4b0a1b2c3d4e5f6&newStatus=done&inAmount=100&outAmount=0.00153&xml_from=CARDUAH&xml_to=BTC&timestamp=1717171717&signature={sig}");
    let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
    let parsed = adapters
        .verify_and_parse_callback(
            Provider::Exchanger,
            &cb(&h, "order_id=ord-1", body.as_bytes()),
            t0(),
        )
        .expect("verified");
    assert_eq!(parsed.signals, vec![SignalKind::Settled { amount: None }]);
    assert_eq!(
        parsed.hint.order_id, None,
        "the IPN does not sign our order id"
    );
    assert_eq!(
        parsed
            .hint
            .unsigned_order_id
            .map(|o| o.to_string())
            .as_deref(),
        Some("ord-1"),
        "the ipnUrl marker is only a routing hint"
    );
    assert_eq!(
        parsed.hint.provider_ref.as_deref(),
        Some("65a1f0c2e4b0a1b2c3d4e5f6"),
        "orderId, the id the IPN signs, is the reference"
    );
    let forged = body.replace("newStatus=done", "newStatus=returned");
    assert!(adapters
        .verify_and_parse_callback(Provider::Exchanger, &cb(&h, "", forged.as_bytes()), t0())
        .is_err());
    let payout_error = body.replace("newStatus=done", "newStatus=errorPayout");
    assert!(
        adapters
            .verify_and_parse_callback(
                Provider::Exchanger,
                &cb(&h, "", payout_error.as_bytes()),
                t0()
            )
            .is_err(),
        "signature covers the status"
    );
}

#[test]
fn flitt_and_plexy_callbacks_through_the_facade() {
    let adapters = Adapters::new(config("http://127.0.0.1:1")).expect("valid");
    let mut params = match json!({"order_id": "ord-1", "merchant_id": 1549901, "order_status": "approved",
        "amount": "12500", "currency": "GEL", "payment_id": "150009301", "response_status": "success",
        "preauth": "N", "capture_status": ""})
    {
        Value::Object(m) => m,
        _ => unreachable!("object literal"),
    };
    params.insert(
        "signature".into(),
        json!(crate::flitt::signature::sign("test", &params)),
    );
    let body = Value::Object(params).to_string();
    let parsed = adapters
        .verify_and_parse_callback(Provider::Flitt, &cb(&[], "", body.as_bytes()), t0())
        .expect("verified");
    assert_eq!(
        parsed.signals,
        vec![SignalKind::Captured {
            amount: Some(money(12500, "GEL"))
        }]
    );
    assert!(
        parsed.confirm_by_status,
        "protocol 1.0 does not bind keys: a callback is only a trigger"
    );
    assert_eq!(
        (
            parsed.hint.order_id.clone(),
            parsed.hint.provider_ref.clone(),
            parsed.hint.unsigned_order_id.map(|o| o.to_string())
        ),
        (None, None, Some("ord-1".to_string())),
        "order_id only says which order to ask Flitt about"
    );
    let forged = body.replace("approved", "reversed");
    assert!(adapters
        .verify_and_parse_callback(Provider::Flitt, &cb(&[], "", forged.as_bytes()), t0())
        .is_err());

    let hook = br#"{"name":"transaction.authorized","merchantId":"m","data":{"id":"tx_1","status":"authorized","amount":999,"currency":"USD","merchantReference":"ord-1"}}"#;
    let good = headers(&[("authorization", "Bearer whk_1")]);
    let parsed = adapters
        .verify_and_parse_callback(Provider::Plexy, &cb(&good, "", hook), t0())
        .expect("verified");
    assert_eq!(
        parsed.signals,
        vec![SignalKind::Authorized {
            amount: Some(money(999, "USD"))
        }]
    );
    assert!(
        parsed.confirm_by_status,
        "an unsigned body is only a trigger"
    );
    assert_eq!(
        (
            parsed.hint.order_id.clone(),
            parsed.hint.provider_ref.clone()
        ),
        (None, None)
    );
    assert_eq!(
        parsed
            .hint
            .unsigned_order_id
            .map(|o| o.to_string())
            .as_deref(),
        Some("ord-1")
    );
    let bad = headers(&[("authorization", "Bearer whk_2")]);
    let err = adapters
        .verify_and_parse_callback(Provider::Plexy, &cb(&bad, "", hook), t0())
        .expect_err("bad token");
    assert_eq!(err.ack().status, 401);
}
