//! Order queries over HTTP, served from the projection:
//!
//! - `GET /orders/{id}` → the order's [`OrderView`]; 404 `order_not_found` if the projection
//!   has no such order; 400 `invalid_id` for an id that cannot be one.
//! - `GET /orders?state=&provider=&created_before=&created_after=&has_discrepancy=&limit=` →
//!   [`paystate_projection::OrderList`]; 400 `invalid_query` for a bad filter.
//! - `GET /projection` → the live generation and its lag.
//!
//! 503 `projection_unavailable` when there is no projection yet or the broker fails.

use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use paystate_events::{OrderId, Provider, Status, Timestamp};
use paystate_projection::{
    list, OrderFilter, OrderList, OrderView, ProjectionError, ProjectionStatus, LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
};
use serde::Deserialize;

/// The query routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(show_order))
        .route("/projection", get(projection_status))
}

async fn show_order(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order = OrderId::parse(id.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{id:?} is not an order id: {e}"),
        )
    })?;
    match app.projection.get(&order).await {
        Ok(Some(record)) => Ok(Json(OrderView::from(&record))),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "order_not_found",
            format!("order {order} not found"),
        )),
        Err(e) => Err(unavailable(e)),
    }
}

/// Query string of `GET /orders`; everything optional.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub provider: Option<String>,
    pub created_before: Option<String>,
    pub created_after: Option<String>,
    pub has_discrepancy: Option<String>,
    pub limit: Option<String>,
}

impl ListQuery {
    /// Parses the filters, naming the first bad one.
    pub fn parse(&self) -> Result<(OrderFilter, usize), String> {
        let status = self
            .state
            .as_deref()
            .map(|s| {
                Status::parse(s).ok_or(format!(
                    "state {s:?} is not one of {:?}",
                    Status::ALL.map(|s| s.as_str())
                ))
            })
            .transpose()?;
        let provider = self
            .provider
            .as_deref()
            .map(|p| {
                Provider::parse(p).ok_or(format!(
                    "provider {p:?} is not one of {:?}",
                    Provider::ALL.map(|p| p.as_str())
                ))
            })
            .transpose()?;
        let created_before = self
            .created_before
            .as_deref()
            .map(|t| time("created_before", t))
            .transpose()?;
        let created_after = self
            .created_after
            .as_deref()
            .map(|t| time("created_after", t))
            .transpose()?;
        let has_discrepancy = self
            .has_discrepancy
            .as_deref()
            .map(|b| {
                b.parse::<bool>()
                    .map_err(|_| format!("has_discrepancy {b:?} is not true or false"))
            })
            .transpose()?;
        let limit = match self.limit.as_deref() {
            None => LIST_LIMIT_DEFAULT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=LIST_LIMIT_MAX).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit {l:?} is not a number in 1..={LIST_LIMIT_MAX}"
                    ))
                }
            },
        };
        Ok((
            OrderFilter {
                status,
                provider,
                created_before,
                created_after,
                has_discrepancy,
                ..OrderFilter::default()
            },
            limit,
        ))
    }
}

fn time(name: &str, text: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{name} {text:?} is not an RFC 3339 time: {e}"))
}

async fn list_orders(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<OrderList>, ApiError> {
    let (filter, limit) = q
        .parse()
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m))?;
    list(&app.projection, &filter, limit)
        .await
        .map(Json)
        .map_err(unavailable)
}

async fn projection_status(
    State(app): State<AppState>,
) -> Result<Json<ProjectionStatus>, ApiError> {
    app.projection.status().await.map(Json).map_err(unavailable)
}

fn unavailable(e: ProjectionError) -> ApiError {
    tracing::warn!(error = %e, "order query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "projection_unavailable",
        e.to_string(),
    )
}
