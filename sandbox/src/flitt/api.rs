//! Flitt's HTTP API: `/api/checkout/url`, `/api/checkout/token`, `/api/status/order_id`,
//! `/api/capture/order_id`, `/api/reverse/order_id` (each also with the trailing slash the
//! official SDKs put on every path), and the checkout page. Bodies are JSON or a form, and
//! are answered in the same format (see `wire::Format`).

use super::wire::{self, failure, int, obj, success, text, Format};
use super::{callback, Order, Status, P};
use crate::faults::Op;
use crate::http::gated;
use crate::shared::{lock, Shared};
use crate::{ids, sig};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

type S = State<Arc<Shared>>;

/// First `payment_id` handed out (the seed's example id).
const FIRST_PAYMENT_ID: u64 = 150009301;

/// The API paths as seed 004 writes them; each is served with a trailing slash too, the way
/// the official SDKs (Python, PHP, Node) call them (`/api/checkout/url/`, ...).
pub(crate) const API_PATHS: [&str; 5] = [
    "/api/checkout/url",
    "/api/checkout/token",
    "/api/status/order_id",
    "/api/capture/order_id",
    "/api/reverse/order_id",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for (path, handler) in API_PATHS.iter().zip([
        post(checkout_url),
        post(checkout_token),
        post(status),
        post(capture),
        post(reverse),
    ]) {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router.route("/merchants/{hash}/default/index.html", get(checkout_page))
}

/// The request parameters (the JSON `request` object, or the form's fields), with merchant
/// and signature checked, and the format the answer goes back in.
fn request(
    s: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Map<String, Value>, Format), Response> {
    let format = Format::of(headers, body);
    let req = match format {
        Format::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut m)) => match m.remove("request") {
                Some(Value::Object(r)) => r,
                _ => {
                    return Err(failure(
                        format,
                        wire::MISSING,
                        "Parameter `request` is missing",
                    ))
                }
            },
            _ => return Err(failure(format, wire::INTERNAL, "Request body is not JSON")),
        },
        Format::Form => match wire::parse_form(body) {
            Ok(r) => r,
            Err(message) => return Err(failure(format, wire::INTERNAL, &message)),
        },
        Format::Xml => {
            return Err(failure(
                format,
                wire::INTERNAL,
                "XML requests are not simulated: send JSON or a form",
            ))
        }
    };
    if int(req.get("merchant_id")) != Some(s.config.flitt.merchant_id) {
        return Err(failure(format, wire::BAD_MERCHANT, "Invalid merchant_id"));
    }
    if !sig::flitt_verify(&s.config.flitt.password, &req) {
        return Err(failure(format, wire::BAD_SIGNATURE, "Invalid signature"));
    }
    Ok((req, format))
}

async fn checkout_url(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    create(s, &headers, body, false).await
}

async fn checkout_token(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    create(s, &headers, body, true).await
}

/// A new order, or the same answer again for a repeated `order_id` that is still open.
async fn create(s: Arc<Shared>, headers: &HeaderMap, body: Bytes, token: bool) -> Response {
    let (req, format) = match request(&s, headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    for field in ["order_id", "order_desc", "amount", "currency"] {
        if text(&req, field).is_none() {
            return failure(
                format,
                wire::MISSING,
                &format!("Parameter `{field}` is missing"),
            );
        }
    }
    let Some(amount) = int(req.get("amount")).filter(|a| *a > 0) else {
        return failure(
            format,
            wire::MISSING,
            "Parameter `amount` must be a positive integer",
        );
    };
    let payme = |k: &str| text(&req, k).as_deref() == Some("paybypayme");
    if !payme("payment_systems") || !payme("payment_method") {
        return failure(
            format,
            wire::MISSING,
            "payment_systems and payment_method must be paybypayme",
        );
    }
    gated(&s, P, Op::Create, text(&req, "order_id").as_deref(), || {
        create_now(&s, format, &req, amount, token)
    })
    .await
}

fn create_now(
    s: &Shared,
    format: Format,
    req: &Map<String, Value>,
    amount: u64,
    token: bool,
) -> (String, Response) {
    let order_id = text(req, "order_id").unwrap_or_default();
    let currency = text(req, "currency").unwrap_or_default();
    let mut st = lock(&s.flitt);
    let answer = |o: &Order| match token {
        true => success(s, format, obj(json!({"token": o.token})), false),
        false => success(
            s,
            format,
            obj(json!({"checkout_url": o.checkout_url, "payment_id": o.payment_id.to_string()})),
            false,
        ),
    };
    if let Some(o) = st.orders.get(&order_id) {
        let same = o.amount == amount && o.currency == currency && o.status == Status::Created;
        let resp = if same {
            answer(o)
        } else {
            failure(
                format,
                wire::DUPLICATE_ORDER,
                "Duplicate order_id for merchant",
            )
        };
        return (order_id, resp);
    }
    st.next_payment_id = st.next_payment_id.max(FIRST_PAYMENT_ID) + 1;
    let tok = ids::hex(40);
    let o = Order {
        order_id: order_id.clone(),
        payment_id: st.next_payment_id,
        amount,
        currency,
        order_desc: text(req, "order_desc").unwrap_or_default(),
        status: Status::Created,
        preauth: text(req, "preauth").as_deref() == Some("Y"),
        captured: None,
        capture_amount: 0,
        reversal_amount: 0,
        callback_url: text(req, "server_callback_url"),
        merchant_data: text(req, "merchant_data").unwrap_or_default(),
        checkout_url: format!(
            "{}/merchants/{}/default/index.html?token={tok}",
            s.base_url(P),
            ids::hex(40)
        ),
        token: tok,
        order_time: chrono::Utc::now().format("%d.%m.%Y %H:%M:%S").to_string(),
        tran_type: "purchase",
    };
    s.counters.bump(P, &order_id, |c| c.created += 1);
    let resp = answer(&o);
    st.orders.insert(order_id.clone(), o);
    (order_id, resp)
}

async fn status(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let (req, format) = match request(&s, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let id = text(&req, "order_id").unwrap_or_default();
    gated(&s, P, Op::Status, Some(&id), || {
        let st = lock(&s.flitt);
        let resp = match st.orders.get(&id) {
            Some(o) => {
                let mut params = wire::order_params(&s, o);
                params.remove("response_status");
                success(&s, format, params, true)
            }
            None => failure(format, wire::NOT_FOUND, "Order not found"),
        };
        (id.clone(), resp)
    })
    .await
}

async fn capture(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let (req, format) = match request(&s, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let id = text(&req, "order_id").unwrap_or_default();
    let Some(amount) = int(req.get("amount")).filter(|a| *a > 0) else {
        return failure(format, wire::MISSING, "Parameter `amount` is missing");
    };
    let currency = text(&req, "currency").unwrap_or_default();
    gated(&s, P, Op::Capture, Some(&id), || {
        let mut st = lock(&s.flitt);
        let Some(o) = st.orders.get_mut(&id) else {
            return (
                id.clone(),
                failure(format, wire::NOT_FOUND, "Order not found"),
            );
        };
        let answer = |o: &Order| {
            let fields = json!({"order_id": o.order_id, "merchant_id": s.config.flitt.merchant_id,
                "capture_status": "captured", "capture_amount": o.capture_amount.to_string()});
            success(&s, format, obj(fields), true)
        };
        match (o.status, o.captured) {
            (Status::Approved, Some(true)) => return (id.clone(), answer(o)),
            (Status::Approved, Some(false)) if amount <= o.amount && currency == o.currency => {}
            _ => {
                return (
                    id.clone(),
                    failure(format, wire::BAD_STATE, "Order cannot be captured"),
                )
            }
        }
        o.captured = Some(true);
        o.capture_amount = amount;
        o.tran_type = "capture";
        s.counters.bump(P, &id, |c| c.captured += 1);
        callback(&s, o);
        (id.clone(), answer(o))
    })
    .await
}

async fn reverse(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let (req, format) = match request(&s, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let id = text(&req, "order_id").unwrap_or_default();
    let Some(amount) = int(req.get("amount")).filter(|a| *a > 0) else {
        return failure(format, wire::MISSING, "Parameter `amount` is missing");
    };
    let currency = text(&req, "currency").unwrap_or_default();
    let reverse_id = text(&req, "reverse_id");
    gated(&s, P, Op::Reverse, Some(&id), || {
        reverse_now(&s, format, &id, amount, &currency, reverse_id)
    })
    .await
}

fn reverse_now(
    s: &Shared,
    format: Format,
    id: &str,
    amount: u64,
    currency: &str,
    reverse_id: Option<String>,
) -> (String, Response) {
    let mut st = lock(&s.flitt);
    if let Some((order, answer)) = reverse_id.as_ref().and_then(|r| st.reversals.get(r)) {
        let resp = match order == id {
            true => success(s, format, answer.clone(), true),
            false => failure(
                format,
                wire::BAD_STATE,
                "reverse_id already used for another order",
            ),
        };
        return (id.to_string(), resp);
    }
    let Some(o) = st.orders.get_mut(id) else {
        return (
            id.to_string(),
            failure(format, wire::NOT_FOUND, "Order not found"),
        );
    };
    if o.status != Status::Approved || currency != o.currency || amount > o.reversible() {
        return (
            id.to_string(),
            failure(format, wire::BAD_STATE, "Order cannot be reversed"),
        );
    }
    o.reversal_amount += amount;
    o.tran_type = "reverse";
    if o.reversible() == 0 || o.captured == Some(false) {
        o.status = Status::Reversed;
    }
    s.counters.bump(P, id, |c| {
        if o.captured == Some(false) {
            c.cancelled += 1
        } else {
            c.refunded += 1
        }
    });
    callback(s, o);
    let answer = obj(
        json!({"order_id": o.order_id, "merchant_id": s.config.flitt.merchant_id,
        "reverse_status": "approved", "reversal_amount": o.reversal_amount.to_string(),
        "transaction_id": ids::digits(9)}),
    );
    if let Some(r) = reverse_id {
        st.reversals.insert(r, (id.to_string(), answer.clone()));
    }
    (id.to_string(), success(s, format, answer, true))
}

/// The hosted checkout: a human approves or declines from here.
async fn checkout_page(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let token = q.get("token").cloned().unwrap_or_default();
    let order = lock(&s.flitt)
        .orders
        .values()
        .find(|o| o.token == token)
        .map(|o| o.order_id.clone());
    let Some(order) = order else {
        return Html("<h1>Unknown checkout token</h1>".to_string()).into_response();
    };
    let control = format!("{}/_sandbox/flitt/orders/{order}", s.origin);
    Html(format!(
        "<h1>Flitt sandbox: Pay by Payme</h1><p>Order {order}</p>\
         <form method=post action=\"{control}/approve\"><button>Pay</button></form>\
         <form method=post action=\"{control}/decline\"><button>Decline</button></form>"
    ))
    .into_response()
}
