//! Field rules checked on the JSON value before the typed parse, so a refusal names the field
//! and the rule (`issued_at: not an RFC 3339 timestamp`, `amount.minor_units: above the
//! maximum 10^15`) instead of serde's context-free wording. Each rule admits exactly what the
//! typed parse admits; the typed parse stays the authority.
//!
//! Also here: finding the field a typed-parse error is about ([`locate`]), and refusing
//! fields the command does not have ([`unknown_field`]).

use paystate_events::money::{Currency, AMOUNT_MINOR_MAX};
use paystate_events::{CommandId, OrderId, Rejection, RejectionCode as Code};
use serde_json::{Map, Value};

/// The timestamp fields of commands and signals (RFC 3339 strings).
const TIMESTAMPS: [&str; 3] = ["issued_at", "expires_at", "observed_at"];
/// Objects holding the caller's own keys (metadata, provider parameters): not walked.
const FREE_FORM: [&str; 3] = ["metadata", "params", "details"];
/// Keys tried per object, nesting depth, and re-parses in all, when locating a typed-parse
/// error: bad input must not cost the engine much more than good input.
const PROBE_KEYS_MAX: usize = 24;
const PROBE_DEPTH_MAX: usize = 4;
const PROBE_PARSES_MAX: usize = 32;
/// Bytes re-parsed in all when locating (a large bad command gets fewer tries).
const PROBE_BYTES_MAX: usize = 256 * 1024;

/// Checks the envelope ids, every timestamp and every amount in `v`.
pub fn check(v: &Value) -> Result<(), Rejection> {
    // Why: a valid command (the common case) is answered by a walk that builds no paths;
    // anything it does not pass is walked again by the rules that name the field.
    if passes(v) {
        return Ok(());
    }
    check_slow(v)
}

/// The same rules as [`check`], naming the field a refusal is about.
pub fn check_slow(v: &Value) -> Result<(), Rejection> {
    let Some(obj) = v.as_object() else {
        return Ok(());
    };
    if let Some(x) = obj.get("command_id") {
        id::<CommandId>("command_id", x)?;
    }
    if let Some(x) = obj.get("order_id") {
        id::<OrderId>("order_id", x)?;
    }
    walk(obj, &mut Vec::new())
}

fn id<T: TryFrom<String, Error = String>>(key: &str, v: &Value) -> Result<(), Rejection> {
    let Some(s) = v.as_str() else {
        return Err(Rejection::new(
            Code::InvalidField,
            format!("{key}: must be a string"),
        ));
    };
    T::try_from(s.to_string())
        .map(|_| ())
        .map_err(|e| Rejection::new(Code::InvalidId, format!("{key}: {}", strip_code(&e))))
}

/// Whether `v` passes every rule of [`check_slow`]: `true` only where it answers `Ok`.
fn passes(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return true;
    };
    let id_passes =
        |x: &Value, parse: fn(String) -> bool| x.as_str().is_some_and(|s| parse(s.to_string()));
    obj.get("command_id")
        .is_none_or(|x| id_passes(x, |s| CommandId::try_from(s).is_ok()))
        && obj
            .get("order_id")
            .is_none_or(|x| id_passes(x, |s| OrderId::try_from(s).is_ok()))
        && walk_passes(obj)
}

fn walk_passes(obj: &Map<String, Value>) -> bool {
    if obj.contains_key("minor_units") && money(obj, "").is_err() {
        return false;
    }
    obj.iter().all(|(key, child)| {
        (!TIMESTAMPS.contains(&key.as_str()) || timestamp_passes(child))
            && match (child.as_object(), FREE_FORM.contains(&key.as_str())) {
                (Some(o), false) => walk_passes(o),
                _ => true,
            }
    })
}

fn timestamp_passes(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => {
            plain_utc(s) || s.parse::<chrono::DateTime<chrono::FixedOffset>>().is_ok()
        }
        _ => false,
    }
}

/// Whether `s` is `YYYY-MM-DDTHH:MM:SSZ` (years 1000-9999, a real date, no leap second): the
/// shape commands carry, which chrono's RFC 3339 parser accepts (a test compares); read here
/// without chrono's general parser. `false` says nothing: chrono then decides.
fn plain_utc(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 20 || [4, 7, 10, 13, 16, 19].map(|i| b[i]) != *b"--T::Z" {
        return false;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let parts = (
        number(0, 4),
        number(5, 7),
        number(8, 10),
        number(11, 13),
        number(14, 16),
        number(17, 19),
    );
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = parts else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1000..=9999).contains(&y) && (1..=days).contains(&d) && h < 24 && mi < 60 && sec < 60
}

fn walk(obj: &Map<String, Value>, path: &mut Vec<String>) -> Result<(), Rejection> {
    if obj.contains_key("minor_units") {
        money(obj, &path.join("."))?;
    }
    for (key, child) in obj {
        path.push(key.clone());
        if TIMESTAMPS.contains(&key.as_str()) {
            timestamp(&path.join("."), child)?;
        }
        if let (Some(o), false) = (child.as_object(), FREE_FORM.contains(&key.as_str())) {
            walk(o, path)?;
        }
        path.pop();
    }
    Ok(())
}

fn timestamp(path: &str, v: &Value) -> Result<(), Rejection> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if s.parse::<chrono::DateTime<chrono::FixedOffset>>().is_ok() => Ok(()),
        Value::String(s) => Err(Rejection::new(
            Code::InvalidField,
            format!(
                "{path}: not an RFC 3339 timestamp ({:?}; e.g. 2026-11-22T10:00:00Z)",
                shown(s)
            ),
        )),
        _ => Err(Rejection::new(
            Code::InvalidField,
            format!("{path}: must be a string (an RFC 3339 timestamp)"),
        )),
    }
}

/// `{"minor_units": <1..=10^15>, "currency": "<ISO 4217>"}`.
fn money(obj: &Map<String, Value>, path: &str) -> Result<(), Rejection> {
    let at = |field: &str| match path {
        "" => field.to_string(),
        p => format!("{p}.{field}"),
    };
    let units = &obj["minor_units"];
    let refused = |code, rule: &str| {
        Err(Rejection::new(
            code,
            format!("{}: {rule}", at("minor_units")),
        ))
    };
    match units {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(0), _) => {
                return refused(
                    Code::InvalidAmount,
                    "must be at least 1 (a positive integer number of minor units)",
                )
            }
            (Some(u), _) if u > AMOUNT_MINOR_MAX => {
                return refused(Code::AmountOverflow, "above the maximum 10^15")
            }
            (Some(_), _) => {}
            (None, _) if n.as_i64().is_some() => {
                return refused(Code::InvalidAmount, "must be positive")
            }
            (None, Some(f)) if f.fract() == 0.0 && f > AMOUNT_MINOR_MAX as f64 => {
                return refused(Code::AmountOverflow, "above the maximum 10^15")
            }
            (None, Some(f)) if f < 0.0 => return refused(Code::InvalidAmount, "must be positive"),
            (None, _) => {
                return refused(
                    Code::InvalidAmount,
                    "must be a whole number of minor units (no fractions)",
                )
            }
        },
        _ => {
            return refused(
                Code::InvalidField,
                "must be an integer number of minor units (not a string or decimal)",
            )
        }
    }
    match obj.get("currency") {
        Some(Value::String(c)) if Currency::parse(c).is_err() => Err(Rejection::new(
            Code::UnknownCurrency,
            format!(
                "{}: {:?} is not an ISO 4217 currency code with minor units",
                at("currency"),
                shown(c)
            ),
        )),
        Some(Value::String(_)) | None => Ok(()),
        Some(_) => Err(Rejection::new(
            Code::InvalidField,
            format!("{}: must be a string (an ISO 4217 code)", at("currency")),
        )),
    }
}

/// The path of the field a typed parse of `v` fails on: the key whose removal changes the
/// error (serde stops at the first bad field, so removing another leaves the error as is).
/// A removal that only turns the error into "missing field" of that key is weaker evidence
/// (a flattened struct checks its own required fields first), so such a key is chosen only
/// when no other is found. The envelope fields were checked before ([`check`]).
pub fn locate(v: &Value, size: usize, parse: &dyn Fn(&Value) -> Option<String>) -> Option<String> {
    let budget = PROBE_PARSES_MAX.min(PROBE_BYTES_MAX / size.max(1));
    let original = parse(v)?;
    let mut path: Vec<String> = Vec::new();
    let mut parses = 0;
    for _ in 0..PROBE_DEPTH_MAX {
        let here = at_path(v, &path)?.as_object()?;
        let mut weak = None;
        let mut found = None;
        for key in here.keys().take(PROBE_KEYS_MAX) {
            if path.is_empty() && ENVELOPE.contains(&key.as_str()) {
                continue;
            }
            parses += 1;
            if parses > budget {
                return None;
            }
            let mut without = v.clone();
            if let Some(o) = at_path_mut(&mut without, &path).and_then(Value::as_object_mut) {
                o.remove(key);
            }
            match parse(&without) {
                Some(e) if e == original => {}
                Some(e) if e.starts_with(&format!("missing field `{key}`")) => {
                    weak = Some(key.clone())
                }
                _ => {
                    found = Some(key.clone());
                    break;
                }
            }
        }
        let Some(key) = found.or(weak) else { break };
        path.push(key);
        let nested = at_path(v, &path).is_some_and(Value::is_object);
        if !nested || FREE_FORM.contains(&path[path.len() - 1].as_str()) {
            break;
        }
    }
    (!path.is_empty()).then(|| path.join("."))
}

/// Envelope fields and the command type: checked before the typed parse.
const ENVELOPE: [&str; 4] = ["command_id", "order_id", "issued_at", "type"];

fn at_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn at_path_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| v.get_mut(k))
}

/// The first field of `sent` that the parsed command does not have (`typed` is the parsed
/// command serialized again). A field absent from `typed` whose value is `null`, `{}` or `[]`
/// is a known optional field left empty, not an unknown one.
pub fn unknown_field(sent: &Value, typed: &Value) -> Option<String> {
    let (Some(s), Some(t)) = (sent.as_object(), typed.as_object()) else {
        return None;
    };
    for (key, value) in s {
        match t.get(key) {
            Some(inner) => {
                if let Some(p) = unknown_field(value, inner) {
                    return Some(format!("{key}.{p}"));
                }
            }
            None if is_empty(value) => {}
            None => return Some(key.clone()),
        }
    }
    None
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A validator's message without its leading `code: `.
pub fn strip_code(text: &str) -> &str {
    match text.split_once(": ") {
        Some((code, rest)) if Code::parse(code).is_some() => rest,
        _ => text,
    }
}

/// At most 64 characters of a refused value, for messages.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::plain_utc;
    use proptest::prelude::*;

    fn chrono_reads(s: &str) -> bool {
        s.parse::<chrono::DateTime<chrono::FixedOffset>>().is_ok()
    }

    #[test]
    fn plain_utc_knows_the_calendar() {
        assert!(plain_utc("2026-11-22T10:00:00Z"));
        assert!(plain_utc("2024-02-29T23:59:59Z"));
        assert!(!plain_utc("2026-02-29T10:00:00Z"));
        assert!(!plain_utc("1900-02-29T10:00:00Z"));
        assert!(plain_utc("2000-02-29T10:00:00Z"));
        assert!(!plain_utc("2026-11-22T24:00:00Z"));
        assert!(!plain_utc("2026-11-22 10:00:00Z"));
        assert!(!plain_utc("2026-11-22T10:00:00z"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Whatever the fast reading accepts, chrono accepts; and on real dates of this shape
        /// they agree.
        #[test]
        fn plain_utc_accepts_only_what_chrono_reads(
            s in "[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9][Zz+]",
        ) {
            if plain_utc(&s) {
                prop_assert!(chrono_reads(&s), "{}", s);
            }
            if s.ends_with('Z') && chrono_reads(&s) && !s.starts_with('0') && !s[17..19].starts_with('6') {
                prop_assert!(plain_utc(&s), "{}", s);
            }
        }
    }
}
