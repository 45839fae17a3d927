//! stub
use crate::control::{Action, ActionOutcome, ControlError};
use crate::shared::Shared;
use axum::Router;
use std::sync::Arc;
#[derive(Debug, Default)]
pub(crate) struct State;
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
pub(crate) fn act(_s: &Shared, _id: &str, a: Action) -> Result<ActionOutcome, ControlError> {
    Err(ControlError::unsupported(
        paystate_events::Provider::Flitt,
        &a,
    ))
}
pub(crate) fn snapshot(_s: &Shared, _id: Option<&str>) -> serde_json::Value {
    serde_json::Value::Null
}
