//! Handles shared by the query-side commands: the log and the projection, from settings.

use crate::settings::Settings;
use paystate::permissions::Role;
use paystate_journal::Journal;
use paystate_projection::ProjectionStore;

/// The existing log and the projection handle.
pub struct Handles {
    pub journal: Journal,
    pub projection: ProjectionStore,
}

/// Opens both as the operator (read-only commands and projection rebuilds).
pub async fn open(settings: &Settings) -> anyhow::Result<Handles> {
    open_as(settings, Role::Operator).await
}

/// Opens both with `role`'s NATS credentials.
pub async fn open_as(settings: &Settings, role: Role) -> anyhow::Result<Handles> {
    let client = settings.connect_as(role).await?;
    let js = async_nats::jetstream::new(client);
    let log = settings.log();
    let journal = Journal::existing(js.clone(), &log.events_stream).await?;
    let projection = ProjectionStore::open(js, &log.events_stream, settings.replicas).await?;
    Ok(Handles {
        journal,
        projection,
    })
}

/// Parses an order id argument.
pub fn order_id(text: &str) -> anyhow::Result<paystate_events::OrderId> {
    paystate_events::OrderId::parse(text)
        .map_err(|e| anyhow::anyhow!("invalid order id {text:?}: {e}"))
}

/// Parses an RFC 3339 instant argument.
pub fn instant(text: &str) -> anyhow::Result<paystate_events::Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| anyhow::anyhow!("{text:?} is not an RFC 3339 time: {e}"))
}
