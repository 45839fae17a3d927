//! Messages on an order's log that are not commits (an old bug, an operator's mistake) make
//! the order unreadable. The log denies deletes and JetStream cannot lift that, so nothing is
//! removed: an operator records the decision to skip the message here, by order and stream
//! sequence, with who and why. Readers skip exactly those messages (and only when they do not
//! decode); the audit lists them as warnings. Only the operator role may write this bucket.

use async_nats::jetstream::{self, kv};
use paystate_events::{OrderId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// KV bucket of quarantined log messages, keys `<order_id>.<stream sequence>`.
pub const QUARANTINE_BUCKET: &str = "paystate_quarantine";

/// Longest operator id and reason recorded.
pub const QUARANTINE_TEXT_LEN_MAX: usize = 512;

/// One operator decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub operator: String,
    pub reason: String,
    pub at: Timestamp,
}

pub fn key(order: &OrderId, sequence: u64) -> String {
    format!("{order}.{sequence}")
}

/// Creates the bucket (idempotent).
pub async fn ensure(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(QUARANTINE_BUCKET).await {
        return Ok(kv);
    }
    js.create_key_value(kv::Config {
        bucket: QUARANTINE_BUCKET.to_string(),
        history: 5,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        description: "paystate: log messages set aside by an operator (not commits)".into(),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// Whether the message at `sequence` of `order` was quarantined (a missing bucket means no).
pub async fn is_quarantined(
    js: &jetstream::Context,
    order: &OrderId,
    sequence: u64,
) -> Result<bool, String> {
    let Ok(kv) = js.get_key_value(QUARANTINE_BUCKET).await else {
        return Ok(false);
    };
    match kv.get(key(order, sequence)).await {
        Ok(v) => Ok(v.is_some()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every quarantined (order, sequence), for the audit.
pub async fn all(js: &jetstream::Context) -> Result<HashSet<(String, u64)>, String> {
    use futures::StreamExt;
    let mut out = HashSet::new();
    let Ok(kv) = js.get_key_value(QUARANTINE_BUCKET).await else {
        return Ok(out);
    };
    let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| e.to_string())?;
        if let Some((order, seq)) = k.rsplit_once('.') {
            if let Ok(seq) = seq.parse() {
                out.insert((order.to_string(), seq));
            }
        }
    }
    Ok(out)
}
