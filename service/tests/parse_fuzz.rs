//! The command parser, fuzzed on stable Rust with proptest: arbitrary bytes, and mutations of
//! valid commands (fields dropped, duplicated, retyped; huge numbers; odd Unicode; cuts).
//! Every input is either a valid command or a typed rejection; nothing panics; a repeated key
//! is never resolved silently; what is accepted round-trips unchanged.
//!
//! The suite runs a few thousand cases; a longer run:
//! `PROPTEST_CASES=200000 cargo test --release -p paystate-service --test parse_fuzz`.

use paystate_events::{CommandEnvelope, RejectionCode};
use paystate_service::parse::parse_command;
use proptest::prelude::*;
use serde_json::{json, Value};

const CLIENT: &str = "paystate.cmd.o-1";
const SIGNAL: &str = "paystate.signal.o-1";
const OPERATOR: &str = "paystate.op.o-1";

/// One valid command of every type, with the subject it belongs on.
fn samples() -> Vec<(Value, &'static str)> {
    let base = |ty: &str| json!({"command_id": "c-1.a", "order_id": "o-1", "issued_at": "2026-11-22T10:00:00Z", "type": ty});
    let with = |ty: &str, extra: Value| {
        let mut v = base(ty);
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    let money = json!({"minor_units": 10000, "currency": "USD"});
    vec![
        (
            with(
                "create_order",
                json!({"merchant_reference": "shop-42", "amount": money, "provider": "plural",
                       "capture_mode": "manual", "metadata": {"k": "v"}}),
            ),
            CLIENT,
        ),
        (
            with(
                "start_payment",
                json!({"initiation": {"return_url": "https://shop.example/r", "params": {"payment_option": "card"}}}),
            ),
            CLIENT,
        ),
        (with("capture", json!({"amount": money})), CLIENT),
        (with("cancel", json!({"reason": "customer asked"})), CLIENT),
        (with("refund", json!({})), CLIENT),
        (with("expire", json!({})), CLIENT),
        (
            with(
                "resolve_review",
                json!({"operator": "op-ana", "reason": "checked at the provider"}),
            ),
            OPERATOR,
        ),
        (
            with(
                "provider_signal",
                json!({"signal": {"provider": "plural", "provider_ref": "4111111111111111",
                       "evidence_ref": "callbacks:1", "observed_at": "2026-11-22T10:00:01Z",
                       "status": "captured", "amount": money}}),
            ),
            SIGNAL,
        ),
    ]
}

/// Every input ends as a command for the subject's order or a typed rejection; an accepted
/// command serializes and parses back to itself.
fn check(bytes: &[u8], subject: &str) -> Result<CommandEnvelope, RejectionCode> {
    match parse_command(bytes, subject) {
        Ok(env) => {
            assert_eq!(env.order_id.as_str(), "o-1", "order matches the subject");
            let again = serde_json::to_vec(&env).expect("serializes");
            let back = parse_command(&again, subject).expect("round trip parses");
            assert_eq!(back, env, "round trip");
            Ok(env)
        }
        Err(r) => {
            assert!(RejectionCode::ALL.contains(&r.code));
            assert!(!r.message.is_empty());
            Err(r.code)
        }
    }
}

#[test]
fn every_sample_is_valid_on_its_own_plane_only() {
    for (v, subject) in samples() {
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(check(&bytes, subject).is_ok(), "{v}");
        for other in [CLIENT, SIGNAL, OPERATOR] {
            if other == subject {
                continue;
            }
            let code = check(&bytes, other).unwrap_err();
            assert!(
                matches!(
                    code,
                    RejectionCode::SignalNotAllowed
                        | RejectionCode::OperatorOnly
                        | RejectionCode::SubjectMismatch
                ),
                "{code:?}"
            );
        }
    }
}

/// Cases per property: 2,000 in the suite, `PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2_000)
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Duplicate(usize),
    Retype(usize, Value),
    HugeNumber(usize, String),
    OddUnicode(usize, String),
    Cut(usize),
    InsertByte(usize, u8),
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "a", null])),
        Just(json!({"minor_units": -1, "currency": "US"})),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Drop),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), odd_value()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        (
            any::<usize>(),
            "-?[0-9]{15,400}(\\.[0-9]{1,30})?(e[+-]?[0-9]{1,4})?"
        )
            .prop_map(|(i, n)| Mutation::HugeNumber(i, n)),
        (
            any::<usize>(),
            "[\\u{0}-\\u{1f}\\u{7f}\\u{200b}\\u{202e}\\u{fffd}\\u{10ffff}é\\u{301}]{1,8}"
        )
            .prop_map(|(i, s)| Mutation::OddUnicode(i, s)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
    ]
}

/// The dotted paths of every field in `v` (objects only), in a stable order.
fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(p.clone());
            paths(child, &p, out);
        }
    }
}

fn parent_and_key<'a>(
    v: &'a mut Value,
    path: &str,
) -> Option<(&'a mut serde_json::Map<String, Value>, String)> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop()?.to_string();
    let mut cur = v;
    for p in parts {
        cur = cur.get_mut(p)?;
    }
    Some((cur.as_object_mut()?, last))
}

/// Applies `m` to the sample; returns the bytes and whether a key was duplicated.
fn mutate(sample: &Value, m: &Mutation) -> (Vec<u8>, bool) {
    let mut v = sample.clone();
    let mut all = Vec::new();
    paths(&v, "", &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Drop(i) => {
            if let Some((obj, k)) = parent_and_key(&mut v, &pick(*i)) {
                obj.remove(&k);
            }
        }
        Mutation::Retype(i, new) => {
            if let Some((obj, k)) = parent_and_key(&mut v, &pick(*i)) {
                obj.insert(k, new.clone());
            }
        }
        Mutation::OddUnicode(i, s) => {
            if let Some((obj, k)) = parent_and_key(&mut v, &pick(*i)) {
                if let Some(Value::String(old)) = obj.get_mut(&k) {
                    let at = old.chars().count() / 2;
                    let mut chars: Vec<char> = old.chars().collect();
                    chars.splice(at..at, s.chars());
                    *old = chars.into_iter().collect();
                }
            }
        }
        Mutation::Duplicate(i) => {
            // Text level: `{"k":…` gains a second `"k":<same or other value>` in the same object.
            let path = pick(*i);
            let key = path.rsplit('.').next().unwrap_or_default().to_string();
            let text = v.to_string();
            let needle = format!("\"{key}\":");
            if let Some(pos) = text.find(&needle) {
                let dup = format!("{needle}\"other\",");
                let mut out = text.clone();
                out.insert_str(pos, &dup);
                return (out.into_bytes(), true);
            }
        }
        Mutation::HugeNumber(i, n) => {
            let text = v.to_string();
            let path = pick(*i);
            let key = path.rsplit('.').next().unwrap_or_default();
            let needle = format!("\"{key}\":");
            if let Some(pos) = text.find(&needle) {
                let start = pos + needle.len();
                let end = value_end(&text, start);
                let mut out = text.clone();
                out.replace_range(start..end, n);
                return (out.into_bytes(), false);
            }
        }
        Mutation::Cut(i) => {
            let bytes = v.to_string().into_bytes();
            let at = i % bytes.len();
            return (bytes[..at].to_vec(), false);
        }
        Mutation::InsertByte(i, b) => {
            let mut bytes = v.to_string().into_bytes();
            let at = i % (bytes.len() + 1);
            bytes.insert(at, *b);
            return (bytes, false);
        }
    }
    (serde_json::to_vec(&v).unwrap_or_default(), false)
}

/// Where the JSON value starting at `start` ends (good enough for the flat values we replace).
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'{' | b'[' if !in_str => depth += 1,
            b'}' | b']' if !in_str => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            b',' if !in_str && depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), signal in any::<bool>()) {
        let _ = check(&bytes, if signal { SIGNAL } else { CLIENT });
    }

    #[test]
    fn arbitrary_json_text_never_panics(text in "[{}\\[\\]\":,0-9a-z_. \\-eE+\\\\u]{0,256}") {
        let _ = check(text.as_bytes(), CLIENT);
    }

    #[test]
    fn mutated_commands_are_commands_or_typed_rejections(
        which in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let all = samples();
        let (sample, subject) = &all[which % all.len()];
        let mut current = sample.clone();
        let mut duplicated = false;
        for m in &mutations {
            let (bytes, dup) = mutate(&current, m);
            if dup {
                let code = check(&bytes, subject).unwrap_err();
                prop_assert_eq!(code, RejectionCode::DuplicateKey, "{}", String::from_utf8_lossy(&bytes));
                duplicated = true;
                break;
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => current = v,
                Err(_) => {
                    let code = check(&bytes, subject).unwrap_err();
                    // A number beyond any float is named by its field (an amount's is an
                    // amount error); anything else unreadable is malformed.
                    prop_assert!(matches!(code, RejectionCode::MalformedJson | RejectionCode::CommandTooLarge | RejectionCode::InvalidField | RejectionCode::AmountOverflow), "{:?}", code);
                    return Ok(());
                }
            }
        }
        if !duplicated {
            let bytes = serde_json::to_vec(&current).unwrap_or_default();
            let _ = check(&bytes, subject);
        }
    }
}
