//! The one-pass decoder against serde's: over generated commits of every command, event and
//! signal variant (as written, where the one pass must accept), and over the same JSON
//! mutated (keys repeated, added, renamed, cut short), where whatever the one pass accepts
//! serde must read to the same value, and decode-or-fall-back must equal serde's answer.

use super::decode_commit;
use crate::command::{Attachment, CaptureMode, Command, CommandEnvelope, PaymentInitiation};
use crate::event::{CancelledBy, Event, Evidence, SignalDisposition};
use crate::signal::{CustomerAction, CustomerActionKind, Operation, ProviderSignal, SignalKind};
use crate::{
    Amount, CommandId, Commit, Currency, Money, OrderId, Provider, RejectionCode, Timestamp,
};
use chrono::TimeZone;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Text with the characters JSON escapes (quote, backslash, control), non-ASCII and `/`; no
/// braces, so the mutations below find object starts by searching for `{`.
pub(crate) fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 \"\\\\/é\u{1}\n\u{2028}]{0,6}"
}

pub(crate) fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

pub(crate) fn timestamp() -> impl Strategy<Value = Timestamp> {
    (
        0i64..4_000_000_000,
        prop_oneof![Just(0u32), 0u32..1000, 0u32..1_000_000_000],
    )
        .prop_map(|(secs, n)| {
            let nanos = if n < 1000 { n * 1_000_000 } else { n };
            chrono::Utc.timestamp_opt(secs, nanos).single().unwrap()
        })
}

pub(crate) fn money() -> impl Strategy<Value = Money> {
    (
        1u64..1_000_000,
        prop::sample::select(vec!["USD", "EUR", "JPY", "KWD"]),
    )
        .prop_map(|(m, c)| Money::new(Amount::new(m).unwrap(), Currency::parse(c).unwrap()))
}

pub(crate) fn provider() -> impl Strategy<Value = Provider> {
    prop::sample::select(Provider::ALL.to_vec())
}

fn operation() -> impl Strategy<Value = Operation> {
    prop::sample::select(vec![
        Operation::Payment,
        Operation::Capture,
        Operation::Cancel,
        Operation::Refund,
    ])
}

pub(crate) fn metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn initiation() -> impl Strategy<Value = PaymentInitiation> {
    (opt_text(), opt_text(), metadata()).prop_map(|(return_url, customer_id, params)| {
        PaymentInitiation {
            return_url,
            customer_id,
            params,
        }
    })
}

fn attachment() -> impl Strategy<Value = Attachment> {
    (text(), text(), text(), text(), any::<u64>()).prop_map(
        |(object, file_name, content_type, sha256, size)| Attachment {
            object,
            file_name,
            content_type,
            sha256,
            size,
        },
    )
}

pub(crate) fn action() -> impl Strategy<Value = Option<CustomerAction>> {
    let kind = prop::sample::select(vec![
        CustomerActionKind::Redirect,
        CustomerActionKind::Challenge,
        CustomerActionKind::WalletTransfer,
    ]);
    prop::option::of(
        (kind, opt_text(), metadata()).prop_map(|(kind, url, details)| CustomerAction {
            kind,
            url,
            details,
        }),
    )
}

fn evidence() -> impl Strategy<Value = Evidence> {
    (opt_text(), text(), timestamp()).prop_map(|(provider_ref, evidence_ref, observed_at)| {
        Evidence {
            provider_ref,
            evidence_ref,
            observed_at,
        }
    })
}

fn signal_kind() -> impl Strategy<Value = SignalKind> {
    let m = || prop::option::of(money());
    prop_oneof![
        action().prop_map(|action| SignalKind::Accepted { action }),
        m().prop_map(|amount| SignalKind::Authorized { amount }),
        m().prop_map(|amount| SignalKind::Captured { amount }),
        (operation(), text(), text(), opt_text()).prop_map(|(operation, code, message, r)| {
            SignalKind::Failed {
                operation,
                code,
                message,
                refund_id: r,
            }
        }),
        Just(SignalKind::Cancelled),
        (opt_text(), m())
            .prop_map(|(refund_id, amount)| SignalKind::Refunded { refund_id, amount }),
        m().prop_map(|amount| SignalKind::Settled { amount }),
        text().prop_map(|raw_status| SignalKind::Unrecognised { raw_status }),
        (operation(), text())
            .prop_map(|(operation, detail)| SignalKind::OutcomeUnknown { operation, detail }),
        text().prop_map(|reason| SignalKind::NeedsReview { reason }),
        text().prop_map(|answer| SignalKind::Probed { answer }),
    ]
}

fn signal() -> impl Strategy<Value = ProviderSignal> {
    (provider(), opt_text(), text(), timestamp(), signal_kind()).prop_map(
        |(provider, provider_ref, evidence_ref, observed_at, kind)| ProviderSignal {
            provider,
            provider_ref,
            evidence_ref,
            observed_at,
            kind,
        },
    )
}

pub(crate) fn capture_mode() -> impl Strategy<Value = CaptureMode> {
    prop::sample::select(vec![CaptureMode::Auto, CaptureMode::Manual])
}

fn command() -> impl Strategy<Value = Command> {
    let m = || prop::option::of(money());
    prop_oneof![
        (
            text(),
            money(),
            provider(),
            capture_mode(),
            prop::option::of(timestamp()),
            opt_text(),
            metadata()
        )
            .prop_map(
                |(r, amount, provider, capture_mode, expires_at, acct, metadata)| {
                    Command::CreateOrder {
                        merchant_reference: r,
                        amount,
                        provider,
                        capture_mode,
                        expires_at,
                        merchant_account: acct,
                        metadata,
                    }
                }
            ),
        initiation().prop_map(|initiation| Command::StartPayment { initiation }),
        m().prop_map(|amount| Command::Capture { amount }),
        opt_text().prop_map(|reason| Command::Cancel { reason }),
        m().prop_map(|amount| Command::Refund { amount }),
        (text(), attachment()).prop_map(|(reference, attachment)| Command::ConfirmTransfer {
            reference,
            attachment
        }),
        Just(Command::Expire),
        (text(), text()).prop_map(|(operator, reason)| Command::ResolveReview { operator, reason }),
        signal().prop_map(|signal| Command::ProviderSignal { signal }),
    ]
}

pub(crate) fn event() -> impl Strategy<Value = Event> {
    let cancelled_by = prop::sample::select(vec![
        CancelledBy::Merchant,
        CancelledBy::Provider,
        CancelledBy::Expiry,
    ]);
    let disposition = prop::sample::select(vec![
        SignalDisposition::Duplicate,
        SignalDisposition::Late,
        SignalDisposition::Unrecognised,
        SignalDisposition::OutcomeUnknown,
        SignalDisposition::Probe,
    ]);
    let created = (
        text(),
        money(),
        provider(),
        capture_mode(),
        prop::option::of(timestamp()),
        opt_text(),
        metadata(),
        timestamp(),
    )
        .prop_map(
            |(r, amount, provider, capture_mode, expires_at, acct, metadata, at)| {
                Event::OrderCreated {
                    order_id: OrderId::parse("o-1").unwrap(),
                    merchant_reference: r,
                    amount,
                    provider,
                    capture_mode,
                    expires_at,
                    merchant_account: acct,
                    metadata,
                    created_at: at,
                }
            },
        );
    let failure = || (text(), text(), evidence());
    prop_oneof![
        created,
        initiation().prop_map(|initiation| Event::PaymentRequested { initiation }),
        (action(), evidence())
            .prop_map(|(action, evidence)| Event::CustomerActionRequired { action, evidence }),
        (money(), evidence())
            .prop_map(|(amount, evidence)| Event::PaymentAuthorized { amount, evidence }),
        (text(), money())
            .prop_map(|(capture_id, amount)| Event::CaptureRequested { capture_id, amount }),
        (money(), evidence())
            .prop_map(|(amount, evidence)| Event::PaymentCaptured { amount, evidence }),
        failure().prop_map(|(code, message, evidence)| Event::CaptureFailed {
            code,
            message,
            evidence
        }),
        opt_text().prop_map(|reason| Event::CancelRequested { reason }),
        (cancelled_by, prop::option::of(evidence()))
            .prop_map(|(by, evidence)| Event::OrderCancelled { by, evidence }),
        failure().prop_map(|(code, message, evidence)| Event::CancelFailed {
            code,
            message,
            evidence
        }),
        (text(), text(), attachment()).prop_map(|(confirmation_id, reference, attachment)| {
            Event::TransferConfirmationSubmitted {
                confirmation_id,
                reference,
                attachment,
            }
        }),
        (text(), money())
            .prop_map(|(refund_id, amount)| Event::RefundRequested { refund_id, amount }),
        (text(), money(), evidence()).prop_map(|(refund_id, amount, evidence)| {
            Event::RefundCompleted {
                refund_id,
                amount,
                evidence,
            }
        }),
        (text(), failure()).prop_map(|(refund_id, (code, message, evidence))| {
            Event::RefundFailed {
                refund_id,
                code,
                message,
                evidence,
            }
        }),
        evidence().prop_map(|evidence| Event::OrderSettled { evidence }),
        failure().prop_map(|(code, message, evidence)| Event::PaymentFailed {
            code,
            message,
            evidence
        }),
        (signal(), disposition).prop_map(|(signal, disposition)| Event::SignalRecorded {
            signal,
            disposition
        }),
        (signal(), text(), text()).prop_map(|(signal, code, detail)| {
            Event::DiscrepancyDetected {
                signal,
                code,
                detail,
            }
        }),
        (text(), text()).prop_map(|(operator, reason)| Event::ReviewResolved { operator, reason }),
        (prop::sample::select(RejectionCode::ALL.to_vec()), text())
            .prop_map(|(code, message)| Event::CommandRejected { code, message }),
    ]
}

fn commit() -> impl Strategy<Value = Commit> {
    (
        1u64..1000,
        timestamp(),
        timestamp(),
        command(),
        prop::collection::vec(event(), 0..3),
    )
        .prop_map(|(n, decided_at, issued_at, command, events)| {
            let command = CommandEnvelope {
                command_id: CommandId::parse("c-1.2").unwrap(),
                order_id: OrderId::parse("o-1").unwrap(),
                issued_at,
                command,
            };
            Commit {
                v: crate::COMMIT_SCHEMA_VERSION,
                order_id: OrderId::parse("o-1").unwrap(),
                commit: n,
                prev_hash: crate::commit::GENESIS_HASH.to_string(),
                decided_at,
                fingerprint: command.fingerprint(),
                command,
                events,
            }
        })
}

/// Snippets the mutations put at the start or end of an object: repeated tags and envelope
/// keys, unknown keys, nulls, escaped keys and tags, other versions.
const SNIPPETS: [&str; 16] = [
    r#""type":"capture""#,
    r#""type":"expire""#,
    r#""status":"cancelled""#,
    r#""status":"settled""#,
    r#""command_id":"c-9""#,
    r#""order_id":"o-2""#,
    r#""issued_at":"2026-01-01T00:00:00Z""#,
    r#""zz":0"#,
    r#""amount":null"#,
    r#""provider_ref":null"#,
    r#""reason":"x""#,
    r#""v":2"#,
    r#""events":[]"#,
    r#""\u0074ype":"capture""#,
    r#""type":"c\u0061pture""#,
    r#""metadata":{}"#,
];

/// Renames that keep the JSON well-formed but change what a key or tag means.
const RENAMES: [(&str, &str); 8] = [
    ("\"type\"", "\"kind\""),
    ("\"status\"", "\"type\""),
    ("\"amount\"", "\"reason\""),
    ("\"capture\"", "\"refund\""),
    ("\"authorized\"", "\"captured\""),
    ("\"provider_ref\"", "\"evidence_ref\""),
    ("\"issued_at\"", "\"decided_at\""),
    ("\"order_id\"", "\"command_id\""),
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
    }
}

/// What the journal's decoder answers: the one pass, else serde (current version), else the
/// versioned decode.
fn decode_or_fall_back(text: &str) -> Result<Commit, String> {
    if let Ok(c) = decode_commit(text) {
        return Ok(c);
    }
    match serde_json::from_str::<Commit>(text) {
        Ok(c) if c.v == crate::COMMIT_SCHEMA_VERSION => Ok(c),
        _ => Commit::decode(text.as_bytes()).map_err(|e| e.to_string()),
    }
}

/// serde's answer alone (as before the one pass).
fn serde_only(text: &str) -> Result<Commit, String> {
    match serde_json::from_str::<Commit>(text) {
        Ok(c) if c.v == crate::COMMIT_SCHEMA_VERSION => Ok(c),
        _ => Commit::decode(text.as_bytes()).map_err(|e| e.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_commit_as_written_decodes_in_one_pass_to_serdes_value(c in commit()) {
        let json = String::from_utf8(c.encode()).unwrap();
        let fast = decode_commit(&json);
        prop_assert!(fast.is_ok(), "one pass refused {json}: {:?}", fast.err());
        let fast = fast.unwrap();
        prop_assert_eq!(&fast, &c);
        prop_assert_eq!(Ok(fast), serde_only(&json));
    }

    #[test]
    fn a_mutated_commit_decodes_as_serde_decodes_it(
        c in commit(),
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut json = String::from_utf8(c.encode()).unwrap();
        for m in &ms {
            json = mutate(&json, m);
        }
        let serde = serde_only(&json);
        if let Ok(fast) = decode_commit(&json) {
            prop_assert_eq!(Ok(fast), serde.clone(), "one pass accepted {}", json);
        }
        prop_assert_eq!(decode_or_fall_back(&json), serde, "{}", json);
    }
}

#[test]
fn refusals_fall_back_to_serde_for_the_same_answer() {
    let c = Commit {
        v: 1,
        order_id: OrderId::parse("o-1").unwrap(),
        commit: 1,
        prev_hash: crate::commit::GENESIS_HASH.into(),
        decided_at: Timestamp::default(),
        fingerprint: "f".into(),
        command: CommandEnvelope {
            command_id: CommandId::parse("c-1").unwrap(),
            order_id: OrderId::parse("o-1").unwrap(),
            issued_at: Timestamp::default(),
            command: Command::Expire,
        },
        events: vec![],
    };
    let json = String::from_utf8(c.encode()).unwrap();
    assert_eq!(decode_commit(&json).unwrap(), c);
    // serde ignores an unknown key and takes a unit variant with extra keys: the one pass
    // refuses both, and the fallback reads them as serde does.
    let unknown = json.replace(r#""type":"expire""#, r#""type":"expire","zz":1"#);
    assert!(decode_commit(&unknown).is_err());
    assert_eq!(decode_or_fall_back(&unknown).unwrap(), c);
    // serde refuses a second tag; so does the one pass, and the error is serde's.
    let twice = json.replace(r#""type":"expire""#, r#""type":"expire","type":"expire""#);
    assert!(decode_commit(&twice).is_err());
    assert_eq!(decode_or_fall_back(&twice), serde_only(&twice));
    assert!(serde_only(&twice).is_err());
}

/// Strings of the written shape with any digits (invalid dates, hour 24, second 60, year
/// 0000, 0 to 10 fraction digits) and a few near misses.
fn timestamp_text() -> impl Strategy<Value = String> {
    (
        0u32..10000,
        0u32..14,
        0u32..33,
        0u32..26,
        0u32..61,
        0u32..62,
        "[0-9]{0,10}",
        prop::sample::select(vec!["T", "t", " "]),
        prop::sample::select(vec!["Z", "z", "+00:00", "+01:30", ""]),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, sep, zone)| {
            let dot = if frac.is_empty() { "" } else { "." };
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{dot}{frac}{zone}")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn a_timestamp_reads_as_chrono_reads_it(s in timestamp_text()) {
        let chrono_says = serde_json::from_value::<Timestamp>(serde_json::Value::String(s.clone()));
        if let Some(fast) = super::parse_utc_as_written(&s) {
            prop_assert_eq!(Some(fast), chrono_says.as_ref().ok().copied(), "{}", s);
        }
        let ours = serde_json::from_value::<super::FastTs>(serde_json::Value::String(s.clone()));
        prop_assert_eq!(ours.map(|t| t.0).ok(), chrono_says.ok(), "{}", s);
    }
}
