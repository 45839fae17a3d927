//! Paykassma sandbox over real HTTP: deposit request, customer transfer, multipart
//! activation (unique custom_transaction_id), and postbacks resent until `{"status":"ok"}`.

mod common;

use common::{client, sandbox, Receiver};
use paystate_adapters::paykassma::signature::verify_postback_body;
use paystate_sandbox::{Action, Provider, SandboxHandle};
use serde_json::{json, Value};

const P: Provider = Provider::Paykassma;
const SECRET: &str = "paykassma-plugin-secret";

async fn create(sb: &SandboxHandle, secret: &str, label: &str) -> (u16, Value) {
    let url = format!(
        "{}/api/v1/transaction/create/bnb_ml?secret={secret}",
        sb.base_url(P)
    );
    let resp = client()
        .post(url)
        .json(&json!({"currency": "BTN", "label": label}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn activate(
    sb: &SandboxHandle,
    label: &str,
    key1: &str,
    amount: u64,
    id: &str,
) -> reqwest::Result<Value> {
    let form = reqwest::multipart::Form::new()
        .text("currency_code", "BTN")
        .text("wallet_type", "bnb_ml")
        .text("label", label.to_string())
        .text("key1", key1.to_string())
        .part(
            "screenshot",
            reqwest::multipart::Part::bytes(vec![0x89, 0x50, 0x4e, 0x47]).file_name("shot.png"),
        )
        .text("amount", amount.to_string())
        .text("custom_transaction_id", id.to_string());
    let url = format!(
        "{}/api/v1/possible-transaction?secret={SECRET}",
        sb.base_url(P)
    );
    client()
        .post(url)
        .multipart(form)
        .send()
        .await?
        .json()
        .await
}

#[tokio::test]
async fn transfer_activation_and_postback_resent_until_exact_ok() {
    let rx = Receiver::start().await;
    rx.script(&[
        (200, r#"{"status":"error"}"#),
        (500, r#"{"status":"ok"}"#),
        (200, "ok"),
    ]);
    let url = rx.url.clone();
    let sb = sandbox(|c| c.paykassma.postback_url = Some(url)).await;
    let (status, created) = create(&sb, SECRET, "labeluser").await;
    assert_eq!((status, created["status"].as_str()), (200, Some("ok")));
    assert!(created["params"]["Wallet number"].is_string());
    let key1 = sb
        .act(P, "labeluser", Action::TransferMade { amount: 300 })
        .unwrap()
        .reference
        .unwrap();
    let ok = activate(&sb, "labeluser", &key1, 300, "custom12345")
        .await
        .unwrap();
    assert_eq!(
        (ok["status"].as_str(), ok["code"].as_u64()),
        (Some("success"), Some(20000))
    );
    let again = activate(&sb, "labeluser", &key1, 300, "custom12345")
        .await
        .unwrap();
    assert_eq!(
        again["status"], "success",
        "a repeated activation answers the same, once"
    );
    let clash = activate(&sb, "labeluser", &key1, 301, "custom12345")
        .await
        .unwrap();
    assert_eq!(clash["status"], "fail");
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    assert_eq!(
        hits.len(),
        4,
        "resent until HTTP 200 with exactly {{\"status\":\"ok\"}}"
    );
    let body = String::from_utf8(hits[0].body.clone()).unwrap();
    verify_postback_body(&body, "uowkn0b3LfBxpcWYHi4_", "PRIVATE_test_key_1")
        .expect("signed as documented");
    let v = hits[0].json();
    assert_eq!(
        (v["direction"].as_str(), v["amount"].as_u64()),
        (Some("ingoing"), Some(300))
    );
    assert_eq!(v["additional_data"][0]["transaction_id"], key1.as_str());
    assert_eq!(
        v["additional_data"][0]["plugin_custom_order_id"],
        "custom12345"
    );
    assert_eq!(v["additional_data"][0]["amount"], "300");
    assert!(
        hits.iter().all(|h| h.body == hits[0].body),
        "resends carry the same postback"
    );
    let c = sb.counters(P, "custom12345");
    assert_eq!(
        (
            c.activated,
            c.credited,
            c.callbacks_resent,
            c.callbacks_delivered
        ),
        (1, 1, 3, 1)
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn secret_validation_and_back_office_decisions() {
    let rx = Receiver::start().await;
    let url = rx.url.clone();
    let sb = sandbox(|c| c.paykassma.postback_url = Some(url)).await;
    assert_eq!(create(&sb, "wrong", "u1").await.0, 403);
    create(&sb, SECRET, "u1").await;
    let bad = activate(&sb, "u1", "123", 100, "c-bad").await.unwrap();
    assert_eq!(bad["status"], "fail", "key1 must be 12 digits");
    // No transfer was made with this number: the activation waits for the back office.
    activate(&sb, "u1", "111122223333", 100, "c-wait")
        .await
        .unwrap();
    activate(&sb, "u1", "111122224444", 100, "c-no")
        .await
        .unwrap();
    assert_eq!(sb.order(P, "c-wait")["status"], "verifying");
    assert_eq!(sb.approve(P, "c-wait").unwrap().status, "credited");
    assert_eq!(sb.decline(P, "c-no").unwrap().status, "rejected");
    assert!(sb.approve(P, "c-no").is_err());
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.hits();
    let outcomes: Vec<(String, Option<String>)> = hits
        .iter()
        .map(|h| {
            let v = h.json();
            let tx = v["additional_data"][0]["plugin_custom_order_id"]
                .as_str()
                .unwrap()
                .to_string();
            (tx, v["status"].as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("c-wait".to_string(), None),
            ("c-no".to_string(), Some("fail".to_string()))
        ],
        "credited: the documented postback; rejected: status fail"
    );
    for h in &hits {
        verify_postback_body(
            &String::from_utf8(h.body.clone()).unwrap(),
            "uowkn0b3LfBxpcWYHi4_",
            "PRIVATE_test_key_1",
        )
        .expect("both signed");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn a_rejection_can_be_silent() {
    let rx = Receiver::start().await;
    let url = rx.url.clone();
    let sb = sandbox(|c| {
        c.paykassma.postback_url = Some(url);
        c.paykassma.postback_on_reject = false;
    })
    .await;
    create(&sb, SECRET, "u2").await;
    activate(&sb, "u2", "111122225555", 100, "c-silent")
        .await
        .unwrap();
    assert_eq!(sb.decline(P, "c-silent").unwrap().status, "rejected");
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    assert!(
        rx.hits().is_empty(),
        "no postback on rejection when configured so"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_lost_answer_is_taken_as_no_answer_and_resent() {
    let rx = Receiver::start().await;
    let url = rx.url.clone();
    let sb = sandbox(|c| c.paykassma.postback_url = Some(url)).await;
    sb.add_fault(
        P,
        paystate_sandbox::FaultRule::once(paystate_sandbox::FaultKind::LoseCallbackAck)
            .on_order("c-lost")
            .times(2),
    );
    create(&sb, SECRET, "u3").await;
    let key1 = sb
        .act(P, "u3", Action::TransferMade { amount: 50 })
        .unwrap()
        .reference
        .unwrap();
    activate(&sb, "u3", &key1, 50, "c-lost").await.unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    assert_eq!(rx.hits().len(), 3, "the receiver saw every attempt");
    let d = sb.deliveries(P);
    let seen: Vec<(bool, bool, Option<&str>)> = d
        .iter()
        .map(|r| (r.ack_lost, r.acknowledged, r.answer.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (true, false, Some(r#"{"status":"ok"}"#)),
            (true, false, Some(r#"{"status":"ok"}"#)),
            (false, true, Some(r#"{"status":"ok"}"#)),
        ]
    );
    let c = sb.counters(P, "c-lost");
    assert_eq!((c.callbacks_resent, c.callbacks_delivered), (2, 1));
    sb.shutdown().await;
}
