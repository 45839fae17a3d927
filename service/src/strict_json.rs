//! JSON parsing that refuses ambiguity: a key that appears twice in one object is an error,
//! at any depth. serde_json keeps the last value silently; a proxy or validator that reads the
//! first would see a different command than the log holds.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};
use std::fmt;

/// Prefix of the error message for a repeated key (the rest names the key).
pub const DUPLICATE_KEY_PREFIX: &str = "duplicate_key";

/// Parses `bytes` into a [`Value`], refusing repeated keys in any object.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(value) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Whether a parse error is a repeated key.
pub fn is_duplicate_key(e: &serde_json::Error) -> bool {
    e.to_string().starts_with(DUPLICATE_KEY_PREFIX)
}

/// The dotted path of the member being read at byte `end` of `bytes` (e.g.
/// `amount.minor_units`), for naming the field in a syntax-level error such as a number out
/// of range. Array elements show as their index.
pub fn path_at(bytes: &[u8], end: usize) -> String {
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let (mut stack, mut i, mut key_next) = (Vec::new(), 0, false);
    let end = end.min(bytes.len());
    while i < end {
        match bytes[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                key_next = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(_)) => key_next = true,
                None => {}
            },
            b'"' => {
                let close = string_end(bytes, i);
                if key_next {
                    let key = serde_json::from_slice::<String>(&bytes[i..close.min(bytes.len())])
                        .unwrap_or_default();
                    if let Some(Frame::Object(k)) = stack.last_mut() {
                        *k = Some(key);
                    }
                    key_next = false;
                }
                i = close;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let parts: Vec<String> = stack
        .iter()
        .filter_map(|f| match f {
            Frame::Object(k) => k.clone(),
            Frame::Array(n) => Some(n.to_string()),
        })
        .collect();
    parts.join(".")
}

/// The index just past the string starting at `start` (an opening quote).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The byte offset a parse error points at (serde_json counts lines and columns from 1).
pub fn error_offset(bytes: &[u8], e: &serde_json::Error) -> usize {
    let line_start = bytes
        .split_inclusive(|b| *b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    line_start + e.column()
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Why: serde_json maps non-finite floats to null the same way.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Why one lookup per key (not a check, then an insert): this runs for every key
            // of every command.
            match out.entry(key) {
                Entry::Occupied(e) => {
                    let shown: String = e.key().chars().take(64).collect();
                    return Err(de::Error::custom(format!(
                        "{DUPLICATE_KEY_PREFIX}: key {shown:?} appears twice in one object"
                    )));
                }
                Entry::Vacant(e) => {
                    let Strict(v) = map.next_value()?;
                    e.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"[{"x":[{"k":"v","k":"v"}]}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let e = from_slice(bad.as_bytes()).unwrap_err();
            assert!(is_duplicate_key(&e), "{bad}: {e}");
        }
    }

    #[test]
    fn unambiguous_json_parses_as_serde_json_does() {
        for good in [
            r#"{"a":1,"b":[1,2,{"a":1}],"c":{"a":null},"d":-5,"e":1.5,"f":"x\u00e9"}"#,
            "[]",
            "\"s\"",
            "18446744073709551615",
            "1e300",
        ] {
            let ours = from_slice(good.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(good).unwrap();
            assert_eq!(ours, theirs, "{good}");
        }
        assert!(from_slice(b"{} x").is_err());
        assert!(from_slice(b"1e400").is_err());
    }

    #[test]
    fn a_syntax_error_is_placed_in_its_field() {
        let text =
            br#"{"a":{"b":[1,{"c\"d":"x,{"}],"amount":{"currency":"USD","minor_units":1e400}}}"#;
        let e = from_slice(text).unwrap_err();
        assert_eq!(
            path_at(text, error_offset(text, &e)),
            "a.amount.minor_units"
        );
        let text = b"{\n \"x\": [1, 2,\n 1e999]}";
        let e = from_slice(text).unwrap_err();
        assert_eq!(path_at(text, error_offset(text, &e)), "x.2");
    }
}
