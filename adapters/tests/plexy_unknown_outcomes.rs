//! Plexy writes whose answer is lost (no idempotency key is documented, so none is ever
//! replayed): each test runs the facade against a fake Plexy on port 0 that makes no change
//! on the writes it fails (5xx), counts every request, and checks that Plexy's answer to a
//! read resolves the outcome, that the write is never sent twice, and that a plain status
//! query (the reconciler's, the gateway's) concludes "not made" only once the order's log has
//! been quiet for `SETTLE_TIMEOUTS` request timeouts.

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use paystate_adapters::testing::{money, t0};
use paystate_adapters::{AdapterError, Adapters};
use paystate_events::{
    CaptureMode, CustomerActionKind, MinorUnits, Operation, OrderState, PaymentInitiation,
    Provider, SignalKind, Status, Timestamp,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// What the fake Plexy holds, and every request it was sent (`METHOD path`).
#[derive(Default)]
struct Fake {
    /// The link under our order reference (`None`: 404).
    link: Option<Value>,
    transactions: Vec<Value>,
    hits: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn lock(f: &Shared) -> std::sync::MutexGuard<'_, Fake> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

fn hit(f: &Shared, what: String) {
    lock(f).hits.push(what);
}

/// A write Plexy fails before acting: the answer says nothing of what happened.
fn server_error() -> (StatusCode, Json<Value>) {
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({"code": "1", "message": "service unavailable"})),
    )
}

async fn fake_plexy() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/v1/payment-links",
            post(|State(f): State<Shared>| async move {
                hit(&f, "POST create".into());
                server_error()
            }),
        )
        .route(
            "/v1/payment-links/by-order-reference/{reference}",
            get(
                |State(f): State<Shared>, Path(r): Path<String>| async move {
                    hit(&f, format!("GET by-reference {r}"));
                    match lock(&f).link.clone() {
                        Some(l) => (StatusCode::OK, Json(l)),
                        None => (
                            StatusCode::NOT_FOUND,
                            Json(json!({"code": "not_found", "message": "payment link not found"})),
                        ),
                    }
                },
            ),
        )
        .route(
            "/v1/transactions/by-payment-link/{id}",
            get(
                |State(f): State<Shared>, Path(id): Path<String>| async move {
                    hit(&f, format!("GET transactions {id}"));
                    let txs = lock(&f).transactions.clone();
                    Json(json!({"total": txs.len(), "transactions": txs}))
                },
            ),
        )
        .route(
            "/v1/payments/{tx}/{op}",
            post(
                |State(f): State<Shared>, Path((tx, op)): Path<(String, String)>| async move {
                    hit(&f, format!("POST {op} {tx}"));
                    server_error()
                },
            ),
        )
        .with_state(shared.clone());
    (support::serve(app).await, shared)
}

/// The order's last commit is at `t0`; the request timeout is 30 s, so the log is quiet
/// ("settled") from `t0 + 60 s`.
fn just_after() -> Timestamp {
    t0() + chrono::Duration::seconds(1)
}
fn quiet_since_long() -> Timestamp {
    t0() + chrono::Duration::minutes(10)
}

fn adapters(base: &str, clock: fn() -> Timestamp) -> Adapters {
    let text = format!(
        r#"
        [http]
        attempts_max = 1
        [plexy]
        base_url = "{base}"
        [plexy.accounts.default]
        api_key = "sk_test_1"
        webhook_token = "whk-token-1"
        "#
    );
    support::adapters(&text, clock)
}

/// A started order whose create lost its answer: pending, no link, no customer action.
fn started() -> OrderState {
    paystate_adapters::testing::order(Provider::Plexy, 999, "USD", CaptureMode::Manual)
}

/// An authorized order on link `pl_1`.
fn authorized() -> OrderState {
    let mut o = started();
    o.status = Status::Authorized;
    o.authorized = MinorUnits(999);
    o.provider_ref = Some("pl_1".into());
    o
}

fn link(amount: u64) -> Value {
    json!({"id": "pl_1", "url": "https://checkout.plexy.test/pl_1", "status": "active",
        "amount": amount, "currency": "USD", "orderReference": "ord-1"})
}

fn tx(status: &str) -> Value {
    json!({"id": "tx_1", "status": status, "amount": 999, "processedAmount": 999,
        "currency": "USD", "merchantReference": "ord-1"})
}

fn hits(f: &Shared, prefix: &str) -> usize {
    lock(f)
        .hits
        .iter()
        .filter(|h| h.starts_with(prefix))
        .count()
}

fn is_unknown(s: &SignalKind, op: Operation) -> bool {
    matches!(s, SignalKind::OutcomeUnknown { operation, .. } if *operation == op)
}

fn is_failed(s: &SignalKind, op: Operation, want: &str) -> bool {
    matches!(s, SignalKind::Failed { operation, code, .. } if *operation == op && code == want)
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_resolved_by_the_order_reference() {
    let (base, fake) = fake_plexy().await;
    let plexy = adapters(&base, just_after);
    let (order, init) = (started(), PaymentInitiation::default());
    let start = || plexy.start_payment(&order, &init);

    // No link under our reference: recorded, but not taken as proof the create did not
    // happen (the lookup's path is unconfirmed): nothing fails, the order keeps waiting.
    let r = start().await.expect("resolved");
    assert_eq!(r.provider_ref, None);
    assert!(
        matches!(r.signals.as_slice(), [u, SignalKind::Probed { .. }] if is_unknown(u, Operation::Payment)),
        "{r:?}"
    );

    // The link exists (Plexy made it, then its answer was lost): it becomes the order's.
    lock(&fake).link = Some(link(999));
    let r = start().await.expect("resolved");
    assert_eq!(r.provider_ref.as_deref(), Some("pl_1"));
    match r.signals.as_slice() {
        [u, SignalKind::Accepted { action: Some(a) }] if is_unknown(u, Operation::Payment) => {
            assert_eq!(a.kind, CustomerActionKind::Redirect);
            assert_eq!(a.url.as_deref(), Some("https://checkout.plexy.test/pl_1"));
        }
        other => panic!("the link is shown: {other:?}"),
    }

    // A link under our reference for another amount is not taken for ours.
    lock(&fake).link = Some(link(1000));
    let r = start().await.expect("resolved");
    assert_eq!(
        r.provider_ref, None,
        "a foreign link never becomes the reference"
    );
    assert!(
        matches!(r.signals.as_slice(), [u, SignalKind::NeedsReview { reason }]
            if is_unknown(u, Operation::Payment) && reason.contains("amount")),
        "{r:?}"
    );

    assert_eq!(
        hits(&fake, "POST create"),
        3,
        "one create per start, never resent"
    );
    assert_eq!(hits(&fake, "GET by-reference ord-1"), 3);
}

#[tokio::test]
async fn status_finds_the_link_of_a_create_whose_answer_was_lost() {
    let (base, fake) = fake_plexy().await;
    let soon = adapters(&base, just_after);
    let quiet = adapters(&base, quiet_since_long);

    // No link yet: while our create may still be on its way nothing is said; once the log
    // has been quiet, that no link was found is recorded, deciding nothing.
    let r = soon.status(&started()).await.expect("answered");
    assert!(r.signals.is_empty(), "{r:?}");
    let r = quiet.status(&started()).await.expect("answered");
    assert!(
        matches!(r.signals.as_slice(), [SignalKind::Probed { .. }]),
        "{r:?}"
    );

    // A link found is reported at once, with its transactions.
    lock(&fake).link = Some(link(999));
    let r = soon.status(&started()).await.expect("answered");
    assert_eq!(r.provider_ref.as_deref(), Some("pl_1"));
    assert!(
        matches!(
            r.signals.as_slice(),
            [SignalKind::Accepted { action: Some(_) }]
        ),
        "{r:?}"
    );
    lock(&fake).transactions = vec![tx("authorized")];
    let r = soon.status(&started()).await.expect("answered");
    assert_eq!(r.provider_ref.as_deref(), Some("pl_1"));
    assert_eq!(
        r.signals,
        vec![SignalKind::Authorized {
            amount: Some(money(999, "USD"))
        }]
    );

    // An order not started is not looked up (nothing to find, nothing to fail).
    let mut created = started();
    created.status = Status::Created;
    let e = quiet
        .status(&created)
        .await
        .expect_err("no link to ask about");
    assert!(matches!(e, AdapterError::InvalidInput { .. }), "{e:?}");
    assert_eq!(hits(&fake, "POST"), 0, "a status query writes nothing");
    assert_eq!(hits(&fake, "GET by-reference"), 4);
}

#[tokio::test]
async fn a_capture_whose_answer_is_lost_fails_while_the_transaction_stays_authorized() {
    let (base, fake) = fake_plexy().await;
    lock(&fake).transactions = vec![tx("authorized")];
    let soon = adapters(&base, just_after);
    let quiet = adapters(&base, quiet_since_long);
    let mut o = authorized();
    o.capture_pending = Some(("cap-1".into(), MinorUnits(999)));
    let authorized_signal = SignalKind::Authorized {
        amount: Some(money(999, "USD")),
    };

    // The write that lost its answer asks at once (its own call is over): not captured.
    let r = soon
        .capture(&o, "cap-1", money(999, "USD"))
        .await
        .expect("resolved");
    assert!(
        matches!(r.signals.as_slice(), [u, a, f] if is_unknown(u, Operation::Capture)
            && *a == authorized_signal && is_failed(f, Operation::Capture, "not_captured")),
        "{r:?}"
    );
    assert!(
        r.call_ref.contains(":status=transaction.authorized"),
        "{r:?}"
    );
    assert_eq!(hits(&fake, "POST capture"), 1, "never sent twice");

    // A plain status query concludes only once the log has been quiet.
    let r = soon.status(&o).await.expect("answered");
    assert_eq!(r.signals, vec![authorized_signal.clone()]);
    let r = quiet.status(&o).await.expect("answered");
    assert!(
        matches!(r.signals.as_slice(), [a, f] if *a == authorized_signal
            && is_failed(f, Operation::Capture, "not_captured")),
        "{r:?}"
    );

    // The same for a void.
    let mut v = authorized();
    v.cancel_pending = true;
    let r = soon.cancel(&v).await.expect("resolved");
    assert!(
        matches!(r.signals.as_slice(), [u, _, f] if is_unknown(u, Operation::Cancel)
            && is_failed(f, Operation::Cancel, "not_cancelled")),
        "{r:?}"
    );

    // A capture that finds the transaction charged already reports it, and sends nothing.
    lock(&fake).transactions = vec![tx("charged")];
    let r = soon
        .capture(&o, "cap-1", money(999, "USD"))
        .await
        .expect("reported");
    assert_eq!(
        r.signals,
        vec![SignalKind::Captured {
            amount: Some(money(999, "USD"))
        }]
    );
    let r = quiet.status(&o).await.expect("answered");
    assert_eq!(r.signals.len(), 1, "charged concludes nothing more: {r:?}");
    assert_eq!(
        (hits(&fake, "POST capture"), hits(&fake, "POST cancel")),
        (1, 1)
    );
}
