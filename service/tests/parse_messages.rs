//! Rejections of bad commands name the field and the rule, with the stable codes unchanged
//! (issue 14): one test per case. Unknown fields are refused, naming the field.

use paystate_events::RejectionCode as Code;
use paystate_service::parse::parse_command;
use serde_json::{json, Value};

fn create() -> Value {
    json!({"command_id": "c-1", "order_id": "o-1", "issued_at": "2026-11-22T10:00:00Z",
        "type": "create_order", "merchant_reference": "shop-42",
        "amount": {"minor_units": 10000, "currency": "USD"},
        "provider": "plural", "capture_mode": "manual"})
}

fn refused(v: &Value) -> (Code, String) {
    refused_bytes(&serde_json::to_vec(v).expect("json"))
}

fn refused_bytes(bytes: &[u8]) -> (Code, String) {
    let r = parse_command(bytes, "paystate.cmd.o-1").expect_err("refused");
    (r.code, r.message)
}

#[test]
fn a_bad_date_names_the_field_and_the_rule() {
    let mut v = create();
    v["issued_at"] = json!("2026-11-22");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::InvalidField);
    assert!(
        message.starts_with("issued_at: not an RFC 3339 timestamp"),
        "{message}"
    );
    v["issued_at"] = json!("2026-11-22T10:00:00Z");
    v["expires_at"] = json!("tomorrow");
    let (_, message) = refused(&v);
    assert!(
        message.starts_with("expires_at: not an RFC 3339 timestamp"),
        "{message}"
    );
    v["expires_at"] = json!(5);
    let (_, message) = refused(&v);
    assert!(
        message.starts_with("expires_at: must be a string"),
        "{message}"
    );
}

#[test]
fn a_type_that_is_not_a_string_is_named_as_such() {
    let mut v = create();
    v["type"] = json!(5);
    let (code, message) = refused(&v);
    assert_eq!(code, Code::UnknownCommand);
    assert!(message.starts_with("type: must be a string"), "{message}");
    v.as_object_mut().expect("object").remove("type");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::UnknownCommand);
    assert!(message.starts_with("type: missing"), "{message}");
}

#[test]
fn an_amount_above_the_maximum_is_an_amount_error_even_beyond_any_float() {
    let text = serde_json::to_string(&create())
        .expect("json")
        .replace("\"minor_units\":10000", "\"minor_units\":1e400");
    let (code, message) = refused_bytes(text.as_bytes());
    assert_eq!(code, Code::AmountOverflow);
    assert_eq!(message, "amount.minor_units: above the maximum 10^15");
    let mut v = create();
    v["amount"]["minor_units"] = json!(1_000_000_000_000_001u64);
    let (code, message) = refused(&v);
    assert_eq!(code, Code::AmountOverflow);
    assert_eq!(message, "amount.minor_units: above the maximum 10^15");
}

#[test]
fn other_amount_and_currency_errors_name_the_field() {
    for (units, want) in [
        (json!(0), Code::InvalidAmount),
        (json!(-5), Code::InvalidAmount),
        (json!(12.5), Code::InvalidAmount),
        (json!("1000"), Code::InvalidField),
    ] {
        let mut v = create();
        v["amount"]["minor_units"] = units.clone();
        let (code, message) = refused(&v);
        assert_eq!(code, want, "{units}");
        assert!(message.starts_with("amount.minor_units: "), "{message}");
    }
    let mut v = create();
    v["amount"]["currency"] = json!("XYZ");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::UnknownCurrency);
    assert!(message.starts_with("amount.currency: "), "{message}");
}

#[test]
fn ids_and_other_bad_values_name_their_field() {
    let mut v = create();
    v["command_id"] = json!("c 1");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::InvalidId);
    assert!(message.starts_with("command_id: "), "{message}");
    let mut v = create();
    v["provider"] = json!("paypal");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::InvalidField);
    assert!(message.starts_with("provider: "), "{message}");
    let mut v = create();
    v.as_object_mut().expect("object").remove("capture_mode");
    let (code, message) = refused(&v);
    assert_eq!(code, Code::MissingField);
    assert!(message.starts_with("capture_mode: missing"), "{message}");
}

#[test]
fn unknown_fields_are_refused_naming_the_field() {
    let capture = json!({"command_id": "c-2", "order_id": "o-1", "issued_at": "2026-11-22T10:00:00Z",
        "type": "capture", "ammount": {"minor_units": 500, "currency": "USD"}});
    let (code, message) = refused(&capture);
    assert_eq!(code, Code::InvalidField);
    assert!(message.starts_with("ammount: unknown field"), "{message}");
    let mut v = create();
    v["amount"]["scale"] = json!(2);
    let (code, message) = refused(&v);
    assert_eq!(code, Code::InvalidField);
    assert!(
        message.starts_with("amount.scale: unknown field"),
        "{message}"
    );
    // Optional fields left empty are known fields, not unknown ones.
    let mut v = create();
    v["expires_at"] = Value::Null;
    v["metadata"] = json!({});
    assert!(parse_command(&serde_json::to_vec(&v).expect("json"), "paystate.cmd.o-1").is_ok());
    // The caller's own keys (metadata) are data, not fields.
    v["metadata"] = json!({"anything": "goes"});
    assert!(parse_command(&serde_json::to_vec(&v).expect("json"), "paystate.cmd.o-1").is_ok());
}
