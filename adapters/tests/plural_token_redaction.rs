//! Plural's run-time access token never leaves the adapters: it is not in the configuration,
//! so the facade's redactor learns it when Plural issues it. Each test runs the facade
//! against a fake Plural on port 0 whose answers quote the token back, the way an error that
//! echoes the request does (`authorization: Bearer …`), then searches everything the facade
//! returned (error text, debug form, the signal the engine would store) for the token and
//! for a distinctive piece of it.

mod support;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use paystate_adapters::testing::t0;
use paystate_adapters::{AdapterError, Adapters};
use paystate_events::{CaptureMode, OrderState, PaymentInitiation, Provider};
use serde_json::{json, Value};

/// A token shaped like Plural's (a JWT).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaWQiLCJleHAiOjE3MjEzODUyMDN9.Xq3v9LpT0sK8mN2rB7wYcD4fG6hJ1kZ5aE0uI3oP9sQ";
/// Its signature segment: the part no other token shares.
const TOKEN_PIECE: &str = "LpT0sK8mN2rB7wYcD4fG6hJ1kZ5aE0uI3oP9sQ";

/// How the fake Plural answers the token request.
#[derive(Clone, Copy)]
enum TokenAnswer {
    Good,
    /// 2xx, but `expires_in` is a string: the body does not read as a token answer.
    StringExpiry,
}

/// Plural's validation error quoting the request, as the sandbox's `echo_request` fault does.
fn echo(method: &str, path: &str, h: &HeaderMap, body: &str) -> Value {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    json!({"code": "INVALID_REQUEST",
        "message": format!("invalid request: {method} {path} | authorization: {auth} | body: {body}")})
}

async fn fake_plural(token: TokenAnswer) -> String {
    let app = Router::new()
        .route(
            "/api/auth/v1/token",
            post(move || async move {
                match token {
                    TokenAnswer::Good => Json(json!({"access_token": TOKEN, "expires_in": 3600})),
                    TokenAnswer::StringExpiry => {
                        Json(json!({"access_token": TOKEN, "expires_in": "3600"}))
                    }
                }
            }),
        )
        .route(
            "/api/pay/v1/orders",
            post(|h: HeaderMap, body: String| async move {
                let answer = echo("POST", "/api/pay/v1/orders", &h, &body);
                (StatusCode::BAD_REQUEST, Json(answer))
            }),
        )
        .route(
            "/api/pay/v1/orders/{id}",
            get(|h: HeaderMap| async move {
                let answer = echo("GET", "/api/pay/v1/orders/v1-9", &h, "");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(answer))
            }),
        );
    support::serve(app).await
}

fn adapters(base: &str) -> Adapters {
    let provider = format!(
        r#"
        [plural]
        base_url = "{base}"
        [plural.accounts.default]
        client_id = "cid"
        client_secret = "cs-secret-1"
        webhook_secret = "my_plural_secret"
        "#
    );
    support::adapters(&format!("{}{provider}", support::FAST_RETRIES), t0)
}

fn order(provider_ref: Option<&str>) -> OrderState {
    let mut o =
        paystate_adapters::testing::order(Provider::Plural, 1100, "INR", CaptureMode::Manual);
    o.provider_ref = provider_ref.map(str::to_string);
    o
}

/// Everything an error lets out: its text (logged), its debug form, and the signal it
/// becomes (stored in the event log, shown by order queries).
fn everything_of(e: &AdapterError) -> String {
    let signal = serde_json::to_string(&e.signal(None)).expect("JSON");
    format!("{e}\n{e:?}\n{signal}")
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    assert!(
        !text.contains(TOKEN_PIECE),
        "part of the token leaked: {text}"
    );
    assert!(!text.contains("Xq3v9"), "part of the token leaked: {text}");
}

#[tokio::test]
async fn an_order_error_quoting_the_bearer_token_is_stored_without_it() {
    // Given a Plural that issues a token, then refuses the order with a message quoting
    // the request, Authorization header included.
    let adapters = adapters(&fake_plural(TokenAnswer::Good).await);

    // When the payment is started.
    let result = adapters
        .start_payment(&order(None), &PaymentInitiation::default())
        .await;

    // Then it is rejected, the Failed signal keeps Plural's message, and the token in it is
    // replaced by the marker.
    let e = result.expect_err("the order is refused");
    assert!(
        matches!(&e, AdapterError::Rejected { code, .. } if code == "INVALID_REQUEST"),
        "{e:?}"
    );
    let text = everything_of(&e);
    assert!(text.contains("\"status\":\"failed\""), "{text}");
    assert!(text.contains("authorization: Bearer [redacted]"), "{text}");
    assert_no_token(&text);
}

#[tokio::test]
async fn a_server_error_quoting_the_bearer_token_is_retried_without_it() {
    // Given a Plural whose order query answers 500 with the request quoted back.
    let adapters = adapters(&fake_plural(TokenAnswer::Good).await);

    // When the order's status is asked.
    let e = adapters
        .status(&order(Some("v1-9")))
        .await
        .expect_err("the query fails");

    // Then the error, logged on every retry, quotes the answer without the token.
    assert!(e.is_retryable(), "{e:?}");
    let text = everything_of(&e);
    assert!(text.contains("[redacted]"), "{text}");
    assert_no_token(&text);
}

#[tokio::test]
async fn an_unreadable_token_answer_names_the_field_and_never_quotes_the_token() {
    // Given a Plural whose 2xx token answer carries `expires_in` as a string.
    let adapters = adapters(&fake_plural(TokenAnswer::StringExpiry).await);

    // When the payment is started (a token is needed first).
    let e = adapters
        .start_payment(&order(None), &PaymentInitiation::default())
        .await
        .expect_err("no usable token");

    // Then the error (retried, so logged each time) names the field, and quotes neither
    // the body nor the value that failed.
    assert!(e.is_retryable(), "{e:?}");
    let text = everything_of(&e);
    assert!(text.contains("expires_in"), "{text}");
    assert!(!text.contains("3600"), "{text}");
    assert_no_token(&text);
}
