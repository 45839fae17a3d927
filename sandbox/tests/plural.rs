//! Plural sandbox over real HTTP: token, orders, payments, capture/cancel/refund,
//! webhooks with retries, and every request and callback fault.

mod common;

use common::{client, sandbox, Receiver};
use paystate_adapters::plural::signature::verify_webhook;
use paystate_sandbox::{Action, FaultKind, FaultRule, Op, Provider, SandboxHandle};
use serde_json::{json, Value};
use std::time::Duration;

const P: Provider = Provider::Plural;

async fn token(sb: &SandboxHandle) -> String {
    let resp = client()
        .post(format!("{}/api/auth/v1/token", sb.base_url(P)))
        .json(&json!({"client_id": "1234567890", "client_secret": "asdfgwei7egyhuggwp39w8rh", "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().unwrap().to_string()
}

async fn call(
    sb: &SandboxHandle,
    tok: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Result<(u16, Value)> {
    let mut req = client()
        .request(method, format!("{}{path}", sb.base_url(P)))
        .bearer_auth(tok);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Creates an order and its card payment; returns the order id.
async fn order_with_payment(
    sb: &SandboxHandle,
    tok: &str,
    reference: &str,
    pre_auth: bool,
) -> String {
    let body = json!({"merchant_order_reference": reference, "order_amount": {"value": 1100, "currency": "INR"},
        "pre_auth": pre_auth, "callback_url": "https://shop.example/return"});
    let (status, created) = call(
        sb,
        tok,
        reqwest::Method::POST,
        "/api/pay/v1/orders",
        Some(body),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["status"], "CREATED");
    let id = created["data"]["order_id"].as_str().unwrap().to_string();
    let pay = json!({"payments": [{"payment_method": "CARD", "payment_amount": {"value": 1100, "currency": "INR"},
        "payment_option": {"card_details": {"card_number": "4111111111111111"}}}]});
    let (status, paid) = call(
        sb,
        tok,
        reqwest::Method::POST,
        &format!("/api/pay/v1/orders/{id}/payments"),
        Some(pay),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(paid["data"]["status"], "PENDING");
    assert!(paid["data"]["challenge_url"]
        .as_str()
        .unwrap()
        .contains("/web/auth/landing/?token="));
    id
}

fn capture_body(reference: &str, value: u64) -> Value {
    json!({"merchant_capture_reference": reference, "capture_amount": {"value": value, "currency": "INR"}})
}

fn verified(hit: &common::Hit) -> bool {
    let now = chrono_now();
    verify_webhook(
        "my_plural_secret",
        &hit.header("webhook-id"),
        &hit.header("webhook-timestamp"),
        &hit.body,
        &hit.header("webhook-signature"),
        now,
    )
    .is_ok()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn preauth_happy_path_with_signed_webhooks_and_return_url() {
    let rx = Receiver::start().await;
    let url = rx.url.clone();
    let sb = sandbox(|c| c.plural.webhook_url = Some(url)).await;
    let tok = token(&sb).await;
    let id = order_with_payment(&sb, &tok, "ref-1", true).await;
    let out = sb.approve(P, &id).unwrap();
    assert_eq!(out.status, "AUTHORIZED");
    let ret = out.return_url.unwrap();
    assert!(
        ret.starts_with("https://shop.example/return?order_id="),
        "{ret}"
    );
    let (status, captured) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &format!("/api/pay/v1/orders/{id}/capture"),
        Some(capture_body("cap-1", 1000)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(captured["data"]["status"], "PROCESSED");
    assert_eq!(
        captured["data"]["payments"][0]["capture_data"][0]["capture_amount"]["value"],
        1000
    );
    let hits = rx.wait_hits(2).await;
    let events: Vec<Value> = hits
        .iter()
        .map(|h| h.json()["event_type"].clone())
        .collect();
    assert_eq!(
        events,
        vec![json!("ORDER_AUTHORIZED"), json!("ORDER_PROCESSED")]
    );
    assert!(hits.iter().all(verified));
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let c = sb.counters(P, &id);
    assert_eq!(
        (c.created, c.authorized, c.captured, c.callbacks_delivered),
        (1, 1, 1, 2)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn auth_token_is_required_and_expires() {
    let sb = sandbox(|_| {}).await;
    let (status, body) = call(
        &sb,
        "nope",
        reqwest::Method::GET,
        "/api/pay/v1/orders/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let tok = token(&sb).await;
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::GET,
        "/api/pay/v1/orders/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 404);
    sb.expire_plural_tokens();
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::GET,
        "/api/pay/v1/orders/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    let bad = client().post(format!("{}/api/auth/v1/token", sb.base_url(P)))
        .json(&json!({"client_id": "1234567890", "client_secret": "wrong", "grant_type": "client_credentials"}))
        .send().await.unwrap();
    assert_eq!(bad.status(), 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn repeated_references_act_once() {
    let sb = sandbox(|_| {}).await;
    let tok = token(&sb).await;
    let body = json!({"merchant_order_reference": 112345, "order_amount": {"value": 1100, "currency": "INR"}, "pre_auth": true});
    let (_, a) = call(
        &sb,
        &tok,
        reqwest::Method::POST,
        "/api/pay/v1/orders",
        Some(body.clone()),
    )
    .await
    .unwrap();
    let (_, b) = call(
        &sb,
        &tok,
        reqwest::Method::POST,
        "/api/pay/v1/orders",
        Some(body),
    )
    .await
    .unwrap();
    assert_eq!(a["data"]["order_id"], b["data"]["order_id"]);
    assert_eq!(a["data"]["merchant_order_reference"], "112345");
    assert_eq!(sb.totals(P).created, 1);
    let id = order_with_payment(&sb, &tok, "ref-2", true).await;
    sb.approve(P, &id).unwrap();
    let path = format!("/api/pay/v1/orders/{id}/capture");
    for _ in 0..2 {
        let (status, v) = call(
            &sb,
            &tok,
            reqwest::Method::PUT,
            &path,
            Some(capture_body("cap-x", 1100)),
        )
        .await
        .unwrap();
        assert_eq!(
            (status, v["data"]["status"].as_str()),
            (200, Some("PROCESSED"))
        );
    }
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &path,
        Some(capture_body("cap-other", 1100)),
    )
    .await
    .unwrap();
    assert_eq!(
        status, 400,
        "a second capture with another reference is refused"
    );
    let refund = json!({"merchant_order_reference": "rf-1", "order_amount": {"value": 600, "currency": "INR"}});
    for _ in 0..2 {
        let (status, v) = call(
            &sb,
            &tok,
            reqwest::Method::POST,
            &format!("/api/pay/v1/refunds/{id}"),
            Some(refund.clone()),
        )
        .await
        .unwrap();
        assert_eq!((status, v["data"]["type"].as_str()), (200, Some("REFUND")));
    }
    assert_eq!(sb.order(P, &id)["status"], "PARTIALLY_REFUNDED");
    let rest = json!({"merchant_order_reference": "rf-2", "order_amount": {"value": 500, "currency": "INR"}});
    call(
        &sb,
        &tok,
        reqwest::Method::POST,
        &format!("/api/pay/v1/refunds/{id}"),
        Some(rest),
    )
    .await
    .unwrap();
    assert_eq!(sb.order(P, &id)["status"], "FULLY_REFUNDED");
    let c = sb.counters(P, &id);
    assert_eq!((c.captured, c.refunded), (1, 2));
    sb.shutdown().await;
}

#[tokio::test]
async fn decline_cancel_and_state_rules() {
    let sb = sandbox(|_| {}).await;
    let tok = token(&sb).await;
    let declined = order_with_payment(&sb, &tok, "ref-d", true).await;
    let out = sb.decline(P, &declined).unwrap();
    assert_eq!(out.status, "FAILED");
    assert!(out.return_url.unwrap().contains("error_code="));
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &format!("/api/pay/v1/orders/{declined}/capture"),
        Some(capture_body("c", 1100)),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        sb.approve(P, &declined).is_err(),
        "a failed order cannot be approved"
    );
    let id = order_with_payment(&sb, &tok, "ref-c", true).await;
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &format!("/api/pay/v1/orders/{id}/cancel"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "cancel only from AUTHORIZED");
    sb.act(P, &id, Action::Complete3ds { success: true })
        .unwrap();
    let (status, v) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &format!("/api/pay/v1/orders/{id}/cancel"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (status, v["data"]["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &format!("/api/pay/v1/orders/{id}/cancel"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(sb.counters(P, &id).cancelled, 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn request_faults_delay_5xx_and_dropped_response_act_once() {
    let sb = sandbox(|_| {}).await;
    let tok = token(&sb).await;
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 }).on_op(Op::Create),
    );
    let body = json!({"merchant_order_reference": "r5", "order_amount": {"value": 1100, "currency": "INR"}, "pre_auth": true});
    let (status, _) = call(
        &sb,
        &tok,
        reqwest::Method::POST,
        "/api/pay/v1/orders",
        Some(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        sb.totals(P).created,
        0,
        "a 5xx means the provider did not act"
    );
    call(
        &sb,
        &tok,
        reqwest::Method::POST,
        "/api/pay/v1/orders",
        Some(body),
    )
    .await
    .unwrap();
    assert_eq!(sb.totals(P).created, 1);

    let id = order_with_payment(&sb, &tok, "r6", true).await;
    sb.approve(P, &id).unwrap();
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse)
            .on_op(Op::Capture)
            .on_order(&id),
    );
    let path = format!("/api/pay/v1/orders/{id}/capture");
    let dropped = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &path,
        Some(capture_body("cap-d", 1100)),
    )
    .await;
    assert!(
        dropped.is_err(),
        "the connection is closed without an answer"
    );
    let (status, v) = call(
        &sb,
        &tok,
        reqwest::Method::PUT,
        &path,
        Some(capture_body("cap-d", 1100)),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, v["data"]["status"].as_str()),
        (200, Some("PROCESSED"))
    );
    let c = sb.counters(P, &id);
    assert_eq!((c.captured, c.dropped_responses), (1, 1));

    sb.add_fault(
        P,
        FaultRule::once(FaultKind::Delay { ms: 300 }).on_op(Op::Status),
    );
    let started = std::time::Instant::now();
    call(
        &sb,
        &tok,
        reqwest::Method::GET,
        &format!("/api/pay/v1/orders/{id}"),
        None,
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    sb.add_fault(
        P,
        FaultRule::once(FaultKind::WithholdResponse { ms: 4000 }).on_op(Op::Status),
    );
    let short = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let withheld = short
        .get(format!("{}/api/pay/v1/orders/{id}", sb.base_url(P)))
        .bearer_auth(&tok)
        .send()
        .await;
    assert!(withheld.is_err(), "the client times out");
    sb.shutdown().await;
}

#[tokio::test]
async fn webhooks_retry_until_2xx_with_the_same_id() {
    let rx = Receiver::start().await;
    rx.script(&[(500, "boom"), (404, "")]);
    let url = rx.url.clone();
    let sb = sandbox(|c| c.plural.webhook_url = Some(url)).await;
    let tok = token(&sb).await;
    let id = order_with_payment(&sb, &tok, "r-retry", true).await;
    sb.approve(P, &id).unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| h.header("webhook-id") == hits[0].header("webhook-id")));
    let c = sb.counters(P, &id);
    assert_eq!(
        (
            c.callbacks_attempts,
            c.callbacks_resent,
            c.callbacks_delivered
        ),
        (3, 2, 1)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn callback_faults_reorder_duplicate_bad_signature_drop() {
    let rx = Receiver::start().await;
    rx.judge(|h| {
        if verified(h) {
            (200, String::new())
        } else {
            (401, String::new())
        }
    });
    let url = rx.url.clone();
    let sb = sandbox(|c| c.plural.webhook_url = Some(url)).await;
    let tok = token(&sb).await;
    let id = order_with_payment(&sb, &tok, "r-faults", false).await;
    sb.add_fault(P, FaultRule::once(FaultKind::ReorderCallbacks));
    sb.add_fault(P, FaultRule::once(FaultKind::BadSignatureCallback));
    sb.approve(P, &id).unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let events: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.json()["event_type"].as_str().unwrap().to_string())
        .collect();
    // PROCESSED overtakes AUTHORIZED; its first attempt is badly signed, refused, and retried.
    assert_eq!(
        events,
        vec!["ORDER_PROCESSED", "ORDER_AUTHORIZED", "ORDER_PROCESSED"]
    );
    let c = sb.counters(P, &id);
    assert_eq!(
        (
            c.callbacks_bad_signature,
            c.callbacks_reordered,
            c.callbacks_delivered
        ),
        (1, 1, 2)
    );

    let second = order_with_payment(&sb, &tok, "r-dup", true).await;
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::DuplicateCallback).on_order(&second),
    );
    sb.approve(P, &second).unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let dups: Vec<String> = rx
        .hits()
        .iter()
        .skip(3)
        .map(|h| h.header("webhook-id"))
        .collect();
    assert_eq!(dups.len(), 2);
    assert_eq!(dups[0], dups[1]);
    let third = order_with_payment(&sb, &tok, "r-drop", true).await;
    sb.add_fault(P, FaultRule::once(FaultKind::DropCallback));
    sb.approve(P, &third).unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    assert_eq!(sb.counters(P, &third).callbacks_dropped, 1);
    assert_eq!(rx.hits().len(), 5);
    sb.shutdown().await;
}
