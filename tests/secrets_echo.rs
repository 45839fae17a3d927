//! Issue 11, problem 5: a provider that quotes our request back in its error answer must not
//! get our credentials into anything paystate writes.
//!
//! Every provider's sandbox runs with the `echo_request` fault (its validation error quotes
//! method, path and query, headers and body: API keys, `?secret=`, client secret, IPN
//! secret...), and one order per provider is driven into that answer, so it becomes a
//! failure. Then everything paystate wrote is searched for every configured secret, raw,
//! URL-encoded (`%XX` both cases, `+`), JSON-escaped, hex and base64 (both alphabets, any
//! alignment, so also inside a basic-auth `user:password`):
//! - every message of every JetStream stream of the account: the log, commands, callbacks,
//!   dead letters, and the streams behind every KV bucket (outcomes, projection, refs,
//!   callbacks seen) and object store (attachments), subjects and headers included;
//! - the tracing output of the whole run (every paystate crate at TRACE);
//! - the gateway's HTTP answers: `GET /orders/{id}` and `GET /orders` (private listener).

mod support;

use futures::StreamExt as _;
use paystate_events::{CaptureMode, Provider};
use paystate_sandbox::faults::{FaultKind, FaultRule, Op};
use paystate_sandbox::{SandboxConfig, TimeScale};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use support::providers::*;
use support::*;

/// Secrets with the characters encoders treat specially (space, `+ / = % "` and quotes).
fn sandbox_config() -> SandboxConfig {
    let mut c = SandboxConfig {
        time_scale: TimeScale::MILLIS,
        ..Default::default()
    };
    c.plexy.api_key = "plexy-API key+/=%41\"q\"-0001".into();
    c.plexy.webhook_token = "plexy-hook+token/=-0002".into();
    c.paykassma.api_secret = "pk-plugin secret+/=%&?#'x'-0003".into();
    c.paykassma.private_key = "pk-private+key/=-0004".into();
    c.plural.client_secret = "plural-client secret+/=%\"-0005".into();
    c.plural.webhook_secret = "plural-webhook-secret-0006".into();
    c.exchanger.api_key = "exchanger-api key+/=%-0007".into();
    c.flitt.password = "flitt-password+/= \"-0008".into();
    c
}

// ---- captured tracing output ----

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn capture_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        // Everything paystate logs; the sandbox stands for the provider and is not ours.
        let filter = tracing_subscriber::EnvFilter::new(
            "info,paystate=trace,paystate_adapters=trace,paystate_workers=trace,\
             paystate_gateway=trace,paystate_service=trace,paystate_journal=trace,\
             paystate_projection=trace,paystate_sandbox=off",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(logs.clone())
            .try_init();
        logs
    })
}

// ---- encoded forms, written independently of the redactor ----

fn percent(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Base64 without padding, in the standard or the URL-safe alphabet.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The base64 characters that depend on the secret alone, at each byte alignment.
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..3usize {
        let mut buf = vec![b'A'; k];
        buf.extend_from_slice(secret);
        buf.extend_from_slice(b"AA");
        let first = (8 * k).div_ceil(6);
        let end = 8 * (k + secret.len()) / 6;
        for url_safe in [false, true] {
            out.push(base64(&buf, url_safe)[first..end].to_string());
        }
    }
    out
}

/// `(form name, text)` for every form of `secret` searched for.
fn forms(secret: &str) -> Vec<(String, String)> {
    let json = serde_json::to_string(secret).expect("a string");
    let mut out = vec![
        ("raw".to_string(), secret.to_string()),
        ("%XX".to_string(), percent(secret, true)),
        ("%xx".to_string(), percent(secret, false)),
        (
            "form +".to_string(),
            percent(secret, true).replace("%20", "+"),
        ),
        ("json".to_string(), json[1..json.len() - 1].to_string()),
        ("hex".to_string(), hex(secret.as_bytes())),
    ];
    for core in base64_cores(secret.as_bytes()) {
        out.push(("base64".to_string(), core));
    }
    out
}

/// Every place a form of a secret was found: `(where, secret, form)`.
fn search(
    found: &mut Vec<String>,
    place: &str,
    haystack: &[u8],
    secrets: &[(String, Vec<(String, String)>)],
) {
    let text = String::from_utf8_lossy(haystack);
    for (secret, forms) in secrets {
        for (name, form) in forms {
            if text.contains(form.as_str()) {
                let at = text.find(form.as_str()).unwrap_or(0);
                let from = text.floor_char_boundary(at.saturating_sub(80));
                let to = text.ceil_char_boundary((at + form.len() + 80).min(text.len()));
                found.push(format!(
                    "{place}: secret {secret:?} as {name} {form:?}: …{}…",
                    &text[from..to]
                ));
            }
        }
    }
}

/// Every message (subject, headers, payload) of every stream of the account.
async fn every_stream_message(nats: &async_nats::Client) -> Vec<(String, Vec<u8>)> {
    let js = async_nats::jetstream::new(nats.clone());
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    assert!(
        names.iter().any(|n| n == "PAYSTATE_EVENTS"),
        "the log is among {names:?}"
    );
    let mut out = Vec::new();
    for name in names {
        let mut stream = js.get_stream(&name).await.expect("stream");
        let info = stream.info().await.expect("stream info").state.clone();
        if info.messages == 0 {
            continue;
        }
        for seq in info.first_sequence..=info.last_sequence {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue; // deleted or expired
            };
            let mut bytes = m.subject.as_bytes().to_vec();
            bytes.extend_from_slice(format!(" {:?} ", m.headers).as_bytes());
            bytes.extend_from_slice(&m.payload);
            out.push((format!("{name}#{seq}"), bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echoed_credentials_reach_nothing_paystate_writes() {
    let logs = capture_logs();
    let ps = ProviderStack::start_with(sandbox_config(), fast_reconciler()).await;
    let adapters = ps.adapters();
    let secrets: Vec<(String, Vec<(String, String)>)> =
        paystate_adapters::redact::configured_secrets(adapters.config())
            .into_iter()
            .map(|s| (s.expose().to_string(), forms(s.expose())))
            .collect();
    assert!(
        secrets.len() >= 10,
        "every provider's secrets: {}",
        secrets.len()
    );

    // Plural's token request carries the client secret: echo it once (the work is retried
    // with a fresh token), then echo the order create, which fails the order.
    let echo = || FaultRule::once(FaultKind::EchoRequest);
    ps.sandbox
        .add_fault(Provider::Plural, echo().on_op(Op::Token));
    let cases = [
        (Provider::Plexy, "GEL", Op::Create),
        (Provider::Paykassma, "BTN", Op::Create),
        (Provider::Plural, "INR", Op::Create),
        (Provider::Exchanger, "USD", Op::Create),
        (Provider::Flitt, "UAH", Op::Create),
    ];
    let mut orders = Vec::new();
    for (provider, currency, op) in cases {
        ps.sandbox.add_fault(provider, echo().on_op(op));
        let o = order(&format!("echo-{provider}"));
        accept(
            &ps.client,
            env(
                &o,
                create_for(provider, 30_000, currency, CaptureMode::Auto),
            ),
        )
        .await;
        let initiation = paystate_events::PaymentInitiation {
            customer_id: Some(o.to_string()),
            return_url: Some("https://shop.example/return".into()),
            ..Default::default()
        };
        accept(
            &ps.client,
            env(&o, paystate_events::Command::StartPayment { initiation }),
        )
        .await;
        orders.push((provider, o));
    }
    for (provider, o) in &orders {
        let state = ps
            .wait_until(o, "failed by the echoed error", |s| s.failure.is_some())
            .await;
        let failure = serde_json::to_string(&state.failure).expect("JSON");
        assert!(
            failure.contains("invalid request"),
            "{provider}: the echo became the failure: {failure}"
        );
        ps.sandbox.clear_faults(*provider);
    }
    // Let the projector and everything else catch up before reading.
    support::quiet::wait_quiet_on(&ps.nats).await;

    let mut found = Vec::new();
    let nats = ps.nats.connect().await;
    let messages = every_stream_message(&nats).await;
    assert!(messages.len() > 10, "read {} messages", messages.len());
    for (place, bytes) in &messages {
        search(&mut found, place, bytes, &secrets);
    }

    let http = reqwest::Client::new();
    let key = &test_keys().read;
    let mut answers = vec![format!("{}/orders", ps.private_url())];
    for (_, o) in &orders {
        answers.push(format!("{}/orders/{o}", ps.private_url()));
    }
    for url in answers {
        let resp = http
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .expect("answered");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        let body = resp.bytes().await.expect("body");
        search(&mut found, &format!("GET {url}"), &body, &secrets);
    }

    let log_text = logs.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!log_text.is_empty(), "logs were captured");
    search(&mut found, "tracing logs", &log_text, &secrets);

    assert!(
        found.is_empty(),
        "{} secret(s) found in what paystate wrote:\n{}",
        found.len(),
        found.join("\n")
    );

    // The echoes did go through the redactor: what they quoted is marked, not dropped.
    let everything: String = messages
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .chain([String::from_utf8_lossy(&log_text).into_owned()])
        .collect();
    assert!(
        everything.contains("[redacted]"),
        "the echoed credentials were replaced by the marker"
    );
    ps.sandbox.clear_faults(Provider::Plural);
}
