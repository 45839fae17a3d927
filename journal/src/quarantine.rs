//! Messages on an order's log that are not commits (an old bug, an operator's mistake) make
//! the order unreadable. The log denies deletes and JetStream cannot lift that, so nothing is
//! removed: an operator records the decision to skip the message here, by order and stream
//! sequence, with who and why. Readers skip exactly those messages (and only when they do not
//! decode); the audit lists them as warnings. Only the operator role may write this bucket.
//!
//! A decision counts only when its value decodes as the [`QuarantineEntry`] paystate writes
//! ([`QuarantineEntry::decode`]). Any client can make the broker store its answer to a
//! publish (a PubAck) at any key of the bucket (docs/security.md, Known limits); such a value
//! is read as absent (and logged), so it neither sets a message aside nor turns an audit
//! error into a warning. What it can still do: stored over a real decision, it hides that
//! decision (the order reads as unreadable again until an operator quarantines anew): the
//! safe direction, never a message skipped that no person set aside.

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

impl QuarantineEntry {
    /// Reads a stored decision: JSON with the fields `paystate quarantine` writes, operator
    /// and reason each 1..=[`QUARANTINE_TEXT_LEN_MAX`] bytes and not blank. Anything else
    /// (a broker's PubAck planted at the key, an empty value) is not a decision.
    pub fn decode(bytes: &[u8]) -> Result<QuarantineEntry, String> {
        let entry: QuarantineEntry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for (name, text) in [("operator", &entry.operator), ("reason", &entry.reason)] {
            if text.trim().is_empty() || text.len() > QUARANTINE_TEXT_LEN_MAX {
                return Err(format!(
                    "{name} must be 1..={QUARANTINE_TEXT_LEN_MAX} bytes, not blank"
                ));
            }
        }
        Ok(entry)
    }
}

pub fn key(order: &OrderId, sequence: u64) -> String {
    format!("{order}.{sequence}")
}

/// The (order, sequence) a key names, when it is a key [`key`] makes: a valid order id and a
/// sequence from 1.
fn parse_key(key: &str) -> Option<(OrderId, u64)> {
    let (order, seq) = key.rsplit_once('.')?;
    let seq: u64 = seq.parse().ok().filter(|s| *s > 0)?;
    let order = OrderId::parse(order.to_string()).ok()?;
    Some((order, seq))
}

/// The decision stored at `key` (`None`: none, or a value paystate did not write).
async fn decision(kv: &kv::Store, key: &str) -> Result<Option<QuarantineEntry>, String> {
    let Some(value) = kv.get(key).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    match QuarantineEntry::decode(&value) {
        Ok(entry) => Ok(Some(entry)),
        Err(e) => {
            tracing::warn!(
                bucket = QUARANTINE_BUCKET,
                key,
                error = %e,
                "a value at a quarantine key is not a decision paystate wrote (a broker's \
                 answer planted there?): read as absent"
            );
            Ok(None)
        }
    }
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

/// Whether an operator quarantined the message at `sequence` of `order`: a decision that
/// decodes ([`QuarantineEntry::decode`]) is stored at its key. A missing bucket, a missing
/// key and a value paystate did not write all mean no; `Err` is broker trouble.
pub async fn is_quarantined(
    js: &jetstream::Context,
    order: &OrderId,
    sequence: u64,
) -> Result<bool, String> {
    let Ok(kv) = js.get_key_value(QUARANTINE_BUCKET).await else {
        return Ok(false);
    };
    Ok(decision(&kv, &key(order, sequence)).await?.is_some())
}

/// Every quarantined (order, sequence), for the audit and the export: the keys that name an
/// order and a sequence and hold a decision that decodes (what [`is_quarantined`] accepts).
pub async fn all(js: &jetstream::Context) -> Result<HashSet<(String, u64)>, String> {
    use futures::StreamExt;
    let mut out = HashSet::new();
    let Ok(kv) = js.get_key_value(QUARANTINE_BUCKET).await else {
        return Ok(out);
    };
    let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| e.to_string())?;
        let Some((order, seq)) = parse_key(&k) else {
            tracing::warn!(
                bucket = QUARANTINE_BUCKET,
                key = k,
                "a quarantine key that names no order and sequence: ignored"
            );
            continue;
        };
        if decision(&kv, &k).await?.is_some() {
            out.insert((order.to_string(), seq));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_json(operator: &str, reason: &str) -> Vec<u8> {
        serde_json::to_vec(&QuarantineEntry {
            operator: operator.into(),
            reason: reason.into(),
            at: chrono::Utc::now(),
        })
        .expect("json")
    }

    #[test]
    fn a_decision_paystate_writes_decodes() {
        let e = QuarantineEntry::decode(&entry_json("ops-1", "INC-42")).expect("decision");
        assert_eq!(
            (e.operator.as_str(), e.reason.as_str()),
            ("ops-1", "INC-42")
        );
    }

    #[test]
    fn a_brokers_answer_or_other_junk_is_no_decision() {
        for junk in [
            &br#"{"stream":"KV_paystate_quarantine","seq":5}"#[..],
            br#"{"error":{"code":503,"err_code":10077,"description":"no responders"}}"#,
            br#"{"stream":"PAYSTATE_COMMANDS","seq":7,"duplicate":true}"#,
            b"{}",
            b"",
            b"junk",
        ] {
            assert!(QuarantineEntry::decode(junk).is_err(), "{junk:?}");
        }
        let long = "x".repeat(QUARANTINE_TEXT_LEN_MAX + 1);
        assert!(QuarantineEntry::decode(&entry_json(" ", "why")).is_err());
        assert!(QuarantineEntry::decode(&entry_json("ops", "")).is_err());
        assert!(QuarantineEntry::decode(&entry_json("ops", &long)).is_err());
    }

    #[test]
    fn keys_name_an_order_and_a_sequence() {
        let o = OrderId::parse("o-1".to_string()).expect("order");
        assert_eq!(parse_key(&key(&o, 12)), Some((o, 12)));
        for bad in ["o-1", "o-1.x", "o-1.0", ".5", "a..5"] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }
}
