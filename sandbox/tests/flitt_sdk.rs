//! Flitt sandbox fidelity for the official SDKs: each test sends the bytes an SDK puts on the
//! wire (path, headers, body encoding, field order, escaping), written here from the SDK
//! sources, and reads the answer the way that SDK does.
//!
//! Sources read (protocol 1.0, the default):
//! - Python `flittpayments/python`: `api.py`, `helpers.py`, `utils.py`, `checkout.py`,
//!   `order.py`. Base `https://{domain}/api`, paths `/checkout/url/`, `/checkout/token/`,
//!   `/status/order_id/`, `/capture/order_id/`, `/reverse/order_id/`; `User-Agent: Python
//!   SDK`; JSON = `json.dumps({"request": data})` (`", "` and `": "` separators) with
//!   `Content-Type: application/json; charset=utf-8`; form = `urlencode(sorted(request))`
//!   with `application/x-www-form-urlencoded; charset=utf-8`; a form answer is read with
//!   `parse_qsl`, a JSON one as `["response"]`.
//! - Node `flittpayments/node-js-sdk`: `lib/index.js`, `lib/util.js`. Paths `/api/checkout/url/`
//!   etc.; `User-Agent: FlittPay-nodejs-sdk`; the header VALUE is
//!   `Content-type: application/json; charset=utf-8` (or `Content-type:
//!   application/x-www-form-urlencoded`), a quirk of `getContentHeader`; JSON =
//!   `JSON.stringify({request: data})` (compact), form = `querystring.stringify(data)`
//!   (spaces as `%20`); answer signatures are checked only when `merchant_id` is present.
//! - PHP `flittpayments/php-sdk`: `lib/Api/Api.php`, `lib/Helper/ApiHelper.php`,
//!   `lib/Helper/RequestHelper.php`, `lib/HttpClient/HttpCurl.php`, `lib/Configuration.php`.
//!   Base `https://pay.flitt.com/api`, paths `/checkout/url/` etc.; `User-Agent: php-sdk`;
//!   `Content-Type: application/json` (`json_encode`: compact, `/` escaped as `\/`) or
//!   `application/x-www-form-urlencoded` (`http_build_query`: spaces as `+`); a form answer
//!   is read with `parse_str`.
//!
//! Seed 004 writes the paths without the trailing slash and shows only JSON; both spellings
//! are served and answer the same orders.

mod common;

use common::{client, sandbox, Receiver};
use paystate_sandbox::{Provider, SandboxHandle};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

const P: Provider = Provider::Flitt;
const PASSWORD: &str = "test";
const MERCHANT: &str = "1549901";

/// SHA-1 protocol 1.0 as every SDK computes it: the password, then each non-empty value in
/// ascending key order, joined with `|` (`signature` and `response_signature_string` left out).
fn sdk_sign(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "signature" && *k != "response_signature_string")
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = PASSWORD.to_string();
    for (_, v) in sorted {
        text.push('|');
        text.push_str(v);
    }
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// An answer's parameters as the SDKs render them for the check: numbers as digits.
fn as_texts(m: &Map<String, Value>) -> Vec<(&str, String)> {
    m.iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.as_str(), text))
        })
        .collect()
}

/// `is_valid` / `validateResponse` / `isPaymentValid`: the answer's signature recomputed.
fn sdk_valid(m: &Map<String, Value>) -> bool {
    let Some(Value::String(signature)) = m.get("signature") else {
        return false;
    };
    sdk_sign(&as_texts(m)) == *signature
}

/// Percent-encoding of one form value. `keep` lists the punctuation left as is; `plus`
/// writes spaces as `+` (Python `quote_plus`, PHP `urlencode`) instead of `%20` (Node).
fn pct(value: &str, keep: &str, plus: bool) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(b as char),
            b' ' if plus => out.push('+'),
            _ if keep.as_bytes().contains(&b) => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form(pairs: &[(&str, String)], keep: &str, plus: bool) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k, keep, plus), pct(v, keep, plus)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Python `urlencode(sorted(request.items()))`.
fn python_form(pairs: &[(&str, String)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    form(&sorted, "_.-~", true)
}

/// Node `querystring.stringify(data)`: insertion order, spaces `%20`.
fn node_form(pairs: &[(&str, String)]) -> String {
    form(pairs, "-_.!~*'()", false)
}

/// PHP `http_build_query($data, NULL, '&')`: insertion order, spaces `+`.
fn php_form(pairs: &[(&str, String)]) -> String {
    form(pairs, "-_.", true)
}

/// Pairs plus their `signature`, appended last as every SDK does.
fn signed(mut pairs: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let signature = sdk_sign(&pairs);
    pairs.push(("signature", signature));
    pairs
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    /// A JSON answer's `response` object (how all three SDKs read JSON).
    fn json(&self) -> Map<String, Value> {
        let v: Value = serde_json::from_str(&self.body).expect("JSON answer");
        v["response"]
            .as_object()
            .expect("`response` object")
            .clone()
    }
    /// A form answer, flat (`parse_qsl` / `querystring.parse` / `parse_str`).
    fn form(&self) -> Map<String, Value> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&self.body).expect("form answer");
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    }
}

/// Sends exactly these headers and bytes.
async fn send(sb: &SandboxHandle, path: &str, headers: &[(&str, &str)], body: String) -> Answer {
    let mut req = client().post(format!("{}{path}", sb.base_url(P)));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.expect("sandbox answers");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.expect("answer body");
    Answer {
        status,
        content_type,
        body,
    }
}

const PY_JSON: [(&str, &str); 2] = [
    ("User-Agent", "Python SDK"),
    ("Content-Type", "application/json; charset=utf-8"),
];
const PY_FORM: [(&str, &str); 2] = [
    ("User-Agent", "Python SDK"),
    (
        "Content-Type",
        "application/x-www-form-urlencoded; charset=utf-8",
    ),
];
const NODE_JSON: [(&str, &str); 2] = [
    ("User-Agent", "FlittPay-nodejs-sdk"),
    (
        "Content-Type",
        "Content-type: application/json; charset=utf-8",
    ),
];
const NODE_FORM: [(&str, &str); 2] = [
    ("User-Agent", "FlittPay-nodejs-sdk"),
    (
        "Content-Type",
        "Content-type: application/x-www-form-urlencoded",
    ),
];
const PHP_JSON: [(&str, &str); 2] = [
    ("User-Agent", "php-sdk"),
    ("Content-Type", "application/json"),
];
const PHP_FORM: [(&str, &str); 2] = [
    ("User-Agent", "php-sdk"),
    ("Content-Type", "application/x-www-form-urlencoded"),
];

/// A JSON string literal as Python's `json.dumps` writes it (ASCII test values only).
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

#[test]
fn signing_helper_matches_the_seed_vector() {
    let pairs = [
        ("order_id", "ord-1001".to_string()),
        ("merchant_id", MERCHANT.to_string()),
        ("order_desc", "Test order".to_string()),
        ("amount", "12500".to_string()),
        ("currency", "GEL".to_string()),
        ("server_callback_url", "https://shop.example/cb".to_string()),
        ("response_url", String::new()),
    ];
    assert_eq!(sdk_sign(&pairs), "cdd4b5535a3c985d47d38ef2d755ab952a95a2bd");
    assert_eq!(
        python_form(&[("order_desc", "Test order".into()), ("a", "x/y:z".into())]),
        "a=x%2Fy%3Az&order_desc=Test+order"
    );
    assert_eq!(
        node_form(&[("order_desc", "Test order".into())]),
        "order_desc=Test%20order"
    );
}

/// Python SDK, JSON (its default): `Checkout(api).url(data)` then `Order(api).status(...)`,
/// both on the trailing-slash paths.
#[tokio::test]
async fn python_sdk_json_checkout_url_and_status() {
    let rx = Receiver::start().await;
    let sb = sandbox(|_| {}).await;
    // _required(): order_id, order_desc, amount, currency first, then the caller's other
    // keys, then merchant_id (Api.post), then signature.
    let data = vec![
        ("order_id", "py-json-1".to_string()),
        ("order_desc", "Test order".to_string()),
        ("amount", "12500".to_string()),
        ("currency", "GEL".to_string()),
        ("payment_systems", "paybypayme".to_string()),
        ("payment_method", "paybypayme".to_string()),
        ("server_callback_url", rx.url.clone()),
        ("merchant_id", MERCHANT.to_string()),
    ];
    let signature = sdk_sign(&data);
    let body = format!(
        "{{\"request\": {{\"order_id\": \"py-json-1\", \"order_desc\": \"Test order\", \
         \"amount\": 12500, \"currency\": \"GEL\", \"payment_systems\": \"paybypayme\", \
         \"payment_method\": \"paybypayme\", \"server_callback_url\": {}, \
         \"merchant_id\": 1549901, \"signature\": \"{signature}\"}}}}",
        js(&rx.url)
    );
    let a = send(&sb, "/api/checkout/url/", &PY_JSON, body).await;
    assert_eq!(a.status, 200);
    assert!(
        a.content_type.starts_with("application/json"),
        "{}",
        a.content_type
    );
    let r = a.json();
    assert_eq!(r["response_status"], "success", "{}", a.body);
    assert!(r["checkout_url"].as_str().unwrap().contains("/merchants/"));
    assert!(r["payment_id"].is_string());
    assert!(
        !r.contains_key("error_message"),
        "the SDK raises on error_message"
    );

    // Order.status({'order_id': ...}): params {order_id} + merchant_id + signature.
    let data = vec![
        ("order_id", "py-json-1".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ];
    let signature = sdk_sign(&data);
    let body = format!(
        "{{\"request\": {{\"order_id\": \"py-json-1\", \"merchant_id\": 1549901, \
         \"signature\": \"{signature}\"}}}}"
    );
    let r = send(&sb, "/api/status/order_id/", &PY_JSON, body)
        .await
        .json();
    assert_eq!(r["order_status"], "created");
    assert_eq!(r["response_status"], "success");
    assert!(
        sdk_valid(&r),
        "helpers.is_valid accepts the status answer: {r:?}"
    );
}

/// Python SDK with `request_type='form'`: token, preauth, capture, partial reverse and
/// status, every answer a flat form whose signature `is_valid` accepts.
#[tokio::test]
async fn python_sdk_form_token_capture_reverse_status() {
    let rx = Receiver::start().await;
    let sb = sandbox(|_| {}).await;
    let create = signed(vec![
        ("order_id", "py-form-1".to_string()),
        ("order_desc", "Test order".to_string()),
        ("amount", "12500".to_string()),
        ("currency", "GEL".to_string()),
        ("payment_systems", "paybypayme".to_string()),
        ("payment_method", "paybypayme".to_string()),
        ("preauth", "Y".to_string()),
        ("server_callback_url", rx.url.clone()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let a = send(&sb, "/api/checkout/token/", &PY_FORM, python_form(&create)).await;
    assert_eq!(a.status, 200);
    assert!(
        a.content_type
            .starts_with("application/x-www-form-urlencoded"),
        "answered in the request's format: {}",
        a.content_type
    );
    let r = a.form();
    assert_eq!(r["response_status"], "success", "{}", a.body);
    assert_eq!(r["token"].as_str().unwrap().len(), 40);
    sb.approve(P, "py-form-1").unwrap();

    // Order.capture: {order_id, amount, currency} + merchant_id + signature, sorted.
    let capture = signed(vec![
        ("order_id", "py-form-1".to_string()),
        ("amount", "10000".to_string()),
        ("currency", "GEL".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let r = send(
        &sb,
        "/api/capture/order_id/",
        &PY_FORM,
        python_form(&capture),
    )
    .await
    .form();
    assert_eq!(r["capture_status"], "captured", "{r:?}");
    assert_eq!(r["capture_amount"], "10000");
    assert!(
        sdk_valid(&r),
        "a form answer is signed over its text: {r:?}"
    );

    let reverse = signed(vec![
        ("order_id", "py-form-1".to_string()),
        ("amount", "2500".to_string()),
        ("currency", "GEL".to_string()),
        ("reverse_id", "py-form-1-r1".to_string()),
        ("comment", "Customer returned product back".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let r = send(
        &sb,
        "/api/reverse/order_id/",
        &PY_FORM,
        python_form(&reverse),
    )
    .await
    .form();
    assert_eq!(r["reverse_status"], "approved", "{r:?}");
    assert_eq!(r["reversal_amount"], "2500");
    assert!(sdk_valid(&r));

    let status = signed(vec![
        ("order_id", "py-form-1".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let r = send(&sb, "/api/status/order_id/", &PY_FORM, python_form(&status))
        .await
        .form();
    assert_eq!(r["order_status"], "approved");
    assert_eq!(r["capture_status"], "captured");
    assert_eq!(r["reversal_amount"], "2500");
    assert!(sdk_valid(&r), "{r:?}");

    // Callbacks stay JSON whatever the request format (documented: JSON POST).
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    let hits = rx.wait_hits(3).await;
    assert!(hits.len() >= 3, "approval, capture and reverse callbacks");
    for hit in hits {
        let cb = hit.json();
        assert!(sdk_valid(cb.as_object().unwrap()), "{cb}");
    }
}

/// Node SDK: its `Content-Type` header value carries a second `Content-type:` prefix; JSON is
/// compact, a form is `querystring.stringify` (insertion order, `%20`).
#[tokio::test]
async fn node_sdk_json_and_form_with_its_content_type_value() {
    let sb = sandbox(|_| {}).await;
    // Checkout(data): data as given, merchant_id set by getImportantParams, then signature.
    let data = vec![
        ("order_id", "node-1".to_string()),
        ("order_desc", "Test order".to_string()),
        ("currency", "GEL".to_string()),
        ("amount", "12500".to_string()),
        ("payment_systems", "paybypayme".to_string()),
        ("payment_method", "paybypayme".to_string()),
        ("preauth", "Y".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ];
    let signature = sdk_sign(&data);
    let body = format!(
        "{{\"request\":{{\"order_id\":\"node-1\",\"order_desc\":\"Test order\",\"currency\":\"GEL\",\
         \"amount\":12500,\"payment_systems\":\"paybypayme\",\"payment_method\":\"paybypayme\",\
         \"preauth\":\"Y\",\"merchant_id\":1549901,\"signature\":\"{signature}\"}}}}"
    );
    let r = send(&sb, "/api/checkout/url/", &NODE_JSON, body)
        .await
        .json();
    assert_eq!(r["response_status"], "success", "{r:?}");
    assert!(
        r.get("error_code").is_none(),
        "the SDK throws on error_code"
    );
    sb.approve(P, "node-1").unwrap();

    // Capture(data) with contentType 'form'.
    let capture = signed(vec![
        ("order_id", "node-1".to_string()),
        ("currency", "GEL".to_string()),
        ("amount", "12500".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let a = send(
        &sb,
        "/api/capture/order_id/",
        &NODE_FORM,
        node_form(&capture),
    )
    .await;
    let r = a.form();
    assert_eq!(r["capture_status"], "captured", "{}", a.body);
    assert!(
        r.contains_key("merchant_id"),
        "validateResponse needs merchant_id"
    );
    assert!(sdk_valid(&r));

    // Status(data), JSON again: the order answers the same whatever format created it.
    let status = vec![
        ("order_id", "node-1".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ];
    let signature = sdk_sign(&status);
    let body = format!(
        "{{\"request\":{{\"order_id\":\"node-1\",\"merchant_id\":1549901,\"signature\":\"{signature}\"}}}}"
    );
    let r = send(&sb, "/api/status/order_id/", &NODE_JSON, body)
        .await
        .json();
    assert_eq!(r["order_status"], "approved");
    assert_eq!(r["capture_status"], "captured");
    assert!(sdk_valid(&r), "{r:?}");
}

/// PHP SDK: `json_encode` escapes `/` as `\/`; `http_build_query` writes spaces as `+`.
#[tokio::test]
async fn php_sdk_json_with_escaped_slashes_and_form() {
    let rx = Receiver::start().await;
    let sb = sandbox(|_| {}).await;
    // Checkout\Url::get($data): prepareParams keeps $data's order and adds merchant_id when
    // missing; converDataV1 appends the signature.
    let data = vec![
        ("order_id", "php-1".to_string()),
        ("order_desc", "Test order".to_string()),
        ("currency", "GEL".to_string()),
        ("amount", "12500".to_string()),
        ("payment_systems", "paybypayme".to_string()),
        ("payment_method", "paybypayme".to_string()),
        ("server_callback_url", rx.url.clone()),
        ("merchant_id", MERCHANT.to_string()),
    ];
    let signature = sdk_sign(&data);
    let escaped_url = js(&rx.url).replace('/', "\\/");
    let body = format!(
        "{{\"request\":{{\"order_id\":\"php-1\",\"order_desc\":\"Test order\",\"currency\":\"GEL\",\
         \"amount\":12500,\"payment_systems\":\"paybypayme\",\"payment_method\":\"paybypayme\",\
         \"server_callback_url\":{escaped_url},\"merchant_id\":1549901,\"signature\":\"{signature}\"}}}}"
    );
    let r = send(&sb, "/api/checkout/url/", &PHP_JSON, body)
        .await
        .json();
    assert_eq!(r["response_status"], "success", "{r:?}");
    sb.approve(P, "php-1").unwrap();
    assert!(sb.wait_callbacks_idle(common::WAIT).await);
    assert_eq!(
        rx.wait_hits(1).await.len(),
        1,
        "the unescaped callback URL was used"
    );

    // Order\Status::get with RequestType 'form'.
    let status = signed(vec![
        ("order_id", "php-1".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let r = send(&sb, "/api/status/order_id/", &PHP_FORM, php_form(&status))
        .await
        .form();
    assert_eq!(r["order_status"], "approved", "{r:?}");
    assert!(sdk_valid(&r), "ResultHelper::isPaymentValid accepts it");
}

/// Seed 004's spelling (no trailing slash) and the SDKs' (with it) reach the same order.
#[tokio::test]
async fn both_path_spellings_serve_the_same_orders() {
    let sb = sandbox(|_| {}).await;
    let data = signed(vec![
        ("order_id", "both-1".to_string()),
        ("order_desc", "Test order".to_string()),
        ("amount", "10000".to_string()),
        ("currency", "UZS".to_string()),
        ("payment_systems", "paybypayme".to_string()),
        ("payment_method", "paybypayme".to_string()),
        ("merchant_id", MERCHANT.to_string()),
    ]);
    let body = python_form(&data);
    let first = send(&sb, "/api/checkout/url", &PY_FORM, body.clone())
        .await
        .form();
    let second = send(&sb, "/api/checkout/url/", &PY_FORM, body).await.form();
    assert_eq!(first["response_status"], "success", "{first:?}");
    assert_eq!(
        first["checkout_url"], second["checkout_url"],
        "an identical repeat answers the same checkout"
    );
    for path in [
        "/api/status/order_id",
        "/api/capture/order_id/x",
        "/api/nothing/",
    ] {
        let a = send(&sb, &format!("{path}//"), &PY_FORM, String::new()).await;
        assert_eq!(a.status, 404, "{path}// is not a Flitt path");
    }
}

/// Malformed requests get the failure shape in the request's own format, HTTP 200.
#[tokio::test]
async fn malformed_requests_get_failures_in_their_format() {
    let sb = sandbox(|_| {}).await;
    let status = |order: &str| {
        signed(vec![
            ("order_id", order.to_string()),
            ("merchant_id", MERCHANT.to_string()),
        ])
    };
    let expect = |r: &Map<String, Value>, code: &str| {
        assert_eq!(r["response_status"], "failure", "{r:?}");
        let got = match &r["error_code"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(got, code, "{r:?}");
        assert!(r["error_message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(r["request_id"].as_str().is_some_and(|m| !m.is_empty()));
    };

    // A form with a spoiled signature: 1007, answered as a form.
    let mut bad = status("nope");
    bad.last_mut().unwrap().1 = "0".repeat(40);
    let a = send(&sb, "/api/status/order_id/", &PY_FORM, python_form(&bad)).await;
    assert_eq!(a.status, 200);
    assert!(a
        .content_type
        .starts_with("application/x-www-form-urlencoded"));
    expect(&a.form(), "1007");

    // Unknown order, well signed: 1018.
    let a = send(
        &sb,
        "/api/status/order_id/",
        &NODE_FORM,
        node_form(&status("nope")),
    )
    .await;
    expect(&a.form(), "1018");

    // Another merchant: 1002.
    let other = signed(vec![
        ("order_id", "x".to_string()),
        ("merchant_id", "1".to_string()),
    ]);
    expect(
        &send(&sb, "/api/status/order_id", &PHP_FORM, php_form(&other))
            .await
            .form(),
        "1002",
    );

    // A parameter given twice is refused rather than guessed.
    let twice = format!("{}&order_id=other", python_form(&status("x")));
    expect(
        &send(&sb, "/api/status/order_id/", &PY_FORM, twice)
            .await
            .form(),
        "1000",
    );

    // JSON without the `request` object: 1011; not JSON at all: 1000.
    let a = send(
        &sb,
        "/api/status/order_id/",
        &PY_JSON,
        "{\"order_id\": \"x\"}".into(),
    )
    .await;
    expect(&a.json(), "1011");
    let a = send(
        &sb,
        "/api/status/order_id/",
        &NODE_JSON,
        "{\"request\":".into(),
    )
    .await;
    expect(&a.json(), "1000");

    // XML (the Python SDK's third request type) is not simulated: a JSON failure.
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><request><order_id>x</order_id></request>";
    let a = send(
        &sb,
        "/api/status/order_id/",
        &[("Content-Type", "application/xml; charset=utf-8")],
        xml.into(),
    )
    .await;
    expect(&a.json(), "1000");

    // Without a Content-Type the body decides: a form is read as a form.
    let a = send(
        &sb,
        "/api/status/order_id/",
        &[],
        python_form(&status("nope")),
    )
    .await;
    expect(&a.form(), "1018");
}
