//! The typed command read straight from the JSON value (issue 15). serde's derived reader of
//! `CommandEnvelope` (a flattened, internally tagged `Command`) first copies every member
//! into a buffer, then reads the variant from that buffer; this reads each field from the
//! value with the field type's own serde reader, by the derive's rules: required fields
//! present, `#[serde(default)]` fields defaulted when absent, `Option` fields `None` for
//! `null`, other members ignored (unknown fields are refused later). It answers `None` for
//! anything it cannot read (a missing or bad field): serde's reader then gives the error, or
//! the value, so the answer is serde's either way (the differential tests compare).

use paystate_events::{Command, CommandEnvelope};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The envelope in `v`, where every field reads; `None` otherwise.
pub fn envelope(v: &Value) -> Option<CommandEnvelope> {
    let obj = v.as_object()?;
    let command = match obj.get("type")?.as_str()? {
        "create_order" => Command::CreateOrder {
            merchant_reference: required(obj, "merchant_reference")?,
            amount: required(obj, "amount")?,
            provider: required(obj, "provider")?,
            capture_mode: required(obj, "capture_mode")?,
            expires_at: defaulted(obj, "expires_at")?,
            merchant_account: defaulted(obj, "merchant_account")?,
            metadata: defaulted(obj, "metadata")?,
        },
        "start_payment" => Command::StartPayment {
            initiation: defaulted(obj, "initiation")?,
        },
        "capture" => Command::Capture {
            amount: defaulted(obj, "amount")?,
        },
        "cancel" => Command::Cancel {
            reason: defaulted(obj, "reason")?,
        },
        "refund" => Command::Refund {
            amount: defaulted(obj, "amount")?,
        },
        "confirm_transfer" => Command::ConfirmTransfer {
            reference: required(obj, "reference")?,
            attachment: required(obj, "attachment")?,
        },
        "expire" => Command::Expire,
        "resolve_review" => Command::ResolveReview {
            operator: required(obj, "operator")?,
            reason: required(obj, "reason")?,
        },
        "provider_signal" => Command::ProviderSignal {
            signal: required(obj, "signal")?,
        },
        _ => return None,
    };
    Some(CommandEnvelope {
        command_id: required(obj, "command_id")?,
        order_id: required(obj, "order_id")?,
        issued_at: timestamp(obj, "issued_at")?,
        command,
    })
}

/// A field without a default: present and readable.
fn required<'a, T: Deserialize<'a>>(obj: &'a Map<String, Value>, key: &str) -> Option<T> {
    T::deserialize(obj.get(key)?).ok()
}

/// A required timestamp: the shape commands carry read without chrono's general parser (the
/// same instant, `parse_utc_as_written`'s proptest shows), anything else as [`required`].
fn timestamp(obj: &Map<String, Value>, key: &str) -> Option<paystate_events::Timestamp> {
    match obj.get(key)? {
        Value::String(s) => {
            paystate_events::fast_decode::parse_utc_as_written(s).or_else(|| required(obj, key))
        }
        _ => required(obj, key),
    }
}

/// A `#[serde(default)]` field (every `Option` field of a command is one): the default when
/// absent, else readable.
fn defaulted<'a, T: Deserialize<'a> + Default>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Option<T> {
    match obj.get(key) {
        None => Some(T::default()),
        Some(v) => T::deserialize(v).ok(),
    }
}
