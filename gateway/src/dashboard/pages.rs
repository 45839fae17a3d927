//! The dashboard's handlers. Reading pages need any logged-in key; resolving a review needs
//! `write`, redriving a dead letter `admin`; every changing form carries the CSRF token.

use super::data;
use super::session::{self, Session};
use super::views::{self, HealthPage, OrderPage, OrdersQuery};
use super::{refused, Dashboard, BASE, COMMAND_WAIT};
use crate::auth::Scope;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use paystate_events::subjects::{plane_of, Plane};
use paystate_events::{Command, CommandEnvelope, CommandId, OrderId, Outcome, Provider, Status};
use paystate_journal::dead_letters::{self, DeadLetterFilter};
use paystate_projection::{list, OrderFilter};

/// Orders one list page shows.
const ORDERS_PER_PAGE: usize = 200;
/// Dead letters one page shows.
const DEAD_LETTERS_PER_PAGE: usize = 100;
/// Longest reason accepted from the form (the engine's text bound applies too).
const REASON_LEN_MAX: usize = paystate_events::command::TEXT_LEN_MAX;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route(
            BASE,
            get(|| async { Redirect::to(&format!("{BASE}/orders")) }),
        )
        .route(&format!("{BASE}/style.css"), get(style))
        .route(&format!("{BASE}/login"), get(login_form).post(login))
        .route(&format!("{BASE}/logout"), post(logout))
        .route(&format!("{BASE}/orders"), get(orders))
        .route(&format!("{BASE}/orders/{{id}}"), get(order))
        .route(&format!("{BASE}/review"), get(review))
        .route(&format!("{BASE}/review/{{id}}/resolve"), post(resolve))
        .route(&format!("{BASE}/dead-letters"), get(dead_letters_page))
        .route(
            &format!("{BASE}/dead-letters/{{seq}}/redrive"),
            post(redrive),
        )
        .route(&format!("{BASE}/health"), get(health))
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        views::STYLE,
    )
        .into_response()
}

/// HTML that is never cached (pages show live state and carry the CSRF token).
fn page(html: String) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn login_form() -> Response {
    page(views::login_page(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(d): State<Dashboard>, Form(form): Form<LoginForm>) -> Response {
    let presented = form.key.trim();
    let Some((name, scope)) = d.parts().keys.identify(presented) else {
        tracing::info!("dashboard login with an unknown API key refused");
        let html = views::login_page(Some("That is not a configured API key."));
        return (StatusCode::UNAUTHORIZED, Html(html)).into_response();
    };
    match d.sessions().open(&name, scope) {
        Ok((token, _)) => {
            tracing::info!(key = %name, %scope, "dashboard login");
            (
                [(header::SET_COOKIE, session::set_cookie(&token))],
                Redirect::to(&format!("{BASE}/orders")),
            )
                .into_response()
        }
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = d.acting(&headers, &f.csrf, Scope::Read) {
        return r.into_response();
    }
    if let Some(token) = session::token_from(&headers) {
        d.sessions().close(&token);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to(&format!("{BASE}/login")),
    )
        .into_response()
}

async fn orders(State(d): State<Dashboard>, s: Session, Query(q): Query<OrdersQuery>) -> Response {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let filter = OrderFilter {
        status: nonempty(&q.state).as_deref().and_then(Status::parse),
        provider: nonempty(&q.provider).as_deref().and_then(Provider::parse),
        search: nonempty(&q.q),
        ..OrderFilter::default()
    };
    let result = list(&d.parts().projection, &filter, ORDERS_PER_PAGE).await;
    let html = match &result {
        Ok(l) => views::orders_page(&s, &q, Ok(l)),
        Err(e) => views::orders_page(&s, &q, Err(&e.to_string())),
    };
    page(html)
}

#[derive(serde::Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn order(
    State(d): State<Dashboard>,
    s: Session,
    Path(id): Path<String>,
    Query(nq): Query<NoticeQuery>,
) -> Response {
    let Ok(order) = OrderId::parse(id.clone()) else {
        return refused(StatusCode::BAD_REQUEST, "that is not an order id");
    };
    let parts = d.parts();
    let view = parts
        .projection
        .get(&order)
        .await
        .ok()
        .flatten()
        .map(|r| paystate_projection::OrderView::from(&r));
    let history = data::history(&parts.journal, &parts.js, &order).await;
    let html = views::order_page(
        order.as_str(),
        OrderPage {
            session: &s,
            view: view.as_ref(),
            history: history.as_ref().map_err(String::as_str),
            notice: nq.notice.as_deref(),
            can_resolve: can_resolve(&d, &s),
        },
    );
    page(html)
}

fn can_resolve(d: &Dashboard, s: &session::Session) -> bool {
    d.parts().commands.is_some() && s.scope.allows(Scope::Write)
}

async fn review(State(d): State<Dashboard>, s: Session, Query(nq): Query<NoticeQuery>) -> Response {
    let filter = OrderFilter {
        needs_review: Some(true),
        ..OrderFilter::default()
    };
    let result = list(&d.parts().projection, &filter, ORDERS_PER_PAGE).await;
    let can = can_resolve(&d, &s);
    let html = match &result {
        Ok(l) => views::review_page(&s, Ok(l), can, nq.notice.as_deref()),
        Err(e) => views::review_page(&s, Err(&e.to_string()), can, nq.notice.as_deref()),
    };
    page(html)
}

#[derive(serde::Deserialize)]
struct ResolveForm {
    csrf: String,
    reason: String,
}

async fn resolve(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ResolveForm>,
) -> Response {
    let s = match d.acting(&headers, &f.csrf, Scope::Write) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Ok(order) = OrderId::parse(id) else {
        return refused(StatusCode::BAD_REQUEST, "that is not an order id");
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.len() > REASON_LEN_MAX {
        return refused(
            StatusCode::BAD_REQUEST,
            &format!("a reason of 1..={REASON_LEN_MAX} bytes is needed"),
        );
    }
    let Some(client) = &d.parts().commands else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "this gateway has no command connection",
        );
    };
    let env = match resolve_command(&order, &s.key_name, reason) {
        Ok(env) => env,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let notice = match client.send(&env, COMMAND_WAIT).await {
        Ok(Outcome::Accepted { commit, .. }) => {
            tracing::info!(%order, operator = %s.key_name, commit, "review resolved from the dashboard");
            format!("Review resolved (commit {commit}): the order takes commands again.")
        }
        Ok(Outcome::Rejected { code, message, .. }) => format!("Refused: {code}: {message}"),
        Err(e) => format!("No outcome: {e}"),
    };
    see_other(&format!("{BASE}/orders/{order}"), &notice)
}

/// The `resolve_review` command an operator's form asks for (operator = the key's name).
fn resolve_command(
    order: &OrderId,
    operator: &str,
    reason: &str,
) -> Result<CommandEnvelope, String> {
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness for a command id: {e}"))?;
    let command_id = CommandId::parse(format!("review-{}", hex::encode(nonce)))
        .map_err(|e| format!("command id: {e}"))?;
    Ok(CommandEnvelope {
        command_id,
        order_id: order.clone(),
        issued_at: chrono::Utc::now(),
        command: Command::ResolveReview {
            operator: format!("dashboard:{operator}"),
            reason: reason.to_string(),
        },
    })
}

/// A 303 to `path` with a notice for the next page (escaped there like everything else).
fn see_other(path: &str, notice: &str) -> Response {
    let q = serde_urlencoded_notice(notice);
    Redirect::to(&format!("{path}?{q}")).into_response()
}

fn serde_urlencoded_notice(notice: &str) -> String {
    let mut out = String::from("notice=");
    for b in notice.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct DeadLettersQuery {
    notice: Option<String>,
    /// Where the page starts in the dead-letter stream (the previous page's `next_seq`).
    from: Option<u64>,
}

async fn dead_letters_page(
    State(d): State<Dashboard>,
    s: Session,
    Query(q): Query<DeadLettersQuery>,
) -> Response {
    let filter = DeadLetterFilter {
        limit: DEAD_LETTERS_PER_PAGE,
        from_seq: q.from.unwrap_or(1).max(1),
        ..DeadLetterFilter::default()
    };
    let result = dead_letters::list(&d.parts().js, &filter).await;
    let can = s.scope.allows(Scope::Admin);
    let html = match &result {
        Ok(p) => views::dead_letters_page(&s, Ok(p), can, q.notice.as_deref()),
        Err(e) => views::dead_letters_page(&s, Err(&e.to_string()), can, q.notice.as_deref()),
    };
    page(html)
}

async fn redrive(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match d.acting(&headers, &f.csrf, Scope::Admin) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let parts = d.parts();
    let publisher = match dead_letters::show(&parts.js, seq)
        .await
        .map(|b| plane_of(&b.letter.subject))
    {
        Ok(Some(Plane::Client)) => parts.redrive_commands.as_ref(),
        Ok(Some(Plane::Signal)) => parts.redrive_signals.as_ref(),
        Ok(Some(Plane::Operator)) => parts.redrive_operator.as_ref(),
        Ok(None) | Err(_) => None,
    }
    .unwrap_or(&parts.js);
    let notice = match dead_letters::redrive_via(&parts.js, publisher, seq).await {
        Ok(r) => {
            tracing::info!(seq, to = %r.to, operator = %s.key_name, "dead letter redriven from the dashboard");
            format!("Dead letter {seq} redriven to {}.", r.to)
        }
        Err(e) => format!("Redrive of {seq} failed: {e}"),
    };
    see_other(&format!("{BASE}/dead-letters"), &notice)
}

async fn health(State(d): State<Dashboard>, s: Session) -> Response {
    let parts = d.parts();
    let projection = parts.projection.status().await.map_err(|e| e.to_string());
    let metrics = crate::telemetry::render();
    let providers = data::provider_health(&parts.js, metrics.as_deref()).await;
    let html = views::health_page(
        &s,
        HealthPage {
            projection: projection.as_ref().map_err(String::as_str),
            providers: providers.as_deref().map_err(String::as_str),
            callbacks: parts.callback_stats.as_deref(),
            now: chrono::Utc::now(),
        },
    );
    page(html)
}
