//! Signatures, taken from `paystate-adapters` so both sides sign the same way; everything
//! else on the wire is written here from the provider documents.
//!
//! `corrupt` spoils a finished signature for the bad-signature fault: it stays well-formed
//! (same length and alphabet) so only a real verification notices.

use paystate_adapters::{exchanger, flitt, paykassma, plural};
use serde_json::{Map, Value};

pub(crate) fn plural_webhook(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    plural::signature::webhook_signature(secret, id, timestamp, body)
}

/// The return-URL signature; `None` when the configured secret is not hex.
pub(crate) fn plural_return_url(secret_hex: &str, fields: &[(&str, &str)]) -> Option<String> {
    plural::signature::return_url_signature(secret_hex, fields).ok()
}

pub(crate) fn flitt_sign(password: &str, params: &Map<String, Value>) -> String {
    flitt::signature::sign(password, params)
}

/// True when `params` carries a valid `signature` (constant time).
pub(crate) fn flitt_verify(password: &str, params: &Map<String, Value>) -> bool {
    flitt::signature::verify(password, params)
}

pub(crate) fn paykassma_postback(
    access_key: &str,
    private_key: &str,
    additional_data_json: &str,
) -> String {
    paykassma::signature::postback_signature(access_key, private_key, additional_data_json)
}

/// The exchanger IPN signature over the documented fields, in order.
pub(crate) fn exchanger_ipn(fields: [&str; 7], secret: &str) -> String {
    let [order_id, status, in_amount, out_amount, xml_from, xml_to, timestamp] = fields;
    exchanger::signature::ipn_signature(
        order_id, status, in_amount, out_amount, xml_from, xml_to, timestamp, secret,
    )
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Spoils a signature while keeping its shape: the last character changes within its class.
pub(crate) fn corrupt(signature: &str) -> String {
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(last) = chars.iter().rposition(|c| c.is_ascii_alphanumeric()) {
        chars[last] = match chars[last] {
            '0' => '1',
            'a' => 'b',
            'A' => 'B',
            c if c.is_ascii_digit() => '0',
            c if c.is_ascii_lowercase() => 'a',
            _ => 'A',
        };
    } else {
        chars.push('0');
    }
    chars.into_iter().collect()
}
