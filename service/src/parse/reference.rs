//! The parser as it was before the fast path (issue 15), kept verbatim as the reference the
//! differential tests compare the production parser against: same input, same answer. The
//! steps this pass did not change (JSON errors, the command type, the plane check, serde's
//! typed read and its error classes) are the production parser's own, called from here; so
//! is the check of the subject's form, a later fix made to both (a subject on a plane must
//! have exactly one valid order token).

use super::{
    check_plane, command_type, fields, json_error, subject_order, typed_by_serde as typed,
};
use crate::config::COMMAND_BYTES_MAX;
use crate::strict_json;
use paystate_events::subjects::{plane_of, Plane};
use paystate_events::{CommandEnvelope, Rejection, RejectionCode as Code};

/// Parses `bytes` published on `subject` (`paystate.cmd.<order>`, `paystate.signal.<order>`
/// or `paystate.op.<order>`).
/// In order: size, the subject's form, JSON without repeated keys, a known type allowed on
/// the subject's plane, no card data (client plane), the field rules (ids, times, amounts),
/// the typed command, no unknown fields, the order id matching the subject.
pub fn parse_command(bytes: &[u8], subject: &str) -> Result<CommandEnvelope, Rejection> {
    let plane = plane_of(subject).unwrap_or(Plane::Client);
    if bytes.len() > COMMAND_BYTES_MAX {
        return Err(Rejection::new(
            Code::CommandTooLarge,
            format!(
                "command is {} bytes; the limit is {COMMAND_BYTES_MAX}",
                bytes.len()
            ),
        ));
    }
    // Not in the original: a fix to both parsers (a dotted or empty order token on a plane).
    let subject_order = subject_order(subject)?;
    let value = strict_json::from_slice(bytes).map_err(|e| json_error(bytes, &e))?;
    let Some(obj) = value.as_object() else {
        return Err(Rejection::new(
            Code::MalformedJson,
            "a command is a JSON object",
        ));
    };
    check_plane(command_type(obj.get("type"))?, plane)?;
    if plane != Plane::Signal {
        // Provider signals (signal plane) carry provider references and evidence, which may
        // be long digit strings by chance; what a client or an operator sends is scanned.
        if let Some(found) = card_data::find(&value) {
            return Err(Rejection::new(
                Code::SensitiveData,
                format!(
                    "{} holds {}: card data must never enter the log (send a token or a masked number)",
                    found.path, found.what
                ),
            ));
        }
    }
    fields::check_slow(&value)?;
    let env = typed(&value, bytes.len())?;
    if let Some(field) = serde_json::to_value(&env)
        .ok()
        .and_then(|back| fields::unknown_field(&value, &back))
    {
        return Err(Rejection::new(
            Code::InvalidField,
            format!(
                "{field}: unknown field (not part of a {} command)",
                env.command.name()
            ),
        ));
    }
    if let Some(order) = subject_order {
        if order != env.order_id.as_str() {
            return Err(Rejection::new(
                Code::SubjectMismatch,
                format!(
                    "order_id: published on order {order} but the body names order {}",
                    env.order_id
                ),
            ));
        }
    }
    Ok(env)
}

/// The card-data scan as it was (allocating a folded name per key and a path per member).
mod card_data {
    use crate::card_data::{Finding, PAN_DIGITS_MAX, PAN_DIGITS_MIN};
    use serde_json::Value;
    const DEPTH_MAX: usize = 128;
    const CARD_FIELD_NAMES: [&str; 13] = [
        "pan",
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "cid",
        "cardnumber",
        "cardno",
        "cardnum",
        "cardsecuritycode",
        "securitycode",
        "cardverificationvalue",
        "cardverificationcode",
    ];

    /// The first place in `value` that holds or names card data.
    pub fn find(value: &Value) -> Option<Finding> {
        walk(value, &mut String::new(), 0)
    }

    fn walk(value: &Value, path: &mut String, depth: usize) -> Option<Finding> {
        if depth > DEPTH_MAX {
            return None;
        }
        match value {
            Value::String(s) if has_card_number(s) => Some(Finding {
                path: display(path),
                what: "a card number (13-19 digits passing the Luhn check)",
            }),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let found = if is_card_field(k) {
                    Some(Finding {
                        path: display(path),
                        what: "a field named for card data (PAN, CVV, CVC)",
                    })
                } else if has_card_number(k) {
                    Some(Finding {
                        path: display(path),
                        what: "a card number in a field name",
                    })
                } else {
                    walk(v, path, depth + 1)
                };
                path.truncate(len);
                found
            }),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path, depth + 1);
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }

    fn display(path: &str) -> String {
        let p = path.strip_prefix('.').unwrap_or(path);
        // Why: a path is built from the message's own keys; keep it short in messages.
        p.chars().take(120).collect()
    }

    /// Whether `name` is a field name that only card data would go under.
    pub fn is_card_field(name: &str) -> bool {
        let folded: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-' && *c != ' ')
            .flat_map(char::to_lowercase)
            .collect();
        CARD_FIELD_NAMES.contains(&folded.as_str())
    }

    /// Whether `text` holds a run of 13–19 digits that passes the Luhn check: contiguous, or
    /// grouped by single spaces or dashes the way card numbers are printed (4-4-4-4 with a
    /// shorter last group, 4-6-5, 4-6-4). Other groupings (UUIDs, dates, phone numbers) are not
    /// card numbers. A run is bounded by anything that is not a digit or such a separator.
    pub fn has_card_number(text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut groups: Vec<usize> = Vec::new();
        let mut current = 0usize;
        for i in 0..=bytes.len() {
            match bytes.get(i).copied() {
                Some(b'0'..=b'9') => current += 1,
                Some(b' ' | b'-')
                    if current > 0 && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) =>
                {
                    groups.push(current);
                    current = 0;
                }
                _ => {
                    if current > 0 {
                        groups.push(current);
                    }
                    let end = i;
                    let len: usize = groups.iter().sum::<usize>() + groups.len().saturating_sub(1);
                    if card_shaped(&groups)
                        && (groups.len() == 1 || standalone(bytes, end - len, end))
                    {
                        let digits: Vec<u8> = bytes[end - len..end]
                            .iter()
                            .filter(|b| b.is_ascii_digit())
                            .map(|b| b - b'0')
                            .collect();
                        if luhn(&digits) {
                            return true;
                        }
                    }
                    groups.clear();
                    current = 0;
                }
            }
        }
        false
    }

    /// Whether `bytes[start..end]` stands alone: no letter or digit right before or after it. A
    /// grouped card number is printed as a word; inside a UUID or a longer token it is not one
    /// (which makes UUIDs, the usual idempotency keys, never match).
    fn standalone(bytes: &[u8], start: usize, end: usize) -> bool {
        let alnum = |i: Option<usize>| {
            i.and_then(|i| bytes.get(i))
                .is_some_and(u8::is_ascii_alphanumeric)
        };
        !alnum(start.checked_sub(1)) && !alnum(Some(end))
    }

    /// Whether digit groups have a card number's length and printed grouping.
    fn card_shaped(groups: &[usize]) -> bool {
        let total: usize = groups.iter().sum();
        if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&total) {
            return false;
        }
        match groups {
            [_] => true,
            [4, 6, 5] | [4, 6, 4] => true,
            [init @ .., last] => init.iter().all(|g| *g == 4) && (1..=4).contains(last),
            [] => false,
        }
    }

    /// The Luhn (mod 10) check over decimal digits.
    pub fn luhn(digits: &[u8]) -> bool {
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d);
                if i % 2 == 1 {
                    let x = d * 2;
                    if x > 9 {
                        x - 9
                    } else {
                        x
                    }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}
