//! The executor against a real local HTTP server on port 0.

use super::*;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use axum::Router;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Counters {
    flaky: AtomicU32,
    bad: AtomicU32,
    slow: AtomicU32,
    always5xx: AtomicU32,
}

async fn server() -> (String, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/flaky", post(flaky))
        .route("/bad", post(bad))
        .route("/slow", post(slow))
        .route("/always5xx", post(always5xx))
        .route("/echo", any(echo))
        .route("/ok", get(|| async { "ok" }))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), counters)
}

async fn flaky(State(c): State<Arc<Counters>>) -> (StatusCode, &'static str) {
    match c.flaky.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => (StatusCode::SERVICE_UNAVAILABLE, "try later"),
        _ => (StatusCode::OK, "done"),
    }
}
async fn bad(State(c): State<Arc<Counters>>) -> (StatusCode, &'static str) {
    c.bad.fetch_add(1, Ordering::SeqCst);
    (StatusCode::BAD_REQUEST, "no")
}
async fn slow(State(c): State<Arc<Counters>>) -> &'static str {
    c.slow.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    "late"
}
async fn always5xx(State(c): State<Arc<Counters>>) -> StatusCode {
    c.always5xx.fetch_add(1, Ordering::SeqCst);
    StatusCode::BAD_GATEWAY
}
async fn echo(
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> String {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let auth = headers
        .get("x-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!(
        "{}\n{}\n{}\n{}",
        uri.query().unwrap_or(""),
        ct,
        auth,
        String::from_utf8_lossy(&body)
    )
}

fn executor(attempts_max: u32) -> Executor {
    let cfg = HttpConfig {
        connect_timeout_ms: 1_000,
        attempts_max,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
    };
    Executor::new(&cfg).expect("valid executor config")
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let (base, c) = server().await;
    let req = HttpRequest::new(Method::Post, format!("{base}/flaky"), Replay::Safe);
    let out = executor(3).execute(&req, T).await.expect("sent");
    match out {
        CallOutcome::Response(r) => {
            assert_eq!((r.status, r.body.as_ref()), (200, b"done".as_ref()))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_are_bounded_and_unsafe_writes_are_not_resent_on_5xx() {
    let (base, c) = server().await;
    let req = HttpRequest::new(Method::Post, format!("{base}/always5xx"), Replay::Safe);
    let out = executor(3).execute(&req, T).await.expect("sent");
    assert!(matches!(out, CallOutcome::Response(ref r) if r.status == 502));
    assert_eq!(c.always5xx.load(Ordering::SeqCst), 3);
    let once = HttpRequest::new(Method::Post, format!("{base}/always5xx"), Replay::Unsafe);
    let out = executor(3).execute(&once, T).await.expect("sent");
    assert!(matches!(out, CallOutcome::Response(ref r) if r.status == 502));
    assert_eq!(c.always5xx.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let (base, c) = server().await;
    let req = HttpRequest::new(Method::Post, format!("{base}/bad"), Replay::Safe);
    let out = executor(3).execute(&req, T).await.expect("sent");
    assert!(matches!(out, CallOutcome::Response(ref r) if r.status == 400));
    assert_eq!(c.bad.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_provider_gives_an_unknown_outcome_not_a_resend() {
    let (base, c) = server().await;
    let req = HttpRequest::new(Method::Post, format!("{base}/slow"), Replay::Unsafe);
    let out = executor(3)
        .execute(&req, Duration::from_millis(200))
        .await
        .expect("sent");
    assert!(matches!(out, CallOutcome::Unknown { .. }), "{out:?}");
    assert_eq!(
        c.slow.load(Ordering::SeqCst),
        1,
        "an unsafe write is not resent"
    );
}

#[tokio::test]
async fn refused_connections_are_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let req = HttpRequest::new(Method::Post, format!("http://{addr}/x"), Replay::Unsafe)
        .secret_query("secret", crate::Secret::new("q-secret"));
    let err = executor(2)
        .execute(&req, T)
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, CallError::NotSent { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("q-secret"), "{err}");
}

#[tokio::test]
async fn bodies_queries_and_headers_are_sent() {
    let (base, _) = server().await;
    let ex = executor(1);
    let req = HttpRequest::new(Method::Post, format!("{base}/echo"), Replay::Safe)
        .secret_query("secret", crate::Secret::new("s1"))
        .secret_header("x-key", crate::Secret::new("k1"))
        .multipart(vec![
            Part::Text {
                name: "key1".into(),
                value: "123456789012".into(),
            },
            Part::File {
                name: "screenshot".into(),
                file_name: "shot.png".into(),
                content_type: "image/png".into(),
                bytes: Bytes::from_static(b"PNGDATA"),
            },
        ]);
    let CallOutcome::Response(r) = ex.execute(&req, T).await.expect("sent") else {
        panic!("no response")
    };
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("secret=s1"));
    assert!(lines
        .next()
        .is_some_and(|ct| ct.starts_with("multipart/form-data; boundary=")));
    assert_eq!(lines.next(), Some("k1"));
    assert!(text.contains("name=\"key1\"") && text.contains("123456789012"));
    assert!(text.contains("filename=\"shot.png\"") && text.contains("PNGDATA"));
    let form = HttpRequest::new(Method::Put, format!("{base}/echo"), Replay::Safe)
        .form(vec![("a".into(), "b c".into())]);
    let CallOutcome::Response(r) = ex.execute(&form, T).await.expect("sent") else {
        panic!("no response")
    };
    assert!(
        String::from_utf8_lossy(&r.body).ends_with("application/x-www-form-urlencoded\n\na=b+c")
    );
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let p = RetryPolicy {
        attempts_max: 5,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(1000),
    };
    assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
    assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
    assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
    assert_eq!(p.delay(9, 1.0), Duration::from_millis(1000));
    assert_eq!(p.delay(40, 0.5), Duration::from_millis(750));
    let bad = HttpConfig {
        attempts_max: 0,
        ..HttpConfig::default()
    };
    assert!(RetryPolicy::from_config(&bad).is_err());
}
