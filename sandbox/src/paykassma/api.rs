//! Paykassma's HTTP API: `POST /api/v1/transaction/create/bnb_ml?secret=` (JSON) and
//! `POST /api/v1/possible-transaction?secret=` (multipart form with a screenshot).

use super::{credit, datetime, Activation, DepositRequest, Status, P};
use crate::faults::Op;
use crate::http::{gated, json};
use crate::ids;
use crate::shared::{lock, Shared};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type S = State<Arc<Shared>>;
type Q = Query<HashMap<String, String>>;

/// Form fields read from one activation request, at most.
const FORM_FIELDS_MAX: usize = 32;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/transaction/create/bnb_ml", post(create))
        .route("/api/v1/possible-transaction", post(activate))
}

fn fail(status: StatusCode, message: &str) -> Response {
    json(status, json!({"status": "fail", "message": message}))
}

fn check_secret(s: &Shared, q: &HashMap<String, String>) -> Result<(), Response> {
    let given = q.get("secret").map(String::as_bytes).unwrap_or_default();
    match crate::sig::ct_eq(given, s.config.paykassma.api_secret.as_bytes()) {
        true => Ok(()),
        false => Err(fail(StatusCode::FORBIDDEN, "Invalid secret")),
    }
}

async fn create(State(s): S, Query(q): Q, body: Bytes) -> Response {
    if let Err(r) = check_secret(&s, &q) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (currency, label) = (field("currency"), field("label"));
    if currency.len() != 3 || label.is_empty() || label.chars().count() > 190 {
        return fail(
            StatusCode::OK,
            "currency (3 letters) and label (up to 190) are required",
        );
    }
    gated(&s, P, Op::Create, Some(&label), || {
        let mut st = lock(&s.paykassma);
        let created = !st.requests.contains_key(&label);
        let req = st.requests.entry(label.clone()).or_insert_with(|| DepositRequest {
            label: label.clone(),
            currency,
            wallet_number: ids::digits(10),
            account_name: format!("Sandbox {}", ids::alnum(6)),
        });
        if created {
            s.counters.bump(P, &label, |c| c.created += 1);
        }
        let params = json!({"Wallet number": req.wallet_number, "Account name": req.account_name, "is_check_amount": null});
        (label.clone(), json(StatusCode::OK, json!({"status": "ok", "params": params})))
    })
    .await
}

/// Text fields of the form; true in `screenshot` when a non-empty file came along.
async fn read_form(mut form: Multipart) -> Result<(HashMap<String, String>, bool), String> {
    let mut fields = HashMap::new();
    let mut screenshot = false;
    for _ in 0..FORM_FIELDS_MAX {
        let Some(field) = form.next_field().await.map_err(|e| e.to_string())? else {
            break;
        };
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.map_err(|e| e.to_string())?;
        if name == "screenshot" {
            screenshot = is_file && !data.is_empty();
        } else {
            fields.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok((fields, screenshot))
}

async fn activate(
    State(s): S,
    Query(q): Q,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    if let Err(r) = check_secret(&s, &q) {
        return r;
    }
    let Ok(form) = form else {
        return fail(StatusCode::OK, "form-data expected");
    };
    let (f, screenshot) = match read_form(form).await {
        Ok(x) => x,
        Err(e) => return fail(StatusCode::OK, &e),
    };
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let key1 = get("key1");
    let amount = get("amount").parse::<u64>().ok().filter(|a| *a > 0);
    let problem = match () {
        _ if get("currency_code").len() != 3 => Some("currency_code is required"),
        _ if get("wallet_type") != "bnb_ml" => Some("wallet_type must be bnb_ml"),
        _ if get("label").is_empty() => Some("label is required"),
        _ if key1.len() != 12 || !key1.bytes().all(|b| b.is_ascii_digit()) => {
            Some("key1 must be 12 digits")
        }
        _ if !screenshot => Some("screenshot is required"),
        _ if amount.is_none() => Some("amount must be a positive integer"),
        _ if get("custom_transaction_id").is_empty() => Some("custom_transaction_id is required"),
        _ => None,
    };
    if let Some(message) = problem {
        return fail(StatusCode::OK, message);
    }
    let a = Activation {
        custom_transaction_id: get("custom_transaction_id"),
        label: get("label"),
        currency: get("currency_code"),
        wallet_type: get("wallet_type"),
        key1,
        amount: amount.unwrap_or_default(),
        status: Status::Verifying,
        activated_at: datetime(),
    };
    let key = a.custom_transaction_id.clone();
    gated(&s, P, Op::Activate, Some(&key), || {
        (key.clone(), activate_now(&s, a))
    })
    .await
}

fn activate_now(s: &Shared, mut a: Activation) -> Response {
    let ok = json(
        StatusCode::OK,
        json!({"status": "success", "message": "", "code": 20000, "data": [],
        "paginate": {"offset": 0, "total": 1, "limit": 1}}),
    );
    let mut st = lock(&s.paykassma);
    if let Some(earlier) = st.activations.get(&a.custom_transaction_id) {
        let same = (
            &earlier.label,
            &earlier.key1,
            earlier.amount,
            &earlier.currency,
        ) == (&a.label, &a.key1, a.amount, &a.currency);
        return if same {
            ok
        } else {
            fail(StatusCode::OK, "custom_transaction_id must be unique")
        };
    }
    let id = a.custom_transaction_id.clone();
    s.counters.bump(P, &id, |c| c.activated += 1);
    let transfer = st
        .transfers
        .get(&a.key1)
        .filter(|t| t.label == a.label)
        .map(|t| t.amount);
    if let (Some(amount), true) = (transfer, s.config.paykassma.auto_credit) {
        st.next_stockpiling_id += 1;
        credit(s, &mut a, amount, st.next_stockpiling_id);
    }
    st.activations.insert(id, a);
    ok
}
