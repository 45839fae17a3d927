//! Order expiry that needs no one awake: when an order with `expires_at` is committed, the
//! engine stores a schedule in `PAYSTATE_SCHEDULES` (JetStream message scheduling, ADR-51,
//! nats-server 2.12+). At `expires_at` the *server* publishes the order's `expire` command,
//! the command queue sources it as `paystate.cmd.<order_id>`, and it waits there until an
//! engine takes it, however long no engine runs.
//!
//! Durability: the schedule is written after the commit and before the outcome is answered,
//! stored or acknowledged; if the write fails the command is retried first in its order (and
//! after a crash, redelivered), answered from the log as a duplicate, which writes the
//! schedule again; past `deliveries_max` attempts a queued command is set aside in the
//! dead-letter stream (its redrive writes the schedule) and answered, so the retry is bounded
//! (decision 0010). Writing it twice is harmless: the schedule's subject is its
//! identity (one per order), `Nats-Msg-Id` drops a retry within the duplicate window, and the
//! expire command's id is deterministic ([`command_id`]), so a second firing is answered as a
//! duplicate.

use async_nats::jetstream;
use async_nats::HeaderMap;
use paystate_events::subjects::{
    EXPIRY_COMMAND_ID_PREFIX, EXPIRY_FIRED_PREFIX, EXPIRY_SCHEDULE_PREFIX,
};
use paystate_events::{Command, CommandEnvelope, CommandId, Event, OrderId, Outcome, Timestamp};
use paystate_journal::setup::FIRED_EXPIRY_TTL;

/// Why a schedule could not be stored (the command is then redelivered).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("expiry schedule for {order} not published: {detail}")]
    Publish { order: OrderId, detail: String },
    #[error("expiry schedule for {order} not acknowledged: {detail}")]
    Unconfirmed { order: OrderId, detail: String },
    #[error("expiry command for {order} could not be built: {detail}")]
    Build { order: OrderId, detail: String },
}

/// The expiry an accepted outcome asks to schedule: an `order_created` with `expires_at`
/// (also on a duplicate answer, which is how a lost schedule write is repaired).
pub fn due(outcome: &Outcome) -> Option<(OrderId, Timestamp)> {
    let Outcome::Accepted { events, .. } = outcome else {
        return None;
    };
    events.iter().find_map(|e| match e {
        Event::OrderCreated {
            order_id,
            expires_at: Some(at),
            ..
        } => Some((order_id.clone(), *at)),
        _ => None,
    })
}

/// The dead-letter reason of a command whose commit is in the log but whose expiry schedule
/// could not be stored in `attempts` attempts (decision 0010).
pub fn not_stored_reason(attempts: i64) -> String {
    format!(
        "committed, but its expiry schedule was not stored after {attempts} attempts; redrive \
         this command once schedules can be stored (it is answered from the log and its \
         schedule written again)"
    )
}

/// The deterministic id of an order's scheduled expire command: `expire.<order_id>`.
pub fn command_id(order: &OrderId) -> Result<CommandId, String> {
    CommandId::parse(format!("{EXPIRY_COMMAND_ID_PREFIX}.{order}")).map_err(|e| e.to_string())
}

/// The `Nats-Schedule` value: `@at <RFC 3339>`, rounded up to the whole second so the server
/// never fires before `expires_at` (an early expire would be refused as `not_expired`).
pub fn schedule_header(at: Timestamp) -> String {
    let whole = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    let rounded = chrono::DateTime::from_timestamp(whole, 0).unwrap_or(at);
    format!("@at {}", rounded.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// Stores (or re-stores) the schedule that publishes `order`'s expire command at `at`.
pub async fn schedule(
    js: &jetstream::Context,
    order: &OrderId,
    at: Timestamp,
) -> Result<(), ScheduleError> {
    let build = |detail: String| ScheduleError::Build {
        order: order.clone(),
        detail,
    };
    let env = CommandEnvelope {
        command_id: command_id(order).map_err(build)?,
        order_id: order.clone(),
        issued_at: at,
        command: Command::Expire,
    };
    let body = serde_json::to_vec(&env).map_err(|e| build(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Schedule", schedule_header(at).as_str());
    headers.insert(
        "Nats-Schedule-Target",
        format!("{EXPIRY_FIRED_PREFIX}.{order}").as_str(),
    );
    headers.insert("Nats-Schedule-TTL", FIRED_EXPIRY_TTL);
    headers.insert("Nats-Msg-Id", format!("expiry:{order}").as_str());
    let ack = js
        .publish_with_headers(
            format!("{EXPIRY_SCHEDULE_PREFIX}.{order}"),
            headers,
            body.into(),
        )
        .await
        .map_err(|e| ScheduleError::Publish {
            order: order.clone(),
            detail: e.to_string(),
        })?;
    ack.await.map_err(|e| ScheduleError::Unconfirmed {
        order: order.clone(),
        detail: e.to_string(),
    })?;
    tracing::debug!(%order, %at, "expiry scheduled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_never_fires_before_the_expiry() {
        let exact: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        assert_eq!(schedule_header(exact), "@at 2026-12-01T10:00:00Z");
        let fraction: Timestamp = "2026-12-01T10:00:00.001Z".parse().expect("time");
        assert_eq!(schedule_header(fraction), "@at 2026-12-01T10:00:01Z");
    }

    #[test]
    fn the_expire_command_id_is_deterministic_and_valid_for_any_order_id() {
        let longest = OrderId::parse("a".repeat(64)).expect("order id");
        let id = command_id(&longest).expect("valid command id");
        assert_eq!(id.to_string(), format!("expire.{}", "a".repeat(64)));
    }
}
