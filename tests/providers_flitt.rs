//! Flitt (Pay by Payme) end to end: commands → engine → adapter worker → sandbox → signed
//! callbacks → gateway → engine, over a real nats-server and real HTTP on loopback.
//!
//! Both checkout flows (URL and token), manual capture with a partial capture and two
//! refunds, automatic capture, decline, expiry and void; SHA-1 signatures on requests
//! (a wrong password is refused), responses and callbacks; and every injected fault: slow
//! answers, 5xx, answers dropped or withheld after Flitt acted, duplicate / reordered /
//! badly signed callbacks. Each fault test checks the final state, that Flitt saw each
//! effect once (the sandbox counts) and what the log recorded on the way.

mod support;

use paystate_adapters::error::AdapterError;
use paystate_adapters::Secret;
use paystate_events::{CaptureMode, Command, OrderId, PaymentInitiation, Provider, Status};
use paystate_sandbox::{FaultKind, FaultRule, Op};
use std::sync::atomic::Ordering;
use support::providers::*;
use support::tuned::*;
use support::*;

const P: Provider = Provider::Flitt;
const AMOUNT: u64 = 10_000;

fn start_with(params: &[(&str, &str)]) -> Command {
    let initiation = PaymentInitiation {
        return_url: Some("https://shop.example/back".into()),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Command::StartPayment { initiation }
}

/// Creates an order and starts its payment (checkout URL unless `params` say otherwise);
/// returns the state once the customer action is shown. Flitt's order id is ours.
async fn started(
    ps: &ProviderStack,
    o: &OrderId,
    mode: CaptureMode,
    params: &[(&str, &str)],
) -> paystate_events::OrderState {
    let created = accept(&ps.client, env(o, create_for(P, AMOUNT, "GEL", mode))).await;
    assert_eq!(created.status, Status::Created);
    accept(&ps.client, env(o, start_with(params))).await;
    let pending = ps
        .wait_until(o, "waiting for the customer", |s| {
            s.customer_action.is_some()
        })
        .await;
    assert_eq!(pending.status, Status::Pending);
    pending
}

/// A preauth order approved by the customer in the Payme app.
async fn authorized(ps: &ProviderStack, o: &OrderId) {
    started(ps, o, CaptureMode::Manual, &[]).await;
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    let s = ps.wait_status(o, Status::Authorized).await;
    assert_eq!(s.authorized.0, AMOUNT);
}

fn gel(minor: u64) -> Option<paystate_events::Money> {
    money_in(minor, "GEL")
}

/// The order's log once every callback was delivered: no discrepancy, each command once.
async fn settled_trail(ps: &ProviderStack, o: &OrderId) -> Vec<Step> {
    callbacks_idle(&ps.sandbox).await;
    support::quiet::wait_quiet_on(&ps.nats).await;
    assert_each_command_once(&ps.journal.read_order(o).await.expect("read"));
    let t = trail(&ps.journal, o).await;
    assert!(no_discrepancy(&t), "no discrepancy expected: {t:#?}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_lifecycle_checkout_url_preauth_partial_capture_two_refunds() {
    let ps = ProviderStack::start().await;
    let o = order("flitt");
    let pending = started(&ps, &o, CaptureMode::Manual, &[]).await;
    assert!(
        pending.provider_ref.is_some(),
        "payment_id recorded: {pending:?}"
    );
    let action = pending.customer_action.expect("action");
    assert!(
        action
            .url
            .as_deref()
            .is_some_and(|u| u.contains("/merchants/")),
        "checkout URL: {action:?}"
    );
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    accept(&ps.client, env(&o, Command::Capture { amount: gel(6_000) })).await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 6_000);
    accept(&ps.client, env(&o, Command::Refund { amount: gel(2_500) })).await;
    let refunded = ps
        .wait_until(&o, "partly refunded", |s| s.refunded.0 == 2_500)
        .await;
    assert_eq!(refunded.status, Status::Captured);
    callbacks_idle(&ps.sandbox).await;
    accept(&ps.client, env(&o, Command::Refund { amount: gel(3_500) })).await;
    let returned = ps.wait_status(&o, Status::Returned).await;
    assert_eq!((returned.captured.0, returned.refunded.0), (6_000, 6_000));
    settled_trail(&ps, &o).await;
    let after = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(
        after.refunded.0, 6_000,
        "callbacks after the refunds did not refund again"
    );
    assert_eq!(ps.sandbox.order(P, o.as_str())["order_status"], "reversed");
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.created, c.authorized, c.captured, c.refunded),
        (1, 1, 1, 2),
        "Flitt saw each effect once: {c:?}"
    );
    assert_eq!(
        c.callbacks_delivered, c.callbacks_enqueued,
        "every callback acknowledged with HTTP 200: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_token_flow_with_automatic_capture() {
    let ps = ProviderStack::start().await;
    let o = order("flitt-token");
    let pending = started(&ps, &o, CaptureMode::Auto, &[("flow", "token")]).await;
    let action = pending.customer_action.expect("action");
    assert_eq!(
        action.url, None,
        "the token flow has no page to redirect to"
    );
    assert_eq!(
        action.details.get("token").map(String::len),
        Some(40),
        "{action:?}"
    );
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, AMOUNT);
    assert!(
        captured.provider_ref.is_some(),
        "the token answer has no payment_id; the callback told it: {captured:?}"
    );
    let tr = settled_trail(&ps, &o).await;
    assert_eq!(
        signals_named(&tr, "authorized").len(),
        0,
        "no preauth, no authorization step: {tr:#?}"
    );
    let bad = order("flitt-bad-flow");
    accept(
        &ps.client,
        env(&bad, create_for(P, AMOUNT, "GEL", CaptureMode::Auto)),
    )
    .await;
    accept(&ps.client, env(&bad, start_with(&[("flow", "qr")]))).await;
    let failed = ps.wait_status(&bad, Status::Failed).await;
    assert_eq!(
        failed.failure.as_ref().map(|f| f.0.as_str()),
        Some("invalid_input"),
        "{failed:?}"
    );
    assert_eq!(
        ps.sandbox.counters(P, bad.as_str()).created,
        0,
        "nothing reached Flitt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_decline_expiry_and_void() {
    let ps = ProviderStack::start().await;
    let declined = order("flitt-decline");
    started(&ps, &declined, CaptureMode::Manual, &[]).await;
    ps.sandbox
        .decline(P, declined.as_str())
        .expect("the bank declines");
    let f = ps.wait_status(&declined, Status::Failed).await;
    assert!(f.failure.is_some(), "{f:?}");
    let expired = order("flitt-expire");
    started(&ps, &expired, CaptureMode::Auto, &[]).await;
    ps.sandbox
        .expire(P, expired.as_str())
        .expect("the customer walks away");
    ps.wait_status(&expired, Status::Cancelled).await;
    let voided = order("flitt-void");
    authorized(&ps, &voided).await;
    accept(&ps.client, env(&voided, Command::Cancel { reason: None })).await;
    ps.wait_status(&voided, Status::Cancelled).await;
    for o in [&declined, &expired, &voided] {
        settled_trail(&ps, o).await;
    }
    assert_eq!(
        ps.sandbox.order(P, voided.as_str())["order_status"],
        "reversed"
    );
    let c = ps.sandbox.counters(P, voided.as_str());
    assert_eq!(
        (c.authorized, c.cancelled, c.captured, c.refunded),
        (1, 1, 0, 0),
        "the hold was voided: {c:?}"
    );
    assert_eq!(ps.sandbox.counters(P, declined.as_str()).declined, 1);
    assert_eq!(ps.sandbox.counters(P, expired.as_str()).expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_requests_signed_with_a_wrong_password_are_refused() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-wrong-key");
    accept(
        &ps.client,
        env(&o, create_for(P, AMOUNT, "GEL", CaptureMode::Auto)),
    )
    .await;
    let state = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    let mut cfg = t.adapters_cfg.clone();
    for account in cfg.flitt.as_mut().expect("flitt").accounts.values_mut() {
        account.password = Secret::new("not-the-password");
    }
    let adapters = paystate_adapters::Adapters::new(cfg).expect("adapters");
    let refused = adapters
        .start_payment(&state, &PaymentInitiation::default())
        .await;
    assert!(
        matches!(refused, Err(AdapterError::Unauthorized { .. })),
        "error 1007 is a credentials problem: {refused:?}"
    );
    assert_eq!(
        ps.sandbox.counters(P, o.as_str()).created,
        0,
        "Flitt did not act"
    );
    let reported = t
        .adapters()
        .start_payment(&state, &PaymentInitiation::default())
        .await
        .expect("the right password");
    assert_eq!(ps.sandbox.counters(P, o.as_str()).created, 1);
    let status = t
        .adapters()
        .status(&state)
        .await
        .expect("a signed status answer verifies");
    assert_eq!(status.provider_ref, reported.provider_ref);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_badly_signed_callback_rejected_then_retry_applied() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-badsig");
    started(ps, &o, CaptureMode::Manual, &[]).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::BadSignatureCallback).on_order(o.as_str()),
    );
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    let tr = settled_trail(ps, &o).await;
    assert_eq!(signals_named(&tr, "authorized").len(), 1, "{tr:#?}");
    let attempts: Vec<_> = ps
        .sandbox
        .deliveries(P)
        .into_iter()
        .filter(|d| d.order == o.as_str())
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(
        attempts[0].bad_signature && attempts[0].status == Some(401) && !attempts[0].acknowledged,
        "{attempts:#?}"
    );
    assert!(
        attempts[1].acknowledged && attempts[1].status == Some(200) && attempts[1].attempt == 1,
        "Flitt retried after 2 s (scaled): {attempts:#?}"
    );
    let v = verdicts_of(&ps.nats, P).await;
    assert_eq!(
        v.iter().filter(|v| v["verdict"] == "rejected").count(),
        1,
        "{v:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_slow_answers_and_server_errors() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-5xx");
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::Delay {
            ms: TUNED_REQUEST_TIMEOUT_MS + 1_000,
        })
        .on_op(Op::Create),
    );
    authorized(ps, &o).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 502 })
            .on_op(Op::Capture)
            .times(2),
    );
    accept(&ps.client, env(&o, Command::Capture { amount: gel(7_000) })).await;
    ps.wait_status(&o, Status::Captured).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::Delay { ms: 400 }).on_op(Op::Reverse),
    );
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 500 }).on_op(Op::Reverse),
    );
    accept(&ps.client, env(&o, Command::Refund { amount: gel(1_000) })).await;
    let done = ps
        .wait_until(&o, "refunded", |s| s.refunded.0 == 1_000)
        .await;
    assert_eq!((done.status, done.captured.0), (Status::Captured, 7_000));
    settled_trail(ps, &o).await;
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.created, c.authorized, c.captured, c.refunded),
        (1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(c.injected_errors, 3, "capture twice, reverse once: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_dropped_and_withheld_answers_after_acting() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-drop");
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse).on_op(Op::Create),
    );
    authorized(ps, &o).await;
    callbacks_idle(&ps.sandbox).await;
    // Every answer to the capture is lost, and so is its callback: only a status query can
    // tell what happened.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse)
            .on_op(Op::Capture)
            .times(3),
    );
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropCallback).on_order(o.as_str()),
    );
    accept(&ps.client, env(&o, Command::Capture { amount: gel(6_000) })).await;
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 6_000);
    let late = TUNED_REQUEST_TIMEOUT_MS + 1_500;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::WithholdResponse { ms: late }).on_op(Op::Reverse),
    );
    accept(&ps.client, env(&o, Command::Refund { amount: gel(2_000) })).await;
    ps.wait_until(&o, "refunded", |s| s.refunded.0 == 2_000)
        .await;
    let tr = settled_trail(ps, &o).await;
    let unknown = signals_named(&tr, "outcome_unknown");
    assert_eq!(
        unknown.len(),
        1,
        "the capture whose every answer was lost is recorded as unknown: {tr:#?}"
    );
    let resolved = tr
        .iter()
        .skip_while(|s| s.signal.as_deref() != Some("outcome_unknown"))
        .nth(1)
        .expect("a step after");
    assert_eq!(
        (resolved.signal.as_deref(), resolved.evidence.as_deref()),
        (Some("captured"), Some(format!("call:{o}:status").as_str())),
        "resolved by a status query: {tr:#?}"
    );
    assert_eq!(
        resolved.events,
        ["payment_captured"],
        "the status query moved the order: {tr:#?}"
    );
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.created, c.authorized, c.captured, c.refunded),
        (1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(
        c.dropped_responses, 5,
        "create once, capture three times, reverse once: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_duplicate_callbacks_applied_once_and_acknowledged() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-dup");
    started(ps, &o, CaptureMode::Manual, &[]).await;
    let twice = FaultRule::once(FaultKind::DuplicateCallback)
        .on_order(o.as_str())
        .times(2);
    ps.sandbox.add_fault(P, twice);
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    accept(
        &ps.client,
        env(
            &o,
            Command::Capture {
                amount: gel(AMOUNT),
            },
        ),
    )
    .await;
    ps.wait_status(&o, Status::Captured).await;
    let tr = settled_trail(ps, &o).await;
    let callbacks = tr
        .iter()
        .filter(|s| s.command_id.starts_with("cb."))
        .count();
    assert_eq!(
        callbacks, 2,
        "the approval and the capture, each applied once: {tr:#?}"
    );
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.callbacks_duplicated, c.callbacks_attempts),
        (2, 4),
        "{c:?}"
    );
    assert_eq!(
        c.callbacks_delivered, c.callbacks_attempts,
        "every copy answered HTTP 200: {c:?}"
    );
    assert_eq!(t.callback_stats().duplicates.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_reversal_callbacks_out_of_order() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-reorder");
    started(ps, &o, CaptureMode::Auto, &[]).await;
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Captured).await;
    callbacks_idle(&ps.sandbox).await;
    // The first reversal's callback is held and sent after the second's.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ReorderCallbacks).on_order(o.as_str()),
    );
    accept(&ps.client, env(&o, Command::Refund { amount: gel(4_000) })).await;
    ps.wait_until(&o, "partly refunded", |s| s.refunded.0 == 4_000)
        .await;
    accept(&ps.client, env(&o, Command::Refund { amount: gel(6_000) })).await;
    let returned = ps.wait_status(&o, Status::Returned).await;
    assert_eq!(returned.refunded.0, AMOUNT);
    let tr = settled_trail(ps, &o).await;
    let callbacks: Vec<_> = tr
        .iter()
        .filter(|s| s.command_id.starts_with("cb."))
        .collect();
    // Callbacks are triggers confirmed by a status query: the approval's answer (captured)
    // and the full reversal's (reversed) are applied once each; the partial reversal's
    // callback, held and sent last, asks again and gets the same answer as the full
    // reversal's: a duplicate, acknowledged and not applied.
    assert_eq!(
        callbacks.len(),
        2,
        "the approval and the final state, each applied once: {tr:#?}"
    );
    assert_eq!(callbacks[0].signal.as_deref(), Some("captured"), "{tr:#?}");
    assert_eq!(callbacks[1].signal.as_deref(), Some("refunded"), "{tr:#?}");
    assert!(
        t.callback_stats().duplicates.load(Ordering::SeqCst) >= 1,
        "the late callback was recognised as asking for what was applied"
    );
    assert_eq!(ps.sandbox.counters(P, o.as_str()).callbacks_reordered, 1);
    let after = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(
        after.refunded.0, AMOUNT,
        "refunded once, not again by the late callback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_checkout_whose_every_answer_is_lost() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-lost-checkout");
    // The executor sends the (replay-safe) create three times; each time Flitt acts and the
    // answer is lost. The outcome is unknown; the status query shows the order waiting at
    // Flitt, whose checkout is then asked for again under the same order_id.
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse)
            .on_op(Op::Create)
            .times(3),
    );
    let pending = started(ps, &o, CaptureMode::Auto, &[]).await;
    assert!(
        pending.customer_action.and_then(|a| a.url).is_some(),
        "the customer gets the checkout"
    );
    let tr = settled_trail(ps, &o).await;
    assert_eq!(signals_named(&tr, "outcome_unknown").len(), 1, "{tr:#?}");
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Captured).await;
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.created, c.captured, c.dropped_responses),
        (1, 1, 3),
        "one Flitt order: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_refund_whose_every_answer_is_lost() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-lost-refund");
    started(ps, &o, CaptureMode::Auto, &[]).await;
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Captured).await;
    callbacks_idle(&ps.sandbox).await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse)
            .on_op(Op::Reverse)
            .times(3),
    );
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropCallback).on_order(o.as_str()),
    );
    accept(&ps.client, env(&o, Command::Refund { amount: gel(3_000) })).await;
    let s = ps
        .wait_until(&o, "refunded", |s| {
            s.refunded.0 == 3_000 && s.refunds_pending.is_empty()
        })
        .await;
    assert_eq!(s.status, Status::Captured);
    let tr = settled_trail(ps, &o).await;
    assert_eq!(signals_named(&tr, "outcome_unknown").len(), 1, "{tr:#?}");
    let refunds: Vec<_> = tr
        .iter()
        .filter(|s| s.events.iter().any(|e| e == "refund_completed"))
        .collect();
    assert_eq!(refunds.len(), 1, "{tr:#?}");
    assert_eq!(
        refunds[0].evidence.as_deref(),
        Some(format!("call:{o}:status").as_str()),
        "the status query told the refund: {tr:#?}"
    );
    let c = ps.sandbox.counters(P, o.as_str());
    assert_eq!(
        (c.refunded, c.dropped_responses),
        (1, 3),
        "one reversal at Flitt: {c:?}"
    );
}

/// A Flitt callback for `order_id` naming `payment_id`, signed with the stack's password.
fn signed_callback(ps: &ProviderStack, order_id: &str, payment_id: &str) -> serde_json::Value {
    let adapters = ps.adapters();
    let cfg = adapters.config().flitt.as_ref().expect("flitt configured");
    let (_, account) = cfg.accounts.iter().next().expect("an account");
    let mut params = serde_json::Map::new();
    for (k, v) in [
        ("order_id", serde_json::json!(order_id)),
        ("merchant_id", serde_json::json!(account.merchant_id)),
        ("order_status", serde_json::json!("approved")),
        ("response_status", serde_json::json!("success")),
        ("amount", serde_json::json!(AMOUNT.to_string())),
        ("currency", serde_json::json!("GEL")),
        ("payment_id", serde_json::json!(payment_id)),
        ("tran_type", serde_json::json!("purchase")),
        ("preauth", serde_json::json!("N")),
        ("capture_status", serde_json::json!("")),
    ] {
        params.insert(k.into(), v);
    }
    let sig = paystate_adapters::flitt::signature::sign(account.password.expose(), &params);
    params.insert("signature".into(), sig.into());
    serde_json::Value::Object(params)
}

async fn post_callback(ps: &ProviderStack, body: &serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/callbacks/flitt", ps.gateway_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

/// A callback is a trigger (protocol 1.0 does not bind keys): what it names only says which
/// order to ask Flitt about. A callback signed for order a that names b's payment and says
/// "approved" changes nothing: Flitt's status answer for a (still waiting) is what counts, and
/// it names a's own payment, so there is no contradiction to record either. (A signed report
/// whose reference contradicts the order's, as Flitt's status answer could, is still a
/// `provider_reference_mismatch` discrepancy in the engine:
/// `engine signals::a_signal_naming_another_provider_reference_never_moves_the_order`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_callback_with_a_contradicting_payment_id_changes_nothing() {
    let ps = ProviderStack::start().await;
    let (a, b) = (order("flitt-ref-a"), order("flitt-ref-b"));
    let a_pending = started(&ps, &a, CaptureMode::Auto, &[]).await;
    let b_pending = started(&ps, &b, CaptureMode::Auto, &[]).await;
    let (a_ref, b_ref) = (
        a_pending.provider_ref.expect("payment_id of a"),
        b_pending.provider_ref.expect("payment_id of b"),
    );
    assert_ne!(a_ref, b_ref);
    // Signed with Flitt's password (the test holds it): order a, but b's payment.
    let contradicting = signed_callback(&ps, a.as_str(), &b_ref);
    assert_eq!(post_callback(&ps, &contradicting).await, 200);
    // b's callback wrapped with an unsigned outer `order_id` naming a: only the inner
    // parameters count, so it asks Flitt about b (still waiting too).
    let wrapped = serde_json::json!({
        "order_id": a.as_str(),
        "response": signed_callback(&ps, b.as_str(), &b_ref),
    });
    assert_eq!(post_callback(&ps, &wrapped).await, 200);
    let confirmed = |order: &OrderId, v: &serde_json::Value| {
        v["order_id"].as_str() == Some(order.as_str())
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("webhook claimed [captured]"))
    };
    let mut verdicts = Vec::new();
    for _ in 0..100 {
        verdicts = ps.callback_verdicts(P).await;
        if verdicts.iter().any(|v| confirmed(&a, v)) && verdicts.iter().any(|v| confirmed(&b, v)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        verdicts.iter().any(|v| confirmed(&a, v)) && verdicts.iter().any(|v| confirmed(&b, v)),
        "each asked Flitt about its own order: {verdicts:#?}"
    );
    for (o, r) in [(&a, &a_ref), (&b, &b_ref)] {
        let now = ps
            .journal
            .load(o)
            .await
            .expect("load")
            .state
            .expect("order");
        assert_eq!((now.status, now.captured.0), (Status::Pending, 0), "{o}");
        assert!(
            !now.needs_review && now.discrepancies.is_empty(),
            "{o}: {:#?}",
            now.discrepancies
        );
        assert_eq!(now.provider_ref.as_ref(), Some(r));
    }
}

/// Standard base64 (the raw callback records' `body_b64`), for reading stored callbacks.
fn unbase64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Protocol 1.0 signs the non-empty values in key order, not the keys. A genuine callback
/// of a held preauth, altered so every value keeps its place in the signed message, still
/// verifies; it must not move money. Renaming `capture_status` and `preauth` away is refused
/// as malformed; moving `hold` and `Y` into the empty keys that sort right after them
/// (`card_bin`, `product_id`) keeps both keys, reads "captured", and is only a trigger: the
/// gateway asks Flitt, which says the order is held, so it stays authorized. The genuine
/// callback was applied once, and sent again it is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_callback_altered_by_key_renaming_does_not_capture() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let o = order("flitt-keyshift");
    authorized(ps, &o).await;
    callbacks_idle(&ps.sandbox).await;
    let genuine: serde_json::Map<String, serde_json::Value> = ps
        .raw_callbacks(P)
        .await
        .iter()
        .filter_map(|r| r["body_b64"].as_str())
        .filter_map(|b| serde_json::from_slice(&unbase64(b)).ok())
        .find(|m: &serde_json::Map<String, serde_json::Value>| {
            m.get("order_id").and_then(|v| v.as_str()) == Some(o.as_str())
        })
        .expect("the sandbox's approval callback, as stored");
    assert_eq!(genuine["capture_status"], "hold");
    assert_eq!(genuine["preauth"], "Y");
    let body = serde_json::Value::Object(genuine.clone());

    let renamed = body
        .to_string()
        .replace("\"capture_status\"", "\"capture_statut\"")
        .replace("\"preauth\"", "\"preauti\"");
    let renamed: serde_json::Value = serde_json::from_str(&renamed).expect("json");
    assert_eq!(post_callback(ps, &renamed).await, 400, "malformed");

    let mut moved = genuine.clone();
    for (from, to) in [("capture_status", "card_bin"), ("preauth", "product_id")] {
        assert_eq!(moved[to], "", "{to} is empty and sorts right after {from}");
        let v = moved.insert(from.into(), "".into()).expect(from);
        moved.insert(to.into(), v);
    }
    let moved = serde_json::Value::Object(moved);
    assert_eq!(post_callback(ps, &moved).await, 200, "verifies: a trigger");
    assert_eq!(post_callback(ps, &body).await, 200, "the genuine one again");

    let tr = settled_trail(ps, &o).await;
    let s = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!((s.status, s.captured.0), (Status::Authorized, 0), "{tr:#?}");
    assert!(signals_named(&tr, "captured").is_empty(), "{tr:#?}");
    let from_callbacks: Vec<_> = tr
        .iter()
        .filter(|s| s.command_id.starts_with("cb."))
        .collect();
    assert_eq!(from_callbacks.len(), 1, "applied once: {tr:#?}");
    assert_eq!(from_callbacks[0].signal.as_deref(), Some("authorized"));
    let v = ps.callback_verdicts(P).await;
    assert_eq!(
        v.iter().filter(|v| v["verdict"] == "duplicate").count(),
        2,
        "the altered trigger and the resend asked Flitt and got the applied answer: {v:#?}"
    );
    assert!(
        v.iter().any(|v| v["verdict"] == "rejected"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no preauth") || d.contains("no capture_status"))),
        "{v:#?}"
    );
}
