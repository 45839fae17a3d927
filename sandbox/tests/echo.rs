//! The `echo_request` fault over the control API: the next matching operation is answered
//! with the provider's validation error quoting the whole request, credentials included;
//! nothing is acted on, and the rule is spent.

mod common;

use common::{client, sandbox};
use paystate_sandbox::Provider;
use serde_json::{json, Value};

#[tokio::test]
async fn echo_fault_quotes_the_request_in_the_providers_error_shape() {
    let sb = sandbox(|_| {}).await;
    let faults = format!("{}/paykassma/faults", sb.control_url());
    let added = client()
        .post(&faults)
        .json(&json!({"kind": {"kind": "echo_request"}, "op": "create"}))
        .send()
        .await
        .expect("control API answers");
    assert!(added.status().is_success(), "{}", added.status());
    let listed: Value = client()
        .get(&faults)
        .send()
        .await
        .expect("listed")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed.to_string().matches("echo_request").count(),
        1,
        "{listed}"
    );

    let url = format!(
        "{}/api/v1/transaction/create/bnb_ml?secret=paykassma-plugin-secret",
        sb.base_url(Provider::Paykassma)
    );
    let create = || {
        client()
            .post(&url)
            .header("x-extra", "header-value")
            .json(&json!({"currency": "BTN", "label": "echo-1"}))
            .send()
    };
    let resp = create().await.expect("answered");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["status"], "fail");
    let message = body["message"].as_str().expect("a message");
    for quoted in [
        "POST /api/v1/transaction/create/bnb_ml?secret=paykassma-plugin-secret",
        "x-extra: header-value",
        "\"label\":\"echo-1\"",
    ] {
        assert!(message.contains(quoted), "{quoted:?} not in {message}");
    }
    assert_eq!(
        sb.counters(Provider::Paykassma, "echo-1").created,
        0,
        "not acted on"
    );

    // Spent: the next call is served normally.
    let again = create().await.expect("answered");
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(sb.counters(Provider::Paykassma, "echo-1").created, 1);
}
