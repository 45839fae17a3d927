//! Flitt signatures, protocol 1.0 exactly as the official SDKs compute it (PyPI
//! `flittpayments` `helpers.get_signature`, PHP `ApiHelper::generateSignature`):
//! SHA-1, lowercase hex, of the merchant password followed by every parameter value in
//! ascending key order, joined with `|`. `signature` and `response_signature_string` are
//! excluded; empty strings and nulls are skipped; `0` is kept.
//!
//! Value rendering, where the SDKs disagree or are silent (Flitt's own messages carry only
//! strings and integers, so these cases are not expected on the wire): numbers are their JSON
//! text; booleans are `true`/`false` (the Node SDK's; Python would print `True`, PHP `1`/``);
//! arrays and objects are their compact JSON text.
//!
//! Protocol 2.0: `sha1(password + "|" + base64 data)` ([`sign_v2`]).

use crate::crypto::{ct_eq_hex, sha1};
use serde_json::{Map, Value};

pub use crate::crypto::SignatureError;

/// The field that carries the signature.
pub const SIGNATURE_FIELD: &str = "signature";
/// A debugging field Flitt may add to responses; never signed.
pub const RESPONSE_SIGNATURE_STRING_FIELD: &str = "response_signature_string";
/// Separator between the password and the values.
pub const SEPARATOR: &str = "|";

/// The protocol 1.0 signature of `params` (lowercase hex SHA-1).
pub fn sign(password: &str, params: &Map<String, Value>) -> String {
    hex::encode(sha1(signing_string(password, params).as_bytes()))
}

/// True when `params` carries a `signature` matching the other parameters (constant time,
/// hex case ignored).
pub fn verify(password: &str, params: &Map<String, Value>) -> bool {
    match params.get(SIGNATURE_FIELD) {
        Some(Value::String(sig)) => {
            ct_eq_hex(sig, &sha1(signing_string(password, params).as_bytes()))
        }
        _ => false,
    }
}

/// Protocol 2.0: `sha1(password|data)` where `data` is the base64 payload as sent.
pub fn sign_v2(password: &str, data_base64: &str) -> String {
    hex::encode(sha1(
        format!("{password}{SEPARATOR}{data_base64}").as_bytes(),
    ))
}

/// The string that is hashed. It starts with the password: never log it.
fn signing_string(password: &str, params: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = params
        .keys()
        .filter(|k| k.as_str() != SIGNATURE_FIELD && k.as_str() != RESPONSE_SIGNATURE_STRING_FIELD)
        .collect();
    keys.sort();
    let mut out = String::from(password);
    for key in keys {
        if let Some(text) = params.get(key).and_then(value_text) {
            out.push_str(SEPARATOR);
            out.push_str(&text);
        }
    }
    out
}

/// How one value enters the signing string; `None` means "skipped".
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector() -> Map<String, Value> {
        let v = json!({"order_id": "ord-1001", "merchant_id": 1549901, "order_desc": "Test order",
            "amount": 12500, "currency": "GEL", "server_callback_url": "https://shop.example/cb",
            "response_url": ""});
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }

    #[test]
    fn providers_md_vector() {
        let params = vector();
        assert_eq!(
            signing_string("test", &params),
            "test|12500|GEL|1549901|Test order|ord-1001|https://shop.example/cb"
        );
        assert_eq!(
            sign("test", &params),
            "cdd4b5535a3c985d47d38ef2d755ab952a95a2bd"
        );
        let mut signed = params.clone();
        signed.insert(
            "signature".into(),
            json!("cdd4b5535a3c985d47d38ef2d755ab952a95a2bd"),
        );
        signed.insert("response_signature_string".into(), json!("test|**|ignored"));
        assert!(verify("test", &signed));
        signed.insert(
            "signature".into(),
            json!("CDD4B5535A3C985D47D38EF2D755AB952A95A2BD"),
        );
        assert!(verify("test", &signed), "hex case is ignored");
    }

    #[test]
    fn zero_is_kept_and_null_skipped() {
        let mut params = vector();
        params.insert("reversal_amount".into(), json!(0));
        params.insert("rrn".into(), Value::Null);
        let s = signing_string("test", &params);
        assert_eq!(
            s,
            "test|12500|GEL|1549901|Test order|ord-1001|0|https://shop.example/cb"
        );
    }

    #[test]
    fn tampering_fails() {
        let mut signed = vector();
        signed.insert(
            "signature".into(),
            json!("cdd4b5535a3c985d47d38ef2d755ab952a95a2bd"),
        );
        assert!(!verify("other", &signed));
        let mut tampered = signed.clone();
        tampered.insert("amount".into(), json!(12501));
        assert!(!verify("test", &tampered));
        let mut added = signed.clone();
        added.insert("order_status".into(), json!("approved"));
        assert!(!verify("test", &added));
        let mut unsigned = signed.clone();
        unsigned.remove("signature");
        assert!(!verify("test", &unsigned));
        signed.insert("signature".into(), json!(12345));
        assert!(!verify("test", &signed));
    }

    #[test]
    fn protocol_2() {
        assert_eq!(sign_v2("test", "e30="), hex::encode(sha1(b"test|e30=")));
    }
}
