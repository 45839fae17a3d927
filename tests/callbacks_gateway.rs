//! The callback gateway (`POST /callbacks/{provider}`) under load and abuse, over a real
//! nats-server and real HTTP on loopback: a flood of 1,000 Plural and Flitt callbacks (a third
//! of them resends, some reordered) posted concurrently; bad and missing signatures; the body
//! cap; malformed bodies; resends; a gateway crashed in the middle of a burst; and adapter
//! workers killed in the middle of provider calls.
//!
//! Callbacks posted here are signed exactly as the providers sign them
//! (`plural::signature::webhook_signature`, `flitt::signature::sign`): a faithful stand-in for
//! the providers' own sends and resends, which the sandbox delivers one at a time. A Flitt
//! callback is only a trigger (its signature does not bind key names): the gateway applies
//! Flitt's signed status answer, so each Flitt order is first moved at the sandbox to the
//! state its callbacks report, with the sandbox's own callbacks dropped.

mod support;

use futures::StreamExt;
use paystate_adapters::{flitt, plural};
use paystate_events::{CaptureMode, Command, OrderId, OrderState, Provider, Status};
use paystate_sandbox::{FaultKind, FaultRule, Op};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::providers::*;
use support::tuned::*;
use support::*;

const AMOUNT: u64 = 10_000;
/// Orders per provider in the flood; each gets two distinct callbacks.
const FLOOD_ORDERS_PER_PROVIDER: usize = 167;
/// Callbacks in the flood, resends included.
const FLOOD_CALLBACKS: usize = 1_000;
/// Requests in flight at once during the flood.
const FLOOD_CONCURRENCY: usize = 32;
/// Commands in flight at once while the flood's orders are set up.
const SETUP_CONCURRENCY: usize = 16;

/// One callback as the provider sends it.
#[derive(Clone, Debug)]
struct Hook {
    provider: Provider,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A Plural webhook for `plural_order` now at `status`, signed for this attempt's time.
fn plural_hook(ps: &ProviderStack, webhook_id: &str, plural_order: &str, status: &str) -> Hook {
    let body = json!({"event_type": format!("ORDER_{status}"), "data": {
        "order_id": plural_order, "status": status, "order_amount": {"value": AMOUNT, "currency": "INR"}}});
    let body = serde_json::to_vec(&body).expect("json");
    plural_signed(ps, webhook_id, body, chrono::Utc::now().timestamp())
}

fn plural_signed(ps: &ProviderStack, webhook_id: &str, body: Vec<u8>, ts: i64) -> Hook {
    let ts = ts.to_string();
    let sig = plural::signature::webhook_signature(
        &ps.sandbox_cfg.plural.webhook_secret,
        webhook_id,
        &ts,
        &body,
    );
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", webhook_id),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &sig),
    ];
    Hook {
        provider: Provider::Plural,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
    }
}

/// A Flitt callback for a preauth order: the approval on hold, or its capture.
fn flitt_params(
    ps: &ProviderStack,
    order: &OrderId,
    payment_id: &str,
    captured: bool,
) -> serde_json::Map<String, Value> {
    let (tran_type, capture_status, capture_amount) = if captured {
        ("capture", "captured", AMOUNT)
    } else {
        ("purchase", "hold", 0)
    };
    let v = json!({"order_id": order.as_str(), "merchant_id": ps.sandbox_cfg.flitt.merchant_id,
        "amount": AMOUNT.to_string(), "currency": "GEL", "order_status": "approved", "response_status": "success",
        "tran_type": tran_type, "payment_id": payment_id.parse::<u64>().expect("numeric payment_id"), "preauth": "Y",
        "capture_status": capture_status, "capture_amount": capture_amount.to_string(), "reversal_amount": "0",
        "response_code": "", "rrn": "111111111111", "approval_code": "123456"});
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

fn flitt_signed(ps: &ProviderStack, mut params: serde_json::Map<String, Value>) -> Hook {
    let sig = flitt::signature::sign(&ps.sandbox_cfg.flitt.password, &params);
    params.insert("signature".into(), json!(sig));
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    Hook {
        provider: Provider::Flitt,
        headers,
        body: serde_json::to_vec(&params).expect("json"),
    }
}

/// Posts one callback; `None` when no answer came (connection refused or cut).
async fn post(http: &reqwest::Client, base: &str, hook: &Hook) -> Option<(u16, String)> {
    let mut req = http
        .post(format!("{base}/callbacks/{}", hook.provider))
        .body(hook.body.clone());
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// Creates `n` orders of `provider` and starts their payments, `SETUP_CONCURRENCY` at a time;
/// returns each order with its state once its customer action is shown.
async fn started_orders(
    ps: &ProviderStack,
    provider: Provider,
    n: usize,
    mode: CaptureMode,
) -> Vec<(OrderId, OrderState)> {
    let currency = if provider == Provider::Plural {
        "INR"
    } else {
        "GEL"
    };
    let orders: Vec<OrderId> = (0..n).map(|i| order(&format!("{provider}-{i}"))).collect();
    futures::stream::iter(orders.iter().cloned())
        .map(|o| async move {
            accept(
                &ps.client,
                env(&o, create_for(provider, AMOUNT, currency, mode)),
            )
            .await;
            accept(&ps.client, env(&o, start())).await;
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::new();
    for o in orders {
        let s = ps
            .wait_until(&o, "started at the provider", |s| {
                s.customer_action.is_some() && s.provider_ref.is_some()
            })
            .await;
        out.push((o, s));
    }
    out
}

/// Posts every hook, `concurrency` at a time; returns the answers in the hooks' order.
async fn post_all(base: &str, hooks: &[Hook], concurrency: usize) -> Vec<Option<(u16, String)>> {
    let http = reqwest::Client::new();
    futures::stream::iter(hooks.iter())
        .map(|h| post(&http, base, h))
        .buffered(concurrency)
        .collect()
        .await
}

/// The callback commits (`cb.*` command ids) of an order.
fn callback_steps(t: &[Step]) -> Vec<&Step> {
    t.iter()
        .filter(|s| s.command_id.starts_with("cb."))
        .collect()
}

/// Where Flitt's own record of a (preauth) order is put before hand-built callbacks are
/// posted for it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlittAt {
    /// Approved, the amount on hold (the customer paid; `capture_status: hold`).
    Held,
    /// Captured at Flitt (its `/api/capture/order_id`, called here directly).
    Captured,
}

/// A Flitt callback is only a trigger: the gateway applies Flitt's signed status answer. So
/// Flitt's own record of each order is moved to `at` first (from created; `Captured` also
/// expects it `Held` already), the way the customer and the merchant would, with the
/// callback Flitt would send for each step dropped (`DropCallback`): the hand-built callbacks
/// posted afterwards are the only ones that reach the gateway, and Flitt's answer to their
/// status query reports `at`.
async fn flitt_orders_at(ps: &ProviderStack, orders: &[(OrderId, OrderState)], at: FlittAt) {
    let adapters = ps.adapters();
    for (o, s) in orders {
        ps.sandbox.add_fault(
            Provider::Flitt,
            FaultRule::once(FaultKind::DropCallback).on_order(o.as_str()),
        );
        match at {
            FlittAt::Held => {
                ps.sandbox
                    .approve(Provider::Flitt, o.as_str())
                    .expect("approve at Flitt");
            }
            FlittAt::Captured => {
                let amount = money_in(AMOUNT, "GEL").expect("money");
                adapters
                    .capture(s, "test", amount)
                    .await
                    .expect("captured at Flitt");
            }
        }
        let c = ps.sandbox.counters(Provider::Flitt, o.as_str());
        let step = match at {
            FlittAt::Held => c.authorized,
            FlittAt::Captured => c.captured,
        };
        assert_eq!(step, 1, "{o}: Flitt acted: {c:?}");
    }
    let c = ps.sandbox.totals(Provider::Flitt);
    assert_eq!(c.callbacks_attempts, 0, "Flitt sent none of its own: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_1000_callbacks_a_third_resent_some_reordered() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let n = FLOOD_ORDERS_PER_PROVIDER;
    let plural_orders = started_orders(ps, Provider::Plural, n, CaptureMode::Auto).await;
    let flitt_orders = started_orders(ps, Provider::Flitt, n - 1, CaptureMode::Manual).await;
    let flood = flood_of(ps, &plural_orders, &flitt_orders);
    // Flitt callbacks are triggers answered by Flitt's status: Flitt holds every order while
    // wave one is posted and has captured it by wave two (the merchant captured in between),
    // so each Flitt order, like each Plural order, has two distinct states to apply once each.
    flitt_orders_at(ps, &flitt_orders, FlittAt::Held).await;
    let mut flood_s = 0.0;
    let mut answers = Vec::new();
    for (k, w) in flood.waves.iter().enumerate() {
        if k == 1 {
            flitt_orders_at(ps, &flitt_orders, FlittAt::Captured).await;
        }
        let started = Instant::now();
        answers.extend(post_all(&ps.gateway_url(), w, FLOOD_CONCURRENCY).await);
        flood_s += started.elapsed().as_secs_f64();
    }
    let sent = answers.len();
    let not_ok: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a, Some((200, _))))
        .collect();
    let acknowledged = sent - not_ok.len();
    assert_eq!(sent, FLOOD_CALLBACKS);
    assert!(
        not_ok.is_empty(),
        "every callback answered HTTP 200: {not_ok:?}"
    );
    let all: Vec<&OrderId> = plural_orders
        .iter()
        .chain(&flitt_orders)
        .map(|(o, _)| o)
        .collect();
    let flitt: Vec<OrderId> = flitt_orders.iter().map(|(o, _)| o.clone()).collect();
    // Every callback's command processed (the reordered orders' late second one too) before
    // the trails are read.
    support::quiet::wait_quiet_on(&ps.nats).await;
    let applied = check_flooded(ps, &all, &flood.reordered, &flitt).await;
    let stats = t.callback_stats();
    let received = stats.received.load(Ordering::SeqCst) as usize;
    let recognised = stats.duplicates.load(Ordering::SeqCst) as usize;
    let rejected = stats.rejected.load(Ordering::SeqCst);
    println!(
        "flood: sent {sent}, acknowledged {acknowledged} (HTTP 200), distinct {}, resends {}, \
         applied once {applied}, resends recognised by the seen bucket {recognised} (the rest \
         raced their original and were de-duplicated by command id), orders reordered {}, \
         rejected {rejected}, {flood_s:.2} s ({:.0}/s)",
        flood.unique,
        flood.resends,
        flood.reordered.len(),
        sent as f64 / flood_s
    );
    assert_eq!(
        (applied, received, rejected),
        (flood.unique, FLOOD_CALLBACKS, 0)
    );
    assert!(
        recognised > 0 && recognised <= flood.resends,
        "{recognised}"
    );
}

/// The flood: two waves of callbacks, resends included.
struct Flood {
    waves: [Vec<Hook>; 2],
    unique: usize,
    resends: usize,
    reordered: Vec<OrderId>,
}

/// Two distinct callbacks per order: the first stage (authorized / approved on hold) in wave
/// one and the second (processed / captured) in wave two, except every third order, whose
/// stages are swapped. Resends make up the rest of [`FLOOD_CALLBACKS`], spread over both
/// waves (some race their original, some come long after).
fn flood_of(
    ps: &ProviderStack,
    plural_orders: &[(OrderId, OrderState)],
    flitt_orders: &[(OrderId, OrderState)],
) -> Flood {
    let (mut first, mut second, mut reordered) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (o, s)) in plural_orders.iter().enumerate() {
        let r = s.provider_ref.as_deref().expect("Plural order id");
        let pair = [
            plural_hook(ps, &format!("msg_a_{i}"), r, "AUTHORIZED"),
            plural_hook(ps, &format!("msg_p_{i}"), r, "PROCESSED"),
        ];
        split(pair, i % 3 == 0, &mut first, &mut second, &mut reordered, o);
    }
    for (i, (o, s)) in flitt_orders.iter().enumerate() {
        let pid = s.provider_ref.as_deref().expect("payment_id");
        let pair = [
            flitt_signed(ps, flitt_params(ps, o, pid, false)),
            flitt_signed(ps, flitt_params(ps, o, pid, true)),
        ];
        split(pair, i % 3 == 1, &mut first, &mut second, &mut reordered, o);
    }
    let unique = first.len() + second.len();
    let resends = FLOOD_CALLBACKS - unique;
    let mut waves = [first.clone(), second.clone()];
    for k in 0..resends {
        let (wave, source) = if k % 2 == 0 {
            (0, &first)
        } else {
            (1, &second)
        };
        waves[wave].push(source[(k * 7) % source.len()].clone());
    }
    for w in &mut waves {
        interleave(w);
    }
    Flood {
        waves,
        unique,
        resends,
        reordered,
    }
}

/// Every flooded order ends captured, with each of its two stages applied once: a Plural
/// order's two callbacks (the late first stage of a reordered order changes nothing); a Flitt
/// order's two status answers, held then captured (its callbacks only trigger the query, so
/// the order they came in does not matter: wave one's queries answer held, wave two's
/// captured). Returns the callback commands applied.
async fn check_flooded(
    ps: &ProviderStack,
    orders: &[&OrderId],
    reordered: &[OrderId],
    flitt: &[OrderId],
) -> usize {
    let mut applied = 0;
    for o in orders {
        let s = ps.wait_status(o, Status::Captured).await;
        assert_eq!(s.captured.0, AMOUNT, "{o}");
        let tr = trail(&ps.journal, o).await;
        let cbs = callback_steps(&tr);
        assert_eq!(cbs.len(), 2, "each distinct stage applied once: {tr:#?}");
        assert!(no_discrepancy(&tr), "{tr:#?}");
        if flitt.contains(o) {
            let signals: Vec<_> = cbs.iter().map(|s| s.signal.as_deref()).collect();
            assert_eq!(
                signals,
                [Some("authorized"), Some("captured")],
                "what Flitt reported, in the order it reported it: {tr:#?}"
            );
        } else if reordered.contains(o) {
            assert_eq!(cbs[0].signal.as_deref(), Some("captured"), "{tr:#?}");
            assert_eq!(cbs[1].events, ["signal_recorded:late"], "{tr:#?}");
        }
        applied += cbs.len();
    }
    applied
}

/// Puts a pair of stage hooks into the waves: normally first stage in wave one, second in
/// wave two; `reorder` swaps them.
fn split(
    pair: [Hook; 2],
    reorder: bool,
    first: &mut Vec<Hook>,
    second: &mut Vec<Hook>,
    reordered: &mut Vec<OrderId>,
    o: &OrderId,
) {
    let [a, b] = pair;
    if reorder {
        reordered.push(o.clone());
        first.push(b);
        second.push(a);
    } else {
        first.push(a);
        second.push(b);
    }
}

/// A deterministic shuffle (so a failure replays): interleaves the front and back halves,
/// then rotates, so resends sit near and far from their originals.
fn interleave(hooks: &mut Vec<Hook>) {
    let half = hooks.len() / 2;
    let back = hooks.split_off(half);
    let front = std::mem::take(hooks);
    let mut b = back.into_iter();
    for a in front {
        hooks.push(a);
        hooks.extend(b.next());
    }
    hooks.extend(b);
    let by = hooks.len() / 3;
    hooks.rotate_left(by);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_missing_signatures_are_refused_recorded_never_applied() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let (base, http) = (ps.gateway_url(), reqwest::Client::new());
    let (po, p_state) = started_orders(ps, Provider::Plural, 1, CaptureMode::Manual)
        .await
        .remove(0);
    let flitt_order = started_orders(ps, Provider::Flitt, 1, CaptureMode::Manual).await;
    // A Flitt callback only triggers a status query: Flitt holds the payment already, so a
    // forgery that got past the signature check would move the order; none may.
    flitt_orders_at(ps, &flitt_order, FlittAt::Held).await;
    let (fo, f_state) = flitt_order.into_iter().next().expect("the Flitt order");
    let good = plural_hook(
        ps,
        "msg_1",
        &p_state.provider_ref.clone().expect("ref"),
        "AUTHORIZED",
    );
    let pid = f_state.provider_ref.clone().expect("payment_id");
    let flitt_good = flitt_signed(ps, flitt_params(ps, &fo, &pid, false));
    for hook in plural_forgeries(ps, &good)
        .iter()
        .chain(&flitt_forgeries(&flitt_good))
    {
        let (status, body) = post(&http, &base, hook).await.expect("an answer");
        assert_eq!(status, 401, "{hook:?}: {body}");
        assert!(
            body.starts_with("bad signature: "),
            "a clear reason: {body}"
        );
    }
    for (p, o, n) in [(Provider::Plural, &po, 4), (Provider::Flitt, &fo, 2)] {
        let v = verdicts_of(&ps.nats, p).await;
        assert_eq!(
            v.iter().filter(|v| v["verdict"] == "rejected").count(),
            n,
            "{v:#?}"
        );
        assert_eq!(
            ps.raw_callbacks(p).await.len(),
            n,
            "each refused callback is kept raw as evidence"
        );
        let tr = trail(&ps.journal, o).await;
        assert!(
            callback_steps(&tr).is_empty(),
            "nothing refused was applied: {tr:#?}"
        );
        let state = ps
            .journal
            .load(o)
            .await
            .expect("load")
            .state
            .expect("order");
        assert_eq!(state.status, Status::Pending);
    }
    assert_eq!(post(&http, &base, &good).await.map(|a| a.0), Some(200));
    assert_eq!(
        post(&http, &base, &flitt_good).await.map(|a| a.0),
        Some(200)
    );
    ps.wait_status(&po, Status::Authorized).await;
    ps.wait_status(&fo, Status::Authorized).await;
    assert_eq!(t.callback_stats().rejected.load(Ordering::SeqCst), 6);
}

/// Anyone who can reach the public routes can post. Refused callbacks are evidence kept
/// within a budget per route and for a week: a flood of large forged ones stores a bounded
/// amount (it filled the broker's disk, which the log shares), each is still refused and
/// counted, and an authentic callback after it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_callbacks_stores_a_bounded_amount_of_evidence() {
    use paystate_gateway::limits::{REFUSED_EVIDENCE_BURST_BYTES, REFUSED_EVIDENCE_TTL};
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let (base, http) = (ps.gateway_url(), reqwest::Client::new());
    let (o, s) = started_orders(ps, Provider::Plural, 1, CaptureMode::Auto)
        .await
        .remove(0);
    let plural_ref = s.provider_ref.clone().expect("Plural order id");
    // Given 48 forged Plural webhooks of 128 KiB each (6 MiB, six times the burst) ...
    let forged = 48;
    let pad = "x".repeat(128 * 1024);
    for i in 0..forged {
        let id = format!("msg-forged-{i}");
        let ts = chrono::Utc::now().timestamp().to_string();
        let body = serde_json::to_vec(&json!({"event_type": "ORDER_PROCESSED", "data": {
            "order_id": plural_ref, "status": "PROCESSED", "pad": pad}}))
        .expect("json");
        let sig = plural::signature::webhook_signature("not-the-secret", &id, &ts, &body);
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let hook = Hook {
            provider: Provider::Plural,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        };
        // ... each is refused ...
        let answer = post(&http, &base, &hook).await.expect("an answer");
        assert_eq!(answer.0, 401, "{answer:?}");
    }
    // ... and counted, and the callbacks stream holds at most the burst's worth of them,
    // each record set to expire.
    let stats = t.callback_stats();
    assert_eq!(stats.rejected.load(Ordering::SeqCst), forged);
    let unrecorded = stats.refused_unrecorded.load(Ordering::SeqCst);
    assert!(
        unrecorded >= forged - 8,
        "past the budget: {unrecorded} of {forged}"
    );
    let js = async_nats::jetstream::new(ps.nats.connect().await);
    let mut stream = js
        .get_stream(paystate_gateway::callbacks::CALLBACKS_STREAM)
        .await
        .expect("callbacks stream");
    let info = stream.info().await.expect("info").clone();
    assert!(
        info.state.bytes <= REFUSED_EVIDENCE_BURST_BYTES as u64 + 64 * 1024,
        "refused evidence stored: {} bytes",
        info.state.bytes
    );
    let raw = stream
        .get_raw_message(info.state.first_sequence)
        .await
        .expect("the first refused record");
    let ttl = raw.headers.get("Nats-TTL").map(|v| v.to_string());
    assert_eq!(
        ttl,
        Some(format!("{}s", REFUSED_EVIDENCE_TTL.as_secs())),
        "refused evidence expires"
    );
    assert_eq!(
        ps.raw_callbacks(Provider::Plural).await.len() as u64,
        forged - unrecorded
    );
    // Then an authentic callback is stored and applied as ever.
    let good = plural_hook(ps, "msg-authentic", &plural_ref, "PROCESSED");
    assert_eq!(post(&http, &base, &good).await.map(|a| a.0), Some(200));
    ps.wait_status(&o, Status::Captured).await;
}

/// A Plural webhook signed with another secret, without signature headers, signed an hour
/// ago (a replay), and with its body changed after signing.
fn plural_forgeries(ps: &ProviderStack, good: &Hook) -> Vec<Hook> {
    let (id, ts) = (&good.headers[1].1, &good.headers[2].1);
    let mut wrong_key = good.clone();
    wrong_key.headers[3].1 =
        plural::signature::webhook_signature("not-the-secret", id, ts, &good.body);
    let mut unsigned = good.clone();
    unsigned.headers.retain(|(k, _)| !k.starts_with("webhook-"));
    let an_hour_ago = chrono::Utc::now().timestamp() - 3_600;
    let stale = plural_signed(ps, id, good.body.clone(), an_hour_ago);
    let mut tampered = good.clone();
    tampered.body = replaced(&good.body, "AUTHORIZED", "CANCELLED");
    vec![wrong_key, unsigned, stale, tampered]
}

/// A Flitt callback with its amount changed after signing, and one without a signature.
fn flitt_forgeries(good: &Hook) -> Vec<Hook> {
    let mut tampered = good.clone();
    tampered.body = replaced(&good.body, "\"amount\":\"10000\"", "\"amount\":\"1\"");
    assert_ne!(tampered.body, good.body, "the amount was changed");
    let mut params: serde_json::Map<String, Value> =
        serde_json::from_slice(&good.body).expect("json");
    params.remove("signature");
    let mut unsigned = good.clone();
    unsigned.body = serde_json::to_vec(&params).expect("json");
    vec![tampered, unsigned]
}

fn replaced(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8_lossy(body).replace(from, to).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_callbacks_get_clear_4xx() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let (base, http) = (ps.gateway_url(), reqwest::Client::new());
    let cap = paystate_gateway::callbacks::CALLBACK_BODY_BYTES_MAX;
    let json = vec![("content-type".to_string(), "application/json".to_string())];
    let body = |bytes: &[u8]| Hook {
        provider: Provider::Flitt,
        headers: json.clone(),
        body: bytes.to_vec(),
    };
    assert_eq!(
        post(&http, &base, &body(&vec![b' '; cap + 1]))
            .await
            .map(|a| a.0),
        Some(413)
    );
    assert!(
        ps.raw_callbacks(Provider::Flitt).await.is_empty(),
        "an oversized body is refused before it is stored"
    );
    let cases: [(&str, &[u8]); 4] = [
        ("at the cap", &vec![b' '; cap]),
        ("not JSON", b"{not json"),
        ("an array", b"[1,2]"),
        ("empty", b""),
    ];
    for (what, bytes) in cases {
        let (status, answer) = post(&http, &base, &body(bytes)).await.expect("answer");
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(
            answer.starts_with("malformed: "),
            "{what}: the answer says why: {answer}"
        );
    }
    let nowhere = http
        .post(format!("{base}/callbacks/acme"))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(nowhere.status().as_u16(), 404);
    assert_eq!(
        ps.raw_callbacks(Provider::Flitt).await.len(),
        4,
        "malformed bodies are kept raw as evidence"
    );
    let v = verdicts_of(&ps.nats, Provider::Flitt).await;
    let malformed = |v: &Value| {
        v["verdict"] == "rejected"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("malformed"))
    };
    assert!(v.len() == 4 && v.iter().all(malformed), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_signed_webhook_refused_unknown_status_kept() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let (base, http) = (ps.gateway_url(), reqwest::Client::new());
    let (po, s) = started_orders(ps, Provider::Plural, 1, CaptureMode::Manual)
        .await
        .remove(0);
    let no_data = b"{\"event_type\":\"ORDER_AUTHORIZED\"}".to_vec();
    let signed_garbage = plural_signed(ps, "msg_g", no_data, chrono::Utc::now().timestamp());
    let (status, body) = post(&http, &base, &signed_garbage).await.expect("answer");
    assert_eq!(
        (status, body.starts_with("malformed: ")),
        (400, true),
        "{body}"
    );
    let unknown = plural_hook(
        ps,
        "msg_u",
        &s.provider_ref.clone().expect("ref"),
        "WEIRD_STATE",
    );
    let answer = post(&http, &base, &unknown).await.map(|a| a.0);
    assert_eq!(answer, Some(200), "an unknown status is kept, not refused");
    let state = ps
        .wait_until(&po, "the unknown status recorded", |s| s.commits >= 4)
        .await;
    assert_eq!(state.status, Status::Pending);
    let kinds = signal_kinds(&trail(&ps.journal, &po).await);
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("unrecognised"),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_are_applied_once_and_answered_alike() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let base = ps.gateway_url();
    let http = reqwest::Client::new();
    let (po, s) = started_orders(ps, Provider::Plural, 1, CaptureMode::Manual)
        .await
        .remove(0);
    let plural_ref = s.provider_ref.clone().expect("ref");
    let flitt_order = started_orders(ps, Provider::Flitt, 1, CaptureMode::Manual).await;
    // Flitt holds the payment, so the status query each resend triggers answers the same:
    // applied once, then recognised as that same answer.
    flitt_orders_at(ps, &flitt_order, FlittAt::Held).await;
    let (fo, fs) = flitt_order.into_iter().next().expect("the Flitt order");
    let flitt_hook = flitt_signed(
        ps,
        flitt_params(ps, &fo, &fs.provider_ref.clone().expect("pid"), false),
    );
    let mut answers = Vec::new();
    for _ in 0..3 {
        // Plural resends carry the same webhook-id with the attempt's own time and signature.
        answers.push(
            post(
                &http,
                &base,
                &plural_hook(ps, "msg_same", &plural_ref, "AUTHORIZED"),
            )
            .await,
        );
        answers.push(post(&http, &base, &flitt_hook).await);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert!(
        answers.iter().all(|a| a == &Some((200, String::new()))),
        "every resend answered as the first: {answers:?}"
    );
    support::quiet::wait_quiet_on(&ps.nats).await;
    for (p, o) in [(Provider::Plural, &po), (Provider::Flitt, &fo)] {
        ps.wait_status(o, Status::Authorized).await;
        let tr = trail(&ps.journal, o).await;
        assert_eq!(callback_steps(&tr).len(), 1, "applied once: {tr:#?}");
        let v = verdicts_of(&ps.nats, p).await;
        let count = |what: &str| v.iter().filter(|v| v["verdict"] == what).count();
        assert_eq!((count("applied"), count("duplicate")), (1, 2), "{v:#?}");
    }
    // A callback for an order the gateway cannot find yet is refused with a 5xx, so the
    // provider retries it; once the order is known, the retry is applied.
    let unknown_ref = "v1-0000000000-aa-NoSuch";
    let early = plural_hook(ps, "msg_early", unknown_ref, "AUTHORIZED");
    assert_eq!(post(&http, &base, &early).await.map(|a| a.0), Some(503));
    let v = verdicts_of(&ps.nats, Provider::Plural).await;
    assert_eq!(
        v.last().map(|v| v["verdict"].clone()),
        Some(json!("not_applied")),
        "{v:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_crash_in_a_burst_loses_nothing() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let orders = started_orders(ps, Provider::Flitt, 40, CaptureMode::Manual).await;
    // Flitt callbacks are triggers: the gateway applies Flitt's status answer. Flitt has
    // captured every order before the burst, so both callbacks of an order (held, captured),
    // cut or not, and every resend ask for the same answer, captured.
    flitt_orders_at(ps, &orders, FlittAt::Held).await;
    flitt_orders_at(ps, &orders, FlittAt::Captured).await;
    let hooks: Vec<Hook> = orders
        .iter()
        .flat_map(|(o, s)| {
            let pid = s.provider_ref.clone().expect("payment_id");
            [
                flitt_signed(ps, flitt_params(ps, o, &pid, false)),
                flitt_signed(ps, flitt_params(ps, o, &pid, true)),
            ]
        })
        .collect();
    let mut gateway = CrashableGateway::start(ps).await;
    let base = format!("http://{}", gateway.addr);
    let http = reqwest::Client::new();
    let mut inflight = futures::stream::iter(hooks.iter().enumerate())
        .map(|(i, h)| {
            let (http, base) = (http.clone(), base.clone());
            async move { (i, post(&http, &base, h).await) }
        })
        .buffer_unordered(8);
    let mut answered = vec![false; hooks.len()];
    let mut seen = 0;
    while let Some((i, answer)) = inflight.next().await {
        answered[i] = matches!(answer, Some((200, _)));
        seen += 1;
        if seen == 20 {
            gateway.crash();
        }
    }
    let lost = answered.iter().filter(|a| !**a).count();
    assert!(lost > 0, "the crash cut some callbacks");
    gateway.restart().await;
    let base = format!("http://{}", gateway.addr);
    // The provider resends what was not acknowledged (and, to be sure, everything once more).
    let resend: Vec<Hook> = hooks
        .iter()
        .zip(&answered)
        .filter(|(_, a)| !**a)
        .map(|(h, _)| h.clone())
        .collect();
    let again = post_all(&base, &resend, 8).await;
    assert!(
        again.iter().all(|a| matches!(a, Some((200, _)))),
        "{again:?}"
    );
    let all_again = post_all(&base, &hooks, 8).await;
    assert!(all_again.iter().all(|a| matches!(a, Some((200, _)))));
    for (o, _) in &orders {
        let s = ps.wait_status(o, Status::Captured).await;
        assert_eq!(s.captured.0, AMOUNT, "{o}");
        let tr = trail(&ps.journal, o).await;
        let cbs = callback_steps(&tr);
        // One state reported (captured), so one callback command: applied exactly once,
        // whether its trigger was cut by the crash, answered, or resent.
        assert_eq!(cbs.len(), 1, "Flitt's answer applied once: {tr:#?}");
        assert_eq!(cbs[0].signal.as_deref(), Some("captured"), "{tr:#?}");
        assert!(no_discrepancy(&tr), "{tr:#?}");
    }
    println!("gateway crash: {} callbacks, {} acknowledged before the crash cut the rest, {lost} resent after restart", hooks.len(), hooks.len() - lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_and_restarted_provider_retries_deliver() {
    let mut t = Tuned::start(Tuning::default()).await;
    let plural_order = {
        let ps = &t.ps;
        let (po, s) = started_orders(ps, Provider::Plural, 1, CaptureMode::Manual)
            .await
            .remove(0);
        (po, s.provider_ref.expect("ref"))
    };
    let (fo, _) = started_orders(&t.ps, Provider::Flitt, 1, CaptureMode::Manual)
        .await
        .remove(0);
    t.ps.stack.kill_gateway().await;
    t.ps.sandbox
        .approve(Provider::Plural, &plural_order.1)
        .expect("approve");
    t.ps.sandbox
        .approve(Provider::Flitt, fo.as_str())
        .expect("approve");
    let failed_attempts = |p: Provider| {
        t.ps.sandbox
            .deliveries(p)
            .iter()
            .filter(|d| !d.acknowledged)
            .count()
    };
    let started = Instant::now();
    while (failed_attempts(Provider::Plural) < 3 || failed_attempts(Provider::Flitt) < 3)
        && started.elapsed() < WAIT
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        failed_attempts(Provider::Plural) >= 3 && failed_attempts(Provider::Flitt) >= 3,
        "the providers kept trying"
    );
    let gateway = t.restart_gateway().await;
    t.ps.wait_status(&plural_order.0, Status::Authorized).await;
    t.ps.wait_status(&fo, Status::Authorized).await;
    for p in [Provider::Plural, Provider::Flitt] {
        // The answer follows the commit (success only once the signal is in the log): wait
        // for it to reach the provider.
        let started = Instant::now();
        while t.ps.sandbox.totals(p).callbacks_delivered == 0 && started.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let c = t.ps.sandbox.totals(p);
        assert_eq!(
            (c.callbacks_delivered, c.callbacks_abandoned),
            (1, 0),
            "{p}: {c:?}"
        );
        assert!(c.callbacks_resent >= 3, "{p}: {c:?}");
    }
    gateway.shutdown().await;
}

/// Workers answered late by the sandbox (not timed out), so a kill lands mid-call.
fn patient() -> Tuning {
    Tuning {
        request_timeout_ms: 30_000,
        ..Tuning::default()
    }
}

/// The sandbox acts, then holds its answer this long: the workers are killed meanwhile.
const WITHHELD: FaultKind = FaultKind::WithholdResponse { ms: 2_000 };

/// The worker crashes right after `provider` acted (`acted` holds), and a new one takes over.
async fn crash_workers_after(
    t: &mut Tuned,
    provider: Provider,
    acted: impl Fn(&paystate_sandbox::Counters) -> bool,
) {
    wait_effect(t, provider, acted).await;
    t.kill_workers();
    t.restart_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plural_workers_killed_mid_call_lose_nothing_and_act_once() {
    let mut t = Tuned::start(patient()).await;
    const P: Provider = Provider::Plural;
    // Killed while create-payment is answered late: the redelivered start must not pay twice
    // (Plural refuses a second payment on the order) and must show the challenge.
    t.ps.sandbox
        .add_fault(P, FaultRule::once(WITHHELD).on_op(Op::CreatePayment));
    let po = order("plural-kill");
    accept(
        &t.ps.client,
        env(&po, create_for(P, AMOUNT, "INR", CaptureMode::Manual)),
    )
    .await;
    accept(&t.ps.client, env(&po, start())).await;
    crash_workers_after(&mut t, P, |c| c.attempted == 1).await;
    let pending =
        t.ps.wait_until(&po, "challenge shown", |s| s.customer_action.is_some())
            .await;
    let plural_order = pending.provider_ref.expect("ref");
    t.ps.sandbox.approve(P, &plural_order).expect("approve");
    t.ps.wait_status(&po, Status::Authorized).await;
    // Killed while the capture is answered late, its webhook lost: the redelivered capture
    // carries the same merchant_capture_reference and is applied once.
    t.ps.sandbox
        .add_fault(P, FaultRule::once(WITHHELD).on_op(Op::Capture));
    t.ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropCallback).on_order(&plural_order),
    );
    accept(
        &t.ps.client,
        env(
            &po,
            Command::Capture {
                amount: money_in(AMOUNT, "INR"),
            },
        ),
    )
    .await;
    crash_workers_after(&mut t, P, |c| c.captured == 1).await;
    t.ps.wait_status(&po, Status::Captured).await;
    let c = t.ps.sandbox.counters(P, &plural_order);
    assert_eq!(
        (c.created, c.attempted, c.authorized, c.captured),
        (1, 1, 1, 1),
        "Plural acted once each: {c:?}"
    );
    assert_each_command_once(&t.ps.journal.read_order(&po).await.expect("read"));
    assert!(no_discrepancy(&trail(&t.ps.journal, &po).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flitt_workers_killed_mid_refund_lose_nothing_and_act_once() {
    let mut t = Tuned::start(patient()).await;
    const P: Provider = Provider::Flitt;
    let fo = order("flitt-kill");
    accept(
        &t.ps.client,
        env(&fo, create_for(P, AMOUNT, "GEL", CaptureMode::Auto)),
    )
    .await;
    accept(&t.ps.client, env(&fo, start())).await;
    t.ps.wait_until(&fo, "checkout shown", |s| s.customer_action.is_some())
        .await;
    t.ps.sandbox.approve(P, fo.as_str()).expect("approve");
    t.ps.wait_status(&fo, Status::Captured).await;
    callbacks_idle(&t.ps.sandbox).await;
    // Killed while the reverse is answered late, its callback lost: the redelivered refund
    // carries the same reverse_id.
    t.ps.sandbox
        .add_fault(P, FaultRule::once(WITHHELD).on_op(Op::Reverse));
    t.ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::DropCallback).on_order(fo.as_str()),
    );
    accept(
        &t.ps.client,
        env(
            &fo,
            Command::Refund {
                amount: money_in(3_000, "GEL"),
            },
        ),
    )
    .await;
    crash_workers_after(&mut t, P, |c| c.refunded == 1).await;
    let s =
        t.ps.wait_until(&fo, "refunded", |s| s.refunded.0 == 3_000)
            .await;
    assert_eq!(s.status, Status::Captured);
    let c = t.ps.sandbox.counters(P, fo.as_str());
    assert_eq!(
        (c.created, c.captured, c.refunded),
        (1, 1, 1),
        "Flitt acted once each: {c:?}"
    );
    assert_each_command_once(&t.ps.journal.read_order(&fo).await.expect("read"));
    assert!(no_discrepancy(&trail(&t.ps.journal, &fo).await));
}

/// Waits until the provider's totals satisfy `pred` (the provider acted).
async fn wait_effect(t: &Tuned, p: Provider, pred: impl Fn(&paystate_sandbox::Counters) -> bool) {
    let started = Instant::now();
    while !pred(&t.ps.sandbox.totals(p)) {
        assert!(
            started.elapsed() < WAIT,
            "{p} never acted: {:?}",
            t.ps.sandbox.totals(p)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the engine has handled everything sent to `o` before (a marker signal on the
/// signal plane, like callbacks, and its outcome); the state after it.
async fn quiet(ps: &ProviderStack, o: &OrderId, provider: Provider) -> paystate_events::StateView {
    let marker = Command::ProviderSignal {
        signal: paystate_events::ProviderSignal {
            provider,
            provider_ref: None,
            evidence_ref: "test:marker".into(),
            observed_at: chrono::Utc::now(),
            kind: paystate_events::SignalKind::Probed {
                answer: "marker".into(),
            },
        },
    };
    accept(&ps.client, env(o, marker)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_callbacks_re_addressed_by_query_or_path_change_nothing() {
    let ps = ProviderStack::start().await;
    let orders = started_orders(&ps, Provider::Plural, 2, CaptureMode::Manual).await;
    let ((victim, victim_before), (payer, payer_state)) = (&orders[0], &orders[1]);
    let payer_ref = payer_state.provider_ref.clone().expect("Plural order id");
    let hook = plural_hook(&ps, "msg-readdressed", &payer_ref, "AUTHORIZED");
    let http = reqwest::Client::new();
    // Re-addressed by path: another provider's callback route. Its check fails: refused,
    // recorded, never applied.
    for other in [Provider::Flitt, Provider::Exchanger, Provider::Plexy] {
        let mut req = http
            .post(format!("{}/callbacks/{other}", ps.gateway_url()))
            .body(hook.body.clone());
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        let status = req.send().await.expect("sent").status().as_u16();
        assert!((400..500).contains(&status), "{other}: {status}");
        let verdicts = ps.callback_verdicts(other).await;
        assert_eq!(
            verdicts.last().map(|v| v["verdict"].clone()),
            Some(json!("rejected")),
            "{other}: {verdicts:#?}"
        );
    }
    // Re-addressed by query: Plural signs its order id, not our `?order_id=`; the signed
    // reference decides, so the report reaches its own order and only that one.
    let mut req = http
        .post(format!(
            "{}/callbacks/plural?order_id={victim}",
            ps.gateway_url()
        ))
        .body(hook.body.clone());
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.expect("sent").status().as_u16(), 200);
    let authorized = ps.wait_status(payer, Status::Authorized).await;
    assert_eq!(authorized.authorized.0, AMOUNT);
    let after = quiet(&ps, victim, Provider::Plural).await;
    assert_eq!(
        after.status, victim_before.status,
        "the victim did not move"
    );
    assert_eq!((after.authorized.0, after.captured.0), (0, 0));
    assert!(!after.needs_review, "{:#?}", after.discrepancies);
    let verdicts = ps.callback_verdicts(Provider::Plural).await;
    let last = verdicts.last().expect("a verdict");
    assert_eq!(
        (last["verdict"].clone(), last["order_id"].clone()),
        (json!("applied"), json!(payer.as_str()))
    );
}
