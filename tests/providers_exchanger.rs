//! The exchanger (payment-processor mode) end to end: order create → payment page → the
//! customer pays → payout → IPN (form-urlencoded, SHA-256 over the colon-joined fields) →
//! gateway → engine, over a real nats-server and real HTTP on loopback; every status of its
//! vocabulary, and the IPN signature vector with tampered variants.

mod support;

use paystate_adapters::exchanger::signature::ipn_signature;
use paystate_events::{
    CaptureMode, Command, CustomerActionKind, OrderId, Provider, ProviderSignal, SignalKind, Status,
};
use paystate_sandbox::Action;
use support::providers::*;
use support::*;

const P: Provider = Provider::Exchanger;
/// The IPN secret the wiring hands the exchanger (providers.md's vector uses it too).
const IPN_SECRET: &str = "ipn-secret-1";

/// Creates and starts an exchanger order of 100.00 UAH; returns it with the exchanger's
/// `orderId` once the payment page is shown.
async fn started(ps: &ProviderStack, name: &str) -> (OrderId, String) {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(P, 10_000, "UAH", CaptureMode::Auto)),
    )
    .await;
    accept(&ps.client, env(&o, start())).await;
    let pending = ps
        .wait_until(&o, "showing the payment page", |s| {
            s.customer_action.is_some()
        })
        .await;
    let reference = pending.provider_ref.expect("exchanger orderId recorded");
    let action = pending.customer_action.expect("action");
    assert_eq!(action.kind, CustomerActionKind::Redirect);
    let at_exchanger = ps.sandbox.order(P, &reference);
    assert_eq!(
        action.url.as_deref(),
        at_exchanger["paymentUrl"].as_str(),
        "the documented /{{lang}}/payment/{{uid}}/{{secret}} page"
    );
    assert_eq!(
        at_exchanger["inAmount"], "100",
        "the amount is sent exactly"
    );
    (o, reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_order_paid_and_paid_out_by_ipn() {
    let ps = ProviderStack::start().await;
    let (o, reference) = started(&ps, "exch").await;
    ps.sandbox
        .act(P, &reference, Action::Challenge)
        .expect("waitPayment");
    ps.sandbox.approve(P, &reference).expect("customer pays");
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(
        captured.captured.0, 10_000,
        "queued for payout: the funds arrived"
    );
    ps.sandbox
        .act(P, &reference, Action::PayoutDone)
        .expect("payout sent");
    ps.wait_status(&o, Status::Done).await;
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let c = ps.sandbox.counters(P, &reference);
    assert_eq!((c.credited, c.paid_out), (1, 1), "{c:?}");
    assert_eq!(
        c.callbacks_delivered, c.callbacks_enqueued,
        "every IPN acknowledged: {c:?}"
    );
    let signals = ps.signals(&o).await;
    let by_ipn: Vec<_> = signals
        .iter()
        .filter(|s| s.evidence_ref.starts_with("callbacks:"))
        .map(|s| s.kind.name())
        .collect();
    assert!(
        by_ipn.contains(&"captured") && by_ipn.contains(&"settled"),
        "{by_ipn:?}"
    );
    let verdicts = ps.callback_verdicts(P).await;
    assert!(
        verdicts.iter().all(|v| v["verdict"] != "rejected"),
        "{verdicts:#?}"
    );
    let done = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert!(done.discrepancies.is_empty(), "{:#?}", done.discrepancies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_every_status_reaches_its_canonical_state() {
    let ps = ProviderStack::start().await;
    let (declined, declined_ref) = started(&ps, "exch-errpay").await;
    let (deleted, deleted_ref) = started(&ps, "exch-deleted").await;
    let (payout_failed, payout_failed_ref) = started(&ps, "exch-errpayout").await;
    let (returned, returned_ref) = started(&ps, "exch-returned").await;
    let (held, held_ref) = started(&ps, "exch-hold").await;
    ps.sandbox.decline(P, &declined_ref).expect("errorPayment");
    ps.sandbox.expire(P, &deleted_ref).expect("deleted");
    for r in [&payout_failed_ref, &returned_ref, &held_ref] {
        ps.sandbox.approve(P, r).expect("customer pays");
    }
    ps.sandbox
        .act(P, &payout_failed_ref, Action::ErrorPayout)
        .expect("errorPayout");
    let set = |status: &str| Action::SetStatus {
        status: status.into(),
    };
    ps.sandbox.act(P, &returned_ref, set("hold")).expect("hold");
    ps.sandbox
        .act(P, &returned_ref, set("returned"))
        .expect("returned");
    ps.sandbox.act(P, &held_ref, set("hold")).expect("hold");

    let failed = ps.wait_status(&declined, Status::Failed).await;
    assert_eq!(failed.failure.map(|f| f.0).as_deref(), Some("errorPayment"));
    ps.wait_status(&deleted, Status::Cancelled).await;
    let review = ps
        .wait_until(&payout_failed, "flagged for review", |s| s.needs_review)
        .await;
    assert_eq!(
        review.status,
        Status::Captured,
        "errorPayout is not a plain failure"
    );
    assert_eq!(review.captured.0, 10_000, "the funds did arrive");
    assert!(
        review
            .discrepancies
            .iter()
            .any(|d| d.code == "needs_review" && d.detail.contains("errorPayout")),
        "{:#?}",
        review.discrepancies
    );
    let back = ps.wait_status(&returned, Status::Returned).await;
    assert_eq!((back.captured.0, back.refunded.0), (10_000, 10_000));
    let frozen = ps.wait_status(&held, Status::Captured).await;
    assert!(!frozen.needs_review, "hold is a pause, not a problem");
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let c = ps.sandbox.totals(P);
    assert_eq!(c.callbacks_delivered, c.callbacks_enqueued, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_ipn_signature_vector_and_tampered_variants() {
    // providers.md: sha256(orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp:ipnSecret)
    let fields = [
        "65a1f0c2e4b0a1b2c3d4e5f6",
        "done",
        "100",
        "0.00153",
        "CARDUAH",
        "BTC",
        "1717171717",
    ];
    let [id, status, inn, out, from, to, ts] = fields;
    let vector = "73ace053c47b49541f8597ef95c5fdad58e5aa0669be887b8c9dee10dd89fe2c";
    assert_eq!(
        ipn_signature(id, status, inn, out, from, to, ts, IPN_SECRET),
        vector
    );
    // Values are signed as received: "0.001530" is not "0.00153".
    assert_ne!(
        ipn_signature(id, status, inn, "0.001530", from, to, ts, IPN_SECRET),
        vector
    );

    let ps = ProviderStack::start().await;
    let o = order("exch-vec");
    accept(
        &ps.client,
        env(&o, create_for(P, 10_000, "UAH", CaptureMode::Auto)),
    )
    .await;
    let post = |body: String| {
        let url = format!("{}/callbacks/exchanger?order_id={o}", ps.gateway_url());
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("sent");
            resp.status().as_u16()
        }
    };
    let form = |status: &str, in_amount: &str, sig_field: &str, sig: &str| {
        format!(
            "orderUID=1409&orderId={id}&newStatus={status}&inAmount={in_amount}&outAmount={out}\
             &xml_from={from}&xml_to={to}&timestamp={ts}&{sig_field}={sig}"
        )
    };
    // The exchanger signs its orderId, not our `?order_id=`: until the order has recorded
    // that orderId as its reference, the unsigned marker alone moves nothing. The IPN is
    // sent once, so it is answered once held; paystate re-drives it (issue 12).
    assert_eq!(post(form(status, inn, "sign", vector)).await, 200);
    // The start recorded the exchanger's orderId (as the adapter worker does).
    accept(
        &ps.client,
        env(
            &o,
            Command::ProviderSignal {
                signal: ProviderSignal {
                    provider: P,
                    provider_ref: Some(id.to_string()),
                    evidence_ref: "call:test-create".into(),
                    observed_at: chrono::Utc::now(),
                    kind: SignalKind::Accepted { action: None },
                },
            },
        ),
    )
    .await;
    // Tampered: another status, another amount, a wrong secret, no signature at all.
    let wrong_secret = ipn_signature(id, status, inn, out, from, to, ts, "ipn-secret-2");
    assert_eq!(post(form("returned", inn, "sign", vector)).await, 401);
    assert_eq!(post(form(status, "1000", "signature", vector)).await, 401);
    assert_eq!(post(form(status, inn, "sign", &wrong_secret)).await, 401);
    assert_eq!(post(form(status, inn, "nosig", "x")).await, 401);
    // The vector itself, hex in upper case and under another field name, is accepted.
    assert_eq!(
        post(form(status, inn, "hash", &vector.to_uppercase())).await,
        200
    );
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(
        done.captured.0, 10_000,
        "CARDUAH is no ISO code: the order amount is implied"
    );
    // The held IPN's re-drive finds the same report in the log: a duplicate.
    let started = std::time::Instant::now();
    let verdicts = loop {
        let verdicts = ps.callback_verdicts(P).await;
        let redriven = verdicts.iter().any(|r| r["verdict"] == "duplicate");
        if redriven || started.elapsed() > WAIT {
            break verdicts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let count = |v: &str| verdicts.iter().filter(|r| r["verdict"] == v).count();
    assert_eq!(
        (
            count("rejected"),
            count("applied"),
            count("held"),
            count("duplicate")
        ),
        (4, 1, 1, 1),
        "{verdicts:#?}"
    );
    // Not applicable when it came (and again if a re-drive came before the reference).
    assert!(count("not_applied") >= 1, "{verdicts:#?}");
    let signals = ps.signals(&o).await;
    let from_ipns = signals
        .iter()
        .filter(|s| s.evidence_ref.starts_with("callbacks:"))
        .count();
    assert_eq!(from_ipns, 1, "applied once: {signals:#?}");
}

/// The IPN the exchanger would send for `reference`, signed with our IPN secret.
fn ipn_for(reference: &str, status: &str) -> String {
    let (inn, out, from, to) = ("100", "0.5", "CARDUAH", "BTC");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sign = ipn_signature(reference, status, inn, out, from, to, &ts, IPN_SECRET);
    format!(
        "orderUID=uid-{reference}&orderId={reference}&newStatus={status}&inAmount={inn}\
         &outAmount={out}&xml_from={from}&xml_to={to}&timestamp={ts}&sign={sign}"
    )
}

/// Posts an IPN to `/callbacks/exchanger` with `query`; the HTTP status.
async fn post_ipn(ps: &ProviderStack, query: &str, body: String) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/callbacks/exchanger{query}", ps.gateway_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

/// Waits until the engine has handled everything sent to `o` before: a marker signal (on the
/// signal plane, like callbacks) and its outcome. Returns the state after the marker.
async fn quiet(ps: &ProviderStack, o: &OrderId) -> paystate_events::StateView {
    let marker = Command::ProviderSignal {
        signal: ProviderSignal {
            provider: P,
            provider_ref: None,
            evidence_ref: "test:marker".into(),
            observed_at: chrono::Utc::now(),
            kind: SignalKind::Probed {
                answer: "marker".into(),
            },
        },
    };
    accept(&ps.client, env(o, marker)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_signed_ipn_re_addressed_to_another_order_changes_nothing() {
    let ps = ProviderStack::start().await;
    let (victim, _) = started(&ps, "exch-victim").await;
    let (payer, payer_ref) = started(&ps, "exch-payer").await;
    let before = ps
        .journal
        .load(&victim)
        .await
        .expect("load")
        .state
        .expect("order");
    // The payer's correctly signed "funds received" IPN, re-addressed to the victim by the
    // unsigned `?order_id=` (issue 11, problem 1).
    let ipn = ipn_for(&payer_ref, "inProgressPayout");
    assert_eq!(
        post_ipn(&ps, &format!("?order_id={victim}"), ipn.clone()).await,
        409
    );
    let verdicts = ps.callback_verdicts(P).await;
    let refused = verdicts.last().expect("a verdict");
    assert_eq!(refused["verdict"], "rejected", "{verdicts:#?}");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(victim.as_str()) && detail.contains(payer.as_str()),
        "the reason names both orders: {detail}"
    );
    let raw = ps.raw_callbacks(P).await;
    assert!(
        raw.iter()
            .any(|r| r["query"] == format!("order_id={victim}")),
        "kept as evidence: {raw:#?}"
    );
    let after = quiet(&ps, &victim).await;
    assert_eq!(after.status, Status::Pending, "the victim did not move");
    assert_eq!(after.captured.0, 0);
    assert!(after.discrepancies.is_empty(), "{:#?}", after.discrepancies);
    let from_callbacks: Vec<_> = ps
        .signals(&victim)
        .await
        .into_iter()
        .filter(|s| s.evidence_ref.starts_with("callbacks:"))
        .collect();
    assert!(
        from_callbacks.is_empty(),
        "no callback reached the victim (only the marker and the reconciler's probes): {from_callbacks:#?}"
    );
    assert_eq!(after.provider_ref, before.provider_ref);
    // Addressed to its own order (or by the signed orderId alone) it applies there, once.
    assert_eq!(
        post_ipn(&ps, &format!("?order_id={payer}"), ipn.clone()).await,
        200
    );
    let captured = ps.wait_status(&payer, Status::Captured).await;
    assert_eq!(captured.captured.0, 10_000);
    assert_eq!(post_ipn(&ps, "", ipn).await, 200);
    let verdicts = ps.callback_verdicts(P).await;
    let count = |v: &str| verdicts.iter().filter(|r| r["verdict"] == v).count();
    assert_eq!(
        (count("rejected"), count("applied"), count("duplicate")),
        (1, 1, 1),
        "{verdicts:#?}"
    );
    let victim_now = quiet(&ps, &victim).await;
    assert_eq!(victim_now.status, Status::Pending);
    assert!(!victim_now.needs_review);
}
