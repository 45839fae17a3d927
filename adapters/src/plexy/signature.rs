//! Plexy authentication and signatures.
//!
//! - Webhooks carry `Authorization: Bearer <webhook token>`, a static token compared in
//!   constant time ([`verify_bearer`]).
//! - The Tilda plugin form is signed over `store_id:currency:amount:secret` with MD5 where
//!   "the secret is the HMAC key". We read that as HMAC-MD5 keyed with the secret over a
//!   message that also ends in the secret ([`TildaMode::HmacMd5`], the default); plain MD5
//!   of the same string is the other reading ([`TildaMode::PlainMd5`]). Which one Plexy
//!   runs is unconfirmed, so the mode is configuration. Lowercase hex.

use crate::crypto::{ct_eq, ct_eq_hex, hmac_md5, md5};
use crate::secret::Secret;
use serde::Deserialize;

pub use crate::crypto::SignatureError;

/// How the Tilda signature is computed (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TildaMode {
    /// HMAC-MD5(key = secret, message = `store_id:currency:amount:secret`).
    #[default]
    HmacMd5,
    /// MD5(`store_id:currency:amount:secret`).
    PlainMd5,
}

/// The Tilda form signature, lowercase hex. `amount` is the form's `order[amount]` text
/// (minor units) exactly as sent or received.
pub fn tilda_signature(
    store_id: &str,
    currency: &str,
    amount: &str,
    secret: &str,
    mode: TildaMode,
) -> String {
    hex::encode(tilda_digest(store_id, currency, amount, secret, mode))
}

/// True when `received` is the Tilda signature of these fields (constant time, any hex case).
pub fn verify_tilda(
    store_id: &str,
    currency: &str,
    amount: &str,
    secret: &str,
    mode: TildaMode,
    received: &str,
) -> bool {
    ct_eq_hex(
        received,
        &tilda_digest(store_id, currency, amount, secret, mode),
    )
}

fn tilda_digest(
    store_id: &str,
    currency: &str,
    amount: &str,
    secret: &str,
    mode: TildaMode,
) -> [u8; 16] {
    let message = format!("{store_id}:{currency}:{amount}:{secret}");
    match mode {
        TildaMode::HmacMd5 => hmac_md5(secret.as_bytes(), message.as_bytes()),
        TildaMode::PlainMd5 => md5(message.as_bytes()),
    }
}

/// True when an `Authorization` header value is `Bearer <expected_token>` (scheme name
/// case-insensitive, token compared in constant time). An empty expected token never matches.
pub fn verify_bearer(expected_token: &Secret, header_value: &str) -> bool {
    let Some((scheme, token)) = header_value.trim().split_once(' ') else {
        return false;
    };
    !expected_token.is_empty()
        && scheme.eq_ignore_ascii_case("bearer")
        && ct_eq(token.trim().as_bytes(), expected_token.expose().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilda_vector() {
        let sig = tilda_signature("store-42", "USD", "999", "s3cr3t", TildaMode::HmacMd5);
        assert_eq!(sig, "c9fc193bd7ecd2ac2a60196570db3aaa");
        assert!(verify_tilda(
            "store-42",
            "USD",
            "999",
            "s3cr3t",
            TildaMode::HmacMd5,
            &sig
        ));
        assert!(verify_tilda(
            "store-42",
            "USD",
            "999",
            "s3cr3t",
            TildaMode::HmacMd5,
            &sig.to_uppercase()
        ));
        let plain = tilda_signature("store-42", "USD", "999", "s3cr3t", TildaMode::PlainMd5);
        assert_eq!(plain, hex::encode(md5(b"store-42:USD:999:s3cr3t")));
        assert_ne!(plain, sig);
    }

    #[test]
    fn tilda_tampering_fails() {
        let sig = "c9fc193bd7ecd2ac2a60196570db3aaa";
        assert!(!verify_tilda(
            "store-42",
            "USD",
            "9990",
            "s3cr3t",
            TildaMode::HmacMd5,
            sig
        ));
        assert!(!verify_tilda(
            "store-42",
            "EUR",
            "999",
            "s3cr3t",
            TildaMode::HmacMd5,
            sig
        ));
        assert!(!verify_tilda(
            "store-43",
            "USD",
            "999",
            "s3cr3t",
            TildaMode::HmacMd5,
            sig
        ));
        assert!(!verify_tilda(
            "store-42",
            "USD",
            "999",
            "other",
            TildaMode::HmacMd5,
            sig
        ));
        assert!(!verify_tilda(
            "store-42",
            "USD",
            "999",
            "s3cr3t",
            TildaMode::PlainMd5,
            sig
        ));
        assert!(!verify_tilda(
            "store-42",
            "USD",
            "999",
            "s3cr3t",
            TildaMode::HmacMd5,
            ""
        ));
    }

    #[test]
    fn bearer_token() {
        let token = Secret::new("whk_abc123");
        assert!(verify_bearer(&token, "Bearer whk_abc123"));
        assert!(verify_bearer(&token, "bearer whk_abc123 "));
        assert!(!verify_bearer(&token, "whk_abc123"));
        assert!(!verify_bearer(&token, "Basic whk_abc123"));
        assert!(!verify_bearer(&token, "Bearer whk_abc124"));
        assert!(!verify_bearer(&token, "Bearer whk_abc12"));
        assert!(!verify_bearer(&Secret::new(""), "Bearer "));
    }
}
