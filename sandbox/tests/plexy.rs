//! Plexy sandbox over real HTTP: payment links, transactions, capture/cancel/refund with
//! decimal amounts, and bearer-authenticated webhooks.

mod common;

use common::{client, sandbox, Receiver};
use paystate_sandbox::{Action, FaultKind, FaultRule, Provider, SandboxHandle};
use serde_json::{json, Value};

const P: Provider = Provider::Plexy;
const KEY: &str = "plexy-test-api-key";

async fn call(sb: &SandboxHandle, key: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", sb.base_url(P));
    let req = match body {
        Some(b) => client().post(url).json(&b),
        None => client().get(url),
    };
    let resp = req.header("authorization", key).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn link(sb: &SandboxHandle, reference: &str, auto: bool) -> String {
    let body = json!({"amount": 1050, "currency": "USD", "customerId": "c-1", "description": "Order",
        "expiresAt": "2030-01-01T00:00:00Z", "metadata": {"successUrl": "https://s", "failureUrl": "https://f", "cancelUrl": "https://c"},
        "orderReference": reference, "autoClearing": auto});
    let (status, v) = call(sb, KEY, "/v1/payment-links", Some(body)).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("active")), "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("pl_"));
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn link_authorize_capture_refund_with_webhooks() {
    let rx = Receiver::start().await;
    rx.judge(|h| {
        if h.header("authorization") == "Bearer plexy-test-webhook-token" {
            (200, String::new())
        } else {
            (401, String::new())
        }
    });
    let url = rx.url.clone();
    let sb = sandbox(|c| c.plexy.webhook_url = Some(url)).await;
    let id = link(&sb, "proj_1", false).await;
    sb.act(P, &id, Action::Challenge).unwrap();
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::BadSignatureCallback).on_order(&id),
    );
    let tx = sb
        .act(P, &id, Action::Complete3ds { success: true })
        .unwrap()
        .reference
        .unwrap();
    let (_, txs) = call(
        &sb,
        KEY,
        &format!("/v1/transactions/by-payment-link/{id}"),
        None,
    )
    .await;
    assert_eq!(txs["transactions"][0]["status"], "authorized");
    let (status, v) = call(
        &sb,
        KEY,
        &format!("/payments/{tx}/capture"),
        Some(json!({"amount": null})),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str(), v["processedAmount"].as_u64()),
        (200, Some("charged"), Some(1050))
    );
    let (status, _) = call(&sb, KEY, &format!("/payments/{tx}/cancel"), Some(json!({}))).await;
    assert_eq!(status, 400, "cancel only from authorized");
    let (status, v) = call(
        &sb,
        KEY,
        &format!("/v1/payments/{tx}/refund"),
        Some(json!({"amount": 5.5})),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str(), v["refundedAmount"].as_u64()),
        (200, Some("charged"), Some(550)),
        "a partial refund leaves the transaction charged"
    );
    let (status, v) = call(
        &sb,
        KEY,
        &format!("/v1/payments/{tx}/refund"),
        Some(json!({"amount": "6.00"})),
    )
    .await;
    assert_eq!(status, 400, "more than what is left: {v}");
    let (status, v) = call(
        &sb,
        KEY,
        &format!("/v1/payments/{tx}/refund"),
        Some(json!({"amount": null})),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str(), v["refundedAmount"].as_u64()),
        (200, Some("refunded"), Some(1050)),
        "the rest: fully refunded"
    );
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let names: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.json()["name"].as_str().unwrap().to_string())
        .collect();
    // The 3d webhook's first attempt carried a bad token and is retried a minute (scaled) later.
    assert_eq!(
        names,
        [
            "transaction.3d",
            "transaction.authorized",
            "transaction.charged",
            "transaction.refunded",
            "transaction.3d"
        ]
    );
    let c = sb.counters(P, &id);
    assert_eq!(
        (
            c.authorized,
            c.captured,
            c.refunded,
            c.callbacks_delivered,
            c.callbacks_bad_signature
        ),
        (1, 1, 2, 4, 1)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn auth_duplicates_decline_and_auto_clearing() {
    let rx = Receiver::start().await;
    let url = rx.url.clone();
    let sb = sandbox(|c| c.plexy.webhook_url = Some(url)).await;
    let (status, _) = call(&sb, &format!("Bearer {KEY}"), "/v1/payment-links/x", None).await;
    assert_eq!(status, 401, "the key goes without Bearer");
    let a = link(&sb, "proj_2", true).await;
    let b = link(&sb, "proj_2", true).await;
    assert_eq!(a, b);
    assert_eq!(sb.totals(P).created, 1);
    let out = sb.approve(P, &a).unwrap();
    assert_eq!(out.status, "charged", "autoClearing captures at once");
    let declined = link(&sb, "proj_3", false).await;
    assert_eq!(sb.decline(P, &declined).unwrap().status, "rejected");
    assert!(sb.approve(P, &declined).is_err());
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let names: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.json()["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "transaction.authorized",
            "transaction.charged",
            "transaction.rejected"
        ]
    );
    assert_eq!(rx.hits()[0].json()["data"]["merchantReference"], "proj_2");
    sb.shutdown().await;
}

#[tokio::test]
async fn links_are_cancelled_and_their_expiry_moved_only_while_unpaid() {
    let sb = sandbox(|_| {}).await;
    let put = |path: String, body: Value| {
        let url = format!("{}{path}", sb.base_url(P));
        async move {
            let resp = client()
                .put(url)
                .header("authorization", KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    let open = link(&sb, "proj_4", false).await;
    let expiry = json!({"expiresAt": "2031-01-02T03:04:05Z"});
    assert_eq!(
        put(
            format!("/v1/payment-links/{open}/expiration"),
            expiry.clone()
        )
        .await,
        200
    );
    assert_eq!(sb.order(P, &open)["expiresAt"], "2031-01-02T03:04:05Z");
    let bad = json!({"expiresAt": "tomorrow"});
    assert_eq!(
        put(format!("/v1/payment-links/{open}/expiration"), bad).await,
        400
    );
    let (status, v) = call(
        &sb,
        KEY,
        &format!("/v1/payment-links/{open}/cancel"),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("cancelled")));
    assert!(
        sb.approve(P, &open).is_err(),
        "a cancelled link takes no payment"
    );
    assert_eq!(
        put(format!("/v1/payment-links/{open}/expiration"), expiry).await,
        400
    );
    let paid = link(&sb, "proj_5", false).await;
    sb.approve(P, &paid).unwrap();
    let (status, _) = call(
        &sb,
        KEY,
        &format!("/v1/payment-links/{paid}/cancel"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status, 400,
        "a paid link is not cancelled (void the transaction instead)"
    );
    let (status, _) = call(
        &sb,
        KEY,
        "/v1/payment-links/pl_nope/cancel",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_link_is_found_by_its_order_reference() {
    let sb = sandbox(|_| {}).await;
    let by_ref = |r: &str| format!("/v1/payment-links/by-order-reference/{r}");
    let (status, v) = call(&sb, KEY, &by_ref("proj_9"), None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let id = link(&sb, "proj_9", false).await;
    let (status, v) = call(&sb, KEY, &by_ref("proj_9"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["id"].as_str(),
            v["orderReference"].as_str(),
            v["amount"].as_u64(),
            v["currency"].as_str(),
            v["status"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("proj_9"),
            Some(1050),
            Some("USD"),
            Some("active")
        )
    );
    assert!(v["url"].as_str().is_some_and(|u| u.ends_with(&id)), "{v}");
    let (status, _) = call(&sb, "wrong-key", &by_ref("proj_9"), None).await;
    assert_eq!(status, 401);
    sb.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 }).on_order("proj_9"),
    );
    let (status, _) = call(&sb, KEY, &by_ref("proj_9"), None).await;
    assert_eq!(status, 503, "request faults match the reference");
    sb.shutdown().await;
}
