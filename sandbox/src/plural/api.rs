//! Plural's HTTP API: `/api/auth/v1/token`, `/api/pay/v1/orders[...]`, `/api/pay/v1/refunds`,
//! and the challenge page the customer is sent to.

use super::wire::{self, bad_request, error};
use super::{now, webhook, Capture, Order, Payment, Refund, Status, P, TOKENS_MAX};
use crate::faults::Op;
use crate::http::{gated, json};
use crate::ids;
use crate::shared::{lock, Shared};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/auth/v1/token", post(token))
        .route("/api/pay/v1/orders", post(create_order))
        .route("/api/pay/v1/orders/{id}", get(get_order))
        .route("/api/pay/v1/orders/{id}/payments", post(create_payment))
        .route("/api/pay/v1/orders/{id}/capture", put(capture))
        .route("/api/pay/v1/orders/{id}/cancel", put(cancel))
        .route("/api/pay/v1/refunds/{id}", post(refund))
        .route("/web/auth/landing/", get(landing))
}

fn parse(body: &[u8]) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad_request("request body must be a JSON object")),
    }
}

/// `Authorization: Bearer <token>` with a token issued here and not expired.
fn authorize(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = token.is_some_and(|t| {
        lock(&s.plural)
            .tokens
            .get(t)
            .is_some_and(|exp| *exp > Instant::now())
    });
    match valid {
        true => Ok(()),
        false => Err(error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid or expired access token",
        )),
    }
}

async fn token(State(s): S, body: Bytes) -> Response {
    let body = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return bad_request("grant_type must be client_credentials");
    }
    let cfg = &s.config.plural;
    let ok = crate::sig::ct_eq(field("client_id").as_bytes(), cfg.client_id.as_bytes())
        & crate::sig::ct_eq(
            field("client_secret").as_bytes(),
            cfg.client_secret.as_bytes(),
        );
    if !ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid client credentials",
        );
    }
    gated(&s, P, Op::Token, None, || {
        let token = ids::alnum(64);
        let ttl = s.config.plural.token_ttl_s;
        let mut st = lock(&s.plural);
        if st.tokens.len() >= TOKENS_MAX {
            let now = Instant::now();
            st.tokens.retain(|_, exp| *exp > now);
            if let Some(oldest) = st
                .tokens
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(t, _)| t.clone())
            {
                st.tokens.remove(&oldest);
            }
        }
        st.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
        st.tokens_issued += 1;
        (
            "-".into(),
            json(
                StatusCode::OK,
                json!({"access_token": token, "expires_in": ttl}),
            ),
        )
    })
    .await
}

async fn create_order(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(reference) = wire::text(&body, "merchant_order_reference") else {
        return bad_request("merchant_order_reference is required");
    };
    let Some((amount, currency)) = wire::amount(body.get("order_amount")) else {
        return bad_request("order_amount must be {value: positive integer, currency}");
    };
    let pre_auth = body
        .get("pre_auth")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    gated(&s, P, Op::Create, None, || {
        let mut st = lock(&s.plural);
        if let Some(existing) = st
            .by_reference
            .get(&reference)
            .and_then(|id| st.orders.get(id))
        {
            return (
                existing.order_id.clone(),
                json(
                    StatusCode::OK,
                    json!({"data": wire::order_json(&s, existing)}),
                ),
            );
        }
        let echo = [
            "purchase_details",
            "notes",
            "cart_details",
            "integration_mode",
            "allowed_payment_methods",
        ]
        .iter()
        .filter_map(|k| body.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
        let at = now();
        let order = Order {
            order_id: format!("v1-{}-aa-{}", ids::digits(10), ids::alnum(6)),
            reference: reference.clone(),
            status: Status::Created,
            amount,
            currency,
            pre_auth,
            callback_url: body
                .get("callback_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            echo,
            payment: None,
            capture: None,
            refunds: Vec::new(),
            challenge_url: None,
            created_at: at.clone(),
            updated_at: at,
        };
        let id = order.order_id.clone();
        s.counters.bump(P, &id, |c| c.created += 1);
        let resp = json(
            StatusCode::OK,
            json!({"data": wire::order_json(&s, &order)}),
        );
        st.by_reference.insert(reference, id.clone());
        st.orders.insert(id.clone(), order);
        (id, resp)
    })
    .await
}

async fn get_order(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    gated(&s, P, Op::Status, Some(&id), || {
        let st = lock(&s.plural);
        let resp = match st.orders.get(&id) {
            Some(o) => json(StatusCode::OK, json!({"data": wire::order_json(&s, o)})),
            None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "Order not found"),
        };
        (id.clone(), resp)
    })
    .await
}

async fn create_payment(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let first = body
        .get("payments")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .cloned();
    let Some(first) = first else {
        return bad_request("payments must hold one payment");
    };
    let Some(paid) = wire::amount(first.get("payment_amount")) else {
        return bad_request("payment_amount must be {value, currency}");
    };
    let method = first
        .get("payment_method")
        .and_then(Value::as_str)
        .unwrap_or("CARD")
        .to_string();
    gated(&s, P, Op::CreatePayment, Some(&id), || {
        let mut st = lock(&s.plural);
        let token = ids::alnum(48);
        let Some(order) = st.orders.get_mut(&id) else {
            return (
                id.clone(),
                error(StatusCode::NOT_FOUND, "NOT_FOUND", "Order not found"),
            );
        };
        if order.status != Status::Created {
            return (id.clone(), bad_request("Order is not in CREATED state"));
        }
        if paid != (order.amount, order.currency.clone()) {
            return (
                id.clone(),
                bad_request("payment_amount must equal order_amount"),
            );
        }
        let at = now();
        order.payment = Some(Payment {
            id: format!(
                "v1-{}-aa-{}-cc-{}",
                ids::digits(10),
                ids::alnum(6),
                ids::alnum(1)
            ),
            method,
            created_at: at.clone(),
        });
        order.status = Status::Pending;
        order.updated_at = at;
        order.challenge_url = Some(format!("{}/web/auth/landing/?token={token}", s.base_url(P)));
        s.counters.bump(P, &id, |c| c.attempted += 1);
        let resp = json(StatusCode::OK, json!({"data": wire::order_json(&s, order)}));
        st.challenges.insert(token, id.clone());
        (id.clone(), resp)
    })
    .await
}

async fn capture(State(s): S, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(reference) = wire::text(&body, "merchant_capture_reference") else {
        return bad_request("merchant_capture_reference is required");
    };
    let Some((amount, currency)) = wire::amount(body.get("capture_amount")) else {
        return bad_request("capture_amount must be {value, currency}");
    };
    gated(&s, P, Op::Capture, Some(&id), || {
        let mut st = lock(&s.plural);
        let Some(order) = st.orders.get_mut(&id) else {
            return (
                id.clone(),
                error(StatusCode::NOT_FOUND, "NOT_FOUND", "Order not found"),
            );
        };
        if order
            .capture
            .as_ref()
            .is_some_and(|c| c.reference == reference)
        {
            return (
                id.clone(),
                json(StatusCode::OK, json!({"data": wire::order_json(&s, order)})),
            );
        }
        let refusal = match () {
            _ if !order.pre_auth => Some("Capture is allowed only for pre-authorized orders"),
            _ if order.status != Status::Authorized => Some("Order is not in AUTHORIZED state"),
            _ if currency != order.currency || amount > order.amount => {
                Some("Invalid capture_amount")
            }
            _ => None,
        };
        if let Some(message) = refusal {
            return (id.clone(), bad_request(message));
        }
        let at = now();
        order.capture = Some(Capture {
            reference,
            amount,
            at: at.clone(),
        });
        order.status = Status::Processed;
        order.updated_at = at;
        s.counters.bump(P, &id, |c| c.captured += 1);
        webhook(&s, order);
        (
            id.clone(),
            json(StatusCode::OK, json!({"data": wire::order_json(&s, order)})),
        )
    })
    .await
}

async fn cancel(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    gated(&s, P, Op::Cancel, Some(&id), || {
        let mut st = lock(&s.plural);
        let Some(order) = st.orders.get_mut(&id) else {
            return (
                id.clone(),
                error(StatusCode::NOT_FOUND, "NOT_FOUND", "Order not found"),
            );
        };
        if order.status != Status::Authorized {
            return (id.clone(), bad_request("Order is not in AUTHORIZED state"));
        }
        order.status = Status::Cancelled;
        order.updated_at = now();
        s.counters.bump(P, &id, |c| c.cancelled += 1);
        webhook(&s, order);
        (
            id.clone(),
            json(StatusCode::OK, json!({"data": wire::order_json(&s, order)})),
        )
    })
    .await
}

async fn refund(State(s): S, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match authorize(&s, &headers).and_then(|_| parse(&body)) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(reference) = wire::text(&body, "merchant_order_reference") else {
        return bad_request("merchant_order_reference is required");
    };
    let Some((amount, currency)) = wire::amount(body.get("order_amount")) else {
        return bad_request("order_amount must be {value, currency}");
    };
    gated(&s, P, Op::Refund, Some(&id), || {
        refund_now(&s, &id, reference, amount, &currency)
    })
    .await
}

fn refund_now(
    s: &Shared,
    id: &str,
    reference: String,
    amount: u64,
    currency: &str,
) -> (String, Response) {
    let mut st = lock(&s.plural);
    let known_parent = st.refunds_by_reference.get(&reference).cloned();
    let Some(order) = st.orders.get_mut(id) else {
        return (
            id.to_string(),
            error(StatusCode::NOT_FOUND, "NOT_FOUND", "Order not found"),
        );
    };
    if let Some(parent) = known_parent {
        let earlier = order.refunds.iter().find(|r| r.reference == reference);
        return match (parent == id, earlier) {
            (true, Some(r)) => (
                id.to_string(),
                json(
                    StatusCode::OK,
                    json!({"data": wire::refund_json(s, order, r)}),
                ),
            ),
            _ => (
                id.to_string(),
                bad_request("merchant_order_reference already used"),
            ),
        };
    }
    let refundable = order.captured().saturating_sub(order.refunded());
    let refusal = match () {
        _ if !matches!(order.status, Status::Processed | Status::PartiallyRefunded) => {
            Some("Order is not refundable")
        }
        _ if currency != order.currency || amount > refundable => Some("Invalid refund amount"),
        _ => None,
    };
    if let Some(message) = refusal {
        return (id.to_string(), bad_request(message));
    }
    let at = now();
    let r = Refund {
        order_id: format!("v1-{}-aa-{}", ids::digits(10), ids::alnum(6)),
        reference: reference.clone(),
        amount,
        at: at.clone(),
    };
    let resp = json(
        StatusCode::OK,
        json!({"data": wire::refund_json(s, order, &r)}),
    );
    order.refunds.push(r);
    order.status = if order.refunded() >= order.captured() {
        Status::FullyRefunded
    } else {
        Status::PartiallyRefunded
    };
    order.updated_at = at;
    s.counters.bump(P, id, |c| c.refunded += 1);
    webhook(s, order);
    st.refunds_by_reference.insert(reference, id.to_string());
    (id.to_string(), resp)
}

/// The page `challenge_url` points at: a human can approve or decline from here.
async fn landing(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let order = q
        .get("token")
        .and_then(|t| lock(&s.plural).challenges.get(t).cloned());
    let Some(order) = order else {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>Unknown or expired challenge</h1>".to_string()),
        )
            .into_response();
    };
    let control = format!("{}/_sandbox/plural/orders/{order}", s.origin);
    Html(format!(
        "<h1>Plural sandbox challenge</h1><p>Order {order}</p>\
         <form method=post action=\"{control}/approve\"><button>Authenticate</button></form>\
         <form method=post action=\"{control}/decline\"><button>Fail</button></form>"
    ))
    .into_response()
}
