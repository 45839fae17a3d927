//! Paykassma postback signature (public docs):
//! `sha1(access_key + private_access_key + md5(additional_data))`, lowercase hex, no
//! separators, where `additional_data` is the compact JSON of the postback's
//! `additional_data` array with keys in the order received and `/` and non-ASCII characters
//! not escaped (PHP's `json_encode` with `JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE`).
//!
//! [`compact_json_as_received`] rebuilds that text from the raw bytes we received: whitespace
//! outside strings is dropped, strings are decoded and re-encoded minimally (`"` `\` and
//! control characters escaped, nothing else), numbers and literals are kept verbatim. It works
//! on the raw text rather than on a parsed map, so key order and number spelling are exactly
//! what the provider sent (serde_json's `preserve_order` feature would do the same for keys but
//! changes map ordering for every crate in the workspace).
//! Unconfirmed edge: PHP also escapes U+2028/U+2029 unless told not to; we do not.

use crate::crypto::{ct_eq_hex, md5, sha1};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::crypto::SignatureError;

/// Longest postback body we compact: the gateway's callback body limit, so a postback the
/// gateway stored is never refused here as too long (it would be resent for ever).
pub const POSTBACK_LEN_MAX: usize = paystate_events::limits::CALLBACK_BODY_BYTES_MAX;

/// The postback signature for the given compact `additional_data` JSON text.
pub fn postback_signature(
    access_key: &str,
    private_key: &str,
    additional_data_compact_json: &str,
) -> String {
    let inner = hex::encode(md5(additional_data_compact_json.as_bytes()));
    hex::encode(sha1(format!("{access_key}{private_key}{inner}").as_bytes()))
}

/// True when `received` is the signature of the compact `additional_data` (constant time).
pub fn verify_postback(
    access_key: &str,
    private_key: &str,
    additional_data_compact_json: &str,
    received: &str,
) -> bool {
    let inner = hex::encode(md5(additional_data_compact_json.as_bytes()));
    ct_eq_hex(
        received,
        &sha1(format!("{access_key}{private_key}{inner}").as_bytes()),
    )
}

/// The fields of a postback body that the signature covers, read without reordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPostback {
    pub signature: String,
    pub access_key: String,
    /// `additional_data` as compact JSON, key order as received.
    pub additional_data_compact: String,
}

/// Reads `signature`, `access_key` and the raw `additional_data` of a postback body.
pub fn signed_parts(body: &str) -> Result<SignedPostback, SignatureError> {
    #[derive(Deserialize)]
    struct Parts<'a> {
        signature: Option<String>,
        access_key: Option<String>,
        #[serde(borrow)]
        additional_data: Option<&'a RawValue>,
    }
    if body.len() > POSTBACK_LEN_MAX {
        return Err(SignatureError::Malformed(format!(
            "postback longer than {POSTBACK_LEN_MAX} bytes"
        )));
    }
    let parts: Parts<'_> =
        serde_json::from_str(body).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let signature = parts
        .signature
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::Missing)?;
    let access_key = parts
        .access_key
        .ok_or_else(|| SignatureError::Malformed("no access_key".into()))?;
    let raw = parts
        .additional_data
        .ok_or_else(|| SignatureError::Malformed("no additional_data".into()))?;
    Ok(SignedPostback {
        signature,
        access_key,
        additional_data_compact: compact_json_as_received(raw.get())?,
    })
}

/// Verifies a whole postback body against the configured keys: the body's `access_key` must
/// be ours and its signature must match.
pub fn verify_postback_body(
    body: &str,
    access_key: &str,
    private_key: &str,
) -> Result<SignedPostback, SignatureError> {
    let parts = signed_parts(body)?;
    let key_ok = crate::crypto::ct_eq(parts.access_key.as_bytes(), access_key.as_bytes());
    let sig_ok = verify_postback(
        access_key,
        private_key,
        &parts.additional_data_compact,
        &parts.signature,
    );
    if key_ok && sig_ok {
        Ok(parts)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Compact JSON of a JSON text, key order and number spelling as received, `/` and
/// non-ASCII unescaped. Fails on text that is not JSON.
pub fn compact_json_as_received(raw_json_value_text: &str) -> Result<String, SignatureError> {
    let malformed = |e: serde_json::Error| SignatureError::Malformed(e.to_string());
    serde_json::from_str::<serde::de::IgnoredAny>(raw_json_value_text).map_err(malformed)?;
    let mut out = String::with_capacity(raw_json_value_text.len());
    let mut rest = raw_json_value_text;
    while let Some(c) = rest.chars().next() {
        match c {
            '"' => {
                let len = string_literal_len(rest);
                let decoded: String = serde_json::from_str(&rest[..len]).map_err(malformed)?;
                out.push_str(&serde_json::to_string(&decoded).map_err(malformed)?);
                rest = &rest[len..];
            }
            ' ' | '\t' | '\n' | '\r' => rest = &rest[1..],
            other => {
                out.push(other);
                rest = &rest[other.len_utf8()..];
            }
        }
    }
    Ok(out)
}

/// Byte length of the string literal at the start of `s` (which starts with `"`), including
/// both quotes. The text was validated as JSON first, so the closing quote exists.
fn string_literal_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The seed's postback example (test fixture for other modules).
#[cfg(test)]
pub(crate) fn tests_seed_postback() -> String {
    tests::SEED_POSTBACK.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's postback example, pretty-printed as in the document.
    pub(crate) const SEED_POSTBACK: &str = r#"{
"signature": "92a8aa6aabda4cffe9fcfc595a28c321c91d36b2",
"wallet_type": "bnb_ml",
"amount": 300,
"currency_code": "BTN",
"label": "labeluser",
"direction": "ingoing",
"created_datetime": "2026-01-27 09:32:02",
"access_key": "uowkn0b3LfBxpcWYHi4_",
"additional_data": [
{
"activated_datetime": "2026-01-27 09:32:01",
"exchanger_identifier": null,
"comment": "",
"amount": "300",
"currency_code": "BTN",
"wallet_type": "bnb_ml",
"stockpiling_id": 12057,
"transaction_id": "293397556789",
"transaction_type": 0,
"plugin_custom_order_id": "custom12345",
"withdrawal_id": null,
"withdrawal_status": null,
"account_number": "",
"account_name": "",
"account_email": "",
"bank_details": {
"bank_code": "",
"branch_code": ""
}
}
]
}"#;
    const ACCESS: &str = "uowkn0b3LfBxpcWYHi4_";
    const PRIVATE: &str = "PRIVATE_test_key_1";
    const SIG: &str = "caa5b706a406b7d08ff6712ac9972342f7950a85";

    fn seed_compact() -> String {
        signed_parts(SEED_POSTBACK)
            .expect("seed postback parses")
            .additional_data_compact
    }

    #[test]
    fn providers_md_vector() {
        let compact = seed_compact();
        assert!(compact.starts_with(
            r#"[{"activated_datetime":"2026-01-27 09:32:01","exchanger_identifier":null,"#
        ));
        assert_eq!(
            hex::encode(md5(compact.as_bytes())),
            "3329502fd3d15b5624e2ba80c76cfc18"
        );
        assert_eq!(postback_signature(ACCESS, PRIVATE, &compact), SIG);
        assert!(verify_postback(ACCESS, PRIVATE, &compact, SIG));
        let resigned = SEED_POSTBACK.replace("92a8aa6aabda4cffe9fcfc595a28c321c91d36b2", SIG);
        assert!(verify_postback_body(&resigned, ACCESS, PRIVATE).is_ok());
    }

    #[test]
    fn tampering_fails() {
        let compact = seed_compact();
        assert!(!verify_postback(
            ACCESS,
            "PRIVATE_test_key_2",
            &compact,
            SIG
        ));
        assert!(!verify_postback("other", PRIVATE, &compact, SIG));
        let tampered = compact.replace(r#""amount":"300""#, r#""amount":"3000""#);
        assert!(!verify_postback(ACCESS, PRIVATE, &tampered, SIG));
        // The seed's own signature was made with keys we do not have.
        assert_eq!(
            verify_postback_body(SEED_POSTBACK, ACCESS, PRIVATE),
            Err(SignatureError::Mismatch)
        );
        let resigned = SEED_POSTBACK.replace("92a8aa6aabda4cffe9fcfc595a28c321c91d36b2", SIG);
        let reordered = resigned.replace(
            "\"comment\": \"\",\n\"amount\": \"300\",",
            "\"amount\": \"300\",\n\"comment\": \"\",",
        );
        assert_ne!(reordered, resigned);
        assert_eq!(
            verify_postback_body(&reordered, ACCESS, PRIVATE),
            Err(SignatureError::Mismatch),
            "key order is signed"
        );
        assert_eq!(
            verify_postback_body(&resigned, "someone_else", PRIVATE),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            signed_parts("{\"access_key\":1"),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            signed_parts(r#"{"access_key":"a","additional_data":[]}"#),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn compaction_unescapes_slashes_and_unicode() {
        let raw = "[ {\"url\": \"https:\\/\\/x.example\\/a\", \"name\": \"\\u0416\u{00e9} \\\"q\\\"\", \"n\": 1.50, \"t\": true,\n \"c\": \"\\u0001\\n\"} ]";
        assert_eq!(
            compact_json_as_received(raw).expect("valid JSON"),
            "[{\"url\":\"https://x.example/a\",\"name\":\"Жé \\\"q\\\"\",\"n\":1.50,\"t\":true,\"c\":\"\\u0001\\n\"}]"
        );
        assert!(compact_json_as_received("[1,").is_err());
        assert!(compact_json_as_received("\"\\ud800\"").is_err());
    }
}
