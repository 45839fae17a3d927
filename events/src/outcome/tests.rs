//! The outcome readers against serde's as it was before them
//! ([`Outcome::from_json_serde_only`]): over generated outcomes (accepted with events of every
//! variant and states with every field, rejected with every code, duplicate or not), as
//! written and mutated (keys reordered, unknown and repeated keys, wrong types, renamed keys
//! and tags, cuts), [`Outcome::from_json`] and `Outcome`'s `Deserialize` (from bytes and from
//! a `serde_json::Value`) give exactly serde's answer: the same value, or an error with the
//! same text.

use super::{FlatOutcome, Outcome, RejectionCode};
use crate::fast_decode::tests::{action, event, metadata, money, opt_text, text, timestamp};
use crate::fast_decode::tests::{capture_mode, provider};
use crate::state::Discrepancy;
use crate::{CommandId, Event, MinorUnits, OrderId, StateView, Status};
use proptest::prelude::*;
use serde_json::Value;

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(vec![
        Status::Created,
        Status::Pending,
        Status::Authorized,
        Status::Captured,
        Status::Done,
        Status::Cancelled,
    ])
}

fn units() -> impl Strategy<Value = MinorUnits> {
    prop_oneof![0u64..100_000, Just(u64::MAX)].prop_map(MinorUnits)
}

fn refunds() -> impl Strategy<Value = std::collections::BTreeMap<String, MinorUnits>> {
    prop::collection::btree_map(text(), units(), 0..3)
}

fn discrepancy() -> impl Strategy<Value = Discrepancy> {
    (text(), text(), text(), text(), any::<u64>()).prop_map(
        |(code, detail, signal, evidence_ref, commit)| Discrepancy {
            code,
            detail,
            signal,
            evidence_ref,
            commit,
        },
    )
}

fn state_view() -> impl Strategy<Value = StateView> {
    let who = (
        status(),
        text(),
        provider(),
        opt_text(),
        capture_mode(),
        money(),
    );
    let money_state = (
        units(),
        units(),
        units(),
        prop::option::of((text(), units())),
        any::<bool>(),
        refunds(),
        refunds(),
        any::<u64>(),
    );
    let rest = (
        opt_text(),
        action(),
        prop::option::of((text(), text())),
        prop::collection::vec(discrepancy(), 0..3),
        any::<u64>(),
        any::<bool>(),
        prop::option::of(timestamp()),
        metadata(),
        timestamp(),
        timestamp(),
        any::<u64>(),
        text(),
    );
    (who, money_state, rest).prop_map(
        |(
            (status, merchant_reference, provider, merchant_account, capture_mode, amount),
            (
                authorized,
                captured,
                refunded,
                capture_pending,
                cancel_pending,
                refunds_pending,
                refunds_completed,
                refunds_completed_count,
            ),
            (
                provider_ref,
                customer_action,
                failure,
                discrepancies,
                discrepancies_count,
                needs_review,
                expires_at,
                metadata,
                created_at,
                updated_at,
                commits,
                head_hash,
            ),
        )| StateView {
            order_id: OrderId::parse("o-1").unwrap(),
            status,
            merchant_reference,
            provider,
            merchant_account,
            capture_mode,
            amount,
            authorized,
            captured,
            refunded,
            capture_pending,
            cancel_pending,
            refunds_pending,
            refunds_completed,
            refunds_completed_count,
            provider_ref,
            customer_action,
            failure,
            discrepancies,
            discrepancies_count,
            needs_review,
            expires_at,
            metadata,
            created_at,
            updated_at,
            commits,
            head_hash,
        },
    )
}

fn outcome() -> impl Strategy<Value = Outcome> {
    let id = || prop::sample::select(vec!["c-1", "create", "o2x_y-Z", "9"]);
    let accepted = (
        id(),
        id(),
        any::<u64>(),
        prop::collection::vec(event(), 0..4),
        state_view(),
        any::<bool>(),
    )
        .prop_map(|(command_id, order_id, commit, events, state, duplicate)| {
            Outcome::Accepted {
                command_id: CommandId::parse(command_id).unwrap(),
                order_id: OrderId::parse(order_id).unwrap(),
                commit,
                events,
                state,
                duplicate,
            }
        });
    let rejected = (
        opt_text(),
        opt_text(),
        prop::sample::select(RejectionCode::ALL.to_vec()),
        text(),
        any::<bool>(),
    )
        .prop_map(
            |(command_id, order_id, code, message, duplicate)| Outcome::Rejected {
                command_id,
                order_id,
                code,
                message,
                duplicate,
            },
        );
    prop_oneof![accepted, rejected]
}

/// Snippets the mutations put at the start or end of an object: repeated tags and keys,
/// unknown keys, nulls, wrong types, escaped keys and tags, times in other shapes.
const SNIPPETS: [&str; 24] = [
    r#""outcome":"accepted""#,
    r#""outcome":"rejected""#,
    r#""duplicate":true"#,
    r#""duplicate":"yes""#,
    r#""commit":"7""#,
    r#""commit":7"#,
    r#""type":"refund_requested""#,
    r#""type":"cancel_requested""#,
    r#""state":null"#,
    r#""events":[]"#,
    r#""zz":{"a":[1,2]}"#,
    r#""code":"unavailable""#,
    r#""message":1"#,
    r#""command_id":null"#,
    r#""order_id":"o 1""#,
    r#""created_at":"2026-01-01T00:00:00+01:00""#,
    r#""updated_at":"2026-01-01T00:00:00.5Z""#,
    r#""expires_at":null"#,
    r#""expires_at":"2026-02-30T00:00:00Z""#,
    r#""observed_at":"2026-01-01T23:59:60Z""#,
    r#""\u0074ype":"capture_requested""#,
    r#""type":"c\u0061pture_requested""#,
    r#""status":"done""#,
    r#""amount":{"minor_units":5,"currency":"EUR"}"#,
];

/// Renames that keep the JSON well-formed but change what a key, tag or value means.
const RENAMES: [(&str, &str); 12] = [
    ("\"type\"", "\"kind\""),
    ("\"outcome\"", "\"status\""),
    ("\"accepted\"", "\"rejected\""),
    ("\"rejected\"", "\"accepted\""),
    ("\"state\"", "\"events\""),
    ("\"commit\"", "\"commits\""),
    ("Z\"", "+00:00\""),
    ("Z\"", "z\""),
    (":false", ":0"),
    ("\"created_at\"", "\"updated_at\""),
    ("\"head_hash\"", "\"order_id\""),
    ("\"refunds_pending\"", "\"refunds_completed\""),
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Put a snippet right after the `n`th `{` (or before the `n`th `}`).
    Insert {
        at_open: bool,
        n: usize,
        snippet: usize,
    },
    /// Replace the `n`th occurrence of a rename's first text.
    Rename { n: usize, rename: usize },
    /// Cut the text at this fraction of its length.
    Cut { permille: usize },
    /// Every object's keys sorted (`serde_json::Value`'s order), or the reverse of it.
    Reorder { reversed: bool },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<bool>(), 0usize..12, 0..SNIPPETS.len()).prop_map(|(at_open, n, snippet)| {
            Mutation::Insert {
                at_open,
                n,
                snippet,
            }
        }),
        (0usize..4, 0..RENAMES.len()).prop_map(|(n, rename)| Mutation::Rename { n, rename }),
        (0usize..1000).prop_map(|permille| Mutation::Cut { permille }),
        any::<bool>().prop_map(|reversed| Mutation::Reorder { reversed }),
    ]
}

fn mutate(json: &str, m: &Mutation) -> String {
    match m {
        Mutation::Insert {
            at_open,
            n,
            snippet,
        } => {
            let snippet = SNIPPETS[*snippet];
            let brace = if *at_open { '{' } else { '}' };
            let Some((i, _)) = json.match_indices(brace).nth(*n) else {
                return json.to_string();
            };
            let empty = match at_open {
                true => json[i + 1..].starts_with('}'),
                false => json[..i].ends_with('{'),
            };
            let glue = if empty { "" } else { "," };
            match at_open {
                true => format!("{}{snippet}{glue}{}", &json[..=i], &json[i + 1..]),
                false => format!("{}{glue}{snippet}{}", &json[..i], &json[i..]),
            }
        }
        Mutation::Rename { n, rename } => {
            let (from, to) = RENAMES[*rename];
            let Some((i, _)) = json.match_indices(from).nth(*n) else {
                return json.to_string();
            };
            format!("{}{to}{}", &json[..i], &json[i + from.len()..])
        }
        Mutation::Cut { permille } => {
            let mut end = json.len() * permille / 1000;
            while !json.is_char_boundary(end) {
                end -= 1;
            }
            json[..end].to_string()
        }
        Mutation::Reorder { reversed } => match serde_json::from_str::<Value>(json) {
            Ok(v) => {
                let mut out = String::new();
                write_ordered(&v, *reversed, &mut out);
                out
            }
            // Repeated keys or a cut: nothing to reorder.
            Err(_) => json.to_string(),
        },
    }
}

fn write_ordered(v: &Value, reversed: bool, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut entries: Vec<_> = m.iter().collect();
            if reversed {
                entries.reverse();
            }
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_ordered(v, reversed, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ordered(v, reversed, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn answer(r: Result<Outcome, serde_json::Error>) -> Result<Outcome, String> {
    r.map_err(|e| e.to_string())
}

/// Every reader of `json` against serde's as before: same value, or an error with the same
/// text (`from_value` errors carry no position, so they are compared with each other).
fn assert_all_read_as_serde(json: &str) -> Result<(), TestCaseError> {
    let serde = answer(Outcome::from_json_serde_only(json.as_bytes()));
    let fast = answer(Outcome::from_json(json.as_bytes()));
    prop_assert_eq!(&fast, &serde, "from_json on {}", json);
    let derive = answer(serde_json::from_slice::<Outcome>(json.as_bytes()));
    prop_assert_eq!(&derive, &serde, "from_slice on {}", json);
    if let Ok(value) = serde_json::from_str::<Value>(json) {
        let serde_value = serde_json::from_value::<FlatOutcome<Event, StateView>>(value.clone())
            .and_then(|f| f.into_outcome());
        let derive_value = serde_json::from_value::<Outcome>(value);
        prop_assert_eq!(
            answer(derive_value),
            answer(serde_value),
            "from_value on {}",
            json
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn an_outcome_as_written_reads_on_the_fast_path_to_serdes_value(o in outcome()) {
        let json = serde_json::to_string(&o).unwrap();
        let fast = super::fast::one_pass(json.as_bytes());
        prop_assert!(fast.is_ok(), "fast path refused {}: {:?}", json, fast.err());
        prop_assert_eq!(fast.unwrap(), o.clone());
        prop_assert_eq!(Outcome::from_json(json.as_bytes()).unwrap(), o);
        assert_all_read_as_serde(&json)?;
    }

    #[test]
    fn a_mutated_outcome_reads_as_serde_reads_it(
        o in outcome(),
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut json = serde_json::to_string(&o).unwrap();
        for m in &ms {
            json = mutate(&json, m);
        }
        // Whatever the fast path accepts, serde reads to the same value.
        if let Ok(fast) = super::fast::one_pass(json.as_bytes()) {
            prop_assert_eq!(Ok(fast), answer(Outcome::from_json_serde_only(json.as_bytes())));
        }
        assert_all_read_as_serde(&json)?;
    }
}

#[test]
fn odd_shapes_read_as_serde_reads_them() {
    for json in [
        "",
        "null",
        "[]",
        r#"{"outcome":"rejected","code":"unavailable","message":"m"}"#,
        r#"{"outcome":"rejected","code":"unavailable","message":"m"} "#,
        r#"{"outcome":"rejected","code":"unavailable","message":"m"}x"#,
        r#"{"outcome":"rejected","code":"unavailable","message":"m","state":{}}"#,
        r#"{"outcome":"accepted","command_id":"a b","order_id":"o","commit":1,"events":[],"state":{}}"#,
        r#"["rejected",null,null,null,null,null,"unavailable","m",true]"#,
        r#"{"outcome":"accepted","command_id":"c","order_id":"o","commit":1,"events":[{"amount":{"minor_units":5,"currency":"EUR"},"type":"refund_requested","refund_id":"r"}],"state":{}}"#,
        r#"{"outcome":"accepted","command_id":"c","order_id":"o","commit":1,"events":[["refund_requested","r",{"minor_units":5,"currency":"EUR"}]],"state":{}}"#,
    ] {
        assert_all_read_as_serde(json).unwrap();
    }
}

/// Any instant chrono holds: every year (negative, five-digit), every fraction length, leap
/// seconds.
fn any_instant() -> impl Strategy<Value = crate::Timestamp> {
    let secs = prop_oneof![
        0i64..4_000_000_000,
        -8_334_632_851_200i64..8_210_298_412_799,
        prop::sample::select(vec![
            -62_167_219_200i64,
            -62_167_219_201,
            253_402_300_799,
            253_402_300_800
        ]),
    ];
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|m| m * 1_000_000),
        (0u32..1_000_000).prop_map(|u| u * 1000),
        0u32..1_000_000_000,
        1_000_000_000u32..2_000_000_000,
    ];
    (secs, nanos).prop_map(|(secs, nanos)| {
        // A leap second is only valid at a minute's last second.
        let secs = if nanos >= 1_000_000_000 {
            secs - secs.rem_euclid(60) + 59
        } else {
            secs
        };
        chrono::DateTime::from_timestamp(secs, nanos).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn an_outcome_encodes_to_serde_jsons_bytes(o in outcome()) {
        let fast = o.to_json().unwrap();
        let serde = serde_json::to_vec(&o).unwrap();
        prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(serde).unwrap());
    }

    #[test]
    fn a_timestamp_encodes_as_chrono_writes_it(t in any_instant()) {
        let fast = serde_json::to_string(&crate::timestamp_json::TsOut(&t)).unwrap();
        prop_assert_eq!(fast, serde_json::to_string(&t).unwrap());
    }
}
