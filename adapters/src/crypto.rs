//! Shared signing helpers: digests, HMACs and constant-time comparison.
//!
//! Every provider's `signature` module builds its own message and calls these. Comparisons of
//! received signatures against computed ones go through [`ct_eq`] (or `hmac`'s own
//! `verify_slice`), never `==`, so timing does not reveal how much of a forgery was right.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a signature could not be computed or did not verify. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The configured key is unusable (e.g. Plural's secret is not hex).
    #[error("signing key is not usable: {0}")]
    BadKey(&'static str),
    /// The message carried no signature where one is required.
    #[error("signature missing")]
    Missing,
    /// A signature was present and did not match.
    #[error("signature mismatch")]
    Mismatch,
    /// The signed timestamp is not an integer number of seconds.
    #[error("signature timestamp is not a unix time")]
    BadTimestamp,
    /// The signed timestamp is further from now than the tolerance allows (replay guard).
    #[error("signature timestamp is {skew_s} s from now (tolerance {tolerance_s} s)")]
    Stale { skew_s: i64, tolerance_s: i64 },
    /// The signed payload could not be read (e.g. not JSON where JSON is signed).
    #[error("signed payload is malformed: {0}")]
    Malformed(String),
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Compares a received hex signature with computed digest bytes, ignoring hex case, in
/// constant time. A received value that is not hex is simply a mismatch.
pub fn ct_eq_hex(received_hex: &str, expected: &[u8]) -> bool {
    match hex::decode(received_hex.trim()) {
        Ok(bytes) => ct_eq(&bytes, expected),
        Err(_) => false,
    }
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256. HMAC accepts keys of any length, so this cannot fail.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        // Why: HMAC's new_from_slice only fails for fixed-size-key MACs, never for HMAC.
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-MD5 (Plexy's Tilda plugin).
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = match Hmac::<Md5>::new_from_slice(key) {
        Ok(m) => m,
        // Why: as above, HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_comparison_ignores_case_and_rejects_junk() {
        let d = sha1(b"abc");
        let lower = hex::encode(d);
        assert!(ct_eq_hex(&lower, &d));
        assert!(ct_eq_hex(&lower.to_uppercase(), &d));
        assert!(!ct_eq_hex("zz", &d));
        assert!(!ct_eq_hex(&lower[..38], &d));
    }
}
