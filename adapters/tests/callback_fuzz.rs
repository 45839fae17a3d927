//! Callback fuzzing on stable Rust (issue 11): every provider's callback parser and signature
//! check, through `Adapters::verify_and_parse_callback`, with proptest.
//!
//! Per provider:
//! - arbitrary bytes (and arbitrary headers and query) never panic;
//! - arbitrary content that *is* correctly signed (so it reaches the parsers behind the
//!   signature check) never panics;
//! - mutations of a correctly signed sample (entries reordered, duplicated with the same or
//!   another value, removed, renamed, re-encoded: JSON `\u` escapes and `\/`, number forms
//!   `100`/`100.0`/`1e2`/`"100"`, whitespace, percent-encoding variants and hex case; values
//!   changed, joined across a separator, swapped; the text cut at any byte, a bit flipped, a
//!   byte inserted or deleted; signature headers/fields removed, altered, duplicated, case
//!   changed) never panic, and:
//!   - when the mutation changes what the signature covers (the provider's *signed view*,
//!     computed here independently of the adapter), the callback does not verify;
//!   - whenever it is accepted, its decision (signals, order identity, provider reference,
//!     dedup key, observed time, account) is the unmutated sample's, except where
//!     docs/providers.md says an unsigned field may hold a report back (Paykassma) or the
//!     callback is only a trigger (Plexy, Flitt: `confirm_by_status`, no signed identity;
//!     for Flitt the decision is also the sample's whenever the keyed view is unchanged).
//!
//! Default run: a few thousand cases per provider (well under a minute in a debug build):
//!     cargo test -p paystate-adapters --test callback_fuzz
//! Longer run (every property, N cases each):
//!     PROPTEST_CASES=50000 cargo test -p paystate-adapters --release --test callback_fuzz
//! Failures are not persisted (`failure_persistence: None`): a failing case is printed with
//! its seed-independent mutation plan; add it as a regression test.

#[path = "callback_fuzz/model.rs"]
mod model;

use model::{
    mutate_bytes, mutate_headers, mutate_json_text, obj, plan, raw, s, Form, Ordered, Plan, J,
};
use paystate_adapters::{Adapters, AdaptersConfig, CallbackError, InboundCallback};
use paystate_events::{Provider, SignalKind, Timestamp};
use proptest::prelude::*;
use std::sync::OnceLock;

fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp(1_721_381_603, 0).expect("valid time")
}

const PLURAL_WEBHOOK_SECRET: &str = "my_plural_secret";
const PLURAL_RETURN_HEX: &str = "00112233445566778899aabbccddeeff";
const PAYKASSMA_ACCESS: &str = "uowkn0b3LfBxpcWYHi4_";
const PAYKASSMA_PRIVATE: &str = "PRIVATE_test_key_1";
const EXCHANGER_SECRET: &str = "ipn-secret-1";
const FLITT_PASSWORD: &str = "test";
const PLEXY_TOKEN: &str = "whk_1";

fn adapters() -> &'static Adapters {
    static A: OnceLock<Adapters> = OnceLock::new();
    A.get_or_init(|| {
        let text = format!(
            r#"
            [plural]
            base_url = "http://127.0.0.1:1"
            [plural.accounts.default]
            client_id = "cid"
            client_secret = "cs-secret-1"
            webhook_secret = "{PLURAL_WEBHOOK_SECRET}"
            return_url_secret_hex = "{PLURAL_RETURN_HEX}"
            [paykassma]
            base_url = "http://127.0.0.1:1"
            [paykassma.accounts.default]
            plugin_secret = "plugin-secret-1"
            access_key = "{PAYKASSMA_ACCESS}"
            private_key = "{PAYKASSMA_PRIVATE}"
            [exchanger]
            base_url = "http://127.0.0.1:1"
            [exchanger.accounts.default]
            partner = "p"
            route_id = "r"
            ipn_secret = "{EXCHANGER_SECRET}"
            [flitt]
            base_url = "http://127.0.0.1:1"
            [flitt.accounts.default]
            merchant_id = 1549901
            password = "{FLITT_PASSWORD}"
            [plexy]
            base_url = "http://127.0.0.1:1"
            [plexy.accounts.default]
            api_key = "plexy-key-1"
            webhook_token = "{PLEXY_TOKEN}"
            "#
        );
        let config: AdaptersConfig = toml::from_str(&text).expect("valid config");
        Adapters::new(config).expect("valid adapters")
    })
}

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What a verified callback decides: everything the gateway acts on except the unsigned
/// routing hint.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    account: String,
    order_id: Option<String>,
    provider_ref: Option<String>,
    dedup_key: Option<String>,
    observed_at: Option<Timestamp>,
    signals: Vec<SignalKind>,
    confirm_by_status: bool,
}

fn run(
    provider: Provider,
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
) -> Result<Decision, CallbackError> {
    let cb = InboundCallback {
        headers,
        query,
        body,
    };
    adapters()
        .verify_and_parse_callback(provider, &cb, t0())
        .map(|p| Decision {
            account: p.merchant_account,
            order_id: p.hint.order_id.map(|o| o.to_string()),
            provider_ref: p.hint.provider_ref,
            dedup_key: p.dedup_key,
            observed_at: p.observed_at,
            signals: p.signals,
            confirm_by_status: p.confirm_by_status,
        })
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The first header named `name` (case-insensitive), as the adapters read it.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A JSON sample mutated by `plan`: structure, then text, then bytes.
fn mutate_json(sample: &J, p: &Plan) -> Vec<u8> {
    let mut j = sample.clone();
    for m in &p.structural {
        j.mutate(*m);
    }
    let mut text = j.render();
    for m in &p.text {
        text = mutate_json_text(&text, *m);
    }
    let mut bytes = text.into_bytes();
    for m in &p.bytes {
        mutate_bytes(&mut bytes, *m);
    }
    bytes
}

/// A form sample mutated by `plan`: structure, then bytes.
fn mutate_form(sample: &Form, p: &Plan) -> Vec<u8> {
    let mut f = sample.clone();
    for m in &p.structural {
        f.mutate(*m);
    }
    let mut bytes = f.render().into_bytes();
    for m in &p.bytes {
        mutate_bytes(&mut bytes, *m);
    }
    bytes
}

fn mutated_headers(sample: &[(String, String)], p: &Plan) -> Vec<(String, String)> {
    let mut out = sample.to_vec();
    for m in &p.headers {
        mutate_headers(&mut out, *m);
    }
    out
}

fn form_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(bytes).ok()
}

/// Arbitrary headers: the names the adapters read (any case) with arbitrary values.
fn arbitrary_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = prop::sample::select(vec![
        "authorization",
        "Authorization",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-signature",
        "x-other",
    ]);
    let values = prop_oneof![
        ".{0,40}",
        Just("application/x-www-form-urlencoded".to_string()),
        Just("application/json".to_string()),
        Just(format!("Bearer {PLEXY_TOKEN}")),
        Just("1721381603".to_string()),
        Just("v1,AAAA v1,".to_string()),
    ];
    prop::collection::vec((names.prop_map(str::to_string), values), 0..6)
}

fn arbitrary_json(keys: &'static [&'static str]) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[0-9]{0,22}".prop_map(Value::String),
        "[0-9]{1,6}\\.[0-9]{0,4}".prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "approved",
            "declined",
            "reversed",
            "expired",
            "processing",
            "created",
            "captured",
            "hold",
            "Y",
            "ingoing",
            "fail",
            "done",
            "returned",
            "errorPayout",
            "PROCESSED",
            "AUTHORIZED",
            "ORDER_PROCESSED",
            "charged",
            "authorized",
            "transaction.charged",
            "transaction.",
            "USD",
            "GEL",
            "INR",
            "BTN",
            "UAH",
            "XXX",
            "purchase",
            "reverse",
            "capture",
            "ord-1",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let key = prop::sample::select(keys).prop_map(str::to_string);
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys every provider reads (so arbitrary JSON reaches their parsers' branches).
const KEYS: &[&str] = &[
    "name",
    "merchantId",
    "data",
    "id",
    "status",
    "amount",
    "processedAmount",
    "currency",
    "merchantReference",
    "orderReference",
    "event_type",
    "order_id",
    "merchant_order_reference",
    "challenge_url",
    "order_amount",
    "value",
    "payments",
    "capture_data",
    "capture_amount",
    "merchant_capture_reference",
    "error_detail",
    "code",
    "message",
    "signature",
    "access_key",
    "additional_data",
    "direction",
    "transaction_id",
    "plugin_custom_order_id",
    "currency_code",
    "withdrawal_id",
    "order_status",
    "payment_id",
    "tran_type",
    "capture_status",
    "reversal_amount",
    "preauth",
    "merchant_id",
    "response",
    "response_code",
    "response_description",
];

// =======================================================================================
// Arbitrary input: never a panic, for every provider.
// =======================================================================================

const PROVIDERS: [Provider; 5] = [
    Provider::Plexy,
    Provider::Paykassma,
    Provider::Plural,
    Provider::Exchanger,
    Provider::Flitt,
];

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        query in ".{0,80}",
        headers in arbitrary_headers(),
    ) {
        for provider in PROVIDERS {
            let _ = run(provider, &headers, &query, &body);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(
        v in arbitrary_json(KEYS),
        headers in arbitrary_headers(),
    ) {
        let body = v.to_string();
        let mut with_token = headers.clone();
        with_token.push(("authorization".into(), format!("Bearer {PLEXY_TOKEN}")));
        for provider in PROVIDERS {
            let _ = run(provider, &headers, "", body.as_bytes());
            let _ = run(provider, &with_token, "", body.as_bytes());
        }
        let form: Vec<(String, String)> = match &v {
            serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
            _ => vec![],
        };
        let form = serde_urlencoded::to_string(&form).unwrap_or_default();
        let ct = h(&[("content-type", "application/x-www-form-urlencoded")]);
        for provider in PROVIDERS {
            let _ = run(provider, &ct, &form, form.as_bytes());
        }
    }

    /// Arbitrary content behind a valid signature reaches every parser: never a panic.
    #[test]
    fn signed_arbitrary_content_never_panics(
        v in arbitrary_json(KEYS),
        fields in prop::collection::vec((prop::sample::select(exchanger::SIGNED.to_vec()), ".{0,12}"), 0..10),
        ts_offset in -400i64..400,
    ) {
        // Plural webhook: any body, signed.
        let body = v.to_string();
        let ts = (t0().timestamp() + ts_offset).to_string();
        let sig = paystate_adapters::plural::signature::webhook_signature(
            PLURAL_WEBHOOK_SECRET, "msg_1", &ts, body.as_bytes());
        let hs = h(&[("webhook-id", "msg_1"), ("webhook-timestamp", &ts), ("webhook-signature", &sig)]);
        let _ = run(Provider::Plural, &hs, "", body.as_bytes());
        // Paykassma: any additional_data, signed.
        let ad = v.to_string();
        let sig = paystate_adapters::paykassma::signature::postback_signature(
            PAYKASSMA_ACCESS, PAYKASSMA_PRIVATE, &ad);
        let pb = format!(r#"{{"signature":"{sig}","access_key":"{PAYKASSMA_ACCESS}","additional_data":{ad}}}"#);
        let _ = run(Provider::Paykassma, &[], "", pb.as_bytes());
        // Flitt: any object, signed.
        if let serde_json::Value::Object(mut m) = v.clone() {
            m.remove("response");
            let sig = paystate_adapters::flitt::signature::sign(FLITT_PASSWORD, &m);
            m.insert("signature".into(), sig.into());
            let body = serde_json::Value::Object(m).to_string();
            let _ = run(Provider::Flitt, &[], "", body.as_bytes());
        }
        // Exchanger: any values of the signed fields, signed.
        let mut form = Form::new(&fields.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        let pairs: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let sig = exchanger::view(&pairs).sign();
        form.pairs.push(("sign".into(), sig));
        let _ = run(Provider::Exchanger, &[], "order_id=ord-1", form.render().as_bytes());
        // Plural return: any fields, signed.
        let ret: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Ok(sig) = paystate_adapters::plural::signature::return_url_signature(PLURAL_RETURN_HEX, &ret) {
            let mut q = Form::new(&ret);
            q.pairs.push(("signature".into(), sig));
            let _ = run(Provider::Plural, &[], &q.render(), b"");
        }
    }
}

// =======================================================================================
// Plexy: nothing in the body is signed; every accepted webhook is only a trigger.
// =======================================================================================

#[path = "callback_fuzz/plexy.rs"]
mod plexy;

// =======================================================================================
// Paykassma: only `additional_data` (as received, compacted) is signed.
// =======================================================================================

#[path = "callback_fuzz/paykassma.rs"]
mod paykassma;

// =======================================================================================
// Plural: webhooks (HMAC over id.timestamp.body) and return URLs (HMAC over sorted k=v).
// =======================================================================================

#[path = "callback_fuzz/plural.rs"]
mod plural;

// =======================================================================================
// Exchanger: SHA-256 over orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp.
// =======================================================================================

#[path = "callback_fuzz/exchanger.rs"]
mod exchanger;

// =======================================================================================
// Flitt: SHA-1 over the password and every non-empty value, in key order, joined with `|`.
// =======================================================================================

#[path = "callback_fuzz/flitt.rs"]
mod flitt;
