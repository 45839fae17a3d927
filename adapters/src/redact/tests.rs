//! The redactor over every encoding it promises, by example and by property.

use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;

/// `%XX` for every byte that is not unreserved (RFC 3986), in the given hex case.
fn percent(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Every byte as `%XX`, even letters.
fn percent_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// `application/x-www-form-urlencoded` (`+` for a space).
fn form(s: &str) -> String {
    serde_urlencoded::to_string([("k", s)])
        .expect("encodes")
        .trim_start_matches("k=")
        .to_string()
}

/// Every form of `secret` the redactor promises to remove, standalone.
fn encoded_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("a string");
    let json_inner = json[1..json.len() - 1].to_string();
    let json_ascii: String = secret
        .encode_utf16()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    let mut forms = vec![
        secret.to_string(),
        percent(secret, true),
        percent(secret, false),
        percent_all(secret),
        form(secret),
        json_inner,
        json_ascii,
        secret.replace('/', "\\/"),
        hex::encode(secret),
        hex::encode_upper(secret),
    ];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret));
        // Inside a longer base64 text, at each alignment (basic auth `user:password`).
        for user in ["u", "us", "use", "merchant-1409"] {
            let basic = engine.encode(format!("{user}:{secret}"));
            forms.push(basic.clone());
            forms.push(format!("Basic {basic}"));
            // And URL-encoded after base64 (a token in a query string).
            forms.push(percent(&basic, true));
        }
    }
    forms
}

/// Does any standalone form of `secret` (at least `BASE64_CORE_CHARS_MIN` long), or the core of
/// any base64 form, still appear in `text`?
fn leaks(text: &str, secret: &str) -> Option<String> {
    if text.contains(secret) {
        return Some(format!("raw {secret:?}"));
    }
    for form in [
        percent(secret, true),
        percent(secret, false),
        percent_all(secret),
        form(secret),
        hex::encode(secret),
    ] {
        if text.contains(&form) {
            return Some(format!("form {form:?}"));
        }
    }
    for core in base64_cores(secret.as_bytes()) {
        if text.contains(&core) {
            return Some(format!("base64 core {core:?}"));
        }
    }
    None
}

#[test]
fn every_form_is_redacted_in_context() {
    let secrets = [
        "ipn-secret-1",
        "pk+/=% \"quoted\" 'single' <tag> &amp",
        "плагин-секрет",
        "emoji-😀-key",
        "a b c",
        "test",
    ];
    let r = Redactor::new(secrets);
    for secret in secrets {
        for form in encoded_forms(secret) {
            let text = format!("HTTP 400: {{\"error\":\"bad value\",\"echo\":\"{form}\"}} tail");
            let out = r.redact(&text);
            assert!(
                leaks(&out, secret).is_none(),
                "{secret:?} as {form:?} survived: {out}"
            );
            assert!(out.contains(REDACTED), "{form:?}: {out}");
            assert!(
                out.starts_with("HTTP 400: ") && out.ends_with(" tail"),
                "{out}"
            );
        }
    }
}

#[test]
fn json_and_html_quoting_is_seen_through() {
    let secret = r#"a"b\c/d<e>&'f"#;
    let r = Redactor::new([secret]);
    let json = serde_json::json!({ "echo": { "body": { "secret": secret } } }).to_string();
    let double = serde_json::to_string(&json).expect("a string");
    let html = "a&quot;b\\c/d&lt;e&gt;&amp;&#39;f";
    let html_hex = "a&#x22;b&#92;c&#x2F;d&#60;e&#62;&#38;&apos;f";
    for text in [json.as_str(), html, html_hex] {
        let out = r.redact(text);
        assert!(out.contains(REDACTED), "{text} -> {out}");
        assert!(!out.contains("b\\c"), "{out}");
    }
    // One level of JSON escaping is matched; a double-escaped echo is not promised, but the
    // facade never double-encodes before redacting.
    let _ = double;
}

#[test]
fn text_without_secrets_is_untouched_and_borrowed() {
    let r = Redactor::new(["ipn-secret-1", "", "k", "ipn"]);
    let text = "HTTP 500: {\"message\":\"internal error\"}";
    assert!(matches!(r.redact(text), Cow::Borrowed(t) if t == text));
    assert_eq!(
        r.redact("ok ipn k"),
        "ok ipn k",
        "too short to tell from text"
    );
    assert!(Redactor::new(["", "abc"]).is_empty());
    assert!(matches!(
        Redactor::default().redact("x"),
        Cow::Borrowed("x")
    ));
}

#[test]
fn a_longer_secret_containing_a_shorter_one_goes_whole() {
    let r = Redactor::new(["akey", "akey-and-more"]);
    assert_eq!(r.redact("x akey-and-more y"), "x [redacted] y");
    assert_eq!(r.redact("x akey y"), "x [redacted] y");
}

#[test]
fn base64_runs_are_replaced_whole() {
    let r = Redactor::new(["s3cr3t-password"]);
    let basic = STANDARD.encode("merchant:s3cr3t-password");
    assert_eq!(
        r.redact(&format!("Authorization: Basic {basic}, next")),
        "Authorization: Basic [redacted], next"
    );
}

#[test]
fn a_token_remembered_at_run_time_is_redacted_by_every_clone() {
    // Given the facade's redactor, and the clone a call runs with.
    let facade = Redactor::new(["cs-secret-1"]);
    let in_call = facade.clone();
    // When the call learns a token.
    in_call.remember("plural/default", &Secret::new("tok-AAAA-1111"));
    // Then both cut it out, in every form, next to the configured secret.
    let echo = "authorization: Bearer tok-AAAA-1111 | body: {\"client_secret\":\"cs-secret-1\"}";
    for r in [&facade, &in_call] {
        assert_eq!(
            r.redact(echo),
            "authorization: Bearer [redacted] | body: {\"client_secret\":\"[redacted]\"}"
        );
        assert_eq!(r.redact("t=tok%2DAAAA%2D1111"), "t=[redacted]");
    }
    // And a redactor built apart from them knows nothing of it.
    assert_eq!(
        Redactor::new(["cs-secret-1"]).redact("tok-AAAA-1111"),
        "tok-AAAA-1111"
    );
}

#[test]
fn a_slot_keeps_the_current_and_the_previous_token() {
    // Given a redactor with nothing configured.
    let r = Redactor::default();
    assert!(r.is_empty());
    // When an account's token is renewed twice (and another account has its own).
    r.remember("plural/a", &Secret::new("token-one"));
    r.remember("plural/b", &Secret::new("token-bee"));
    r.remember("plural/a", &Secret::new("token-two"));
    r.remember("plural/a", &Secret::new("token-two"));
    r.remember("plural/a", &Secret::new("token-three"));
    // Then the current and previous tokens of each slot are redacted; older ones are not.
    assert!(!r.is_empty());
    assert_eq!(
        r.redact("token-three token-two token-bee"),
        "[redacted] [redacted] [redacted]"
    );
    assert_eq!(r.redact("token-one"), "token-one");
    assert_eq!(r.runtime.patterns().len(), 3);
}

#[test]
fn run_time_slots_are_bounded() {
    // Given every slot taken.
    let r = Redactor::default();
    for i in 0..runtime::SLOTS_MAX {
        r.remember(&format!("slot-{i}"), &Secret::new(format!("token-{i:04}")));
    }
    // When one more account is issued a token.
    r.remember("slot-new", &Secret::new("token-new"));
    // Then the slot renewed longest ago makes room for it.
    assert_eq!(r.runtime.patterns().len(), runtime::SLOTS_MAX);
    assert_eq!(r.redact("token-0000"), "token-0000");
    assert_eq!(r.redact("token-0001 token-new"), "[redacted] [redacted]");
}

#[tokio::test]
async fn remembering_in_scope_reaches_the_facades_redactor() {
    // Given the facade's redactor, put in scope for a call.
    let facade = Redactor::default();
    // When the call remembers a token (and something outside any call tries to).
    assert!(!remember_in_scope(
        "plural/x",
        &Secret::new("outside-token")
    ));
    let inside = scope(facade.clone(), async {
        remember_in_scope("plural/x", &Secret::new("inside-token"))
    })
    .await;
    // Then the facade's redactor knows the one from inside the call.
    assert!(inside);
    assert_eq!(
        facade.redact("inside-token outside-token"),
        "[redacted] outside-token"
    );
}

#[test]
fn configured_secrets_cover_every_provider() {
    let text = r#"
        [plexy]
        base_url = "http://127.0.0.1:1"
        [plexy.accounts.default]
        api_key = "S-plexy-api"
        webhook_token = "S-plexy-hook"
        tilda_secret = "S-plexy-tilda"
        [paykassma]
        base_url = "http://127.0.0.1:1"
        [paykassma.accounts.default]
        plugin_secret = "S-pk-plugin"
        access_key = "public-access"
        private_key = "S-pk-private"
        [plural]
        base_url = "http://127.0.0.1:1"
        [plural.accounts.default]
        client_id = "cid"
        client_secret = "S-plural-client"
        return_url_secret_hex = "5eC0FFEE"
        webhook_secret = "S-plural-hook"
        [exchanger]
        base_url = "http://127.0.0.1:1"
        [exchanger.accounts.default]
        partner = "p"
        route_id = "r"
        api_key = "S-ex-api"
        ipn_secret = "S-ex-ipn"
        [exchanger.accounts.eu]
        partner = "p"
        route_id = "r"
        ipn_secret = "S-ex-ipn-eu"
        [flitt]
        base_url = "http://127.0.0.1:1"
        [flitt.accounts.default]
        merchant_id = 1
        password = "S-flitt-pw"
    "#;
    let cfg: AdaptersConfig = toml::from_str(text).expect("valid config");
    let mut found: Vec<&str> = configured_secrets(&cfg)
        .into_iter()
        .map(Secret::expose)
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "5eC0FFEE",
            "S-ex-api",
            "S-ex-ipn",
            "S-ex-ipn-eu",
            "S-flitt-pw",
            "S-pk-plugin",
            "S-pk-private",
            "S-plexy-api",
            "S-plexy-hook",
            "S-plexy-tilda",
            "S-plural-client",
            "S-plural-hook",
        ]
    );
    let r = Redactor::from_config(&cfg);
    let out = r.redact("cid public-access S-ex-ipn-eu S-flitt-pw");
    assert_eq!(out, "cid public-access [redacted] [redacted]");
}

#[test]
fn boundary_types_are_redacted_field_by_field() {
    use crate::error::Op;
    use paystate_events::{Operation, Provider};
    let r = Redactor::new(["top-secret"]);
    let err = AdapterError::Rejected {
        provider: Provider::Exchanger,
        op: Op::Payment,
        code: "http_400".into(),
        message: "{\"ipnSecret\":\"top-secret\"}".into(),
    }
    .redact(&r);
    assert!(!err.to_string().contains("top-secret"), "{err}");
    let signal = err.signal(None).expect("a failure");
    assert_eq!(
        signal,
        SignalKind::Failed {
            operation: Operation::Payment,
            code: "http_400".into(),
            message: "{\"ipnSecret\":\"[redacted]\"}".into(),
            refund_id: None,
        }
    );
    let reported = Reported {
        provider_ref: Some("ref-top-secret".into()),
        signals: vec![SignalKind::Probed {
            answer: "top%2Dsecret".into(),
        }],
        call_ref: "c".into(),
    }
    .redact(&r);
    assert_eq!(reported.provider_ref.as_deref(), Some("ref-[redacted]"));
    assert_eq!(
        reported.signals,
        vec![SignalKind::Probed {
            answer: REDACTED.into()
        }]
    );
}

#[tokio::test]
async fn excerpts_are_redacted_before_they_are_cut() {
    use crate::http::{HttpResponse, BODY_EXCERPT_CHARS_MAX};
    let secret = "a-secret-that-straddles-the-cut";
    // The secret starts 10 characters before the excerpt's end.
    let body = format!(
        "{}{secret}{}",
        "x".repeat(BODY_EXCERPT_CHARS_MAX - 10),
        "y".repeat(50)
    );
    let resp = HttpResponse {
        status: 400,
        headers: vec![],
        body: body.into(),
    };
    // Outside a facade call nothing is known: the cut leaves a prefix.
    assert!(resp.body_excerpt().ends_with("a-secret-t"));
    let r = Redactor::new([secret]);
    let excerpt = scope(r, async { resp.body_excerpt() }).await;
    assert!(!excerpt.contains("a-secret"), "{excerpt}");
    assert!(excerpt.contains(REDACTED), "{excerpt}");
    assert!(excerpt.chars().count() <= BODY_EXCERPT_CHARS_MAX);
}

/// Printable ASCII with the characters encoders treat specially, and some beyond ASCII.
fn secret_strategy() -> impl Strategy<Value = String> {
    let printable = proptest::char::range(' ', '~');
    let edge = prop::sample::select(vec![
        '%', '+', '/', '=', ' ', '"', '\'', '\\', '&', '<', '>', '?', '#', ':', '@', 'é', 'ж', '😀',
    ]);
    prop::collection::vec(prop_oneof![3 => printable, 1 => edge], 8..40)
        .prop_map(|chars| chars.into_iter().collect())
        // A secret that is part of the marker cannot be told apart from it.
        .prop_filter("not inside the marker", |s: &String| {
            !REDACTED.contains(s.as_str())
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No encoded form of any secret survives, wherever it sits in surrounding text.
    #[test]
    fn no_encoded_form_survives(
        secrets in prop::collection::vec(secret_strategy(), 1..4),
        pick in any::<prop::sample::Index>(),
        form_pick in any::<prop::sample::Index>(),
        before in "[ -~]{0,40}",
        after in "[ -~]{0,40}",
    ) {
        let r = Redactor::new(secrets.iter().map(String::as_str));
        let secret = pick.get(&secrets);
        let forms = encoded_forms(secret);
        let form = form_pick.get(&forms);
        let text = format!("{before}{form}{after}");
        let out = r.redact(&text);
        for s in &secrets {
            prop_assert!(leaks(&out, s).is_none(), "{:?} as {:?}: {:?} -> {:?}", s, form, text, out);
        }
    }

    /// Every form, all at once, in a JSON echo of a request.
    #[test]
    fn a_whole_echo_is_clean(secret in secret_strategy()) {
        let r = Redactor::new([secret.as_str()]);
        let forms = encoded_forms(&secret);
        let echo = serde_json::json!({"headers": {"authorization": format!("Bearer {secret}")},
            "query": format!("secret={}", form(&secret)), "forms": forms}).to_string();
        let out = r.redact(&echo);
        prop_assert!(leaks(&out, &secret).is_none(), "{:?}", out);
    }
}
