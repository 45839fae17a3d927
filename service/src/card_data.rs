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
    walk(value, &mut Vec::new(), 0)
}

/// One step of the path to a member: the text of the path is only built for a finding (the
/// scan runs on every client command, a finding is rare).
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn walk<'a>(value: &'a Value, path: &mut Vec<Step<'a>>, depth: usize) -> Option<Finding> {
    if depth > DEPTH_MAX {
        return None;
    }
    match value {
        Value::String(s) if has_card_number(s) => Some(Finding {
            path: display(path),
            what: "a card number (13-19 digits passing the Luhn check)",
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            path.push(Step::Key(k));
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
            path.pop();
            found
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(Step::Index(i));
            let found = walk(v, path, depth + 1);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// `a.b[0].c`: keys joined by dots, indexes in brackets.
fn display(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                text.push('.');
                text.push_str(k);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    let p = text.strip_prefix('.').unwrap_or(&text);
    // Why: a path is built from the message's own keys; keep it short in messages.
    p.chars().take(120).collect()
}

/// Longest name in [`CARD_FIELD_NAMES`] (`cardverificationvalue`).
const CARD_FIELD_LEN_MAX: usize = 21;

/// Whether `name` is a field name that only card data would go under: lower-cased, without
/// `_`, `-` and spaces, it is one of [`CARD_FIELD_NAMES`]. Folded into a stack buffer (this
/// runs for every key of every client command); the names are ASCII, so a folded name with
/// any other character, or longer than the longest, is none of them.
pub fn is_card_field(name: &str) -> bool {
    let mut folded = [0u8; CARD_FIELD_LEN_MAX];
    let mut len = 0;
    if name.is_ascii() {
        // Why: an ASCII character lower-cases to exactly its ASCII lower case; field names
        // are nearly always ASCII, and this skips the per-character Unicode mapping.
        for b in name.bytes().filter(|b| !matches!(b, b'_' | b'-' | b' ')) {
            if len == CARD_FIELD_LEN_MAX {
                return false;
            }
            folded[len] = b.to_ascii_lowercase();
            len += 1;
        }
        return CARD_FIELD_NAMES
            .iter()
            .any(|n| n.as_bytes() == &folded[..len]);
    }
    for c in name
        .chars()
        .filter(|c| *c != '_' && *c != '-' && *c != ' ')
        .flat_map(char::to_lowercase)
    {
        if !c.is_ascii() || len == CARD_FIELD_LEN_MAX {
            return false;
        }
        folded[len] = c as u8;
        len += 1;
    }
    CARD_FIELD_NAMES
        .iter()
        .any(|n| n.as_bytes() == &folded[..len])
}

/// Whether `text` holds a run of 13–19 digits that passes the Luhn check: contiguous, or
/// grouped by single spaces or dashes the way card numbers are printed (4-4-4-4 with a
/// shorter last group, 4-6-5, 4-6-4). Other groupings (UUIDs, dates, phone numbers) are not
/// card numbers. A run is bounded by anything that is not a digit or such a separator.
pub fn has_card_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Why: every run this finds has at least PAN_DIGITS_MIN digits of `text`; most strings
    // (ids, names, codes) have fewer, and are answered without the run scan.
    if bytes.iter().filter(|b| b.is_ascii_digit()).count() < PAN_DIGITS_MIN {
        return false;
    }
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
                if card_shaped(&groups) && (groups.len() == 1 || standalone(bytes, end - len, end))
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
            "4222 2222 2222 2",
            "3782 822463 10005",
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

    proptest::proptest! {
        #[test]
        fn uuids_are_never_card_numbers(bits in proptest::prelude::any::<u128>()) {
            let id = uuid::Uuid::from_u128(bits).hyphenated().to_string();
            proptest::prop_assert!(!has_card_number(&id), "{}", id);
        }

        #[test]
        fn every_card_number_is_found_however_printed(body in "[0-9]{15}", sep in "[ -]", prefix in "[a-z :=]{0,4}") {
            let mut digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
            let check = (0..10u8).find(|c| { let mut d = digits.clone(); d.push(*c); luhn(&d) }).unwrap_or(0);
            digits.push(check);
            let pan: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let grouped = format!("{} {} {} {}", &pan[..4], &pan[4..8], &pan[8..12], &pan[12..]).replace(' ', &sep);
            let prefixed = format!("{prefix}{pan}");
            proptest::prop_assert!(has_card_number(&pan));
            proptest::prop_assert!(has_card_number(&grouped), "{}", grouped);
            proptest::prop_assert!(has_card_number(&prefixed), "{}", prefixed);
        }
    }

    #[test]
    fn luhn_matches_known_values() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }
}
