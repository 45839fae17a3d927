//! JSON parsing that refuses ambiguity: a key that appears twice in one object is an error,
//! at any depth. serde_json keeps the last value silently; a proxy or validator that reads the
//! first would see a different command than the log holds.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_KEY_PREFIX}: key {shown:?} appears twice in one object"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
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
}
