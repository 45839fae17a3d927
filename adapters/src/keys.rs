//! Provider-side idempotency keys and references, derived deterministically from our ids so
//! a retried operation carries the same key and the provider can de-duplicate it.
//!
//! Form: `{order_id}{sep}{op}{sep}{op_id}` when that fits the provider's length limit and
//! `op_id` uses only `A-Z a-z 0-9 _ -`; otherwise `{order_id}{sep}{op}{sep}{h}` with `h` the
//! first 16 hex digits of SHA-256 over `order_id|op|op_id`; and if even that is too long,
//! `h` (full, truncated to the limit). The order id is always recoverable from the first two
//! forms by splitting at the first `sep` when `sep` cannot occur in order ids (`.`).

use crate::crypto::sha256;
use paystate_events::OrderId;

/// A provider's constraints on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRules {
    pub len_max: usize,
    pub sep: char,
}

/// The key for operation `op` (e.g. `capture`) with our id `op_id` on `order_id`.
pub fn derive_key(order_id: &OrderId, op: &str, op_id: &str, rules: KeyRules) -> String {
    let sep = rules.sep;
    let plain_ok = !op_id.is_empty()
        && op_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let plain = format!("{order_id}{sep}{op}{sep}{op_id}");
    if plain_ok && plain.len() <= rules.len_max {
        return plain;
    }
    let digest = hex::encode(sha256(format!("{order_id}|{op}|{op_id}").as_bytes()));
    let short = format!("{order_id}{sep}{op}{sep}{}", &digest[..16]);
    if short.len() <= rules.len_max {
        return short;
    }
    digest.chars().take(rules.len_max).collect()
}

/// A reference that is just our order id when it fits, else its hash (for providers whose
/// order reference is shorter than our ids).
pub fn order_reference(order_id: &OrderId, len_max: usize) -> String {
    if order_id.as_str().len() <= len_max {
        return order_id.to_string();
    }
    hex::encode(sha256(order_id.as_str().as_bytes()))
        .chars()
        .take(len_max)
        .collect()
}

/// The order id at the front of a key made with `sep` = `.` (which order ids never contain).
pub fn order_id_of(key: &str) -> Option<OrderId> {
    let (front, _) = key.split_once('.')?;
    OrderId::parse(front).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> OrderId {
        OrderId::parse(s).expect("valid order id")
    }

    #[test]
    fn keys_are_deterministic_bounded_and_recoverable() {
        let dot = KeyRules {
            len_max: 190,
            sep: '.',
        };
        let k = derive_key(&oid("ord-1"), "capture", "cmd-7", dot);
        assert_eq!(k, "ord-1.capture.cmd-7");
        assert_eq!(derive_key(&oid("ord-1"), "capture", "cmd-7", dot), k);
        assert_ne!(derive_key(&oid("ord-1"), "capture", "cmd-8", dot), k);
        let dotted = derive_key(&oid("ord-1"), "refund", "sig.x.1", dot);
        assert_eq!(dotted.len(), "ord-1.refund.".len() + 16);
        assert_eq!(order_id_of(&dotted), Some(oid("ord-1")));
        let long = "x".repeat(64);
        let tight = derive_key(
            &oid(&long),
            "refund",
            "r1",
            KeyRules {
                len_max: 50,
                sep: '-',
            },
        );
        assert_eq!(tight.len(), 50);
        assert!(tight.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(order_reference(&oid("ord-1"), 50), "ord-1");
        assert_eq!(order_reference(&oid(&long), 50).len(), 50);
        assert_eq!(order_id_of("no-dot"), None);
    }
}
