//! The fields each command has, for refusing unknown ones without serializing the parsed
//! command back to a JSON value per command (issue 15: that round trip was a tenth of a
//! parse). [`fits`] answers `true` only where [`super::fields::unknown_field`] over the
//! serialized command finds nothing:
//! - every key listed here is one the parsed command serializes whenever the sent value is
//!   not empty (`null`, `{}`, `[]`): the optional fields are skipped only when `None` or an
//!   empty map, which only an empty sent value gives; the test below checks each list against
//!   the serialization of a command with every field set;
//! - a sent key not listed with an empty value is what `unknown_field` lets pass too;
//! - a free-form map keeps every sent key and holds only strings, so nothing below it is
//!   unknown.
//!
//! Anything else (a key not listed here with a value, an object where a scalar is expected)
//! answers `false`, and the parser asks `unknown_field` for the exact answer.

use paystate_events::signal::SignalKind;
use paystate_events::Command;
use serde_json::{Map, Value};

/// What a field holds, as far as unknown fields go.
enum Shape {
    /// A string, number or unit enum.
    Leaf,
    /// The caller's own string map (metadata, provider parameters, details).
    Free,
    /// A struct with these fields.
    Obj(&'static [(&'static str, Shape)]),
}

use Shape::{Free, Leaf, Obj};

const MONEY: Shape = Obj(&[("minor_units", Leaf), ("currency", Leaf)]);

const ENVELOPE: [(&str, Shape); 4] = [
    ("command_id", Leaf),
    ("order_id", Leaf),
    ("issued_at", Leaf),
    ("type", Leaf),
];

const CREATE_ORDER: &[(&str, Shape)] = &[
    ("merchant_reference", Leaf),
    ("amount", MONEY),
    ("provider", Leaf),
    ("capture_mode", Leaf),
    ("expires_at", Leaf),
    ("merchant_account", Leaf),
    ("metadata", Free),
];
const START_PAYMENT: &[(&str, Shape)] = &[(
    "initiation",
    Obj(&[
        ("return_url", Leaf),
        ("customer_id", Leaf),
        ("params", Free),
    ]),
)];
const AMOUNT: &[(&str, Shape)] = &[("amount", MONEY)];
const CANCEL: &[(&str, Shape)] = &[("reason", Leaf)];
const CONFIRM_TRANSFER: &[(&str, Shape)] = &[
    ("reference", Leaf),
    (
        "attachment",
        Obj(&[
            ("object", Leaf),
            ("file_name", Leaf),
            ("content_type", Leaf),
            ("sha256", Leaf),
            ("size", Leaf),
        ]),
    ),
];
const RESOLVE_REVIEW: &[(&str, Shape)] = &[("operator", Leaf), ("reason", Leaf)];

/// A provider signal's own fields; its status's fields come from [`kind_fields`].
const SIGNAL: [(&str, Shape); 5] = [
    ("provider", Leaf),
    ("provider_ref", Leaf),
    ("evidence_ref", Leaf),
    ("observed_at", Leaf),
    ("status", Leaf),
];

fn command_fields(command: &Command) -> &'static [(&'static str, Shape)] {
    match command {
        Command::CreateOrder { .. } => CREATE_ORDER,
        Command::StartPayment { .. } => START_PAYMENT,
        Command::Capture { .. } | Command::Refund { .. } => AMOUNT,
        Command::Cancel { .. } => CANCEL,
        Command::ConfirmTransfer { .. } => CONFIRM_TRANSFER,
        Command::Expire => &[],
        Command::ResolveReview { .. } => RESOLVE_REVIEW,
        // Why: `signal` is checked by `fits` itself (its fields depend on the status).
        Command::ProviderSignal { .. } => &[],
    }
}

fn kind_fields(kind: &SignalKind) -> &'static [(&'static str, Shape)] {
    match kind {
        SignalKind::Accepted { .. } => &[(
            "action",
            Obj(&[("kind", Leaf), ("url", Leaf), ("details", Free)]),
        )],
        SignalKind::Authorized { .. }
        | SignalKind::Captured { .. }
        | SignalKind::Settled { .. } => AMOUNT,
        SignalKind::Failed { .. } => &[
            ("operation", Leaf),
            ("code", Leaf),
            ("message", Leaf),
            ("refund_id", Leaf),
        ],
        SignalKind::Cancelled => &[],
        SignalKind::Refunded { .. } => &[("refund_id", Leaf), ("amount", MONEY)],
        SignalKind::Unrecognised { .. } => &[("raw_status", Leaf)],
        SignalKind::OutcomeUnknown { .. } => &[("operation", Leaf), ("detail", Leaf)],
        SignalKind::NeedsReview { .. } => &[("reason", Leaf)],
        SignalKind::Probed { .. } => &[("answer", Leaf)],
    }
}

/// Whether `sent` (the command as received) has no field `command` (as parsed from it) lacks:
/// `true` only where `unknown_field(sent, to_value(command))` is `None`.
pub fn fits(sent: &Value, command: &Command) -> bool {
    let Some(sent) = sent.as_object() else {
        return false;
    };
    let own = command_fields(command);
    sent.iter().all(|(key, value)| {
        if let Some((_, shape)) = ENVELOPE.iter().chain(own).find(|(k, _)| k == key) {
            return member_fits(value, shape);
        }
        match (key.as_str(), command) {
            ("signal", Command::ProviderSignal { signal }) => match value.as_object() {
                Some(obj) => object_fits(obj, &[&SIGNAL, kind_fields(&signal.kind)]),
                None => true,
            },
            _ => is_empty(value),
        }
    })
}

/// Every member of `obj` is one of `fields` (or empty), and fits its shape.
fn object_fits(obj: &Map<String, Value>, fields: &[&[(&str, Shape)]]) -> bool {
    obj.iter().all(|(key, value)| {
        match fields.iter().flat_map(|f| f.iter()).find(|(k, _)| k == key) {
            Some((_, shape)) => member_fits(value, shape),
            None => is_empty(value),
        }
    })
}

/// `unknown_field` looks below a member only where both sides are objects.
fn member_fits(value: &Value, shape: &Shape) -> bool {
    let Some(obj) = value.as_object() else {
        return true;
    };
    match shape {
        // Why: an object where a scalar goes is answered by `unknown_field` itself.
        Leaf => false,
        Free => obj.values().all(|v| !v.is_object()),
        Obj(fields) => object_fits(obj, &[fields]),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystate_events::command::{money, Attachment, CaptureMode, PaymentInitiation};
    use paystate_events::signal::{CustomerAction, CustomerActionKind, Operation, ProviderSignal};
    use paystate_events::{CommandEnvelope, CommandId, OrderId, Provider};
    use std::collections::BTreeMap;

    /// Every command and signal status with every optional field set.
    fn full_commands() -> Vec<Command> {
        let m = || money(5, "USD");
        let map = || BTreeMap::from([("k".to_string(), "v".to_string())]);
        let at = || "2026-11-22T10:00:00Z".parse().unwrap();
        let s = || Some("x".to_string());
        let kinds = vec![
            SignalKind::Accepted {
                action: Some(CustomerAction {
                    kind: CustomerActionKind::Redirect,
                    url: s(),
                    details: map(),
                }),
            },
            SignalKind::Authorized { amount: m() },
            SignalKind::Captured { amount: m() },
            SignalKind::Failed {
                operation: Operation::Refund,
                code: "c".into(),
                message: "m".into(),
                refund_id: s(),
            },
            SignalKind::Cancelled,
            SignalKind::Refunded {
                refund_id: s(),
                amount: m(),
            },
            SignalKind::Settled { amount: m() },
            SignalKind::Unrecognised {
                raw_status: "r".into(),
            },
            SignalKind::OutcomeUnknown {
                operation: Operation::Payment,
                detail: "d".into(),
            },
            SignalKind::NeedsReview { reason: "r".into() },
            SignalKind::Probed { answer: "a".into() },
        ];
        let mut out = vec![
            Command::CreateOrder {
                merchant_reference: "r".into(),
                amount: m().unwrap(),
                provider: Provider::Plural,
                capture_mode: CaptureMode::Auto,
                expires_at: Some(at()),
                merchant_account: s(),
                metadata: map(),
            },
            Command::StartPayment {
                initiation: PaymentInitiation {
                    return_url: s(),
                    customer_id: s(),
                    params: map(),
                },
            },
            Command::Capture { amount: m() },
            Command::Cancel { reason: s() },
            Command::Refund { amount: m() },
            Command::ConfirmTransfer {
                reference: "r".into(),
                attachment: Attachment {
                    object: "o".into(),
                    file_name: "f".into(),
                    content_type: "c".into(),
                    sha256: "h".into(),
                    size: 1,
                },
            },
            Command::Expire,
            Command::ResolveReview {
                operator: "o".into(),
                reason: "r".into(),
            },
        ];
        assert_eq!(
            out.len() + 1,
            Command::NAMES.len(),
            "a command is missing here"
        );
        out.extend(kinds.into_iter().map(|kind| Command::ProviderSignal {
            signal: ProviderSignal {
                provider: Provider::Plural,
                provider_ref: s(),
                evidence_ref: "e".into(),
                observed_at: at(),
                kind,
            },
        }));
        out
    }

    /// The keys of `v` and below match `fields` exactly (free maps: any keys).
    fn same_keys(v: &Value, fields: &[&[(&str, Shape)]]) {
        let obj = v.as_object().expect("an object");
        let listed: Vec<&str> = fields
            .iter()
            .flat_map(|f| f.iter().map(|(k, _)| *k))
            .collect();
        let mut sent: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = listed.clone();
        sent.sort_unstable();
        want.sort_unstable();
        assert_eq!(sent, want, "{v}");
        for (key, shape) in fields.iter().flat_map(|f| f.iter()) {
            match shape {
                Obj(inner) => same_keys(&obj[*key], &[inner]),
                Leaf => assert!(!obj[*key].is_object(), "{key} in {v}"),
                Free => {}
            }
        }
    }

    /// Each list names exactly the fields the command serializes when all are set, so a
    /// listed key is never one the typed command drops (see the module comment).
    #[test]
    fn the_lists_are_the_serialized_fields() {
        for command in full_commands() {
            let env = CommandEnvelope {
                command_id: CommandId::parse("c").unwrap(),
                order_id: OrderId::parse("o").unwrap(),
                issued_at: "2026-11-22T10:00:00Z".parse().unwrap(),
                command: command.clone(),
            };
            let v = serde_json::to_value(&env).unwrap();
            let mut top: Vec<&[(&str, Shape)]> = vec![&ENVELOPE, command_fields(&command)];
            if let Command::ProviderSignal { signal } = &command {
                same_keys(&v["signal"], &[&SIGNAL, kind_fields(&signal.kind)]);
                top.push(&[("signal", Free)]);
            }
            same_keys(&v, &top);
            assert!(fits(&v, &command), "{v}");
        }
    }
}
