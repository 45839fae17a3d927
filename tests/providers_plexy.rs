//! Plexy (PlexyPay) end to end: commands → engine → adapter worker → sandbox → webhooks →
//! gateway → engine, over a real nats-server and real HTTP on loopback. Payment links,
//! partial capture, repeated partial refunds, void, link cancellation and expiry, declines
//! and system failures, bearer-token webhooks (a wrong token is rejected and recorded), the
//! Tilda form signature, and writes whose answer is lost (a link create resolved by the order
//! reference, a capture not made failed so it can be made again).

mod support;

use paystate_adapters::plexy::signature::{tilda_signature, verify_tilda, TildaMode};
use paystate_adapters::plexy::transformers::{tilda_form, verify_tilda_form};
use paystate_adapters::Secret;
use paystate_events::OrderId;
use paystate_events::{CaptureMode, Command, CustomerActionKind, Provider, Status};
use paystate_sandbox::{Action, FaultKind, FaultRule};
use paystate_workers::ReconcilerConfig;
use std::time::{Duration, Instant};
use support::providers::*;
use support::tuned::{trail, Tuned, Tuning};
use support::*;

const P: Provider = Provider::Plexy;

/// Creates and starts a Plexy order; returns it with its payment link id once the link is
/// shown to the customer.
async fn started(
    ps: &ProviderStack,
    name: &str,
    minor: u64,
    mode: CaptureMode,
) -> (OrderId, String) {
    let o = order(name);
    accept(&ps.client, env(&o, create_for(P, minor, "USD", mode))).await;
    accept(&ps.client, env(&o, start())).await;
    let pending = ps
        .wait_until(&o, "showing the payment link", |s| {
            s.customer_action.is_some()
        })
        .await;
    let action = pending.customer_action.expect("customer action");
    assert_eq!(action.kind, CustomerActionKind::Redirect);
    let link = pending.provider_ref.expect("payment link id recorded");
    assert!(link.starts_with("pl_"), "{link}");
    assert_eq!(
        action.url.as_deref(),
        ps.sandbox.order(P, &link)["url"].as_str(),
        "the hosted checkout is shown"
    );
    (o, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_link_3ds_partial_capture_and_repeated_partial_refunds() {
    let ps = ProviderStack::start().await;
    let (o, link) = started(&ps, "plexy", 10_000, CaptureMode::Manual).await;
    ps.sandbox
        .act(P, &link, Action::Challenge)
        .expect("3DS step");
    ps.sandbox
        .act(P, &link, Action::Complete3ds { success: true })
        .expect("customer passes 3DS");
    let authorized = ps.wait_status(&o, Status::Authorized).await;
    assert_eq!(authorized.authorized.0, 10_000);
    accept(
        &ps.client,
        env(
            &o,
            Command::Capture {
                amount: money_in(6_000, "USD"),
            },
        ),
    )
    .await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 6_000, "partial capture");
    for (i, part) in [2_000, 1_500].into_iter().enumerate() {
        accept(
            &ps.client,
            env(
                &o,
                Command::Refund {
                    amount: money_in(part, "USD"),
                },
            ),
        )
        .await;
        let want = [2_000, 3_500][i];
        ps.wait_until(&o, "partly refunded", |s| {
            s.refunded.0 == want && s.refunds_pending.is_empty()
        })
        .await;
    }
    let partly = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(
        partly.refunds_completed.len(),
        2,
        "two partial refunds: {partly:#?}"
    );
    accept(&ps.client, env(&o, Command::Refund { amount: None })).await;
    let returned = ps.wait_status(&o, Status::Returned).await;
    assert_eq!((returned.captured.0, returned.refunded.0), (6_000, 6_000));
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let tx = &ps.sandbox.order(P, &link)["transaction"];
    assert_eq!(
        (tx["status"].as_str(), tx["refundedAmount"].as_u64()),
        (Some("refunded"), Some(6_000))
    );
    let c = ps.sandbox.counters(P, &link);
    assert_eq!(
        (c.authorized, c.captured, c.refunded),
        (1, 1, 3),
        "the provider saw each effect once: {c:?}"
    );
    let settled = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert!(
        settled.discrepancies.is_empty(),
        "webhooks and answers agree: {:#?}",
        settled.discrepancies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_auto_capture_decline_and_system_failure() {
    let ps = ProviderStack::start().await;
    let (auto, auto_link) = started(&ps, "plexy-auto", 4_200, CaptureMode::Auto).await;
    let (declined, declined_link) = started(&ps, "plexy-decl", 4_200, CaptureMode::Manual).await;
    let (broken, broken_link) = started(&ps, "plexy-fail", 4_200, CaptureMode::Manual).await;
    ps.sandbox.approve(P, &auto_link).expect("customer pays");
    ps.sandbox
        .decline(P, &declined_link)
        .expect("bank declines");
    ps.sandbox
        .act(P, &broken_link, Action::Fail)
        .expect("system error");
    let auto = ps.wait_status(&auto, Status::Captured).await;
    assert_eq!(
        auto.captured.0, 4_200,
        "autoClearing captured the whole amount"
    );
    let declined = ps.wait_status(&declined, Status::Failed).await;
    assert_eq!(
        declined.failure.map(|f| f.0).as_deref(),
        Some("rejected"),
        "bank decline"
    );
    let broken = ps.wait_status(&broken, Status::Failed).await;
    assert_eq!(
        broken.failure.map(|f| f.0).as_deref(),
        Some("failed"),
        "system error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_void_link_cancel_and_expiry_update() {
    let ps = ProviderStack::start().await;
    let (voided, voided_link) = started(&ps, "plexy-void", 3_000, CaptureMode::Manual).await;
    ps.sandbox.approve(P, &voided_link).expect("customer pays");
    ps.wait_status(&voided, Status::Authorized).await;
    accept(
        &ps.client,
        env(
            &voided,
            Command::Cancel {
                reason: Some("out of stock".into()),
            },
        ),
    )
    .await;
    ps.wait_status(&voided, Status::Cancelled).await;
    assert_eq!(
        ps.sandbox.order(P, &voided_link)["transaction"]["status"],
        "cancelled"
    );
    assert_eq!(ps.sandbox.counters(P, &voided_link).cancelled, 1);

    // Nobody paid yet: cancelling the order cancels the payment link itself.
    let (unpaid, unpaid_link) = started(&ps, "plexy-link", 3_000, CaptureMode::Manual).await;
    accept(&ps.client, env(&unpaid, Command::Cancel { reason: None })).await;
    ps.wait_status(&unpaid, Status::Cancelled).await;
    assert_eq!(ps.sandbox.order(P, &unpaid_link)["status"], "cancelled");
    assert!(
        ps.sandbox.approve(P, &unpaid_link).is_err(),
        "a cancelled link takes no payment"
    );

    // Moving a live link's expiry.
    let (live, live_link) = started(&ps, "plexy-exp", 3_000, CaptureMode::Manual).await;
    let state = ps
        .journal
        .load(&live)
        .await
        .expect("load")
        .state
        .expect("order");
    let at: paystate_events::Timestamp = "2031-01-02T03:04:05Z".parse().expect("time");
    ps.adapters()
        .plexy_update_link_expiry(&state, at)
        .await
        .expect("expiry updated");
    assert_eq!(
        ps.sandbox.order(P, &live_link)["expiresAt"],
        "2031-01-02T03:04:05Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_webhook_with_a_wrong_token_is_rejected_and_recorded() {
    let ps = ProviderStack::start().await;
    let (o, link) = started(&ps, "plexy-tok", 2_500, CaptureMode::Manual).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::BadSignatureCallback).on_order(&link),
    );
    ps.sandbox.approve(P, &link).expect("customer pays");
    // The first attempt carries a wrong token and is refused; Plexy's retry is signed.
    ps.wait_status(&o, Status::Authorized).await;
    let forged = reqwest::Client::new()
        .post(format!("{}/callbacks/plexy", ps.gateway_url()))
        .header("authorization", "Bearer not-the-webhook-token")
        .header("content-type", "application/json")
        .body(r#"{"name":"transaction.charged","merchantId":"merchant-1","data":{"id":"tx-1","status":"charged","amount":2500,"currency":"USD"}}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status().as_u16(), 401);
    assert!(
        ps.sandbox.wait_callbacks_idle(WAIT).await,
        "Plexy's retry delivered"
    );
    let deliveries = ps.sandbox.deliveries(P);
    let bad: Vec<_> = deliveries.iter().filter(|d| d.bad_signature).collect();
    assert_eq!(bad.len(), 1, "{deliveries:#?}");
    assert_eq!(bad[0].status, Some(401), "the wrong token was refused");
    let verdicts = ps.callback_verdicts(P).await;
    let rejected: Vec<_> = verdicts
        .iter()
        .filter(|v| v["verdict"] == "rejected")
        .collect();
    assert_eq!(
        rejected.len(),
        2,
        "both forged webhooks recorded: {verdicts:#?}"
    );
    assert!(rejected
        .iter()
        .all(|v| v["detail"].as_str().unwrap_or("").contains("bad signature")));
    let raw = ps.raw_callbacks(P).await;
    for v in &rejected {
        let seq = v["raw_seq"].as_u64().expect("raw_seq");
        assert!(seq > 0, "stored raw before the verdict: {v}");
    }
    let forged_raw = raw
        .iter()
        .filter(|r| r["headers"].to_string().contains("redacted"))
        .count();
    assert!(
        raw.len() >= 3 && forged_raw == raw.len(),
        "every webhook stored raw, credentials redacted: {raw:#?}"
    );
    let state = ps.wait_status(&o, Status::Authorized).await;
    assert!(
        state.discrepancies.is_empty(),
        "the forged 'charged' was never applied"
    );
    let stats = ps.stack.callbacks.as_ref().expect("callbacks").stats();
    assert_eq!(stats.rejected.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn tilda_signature_vectors_and_tampering() {
    // providers.md: HMAC-MD5(key `s3cr3t`, `store-42:USD:999:s3cr3t`).
    let sig = tilda_signature("store-42", "USD", "999", "s3cr3t", TildaMode::HmacMd5);
    assert_eq!(sig, "c9fc193bd7ecd2ac2a60196570db3aaa");
    assert!(verify_tilda(
        "store-42",
        "USD",
        "999",
        "s3cr3t",
        TildaMode::HmacMd5,
        &sig
    ));
    for (store, cur, amount, secret) in [
        ("store-43", "USD", "999", "s3cr3t"),
        ("store-42", "EUR", "999", "s3cr3t"),
        ("store-42", "USD", "998", "s3cr3t"),
        ("store-42", "USD", "999", "s3cr3T"),
    ] {
        assert!(
            !verify_tilda(store, cur, amount, secret, TildaMode::HmacMd5, &sig),
            "tampered {store} {cur} {amount} {secret}"
        );
    }
    // The other reading (plain MD5) is an option, and the two never verify each other.
    let plain = tilda_signature("store-42", "USD", "999", "s3cr3t", TildaMode::PlainMd5);
    assert_eq!(plain.len(), 32);
    assert_ne!(plain, sig);
    assert!(verify_tilda(
        "store-42",
        "USD",
        "999",
        "s3cr3t",
        TildaMode::PlainMd5,
        &plain
    ));
    assert!(!verify_tilda(
        "store-42",
        "USD",
        "999",
        "s3cr3t",
        TildaMode::HmacMd5,
        &plain
    ));

    // A form we produce verifies; any edited field does not.
    let state = paystate_engine::evolve(None, &tilda_order()).expect("order");
    let secret = Secret::new("s3cr3t");
    for mode in [TildaMode::HmacMd5, TildaMode::PlainMd5] {
        let form = tilda_form("store-42", &secret, mode, "proj7", &state);
        assert!(verify_tilda_form(&form, &secret, mode), "{form:?}");
        assert!(form
            .iter()
            .any(|(k, v)| k == "order[reference]" && v.starts_with("proj7_")));
        for field in [
            "order[store_id]",
            "order[currency]",
            "order[amount]",
            "signature",
        ] {
            let mut edited = form.clone();
            for (k, v) in edited.iter_mut() {
                if k == field {
                    v.push('1');
                }
            }
            assert!(!verify_tilda_form(&edited, &secret, mode), "edited {field}");
        }
        assert!(!verify_tilda_form(&form, &Secret::new("other"), mode));
    }
}

fn tilda_order() -> paystate_events::Event {
    paystate_events::Event::OrderCreated {
        order_id: OrderId::parse("tilda-1").expect("id"),
        merchant_reference: "shop-1".into(),
        amount: money_in(999, "USD").expect("amount"),
        provider: P,
        capture_mode: CaptureMode::Auto,
        expires_at: None,
        merchant_account: None,
        metadata: Default::default(),
        created_at: "2026-11-22T10:00:00Z".parse().expect("time"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_lost_capture_answer_and_duplicate_webhooks_take_effect_once() {
    let ps = ProviderStack::start().await;
    let (o, link) = started(&ps, "plexy-fault", 8_000, CaptureMode::Manual).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DuplicateCallback)
            .on_order(&link)
            .times(5),
    );
    ps.sandbox.approve(P, &link).expect("customer pays");
    ps.wait_status(&o, Status::Authorized).await;
    // Plexy captures, then the connection closes before its answer: the outcome is unknown,
    // recorded as such, and resolved by asking, never by capturing again.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse)
            .on_op(paystate_sandbox::Op::Capture)
            .on_order(&link),
    );
    accept(
        &ps.client,
        env(
            &o,
            Command::Capture {
                amount: money_in(5_000, "USD"),
            },
        ),
    )
    .await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 5_000);
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let c = ps.sandbox.counters(P, &link);
    assert_eq!(
        (c.authorized, c.captured, c.dropped_responses),
        (1, 1, 1),
        "{c:?}"
    );
    assert!(c.callbacks_duplicated >= 2, "{c:?}");
    let signals = ps.signals(&o).await;
    let kinds: Vec<&str> = signals.iter().map(|s| s.kind.name()).collect();
    assert!(kinds.contains(&"outcome_unknown"), "{kinds:?}");
    let resolved = signals
        .iter()
        .find(|s| s.event_names() == ["payment_captured"])
        .expect("captured once");
    assert!(
        resolved.evidence_ref.contains(":status=")
            || resolved.evidence_ref.starts_with("callbacks:"),
        "learned by asking or from the webhook: {resolved:?}"
    );
    let effects: usize = signals
        .iter()
        .filter(|s| {
            matches!(
                s.event_names().as_slice(),
                ["payment_authorized"] | ["payment_captured"]
            )
        })
        .count();
    assert_eq!(
        effects, 2,
        "each effect applied once despite duplicates: {kinds:?}"
    );
    let state = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert!(state.discrepancies.is_empty(), "{:#?}", state.discrepancies);
}

/// The webhook token of the stack's Plexy account.
fn webhook_token(ps: &ProviderStack) -> String {
    let adapters = ps.adapters();
    let cfg = adapters.config().plexy.as_ref().expect("plexy configured");
    let (_, account) = cfg.common.accounts.iter().next().expect("an account");
    account.webhook_token.expose().to_string()
}

/// The webhook Plexy sends for the link's transaction as it stands at the sandbox.
fn genuine_webhook(ps: &ProviderStack, link: &str) -> serde_json::Value {
    let at_plexy = ps.sandbox.order(P, link);
    let tx = at_plexy["transaction"].clone();
    assert!(tx.is_object(), "a transaction exists: {at_plexy}");
    let status = tx["status"].as_str().expect("status").to_string();
    serde_json::json!({"name": format!("transaction.{status}"), "merchantId": "merchant-1", "data": tx})
}

/// Posts a webhook with the right bearer token; the HTTP status.
async fn post_webhook(ps: &ProviderStack, body: &serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/callbacks/plexy", ps.gateway_url()))
        .header("authorization", format!("Bearer {}", webhook_token(ps)))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

fn count_verdicts(verdicts: &[serde_json::Value], v: &str) -> usize {
    verdicts.iter().filter(|r| r["verdict"] == v).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_altered_webhook_then_the_genuine_applies_the_genuine_state_once() {
    let ps = ProviderStack::start().await;
    let (o, link) = started(&ps, "plexy-alt", 2_500, CaptureMode::Manual).await;
    // Plexy's own webhook for the payment is lost on the way: the test delivers it.
    ps.sandbox
        .add_fault(P, FaultRule::once(FaultKind::DropCallback).on_order(&link));
    ps.sandbox.approve(P, &link).expect("customer pays");
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let genuine = genuine_webhook(&ps, &link);
    assert_eq!(genuine["name"], "transaction.authorized");
    // Someone holding the token (or a proxy) sends an altered copy first: "charged", for 1.
    let mut altered = genuine.clone();
    altered["name"] = "transaction.charged".into();
    altered["data"]["status"] = "charged".into();
    altered["data"]["amount"] = 1.into();
    altered["data"]["processedAmount"] = 1.into();
    assert_eq!(post_webhook(&ps, &altered).await, 200);
    // The body is not signed: it only triggered a status query, whose answer is applied.
    let authorized = ps.wait_status(&o, Status::Authorized).await;
    assert_eq!((authorized.authorized.0, authorized.captured.0), (2_500, 0));
    assert!(!authorized.needs_review, "{:#?}", authorized.discrepancies);
    // The genuine webhook that follows is the same report: acknowledged, applied once.
    assert_eq!(post_webhook(&ps, &genuine).await, 200);
    let verdicts = ps.callback_verdicts(P).await;
    assert_eq!(
        (
            count_verdicts(&verdicts, "applied"),
            count_verdicts(&verdicts, "duplicate")
        ),
        (1, 1),
        "{verdicts:#?}"
    );
    let applied = verdicts
        .iter()
        .find(|v| v["verdict"] == "applied")
        .expect("applied");
    let detail = applied["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("claimed [captured]") && detail.contains("reports [authorized]"),
        "the claim and the confirmed answer are both kept: {detail}"
    );
    let signals = ps.signals(&o).await;
    let authorizations = signals
        .iter()
        .filter(|s| s.event_names() == ["payment_authorized"])
        .collect::<Vec<_>>();
    assert_eq!(authorizations.len(), 1, "{signals:#?}");
    // Applied from Plexy's answer to a status query (the webhook's, or the reconciler's
    // if it asked first), never from the webhook body.
    assert!(
        authorizations[0]
            .evidence_ref
            .contains(":status=transaction.authorized"),
        "evidence: the status answer: {:?}",
        authorizations[0].evidence_ref
    );
    // The order still moves on: Plexy's later webhooks are confirmed the same way.
    accept(&ps.client, env(&o, Command::Capture { amount: None })).await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 2_500);
    assert!(
        captured.discrepancies.is_empty(),
        "{:#?}",
        captured.discrepancies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_webhook_re_addressed_to_another_order_changes_nothing() {
    let ps = ProviderStack::start().await;
    let (victim, _) = started(&ps, "plexy-victim", 4_000, CaptureMode::Manual).await;
    let (payer, payer_link) = started(&ps, "plexy-payer", 4_000, CaptureMode::Manual).await;
    ps.sandbox.approve(P, &payer_link).expect("customer pays");
    ps.wait_status(&payer, Status::Authorized).await;
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    // The payer's genuine webhook, re-addressed by its unsigned merchantReference.
    let mut readdressed = genuine_webhook(&ps, &payer_link);
    readdressed["data"]["merchantReference"] = victim.to_string().into();
    assert_eq!(post_webhook(&ps, &readdressed).await, 200);
    // It asked Plexy about the victim's own link, which nobody paid: nothing to apply.
    let marker = Command::ProviderSignal {
        signal: paystate_events::ProviderSignal {
            provider: P,
            provider_ref: None,
            evidence_ref: "test:marker".into(),
            observed_at: chrono::Utc::now(),
            kind: paystate_events::SignalKind::Probed {
                answer: "marker".into(),
            },
        },
    };
    let after = accept(&ps.client, env(&victim, marker)).await;
    assert_eq!(after.status, Status::Pending, "the victim did not move");
    assert_eq!((after.authorized.0, after.captured.0), (0, 0));
    assert!(!after.needs_review, "{:#?}", after.discrepancies);
    let verdicts = ps.callback_verdicts(P).await;
    let last = verdicts.last().expect("a verdict");
    assert_eq!(last["order_id"], victim.as_str(), "{last}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("claimed [authorized]"),
        "the claim is kept as evidence: {last}"
    );
    let payer_now = ps.wait_status(&payer, Status::Authorized).await;
    assert_eq!(payer_now.authorized.0, 4_000);
}

/// Signals of `kind` in the order's log, with the events the engine made of each.
async fn named(ps: &ProviderStack, o: &OrderId, kind: &str) -> Vec<SignalCommit> {
    let all = ps.signals(o).await;
    all.into_iter().filter(|s| s.kind.name() == kind).collect()
}

/// The `Failed` signals of the order that carry `code`, as the events they became.
async fn failed_with(ps: &ProviderStack, o: &OrderId, code: &str) -> Vec<Vec<&'static str>> {
    let failed = named(ps, o, "failed").await;
    failed
        .iter()
        .filter(
            |s| matches!(&s.kind, paystate_events::SignalKind::Failed { code: c, .. } if c == code),
        )
        .map(|s| s.event_names())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_link_create_with_a_lost_answer_is_found_by_reference_or_waits() {
    let ps = ProviderStack::start().await;
    // Plexy creates the link, then the connection closes before its answer: the link is
    // found by our order reference and shown; no second link is made.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse).on_op(paystate_sandbox::Op::Create),
    );
    let (found, link) = started(&ps, "plexy-lost-create", 4_000, CaptureMode::Manual).await;
    assert_eq!(ps.sandbox.totals(P).dropped_responses, 1);
    assert_eq!(
        ps.sandbox.totals(P).created,
        1,
        "one link, never created twice"
    );
    assert_eq!(named(&ps, &found, "outcome_unknown").await.len(), 1);
    ps.sandbox
        .approve(P, &link)
        .expect("the customer pays the link");
    ps.wait_status(&found, Status::Authorized).await;

    // Plexy fails the create without making it (5xx): no link under the reference. That is
    // recorded but not taken as proof the create did not happen (the lookup's path is not in
    // the documents we hold): the order keeps waiting, nothing is created twice, and the
    // reconciler flags it at its final deadline.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 }).on_op(paystate_sandbox::Op::Create),
    );
    let lost = order("plexy-no-link");
    accept(
        &ps.client,
        env(&lost, create_for(P, 4_000, "USD", CaptureMode::Manual)),
    )
    .await;
    accept(&ps.client, env(&lost, start())).await;
    let deadline = std::time::Instant::now() + WAIT;
    while named(&ps, &lost, "probed").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no link found is recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let waiting = ps
        .journal
        .load(&lost)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(waiting.status, Status::Pending);
    assert_eq!(waiting.provider_ref, None);
    assert_eq!(named(&ps, &lost, "outcome_unknown").await.len(), 1);
    assert_eq!(
        ps.sandbox.totals(P).created,
        1,
        "the failed create made nothing"
    );
    for o in [&found, &lost] {
        let s = ps
            .journal
            .load(o)
            .await
            .expect("load")
            .state
            .expect("order");
        assert!(s.discrepancies.is_empty(), "{:#?}", s.discrepancies);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_capture_not_made_fails_and_is_made_once_when_asked_again() {
    let ps = ProviderStack::start().await;
    let (o, link) = started(&ps, "plexy-cap-5xx", 8_000, CaptureMode::Manual).await;
    ps.sandbox.approve(P, &link).expect("customer pays");
    ps.wait_status(&o, Status::Authorized).await;
    // Plexy fails the capture without making it: the transaction stays authorized, so the
    // capture is reported failed and the order takes a new capture.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 502 })
            .on_op(paystate_sandbox::Op::Capture)
            .on_order(&link),
    );
    let capture = |minor| {
        env(
            &o,
            Command::Capture {
                amount: money_in(minor, "USD"),
            },
        )
    };
    accept(&ps.client, capture(5_000)).await;
    let freed = ps
        .wait_until(&o, "free for another capture", |s| {
            s.status == Status::Authorized && s.capture_pending.is_none() && s.commits > 4
        })
        .await;
    assert_eq!(freed.captured.0, 0);
    assert_eq!(
        failed_with(&ps, &o, "not_captured").await,
        vec![vec!["capture_failed"]]
    );
    assert_eq!(named(&ps, &o, "outcome_unknown").await.len(), 1);
    assert_eq!(ps.sandbox.counters(P, &link).captured, 0);

    accept(&ps.client, capture(5_000)).await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 5_000);
    let c = ps.sandbox.counters(P, &link);
    assert_eq!((c.captured, c.injected_errors), (1, 1), "{c:?}");
    assert!(
        captured.discrepancies.is_empty(),
        "{:#?}",
        captured.discrepancies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plexy_unknown_outcomes_whose_first_question_fails_are_resolved_by_the_reconciler() {
    // Adapter calls time out after 1.5 s, so a status query concludes "not made" once an
    // order's log has been quiet for 3 s (`SETTLE_TIMEOUTS`); the reconciler first probes an
    // order 6 s after it starts waiting (15 min / 150).
    let t = Tuned::start(Tuning {
        reconciler: ReconcilerConfig::default().scaled(150),
        ..Default::default()
    })
    .await;
    let ps = &t.ps;
    let (o, link) = started(ps, "plexy-rec-cap", 6_000, CaptureMode::Manual).await;
    ps.sandbox.approve(P, &link).expect("customer pays");
    ps.wait_status(&o, Status::Authorized).await;
    // The capture and the create fail without acting, and so do the reads right after them
    // (three attempts each: the adapter's own question and the worker's status query). The
    // capture's answer is held back a second, so that its reads fail only after the read
    // that found the transaction to capture.
    let on_capture = || {
        FaultRule::once(FaultKind::ServerError { status: 503 })
            .on_op(paystate_sandbox::Op::Capture)
            .on_order(&link)
    };
    ps.sandbox.add_fault(P, on_capture());
    ps.sandbox.add_fault(
        P,
        FaultRule {
            kind: FaultKind::Delay { ms: 1_000 },
            ..on_capture()
        },
    );
    let lost = order("plexy-rec-link");
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 }).on_op(paystate_sandbox::Op::Create),
    );
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 })
            .on_op(paystate_sandbox::Op::Status)
            .on_order(lost.as_str())
            .times(6),
    );
    accept(&ps.client, env(&o, capture(Some(6_000)))).await;
    let started_at = Instant::now();
    while ps
        .sandbox
        .faults(P)
        .iter()
        .any(|f| f.op == Some(paystate_sandbox::Op::Capture))
    {
        assert!(started_at.elapsed() < WAIT, "the capture reached Plexy");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 })
            .on_op(paystate_sandbox::Op::Status)
            .on_order(&link)
            .times(6),
    );
    accept(
        &ps.client,
        env(&lost, create_for(P, 4_000, "USD", CaptureMode::Manual)),
    )
    .await;
    accept(&ps.client, env(&lost, start())).await;

    let freed = ps
        .wait_until(&o, "capture failed by a reconciler probe", |s| {
            s.status == Status::Authorized && s.capture_pending.is_none() && s.commits > 4
        })
        .await;
    assert_eq!(freed.captured.0, 0);
    // The lost create: a reconciler probe finds no link under the reference, which is
    // recorded and decides nothing (the order waits for a person at the final deadline).
    let deadline = Instant::now() + WAIT;
    while !named(ps, &lost, "probed")
        .await
        .iter()
        .any(|s| s.evidence_ref.starts_with("probe:"))
    {
        assert!(Instant::now() < deadline, "a probe recorded no link found");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting = ps
        .journal
        .load(&lost)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(waiting.status, Status::Pending);
    let steps = trail(&ps.journal, &o).await;
    let decided = steps
        .iter()
        .find(|s| s.events.iter().any(|e| e == "capture_failed"))
        .expect("resolved");
    assert!(
        decided
            .evidence
            .as_deref()
            .is_some_and(|e| e.starts_with("probe:")),
        "resolved by a reconciler probe: {steps:#?}"
    );
    assert_eq!(
        failed_with(ps, &o, "not_captured").await.len(),
        1,
        "{steps:#?}"
    );
    for order in [&o, &lost] {
        assert_eq!(named(ps, order, "outcome_unknown").await.len(), 1);
    }
    let c = ps.sandbox.counters(P, &link);
    assert_eq!((c.captured, c.injected_errors), (0, 7), "{c:?}");
    assert_eq!(
        ps.sandbox.totals(P).created,
        1,
        "only the first order's link"
    );
    assert!(
        ps.sandbox.faults(P).is_empty(),
        "every injected fault was met"
    );
}
