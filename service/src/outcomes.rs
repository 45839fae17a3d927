//! Outcomes by (order, command id) in a JetStream KV bucket, for what has no order to live
//! in (decision 0013): a rejection decided on an order that does not exist (`order_not_found`,
//! a refused `create_order`) is stored here when it happens, and the processor reads the
//! bucket only on that path, so a retry gets the same answer. A refused reply target is
//! recorded here too, only so its caller can read why. Accepted commands and rejections on an
//! existing order are not stored: the order's log remembers their command ids and answers
//! their retries from their commits. Entries expire after [`OUTCOME_TTL`] (a retry is then
//! decided again). The engine's order snapshots live in the same bucket ([`crate::snapshots`]).
//! Outcomes carry the bounded state view, so every value stays far below the KV value limit
//! (`paystate_events::limits::OUTCOME_BYTES_MAX`).

use async_nats::jetstream::{self, kv};
use paystate_events::subjects::OUTCOMES_BUCKET;
use paystate_events::{CommandId, OrderId, Outcome};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a stored outcome stays answerable from the bucket.
pub const OUTCOME_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A stored outcome with the fingerprint of the command that produced it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredOutcome {
    pub fingerprint: String,
    pub outcome: Outcome,
}

#[derive(Clone)]
pub struct Outcomes {
    kv: kv::Store,
}

/// The bucket key of a command: `<order_id>.<command_id>` (both are key-safe by construction).
pub fn key(order: &OrderId, command: &CommandId) -> String {
    format!("{order}.{command}")
}

impl Outcomes {
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Outcomes, String> {
        let cfg = kv::Config {
            bucket: OUTCOMES_BUCKET.to_string(),
            history: 1,
            max_age: OUTCOME_TTL,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas,
            description: "paystate: outcomes of processed commands".into(),
            ..Default::default()
        };
        let kv = match js.get_key_value(OUTCOMES_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js.create_key_value(cfg).await.map_err(|e| e.to_string())?,
        };
        Ok(Outcomes { kv })
    }

    pub async fn get(
        &self,
        order: &OrderId,
        command: &CommandId,
    ) -> Result<Option<StoredOutcome>, String> {
        match self.kv.get(key(order, command)).await {
            Ok(Some(bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The raw value at `key` (the engine's order snapshots live beside the outcomes:
    /// [`crate::snapshots`]).
    pub async fn get_raw(&self, key: &str) -> Result<Option<bytes::Bytes>, String> {
        self.kv.get(key).await.map_err(|e| e.to_string())
    }

    /// Writes the raw value at `key` ([`crate::snapshots`]).
    pub async fn put_raw(&self, key: String, bytes: Vec<u8>) -> Result<(), String> {
        self.kv
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Remembers an outcome; failures are logged by the caller and are harmless (a rejection
    /// with no order is simply decided again).
    pub async fn put(
        &self,
        order: &OrderId,
        command: &CommandId,
        stored: &StoredOutcome,
    ) -> Result<(), String> {
        let bytes = serde_json::to_vec(stored).map_err(|e| e.to_string())?;
        self.kv
            .put(key(order, command), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
