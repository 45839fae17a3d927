//! The projector's dead letters: a commit it gave back [`ProjectorConfig::deliveries_max`]
//! times is set aside in the dead-letter stream with its reason (and acknowledged, so the
//! rest of the log goes on; the order's later commits still apply in order, the projector
//! reading any missing ones from the log). A redrive request (`paystate dlq redrive`)
//! re-projects the order from the log: its record, then every commit after it, written
//! with compare-and-set.

use crate::layout::order_key;
use crate::projector::{Cache, ProjectorConfig};
use crate::record::{apply, Step};
use crate::store::{broker, get_record, ProjectionStore};
use crate::ProjectionError;
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{kv, AckKind, Message};
use paystate_events::subjects::{order_token, DEAD_LETTERS_STREAM};
use paystate_events::OrderId;
use paystate_journal::dead_letters::{self, Source, SERVER_DELIVERIES_SLACK};
use paystate_journal::follow::Follow;
use paystate_journal::Journal;
use std::time::Duration;

/// Pause before a failed redrive request is delivered again.
const REDRIVE_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Redrive requests asked for per pull (an operator's redrive is a handful; each re-reads an
/// order, so few are held at once).
const REDRIVE_BATCH: usize = 16;

/// Sets `msg` aside with `reason`; true once it is stored (only then is it acknowledged).
pub(crate) async fn give_up(
    journal: &Journal,
    msg: &Message,
    delivered: i64,
    reason: Option<&String>,
) -> bool {
    let consumer = msg
        .info()
        .map(|i| i.consumer.to_string())
        .unwrap_or_default();
    let reason = format!(
        "not projected after {delivered} deliveries: {}",
        reason.map_or("given back each time", String::as_str)
    );
    match dead_letters::send_message(
        journal.context(),
        Source::Projector,
        &consumer,
        msg,
        &reason,
    )
    .await
    {
        Ok(seq) => {
            tracing::error!(subject = %msg.subject, dead_seq = seq, %reason, "commit moved to the dead-letter stream by the projector");
            true
        }
        Err(e) => {
            tracing::error!(subject = %msg.subject, error = %e, "dead-letter write failed; the commit is given back");
            false
        }
    }
}

/// The projector's redrive requests (its durable consumer on the dead-letter stream); `None`
/// when it cannot be opened (logged: redrives then wait for the next start).
pub(crate) async fn requests(store: &ProjectionStore, cfg: &ProjectorConfig) -> Option<Follow> {
    let opened = async {
        let stream = store
            .context()
            .get_stream_no_info(DEAD_LETTERS_STREAM)
            .await
            .map_err(broker)?;
        stream
            .create_consumer(pull::Config {
                durable_name: Some(dead_letters::redrive_consumer(Source::Projector)),
                filter_subject: Source::Projector.redrive_subject(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                max_deliver: cfg.deliveries_max + SERVER_DELIVERIES_SLACK,
                num_replicas: store.replicas,
                description: Some("paystate projector: redriven dead letters".into()),
                ..Default::default()
            })
            .await
            .map_err(broker)
    };
    match opened.await {
        Ok(consumer) => Some(Follow::durable(
            store.context(),
            consumer.cached_info(),
            REDRIVE_BATCH,
        )),
        Err(e) => {
            tracing::warn!(error = %e, "projector: redrive requests unavailable");
            None
        }
    }
}

/// One redrive request: re-project its order, then acknowledge; a failure gives it back, and
/// past the bound it is set aside again.
pub(crate) async fn handle(
    bucket: &kv::Store,
    journal: &Journal,
    cache: &mut Cache,
    msg: Message,
    cfg: &ProjectorConfig,
) {
    let order = dead_letters::redrive_request(msg.headers.as_ref(), &msg.payload)
        .and_then(|r| order_token(&r.subject).and_then(|t| OrderId::parse(t).ok()));
    let Some(order) = order else {
        tracing::warn!(subject = %msg.subject, "not a redrive request of an order; dropped");
        let _ = msg.ack().await;
        return;
    };
    cache.pop(&order);
    let result = match reproject(bucket, journal, &order).await {
        Ok(()) => msg.ack().await,
        Err(e) => {
            let delivered = msg.info().map_or(1, |i| i.delivered);
            let reason = e.to_string();
            if delivered >= cfg.deliveries_max
                && give_up(journal, &msg, delivered, Some(&reason)).await
            {
                msg.ack().await
            } else {
                tracing::warn!(%order, error = %e, "redrive of the order's projection failed; retrying");
                msg.ack_with(AckKind::Nak(Some(REDRIVE_RETRY_DELAY))).await
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "redrive ack failed; it will be redelivered");
    }
}

/// Brings `order`'s record level with the log: the commits after it, applied in order and
/// written with compare-and-set. A commit that does not continue the history is recorded
/// on the record as a problem (as the live projector does).
pub async fn reproject(
    bucket: &kv::Store,
    journal: &Journal,
    order: &OrderId,
) -> Result<(), ProjectionError> {
    let (mut record, revision) = get_record(bucket, order).await?;
    let from = record.as_ref().map_or(1, |r| r.seq + 1);
    let tail = journal.read_order_from(order, from).await?;
    let mut changed = false;
    for c in &tail {
        match apply(&mut record, c, true) {
            Step::Applied => changed = true,
            Step::Broken(detail) => {
                tracing::warn!(%order, seq = c.sequence, %detail, "commit does not continue the order's history");
                changed = record.is_some();
                break;
            }
            Step::AlreadyApplied | Step::Ahead { .. } => {}
        }
    }
    let Some(record) = record.filter(|_| changed) else {
        return Ok(());
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| ProjectionError::Corrupt {
        key: order_key(order),
        detail: e.to_string(),
    })?;
    let written = match revision {
        0 => bucket
            .create(order_key(order), bytes.into())
            .await
            .map(|_| ())
            .map_err(broker),
        r => bucket
            .update(order_key(order), bytes.into(), r)
            .await
            .map(|_| ())
            .map_err(broker),
    };
    written
}
