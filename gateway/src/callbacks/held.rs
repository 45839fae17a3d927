//! Verified callbacks that are not in the log yet and that no provider will resend:
//! `paystate_callbacks_held`, one entry per received callback (`<provider>.<raw seq>`).
//!
//! - **redrive**: a provider that sends once (the exchanger's IPN) got its success answer,
//!   so paystate itself re-drives the callback (verify, route, deliver: the same path as a
//!   request) with backoff, at most [`CallbackTimings::redrive_attempts_max`] times, until
//!   it is in the log or is quarantined. Several gateways may run: each attempt is claimed
//!   first (a revision-checked update), so one gateway makes it.
//! - **quarantined**: the engine will never take it (provider mismatch, history full, too
//!   large, a stored refusal), or its re-drives ran out: kept for a person, with the reason
//!   (`nats kv get paystate_callbacks_held <key>`; the raw request is in `PAYSTATE_CALLBACKS`
//!   at `raw_seq`), with a copy in the dead-letter stream (`paystate dlq list --consumer
//!   callbacks`). Nothing is ever dropped: if the bucket cannot take an entry, the
//!   provider gets 503 instead of its success answer.

use super::keys::held_key;
use super::route::{Applied, NotApplied};
use super::{CallbackTimings, Handled, Inner};
use async_nats::jetstream::{self, kv, stream::RawMessageErrorKind};
use base64::Engine as _;
use paystate_adapters::callback::InboundCallback;
use paystate_events::{OrderId, Provider, Timestamp};
use paystate_journal::dead_letters;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Weak;
use std::time::Duration;

/// Bucket of held callbacks (re-drives and quarantined ones).
pub const HELD_BUCKET: &str = "paystate_callbacks_held";
/// Most bytes the held bucket keeps; when full, callbacks get 503 (never dropped).
pub const HELD_BUCKET_BYTES_MAX: i64 = 1024 * 1024 * 1024;
/// The name quarantined callbacks carry in the dead-letter stream as their "consumer".
pub const DEAD_LETTER_CONSUMER: &str = "paystate-gateway-callbacks";
/// Entries looked at per re-drive round by default (the next round goes on from there).
pub const HELD_SCAN_MAX: usize = 1_000;

/// What a held entry waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldState {
    /// paystate re-drives it.
    Redrive,
    /// A person.
    Quarantined,
}

/// One held callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldCallback {
    pub state: HeldState,
    pub provider: Provider,
    /// Sequence of its raw record in `PAYSTATE_CALLBACKS` (the evidence).
    pub raw_seq: u64,
    pub received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// Why it is held (the last reason it could not be applied).
    pub reason: String,
    /// Re-drives made so far.
    pub attempts: u32,
    /// Not re-driven before this time.
    pub next_attempt_at: Timestamp,
    /// The request as stored (credential headers redacted), for a re-drive: only providers
    /// whose signature is in the body or query are held for re-drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeldRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldRequest {
    pub headers: Vec<(String, String)>,
    pub query: String,
    pub body_b64: String,
}

/// Opens (or creates) the held bucket.
pub(crate) async fn open(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, String> {
    if let Ok(s) = js.get_key_value(HELD_BUCKET).await {
        return Ok(s);
    }
    js.create_key_value(kv::Config {
        bucket: HELD_BUCKET.into(),
        description: "paystate: verified callbacks waiting for a re-drive or a person".into(),
        history: 1,
        max_bytes: HELD_BUCKET_BYTES_MAX,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// The wait before re-drive `attempt` (1-based): doubling from the first, capped.
pub(crate) fn backoff(t: &CallbackTimings, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    t.redrive_backoff_first
        .saturating_mul(factor)
        .min(t.redrive_backoff_max)
}

fn after(at: Timestamp, d: Duration) -> Timestamp {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Inner {
    /// Keeps a verified callback of a provider that sends once, for re-drive.
    pub(crate) async fn hold(
        &self,
        provider: Provider,
        raw_seq: u64,
        inbound: &InboundCallback<'_>,
        received_at: Timestamp,
        reason: &str,
    ) -> Result<(), String> {
        let held = HeldCallback {
            state: HeldState::Redrive,
            provider,
            raw_seq,
            received_at,
            order_id: None,
            reason: reason.to_string(),
            attempts: 0,
            next_attempt_at: after(chrono::Utc::now(), backoff(&self.timings, 1)),
            request: Some(HeldRequest {
                headers: inbound
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), super::redact(k, v)))
                    .collect(),
                query: inbound.query.to_string(),
                body_b64: base64::engine::general_purpose::STANDARD.encode(inbound.body),
            }),
        };
        self.put_held(&held).await?;
        self.stats.held.fetch_add(1, Relaxed);
        self.verdict(
            provider,
            raw_seq,
            "held",
            &format!("kept for re-drive: {reason}"),
            None,
        )
        .await;
        Ok(())
    }

    /// Sets a callback aside for a person. `Err(Later)` if it could not be kept.
    pub(crate) async fn quarantine(
        &self,
        provider: Provider,
        raw_seq: u64,
        order: Option<&OrderId>,
        reason: &str,
    ) -> Result<Applied, NotApplied> {
        let now = chrono::Utc::now();
        let held = HeldCallback {
            state: HeldState::Quarantined,
            provider,
            raw_seq,
            received_at: now,
            order_id: order.cloned(),
            reason: reason.to_string(),
            attempts: 0,
            next_attempt_at: now,
            request: None,
        };
        self.put_held(&held).await.map_err(|e| {
            NotApplied::Later(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("could not quarantine: {e}"),
            )
        })?;
        self.stats.quarantined.fetch_add(1, Relaxed);
        tracing::warn!(%provider, raw_seq, %reason, "callback quarantined for review");
        self.dead_letter(&held).await;
        self.verdict(provider, raw_seq, "quarantined", reason, order)
            .await;
        Ok(Applied::Quarantined)
    }

    /// A copy in the dead-letter stream (`paystate.dead.callbacks.<order>`), so the callback
    /// shows in `paystate dlq list` and the dashboard beside the other dead letters. Best
    /// effort: the held entry is the record; its raw sequence is the dead letter's dedup id.
    async fn dead_letter(&self, held: &HeldCallback) {
        let Ok(payload) = serde_json::to_vec(held) else {
            return;
        };
        let subject = format!("{}.{}.raw", super::CALLBACKS_PREFIX, held.provider);
        let out = dead_letters::Outgoing {
            source: dead_letters::Source::Callbacks,
            consumer: DEAD_LETTER_CONSUMER,
            subject: &subject,
            order: held.order_id.as_ref().map(OrderId::as_str),
            headers: None,
            payload: payload.into(),
            origin: Some((super::CALLBACKS_STREAM, held.raw_seq)),
            deliveries: u64::from(held.attempts),
            reason: &held.reason,
        };
        if let Err(e) = dead_letters::send(&self.js, &out).await {
            tracing::warn!(raw_seq = held.raw_seq, error = %e, "quarantined callback not copied to the dead letters (it is held)");
        }
    }

    async fn put_held(&self, held: &HeldCallback) -> Result<u64, String> {
        let bytes = serde_json::to_vec(held).map_err(|e| e.to_string())?;
        self.held
            .put(held_key(held.provider, held.raw_seq), bytes.into())
            .await
            .map_err(|e| e.to_string())
    }

    /// One re-drive round: the next [`CallbackTimings::redrive_scan_max`] entries of the
    /// bucket from where the last round stopped (from the start again once it reached the
    /// end); every due `redrive` entry among them is claimed and driven once more.
    ///
    /// Why a cursor: the bucket's stream keeps quarantined entries, the delete markers of
    /// re-driven ones and whatever strays a publisher had the broker store there, oldest
    /// first. A round that always started at the front would, once a bounded scan's worth
    /// of those piled up, never reach a callback held after them.
    pub(crate) async fn redrive_round(&self) -> Result<usize, String> {
        let stream = self
            .js
            .get_stream(format!("KV_{HELD_BUCKET}"))
            .await
            .map_err(|e| e.to_string())?;
        let subject = format!("$KV.{HELD_BUCKET}.>");
        let mut next_seq = self.redrive_cursor.load(Relaxed).max(1);
        let mut driven = 0usize;
        for _ in 0..self.timings.redrive_scan_max {
            let msg = stream
                .raw_message_builder()
                .sequence(next_seq)
                .next_by_subject(subject.clone())
                .send()
                .await;
            let msg = match msg {
                Ok(m) => m,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                    next_seq = 1;
                    break;
                }
                Err(e) => {
                    self.redrive_cursor.store(next_seq, Relaxed);
                    return Err(e.to_string());
                }
            };
            next_seq = msg.sequence + 1;
            let Some(key) = msg.subject.strip_prefix(&format!("$KV.{HELD_BUCKET}.")) else {
                continue;
            };
            if self.redrive_one(key).await {
                driven += 1;
            }
        }
        self.redrive_cursor.store(next_seq, Relaxed);
        Ok(driven)
    }

    /// Re-drives `key` if it is a due re-drive entry this gateway could claim.
    async fn redrive_one(&self, key: &str) -> bool {
        let Ok(Some(entry)) = self.held.entry(key).await else {
            return false;
        };
        if entry.operation != kv::Operation::Put {
            return false;
        }
        let Ok(mut held) = serde_json::from_slice::<HeldCallback>(&entry.value) else {
            return false;
        };
        let now = chrono::Utc::now();
        if held.state != HeldState::Redrive || held.next_attempt_at > now {
            return false;
        }
        held.attempts += 1;
        held.next_attempt_at = after(now, backoff(&self.timings, held.attempts + 1));
        let Ok(bytes) = serde_json::to_vec(&held) else {
            return false;
        };
        // The claim: another gateway that got here first changed the revision.
        let Ok(revision) = self.held.update(key, bytes.into(), entry.revision).await else {
            return false;
        };
        let reason = match self.redrive(&held).await {
            Ok(Applied::InLog | Applied::Duplicate) => {
                if let Err(e) = self.held.delete_expect_revision(key, Some(revision)).await {
                    tracing::warn!(key, error = %e, "re-driven callback is in the log; its held entry stays (re-driven again as a duplicate)");
                }
                return true;
            }
            // The entry itself became the quarantined one.
            Ok(Applied::Quarantined) => return true,
            Err(reason) => reason,
        };
        if held.attempts >= self.timings.redrive_attempts_max {
            let why = format!(
                "not applied after {} re-drives; last: {reason}",
                held.attempts
            );
            let _ = self
                .quarantine(held.provider, held.raw_seq, held.order_id.as_ref(), &why)
                .await;
        } else {
            held.reason = reason;
            if let Ok(bytes) = serde_json::to_vec(&held) {
                let _ = self.held.update(key, bytes.into(), revision).await;
            }
        }
        true
    }

    /// Drives a held callback through the request path once more.
    async fn redrive(&self, held: &HeldCallback) -> Result<Applied, String> {
        let Some(req) = &held.request else {
            return Err("nothing to re-drive (no request kept)".into());
        };
        let body = base64::engine::general_purpose::STANDARD
            .decode(&req.body_b64)
            .map_err(|e| format!("held body unreadable: {e}"))?;
        let inbound = InboundCallback {
            headers: &req.headers,
            query: &req.query,
            body: &body,
        };
        match self
            .process(held.provider, held.raw_seq, &inbound, held.received_at)
            .await
        {
            Handled::Done(applied, _) => Ok(applied),
            Handled::Invalid(_, detail) => self
                .quarantine(
                    held.provider,
                    held.raw_seq,
                    None,
                    &format!("re-drive refused by the adapter: {detail}"),
                )
                .await
                .map_err(|_| detail),
            Handled::NotApplied(NotApplied::Later(_, reason), _) => Err(reason),
            Handled::NotApplied(NotApplied::Refused { detail, .. }, _) => self
                .quarantine(held.provider, held.raw_seq, None, &detail)
                .await
                .map_err(|_| detail),
        }
    }
}

/// Re-drives held callbacks every `redrive_every` until the callbacks are dropped.
pub(crate) async fn redrive_loop(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = inner.redrive_round().await {
            tracing::warn!(error = %e, "re-drive round failed; next round retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let t = CallbackTimings {
            redrive_backoff_first: Duration::from_secs(1),
            redrive_backoff_max: Duration::from_secs(60),
            ..CallbackTimings::default()
        };
        assert_eq!(backoff(&t, 1), Duration::from_secs(1));
        assert_eq!(backoff(&t, 2), Duration::from_secs(2));
        assert_eq!(backoff(&t, 4), Duration::from_secs(8));
        assert_eq!(backoff(&t, 40), Duration::from_secs(60));
    }
}
