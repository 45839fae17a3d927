//! The exchanger's HTTP API (shape chosen by the sandbox; the real one is private):
//! `POST /public/exchanger/order/create` (form-urlencoded or JSON) and
//! `GET|POST /public/exchanger/order/status?orderId=`; both need the API key in
//! `Authorization` (bare or `Bearer`).

use super::decimal::Decimal;
use super::{Order, P};
use crate::faults::Op;
use crate::http::{gated, json};
use crate::ids;
use crate::shared::{lock, Shared};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type S = State<Arc<Shared>>;

/// `toValues` entries read from one request, at most.
const TO_VALUES_MAX: usize = 32;
/// First `orderUID` handed out (the docs' example page uses 1409).
const FIRST_UID: u64 = 1409;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/public/exchanger/order/create", post(create))
        .route("/public/exchanger/order/status", post(status).get(status))
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, json!({"status": "error", "message": message}))
}

fn authorize(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = given.strip_prefix("Bearer ").unwrap_or(given);
    match crate::sig::ct_eq(key.as_bytes(), s.config.exchanger.api_key.as_bytes()) {
        true => Ok(()),
        false => Err(error(StatusCode::UNAUTHORIZED, "unauthorized")),
    }
}

/// Flat fields of a form or JSON body; JSON arrays of `{key, value}` become `name[i][key]`.
fn fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if !is_json {
        return serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap_or_default()
            .into_iter()
            .collect();
    }
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for (k, v) in m {
        match v {
            Value::String(s) => drop(out.insert(k, s)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().take(TO_VALUES_MAX) {
                    for part in ["key", "value"] {
                        let text = item
                            .get(part)
                            .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()));
                        out.insert(format!("{k}[{i}][{part}]"), text.unwrap_or_default());
                    }
                }
            }
            other => drop(out.insert(k, other.to_string())),
        }
    }
    out
}

async fn create(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let f = fields(&headers, &body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let Some(route) = s
        .config
        .exchanger
        .routes
        .iter()
        .find(|r| r.id == get("routeId"))
        .cloned()
    else {
        return error(StatusCode::BAD_REQUEST, "routeId: route not found");
    };
    let (Some(amount), Some(rate)) = (Decimal::parse(&get("amount")), Decimal::parse(&route.rate))
    else {
        return error(StatusCode::BAD_REQUEST, "amount must be a positive decimal");
    };
    if amount.is_zero() {
        return error(StatusCode::BAD_REQUEST, "amount must be a positive decimal");
    }
    let ipn_url = Some(get("ipnUrl")).filter(|u| !u.is_empty());
    if ipn_url.is_some() && get("ipnSecret").is_empty() {
        return error(StatusCode::BAD_REQUEST, "ipnSecret is required with ipnUrl");
    }
    let to_values = (0..TO_VALUES_MAX)
        .map_while(|i| {
            f.get(&format!("toValues[{i}][key]"))
                .map(|k| (k.clone(), get(&format!("toValues[{i}][value]"))))
        })
        .collect();
    let lang = Some(get("lang"))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "en".into());
    let order = Order {
        order_id: ids::hex(24),
        uid: 0,
        secret: ids::alnum(24),
        status: "new",
        in_amount: get("amount"),
        out_amount: amount.mul(rate).to_text(),
        xml_from: route.xml_from,
        xml_to: route.xml_to,
        lang,
        ipn_url,
        ipn_secret: get("ipnSecret"),
        to_values,
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    gated(&s, P, Op::Create, None, || {
        let mut st = lock(&s.exchanger);
        st.next_uid = st.next_uid.max(FIRST_UID - 1) + 1;
        let order = Order {
            uid: st.next_uid,
            ..order
        };
        let id = order.order_id.clone();
        s.counters.bump(P, &id, |c| c.created += 1);
        let resp = json(
            StatusCode::OK,
            json!({"status": "success", "data": order_json(&s, &order)}),
        );
        st.orders.insert(id.clone(), order);
        (id, resp)
    })
    .await
}

async fn status(
    State(s): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let id = q
        .get("orderId")
        .cloned()
        .or_else(|| fields(&headers, &body).get("orderId").cloned())
        .unwrap_or_default();
    gated(&s, P, Op::Status, Some(&id), || {
        let st = lock(&s.exchanger);
        let resp = match st.orders.get(&id) {
            Some(o) => json(
                StatusCode::OK,
                json!({"status": "success", "data": order_json(&s, o)}),
            ),
            None => error(StatusCode::NOT_FOUND, "order not found"),
        };
        (id.clone(), resp)
    })
    .await
}

/// The order as create and status answer it.
pub(crate) fn order_json(s: &Shared, o: &Order) -> Value {
    let to_values: Vec<Value> = o
        .to_values
        .iter()
        .map(|(k, v)| json!({"key": k, "name": k, "value": v}))
        .collect();
    json!({
        "orderId": o.order_id,
        "orderUID": o.uid,
        "secret": o.secret,
        "status": o.status,
        "inAmount": o.in_amount,
        "outAmount": o.out_amount,
        "xml_from": o.xml_from,
        "xml_to": o.xml_to,
        "toValues": to_values,
        "paymentUrl": format!("{}/{}/payment/{}/{}", s.base_url(P), o.lang, o.uid, o.secret),
        "orderUrl": format!("{}/{}/order/{}/{}", s.base_url(P), o.lang, o.uid, o.secret),
        "createdAt": o.created_at,
    })
}
