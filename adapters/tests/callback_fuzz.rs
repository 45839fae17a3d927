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

mod plexy {
    use super::*;

    pub fn sample() -> (J, Vec<(String, String)>) {
        let j = obj(vec![
            ("name", s("transaction.charged")),
            ("merchantId", s("m")),
            (
                "data",
                obj(vec![
                    ("id", s("tx_1")),
                    ("status", s("charged")),
                    ("amount", raw("999")),
                    ("processedAmount", raw("999")),
                    ("currency", s("USD")),
                    ("merchantReference", s("ord-1")),
                ]),
            ),
        ]);
        let headers = h(&[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {PLEXY_TOKEN}")),
        ]);
        (j, headers)
    }

    /// What authenticates a Plexy webhook: the bearer token (no body field is covered).
    pub fn token_ok(headers: &[(String, String)]) -> bool {
        header(headers, "authorization").is_some_and(|v| {
            v.trim().split_once(' ').is_some_and(|(scheme, t)| {
                scheme.eq_ignore_ascii_case("bearer") && t.trim() == PLEXY_TOKEN
            })
        })
    }

    /// Regression: a scalar `data` panicked (`Value` indexed by key) behind a valid token.
    #[test]
    fn scalar_data_is_malformed_not_a_panic() {
        let (_, headers) = sample();
        for body in [
            &br#"{"name":"transaction.charged","data":1}"#[..],
            br#"{"name":"transaction.x","data":"s"}"#,
        ] {
            assert!(matches!(
                run(Provider::Plexy, &headers, "", body),
                Err(CallbackError::Malformed { .. })
            ));
        }
    }

    proptest! {
        #![proptest_config(config(2500))]

        #[test]
        fn mutated_webhook(p in plan()) {
            let (sample, headers) = sample();
            let original = run(Provider::Plexy, &headers, "", sample.render().as_bytes())
                .expect("the sample verifies");
            prop_assert!(original.confirm_by_status);
            let body = mutate_json(&sample, &p);
            let hs = mutated_headers(&headers, &p);
            if let Ok(d) = run(Provider::Plexy, &hs, "order_id=ord-2", &body) {
                prop_assert!(token_ok(&hs), "accepted without the token");
                // A trigger: nothing of the unsigned body is signed identity or money state
                // the gateway applies (it applies the status query's answer).
                prop_assert!(d.confirm_by_status);
                prop_assert_eq!(d.order_id, None);
                prop_assert_eq!(d.provider_ref, None);
                prop_assert_eq!(d.account, "default");
            }
        }
    }
}

// =======================================================================================
// Paykassma: only `additional_data` (as received, compacted) is signed.
// =======================================================================================

mod paykassma {
    use super::*;
    use paystate_adapters::paykassma::signature::{compact_json_as_received, postback_signature};

    fn additional_data() -> J {
        J::Arr(vec![obj(vec![
            ("activated_datetime", s("2026-01-27 09:32:01")),
            ("exchanger_identifier", raw("null")),
            ("comment", s("a/b \u{00e9}")),
            ("amount", s("300")),
            ("currency_code", s("BTN")),
            ("wallet_type", s("bnb_ml")),
            ("stockpiling_id", raw("12057")),
            ("transaction_id", s("293397556789")),
            ("transaction_type", raw("0")),
            ("plugin_custom_order_id", s("ord-1.act.a1")),
            ("withdrawal_id", raw("null")),
            ("withdrawal_status", raw("null")),
            ("account_number", s("")),
            (
                "bank_details",
                obj(vec![("bank_code", s("")), ("branch_code", s(""))]),
            ),
        ])])
    }

    pub fn sample() -> J {
        let ad = additional_data();
        let compact = ad.render();
        assert_eq!(
            compact_json_as_received(&compact).expect("valid"),
            compact,
            "the sample renders compactly, as PHP does"
        );
        let sig = postback_signature(PAYKASSMA_ACCESS, PAYKASSMA_PRIVATE, &compact);
        obj(vec![
            ("signature", s(&sig)),
            ("wallet_type", s("bnb_ml")),
            ("amount", raw("300")),
            ("currency_code", s("BTN")),
            ("direction", s("ingoing")),
            ("access_key", s(PAYKASSMA_ACCESS)),
            ("additional_data", ad),
        ])
    }

    /// What the signature covers: the body's `access_key` and `additional_data` as an
    /// ordered tree (key order, duplicates and number kinds kept). `None`: no such body.
    pub fn view(body: &[u8]) -> Option<(Ordered, Ordered)> {
        let top: Ordered = serde_json::from_slice(body).ok()?;
        Some((
            top.get("access_key")?.clone(),
            top.get("additional_data")?.clone(),
        ))
    }

    /// The documented exception: an unsigned `status`/`direction` holds the report back
    /// (recorded as unrecognised, keyed apart from the credit).
    fn held(d: &Decision, original: &Decision) -> bool {
        matches!(d.signals.as_slice(), [SignalKind::Unrecognised { raw_status }] if raw_status.starts_with("unsigned "))
            && d.dedup_key
                .as_deref()
                .is_some_and(|k| k.starts_with("293397556789:held:"))
            && (d.order_id.as_ref(), d.provider_ref.as_ref())
                == (original.order_id.as_ref(), original.provider_ref.as_ref())
    }

    proptest! {
        #![proptest_config(config(3000))]

        #[test]
        fn mutated_postback(p in plan()) {
            let sample = sample();
            let body0 = sample.render();
            let original = run(Provider::Paykassma, &[], "", body0.as_bytes()).expect("the sample verifies");
            prop_assert_eq!(original.dedup_key.as_deref(), Some("293397556789:credited"));
            let body = mutate_json(&sample, &p);
            let hs = mutated_headers(&[], &p);
            let result = run(Provider::Paykassma, &hs, "", &body);
            if view(&body) != view(body0.as_bytes()) {
                prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
            }
            if let Ok(d) = result {
                prop_assert!(d == original || held(&d, &original), "decision changed: {:?}", d);
            }
        }
    }
}

// =======================================================================================
// Plural: webhooks (HMAC over id.timestamp.body) and return URLs (HMAC over sorted k=v).
// =======================================================================================

mod plural {
    use super::*;
    use paystate_adapters::plural::signature::{return_url_signature, webhook_signature};

    const ID: &str = "msg_2mN8kYx1";

    pub fn webhook_sample() -> (J, Vec<(String, String)>) {
        let j = obj(vec![
            ("event_type", s("ORDER_PROCESSED")),
            (
                "data",
                obj(vec![
                    ("order_id", s("v1-5757575757-aa-hU1rUd")),
                    ("merchant_order_reference", s("ord-1")),
                    ("status", s("PROCESSED")),
                    (
                        "order_amount",
                        obj(vec![("value", raw("1100")), ("currency", s("INR"))]),
                    ),
                    (
                        "payments",
                        J::Arr(vec![obj(vec![
                            ("id", s("v1-pay-1")),
                            ("status", s("PROCESSED")),
                            (
                                "capture_data",
                                J::Arr(vec![obj(vec![
                                    ("merchant_capture_reference", s("ord-1-cap-c1")),
                                    (
                                        "capture_amount",
                                        obj(vec![("value", raw("1100")), ("currency", s("INR"))]),
                                    ),
                                ])]),
                            ),
                        ])]),
                    ),
                ]),
            ),
        ]);
        let ts = t0().timestamp().to_string();
        let sig = webhook_signature(PLURAL_WEBHOOK_SECRET, ID, &ts, j.render().as_bytes());
        let headers = h(&[
            ("content-type", "application/json"),
            ("webhook-id", ID),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &sig),
        ]);
        (j, headers)
    }

    /// What a webhook signature covers: the id, the timestamp and the body bytes.
    fn webhook_view(
        headers: &[(String, String)],
        body: &[u8],
    ) -> (Option<String>, Option<String>, Vec<u8>) {
        (
            header(headers, "webhook-id").map(str::to_string),
            header(headers, "webhook-timestamp").map(str::to_string),
            body.to_vec(),
        )
    }

    pub fn return_sample(which: usize) -> Form {
        let mut fields = vec![("order_id", "v1-4405071524-aa-qlAtAf")];
        if which % 2 == 0 {
            fields.push(("status", "AUTHORIZED"));
        } else {
            fields.push(("status", "FAILED"));
            fields.push(("error_code", "PAYMENT_DECLINED"));
            fields.push(("error_message", "Card declined by issuer"));
        }
        let sig = return_url_signature(PLURAL_RETURN_HEX, &fields).expect("hex key");
        let sig = if which % 4 >= 2 {
            sig.to_lowercase()
        } else {
            sig
        };
        fields.push(("signature", &sig));
        Form::new(&fields)
    }

    /// What a return-URL signature covers: every received field but `signature`, as
    /// (key, value), ordered by key (same-key fields in received order).
    fn return_view(query: &[u8]) -> Option<Vec<(String, String)>> {
        let mut pairs: Vec<(String, String)> = form_pairs(query)?
            .into_iter()
            .filter(|(k, _)| k != "signature")
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Some(pairs)
    }

    proptest! {
        #![proptest_config(config(2500))]

        #[test]
        fn mutated_webhook(p in plan()) {
            let (sample, headers) = webhook_sample();
            let body0 = sample.render();
            let original = run(Provider::Plural, &headers, "", body0.as_bytes()).expect("the sample verifies");
            let body = mutate_json(&sample, &p);
            let hs = mutated_headers(&headers, &p);
            let result = run(Provider::Plural, &hs, "", &body);
            if header(&hs, "webhook-signature").is_some()
                && webhook_view(&hs, &body) != webhook_view(&headers, body0.as_bytes())
            {
                prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
            }
            if let Ok(d) = result {
                prop_assert_eq!(d, original);
            }
        }

        #[test]
        fn mutated_return_url(which in 0usize..4, p in plan()) {
            let sample = return_sample(which);
            let q0 = sample.render();
            let original = run(Provider::Plural, &[], &q0, b"").expect("the sample verifies");
            let q = mutate_form(&sample, &p);
            let q = String::from_utf8_lossy(&q).into_owned();
            let result = run(Provider::Plural, &[], &q, b"");
            // The signed message is `k=v` pairs joined with `&`, not encoded: pairs can be
            // merged (`error_code=A%26error_message%3DB`) and still verify. Such a change of
            // the signed view is allowed only with the very same decision.
            if let Ok(d) = result {
                prop_assert_eq!(d, original, "view changed: {}", return_view(q.as_bytes()) != return_view(q0.as_bytes()));
            }
        }
    }
}

// =======================================================================================
// Exchanger: SHA-256 over orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp.
// =======================================================================================

mod exchanger {
    use super::*;
    use paystate_adapters::exchanger::signature::IpnFields;

    /// The signed fields, in the documented order.
    pub const SIGNED: [&str; 7] = [
        "orderId",
        "newStatus",
        "inAmount",
        "outAmount",
        "xml_from",
        "xml_to",
        "timestamp",
    ];

    /// The signed view: the first value of each signed field (empty when absent).
    pub struct View(pub [String; 7]);

    impl View {
        pub fn sign(&self) -> String {
            let f = &self.0;
            IpnFields {
                order_id: &f[0],
                new_status: &f[1],
                in_amount: &f[2],
                out_amount: &f[3],
                xml_from: &f[4],
                xml_to: &f[5],
                timestamp: &f[6],
            }
            .sign(EXCHANGER_SECRET)
        }
    }

    pub fn view(pairs: &[(String, String)]) -> View {
        View(SIGNED.map(|k| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }))
    }

    pub fn sample(which: usize) -> (Form, Vec<(String, String)>) {
        let fields = [
            ("orderUID", "1409"),
            ("orderId", "65a1f0c2e4b0a1b2c3d4e5f6"),
            (
                "newStatus",
                ["done", "inProgressPayout", "errorPayout", "returned"][which % 4],
            ),
            ("inAmount", "100.50"),
            ("outAmount", "0.00153"),
            ("xml_from", "UAH"),
            ("xml_to", "BTC"),
            ("timestamp", "1717171717"),
        ];
        let pairs: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sig = view(&pairs).sign();
        let sig = if which / 4 % 2 == 1 {
            sig.to_uppercase()
        } else {
            sig
        };
        let mut form = Form::new(&fields);
        let mut headers = h(&[("content-type", "application/x-www-form-urlencoded")]);
        if which / 8 % 2 == 0 {
            form.pairs.push(("sign".into(), sig));
        } else {
            headers.push(("x-signature".into(), sig));
        }
        (form, headers)
    }

    proptest! {
        #![proptest_config(config(3000))]

        #[test]
        fn mutated_ipn(which in 0usize..16, p in plan()) {
            let (sample, headers) = sample(which);
            let body0 = sample.render();
            let original = run(Provider::Exchanger, &headers, "order_id=ord-1", body0.as_bytes())
                .expect("the sample verifies");
            let body = mutate_form(&sample, &p);
            let hs = mutated_headers(&headers, &p);
            let result = run(Provider::Exchanger, &hs, "order_id=ord-2", &body);
            let v0 = view(&form_pairs(body0.as_bytes()).unwrap_or_default()).0;
            if let Some(pairs) = form_pairs(&body) {
                if view(&pairs).0 != v0 {
                    prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
                }
            }
            if let Ok(d) = result {
                prop_assert_eq!(d, original);
            }
        }
    }
}

// =======================================================================================
// Flitt: SHA-1 over the password and every non-empty value, in key order, joined with `|`.
// =======================================================================================

mod flitt {
    use super::*;
    use serde_json::{Map, Value};
    use std::collections::BTreeMap;

    /// The callback of a held preauth (the sandbox's `order_params`, signed).
    pub fn params(which: usize) -> Vec<(&'static str, String)> {
        let (status, capture_status, capture_amount, tran_type, reversal) = match which % 3 {
            0 => ("approved", "hold", "0", "purchase", "0"),
            1 => ("approved", "captured", "12500", "capture", "0"),
            _ => ("approved", "", "0", "purchase", "0"),
        };
        vec![
            ("order_id", "ord-1".into()),
            ("merchant_id", "1549901".into()),
            ("amount", "12500".into()),
            ("currency", "GEL".into()),
            ("order_status", status.into()),
            ("response_status", "success".into()),
            ("tran_type", tran_type.into()),
            ("payment_id", "150009301".into()),
            ("actual_amount", "12500".into()),
            ("actual_currency", "GEL".into()),
            ("reversal_amount", reversal.into()),
            ("settlement_amount", "0".into()),
            ("settlement_currency", "".into()),
            ("preauth", if which % 3 == 2 { "N" } else { "Y" }.into()),
            ("capture_status", capture_status.into()),
            ("capture_amount", capture_amount.into()),
            ("approval_code", "123456".into()),
            ("rrn", "111111111111".into()),
            ("masked_card", "".into()),
            ("card_bin", "".into()),
            ("order_time", "21.01.2024 12:00:00".into()),
            ("order_desc", "Order ord-1".into()),
            ("response_code", "".into()),
            ("merchant_data", "".into()),
            ("payment_system", "paybypayme".into()),
        ]
    }

    fn signed_map(which: usize) -> Map<String, Value> {
        let mut m: Map<String, Value> = params(which)
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        let sig = paystate_adapters::flitt::signature::sign(FLITT_PASSWORD, &m);
        m.insert("signature".into(), Value::String(sig));
        m
    }

    pub fn json_sample(which: usize) -> J {
        let mut entries: Vec<(&str, J)> = params(which)
            .into_iter()
            .map(|(k, v)| {
                let j = if k == "merchant_id" || k == "payment_id" {
                    raw(&v)
                } else {
                    s(&v)
                };
                (k, j)
            })
            .collect();
        let sig = signed_map(which)["signature"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        entries.push(("signature", s(&sig)));
        if which / 3 % 2 == 1 {
            obj(vec![("response", obj(entries))])
        } else {
            obj(entries)
        }
    }

    pub fn form_sample(which: usize) -> Form {
        let m = signed_map(which);
        let pairs: Vec<(String, String)> = params(which)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain([(
                "signature".to_string(),
                m["signature"].as_str().unwrap_or_default().to_string(),
            )])
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Form::new(&refs)
    }

    fn text(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// The parameters as the adapter reads them (last of duplicates; the `response`
    /// wrapper of a JSON body dropped), or `None` when the body is unreadable.
    fn params_of(body: &[u8], form: bool) -> Option<Map<String, Value>> {
        if form {
            let pairs = form_pairs(body)?;
            return Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            );
        }
        match serde_json::from_slice::<Value>(body).ok()? {
            Value::Object(mut m) => match m.remove("response") {
                Some(Value::Object(inner)) => Some(inner),
                Some(other) => {
                    m.insert("response".into(), other);
                    Some(m)
                }
                None => Some(m),
            },
            _ => None,
        }
    }

    /// The signed view bound to keys: every non-empty parameter but the signature fields.
    fn view(p: &Map<String, Value>) -> BTreeMap<String, String> {
        p.iter()
            .filter(|(k, _)| *k != "signature" && *k != "response_signature_string")
            .filter_map(|(k, v)| text(v).map(|t| (k.clone(), t)))
            .collect()
    }

    /// What the signature actually hashes: the non-empty values in key order, `|`-joined.
    /// Keys are not part of it (see `flitt_signature_does_not_bind_keys`).
    fn message(p: &Map<String, Value>) -> String {
        view(p).into_values().collect::<Vec<_>>().join("|")
    }

    fn check(
        original: &Decision,
        p0: &Map<String, Value>,
        p: Option<Map<String, Value>>,
        result: Result<Decision, CallbackError>,
    ) -> Result<(), TestCaseError> {
        let Some(p) = p else {
            prop_assert!(result.is_err(), "unreadable body verified");
            return Ok(());
        };
        if message(&p) != message(p0) {
            prop_assert!(
                result.is_err(),
                "signed message changed and verified: {:?}",
                result
            );
        }
        if let Ok(d) = result {
            // A trigger (like Plexy): nothing of the body is signed identity or money state
            // the gateway applies; it applies Flitt's signed status answer. Strict, with no
            // exemption for values moved between keys (protocol 1.0 does not bind keys).
            prop_assert!(d.confirm_by_status);
            prop_assert_eq!(&d.order_id, &None);
            prop_assert_eq!(&d.provider_ref, &None);
            prop_assert_eq!(d.account.as_str(), "default");
            if view(&p) == view(p0) {
                prop_assert_eq!(&d, original);
            }
        }
        Ok(())
    }

    /// Protocol 1.0 signs the non-empty *values* in key order, not the keys, so a value can
    /// be moved to another key that sorts into the same place: renaming `capture_status` →
    /// `capture_statut` and `preauth` → `preauti` on a genuine held-preauth callback still
    /// verifies. It must not decide money: a callback missing a key a decision depends on is
    /// malformed, and an accepted one is only a trigger for a status query (the gateway
    /// applies Flitt's answer: still authorized; see `tests/providers_flitt.rs`).
    #[test]
    fn flitt_signature_does_not_bind_keys() {
        let sample = json_sample(0);
        let body0 = sample.render();
        let original = run(Provider::Flitt, &[], "", body0.as_bytes()).expect("verifies");
        assert!(original.confirm_by_status);
        assert!(matches!(
            original.signals.as_slice(),
            [SignalKind::Authorized { .. }]
        ));
        let shifted = body0
            .replace("\"capture_status\"", "\"capture_statut\"")
            .replace("\"preauth\"", "\"preauti\"");
        let p0 = params_of(body0.as_bytes(), false).expect("params");
        let p1 = params_of(shifted.as_bytes(), false).expect("params");
        assert_eq!(message(&p0), message(&p1), "the signature still verifies");
        let result = run(Provider::Flitt, &[], "", shifted.as_bytes());
        assert!(
            matches!(result, Err(CallbackError::Malformed { .. })),
            "a callback without preauth/capture_status is malformed: {result:?}"
        );
        // Values moved into neighbouring keys (renamed in place, or into a known key that
        // is empty and sorts next to it): whatever still verifies is only a trigger.
        let mut moved = Vec::new();
        for (from, to) in [
            ("\"capture_status\"", "\"capture_statt\""),
            ("\"order_desc\"", "\"order_dest\""),
            ("\"tran_type\"", "\"tran_typd\""),
        ] {
            moved.push(body0.replacen(from, to, 1));
        }
        // `capture_status: hold` into the empty `card_bin`, which sorts right after it: the
        // same signed message, and the body now reads "not held".
        let mut m = p0.clone();
        let hold = m.insert("capture_status".into(), Value::String(String::new()));
        m.insert("card_bin".into(), hold.expect("capture_status"));
        assert_eq!(message(&m), message(&p0));
        moved.push(Value::Object(m).to_string());
        for body in moved {
            let p = params_of(body.as_bytes(), false).expect("params");
            let d = run(Provider::Flitt, &[], "", body.as_bytes());
            if message(&p) == message(&p0) {
                assert!(
                    !matches!(d, Err(CallbackError::BadSignature { .. })),
                    "{body}: {d:?}"
                );
            }
            if let Ok(d) = d {
                assert!(d.confirm_by_status, "{body}: {d:?}");
                assert_eq!((d.order_id, d.provider_ref), (None, None));
            }
        }
    }

    /// Defence in depth: a callback without a key a decision depends on is malformed, not
    /// defaulted (each removed from a correctly signed sample, re-signed).
    #[test]
    fn flitt_callback_missing_a_decisive_key_is_malformed() {
        for key in [
            "order_id",
            "order_status",
            "amount",
            "currency",
            "preauth",
            "capture_status",
        ] {
            let mut m = signed_map(0);
            m.remove(key);
            m.remove("signature");
            let sig = paystate_adapters::flitt::signature::sign(FLITT_PASSWORD, &m);
            m.insert("signature".into(), Value::String(sig));
            let body = Value::Object(m).to_string();
            let result = run(Provider::Flitt, &[], "", body.as_bytes());
            assert!(
                matches!(result, Err(CallbackError::Malformed { .. })),
                "without {key}: {result:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(config(2000))]

        #[test]
        fn mutated_json_callback(which in 0usize..6, p in plan()) {
            let sample = json_sample(which);
            let body0 = sample.render();
            let original = run(Provider::Flitt, &[], "", body0.as_bytes()).expect("the sample verifies");
            let body = mutate_json(&sample, &p);
            let hs = mutated_headers(&h(&[("content-type", "application/json")]), &p);
            let form = header(&hs, "content-type").is_some_and(|v| v.to_ascii_lowercase().contains("x-www-form-urlencoded"));
            let result = run(Provider::Flitt, &hs, "", &body);
            let p0 = params_of(body0.as_bytes(), false).expect("sample params");
            check(&original, &p0, params_of(&body, form), result)?;
        }

        #[test]
        fn mutated_form_callback(which in 0usize..3, p in plan()) {
            let sample = form_sample(which);
            let body0 = sample.render();
            let ct = h(&[("content-type", "application/x-www-form-urlencoded")]);
            let original = run(Provider::Flitt, &ct, "", body0.as_bytes()).expect("the sample verifies");
            let body = mutate_form(&sample, &p);
            let hs = mutated_headers(&ct, &p);
            let form = header(&hs, "content-type").is_some_and(|v| v.to_ascii_lowercase().contains("x-www-form-urlencoded"));
            let result = run(Provider::Flitt, &hs, "", &body);
            let p0 = params_of(body0.as_bytes(), true).expect("sample params");
            check(&original, &p0, params_of(&body, form), result)?;
        }
    }
}
