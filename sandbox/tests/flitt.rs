//! Flitt sandbox over real HTTP: signed requests, checkout, preauth + capture, reverse,
//! callbacks acknowledged by HTTP 200 only.

mod common;

use common::{client, sandbox, Receiver};
use paystate_adapters::flitt::signature::{sign, verify};
use paystate_sandbox::{FaultKind, FaultRule, Op, Provider, SandboxHandle};
use serde_json::{json, Map, Value};

const P: Provider = Provider::Flitt;

async fn post(
    sb: &SandboxHandle,
    path: &str,
    mut req: Map<String, Value>,
    password: &str,
) -> reqwest::Result<Value> {
    let signature = sign(password, &req);
    req.insert("signature".into(), json!(signature));
    let resp = client()
        .post(format!("{}{path}", sb.base_url(P)))
        .json(&json!({ "request": req }))
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "Flitt answers errors with 200 too");
    Ok(resp.json::<Value>().await.unwrap()["response"].clone())
}

fn order(id: &str, amount: u64, preauth: bool, cb: &str) -> Map<String, Value> {
    let mut v = json!({"order_id": id, "merchant_id": 1549901, "order_desc": "Test order", "amount": amount,
        "currency": "GEL", "payment_systems": "paybypayme", "payment_method": "paybypayme",
        "server_callback_url": cb, "response_url": ""});
    if preauth {
        v["preauth"] = json!("Y");
    }
    v.as_object().unwrap().clone()
}

fn ids(id: &str) -> Map<String, Value> {
    json!({"order_id": id, "merchant_id": 1549901})
        .as_object()
        .unwrap()
        .clone()
}

fn with(mut m: Map<String, Value>, extra: Value) -> Map<String, Value> {
    m.extend(extra.as_object().unwrap().clone());
    m
}

#[tokio::test]
async fn preauth_capture_reverse_with_signed_callbacks() {
    let rx = Receiver::start().await;
    let sb = sandbox(|_| {}).await;
    let created = post(
        &sb,
        "/api/checkout/url",
        order("ord-1", 12500, true, &rx.url),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(created["response_status"], "success");
    assert!(created["checkout_url"]
        .as_str()
        .unwrap()
        .contains("/merchants/"));
    sb.approve(P, "ord-1").unwrap();
    let capture = with(ids("ord-1"), json!({"amount": 10000, "currency": "GEL"}));
    for _ in 0..2 {
        let captured = post(&sb, "/api/capture/order_id", capture.clone(), "test")
            .await
            .unwrap();
        assert_eq!(captured["capture_status"], "captured");
        assert!(
            verify("test", captured.as_object().unwrap()),
            "responses are signed"
        );
    }
    let rev = with(
        ids("ord-1"),
        json!({"amount": 4000, "currency": "GEL", "reverse_id": "rev-1"}),
    );
    for _ in 0..2 {
        let reversed = post(&sb, "/api/reverse/order_id", rev.clone(), "test")
            .await
            .unwrap();
        assert_eq!(
            (
                reversed["reverse_status"].as_str(),
                reversed["reversal_amount"].as_str()
            ),
            (Some("approved"), Some("4000"))
        );
    }
    let status = post(&sb, "/api/status/order_id", ids("ord-1"), "test")
        .await
        .unwrap();
    assert_eq!(
        (
            status["order_status"].as_str(),
            status["reversal_amount"].as_str()
        ),
        (Some("approved"), Some("4000"))
    );
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    let seen: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            let b = h.json();
            assert!(
                verify("test", b.as_object().unwrap()),
                "callbacks are signed"
            );
            (
                b["tran_type"].as_str().unwrap().into(),
                b["order_status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("purchase", "approved"),
        ("capture", "approved"),
        ("reverse", "approved"),
    ];
    assert_eq!(seen, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let c = sb.counters(P, "ord-1");
    assert_eq!(
        (
            c.created,
            c.authorized,
            c.captured,
            c.refunded,
            c.callbacks_delivered
        ),
        (1, 1, 1, 1, 3)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_signature_duplicates_and_wrong_state() {
    let sb = sandbox(|_| {}).await;
    let bad = post(
        &sb,
        "/api/checkout/url",
        order("o2", 500, false, "http://127.0.0.1:9/cb"),
        "wrong",
    )
    .await
    .unwrap();
    assert_eq!(
        (bad["response_status"].as_str(), bad["error_code"].as_u64()),
        (Some("failure"), Some(1007))
    );
    let a = post(
        &sb,
        "/api/checkout/token",
        order("o2", 500, false, "http://127.0.0.1:9/cb"),
        "test",
    )
    .await
    .unwrap();
    let b = post(
        &sb,
        "/api/checkout/token",
        order("o2", 500, false, "http://127.0.0.1:9/cb"),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(a["token"], b["token"]);
    let c = post(
        &sb,
        "/api/checkout/token",
        order("o2", 501, false, "http://127.0.0.1:9/cb"),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(c["error_code"], 1013);
    assert_eq!(sb.totals(P).created, 1);
    let capture = with(ids("o2"), json!({"amount": 500, "currency": "GEL"}));
    let refused = post(&sb, "/api/capture/order_id", capture, "test")
        .await
        .unwrap();
    assert_eq!(refused["response_status"], "failure");
    sb.shutdown().await;
}

#[tokio::test]
async fn callbacks_need_exactly_200_and_decline_is_reported() {
    let rx = Receiver::start().await;
    rx.script(&[(201, ""), (500, "")]);
    let sb = sandbox(|_| {}).await;
    post(
        &sb,
        "/api/checkout/url",
        order("o3", 700, false, &rx.url),
        "test",
    )
    .await
    .unwrap();
    sb.decline(P, "o3").unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.json()["order_status"] == "declined"));
    let c = sb.counters(P, "o3");
    assert_eq!(
        (c.declined, c.callbacks_resent, c.callbacks_delivered),
        (1, 2, 1)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dropped_capture_response_captures_once() {
    let sb = sandbox(|_| {}).await;
    post(
        &sb,
        "/api/checkout/url",
        order("o4", 900, true, "http://127.0.0.1:9/cb"),
        "test",
    )
    .await
    .unwrap();
    sb.approve(P, "o4").unwrap();
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse).on_op(Op::Capture),
    );
    let capture = with(ids("o4"), json!({"amount": 900, "currency": "GEL"}));
    assert!(post(&sb, "/api/capture/order_id", capture.clone(), "test")
        .await
        .is_err());
    let again = post(&sb, "/api/capture/order_id", capture, "test")
        .await
        .unwrap();
    assert_eq!(again["capture_status"], "captured");
    let c = sb.counters(P, "o4");
    assert_eq!((c.captured, c.dropped_responses), (1, 1));
    sb.shutdown().await;
}
