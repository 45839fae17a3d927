//! Outcomes by (order, command id) in a JetStream KV bucket, so a retried command gets the
//! same answer — including rejections, which leave no trace in the log. Accepted commands
//! are also remembered by the order itself (its applied command ids): when this bucket lost
//! an entry (expired after [`OUTCOME_TTL`], deleted), the engine rebuilds the original
//! outcome from the command's commit in the log and stores it again. A rejection whose entry
//! is gone is decided again. Outcomes carry the bounded state view, so every value stays far
//! below the KV value limit (`paystate_events::limits::OUTCOME_BYTES_MAX`).

use async_nats::jetstream::{self, kv};
use paystate_events::subjects::OUTCOMES_BUCKET;
use paystate_events::{CommandId, OrderId, Outcome};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long rejected and accepted outcomes stay answerable from the bucket.
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

    /// Remembers an outcome already encoded as JSON (the bytes the caller was sent), without
    /// encoding it a second time; stored exactly as [`StoredOutcome`] would be.
    pub async fn put_encoded(
        &self,
        order: &OrderId,
        command: &CommandId,
        fingerprint: &str,
        outcome_json: &[u8],
    ) -> Result<(), String> {
        let bytes = encode_stored(fingerprint, outcome_json).map_err(|e| e.to_string())?;
        self.kv
            .put(key(order, command), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
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

    /// Remembers an outcome; failures are logged by the caller and are harmless (the log
    /// still knows accepted commands; a rejection is simply decided again).
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

/// `{"fingerprint":<fingerprint>,"outcome":<outcome_json>}`: a [`StoredOutcome`] around an
/// outcome that is JSON already.
pub fn encode_stored(fingerprint: &str, outcome_json: &[u8]) -> serde_json::Result<Vec<u8>> {
    let fingerprint = serde_json::to_vec(fingerprint)?;
    let mut bytes = Vec::with_capacity(outcome_json.len() + fingerprint.len() + 32);
    bytes.extend_from_slice(b"{\"fingerprint\":");
    bytes.extend_from_slice(&fingerprint);
    bytes.extend_from_slice(b",\"outcome\":");
    bytes.extend_from_slice(outcome_json);
    bytes.push(b'}');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystate_events::RejectionCode;

    #[test]
    fn encoded_outcomes_read_back_as_stored_outcomes() {
        let outcome = Outcome::Rejected {
            command_id: Some("c-1".into()),
            order_id: Some("o-1".into()),
            code: RejectionCode::OrderNotFound,
            message: "order o-1 does not exist \"quoted\"".into(),
            duplicate: false,
        };
        let json = serde_json::to_vec(&outcome).unwrap();
        let bytes = encode_stored("ab12", &json).unwrap();
        let stored: StoredOutcome = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (stored.fingerprint.as_str(), stored.outcome),
            ("ab12", outcome)
        );
    }
}
