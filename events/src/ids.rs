//! Identifiers, parsed at the edge. Order ids become NATS subject tokens and command ids
//! become `Nats-Msg-Id` headers and KV keys, so both are restricted to a safe alphabet.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest order id and command id accepted (defined in [`crate::limits`]).
pub use crate::limits::{COMMAND_ID_LEN_MAX, ORDER_ID_LEN_MAX};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    #[error("character {0:?} is not allowed (use A-Z a-z 0-9 _ - and, in command ids, . )")]
    BadChar(char),
    #[error("a dot may stand only between two other characters (not first, last or doubled)")]
    BadDot,
}

fn check(s: &str, max: usize, allow_dot: bool) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { max });
    }
    match s.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || (allow_dot && *c == '.'))
    }) {
        Some(c) => Err(IdError::BadChar(c)),
        // Why: ids become KV keys and subject-like tokens, where an empty dot-separated token
        // is invalid; refusing it here makes the alphabet exactly what every key accepts.
        None if allow_dot && s.split('.').any(str::is_empty) => Err(IdError::BadDot),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $dot:expr, $pattern:expr, $len:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern, "minLength": 1, "maxLength": $len})
            }
        }

        impl $name {
            /// Parses and validates an identifier.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check(&s, $max, $dot)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(s).map_err(|e| format!("{}: {} {}", crate::outcome::RejectionCode::InvalidId.as_str(), stringify!($name), e))
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A payment order's id: 1..=64 of `A-Z a-z 0-9 _ -`. It is the order's NATS subject token.
    OrderId, ORDER_ID_LEN_MAX, false, "^[A-Za-z0-9_-]+$", 64
);
id_type!(
    /// A command's id, the idempotency key: 1..=128 of `A-Z a-z 0-9 _ - .`, a dot only between
    /// two other characters (never first, last or doubled: the id is part of KV keys).
    /// The same id twice has the effect of once.
    CommandId, COMMAND_ID_LEN_MAX, true, "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", 128
);

/// Which of `shards` shards an order belongs to: FNV-1a (64-bit) over the order id, modulo
/// `shards` (at least 1). Stable across builds, platforms and Rust versions (unlike
/// `DefaultHasher`), so every process that splits work by order (audit and rebuild workers,
/// reconciler instances) agrees on it.
pub fn shard_of(order: &str, shards: usize) -> usize {
    let hash = order.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_fnv_1a_and_stable() {
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c (the published test vector).
        assert_eq!(
            shard_of("a", usize::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % usize::MAX as u64) as usize
        );
        assert_eq!(shard_of("order-1", 1), 0);
        assert_eq!(shard_of("order-1", 0), 0, "no shards count as one");
        assert!((0..100).all(|i| shard_of(&format!("o{i}"), 7) < 7));
    }

    #[test]
    fn order_ids_are_subject_safe() {
        assert!(OrderId::parse("ord_1-A").is_ok());
        assert_eq!(OrderId::parse(""), Err(IdError::Empty));
        assert_eq!(OrderId::parse("a.b"), Err(IdError::BadChar('.')));
        assert_eq!(OrderId::parse("a*"), Err(IdError::BadChar('*')));
        assert_eq!(
            OrderId::parse("x".repeat(65)),
            Err(IdError::TooLong { max: 64 })
        );
        assert!(CommandId::parse("sig.plural.abc-1").is_ok());
        assert!(CommandId::parse("a b").is_err());
        for bad in ["cap.", ".cap", "a..b", "."] {
            assert_eq!(CommandId::parse(bad), Err(IdError::BadDot), "{bad}");
        }
    }

    #[test]
    fn ids_reject_bad_json() {
        assert!(serde_json::from_str::<OrderId>("\"a>b\"").is_err());
        let id: CommandId = serde_json::from_str("\"c-1\"").unwrap();
        assert_eq!(id.as_str(), "c-1");
    }
}
