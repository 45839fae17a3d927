use super::*;
use paystate_adapters::exchanger::signature::IpnFields;

/// The signed fields, in the documented order.
pub const SIGNED: [&str; 7] = [
    "orderId",
    "newStatus",
    "inAmount",
    "outAmount",
    "xml_from",
    "xml_to",
    "timestamp",
];

/// The signed view: the first value of each signed field (empty when absent).
pub struct View(pub [String; 7]);

impl View {
    pub fn sign(&self) -> String {
        let f = &self.0;
        IpnFields {
            order_id: &f[0],
            new_status: &f[1],
            in_amount: &f[2],
            out_amount: &f[3],
            xml_from: &f[4],
            xml_to: &f[5],
            timestamp: &f[6],
        }
        .sign(EXCHANGER_SECRET)
    }
}

pub fn view(pairs: &[(String, String)]) -> View {
    View(SIGNED.map(|k| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }))
}

pub fn sample(which: usize) -> (Form, Vec<(String, String)>) {
    let fields = [
        ("orderUID", "1409"),
        ("orderId", "65a1f0c2e4b0a1b2c3d4e5f6"),
        (
            "newStatus",
            ["done", "inProgressPayout", "errorPayout", "returned"][which % 4],
        ),
        ("inAmount", "100.50"),
        ("outAmount", "0.00153"),
        ("xml_from", "UAH"),
        ("xml_to", "BTC"),
        ("timestamp", "1717171717"),
    ];
    let pairs: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = view(&pairs).sign();
    let sig = if which / 4 % 2 == 1 {
        sig.to_uppercase()
    } else {
        sig
    };
    let mut form = Form::new(&fields);
    let mut headers = h(&[("content-type", "application/x-www-form-urlencoded")]);
    if which / 8 % 2 == 0 {
        form.pairs.push(("sign".into(), sig));
    } else {
        headers.push(("x-signature".into(), sig));
    }
    (form, headers)
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn mutated_ipn(which in 0usize..16, p in plan()) {
        let (sample, headers) = sample(which);
        let body0 = sample.render();
        let original = run(Provider::Exchanger, &headers, "order_id=ord-1", body0.as_bytes())
            .expect("the sample verifies");
        let body = mutate_form(&sample, &p);
        let hs = mutated_headers(&headers, &p);
        let result = run(Provider::Exchanger, &hs, "order_id=ord-2", &body);
        let v0 = view(&form_pairs(body0.as_bytes()).unwrap_or_default()).0;
        if let Some(pairs) = form_pairs(&body) {
            if view(&pairs).0 != v0 {
                prop_assert!(result.is_err(), "signed view changed and verified: {:?}", result);
            }
        }
        if let Ok(d) = result {
            prop_assert_eq!(d, original);
        }
    }
}
