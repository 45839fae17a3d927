//! Paykassma (wallet transfer) end to end: create → start (the wallet shown as the customer
//! action) → the customer transfers (sandbox `transfer_made` gives `key1`) → the merchant
//! uploads the screenshot (`POST /attachments`) and sends `confirm_transfer` → activation
//! (multipart at the sandbox) → postback (resent until exactly `{"status":"ok"}`) → done.
//! Also: rejection, refused cancellation, expiry, the postback signature vector, and a
//! postback resent five times across a gateway crash, applied once.

mod support;

use paystate_adapters::paykassma::transformers::custom_transaction_id;
use paystate_events::command::Attachment;
use paystate_events::{
    CaptureMode, Command, CustomerActionKind, Event, OrderId, PaymentInitiation, Provider,
    RejectionCode, SignalKind, Status,
};
use paystate_sandbox::{Action, FaultKind, FaultRule};
use support::providers::*;
use support::*;

const P: Provider = Provider::Paykassma;
/// A tiny PNG (signature and IHDR only): what a customer's screenshot upload looks like.
const SCREENSHOT: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00";
/// What Paykassma must get back, every time.
const OK: &str = r#"{"status":"ok"}"#;

/// Creates and starts a Paykassma order of 300.00 BTN for payer `order id`; returns it once
/// the wallet is shown.
async fn started(ps: &ProviderStack, name: &str) -> OrderId {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(P, 30_000, "BTN", CaptureMode::Auto)),
    )
    .await;
    let initiation = PaymentInitiation {
        customer_id: Some(o.to_string()),
        ..Default::default()
    };
    accept(&ps.client, env(&o, Command::StartPayment { initiation })).await;
    let pending = ps
        .wait_until(&o, "showing the wallet", |s| s.customer_action.is_some())
        .await;
    let action = pending.customer_action.expect("action");
    assert_eq!(action.kind, CustomerActionKind::WalletTransfer);
    let request = ps.sandbox.order(P, o.as_str());
    assert_eq!(
        action.details.get("wallet_number").map(String::as_str),
        request["wallet_number"].as_str(),
        "the customer sees the wallet to pay into"
    );
    assert_eq!(
        action.details.get("account_name").map(String::as_str),
        request["account_name"].as_str()
    );
    o
}

/// The customer transfers 300 and gives us their 12-digit transaction number.
fn transfer(ps: &ProviderStack, o: &OrderId) -> String {
    let done = ps
        .sandbox
        .act(P, o.as_str(), Action::TransferMade { amount: 300 })
        .expect("transfer made");
    done.reference.expect("key1")
}

/// Sends `confirm_transfer`; returns the activation's `custom_transaction_id`.
async fn confirm(ps: &ProviderStack, o: &OrderId, key1: &str, attachment: Attachment) -> String {
    let cmd = env(
        o,
        Command::ConfirmTransfer {
            reference: key1.to_string(),
            attachment,
        },
    );
    let id = custom_transaction_id(o, cmd.command_id.as_str());
    accept(&ps.client, cmd).await;
    id
}

fn events_named(signals: &[SignalCommit], name: &str) -> usize {
    signals
        .iter()
        .flat_map(|s| s.events.iter())
        .filter(|e| e.name() == name)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_transfer_confirmed_with_a_screenshot_and_credited() {
    let ps = ProviderStack::start().await;
    let o = started(&ps, "pk").await;
    let key1 = transfer(&ps, &o);
    let screenshot = ps
        .upload("receipt.png", "image/png", SCREENSHOT.to_vec())
        .await;
    assert_eq!(
        (screenshot.size, screenshot.content_type.as_str()),
        (SCREENSHOT.len() as u64, "image/png")
    );
    let activation = confirm(&ps, &o, &key1, screenshot).await;
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(done.captured.0, 30_000, "credited 300 BTN");
    let at_provider = ps.sandbox.order(P, &activation);
    assert_eq!(
        (
            at_provider["key1"].as_str(),
            at_provider["amount"].as_u64(),
            at_provider["status"].as_str()
        ),
        (Some(key1.as_str()), Some(300), Some("credited")),
        "activation: key1, whole-unit amount, screenshot accepted"
    );
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    let c = ps.sandbox.counters(P, &activation);
    assert_eq!(
        (
            c.activated,
            c.credited,
            c.callbacks_delivered,
            c.callbacks_resent
        ),
        (1, 1, 1, 0),
        "{c:?}"
    );
    let answers: Vec<_> = ps
        .sandbox
        .deliveries(P)
        .into_iter()
        .filter_map(|d| d.answer)
        .collect();
    assert_eq!(answers, [OK]);
    let signals = ps.signals(&o).await;
    assert_eq!(
        (
            events_named(&signals, "payment_captured"),
            events_named(&signals, "order_settled")
        ),
        (1, 1)
    );
    let commits = ps.journal.read_order(&o).await.expect("read");
    assert!(
        commits
            .iter()
            .flat_map(|c| c.commit.events.iter())
            .any(|e| matches!(e,
            Event::TransferConfirmationSubmitted { reference, attachment, .. }
                if reference == &key1 && attachment.file_name == "receipt.png")),
        "the confirmation is in the log, naming the uploaded file"
    );
}

/// Uploads through the gateway as `multipart/form-data`; returns the HTTP status and body.
async fn upload_multipart(ps: &ProviderStack, bytes: &[u8]) -> (u16, String) {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name("shot.png")
        .mime_str("image/png")
        .expect("mime");
    let resp = reqwest::Client::new()
        .post(format!("{}/attachments", ps.private_url()))
        .bearer_auth(&test_keys().write)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// Uploads a raw body through the gateway; returns the HTTP status.
async fn upload_raw(ps: &ProviderStack, body: Vec<u8>) -> u16 {
    let url = format!("{}/attachments?name=x.png", ps.private_url());
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(&test_keys().write)
        .body(body)
        .send()
        .await
        .expect("sent");
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_rejected_activation_is_recorded_and_the_order_keeps_waiting() {
    let ps = ProviderStack::start().await;
    let rejected = started(&ps, "pk-rej").await;
    let (status, body) = upload_multipart(&ps, SCREENSHOT).await;
    assert_eq!(status, 201, "multipart upload: {body}");
    let shot: Attachment = serde_json::from_str(&body).expect("attachment");
    assert_eq!(shot.file_name, "shot.png");
    assert_eq!(
        upload_raw(&ps, Vec::new()).await,
        400,
        "an empty file is refused"
    );
    let too_big = vec![0u8; paystate_service::attachments::ATTACHMENT_BYTES_MAX + 1];
    assert_eq!(
        upload_raw(&ps, too_big).await,
        413,
        "uploads are size-capped"
    );
    let confirm_short = Command::ConfirmTransfer {
        reference: "12345".into(),
        attachment: shot.clone(),
    };
    let outcome = ps
        .client
        .send(&env(&rejected, confirm_short), WAIT)
        .await
        .expect("outcome");
    assert_eq!(
        outcome.rejection_code(),
        Some(RejectionCode::InvalidField),
        "key1 must be 12 digits: {outcome:?}"
    );
    // A number no transfer carries: Paykassma verifies, then rejects (a `fail` postback).
    let activation = confirm(&ps, &rejected, "999988887777", shot).await;
    let verifying = wait_sandbox(&ps, &activation, "verifying").await;
    assert_eq!(verifying["key1"], "999988887777");
    ps.sandbox
        .decline(P, &activation)
        .expect("back office rejects");
    // Paykassma signs no outcome (only `additional_data`): the top-level `"status": "fail"`
    // is recorded, and the order keeps waiting (for a credited transfer, or its expiry).
    let held = wait_held(&ps, &rejected, 1).await;
    assert!(
        held[0].contains("status:fail"),
        "the unsigned failure is kept: {held:?}"
    );
    let state = ps
        .journal
        .load(&rejected)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(state.status, Status::Pending);
    assert!(state.failure.is_none() && !state.needs_review);
}

/// Waits (with a deadline) until `n` postbacks of `o` were recorded as held back by an
/// unsigned field; their recorded texts.
async fn wait_held(ps: &ProviderStack, o: &OrderId, n: usize) -> Vec<String> {
    let held = |signals: &[SignalCommit]| -> Vec<String> {
        signals
            .iter()
            .filter_map(|s| match &s.kind {
                SignalKind::Unrecognised { raw_status } if raw_status.starts_with("unsigned ") => {
                    Some(raw_status.clone())
                }
                _ => None,
            })
            .collect()
    };
    for _ in 0..800 {
        let found = held(&ps.signals(o).await);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("never saw {n} held postbacks: {:#?}", ps.signals(o).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_cancel_is_refused_and_expiry_cancels() {
    let ps = ProviderStack::start().await;
    // Paykassma has no cancel: the request is recorded and refused, the order keeps waiting.
    let kept = started(&ps, "pk-cancel").await;
    accept(&ps.client, env(&kept, Command::Cancel { reason: None })).await;
    let mut trail = Vec::new();
    for _ in 0..400 {
        trail = ps.signals(&kept).await;
        if trail.iter().any(|s| s.event_names() == ["cancel_failed"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        trail.iter().any(|s| s.event_names() == ["cancel_failed"]),
        "{trail:#?}"
    );
    let refused = ps
        .journal
        .load(&kept)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(
        (refused.status, refused.cancel_pending),
        (Status::Pending, false)
    );

    // Expiry cancels an unpaid wallet transfer (nothing to undo at Paykassma): the scheduled
    // expire arrives by itself (an explicit one could race it and find the order cancelled).
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expiring = order("pk-exp");
    let mut create = create_for(P, 30_000, "BTN", CaptureMode::Auto);
    if let Command::CreateOrder { expires_at, .. } = &mut create {
        *expires_at = Some(soon);
    }
    accept(&ps.client, env(&expiring, create)).await;
    ps.wait_status(&expiring, Status::Cancelled).await;
}

async fn wait_sandbox(ps: &ProviderStack, activation: &str, status: &str) -> serde_json::Value {
    for _ in 0..400 {
        let v = ps.sandbox.order(P, activation);
        if v["status"] == status {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "activation {activation} never became {status}: {}",
        ps.sandbox.order(P, activation)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_postback_resent_five_times_across_a_gateway_crash_is_applied_once() {
    let ps = ProviderStack::start().await;
    let mut gateway = CrashableGateway::start(&ps).await;
    ps.sandbox
        .set_callback_url(P, Some(gateway.callback_url(P)));
    // The gateway answers, but four of its answers never reach Paykassma: it resends.
    ps.sandbox
        .add_fault(P, FaultRule::once(FaultKind::LoseCallbackAck).times(4));
    let o = started(&ps, "pk-crash").await;
    let key1 = transfer(&ps, &o);
    let shot = ps
        .upload("receipt.png", "image/png", SCREENSHOT.to_vec())
        .await;
    let activation = confirm(&ps, &o, &key1, shot).await;
    // Attempts 0 and 1 are answered (answers lost); then the gateway crashes, so attempt 2
    // finds nobody; it restarts with fresh process state for attempts 3, 4 (lost) and 5.
    wait_attempts(&ps, 2).await;
    gateway.crash();
    wait_attempts(&ps, 3).await;
    gateway.restart().await;
    assert!(
        ps.sandbox.wait_callbacks_idle(WAIT).await,
        "Paykassma stopped resending"
    );
    let deliveries = ps.sandbox.deliveries(P);
    assert_eq!(deliveries.len(), 6, "{deliveries:#?}");
    let c = ps.sandbox.counters(P, &activation);
    assert_eq!(
        (
            c.callbacks_attempts,
            c.callbacks_resent,
            c.callbacks_delivered
        ),
        (6, 5, 1),
        "{c:?}"
    );
    let answered: Vec<_> = deliveries.iter().filter(|d| d.status.is_some()).collect();
    assert_eq!(
        answered.len(),
        5,
        "one attempt met the crash: {deliveries:#?}"
    );
    for d in &answered {
        assert_eq!(
            (d.status, d.answer.as_deref()),
            (Some(200), Some(OK)),
            "attempt {}",
            d.attempt
        );
    }
    assert!(
        deliveries[2].error.is_some(),
        "attempt 2 found the gateway down"
    );
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(done.captured.0, 30_000);
    let signals = ps.signals(&o).await;
    let settled: Vec<_> = signals
        .iter()
        .filter(|s| s.kind.name() == "settled")
        .collect();
    assert_eq!(settled.len(), 1, "one postback, applied once: {signals:#?}");
    assert_eq!(
        (
            events_named(&signals, "payment_captured"),
            events_named(&signals, "order_settled")
        ),
        (1, 1)
    );
    let verdicts = ps.callback_verdicts(P).await;
    let count = |v: &str| verdicts.iter().filter(|r| r["verdict"] == v).count();
    assert_eq!(
        (count("applied"), count("duplicate")),
        (1, 4),
        "{verdicts:#?}"
    );
}

/// Waits until the sandbox made `n` postback attempts.
async fn wait_attempts(ps: &ProviderStack, n: usize) {
    for _ in 0..2_000 {
        if ps.sandbox.deliveries(P).len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("never saw {n} attempts: {:#?}", ps.sandbox.deliveries(P));
}

/// The postback of the seed document, signed as providers.md computes it.
const SEED_POSTBACK: &str = r#"{
"signature": "caa5b706a406b7d08ff6712ac9972342f7950a85",
"wallet_type": "bnb_ml",
"amount": 300,
"currency_code": "BTN",
"label": "labeluser",
"direction": "ingoing",
"created_datetime": "2026-01-27 09:32:02",
"access_key": "uowkn0b3LfBxpcWYHi4_",
"additional_data": [
{
"activated_datetime": "2026-01-27 09:32:01",
"exchanger_identifier": null,
"comment": "",
"amount": "300",
"currency_code": "BTN",
"wallet_type": "bnb_ml",
"stockpiling_id": 12057,
"transaction_id": "293397556789",
"transaction_type": 0,
"plugin_custom_order_id": "ORDER.act.c1",
"withdrawal_id": null,
"withdrawal_status": null,
"account_number": "",
"account_name": "",
"account_email": "",
"bank_details": {
"bank_code": "",
"branch_code": ""
}
}
]
}"#;

const ACCESS_KEY: &str = "uowkn0b3LfBxpcWYHi4_";
const PRIVATE_KEY: &str = "PRIVATE_test_key_1";

/// `body` with its signature replaced by the right one for its `additional_data`.
fn resigned(body: &str) -> String {
    use paystate_adapters::paykassma::signature::{postback_signature, signed_parts};
    let parts = signed_parts(body).expect("parts");
    let sig = postback_signature(ACCESS_KEY, PRIVATE_KEY, &parts.additional_data_compact);
    body.replace("caa5b706a406b7d08ff6712ac9972342f7950a85", &sig)
}

/// Posts a postback to the gateway: (HTTP status, answer body).
async fn post_postback(ps: &ProviderStack, body: String) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/callbacks/paykassma", ps.gateway_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[test]
fn paykassma_postback_signature_vector() {
    use paystate_adapters::paykassma::signature::{
        postback_signature, signed_parts, verify_postback_body,
    };
    let seed = SEED_POSTBACK.replace("ORDER.act.c1", "custom12345");
    let parts = signed_parts(&seed).expect("parts");
    let md5: String = paystate_adapters::crypto::md5(parts.additional_data_compact.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        md5, "3329502fd3d15b5624e2ba80c76cfc18",
        "providers.md: md5 of the compact additional_data"
    );
    let sig = postback_signature(ACCESS_KEY, PRIVATE_KEY, &parts.additional_data_compact);
    assert_eq!(sig, "caa5b706a406b7d08ff6712ac9972342f7950a85");
    assert!(verify_postback_body(&seed, ACCESS_KEY, PRIVATE_KEY).is_ok());
    assert!(verify_postback_body(&seed, ACCESS_KEY, "PRIVATE_other").is_err());
    let reordered = seed.replace("\"comment\": \"\",\n", "").replace(
        "\"activated_datetime\"",
        "\"comment\": \"\",\n\"activated_datetime\"",
    );
    assert_ne!(reordered, seed);
    assert!(
        verify_postback_body(&reordered, ACCESS_KEY, PRIVATE_KEY).is_err(),
        "key order as received is signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_tampered_postbacks_are_refused_the_genuine_applied_once() {
    let ps = ProviderStack::start().await;
    let o = order("pk-vec");
    accept(
        &ps.client,
        env(&o, create_for(P, 30_000, "BTN", CaptureMode::Auto)),
    )
    .await;
    let genuine = resigned(&SEED_POSTBACK.replace("ORDER", o.as_str()));
    let tampered = [
        genuine.replace("\"amount\": \"300\"", "\"amount\": \"3000\""),
        genuine.replace(
            "\"transaction_id\": \"293397556789\"",
            "\"transaction_id\": \"293397556780\"",
        ),
        genuine.replace(ACCESS_KEY, "someone-elses-key"),
        genuine.replace("\"signature\": \"", "\"signature\": \"0"),
    ];
    for t in tampered {
        assert_eq!(post_postback(&ps, t).await.0, 401);
    }
    for _ in 0..3 {
        let answer = post_postback(&ps, genuine.clone()).await;
        assert_eq!(answer, (200, OK.to_string()), "resends get the same answer");
    }
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(done.captured.0, 30_000);
    let verdicts = ps.callback_verdicts(P).await;
    let count = |v: &str| verdicts.iter().filter(|r| r["verdict"] == v).count();
    assert_eq!(
        (count("rejected"), count("applied"), count("duplicate")),
        (4, 1, 2),
        "{verdicts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_flipped_unsigned_fields_change_nothing_the_genuine_applies_once() {
    let ps = ProviderStack::start().await;
    let o = order("pk-flip");
    accept(
        &ps.client,
        env(&o, create_for(P, 30_000, "BTN", CaptureMode::Auto)),
    )
    .await;
    let genuine = resigned(&SEED_POSTBACK.replace("ORDER", o.as_str()));
    // Each still verifies (`additional_data` is untouched): only unsigned fields differ.
    let failed = genuine.replacen("\"direction\"", "\"status\": \"fail\",\n\"direction\"", 1);
    let outgoing = genuine.replace("\"direction\": \"ingoing\"", "\"direction\": \"outgoing\"");
    for flipped in [&failed, &outgoing] {
        assert_ne!(flipped, &genuine);
        assert_eq!(
            post_postback(&ps, flipped.clone()).await,
            (200, OK.to_string()),
            "answered like any postback (Paykassma would resend otherwise)"
        );
    }
    wait_held(&ps, &o, 2).await;
    let held = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!(held.status, Status::Created, "nothing moved");
    assert!(held.failure.is_none() && !held.needs_review && held.captured.0 == 0);
    // The flipped copies did not use up the genuine postback's dedup key.
    assert_eq!(post_postback(&ps, genuine.clone()).await.0, 200);
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(done.captured.0, 30_000, "the signed amount");
    // Unsigned top-level amount and currency decide nothing either: same report, once.
    let junk = genuine
        .replace("\"amount\": 300,", "\"amount\": 1,")
        .replacen(
            "\"currency_code\": \"BTN\"",
            "\"currency_code\": \"USD\"",
            1,
        );
    assert_ne!(junk, genuine);
    assert_eq!(post_postback(&ps, junk).await.0, 200);
    assert_eq!(post_postback(&ps, failed).await.0, 200);
    let verdicts = ps.callback_verdicts(P).await;
    let count = |v: &str| verdicts.iter().filter(|r| r["verdict"] == v).count();
    assert_eq!(
        (count("rejected"), count("applied"), count("duplicate")),
        (0, 3, 2),
        "{verdicts:#?}"
    );
    let captures = events_named(&ps.signals(&o).await, "payment_captured");
    assert_eq!(captures, 1, "applied once");
    let end = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert_eq!((end.status, end.captured.0), (Status::Done, 30_000));
    assert!(end.discrepancies.is_empty(), "{:#?}", end.discrepancies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_activation_faults_never_activate_twice() {
    use paystate_sandbox::Op;
    let ps = ProviderStack::start().await;
    // A 503 before Paykassma acts: the activation (unique custom_transaction_id, replay-safe)
    // is simply sent again.
    let retried = started(&ps, "pk-503").await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::ServerError { status: 503 }).on_op(Op::Activate),
    );
    let key1 = transfer(&ps, &retried);
    let shot = ps.upload("a.png", "image/png", SCREENSHOT.to_vec()).await;
    let first = confirm(&ps, &retried, &key1, shot.clone()).await;
    ps.wait_status(&retried, Status::Done).await;
    // Paykassma acts, the answer is lost: resent with the same custom_transaction_id, which
    // Paykassma answers without acting again; the postback settles the order.
    let lost = started(&ps, "pk-drop").await;
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropResponse).on_op(Op::Activate),
    );
    let key1 = transfer(&ps, &lost);
    let second = confirm(&ps, &lost, &key1, shot).await;
    ps.wait_status(&lost, Status::Done).await;
    assert!(ps.sandbox.wait_callbacks_idle(WAIT).await);
    for (id, what) in [(&first, "503"), (&second, "dropped answer")] {
        let c = ps.sandbox.counters(P, id);
        assert_eq!(
            (c.activated, c.credited, c.callbacks_delivered),
            (1, 1, 1),
            "{what}: {c:?}"
        );
    }
    assert_eq!(
        ps.sandbox.counters(P, &first).injected_errors,
        1,
        "the 503 happened"
    );
    assert_eq!(
        ps.sandbox.counters(P, &second).dropped_responses,
        1,
        "the answer was lost"
    );
    for o in [&retried, &lost] {
        let signals = ps.signals(o).await;
        assert_eq!(
            (
                events_named(&signals, "payment_captured"),
                events_named(&signals, "order_settled")
            ),
            (1, 1),
            "{o}"
        );
    }
}

/// `paystate attach` does the merchant's two steps in one: uploads the screenshot through the
/// private API (write key) and sends `confirm_transfer` naming it; the order is credited. Run
/// again it is answered as a duplicate; with a read key the upload is refused (typed), the
/// key never shown, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paystate_attach_uploads_the_screenshot_and_confirms_the_transfer() {
    let ps = ProviderStack::start().await;
    let o = started(&ps, "pk-attach").await;
    let key1 = transfer(&ps, &o);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("receipt.png");
    std::fs::write(&file, SCREENSHOT).expect("screenshot written");
    let file = file.to_str().expect("utf-8 path");
    let attach = |key: &'static str| {
        let args = [
            "attach",
            o.as_str(),
            file,
            "--reference",
            key1.as_str(),
            "--api",
            &ps.private_url(),
        ]
        .map(str::to_string);
        let url = ps.nats.url();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
                .args(&args)
                .env("PAYSTATE_NATS_URL", url)
                .env("PAYSTATE_API_KEY", key)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("paystate attach runs");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };

    let (code, out, err) = attach(test_keys().read.as_str()).await;
    assert_eq!(code, 2, "a read key cannot upload: {out}{err}");
    assert!(err.contains("forbidden"), "{err}");
    assert!(!err.contains(&test_keys().read) && !out.contains(&test_keys().read));

    let (code, out, err) = attach(test_keys().write.as_str()).await;
    assert_eq!(code, 0, "attach failed: {out}{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).expect("outcome JSON");
    assert_eq!(outcome["outcome"], "accepted", "{outcome}");
    let done = ps.wait_status(&o, Status::Done).await;
    assert_eq!(done.captured.0, 30_000, "credited 300 BTN");

    let (code, out, _) = attach(test_keys().write.as_str()).await;
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&out).expect("outcome JSON");
    assert_eq!(again["duplicate"], true, "{again}");

    let sha256 = {
        use sha2::Digest;
        hex_lower(&sha2::Sha256::digest(SCREENSHOT))
    };
    let commits = ps.journal.read_order(&o).await.expect("read");
    let confirmations: Vec<_> = commits
        .iter()
        .flat_map(|c| c.commit.events.iter())
        .filter_map(|e| match e {
            Event::TransferConfirmationSubmitted {
                reference,
                attachment,
                ..
            } => Some((reference.clone(), attachment.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(confirmations.len(), 1, "confirmed once");
    let (reference, attachment) = &confirmations[0];
    assert_eq!(reference, &key1);
    assert_eq!(
        (
            attachment.file_name.as_str(),
            attachment.content_type.as_str(),
            attachment.size,
            attachment.sha256.as_str()
        ),
        (
            "receipt.png",
            "image/png",
            SCREENSHOT.len() as u64,
            sha256.as_str()
        )
    );
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
