use super::*;
use paystate_adapters::paykassma::signature::{compact_json_as_received, postback_signature};

fn additional_data() -> J {
    J::Arr(vec![obj(vec![
        ("activated_datetime", s("2026-01-27 09:32:01")),
        ("exchanger_identifier", raw("null")),
        ("comment", s("a/b \u{00e9}")),
        ("amount", s("300")),
        ("currency_code", s("BTN")),
        ("wallet_type", s("bnb_ml")),
        ("stockpiling_id", raw("12057")),
        ("transaction_id", s("293397556789")),
        ("transaction_type", raw("0")),
        ("plugin_custom_order_id", s("ord-1.act.a1")),
        ("withdrawal_id", raw("null")),
        ("withdrawal_status", raw("null")),
        ("account_number", s("")),
        (
            "bank_details",
            obj(vec![("bank_code", s("")), ("branch_code", s(""))]),
        ),
    ])])
}

pub fn sample() -> J {
    let ad = additional_data();
    let compact = ad.render();
    assert_eq!(
        compact_json_as_received(&compact).expect("valid"),
        compact,
        "the sample renders compactly, as PHP does"
    );
    let sig = postback_signature(PAYKASSMA_ACCESS, PAYKASSMA_PRIVATE, &compact);
    obj(vec![
        ("signature", s(&sig)),
        ("wallet_type", s("bnb_ml")),
        ("amount", raw("300")),
        ("currency_code", s("BTN")),
        ("direction", s("ingoing")),
        ("access_key", s(PAYKASSMA_ACCESS)),
        ("additional_data", ad),
    ])
}

/// What the signature covers: the body's `access_key` and `additional_data` as an
/// ordered tree (key order, duplicates and number kinds kept). `None`: no such body.
pub fn view(body: &[u8]) -> Option<(Ordered, Ordered)> {
    let top: Ordered = serde_json::from_slice(body).ok()?;
    Some((
        top.get("access_key")?.clone(),
        top.get("additional_data")?.clone(),
    ))
}

/// The documented exception: an unsigned `status`/`direction` holds the report back
/// (recorded as unrecognised, keyed apart from the credit).
fn held(d: &Decision, original: &Decision) -> bool {
    matches!(d.signals.as_slice(), [SignalKind::Unrecognised { raw_status }] if raw_status.starts_with("unsigned "))
        && d.dedup_key
            .as_deref()
            .is_some_and(|k| k.starts_with("293397556789:held:"))
        && (d.order_id.as_ref(), d.provider_ref.as_ref())
            == (original.order_id.as_ref(), original.provider_ref.as_ref())
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn mutated_postback(p in plan()) {
        let sample = sample();
        let body0 = sample.render();
        let original = run(Provider::Paykassma, &[], "", body0.as_bytes()).expect("the sample verifies");
        prop_assert_eq!(original.dedup_key.as_deref(), Some("293397556789:credited"));
        let body = mutate_json(&sample, &p);
        let hs = mutated_headers(&[], &p);
        let result = run(Provider::Paykassma, &hs, "", &body);
        if view(&body) != view(body0.as_bytes()) {
            prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
        }
        if let Ok(d) = result {
            prop_assert!(d == original || held(&d, &original), "decision changed: {:?}", d);
        }
    }
}
