//! Exchanger sandbox over real HTTP: order create and status, IPN sent once (never retried),
//! signed over the documented fields, and a share of IPNs dropped.

mod common;

use common::{client, sandbox, Receiver};
use paystate_adapters::exchanger::signature::ipn_signature;
use paystate_sandbox::{Action, Provider, SandboxHandle};
use serde_json::Value;

const P: Provider = Provider::Exchanger;

async fn create(sb: &SandboxHandle, ipn_url: &str) -> Value {
    let form = [
        ("routeId", "65a1f0c2e4b0a1b2c3d4e5f0"),
        ("partner", "shop"),
        ("amount", "100"),
        ("toValues[0][key]", "wallet"),
        ("toValues[0][value]", "bc1qexample"),
        ("lang", "en"),
        ("agreement", "true"),
        ("ipnUrl", ipn_url),
        ("ipnSecret", "ipn-secret-1"),
    ];
    let resp = client()
        .post(format!("{}/public/exchanger/order/create", sb.base_url(P)))
        .header("authorization", "exchanger-api-key")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["data"].clone()
}

fn field(form: &[(String, String)], k: &str) -> String {
    form.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn order_lifecycle_with_signed_ipns_sent_once() {
    let rx = Receiver::start().await;
    rx.script(&[(500, "")]);
    let sb = sandbox(|_| {}).await;
    let order = create(&sb, &rx.url).await;
    assert_eq!(
        (order["status"].as_str(), order["outAmount"].as_str()),
        (Some("new"), Some("0.00153"))
    );
    let id = order["orderId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert!(order["paymentUrl"]
        .as_str()
        .unwrap()
        .contains(&format!("/en/payment/{}/", order["orderUID"])));
    assert_eq!(sb.approve(P, &id).unwrap().status, "inProgressPayout");
    assert_eq!(sb.act(P, &id, Action::PayoutDone).unwrap().status, "done");
    assert!(sb.act(P, &id, Action::Decline).is_err(), "done is final");
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    let statuses: Vec<String> = hits.iter().map(|h| field(&h.form(), "newStatus")).collect();
    assert_eq!(
        statuses,
        ["inProgress", "inProgressPayout", "done"],
        "the refused first IPN is not resent"
    );
    for h in &hits {
        assert_eq!(
            h.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let f = h.form();
        let want = ipn_signature(
            &field(&f, "orderId"),
            &field(&f, "newStatus"),
            &field(&f, "inAmount"),
            &field(&f, "outAmount"),
            &field(&f, "xml_from"),
            &field(&f, "xml_to"),
            &field(&f, "timestamp"),
            "ipn-secret-1",
        );
        assert_eq!(field(&f, "sign"), want);
        assert_eq!(field(&f, "toValues[0][value]"), "bc1qexample");
    }
    let status = client()
        .get(format!(
            "{}/public/exchanger/order/status?orderId={id}",
            sb.base_url(P)
        ))
        .header("authorization", "Bearer exchanger-api-key")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(status["data"]["status"], "done");
    let c = sb.counters(P, &id);
    assert_eq!(
        (
            c.credited,
            c.paid_out,
            c.callbacks_attempts,
            c.callbacks_resent,
            c.callbacks_delivered
        ),
        (1, 1, 3, 0, 2)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn drop_share_of_100_percent_delivers_nothing_and_50_half() {
    let rx = Receiver::start().await;
    let sb = sandbox(|c| c.exchanger.ipn_drop_percent = 100).await;
    let id = create(&sb, &rx.url).await["orderId"]
        .as_str()
        .unwrap()
        .to_string();
    sb.act(P, &id, Action::Challenge).unwrap();
    sb.approve(P, &id).unwrap();
    sb.act(P, &id, Action::ErrorPayout).unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    assert!(rx.hits().is_empty());
    let c = sb.counters(P, &id);
    assert_eq!(
        (c.callbacks_enqueued, c.callbacks_dropped, c.payout_failed),
        (4, 4, 1)
    );
    sb.set_ipn_drop_percent(50);
    let second = create(&sb, &rx.url).await["orderId"]
        .as_str()
        .unwrap()
        .to_string();
    for status in ["waitPayment", "inProgress", "hold", "returned"] {
        sb.act(
            P,
            &second,
            Action::SetStatus {
                status: status.into(),
            },
        )
        .unwrap();
    }
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    // Five IPNs (inProgress moves on to inProgressPayout by itself): exactly every second one dropped.
    assert_eq!(rx.hits().len(), 3);
    assert_eq!(sb.counters(P, &second).callbacks_dropped, 2);
    let unauthorized = client()
        .post(format!("{}/public/exchanger/order/create", sb.base_url(P)))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    sb.shutdown().await;
}
