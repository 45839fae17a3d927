//! Card data must never enter the immutable log: once appended it can be neither edited nor
//! deleted. Client commands are scanned before anything is written: every string value for
//! a card number (13–19 digits, optionally grouped by single spaces or dashes, passing the
//! Luhn check), and every object key for names that hold card data (PAN, CVV, CVC, ...).

use serde_json::Value;

/// Shortest and longest card numbers (ISO/IEC 7812).
pub const PAN_DIGITS_MIN: usize = 13;
pub const PAN_DIGITS_MAX: usize = 19;
/// Deepest nesting scanned (commands are shallow; serde_json refuses beyond 128 anyway).
const DEPTH_MAX: usize = 128;

/// Field names (lower case, `_` and `-` removed) that only card data would go under.
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

/// Where card data was found: a JSON path and what it looked like (never the data itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub what: &'static str,
}

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

/// Whether `text` holds a run of 13–19 digits (single spaces or dashes between digits are
/// allowed, as card numbers are often written in groups) that passes the Luhn check. A run
/// is bounded by anything that is not a digit or a single separator between digits.
pub fn has_card_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut digits: Vec<u8> = Vec::with_capacity(PAN_DIGITS_MAX + 1);
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        match b {
            Some(d @ b'0'..=b'9') => digits.push(d - b'0'),
            Some(b' ' | b'-')
                if !digits.is_empty() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            _ => {
                if (PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&digits.len()) && luhn(&digits) {
                    return true;
                }
                digits.clear();
            }
        }
        i += 1;
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn card_numbers_are_found_in_any_grouping() {
        for pan in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "card 5555555555554444 exp 12/30",
            "378282246310005",
            "6011111111111117",
            "4222222222222",
        ] {
            assert!(has_card_number(pan), "{pan}");
        }
    }

    #[test]
    fn ordinary_numbers_are_not_card_numbers() {
        for text in [
            "4111111111111112",        // fails Luhn
            "411111111111",            // 12 digits
            "41111111111111111111111", // 23 digits: not a card number run
            "2026-11-22T10:00:00Z",
            "order-12345",
            "+7 999 123 45 67",
            "4111  1111 1111 1111", // double space splits the run
            "123e4567-e89b-12d3-a456-426614174000",
        ] {
            assert!(!has_card_number(text), "{text}");
        }
    }

    #[test]
    fn findings_name_the_path_not_the_data() {
        let v = json!({"initiation": {"params": {"payment_option": "4111111111111111"}}});
        let f = find(&v).unwrap();
        assert_eq!(f.path, "initiation.params.payment_option");
        assert!(!format!("{f:?}").contains("4111"));
        let v = json!({"metadata": {"Card_Number": "x"}});
        assert_eq!(find(&v).unwrap().path, "metadata.Card_Number");
        let v = json!({"list": [{"CVV": "123"}]});
        assert_eq!(find(&v).unwrap().path, "list[0].CVV");
        assert_eq!(
            find(&json!({"amount": {"minor_units": 4111111111111111u64}})),
            None
        );
    }

    #[test]
    fn luhn_matches_known_values() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }
}
