use super::*;

pub fn sample() -> (J, Vec<(String, String)>) {
    let j = obj(vec![
        ("name", s("transaction.charged")),
        ("merchantId", s("m")),
        (
            "data",
            obj(vec![
                ("id", s("tx_1")),
                ("status", s("charged")),
                ("amount", raw("999")),
                ("processedAmount", raw("999")),
                ("currency", s("USD")),
                ("merchantReference", s("ord-1")),
            ]),
        ),
    ]);
    let headers = h(&[
        ("content-type", "application/json"),
        ("authorization", &format!("Bearer {PLEXY_TOKEN}")),
    ]);
    (j, headers)
}

/// What authenticates a Plexy webhook: the bearer token (no body field is covered).
pub fn token_ok(headers: &[(String, String)]) -> bool {
    header(headers, "authorization").is_some_and(|v| {
        v.trim().split_once(' ').is_some_and(|(scheme, t)| {
            scheme.eq_ignore_ascii_case("bearer") && t.trim() == PLEXY_TOKEN
        })
    })
}

/// Regression: a scalar `data` panicked (`Value` indexed by key) behind a valid token.
#[test]
fn scalar_data_is_malformed_not_a_panic() {
    let (_, headers) = sample();
    for body in [
        &br#"{"name":"transaction.charged","data":1}"#[..],
        br#"{"name":"transaction.x","data":"s"}"#,
    ] {
        assert!(matches!(
            run(Provider::Plexy, &headers, "", body),
            Err(CallbackError::Malformed { .. })
        ));
    }
}

proptest! {
    #![proptest_config(config(2500))]

    #[test]
    fn mutated_webhook(p in plan()) {
        let (sample, headers) = sample();
        let original = run(Provider::Plexy, &headers, "", sample.render().as_bytes())
            .expect("the sample verifies");
        prop_assert!(original.confirm_by_status);
        let body = mutate_json(&sample, &p);
        let hs = mutated_headers(&headers, &p);
        if let Ok(d) = run(Provider::Plexy, &hs, "order_id=ord-2", &body) {
            prop_assert!(token_ok(&hs), "accepted without the token");
            // A trigger: nothing of the unsigned body is signed identity or money state
            // the gateway applies (it applies the status query's answer).
            prop_assert!(d.confirm_by_status);
            prop_assert_eq!(d.order_id, None);
            prop_assert_eq!(d.provider_ref, None);
            prop_assert_eq!(d.account, "default");
        }
    }
}
