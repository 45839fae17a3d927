//! A provider gets its success answer only once its signal is in the log (issue 12): every
//! callback failure path ends with the signal in the log exactly once, or with the callback
//! quarantined and visible, and the provider got the answer its protocol needs.
//!
//! Real nats-server, an in-process engine that the tests stop and start, and a gateway in
//! its own runtime (a crash cuts everything it holds), with short outcome waits and re-drive
//! backoffs. "Exactly once" is counted only when the system is quiet: the command queue is
//! empty and no callback waits for a re-drive.

mod support;

use async_nats::jetstream::stream::RawMessageErrorKind;
use paystate_adapters::exchanger::signature::ipn_signature;
use paystate_adapters::paykassma::signature::{postback_signature, signed_parts};
use paystate_adapters::{Adapters, AdaptersConfig};
use paystate_events::subjects::COMMANDS_STREAM;
use paystate_events::{
    CaptureMode, Command, Event, OrderId, Outcome, Provider, ProviderSignal, RejectionCode,
    SignalKind,
};
use paystate_gateway::callbacks::{
    CallbackTimings, Callbacks, HeldCallback, HeldState, CALLBACKS_STREAM, HELD_BUCKET, SEEN_BUCKET,
};
use paystate_journal::dead_letters;
use paystate_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use paystate_service::EngineHandle;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::providers::create_for;
use support::*;

/// Paykassma's success answer: anything else makes it resend.
const PAYKASSMA_OK: &str = r#"{"status":"ok"}"#;
const ACCESS_KEY: &str = "uowkn0b3LfBxpcWYHi4_";
const PRIVATE_KEY: &str = "PRIVATE_test_key_1";
/// The IPN secret the sandbox wiring gives the exchanger.
const IPN_SECRET: &str = "ipn-secret-1";

/// Short waits: an outcome not in 1 s is "later"; re-drives every 200 ms.
fn fast() -> CallbackTimings {
    CallbackTimings {
        outcome_wait: Duration::from_secs(1),
        redrive_every: Duration::from_millis(200),
        redrive_backoff_first: Duration::from_millis(200),
        redrive_backoff_max: Duration::from_secs(1),
        redrive_attempts_max: 200,
        ..CallbackTimings::default()
    }
}

/// The system under test: nats, an engine that can be stopped, a crashable gateway.
struct Durable {
    nats: TestNats,
    engine: Option<EngineHandle>,
    gateway: Gateway,
    client: paystate_service::Client,
    journal: paystate_journal::Journal,
    js: async_nats::jetstream::Context,
    _sandbox: SandboxHandle,
}

impl Durable {
    async fn start() -> Durable {
        Durable::start_with(fast()).await
    }

    async fn start_with(timings: CallbackTimings) -> Durable {
        let nats = TestNats::start().await;
        let engine = Some(nats.engine().await);
        let sandbox_cfg = SandboxConfig::default();
        let sandbox = Sandbox::start(sandbox_cfg.clone())
            .await
            .expect("sandbox starts");
        let adapters =
            paystate_sandbox::wiring::adapters_config(&sandbox, &sandbox_cfg, "http://unused")
                .expect("wiring");
        let gateway = Gateway::start(nats.url(), adapters, timings).await;
        Durable {
            client: nats.client().await,
            journal: nats.journal().await,
            js: async_nats::jetstream::new(nats.connect().await),
            nats,
            engine,
            gateway,
            _sandbox: sandbox,
        }
    }

    async fn engine_down(&mut self) {
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
    }

    async fn engine_up(&mut self) {
        if self.engine.is_none() {
            self.engine = Some(self.nats.engine().await);
        }
    }

    /// Creates an order of `provider` (and records `reference` as its provider reference).
    async fn order(&self, name: &str, provider: Provider, reference: Option<&str>) -> OrderId {
        let o = order(name);
        let currency = match provider {
            Provider::Paykassma => "BTN",
            Provider::Exchanger => "UAH",
            _ => "USD",
        };
        let create = create_for(provider, 30_000, currency, CaptureMode::Auto);
        assert_accepted(&self.client, env(&o, create)).await;
        if let Some(r) = reference {
            let accepted = Command::ProviderSignal {
                signal: ProviderSignal {
                    provider,
                    provider_ref: Some(r.to_string()),
                    evidence_ref: "test:setup".into(),
                    observed_at: chrono::Utc::now(),
                    kind: SignalKind::Accepted { action: None },
                },
            };
            assert_accepted(&self.client, env(&o, accepted)).await;
        }
        o
    }

    /// Posts a callback; `None` if no answer came (the gateway crashed under it).
    async fn post(
        &self,
        provider: Provider,
        query: &str,
        ct: &str,
        body: &str,
    ) -> Option<(u16, String)> {
        let resp = reqwest::Client::new()
            .post(format!("{}{query}", self.gateway.callback_url(provider)))
            .header("content-type", ct)
            .body(body.to_string())
            .timeout(WAIT)
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    async fn postback(&self, body: &str) -> Option<(u16, String)> {
        self.post(Provider::Paykassma, "", "application/json", body)
            .await
    }

    /// Every held callback (re-drives and quarantined ones).
    async fn held(&self) -> Vec<HeldCallback> {
        let kv = self
            .js
            .get_key_value(HELD_BUCKET)
            .await
            .expect("held bucket");
        let stream = self
            .js
            .get_stream(format!("KV_{HELD_BUCKET}"))
            .await
            .expect("held stream");
        let mut out = Vec::new();
        let mut seq = 1;
        loop {
            let msg = stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(format!("$KV.{HELD_BUCKET}.>"))
                .send()
                .await;
            let msg = match msg {
                Ok(m) => m,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(e) => panic!("held bucket unreadable: {e}"),
            };
            seq = msg.sequence + 1;
            let key = msg
                .subject
                .trim_start_matches(&format!("$KV.{HELD_BUCKET}."))
                .to_string();
            if let Ok(Some(v)) = kv.get(&key).await {
                // What does not decode is not paystate's (a stray the broker was made to
                // store there); the gateway skips it too.
                if let Ok(held) = serde_json::from_slice(&v) {
                    out.push(held);
                }
            }
        }
        out
    }

    /// Commands waiting in the queue.
    /// Raw callbacks stored by the gateway.
    async fn stored_callbacks(&self) -> u64 {
        let mut raw = self
            .js
            .get_stream(CALLBACKS_STREAM)
            .await
            .expect("callbacks");
        raw.info().await.expect("callbacks info").state.messages
    }

    async fn queued(&self) -> u64 {
        let mut queue = self.js.get_stream(COMMANDS_STREAM).await.expect("queue");
        queue.info().await.expect("queue info").state.messages
    }

    /// Waits until the command queue is empty and no callback waits for a re-drive.
    async fn quiet(&self) {
        let started = Instant::now();
        loop {
            let queued = self.queued().await;
            let redrives = self
                .held()
                .await
                .iter()
                .filter(|h| h.state == HeldState::Redrive)
                .count();
            if queued == 0 && redrives == 0 {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "never quiet: {queued} queued, {redrives} re-drives"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The signals in the order's log that came from callbacks (`callbacks:<seq>` evidence).
    async fn callback_signals(&self, o: &OrderId) -> Vec<ProviderSignal> {
        self.journal
            .read_order(o)
            .await
            .expect("read")
            .into_iter()
            // A refused signal is logged too (`command_rejected`, decision 0013): not applied.
            .filter(|c| !refused(c))
            .filter_map(|c| match c.commit.command.command {
                Command::ProviderSignal { signal }
                    if signal.evidence_ref.starts_with("callbacks:") =>
                {
                    Some(signal)
                }
                _ => None,
            })
            .collect()
    }

    /// The order's logged refusals (`command_rejected` commits), by rejection code.
    async fn refusals(&self, o: &OrderId) -> Vec<RejectionCode> {
        let commits = self.journal.read_order(o).await.expect("read");
        commits
            .iter()
            .filter_map(|c| match c.commit.events.as_slice() {
                [Event::CommandRejected { code, .. }] => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// Polls until the order holds `n` callback signals; returns them.
    async fn wait_signals(&self, o: &OrderId, n: usize) -> Vec<ProviderSignal> {
        let started = Instant::now();
        loop {
            let s = self.callback_signals(o).await;
            if s.len() >= n || started.elapsed() > WAIT {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn assert_accepted(client: &paystate_service::Client, cmd: paystate_events::CommandEnvelope) {
    match client.send(&cmd, WAIT).await.expect("an outcome") {
        Outcome::Accepted { .. } => {}
        other => panic!("expected acceptance, got {other:?}"),
    }
}

/// A Paykassma postback crediting `o` (the seed document's), signed.
fn postback_for(o: &OrderId, transaction_id: &str) -> String {
    let body = format!(
        r#"{{"signature":"SIG","wallet_type":"bnb_ml","amount":300,"currency_code":"BTN","label":"labeluser","direction":"ingoing","created_datetime":"2026-01-27 09:32:02","access_key":"{ACCESS_KEY}","additional_data":[{{"activated_datetime":"2026-01-27 09:32:01","exchanger_identifier":null,"comment":"","amount":"300","currency_code":"BTN","wallet_type":"bnb_ml","stockpiling_id":12057,"transaction_id":"{transaction_id}","transaction_type":0,"plugin_custom_order_id":"{o}.act.c1","withdrawal_id":null,"withdrawal_status":null,"account_number":"","account_name":"","account_email":"","bank_details":{{"bank_code":"","branch_code":""}}}}]}}"#
    );
    let parts = signed_parts(&body).expect("parts");
    let sig = postback_signature(ACCESS_KEY, PRIVATE_KEY, &parts.additional_data_compact);
    body.replace("SIG", &sig)
}

/// An exchanger IPN for `reference` at `status`, signed.
fn ipn_for(reference: &str, status: &str) -> String {
    let (inn, out, from, to, ts) = ("100", "0.5", "CARDUAH", "BTC", "1717171717");
    let sign = ipn_signature(reference, status, inn, out, from, to, ts, IPN_SECRET);
    format!(
        "orderUID=uid-{reference}&orderId={reference}&newStatus={status}&inAmount={inn}\
         &outAmount={out}&xml_from={from}&xml_to={to}&timestamp={ts}&sign={sign}"
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_order_gets_503_then_the_resend_is_applied_once() {
    let d = Durable::start().await;
    let o = order("pk-early");
    let postback = postback_for(&o, "700000000001");
    // Paykassma resends until `{"status":"ok"}`: anything else is a "try again".
    let early = d.postback(&postback).await.expect("answered");
    assert_eq!(early.0, 503, "{early:?}");
    assert_ne!(early.1, PAYKASSMA_OK);
    // The order appears; the resends are answered ok and applied once.
    let create = create_for(Provider::Paykassma, 30_000, "BTN", CaptureMode::Auto);
    assert_accepted(&d.client, env(&o, create)).await;
    for _ in 0..3 {
        let answer = d.postback(&postback).await.expect("answered");
        assert_eq!(
            answer,
            (200, PAYKASSMA_OK.to_string()),
            "a resend gets the original answer"
        );
    }
    d.quiet().await;
    let signals = d.callback_signals(&o).await;
    assert_eq!(signals.len(), 1, "in the log exactly once: {signals:#?}");
    assert!(d.held().await.is_empty());
}

/// Anyone who may publish can have nats-server store its PubAck at any key of the account's
/// buckets (docs/security.md, known limits). Planted at a report's seen key, that junk must
/// not read as "already applied": the provider's resend is applied, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_planted_at_a_seen_key_does_not_silence_the_report() {
    let mut d = Durable::start().await;
    let o = d.order("pk-planted", Provider::Paykassma, None).await;
    let postback = postback_for(&o, "700000000042");
    // Given a first receipt that could not reach the engine: its seen record is pending.
    d.engine_down().await;
    let first = d.postback(&postback).await.expect("answered");
    assert_eq!(first.0, 503, "{first:?}");
    let seen = d.js.get_key_value(SEEN_BUCKET).await.expect("seen bucket");
    let keys: Vec<String> = {
        use futures::TryStreamExt;
        seen.keys()
            .await
            .expect("keys")
            .try_collect()
            .await
            .expect("keys")
    };
    let [key] = keys.as_slice() else {
        panic!("one seen key expected: {keys:?}");
    };
    // When a publisher names that key as the reply subject of a JetStream publish, the
    // broker stores its answer there.
    let nats = d.nats.connect().await;
    nats.publish_with_reply(
        format!("paystate.cmd.{o}"),
        format!("$KV.{SEEN_BUCKET}.{key}"),
        "junk".into(),
    )
    .await
    .expect("publish");
    nats.flush().await.expect("flush");
    let planted = poll_until(|| async {
        let v = seen.get(key).await.ok().flatten()?;
        (!v.is_empty() && !v.starts_with(b"{\"state\"")).then_some(v)
    })
    .await;
    assert!(
        String::from_utf8_lossy(&planted).contains("\"seq\""),
        "the broker's PubAck is stored at the seen key: {planted:?}"
    );
    // Then the provider's resend is applied (not answered as a duplicate and dropped), once.
    d.engine_up().await;
    let answer = d.postback(&postback).await.expect("answered");
    assert_eq!(answer, (200, PAYKASSMA_OK.to_string()));
    d.quiet().await;
    let signals = d.callback_signals(&o).await;
    assert_eq!(signals.len(), 1, "in the log exactly once: {signals:#?}");
}

/// Polls `f` until it gives a value (up to [`WAIT`]).
async fn poll_until<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < WAIT, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kib_authentic_postback_is_stored_applied_and_answered_ok() {
    let d = Durable::start().await;
    let o = d.order("pk-big", Provider::Paykassma, None).await;
    // Paykassma signs only `additional_data`: a long unsigned label keeps it authentic. The
    // gateway's and the adapter's body limits agree (issue 12: it got 400 and was resent
    // for ever).
    let postback = postback_for(&o, "700000000004").replace(
        r#""label":"labeluser""#,
        &format!(r#""label":"{}""#, "l".repeat(100 * 1024)),
    );
    assert!(postback.len() > 100 * 1024);
    for _ in 0..2 {
        let answer = d.postback(&postback).await.expect("answered");
        assert_eq!(answer, (200, PAYKASSMA_OK.to_string()));
    }
    d.quiet().await;
    assert_eq!(d.callback_signals(&o).await.len(), 1, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_refusal_is_quarantined_visible_and_answered() {
    let d = Durable::start().await;
    // A Plural order named by a genuine Paykassma postback: the engine refuses the signal
    // (provider_mismatch), and no resend will ever change that.
    let o = d.order("pk-mismatch", Provider::Plural, None).await;
    let postback = postback_for(&o, "700000000002");
    for _ in 0..3 {
        let answer = d.postback(&postback).await.expect("answered");
        assert_eq!(
            answer,
            (200, PAYKASSMA_OK.to_string()),
            "Paykassma stops resending"
        );
    }
    d.quiet().await;
    let held = d.held().await;
    assert_eq!(
        held.len(),
        1,
        "one entry for the callback, not one per resend: {held:#?}"
    );
    assert_eq!(held[0].state, HeldState::Quarantined);
    assert_eq!(held[0].provider, Provider::Paykassma);
    assert_eq!(held[0].order_id.as_ref(), Some(&o));
    assert!(
        held[0].reason.contains("provider_mismatch"),
        "{}",
        held[0].reason
    );
    assert!(d.callback_signals(&o).await.is_empty(), "nothing applied");
    assert_eq!(
        d.refusals(&o).await,
        [RejectionCode::ProviderMismatch],
        "the refusal is logged once; the resends are its duplicates"
    );
    // Also beside the other dead letters (`paystate dlq list --consumer callbacks`), once.
    let filter = dead_letters::DeadLetterFilter {
        source: Some(dead_letters::Source::Callbacks),
        ..Default::default()
    };
    let letters = dead_letters::list(&d.js, &filter)
        .await
        .expect("list")
        .letters;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].order, o.as_str());
    assert!(
        letters[0].reason.contains("provider_mismatch"),
        "{letters:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentic_ipn_too_large_for_a_command_flags_the_order_and_is_answered() {
    let d = Durable::start().await;
    let o = d
        .order("ex-large", Provider::Exchanger, Some("exref-large"))
        .await;
    // A correctly signed IPN whose status alone is larger than a command may be.
    // (Within the callback body limit, past the command limit once framed as a command.)
    let command_max = paystate_service::config::COMMAND_BYTES_MAX;
    let body_max = paystate_gateway::limits::CALLBACK_BODY_BYTES_MAX;
    let filler = "x".repeat((body_max - 256).min(command_max + 1024));
    let body = ipn_for("exref-large", &filler);
    let query = format!("?order_id={o}");
    let answer = d
        .post(Provider::Exchanger, &query, FORM, &body)
        .await
        .expect("answered");
    assert_eq!(answer.0, 200, "the provider gets its success answer");
    let again = d
        .post(Provider::Exchanger, &query, FORM, &body)
        .await
        .expect("answered");
    assert_eq!(again, answer, "a resend gets the original answer");
    d.quiet().await;
    let signals = d.callback_signals(&o).await;
    assert_eq!(signals.len(), 1, "flagged exactly once: {signals:#?}");
    assert!(
        matches!(&signals[0].kind, SignalKind::NeedsReview { reason } if reason.contains("does not fit a command")),
        "{signals:#?}"
    );
    let state = d
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert!(
        state.discrepancies.iter().any(|x| x.code == "needs_review"),
        "the order is flagged for review: {:#?}",
        state.discrepancies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_crash_between_store_and_apply_then_the_resend_applies_once() {
    let mut d = Durable::start().await;
    let o = d.order("pk-crash", Provider::Paykassma, None).await;
    let postback = postback_for(&o, "700000000003");
    // No engine: the gateway stores the raw callback and keeps retrying its signal on the
    // fast path (no responders) ...
    d.engine_down().await;
    let waiting = {
        let url = d.gateway.callback_url(Provider::Paykassma);
        let body = postback.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // The raw callback is stored (nobody can apply its signal) ...
    let started = Instant::now();
    while d.stored_callbacks().await == 0 {
        assert!(started.elapsed() < WAIT, "the callback was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and the gateway dies before any answer.
    d.gateway.restart().await;
    let cut = waiting.await.expect("joined");
    assert!(
        cut.is_err() || cut.as_ref().is_ok_and(|s| *s == 503),
        "no success answer: {cut:?}"
    );
    d.engine_up().await;
    // Paykassma resends: answered ok once the resent signal is in the log.
    let answer = d.postback(&postback).await.expect("answered");
    assert_eq!(answer, (200, PAYKASSMA_OK.to_string()));
    d.quiet().await;
    let signals = d.callback_signals(&o).await;
    assert_eq!(signals.len(), 1, "in the log exactly once: {signals:#?}");
    let again = d.postback(&postback).await.expect("answered");
    assert_eq!(again, answer, "a later resend gets the original answer");
    d.quiet().await;
    assert_eq!(d.callback_signals(&o).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_ipn_sent_while_the_engine_is_down_is_held_and_re_driven() {
    let mut d = Durable::start().await;
    let o = d
        .order("ex-held", Provider::Exchanger, Some("exref-held"))
        .await;
    d.engine_down().await;
    // The exchanger sends its IPN once and never again: it is answered once kept.
    let query = format!("?order_id={o}");
    let answer = d
        .post(
            Provider::Exchanger,
            &query,
            FORM,
            &ipn_for("exref-held", "inProgressPayout"),
        )
        .await
        .expect("answered");
    assert_eq!(answer.0, 200, "{answer:?}");
    let held = d.held().await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].state, HeldState::Redrive);
    // The engine comes back: paystate re-drives the IPN into the log, once.
    d.engine_up().await;
    let signals = d.wait_signals(&o, 1).await;
    assert!(!signals.is_empty(), "re-driven into the log");
    d.quiet().await;
    assert_eq!(d.callback_signals(&o).await.len(), 1, "exactly once");
    assert!(d.held().await.is_empty(), "nothing left held");
}

/// Quarantined entries, delete markers of re-driven ones and strays pile up at the front
/// of the held bucket's stream; a callback held behind more of them than one round looks
/// at is still re-driven (each round goes on where the last stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_held_behind_more_entries_than_one_round_scans_is_re_driven() {
    let scan = 8;
    let mut d = Durable::start_with(CallbackTimings {
        redrive_scan_max: scan,
        ..fast()
    })
    .await;
    // Given three rounds' worth of entries at the front: quarantined callbacks, the delete
    // markers re-driven ones leave, and strays.
    let kv = d.js.get_key_value(HELD_BUCKET).await.expect("held bucket");
    let now = chrono::Utc::now();
    for i in 0..(2 * scan as u64) {
        let quarantined = HeldCallback {
            state: HeldState::Quarantined,
            provider: Provider::Exchanger,
            raw_seq: 1_000_000 + i,
            received_at: now,
            order_id: None,
            reason: "planted by the test".into(),
            attempts: 0,
            next_attempt_at: now,
            request: None,
        };
        let bytes = serde_json::to_vec(&quarantined).expect("json");
        kv.put(format!("exchanger.{}", 1_000_000 + i), bytes.into())
            .await
            .expect("put");
    }
    for i in 0..(scan as u64) {
        let key = format!("exchanger.{}", 2_000_000 + i);
        kv.put(&key, "x".into()).await.expect("put");
        kv.delete(&key).await.expect("delete");
        kv.put(format!("stray{i}"), r#"{"stream":"X","seq":1}"#.into())
            .await
            .expect("put");
    }
    let o = d
        .order("ex-behind", Provider::Exchanger, Some("exref-behind"))
        .await;
    d.engine_down().await;
    // When the exchanger's IPN (sent once) arrives while the engine is down, it is held
    // behind all of them.
    let answer = d
        .post(
            Provider::Exchanger,
            &format!("?order_id={o}"),
            FORM,
            &ipn_for("exref-behind", "inProgressPayout"),
        )
        .await
        .expect("answered");
    assert_eq!(answer.0, 200, "{answer:?}");
    // Then, the engine back, it is re-driven into the log, once.
    d.engine_up().await;
    let signals = d.wait_signals(&o, 1).await;
    assert!(!signals.is_empty(), "re-driven into the log");
    d.quiet().await;
    assert_eq!(d.callback_signals(&o).await.len(), 1, "exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_ipn_never_applicable_is_quarantined_after_its_bounded_re_drives() {
    let d = Durable::start_with(CallbackTimings {
        redrive_attempts_max: 3,
        ..fast()
    })
    .await;
    // The order never records the exchanger's orderId: the routing hint alone applies nothing.
    let o = d.order("ex-never", Provider::Exchanger, None).await;
    let query = format!("?order_id={o}");
    let answer = d
        .post(
            Provider::Exchanger,
            &query,
            FORM,
            &ipn_for("exref-never", "done"),
        )
        .await
        .expect("answered");
    assert_eq!(answer.0, 200, "held: the exchanger never resends");
    let started = Instant::now();
    let held = loop {
        let held = d.held().await;
        let quarantined =
            !held.is_empty() && held.iter().all(|h| h.state == HeldState::Quarantined);
        if quarantined || started.elapsed() > WAIT {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].state, HeldState::Quarantined, "{held:#?}");
    assert!(
        held[0].reason.contains("after 3 re-drives"),
        "{}",
        held[0].reason
    );
    assert!(d.callback_signals(&o).await.is_empty());
}

/// The gateway's public listener in its own runtime (see `support::providers::CrashableGateway`),
/// with the fast timings.
struct Gateway {
    addr: std::net::SocketAddr,
    nats_url: String,
    adapters: AdaptersConfig,
    timings: CallbackTimings,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Gateway {
    async fn start(
        nats_url: String,
        adapters: AdaptersConfig,
        timings: CallbackTimings,
    ) -> Gateway {
        let mut g = Gateway {
            addr: "127.0.0.1:0".parse().expect("addr"),
            nats_url,
            adapters,
            timings,
            runtime: None,
        };
        g.serve().await;
        g
    }

    fn callback_url(&self, provider: Provider) -> String {
        format!("http://{}/callbacks/{provider}", self.addr)
    }

    /// Crashes (everything cut at once) and serves again on the same address.
    async fn restart(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.serve().await;
    }

    async fn serve(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (addr, url, adapters, timings) = (
            self.addr,
            self.nats_url.clone(),
            self.adapters.clone(),
            self.timings,
        );
        rt.spawn(async move {
            // A crashed runtime lets go of its listener in the background: wait for it.
            let started = Instant::now();
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(e) if started.elapsed() > WAIT => panic!("address never free: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            let bound = listener.local_addr().expect("bound");
            let nats = async_nats::connect(url).await.expect("nats");
            let adapters = Arc::new(Adapters::new(adapters).expect("adapters"));
            let callbacks = Callbacks::open_with(nats, adapters, 1, timings)
                .await
                .expect("callbacks");
            let router = paystate_gateway::public_router(Some(callbacks), Default::default());
            let _ = ready_tx.send(bound);
            let _ = paystate_gateway::serve(listener, router, std::future::pending()).await;
        });
        self.addr = tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("gateway ready in time")
            .expect("gateway started");
        self.runtime = Some(rt);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether the commit is a logged refusal (its only event is `command_rejected`).
fn refused(c: &paystate_journal::StoredCommit) -> bool {
    matches!(c.commit.events.as_slice(), [Event::CommandRejected { .. }])
}
