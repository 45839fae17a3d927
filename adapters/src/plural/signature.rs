//! Plural (Pine Labs) signatures.
//!
//! - Return URL: HMAC-SHA256 keyed with the hex-decoded merchant secret over the received
//!   fields except `signature`, as `k=v` sorted by key and joined with `&`, not URL-encoded.
//!   Plural's sample code uppercases the hex; we produce uppercase and compare ignoring case.
//!   The seed names the status field `payment_status` in one place and `status` in another:
//!   we sign whatever fields were received.
//! - Webhooks (Standard-Webhooks style): `webhook-signature` = `v1,` +
//!   base64(HMAC-SHA256(secret bytes, `id.timestamp.body`)); the header may list several
//!   space-separated signatures (key rotation); timestamps more than
//!   [`WEBHOOK_TOLERANCE_S`] from now are refused as possible replays.

use crate::crypto::{ct_eq, ct_eq_hex, hmac_sha256};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

pub use crate::crypto::SignatureError;

/// Largest accepted distance between a webhook's timestamp and now, either way.
pub const WEBHOOK_TOLERANCE_S: i64 = 300;
/// Most signatures read from one `webhook-signature` header.
pub const WEBHOOK_SIGNATURES_MAX: usize = 8;
/// The field that carries the return-URL signature (never part of the signed message).
pub const SIGNATURE_FIELD: &str = "signature";

/// The return-URL signature over `fields` (a `signature` entry, if present, is skipped), as
/// uppercase hex. Fails only when `secret_hex` is not an even-length hex string.
pub fn return_url_signature(
    secret_hex: &str,
    fields: &[(&str, &str)],
) -> Result<String, SignatureError> {
    Ok(hex::encode_upper(return_url_mac(secret_hex, fields)?))
}

/// True when the received fields carry a `signature` that matches the others.
pub fn verify_return_url(secret_hex: &str, received: &[(&str, &str)]) -> bool {
    let Some((_, sig)) = received.iter().find(|(k, _)| *k == SIGNATURE_FIELD) else {
        return false;
    };
    match return_url_mac(secret_hex, received) {
        Ok(expected) => ct_eq_hex(sig, &expected),
        Err(_) => false,
    }
}

/// The message Plural signs for a return URL: `k=v` pairs sorted by key, joined with `&`.
pub fn return_url_message(fields: &[(&str, &str)]) -> String {
    let mut pairs: Vec<&(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| *k != SIGNATURE_FIELD)
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    joined.join("&")
}

fn return_url_mac(secret_hex: &str, fields: &[(&str, &str)]) -> Result<[u8; 32], SignatureError> {
    let key = hex::decode(secret_hex.trim())
        .map_err(|_| SignatureError::BadKey("Plural secret must be hex"))?;
    if key.is_empty() {
        return Err(SignatureError::BadKey("Plural secret is empty"));
    }
    Ok(hmac_sha256(&key, &[return_url_message(fields).as_bytes()]))
}

/// The `webhook-signature` value Plural sends for this message: `v1,<base64>`.
pub fn webhook_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        B64.encode(webhook_mac(secret, id, timestamp, body))
    )
}

/// Verifies a webhook: the timestamp is within [`WEBHOOK_TOLERANCE_S`] of `now_unix` and at
/// least one `v1,` signature in `header_value` matches.
pub fn verify_webhook(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header_value: &str,
    now_unix: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew_s = now_unix.saturating_sub(ts);
    if skew_s.abs() > WEBHOOK_TOLERANCE_S {
        return Err(SignatureError::Stale {
            skew_s,
            tolerance_s: WEBHOOK_TOLERANCE_S,
        });
    }
    let expected = webhook_mac(secret, id, timestamp, body);
    let candidates: Vec<&str> = header_value
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .take(WEBHOOK_SIGNATURES_MAX)
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Missing);
    }
    let matched = candidates
        .iter()
        .filter_map(|c| B64.decode(c).ok())
        .fold(false, |found, sig| found | ct_eq(&sig, &expected));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn webhook_mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(
        secret.as_bytes(),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff";
    const RETURN_SIG: &str = "37A14923923BA67E2106626F21F19BF21FDD489CD6D7CCDE3C1D897D286B54FB";
    const WH_SECRET: &str = "my_plural_secret";
    const WH_ID: &str = "msg_2mN8kYx1";
    const WH_TS: &str = "1721381603";
    const WH_BODY: &str = r#"{"event_type":"ORDER_PROCESSED","data":{"order_id":"v1-5757575757-aa-hU1rUd","status":"PROCESSED"}}"#;
    const WH_SIG: &str = "v1,4To0diMAs9t0sBip6f9vlmrfE+HQzmhr5fmCDEYUbtI=";

    #[test]
    fn return_url_vector() {
        // Field order as received does not matter: the message is sorted by key.
        let fields = [
            ("status", "AUTHORIZED"),
            ("order_id", "v1-4405071524-aa-qlAtAf"),
        ];
        assert_eq!(
            return_url_message(&fields),
            "order_id=v1-4405071524-aa-qlAtAf&status=AUTHORIZED"
        );
        assert_eq!(
            return_url_signature(KEY, &fields).as_deref(),
            Ok(RETURN_SIG)
        );
        let mut received = fields.to_vec();
        received.push(("signature", RETURN_SIG));
        assert!(verify_return_url(KEY, &received));
        let lower = RETURN_SIG.to_lowercase();
        received[2] = ("signature", lower.as_str());
        assert!(verify_return_url(KEY, &received), "hex case is ignored");
    }

    #[test]
    fn return_url_tampering_fails() {
        let tampered = [
            ("order_id", "v1-4405071524-aa-qlAtAf"),
            ("status", "PROCESSED"),
            ("signature", RETURN_SIG),
        ];
        assert!(!verify_return_url(KEY, &tampered));
        let unsigned = [
            ("order_id", "v1-4405071524-aa-qlAtAf"),
            ("status", "AUTHORIZED"),
        ];
        assert!(!verify_return_url(KEY, &unsigned));
        let other_key = [
            ("order_id", "v1-4405071524-aa-qlAtAf"),
            ("status", "AUTHORIZED"),
            ("signature", RETURN_SIG),
        ];
        assert!(!verify_return_url(
            "ffeeddccbbaa99887766554433221100",
            &other_key
        ));
        assert!(matches!(
            return_url_signature("not-hex", &[]),
            Err(SignatureError::BadKey(_))
        ));
        assert!(!verify_return_url("not-hex", &other_key));
    }

    #[test]
    fn webhook_vector() {
        assert_eq!(
            webhook_signature(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes()),
            WH_SIG
        );
        let now = 1_721_381_603 + 10;
        assert_eq!(
            verify_webhook(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), WH_SIG, now),
            Ok(())
        );
        let several = format!("v1,AAAA v1,bm90IGl0 {WH_SIG}");
        assert_eq!(
            verify_webhook(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), &several, now),
            Ok(())
        );
    }

    #[test]
    fn webhook_tampering_and_replay_fail() {
        let now = 1_721_381_603;
        let body = WH_BODY.replace("PROCESSED\"}", "CANCELLED\"}");
        let v = |secret: &str, id: &str, ts: &str, body: &[u8], sig: &str, now: i64| {
            verify_webhook(secret, id, ts, body, sig, now)
        };
        assert_eq!(
            v(WH_SECRET, WH_ID, WH_TS, body.as_bytes(), WH_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v(
                WH_SECRET,
                "msg_other",
                WH_TS,
                WH_BODY.as_bytes(),
                WH_SIG,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v("wrong", WH_ID, WH_TS, WH_BODY.as_bytes(), WH_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), "", now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), "v2,xyz", now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v(WH_SECRET, WH_ID, "soon", WH_BODY.as_bytes(), WH_SIG, now),
            Err(SignatureError::BadTimestamp)
        );
        let late = now + WEBHOOK_TOLERANCE_S + 1;
        assert!(matches!(
            v(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), WH_SIG, late),
            Err(SignatureError::Stale { .. })
        ));
        let early = now - WEBHOOK_TOLERANCE_S - 1;
        assert!(matches!(
            v(WH_SECRET, WH_ID, WH_TS, WH_BODY.as_bytes(), WH_SIG, early),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            v(
                WH_SECRET,
                WH_ID,
                WH_TS,
                WH_BODY.as_bytes(),
                WH_SIG,
                now + WEBHOOK_TOLERANCE_S
            ),
            Ok(())
        );
    }
}
