//! Plural sandbox fidelity for Pine Labs' official code: each test sends the requests Pine
//! Labs' own clients send (method, path, headers, body bytes), written here from their
//! sources, for the calls seed 002 documents, and reads the answer the way they do.
//!
//! Sources read:
//! - `plural-pinelabs/mpp-server-sdk-python` (PyPI `pinelabs-online-p3p-server-sdk`):
//!   `server/auth_manager.py` (`POST {base}/api/auth/v1/token`, `Content-Type:
//!   application/json`, body `{"grant_type","client_id","client_secret"}`; reads
//!   `payload.get("data", payload)`, `access_token`, `expires_at` else `expires_in`),
//!   `server/api_client.py` (`GET /api/pay/v1/orders/{order_id}` and `POST
//!   /api/pay/v1/refunds/{order_id}` with `Accept: application/json`, `Authorization: Bearer`,
//!   `Merchant-ID`, refunds also `Request-ID` and `Request-Timestamp`; body
//!   `{"merchant_order_reference","order_amount":{"value","currency"}}`; answers read as
//!   `payload.get("data", payload)`, a refund's `parent_order_id`),
//!   `utils/fetch_helpers.py` (`X-Request-Id` on every request), `server/order_parsers.py`.
//! - `plural-pinelabs/pinelabs-online-mcp`: `pkg/pinelabs/client.py` (token: `accept` and
//!   `content-type: application/json`, body `{"client_id","client_secret","grant_type"}`,
//!   only HTTP 200 accepted; every call: `Authorization: Bearer`, `Content-Type:
//!   application/json`, `Request-ID`, `Request-Timestamp`, POST/PUT also `Idempotency-Key`;
//!   errors read as top-level `code` and `message`), `routes.py` (base `{host}/api`,
//!   `/pay/v1/orders/{id}`, `/pay/v1/orders/{id}/payments`, `/pay/v1/orders/{id}/cancel`),
//!   `card_payments.py` (`payments[0]` with `merchant_payment_reference`, `payment_amount`,
//!   `payment_method: CARD`, `payment_option.card_data`), `orders.py` (cancel is a PUT with
//!   no body).
//!
//! Seed 002 itself documents token, create order, create payment, capture and cancel; its
//! sample bodies are sent as written (numeric `merchant_order_reference`, `card_details`).

mod common;

use common::{client, sandbox};
use paystate_sandbox::{Provider, SandboxHandle};
use reqwest::Method;
use serde_json::{json, Value};

const P: Provider = Provider::Plural;
const CLIENT_ID: &str = "1234567890";
const CLIENT_SECRET: &str = "asdfgwei7egyhuggwp39w8rh";
const MERCHANT_ID: &str = "104359";

struct Answer {
    status: u16,
    body: Value,
}

/// Sends exactly this method, path, headers and body (`None`: no body at all).
async fn send(
    sb: &SandboxHandle,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut req = client().request(method, format!("{}{path}", sb.base_url(P)));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let resp = req.send().await.expect("sandbox answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("answer body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

/// `payload.get("data", payload)`, as both Pine Labs clients unwrap answers.
fn data(a: &Answer) -> &Value {
    a.body.get("data").unwrap_or(&a.body)
}

/// `AuthManager._exchange_token` (httpx `json=`: compact, keys in dict order).
async fn mpp_token(sb: &SandboxHandle) -> String {
    let body = format!(
        "{{\"grant_type\":\"client_credentials\",\"client_id\":\"{CLIENT_ID}\",\"client_secret\":\"{CLIENT_SECRET}\"}}"
    );
    let a = send(
        sb,
        Method::POST,
        "/api/auth/v1/token",
        &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", "0b5e8c1e-7f39-4f7e-9d51-1c9d8f3f2a10"),
            ("User-Agent", "python-httpx/0.28.1"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let d = data(&a);
    assert!(
        d.get("expires_at").is_some() || d["expires_in"].as_u64().is_some_and(|s| s > 60),
        "expires_in (seed 002) is what the SDK falls back to: {d}"
    );
    d["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// `PineLabsClient._fetch_token` (the MCP server's client).
async fn mcp_token(sb: &SandboxHandle) -> String {
    let body = format!(
        "{{\"client_id\":\"{CLIENT_ID}\",\"client_secret\":\"{CLIENT_SECRET}\",\"grant_type\":\"client_credentials\"}}"
    );
    let a = send(
        sb,
        Method::POST,
        "/api/auth/v1/token",
        &[
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 200, "the MCP client accepts only 200: {}", a.body);
    a.body["access_token"]
        .as_str()
        .expect("top-level access_token")
        .to_string()
}

/// `PineLabsClient._build_headers` for POST/PUT (with an `Idempotency-Key`).
fn mcp_headers<'a>(bearer: &'a str, idempotency_key: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("Authorization", bearer),
        ("Content-Type", "application/json"),
        ("Request-ID", "6f1c2d0e-5a7b-4c1d-9e8f-0a1b2c3d4e5f"),
        ("Request-Timestamp", "2024-07-15T05:44:51.174263Z"),
        ("Idempotency-Key", idempotency_key),
    ]
}

/// Seed 002's create-order sample, as written (numeric `merchant_order_reference`).
fn seed_order(reference: u64, pre_auth: bool) -> String {
    json!({
        "merchant_order_reference": reference,
        "order_amount": {"value": 1100, "currency": "INR"},
        "pre_auth": pre_auth,
        "purchase_details": {
            "customer": {
                "email_id": "kevin.bob@example.com", "first_name": "Kevin", "last_name": "Bob",
                "customer_id": "123456", "mobile_number": "9876543210",
                "billing_address": {"address1": "10 Downing Street Westminster London",
                    "pincode": "51524036", "city": "Westminster", "state": "Westminster",
                    "country": "London"}
            },
            "merchant_metadata": {"key1": "DD", "key2": "XOF"}
        }
    })
    .to_string()
}

/// `create_card_payment`'s body (`CreateCardPaymentRequest.model_dump(exclude_none=True)`).
const MCP_CARD_PAYMENT: &str = "{\"payments\":[{\"merchant_payment_reference\":\"3f0c9a8e5b2d4c6f8a1e7b9d0c2f4a6e\",\"payment_amount\":{\"value\":1100,\"currency\":\"INR\"},\"payment_method\":\"CARD\",\"payment_option\":{\"card_data\":{\"card_number\":\"4111111111111111\",\"card_expiry_month\":\"04\",\"card_expiry_year\":\"2029\",\"card_cvv\":\"272\",\"card_holder_name\":\"Anil Reddy\"}}}]}";

/// Create order + card payment with the MCP client's headers; the order id.
async fn order_with_payment(sb: &SandboxHandle, bearer: &str, reference: u64) -> String {
    let a = send(
        sb,
        Method::POST,
        "/api/pay/v1/orders",
        &mcp_headers(bearer, "idem-order"),
        Some(&seed_order(reference, true)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let order = data(&a);
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["merchant_order_reference"], reference.to_string());
    let id = order["order_id"].as_str().expect("order_id").to_string();
    let a = send(
        sb,
        Method::POST,
        &format!("/api/pay/v1/orders/{id}/payments"),
        &mcp_headers(bearer, "idem-payment"),
        Some(MCP_CARD_PAYMENT),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(data(&a)["status"], "PENDING");
    assert!(data(&a)["challenge_url"].as_str().is_some());
    id
}

/// The MCP client's calls: token, order, card payment, get, capture (seed body), cancel
/// (a PUT without a body) on a second order.
#[tokio::test]
async fn mcp_client_order_payment_get_capture_cancel() {
    let sb = sandbox(|_| {}).await;
    let token = mcp_token(&sb).await;
    let bearer = format!("Bearer {token}");

    let id = order_with_payment(&sb, &bearer, 112345).await;
    sb.approve(P, &id).unwrap();
    // get_order_by_order_id: GET with the same headers, no Idempotency-Key, no body.
    let get_headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Request-ID", "1d2c3b4a-0000-4000-8000-000000000001"),
        ("Request-Timestamp", "2024-07-19T11:13:21.523516Z"),
    ];
    let a = send(
        &sb,
        Method::GET,
        &format!("/api/pay/v1/orders/{id}"),
        &get_headers,
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(data(&a)["status"], "AUTHORIZED");

    let capture = "{\"merchant_capture_reference\":\"merchant-capture-ref-r4y\",\"capture_amount\":{\"value\":1000,\"currency\":\"INR\"}}";
    let a = send(
        &sb,
        Method::PUT,
        &format!("/api/pay/v1/orders/{id}/capture"),
        &mcp_headers(&bearer, "idem-capture"),
        Some(capture),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(data(&a)["status"], "PROCESSED");
    assert_eq!(
        data(&a)["payments"][0]["capture_data"][0]["capture_amount"]["value"],
        1000
    );

    let other = order_with_payment(&sb, &bearer, 112346).await;
    sb.approve(P, &other).unwrap();
    let a = send(
        &sb,
        Method::PUT,
        &format!("/api/pay/v1/orders/{other}/cancel"),
        &mcp_headers(&bearer, "idem-cancel"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(data(&a)["status"], "CANCELLED");
}

/// The server SDK's calls: token (`expires_in`), get order and refund with its headers;
/// the answers parse the way `order_parsers.py` reads them.
#[tokio::test]
async fn mpp_server_sdk_token_get_order_refund() {
    let sb = sandbox(|_| {}).await;
    let token = mpp_token(&sb).await;
    let bearer = format!("Bearer {token}");
    let id = order_with_payment(&sb, &bearer, 200001).await;
    sb.approve(P, &id).unwrap();
    let capture = "{\"merchant_capture_reference\":\"cap-200001\",\"capture_amount\":{\"value\":1100,\"currency\":\"INR\"}}";
    let a = send(
        &sb,
        Method::PUT,
        &format!("/api/pay/v1/orders/{id}/capture"),
        &mcp_headers(&bearer, "idem-capture"),
        Some(capture),
    )
    .await;
    assert_eq!(data(&a)["status"], "PROCESSED", "{}", a.body);

    // ApiClient.get_order: Accept, Authorization, Merchant-ID (+ X-Request-Id).
    let get_headers = [
        ("Accept", "application/json"),
        ("Authorization", bearer.as_str()),
        ("Merchant-ID", MERCHANT_ID),
        ("X-Request-Id", "5a4e1d9c-2b3f-4e6a-8c7d-9f0e1a2b3c4d"),
    ];
    let a = send(
        &sb,
        Method::GET,
        &format!("/api/pay/v1/orders/{id}"),
        &get_headers,
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    let order = data(&a);
    for field in [
        "order_id",
        "merchant_order_reference",
        "type",
        "status",
        "merchant_id",
    ] {
        assert!(
            order[field].is_string(),
            "parse_order reads {field}: {order}"
        );
    }
    assert_eq!(order["order_amount"]["value"], 1100);
    assert_eq!(order["payments"][0]["payment_method"], "CARD");

    // ApiClient.create_refund.
    let refund_headers = [
        ("Accept", "application/json"),
        ("Authorization", bearer.as_str()),
        ("Merchant-ID", MERCHANT_ID),
        ("Request-ID", "9b8a7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"),
        ("Request-Timestamp", "2024-07-19T11:30:00.000000Z"),
        ("Content-Type", "application/json"),
        ("X-Request-Id", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
    ];
    let body = "{\"merchant_order_reference\":\"refund-200001-1\",\"order_amount\":{\"value\":400,\"currency\":\"INR\"}}";
    let a = send(
        &sb,
        Method::POST,
        &format!("/api/pay/v1/refunds/{id}"),
        &refund_headers,
        Some(body),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let refund = data(&a);
    assert_eq!(refund["type"], "REFUND");
    assert_eq!(
        refund["parent_order_id"],
        id.as_str(),
        "parse_refund reads it"
    );
    assert_eq!(refund["merchant_order_reference"], "refund-200001-1");
    assert_eq!(refund["order_amount"]["value"], 400);

    let a = send(
        &sb,
        Method::GET,
        &format!("/api/pay/v1/orders/{id}"),
        &get_headers,
        None,
    )
    .await;
    assert_eq!(data(&a)["status"], "PARTIALLY_REFUNDED");
}

/// Seed 002's own samples: token body in its field order, the create-payment body with
/// `card_details`.
#[tokio::test]
async fn seed_samples_as_written() {
    let sb = sandbox(|_| {}).await;
    let body = format!(
        "{{\n\"client_id\": \"{CLIENT_ID}\",\n\"client_secret\": \"{CLIENT_SECRET}\",\n\"grant_type\": \"client_credentials\"\n}}"
    );
    let a = send(
        &sb,
        Method::POST,
        "/api/auth/v1/token",
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 200);
    let bearer = format!("Bearer {}", a.body["access_token"].as_str().unwrap());
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let a = send(
        &sb,
        Method::POST,
        "/api/pay/v1/orders",
        &headers,
        Some(&seed_order(300001, false)),
    )
    .await;
    let id = data(&a)["order_id"].as_str().unwrap().to_string();
    let payment = json!({"payments": [{
        "payment_method": "CARD",
        "payment_amount": {"value": 1100, "currency": "INR"},
        "payment_option": {"card_details": {"name": "Anil Reddy",
            "card_number": "4111111111111111", "cvv": "272", "expiry_month": "04",
            "expiry_year": "2029", "registered_mobile_number": "9876543210"}}
    }]})
    .to_string();
    let a = send(
        &sb,
        Method::POST,
        &format!("/api/pay/v1/orders/{id}/payments"),
        &headers,
        Some(&payment),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(data(&a)["status"], "PENDING");
}

/// Errors as the MCP client reads them: top-level `code` and `message`, the HTTP status.
#[tokio::test]
async fn errors_have_the_shape_the_clients_read() {
    let sb = sandbox(|_| {}).await;
    let expect = |a: &Answer, status: u16, code: &str| {
        assert_eq!(a.status, status, "{}", a.body);
        assert_eq!(a.body["code"], code, "{}", a.body);
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    let wrong = "{\"grant_type\":\"client_credentials\",\"client_id\":\"1234567890\",\"client_secret\":\"nope\"}";
    let a = send(
        &sb,
        Method::POST,
        "/api/auth/v1/token",
        &[("Content-Type", "application/json")],
        Some(wrong),
    )
    .await;
    expect(&a, 401, "UNAUTHORIZED");

    let a = send(
        &sb,
        Method::GET,
        "/api/pay/v1/orders/v1-0000000000-aa-nothing",
        &[("Authorization", "Bearer not-a-token")],
        None,
    )
    .await;
    expect(&a, 401, "UNAUTHORIZED");

    let token = mcp_token(&sb).await;
    let bearer = format!("Bearer {token}");
    let a = send(
        &sb,
        Method::GET,
        "/api/pay/v1/orders/v1-0000000000-aa-nothing",
        &[("Authorization", bearer.as_str())],
        None,
    )
    .await;
    expect(&a, 404, "NOT_FOUND");

    let a = send(
        &sb,
        Method::POST,
        "/api/pay/v1/orders",
        &mcp_headers(&bearer, "idem-bad"),
        Some("{\"merchant_order_reference\":"),
    )
    .await;
    expect(&a, 400, "INVALID_REQUEST");

    // Cancel of an order that is not AUTHORIZED, still without a body.
    let id = order_with_payment(&sb, &bearer, 400001).await;
    let a = send(
        &sb,
        Method::PUT,
        &format!("/api/pay/v1/orders/{id}/cancel"),
        &mcp_headers(&bearer, "idem-cancel"),
        None,
    )
    .await;
    expect(&a, 400, "INVALID_REQUEST");
}
