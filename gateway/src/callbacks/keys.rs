//! Names derived from what a provider reported: the dedup key of a report and the keys of
//! the seen and held buckets. Every field is length-prefixed before it is hashed, so no two
//! different (provider, order, key) triples can hash the same bytes (`ab` + `c` ≠ `a` + `bc`).

use paystate_events::{OrderId, Provider};
use sha2::{Digest, Sha256};

/// Hex digits of a dedup key (128 bits of SHA-256).
const DEDUP_HEX_LEN: usize = 32;
/// Version tag hashed first: a change of the scheme never reuses an old key by accident.
const SCHEME: &[u8] = b"paystate.callback.dedup.v2";

/// What identifies one report across resends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Identity<'a> {
    /// The provider's own event identity (webhook id, transaction id and status, ...).
    Key(&'a str),
    /// Nothing stable: the signed content itself (or a status query's answer).
    Content(&'a [u8]),
}

/// The dedup key of a report about `order`: the same report (resends included) always gets
/// the same key; it also names the report's command ids (`cb.<provider>.<dedup>.<i>`).
pub(crate) fn dedup_hash(provider: Provider, order: &OrderId, id: Identity<'_>) -> String {
    let mut h = Sha256::new();
    field(&mut h, SCHEME);
    field(&mut h, provider.as_str().as_bytes());
    field(&mut h, order.as_str().as_bytes());
    match id {
        Identity::Key(k) => {
            field(&mut h, b"key");
            field(&mut h, k.as_bytes());
        }
        Identity::Content(c) => {
            field(&mut h, b"content");
            field(&mut h, c);
        }
    }
    let mut hex = hex::encode(h.finalize());
    hex.truncate(DEDUP_HEX_LEN);
    hex
}

/// `len (8 bytes, big endian) ‖ bytes`.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The seen bucket's key of a report (`<provider>.<dedup>`).
pub(crate) fn seen_key(provider: Provider, dedup: &str) -> String {
    format!("{provider}.{dedup}")
}

/// The held bucket's key of one received callback (`<provider>.<raw stream sequence>`).
pub(crate) fn held_key(provider: Provider, raw_seq: u64) -> String {
    format!("{provider}.{raw_seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(s: &str) -> OrderId {
        OrderId::parse(s).expect("order id")
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        let p = Provider::Plural;
        // The old scheme hashed `provider ‖ order ‖ key`: these two collided.
        assert_ne!(
            dedup_hash(p, &order("ab"), Identity::Key("c")),
            dedup_hash(p, &order("a"), Identity::Key("bc"))
        );
        // A key and a body with the same bytes are different identities.
        assert_ne!(
            dedup_hash(p, &order("a"), Identity::Key("x")),
            dedup_hash(p, &order("a"), Identity::Content(b"x"))
        );
        assert_ne!(
            dedup_hash(Provider::Plural, &order("a"), Identity::Key("x")),
            dedup_hash(Provider::Plexy, &order("a"), Identity::Key("x"))
        );
    }

    #[test]
    fn the_same_report_gets_the_same_key() {
        let a = dedup_hash(Provider::Flitt, &order("o-1"), Identity::Content(b"{}"));
        let b = dedup_hash(Provider::Flitt, &order("o-1"), Identity::Content(b"{}"));
        assert_eq!(a, b);
        assert_eq!(a.len(), DEDUP_HEX_LEN);
    }
}
