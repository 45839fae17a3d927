//! The gateway's two listeners, through real sockets: the public one serves provider callbacks
//! and nothing else, with no key; the private one (queries, attachments) answers 401 to
//! anything without a configured key, whatever the path, and 403 to a key whose scope is too
//! narrow. Both bound bodies (413), time (408) and concurrency.

mod support;

use paystate::stack::{GatewayListeners, Stack, StackOptions};
use paystate_events::{CaptureMode, Command, OrderId, PaymentInitiation, Provider, Status};
use paystate_gateway::limits::{
    HttpLimits, CALLBACK_BODY_BYTES_MAX, QUERY_BODY_BYTES_MAX, UPLOAD_BODY_BYTES_MAX,
};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::providers::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const P: Provider = Provider::Flitt;
const AMOUNT: u64 = 10_000;
const MERCHANT_REFERENCE: &str = "shop-1";

/// An answer: status, `WWW-Authenticate`, body.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn call(method: &str, url: &str, auth: Option<&str>, body: Vec<u8>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = reqwest::Client::new().request(method, url).body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("an answer");
    Answer {
        status: resp.status().as_u16(),
        www_authenticate: resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: resp.text().await.unwrap_or_default(),
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A Flitt order authorized by a signed callback that reached the public listener without
/// any key.
async fn authorized_by_callback(ps: &ProviderStack) -> OrderId {
    let o = order("gw-keys");
    accept(
        &ps.client,
        env(&o, create_for(P, AMOUNT, "GEL", CaptureMode::Manual)),
    )
    .await;
    let initiation = PaymentInitiation {
        return_url: Some("https://shop.example/back".into()),
        ..Default::default()
    };
    accept(&ps.client, env(&o, Command::StartPayment { initiation })).await;
    ps.wait_until(&o, "waiting for the customer", |s| {
        s.customer_action.is_some()
    })
    .await;
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    o
}

/// Waits until the projection serves `o` (read key) and returns its JSON.
async fn projected(ps: &ProviderStack, o: &OrderId) -> Value {
    let started = Instant::now();
    loop {
        let a = call(
            "GET",
            &format!("{}/orders/{o}", ps.private_url()),
            Some(&bearer(&test_keys().read)),
            Vec::new(),
        )
        .await;
        if a.status == 200 && a.json()["status"] == "authorized" {
            return a.json();
        }
        assert!(started.elapsed() < WAIT, "never projected: {}", a.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reveals_the_order(body: &str, o: &OrderId) -> bool {
    body.contains(o.as_str()) || body.contains(MERCHANT_REFERENCE) || body.contains("GEL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_routes_need_a_key_scopes_nest_and_callbacks_need_none() {
    let ps = ProviderStack::start().await;
    let (public, private) = (ps.gateway_url(), ps.private_url());
    let keys = test_keys();

    // Callbacks: the sandbox posts signed Flitt callbacks to the public listener, no key.
    let o = authorized_by_callback(&ps).await;
    // The gateway records its verdict after the engine's answer, so after the order moved:
    // wait for it. `duplicate` if the reconciler's probe brought the same status first.
    let started = Instant::now();
    loop {
        let verdicts = ps.callback_verdicts(P).await;
        if verdicts
            .iter()
            .any(|v| v["verdict"] == "applied" || v["verdict"] == "duplicate")
        {
            break;
        }
        assert!(started.elapsed() < WAIT, "no verdict: {verdicts:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = projected(&ps, &o).await;
    assert_eq!(view["order_id"], o.as_str());

    // Without a configured key, every private path answers the same 401.
    let read_hash = keys
        .configs
        .iter()
        .find(|c| c.name == "read")
        .expect("read key")
        .sha256
        .clone();
    let credentials: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some(bearer("psk_not-a-configured-key")),
        Some(bearer(&read_hash)),
        Some(format!("Basic {}", keys.read)),
        Some(keys.read.clone()),
        Some(bearer(&format!("{}x", keys.read))),
    ];
    let routes: Vec<(&str, String)> = vec![
        ("GET", "/orders".into()),
        ("GET", "/orders?state=authorized".into()),
        ("GET", format!("/orders/{o}")),
        ("GET", "/orders/no-such-order".into()),
        ("GET", "/projection".into()),
        ("POST", "/attachments?name=x.png".into()),
        ("POST", "/callbacks/flitt".into()),
        ("GET", "/metrics".into()),
        ("GET", "/no-such-route".into()),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for cred in &credentials {
        for (method, path) in &routes {
            let a = call(
                method,
                &format!("{private}{path}"),
                cred.as_deref(),
                b"x".to_vec(),
            )
            .await;
            let what = format!("{method} {path} with {cred:?}");
            assert_eq!(a.status, 401, "{what}: {}", a.body);
            assert_eq!(a.code(), "unauthorized", "{what}");
            assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"), "{what}");
            assert!(!reveals_the_order(&a.body, &o), "{what}: {}", a.body);
            bodies.insert(a.body);
        }
    }
    assert_eq!(bodies.len(), 1, "one answer for every path: {bodies:?}");

    // A read key: the queries work; writes are refused before their body is read.
    let read = bearer(&keys.read);
    let a = call("GET", &format!("{private}/orders/{o}"), Some(&read), vec![]).await;
    assert_eq!(
        (a.status, a.json()["order_id"].clone()),
        (200, o.as_str().into())
    );
    let a = call(
        "GET",
        &format!("{private}/orders?state=authorized"),
        Some(&read),
        vec![],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(o.as_str()), "{}", a.body);
    let a = call("GET", &format!("{private}/projection"), Some(&read), vec![]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let upload = format!("{private}/attachments?name=x.png");
    let a = call("POST", &upload, Some(&read), b"png".to_vec()).await;
    assert_eq!(
        (a.status, a.code()),
        (403, "forbidden".into()),
        "{}",
        a.body
    );
    assert!(!reveals_the_order(&a.body, &o), "{}", a.body);
    let (status, body) = declared(
        &private,
        "POST",
        &upload,
        &keys.read,
        UPLOAD_BODY_BYTES_MAX + 1,
    )
    .await;
    assert_eq!(status, 403, "the scope is checked before the body: {body}");

    // A write key uploads and reads; an admin key does everything.
    let write = bearer(&keys.write);
    let a = call("POST", &upload, Some(&write), b"png bytes".to_vec()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["size"], 9);
    let a = call(
        "GET",
        &format!("{private}/orders/{o}"),
        Some(&write),
        vec![],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let admin = bearer(&keys.admin);
    let a = call("POST", &upload, Some(&admin), b"more png".to_vec()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = call("GET", &format!("{private}/orders"), Some(&admin), vec![]).await;
    assert_eq!(a.status, 200, "{}", a.body);

    // With a key, an unknown path or a callback on the private listener is a JSON 404.
    for path in ["/no-such-route", "/callbacks/flitt"] {
        let a = call(
            "POST",
            &format!("{private}{path}"),
            Some(&admin),
            b"{}".to_vec(),
        )
        .await;
        assert_eq!((a.status, a.code()), (404, "not_found".into()), "{path}");
    }

    // The public listener serves callbacks only: no queries, no uploads, keys or not.
    for cred in [None, Some(admin.as_str())] {
        for (method, path) in [
            ("GET", "/orders".to_string()),
            ("GET", format!("/orders/{o}")),
            ("GET", "/projection".to_string()),
            ("POST", "/attachments?name=x.png".to_string()),
        ] {
            let a = call(method, &format!("{public}{path}"), cred, b"png".to_vec()).await;
            assert_eq!(
                (a.status, a.code()),
                (404, "not_found".into()),
                "{method} {path}"
            );
            assert!(!reveals_the_order(&a.body, &o), "{}", a.body);
        }
    }
    let a = call("GET", &format!("{public}/callbacks/flitt"), None, vec![]).await;
    assert_eq!((a.status, a.code()), (405, "method_not_allowed".into()));

    // Bodies over a route's limit: 413 before anything is stored.
    let a = call(
        "POST",
        &format!("{public}/callbacks/plexy"),
        None,
        vec![b' '; CALLBACK_BODY_BYTES_MAX + 1],
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (413, "body_too_large".into()),
        "{}",
        a.body
    );
    assert!(ps.raw_callbacks(Provider::Plexy).await.is_empty());
    // Declared lengths over the limit are refused before any of the body is read.
    let (status, body) = declared(
        &private,
        "POST",
        &upload,
        &keys.write,
        UPLOAD_BODY_BYTES_MAX + 1,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"body_too_large\""), "{body}");
    let (status, body) = declared(
        &private,
        "GET",
        "/orders",
        &keys.read,
        QUERY_BODY_BYTES_MAX + 1,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"body_too_large\""), "{body}");
}

/// A request that declares a `length`-byte body and sends none of it: the answer.
async fn declared(url: &str, method: &str, path: &str, key: &str, length: usize) -> (u16, String) {
    read_answer(partial_request(url, method, path, Some(key), length, 0).await).await
}

/// An engine, the projector and a gateway (no providers configured) on two listeners with
/// `limits`.
async fn bare_gateway(nats: &TestNats, limits: HttpLimits) -> Stack {
    let gateway = GatewayListeners::bind("127.0.0.1:0", "127.0.0.1:0", api_keys(), limits)
        .await
        .expect("listeners");
    let opts = StackOptions {
        log: log_settings(),
        engine: Some(engine_config()),
        projector: true,
        workers: None,
        reconciler: None,
        gateway: Some(gateway),
        adapters: Some(Default::default()),
    };
    Stack::start(nats.connect().await, opts)
        .await
        .expect("gateway starts")
}

/// Sends the head of a request and the first `sent` bytes of a `length`-byte body; the rest
/// is up to the caller.
async fn partial_request(
    url: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&vec![b'a'; sent]).await.expect("some body");
    s
}

/// Reads a whole `Connection: close` answer: (status, body).
async fn read_answer(mut s: tokio::net::TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_a_full_listener_makes_requests_wait() {
    const TIMEOUT: Duration = Duration::from_millis(1_000);
    let nats = TestNats::start().await;
    let limits = HttpLimits {
        request_timeout: TIMEOUT,
        concurrency_max: 1,
    };
    let stack = bare_gateway(&nats, limits).await;
    let public = stack.gateway_url.clone().expect("public");
    let private = stack.private_url.clone().expect("private");
    let keys = test_keys();

    // A callback whose body never finishes: 408, nothing stored.
    let started = Instant::now();
    let slow = partial_request(&public, "POST", "/callbacks/plexy", None, 100, 10).await;
    let (status, body) = read_answer(slow).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("\"request_timeout\""), "{body}");
    assert!(
        took >= TIMEOUT && took < TIMEOUT * 10,
        "answered after {took:?}"
    );

    // The same on the private listener, with a valid key.
    let upload = "/attachments?name=slow.bin";
    let slow = partial_request(&private, "POST", upload, Some(&keys.write), 100, 10).await;
    let (status, body) = read_answer(slow).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("\"request_timeout\""), "{body}");

    // One slot: while an upload holds it, a query waits; when the upload finishes, it runs.
    let mut holder = partial_request(&private, "POST", upload, Some(&keys.write), 20, 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (url, auth) = (format!("{private}/orders"), bearer(&keys.read));
    let query = tokio::spawn(async move { call("GET", &url, Some(&auth), Vec::new()).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!query.is_finished(), "the query waits for the only slot");
    holder
        .write_all(&[b'a'; 10])
        .await
        .expect("rest of the body");
    let (status, body) = read_answer(holder).await;
    assert_eq!(status, 201, "{body}");
    let answer = query.await.expect("query task");
    assert_eq!(answer.status, 200, "{}", answer.body);
    stack.shutdown().await;
}
