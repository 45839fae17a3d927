//! Plural (Pine Labs) end to end: commands → engine → adapter worker → sandbox → webhooks →
//! gateway → engine, over a real nats-server and real HTTP on loopback.

mod support;

use paystate_events::{CaptureMode, Command, Provider, Status};
use support::providers::*;
use support::*;

const P: Provider = Provider::Plural;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plural_lifecycle_authorize_partial_capture_refund() {
    let ps = ProviderStack::start().await;
    let o = order("plural");
    accept(&ps.client, env(&o, create_for(P, 10_000, "INR", CaptureMode::Manual))).await;
    accept(&ps.client, env(&o, start())).await;
    let pending = ps.wait_until(&o, "waiting for the customer", |s| s.customer_action.is_some()).await;
    let plural_order = pending.provider_ref.clone().expect("Plural order id recorded");
    assert!(pending.customer_action.as_ref().and_then(|a| a.url.clone()).is_some(), "challenge URL shown");
    ps.sandbox.approve(P, &plural_order).expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    accept(&ps.client, env(&o, Command::Capture { amount: money_in(6_000, "INR") })).await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 6_000);
    let refund = env(&o, Command::Refund { amount: money_in(2_500, "INR") });
    accept(&ps.client, refund).await;
    let refunded = ps.wait_until(&o, "refunded", |s| s.refunded.0 == 2_500).await;
    assert_eq!(refunded.status, Status::Captured);
    let c = ps.sandbox.counters(P, &plural_order);
    assert_eq!((c.authorized, c.captured, c.refunded), (1, 1, 1), "the provider saw each effect once: {c:?}");
}
