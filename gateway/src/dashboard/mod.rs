//! The operations dashboard, on the private listener under `/dashboard`: plain
//! server-rendered HTML (maud templates, every value escaped), a little CSS, no JavaScript.
//!
//! - [`session`]: login with an API key pasted once; an `HttpOnly`, `SameSite=Strict` session
//!   cookie and a per-session CSRF token on every changing form.
//! - [`pages`]: the handlers — orders (filters, search by order id, merchant or provider
//!   reference), one order with its timeline and evidence, the review queue with its resolve
//!   action (`write`), dead letters with redrive (`admin`), projection lag and provider health.
//! - [`data`]: what the pages read: the order's timeline from the log, the raw callbacks
//!   behind provider reports, provider health from the callbacks stream.
//! - [`views`]: the HTML.
//!
//! The dashboard's routes sit beside the bearer-key API on the same listener but use the
//! session cookie instead of `Authorization` (a browser cannot send that header by itself);
//! the same keys, hashes and scopes admit both.

pub mod data;
pub mod pages;
pub mod session;
pub mod views;

use crate::auth::{ApiKeys, Scope};
use crate::callbacks::CallbackStats;
use async_nats::jetstream;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use paystate_journal::Journal;
use paystate_projection::ProjectionStore;
use paystate_service::Client;
use session::{Session, Sessions};
use std::sync::Arc;
use std::time::Duration;

/// Where the dashboard lives on the private listener.
pub const BASE: &str = "/dashboard";
/// How long an action waits for the engine's outcome.
pub const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// What the dashboard reads from and acts with. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

/// The handles a [`Dashboard`] is built from.
pub struct DashboardParts {
    /// The keys that may log in (the private listener's).
    pub keys: ApiKeys,
    pub projection: ProjectionStore,
    /// The log, for order timelines.
    pub journal: Journal,
    /// For raw callbacks, dead letters and stream facts.
    pub js: jetstream::Context,
    /// Sends operator commands (`resolve_review`, on `paystate.op.<order>`): a connection as
    /// the operator role, the only one allowed there. `None`: actions are shown as unavailable.
    pub commands: Option<Client>,
    /// This gateway's callback counters, for provider health.
    pub callback_stats: Option<Arc<CallbackStats>>,
    /// Who republishes a redriven dead letter: the command plane belongs to the client role,
    /// the signal plane to the reporter role, the operator plane to the operator role;
    /// anything else (a redrive request for a consumer of the log) goes through `js`.
    /// `None`: through `js` as well.
    pub redrive_commands: Option<jetstream::Context>,
    pub redrive_signals: Option<jetstream::Context>,
    pub redrive_operator: Option<jetstream::Context>,
}

struct Inner {
    parts: DashboardParts,
    sessions: Sessions,
}

impl Dashboard {
    pub fn new(parts: DashboardParts) -> Dashboard {
        Dashboard {
            inner: Arc::new(Inner {
                parts,
                sessions: Sessions::default(),
            }),
        }
    }

    fn parts(&self) -> &DashboardParts {
        &self.inner.parts
    }

    fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The request's session, or a redirect to the login page.
    fn session(&self, headers: &HeaderMap) -> Result<Session, Denied> {
        session::token_from(headers)
            .and_then(|t| self.sessions().get(&t))
            .ok_or(Denied::NotLoggedIn)
    }

    /// The session of a changing request: logged in, the form's CSRF token, and a key of at
    /// least `needed`.
    fn acting(&self, headers: &HeaderMap, csrf: &str, needed: Scope) -> Result<Session, Denied> {
        let s = self.session(headers)?;
        if !s.csrf_ok(csrf) {
            return Err(Denied::Refused(
                "the form is stale or did not come from this dashboard: reload the page".into(),
            ));
        }
        if !s.scope.allows(needed) {
            return Err(Denied::Refused(format!(
                "this action needs a {needed} key; you logged in with a {} key",
                s.scope
            )));
        }
        Ok(s)
    }
}

/// The dashboard's routes (mounted under [`BASE`] by [`crate::private_router_with_dashboard`]).
pub fn routes(dashboard: Dashboard) -> axum::Router {
    pages::routes()
        .with_state(dashboard)
        .layer(axum::middleware::map_response(security_headers))
}

/// What a browser may do with the dashboard's pages: nothing but this origin's stylesheet and
/// forms (no script at all, inline or not), never inside a frame, no referrer sent on.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Why a dashboard request may not go on: small, so handlers return it cheaply.
#[derive(Debug)]
enum Denied {
    /// No live session: to the login page.
    NotLoggedIn,
    /// Logged in, but this may not be done (CSRF token or scope): 403 with the reason.
    Refused(String),
}

/// A page's session, taken from the request before the handler runs; without one the
/// request goes to the login page.
impl axum::extract::FromRequestParts<Dashboard> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        d: &Dashboard,
    ) -> Result<Self, Response> {
        d.session(&parts.headers)
            .map_err(IntoResponse::into_response)
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NotLoggedIn => Redirect::to(&format!("{BASE}/login")).into_response(),
            Denied::Refused(why) => refused(StatusCode::FORBIDDEN, &why),
        }
    }
}

/// A plain HTML refusal.
fn refused(status: StatusCode, message: &str) -> Response {
    let page = views::message_page("Refused", message);
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(page),
    )
        .into_response()
}
