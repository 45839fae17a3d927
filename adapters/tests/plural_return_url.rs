//! Plural's signed return URL, through `Adapters::verify_and_parse_callback`: a report that
//! carries a signed error code is never read as a success, even when its status says
//! AUTHORIZED (the seed's failed example); it only triggers a status query.

use paystate_adapters::plural::signature::return_url_signature;
use paystate_adapters::{Adapters, AdaptersConfig, CallbackError, InboundCallback, ParsedCallback};
use paystate_events::{Operation, Provider, SignalKind, Timestamp};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff";
const ORDER: &str = "v1-4405071524-aa-qlAtAf";

fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp(1_721_381_603, 0).expect("valid time")
}

fn adapters() -> Adapters {
    let text = format!(
        r#"
        [plural]
        base_url = "http://127.0.0.1:1"
        [plural.accounts.default]
        client_id = "cid"
        client_secret = "cs-secret-1"
        webhook_secret = "my_plural_secret"
        return_url_secret_hex = "{KEY_HEX}"
        "#
    );
    let config: AdaptersConfig = toml::from_str(&text).expect("valid config");
    Adapters::new(config).expect("valid")
}

/// `fields` signed the way Plural signs them (and the adapter verifies).
fn signature_of(fields: &[(&str, &str)]) -> String {
    return_url_signature(KEY_HEX, fields).expect("hex key")
}

/// The return URL's query: `fields`, then `signature`, URL-encoded as a browser sends them.
fn query(fields: &[(&str, &str)], signature: &str) -> String {
    let mut all = fields.to_vec();
    all.push(("signature", signature));
    serde_urlencoded::to_string(&all).expect("encodable")
}

fn parse(query: &str) -> Result<ParsedCallback, CallbackError> {
    let cb = InboundCallback {
        headers: &[],
        query,
        body: b"",
    };
    adapters().verify_and_parse_callback(Provider::Plural, &cb, t0())
}

fn success() -> Vec<(&'static str, &'static str)> {
    vec![("order_id", ORDER), ("payment_status", "AUTHORIZED")]
}

/// The seed's failed example: status AUTHORIZED, with an error code and message.
fn failed_authorized() -> Vec<(&'static str, &'static str)> {
    vec![
        ("order_id", ORDER),
        ("payment_status", "AUTHORIZED"),
        ("error_code", "USER_AUTHENTICATION_REQUIRED"),
        ("error_message", "Consumer Authentication Required"),
    ]
}

fn moves_money(k: &SignalKind) -> bool {
    matches!(
        k,
        SignalKind::Authorized { .. }
            | SignalKind::Captured { .. }
            | SignalKind::Settled { .. }
            | SignalKind::Refunded { .. }
    )
}

#[test]
fn the_seeds_successful_return_authorizes() {
    // Given the seed's successful return, signed.
    let fields = success();
    // When it is verified and parsed.
    let parsed = parse(&query(&fields, &signature_of(&fields))).expect("verified");
    // Then it authorizes the order it names, as it is.
    assert_eq!(
        parsed.signals,
        vec![SignalKind::Authorized { amount: None }]
    );
    assert!(!parsed.confirm_by_status);
    assert_eq!(parsed.hint.provider_ref.as_deref(), Some(ORDER));
}

#[test]
fn the_seeds_failed_return_with_status_authorized_does_not_authorize() {
    for status in ["AUTHORIZED", "PROCESSED"] {
        // Given a signed return whose status reads as a success but that carries an error.
        let mut fields = failed_authorized();
        fields[1] = ("payment_status", status);
        // When it is verified and parsed.
        let parsed = parse(&query(&fields, &signature_of(&fields))).expect("verified");
        // Then nothing in it moves money: the claim is kept as evidence, and the order is
        // confirmed by a status query (the gateway asks Plural about the signed order id).
        assert!(!parsed.signals.iter().any(moves_money), "{parsed:?}");
        assert!(parsed.confirm_by_status, "{status}");
        match parsed.signals.as_slice() {
            [SignalKind::Unrecognised { raw_status }] => {
                assert!(raw_status.contains(status), "{raw_status}");
                assert!(
                    raw_status.contains("USER_AUTHENTICATION_REQUIRED"),
                    "{raw_status}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parsed.hint.provider_ref.as_deref(), Some(ORDER));
    }
}

#[test]
fn a_failed_return_with_its_error_code_fails_the_payment_with_that_code() {
    // Given the seed's signing example for a failure: status FAILED with an error code.
    let fields = [
        ("error_code", "USER_AUTHENTICATION_FAILED"),
        ("error_message", "Consumer Authentication required"),
        ("order_id", ORDER),
        ("status", "FAILED"),
    ];
    // When it is verified and parsed.
    let parsed = parse(&query(&fields, &signature_of(&fields))).expect("verified");
    // Then the payment failed, with Plural's code and message.
    assert_eq!(
        parsed.signals,
        vec![SignalKind::Failed {
            operation: Operation::Payment,
            code: "USER_AUTHENTICATION_FAILED".into(),
            message: "Consumer Authentication required".into(),
            refund_id: None,
        }]
    );
    assert!(!parsed.confirm_by_status);
}

#[test]
fn an_error_code_added_to_a_signed_success_fails_verification() {
    // Given the successful return's signature, and an error code nobody signed.
    let signed = success();
    let mut fields = signed.clone();
    fields.push(("error_code", "USER_AUTHENTICATION_REQUIRED"));
    // When it is verified.
    let result = parse(&query(&fields, &signature_of(&signed)));
    // Then it is refused.
    assert!(
        matches!(result, Err(CallbackError::BadSignature { .. })),
        "{result:?}"
    );
}

#[test]
fn an_error_code_hidden_inside_a_regrouped_field_is_still_read() {
    // Given the failed return's signature, and its fields regrouped so that no field is
    // named `error_code` (the signed message, `k=v` joined with `&`, is unchanged).
    let signature = signature_of(&failed_authorized());
    let regrouped = [
        (
            "error_code=USER_AUTHENTICATION_REQUIRED&error_message",
            "Consumer Authentication Required",
        ),
        ("order_id", ORDER),
        ("payment_status", "AUTHORIZED"),
    ];
    // When it is verified and parsed.
    let parsed = parse(&query(&regrouped, &signature)).expect("the signed message is the same");
    // Then it means what the signed message means: the failed return, not a success.
    let original = parse(&query(&failed_authorized(), &signature)).expect("verified");
    assert_eq!(parsed, original);
    assert!(!parsed.signals.iter().any(moves_money), "{parsed:?}");
}

#[test]
fn two_different_signed_statuses_are_inconclusive() {
    // Given a signed return naming the status twice, differently.
    let fields = [
        ("order_id", ORDER),
        ("payment_status", "AUTHORIZED"),
        ("status", "FAILED"),
    ];
    // When it is verified and parsed.
    let parsed = parse(&query(&fields, &signature_of(&fields))).expect("verified");
    // Then neither is believed: a status query decides.
    assert!(parsed.confirm_by_status);
    assert!(!parsed.signals.iter().any(moves_money), "{parsed:?}");
}
