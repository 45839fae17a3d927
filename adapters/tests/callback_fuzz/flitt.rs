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
