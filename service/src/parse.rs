//! Parsing a command message. Bad input becomes a typed rejection whose message starts with
//! the field's path and states the rule (`issued_at: not an RFC 3339 timestamp`); it never
//! panics and never reaches the core. Unknown fields are refused (`invalid_field`): a
//! misspelt optional field must not silently change what a command does.

mod decode;
#[cfg(test)]
mod differential;
mod fields;
mod known;
/// The parser as it was before issue 15's fast path: the differential tests' reference and
/// `examples/parse_cost`'s baseline; not for use by the engine.
#[doc(hidden)]
pub mod reference;

use crate::config::COMMAND_BYTES_MAX;
use crate::{card_data, strict_json};
use paystate_events::subjects::{order_token, plane_for, plane_of, plane_prefix, Plane};
use paystate_events::{Command, CommandEnvelope, OrderId, Rejection, RejectionCode as Code};
use serde_json::Value;

/// Parses `bytes` published on `subject` (`paystate.cmd.<order>`, `paystate.signal.<order>`
/// or `paystate.op.<order>`).
/// In order: size, the subject's form (one order token), JSON without repeated keys, a known
/// type allowed on the subject's plane, no card data (client plane), the field rules (ids,
/// times, amounts), the typed command, no unknown fields, the order id matching the subject.
pub fn parse_command(bytes: &[u8], subject: &str) -> Result<CommandEnvelope, Rejection> {
    let plane = plane_of(subject).unwrap_or(Plane::Client);
    check_size(bytes)?;
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
    fields::check(&value)?;
    let env = typed(&value, bytes.len())?;
    // Why: the per-command field lists answer a command without unknown fields (the common
    // case) without serializing the parsed command again; any doubt is settled by comparing
    // with that serialization, which also names the field.
    if let Some(field) = (!known::fits(&value, &env.command))
        .then(|| serde_json::to_value(&env).ok())
        .flatten()
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

/// A command of at most [`COMMAND_BYTES_MAX`] bytes; above it `command_too_large`. Also the
/// fast path's endpoint check (`fast::endpoints`), so both paths refuse with the same words.
pub fn check_size(bytes: &[u8]) -> Result<(), Rejection> {
    if bytes.len() <= COMMAND_BYTES_MAX {
        return Ok(());
    }
    Err(Rejection::new(
        Code::CommandTooLarge,
        format!(
            "command is {} bytes; the limit is {COMMAND_BYTES_MAX}",
            bytes.len()
        ),
    ))
}

/// Subject text quoted in a rejection at most (the subject is the publisher's; only its
/// start is needed to recognise it).
const SUBJECT_QUOTED_CHARS_MAX: usize = 96;

/// The order token of a command subject, to match against the body's `order_id`. A subject on
/// a plane must be `<plane prefix>.<order_id>` with one valid order id: anything else (more
/// tokens, an empty one, a wildcard) is `subject_mismatch`, because intake routes by the
/// whole subject and `paystate.cmd.V.1`, `paystate.cmd.V.2`... would otherwise all reach
/// order V's log from different partition tasks, outside its per-order ordering. A subject
/// on no plane (only tests and tools parse those) is matched as before, if it has a token.
fn subject_order(subject: &str) -> Result<Option<&str>, Rejection> {
    let Some(plane) = plane_of(subject) else {
        return Ok(order_token(subject));
    };
    let prefix = plane_prefix(plane);
    let token = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|token| OrderId::parse(*token).is_ok());
    match token {
        Some(token) => Ok(Some(token)),
        None => Err(Rejection::new(
            Code::SubjectMismatch,
            format!(
                "subject: published on {:?}, which is not {prefix}.<order_id> (one token of A-Z a-z 0-9 _ -, the body's order_id)",
                subject.chars().take(SUBJECT_QUOTED_CHARS_MAX).collect::<String>()
            ),
        )),
    }
}

/// A JSON syntax error; a number too large for any parser is named by its field (an amount's
/// `minor_units` is an amount error).
fn json_error(bytes: &[u8], e: &serde_json::Error) -> Rejection {
    if strict_json::is_duplicate_key(e) {
        return Rejection::new(Code::DuplicateKey, e.to_string());
    }
    if e.to_string().starts_with("number out of range") {
        let path = strict_json::path_at(bytes, strict_json::error_offset(bytes, e));
        if path == "minor_units" || path.ends_with(".minor_units") {
            return Rejection::new(
                Code::AmountOverflow,
                format!("{path}: above the maximum 10^15"),
            );
        }
        return Rejection::new(Code::InvalidField, format!("{path}: number out of range"));
    }
    Rejection::new(Code::MalformedJson, format!("not valid JSON: {e}"))
}

/// The command `type`: present, a string, a known name.
fn command_type(t: Option<&Value>) -> Result<&str, Rejection> {
    let known = || Command::NAMES.join(", ");
    match t {
        None => Err(Rejection::new(
            Code::UnknownCommand,
            format!("type: missing (one of {})", known()),
        )),
        Some(Value::String(t)) if Command::NAMES.contains(&t.as_str()) => Ok(t),
        Some(Value::String(t)) => Err(Rejection::new(
            Code::UnknownCommand,
            format!(
                "type: unknown command type {:?}; known: {}",
                t.chars().take(64).collect::<String>(),
                known()
            ),
        )),
        Some(_) => Err(Rejection::new(
            Code::UnknownCommand,
            format!("type: must be a string (one of {})", known()),
        )),
    }
}

/// Provider signals only on the signal plane, operator commands (`resolve_review`) only on
/// the operator plane, and only their own commands on those planes.
fn check_plane(command_type: &str, plane: Plane) -> Result<(), Rejection> {
    let home = plane_for(command_type);
    match (plane, home) {
        (Plane::Client, Plane::Signal) => Err(Rejection::new(
            Code::SignalNotAllowed,
            "provider_signal is not accepted on paystate.cmd.*: provider reports come only from the signal-reporting role on paystate.signal.<order_id>",
        )),
        (Plane::Client, Plane::Operator) => Err(Rejection::new(
            Code::OperatorOnly,
            format!("{command_type} is not accepted on paystate.cmd.*: operator commands come only from the operator role on paystate.op.<order_id>"),
        )),
        (Plane::Signal, _) | (Plane::Operator, _) if plane != home => Err(Rejection::new(
            Code::SubjectMismatch,
            format!(
                "{command_type} is not accepted on {}.*; publish it on {}.<order_id>",
                plane_prefix(plane),
                plane_prefix(home)
            ),
        )),
        _ => Ok(()),
    }
}

/// The typed command; a failure names the field it is about.
fn typed(value: &Value, size: usize) -> Result<CommandEnvelope, Rejection> {
    // Why: read field by field without serde's buffering of the flattened command; what
    // that cannot read is read (or refused, naming the field) by serde below.
    match decode::envelope(value) {
        Some(env) => Ok(env),
        None => typed_by_serde(value, size),
    }
}

/// The typed command by serde's reader: the value, or the error naming the field. Also the
/// reference parser's (`reference`) whole typed step.
fn typed_by_serde(value: &Value, size: usize) -> Result<CommandEnvelope, Rejection> {
    // Deserialized from the borrowed tree: no copy of the whole value per command.
    let parse = |v: &Value| <CommandEnvelope as serde::Deserialize>::deserialize(v);
    let e = match parse(value) {
        Ok(env) => return Ok(env),
        Err(e) => e,
    };
    let r = classify(&e);
    let message = fields::strip_code(&r.message).to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        return Err(Rejection::new(r.code, format!("{field}: missing")));
    }
    let error_of = |v: &Value| parse(v).err().map(|e| e.to_string());
    match fields::locate(value, size, &error_of) {
        Some(path) => Err(Rejection::new(r.code, format!("{path}: {message}"))),
        None => Err(Rejection::new(r.code, message)),
    }
}

/// Maps a serde error onto a stable code. Our own validators prefix their messages with the
/// code (`invalid_amount: ...`); serde's own messages are recognised by their wording.
fn classify(e: &serde_json::Error) -> Rejection {
    let text = e.to_string();
    let prefix = text.split(':').next().unwrap_or_default();
    if let Some(code) = Code::parse(prefix) {
        return Rejection::new(code, text);
    }
    if text.starts_with("missing field") {
        return Rejection::new(Code::MissingField, text);
    }
    if text.contains("unknown variant") && text.contains("tag") {
        return Rejection::new(Code::UnknownCommand, text);
    }
    Rejection::new(Code::InvalidField, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &[u8]) -> Code {
        parse_command(bytes, "paystate.cmd.o-1").unwrap_err().code
    }

    const CREATE: &str = r#"{"command_id":"c-1","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"create_order","merchant_reference":"m-1","amount":{"minor_units":AMOUNT,"currency":"CUR"},"provider":"plural","capture_mode":"manual"}"#;

    fn create(amount: &str, currency: &str) -> Vec<u8> {
        CREATE
            .replace("AMOUNT", amount)
            .replace("CUR", currency)
            .into_bytes()
    }

    #[test]
    fn good_command_parses() {
        let env = parse_command(&create("1000", "USD"), "paystate.cmd.o-1").unwrap();
        assert_eq!(env.command.name(), "create_order");
    }

    #[test]
    fn bad_input_is_classified() {
        assert_eq!(code(b"{not json"), Code::MalformedJson);
        assert_eq!(code(b"[1,2]"), Code::MalformedJson);
        assert_eq!(code(br#"{"type":"teleport"}"#), Code::UnknownCommand);
        assert_eq!(code(br#"{"command_id":"c"}"#), Code::UnknownCommand);
        assert_eq!(
            code(br#"{"type":"expire","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z"}"#),
            Code::MissingField
        );
        assert_eq!(code(&create("0", "USD")), Code::InvalidAmount);
        assert_eq!(code(&create("-5", "USD")), Code::InvalidAmount);
        assert_eq!(code(&create("12.5", "USD")), Code::InvalidAmount);
        assert_eq!(
            code(&create("99999999999999999999999", "USD")),
            Code::AmountOverflow
        );
        assert_eq!(code(&create("1000", "XYZ")), Code::UnknownCurrency);
        assert_eq!(code(&create("\"1000\"", "USD")), Code::InvalidField);
        assert_eq!(
            code(&vec![b' '; COMMAND_BYTES_MAX + 1]),
            Code::CommandTooLarge
        );
        let other_order = parse_command(&create("1000", "USD"), "paystate.cmd.o-2").unwrap_err();
        assert_eq!(other_order.code, Code::SubjectMismatch);
        let bad_id = CREATE
            .replace("AMOUNT", "1")
            .replace("CUR", "USD")
            .replace("\"c-1\"", "\"c 1\"");
        assert_eq!(code(bad_id.as_bytes()), Code::InvalidId);
    }

    /// An `expire` for `order` (valid on the client plane with any valid order id).
    fn expire_for(order: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "command_id": "c-1",
            "order_id": order,
            "issued_at": "2026-11-22T10:00:00Z",
            "type": "expire",
        }))
        .expect("a JSON object serializes")
    }

    #[test]
    fn a_subject_on_a_plane_without_exactly_one_order_token_is_refused_naming_the_form() {
        // Given a valid command for order V, when it is published on a subject of its plane
        // with more than one token, an empty one or a wildcard-like one ...
        let body = expire_for("V");
        for subject in [
            "paystate.cmd.V.1",
            "paystate.cmd.V.",
            "paystate.cmd.",
            "paystate.cmd..V",
            "paystate.cmd.*",
            "paystate.cmd.>",
            "paystate.cmd.V.>",
            "paystate.cmd.V*",
        ] {
            let r = parse_command(&body, subject).expect_err(subject);
            // ... then it is refused as a subject mismatch that names the expected form.
            assert_eq!(r.code, Code::SubjectMismatch, "{subject}");
            assert!(
                r.message.contains("paystate.cmd.<order_id>"),
                "{subject}: {}",
                r.message
            );
        }
        // The plane's own prefix is named on the other planes.
        let resolve = br#"{"command_id":"r-1","order_id":"V","issued_at":"2026-11-22T10:00:00Z","type":"resolve_review","operator":"ops-1","reason":"checked"}"#;
        let r = parse_command(resolve, "paystate.op.V.1").expect_err("dotted operator subject");
        assert_eq!(r.code, Code::SubjectMismatch);
        assert!(
            r.message.contains("paystate.op.<order_id>"),
            "{}",
            r.message
        );
        // The one-token subject, the form the fast path parses on, is accepted.
        let queue_subject = paystate_events::subjects::queue_subject_of(Plane::Client, "V");
        assert_eq!(queue_subject, "paystate.cmd.V");
        assert!(parse_command(&body, &queue_subject).is_ok());
        assert!(parse_command(resolve, "paystate.op.V").is_ok());
    }

    #[test]
    fn an_oversize_command_is_refused_before_its_subject_is_read() {
        // Given a command over the limit on a dotted subject, when parsed, then the size is
        // what is refused: the fast path refuses on size alone with the same rejection.
        let big = vec![b' '; COMMAND_BYTES_MAX + 1];
        let r = parse_command(&big, "paystate.cmd.V.1").expect_err("too large");
        assert_eq!(r.code, Code::CommandTooLarge);
        assert_eq!(check_size(&big), Err(r));
        assert_eq!(check_size(&big[..COMMAND_BYTES_MAX]), Ok(()));
    }

    proptest::proptest! {
        /// Over the whole order id alphabet: `paystate.cmd.<id>` is accepted exactly when the
        /// body names the same id, and `paystate.cmd.<id>.<anything>` never is.
        #[test]
        fn an_order_subject_is_accepted_iff_it_is_one_token_naming_the_body_order(
            id in "[A-Za-z0-9_-]{1,64}",
            other in "[A-Za-z0-9_-]{1,64}",
            same in proptest::bool::ANY,
            tail in "[ -~]{0,16}",
        ) {
            let named = if same { id.clone() } else { other.clone() };
            let body = expire_for(&named);
            let answer = parse_command(&body, &format!("paystate.cmd.{id}"));
            proptest::prop_assert_eq!(answer.is_ok(), named == id, "{:?}", answer);
            if let Err(r) = answer {
                proptest::prop_assert_eq!(r.code, Code::SubjectMismatch);
            }
            let dotted = parse_command(&expire_for(&id), &format!("paystate.cmd.{id}.{tail}"));
            proptest::prop_assert_eq!(dotted.map_err(|r| r.code), Err(Code::SubjectMismatch));
        }
    }

    #[test]
    fn ambiguity_card_data_and_planes_are_refused() {
        let dup = r#"{"command_id":"a","command_id":"b","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"expire"}"#;
        assert_eq!(code(dup.as_bytes()), Code::DuplicateKey);
        let two_amounts = CREATE
            .replace("AMOUNT", "1000,\"minor_units\":1")
            .replace("CUR", "USD");
        assert_eq!(code(two_amounts.as_bytes()), Code::DuplicateKey);
        let pan = r#"{"command_id":"c-2","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"start_payment","initiation":{"params":{"payment_option":"4111 1111 1111 1111"}}}"#;
        let r = parse_command(pan.as_bytes(), "paystate.cmd.o-1").unwrap_err();
        assert_eq!(r.code, Code::SensitiveData);
        assert!(r.message.contains("initiation.params.payment_option"));
        assert!(
            !r.message.contains("4111"),
            "the message never repeats card data"
        );
        let signal = r#"{"command_id":"s-1","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"provider_signal","signal":{"provider":"plural","evidence_ref":"e","observed_at":"2026-11-22T10:00:00Z","status":"cancelled"}}"#;
        assert_eq!(code(signal.as_bytes()), Code::SignalNotAllowed);
        assert!(parse_command(signal.as_bytes(), "paystate.signal.o-1").is_ok());
        let not_signal = parse_command(&create("1000", "USD"), "paystate.signal.o-1").unwrap_err();
        assert_eq!(not_signal.code, Code::SubjectMismatch);
        let resolve = r#"{"command_id":"r-1","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"resolve_review","operator":"ops-1","reason":"checked with the provider"}"#;
        assert_eq!(code(resolve.as_bytes()), Code::OperatorOnly);
        assert!(parse_command(resolve.as_bytes(), "paystate.op.o-1").is_ok());
        let on_signal = parse_command(resolve.as_bytes(), "paystate.signal.o-1").unwrap_err();
        assert_eq!(on_signal.code, Code::SubjectMismatch);
        let not_operator = parse_command(&create("1000", "USD"), "paystate.op.o-1").unwrap_err();
        assert_eq!(not_operator.code, Code::SubjectMismatch);
        let signal_on_op = parse_command(signal.as_bytes(), "paystate.op.o-1").unwrap_err();
        assert_eq!(signal_on_op.code, Code::SubjectMismatch);
    }
}
