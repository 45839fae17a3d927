use super::*;
use paystate_adapters::plural::signature::{return_url_signature, webhook_signature};

const ID: &str = "msg_2mN8kYx1";

pub fn webhook_sample() -> (J, Vec<(String, String)>) {
    let j = obj(vec![
        ("event_type", s("ORDER_PROCESSED")),
        (
            "data",
            obj(vec![
                ("order_id", s("v1-5757575757-aa-hU1rUd")),
                ("merchant_order_reference", s("ord-1")),
                ("status", s("PROCESSED")),
                (
                    "order_amount",
                    obj(vec![("value", raw("1100")), ("currency", s("INR"))]),
                ),
                (
                    "payments",
                    J::Arr(vec![obj(vec![
                        ("id", s("v1-pay-1")),
                        ("status", s("PROCESSED")),
                        (
                            "capture_data",
                            J::Arr(vec![obj(vec![
                                ("merchant_capture_reference", s("ord-1-cap-c1")),
                                (
                                    "capture_amount",
                                    obj(vec![("value", raw("1100")), ("currency", s("INR"))]),
                                ),
                            ])]),
                        ),
                    ])]),
                ),
            ]),
        ),
    ]);
    let ts = t0().timestamp().to_string();
    let sig = webhook_signature(PLURAL_WEBHOOK_SECRET, ID, &ts, j.render().as_bytes());
    let headers = h(&[
        ("content-type", "application/json"),
        ("webhook-id", ID),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &sig),
    ]);
    (j, headers)
}

/// What a webhook signature covers: the id, the timestamp and the body bytes.
fn webhook_view(
    headers: &[(String, String)],
    body: &[u8],
) -> (Option<String>, Option<String>, Vec<u8>) {
    (
        header(headers, "webhook-id").map(str::to_string),
        header(headers, "webhook-timestamp").map(str::to_string),
        body.to_vec(),
    )
}

pub fn return_sample(which: usize) -> Form {
    let mut fields = vec![("order_id", "v1-4405071524-aa-qlAtAf")];
    if which % 2 == 0 {
        fields.push(("status", "AUTHORIZED"));
    } else {
        fields.push(("status", "FAILED"));
        fields.push(("error_code", "PAYMENT_DECLINED"));
        fields.push(("error_message", "Card declined by issuer"));
    }
    let sig = return_url_signature(PLURAL_RETURN_HEX, &fields).expect("hex key");
    let sig = if which % 4 >= 2 {
        sig.to_lowercase()
    } else {
        sig
    };
    fields.push(("signature", &sig));
    Form::new(&fields)
}

/// What a return-URL signature covers: every received field but `signature`, as
/// (key, value), ordered by key (same-key fields in received order).
fn return_view(query: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = form_pairs(query)?
        .into_iter()
        .filter(|(k, _)| k != "signature")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(pairs)
}

proptest! {
    #![proptest_config(config(2500))]

    #[test]
    fn mutated_webhook(p in plan()) {
        let (sample, headers) = webhook_sample();
        let body0 = sample.render();
        let original = run(Provider::Plural, &headers, "", body0.as_bytes()).expect("the sample verifies");
        let body = mutate_json(&sample, &p);
        let hs = mutated_headers(&headers, &p);
        let result = run(Provider::Plural, &hs, "", &body);
        if header(&hs, "webhook-signature").is_some()
            && webhook_view(&hs, &body) != webhook_view(&headers, body0.as_bytes())
        {
            prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
        }
        if let Ok(d) = result {
            prop_assert_eq!(d, original);
        }
    }

    #[test]
    fn mutated_return_url(which in 0usize..4, p in plan()) {
        let sample = return_sample(which);
        let q0 = sample.render();
        let original = run(Provider::Plural, &[], &q0, b"").expect("the sample verifies");
        let q = mutate_form(&sample, &p);
        let q = String::from_utf8_lossy(&q).into_owned();
        let result = run(Provider::Plural, &[], &q, b"");
        // The signed message is `k=v` pairs joined with `&`, not encoded: pairs can be
        // merged (`error_code=A%26error_message%3DB`) and still verify. Such a change of
        // the signed view is allowed only with the very same decision.
        if let Ok(d) = result {
            prop_assert_eq!(d, original, "view changed: {}", return_view(q.as_bytes()) != return_view(q0.as_bytes()));
        }
    }
}
