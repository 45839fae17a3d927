//! Which refund a Flitt reversal is. Flitt's status answer carries only the total reversed
//! (`reversal_amount`), so with two pending refunds of one amount it cannot say which one
//! Flitt made. Each test runs the facade against a fake Flitt on port 0 that has made one
//! reversal of 30 for an order paystate knows with refunds r-b and r-a (30 each) pending.

mod support;

use axum::routing::post;
use axum::{Json, Router};
use paystate_adapters::flitt::signature;
use paystate_adapters::testing::t0;
use paystate_adapters::Adapters;
use paystate_events::{CaptureMode, MinorUnits, OrderState, Provider, SignalKind, Status};
use serde_json::{json, Map, Value};

const PASSWORD: &str = "test";

/// The signed status answer of an order captured for 100.00 GEL with 30.00 reversed.
fn status_answer() -> Value {
    let mut p = match json!({"order_id": "ord-1", "merchant_id": 1549901, "order_status": "approved",
        "response_status": "success", "amount": "10000", "actual_amount": "10000", "currency": "GEL",
        "reversal_amount": "3000", "tran_type": "purchase", "payment_id": 814277784,
        "preauth": "N", "capture_status": ""})
    {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let sig = signature::sign(PASSWORD, &p);
    p.insert("signature".into(), json!(sig));
    json!({ "response": p })
}

/// A fake Flitt whose reverse call acts but answers with a body that does not read (the
/// outcome is unknown), and whose status answer shows the reversal.
async fn fake_flitt() -> String {
    let app = Router::new()
        .route(
            "/api/reverse/order_id",
            post(|| async { "<html>502 Bad Gateway</html>" }),
        )
        .route(
            "/api/status/order_id",
            post(|| async { Json(status_answer()) }),
        );
    support::serve(app).await
}

fn adapters(base: &str) -> Adapters {
    let provider = format!(
        r#"
        [flitt]
        base_url = "{base}"
        [flitt.accounts.default]
        merchant_id = 1549901
        password = "{PASSWORD}"
        "#
    );
    support::adapters(&format!("{}{provider}", support::FAST_RETRIES), t0)
}

/// Captured 100.00 GEL, refunds r-b and r-a of 30.00 each pending, nothing refunded yet.
fn order() -> OrderState {
    let mut o = paystate_adapters::testing::order(Provider::Flitt, 10000, "GEL", CaptureMode::Auto);
    o.status = Status::Captured;
    o.captured = MinorUnits(10000);
    o.provider_ref = Some("814277784".into());
    o.refunds_pending.insert("r-b".into(), MinorUnits(3000));
    o.refunds_pending.insert("r-a".into(), MinorUnits(3000));
    o
}

fn refunds(signals: &[SignalKind]) -> Vec<Option<String>> {
    signals
        .iter()
        .filter_map(|s| match s {
            SignalKind::Refunded { refund_id, .. } => Some(refund_id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_status_answer_does_not_credit_one_of_two_pending_refunds_of_its_amount() {
    // Given Flitt made r-b and the order still shows r-b and r-a pending (the gateway
    // confirming Flitt's reverse callback, or a reconciler probe, before r-b's report).
    let adapters = adapters(&fake_flitt().await);
    // When the status is asked.
    let reported = adapters.status(&order()).await.expect("answered");
    // Then no refund is completed (r-a, first in key order, used to be), and the reversal is
    // recorded for the worker's report of r-b, or a person, to decide.
    assert_eq!(refunds(&reported.signals), Vec::<Option<String>>::new());
    assert!(
        reported
            .signals
            .iter()
            .any(|s| matches!(s, SignalKind::Unrecognised { raw_status } if raw_status.contains("r-a=3000, r-b=3000"))),
        "{:?}",
        reported.signals
    );
}

#[tokio::test]
async fn a_refund_of_unknown_outcome_is_resolved_as_the_refund_attempted() {
    // Given our reverse call for r-b whose answer does not read, and a status answer showing
    // 30 reversed.
    let adapters = adapters(&fake_flitt().await);
    let amount = paystate_adapters::testing::money(3000, "GEL");
    // When the worker refunds r-b.
    let reported = adapters
        .refund(&order(), "r-b", amount)
        .await
        .expect("resolved by a status query");
    // Then the unknown outcome is recorded, and the reversal is r-b's, not r-a's.
    assert!(
        matches!(
            reported.signals.first(),
            Some(SignalKind::OutcomeUnknown { .. })
        ),
        "{:?}",
        reported.signals
    );
    assert_eq!(refunds(&reported.signals), vec![Some("r-b".to_string())]);
    assert_eq!(reported.call_ref, "ord-1:status");
}
