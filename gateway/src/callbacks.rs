//! `POST /callbacks/{provider}`: provider callbacks in.
//!
//! 1. The raw request (headers with credentials redacted, query, body, receive time) is
//!    stored in the `PAYSTATE_CALLBACKS` stream before anything else, so nothing is lost if
//!    paystate stops right after answering.
//! 2. The adapter verifies the signature or token (constant time) and translates the body.
//!    A bad or missing signature gets 4xx and a `rejected` verdict; it is never applied.
//! 3. The order is found (the provider echoes our id, or its reference is in the refs index).
//! 4. Each signal is published durably as a `provider_signal` command; a resend (same dedup
//!    key) is recognised in the `paystate_callbacks_seen` bucket and only acknowledged.
//! 5. The provider gets the answer it expects (`{"status":"ok"}`, HTTP 200, ...).

use crate::ApiError;
use async_nats::jetstream::{self, kv, stream};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use paystate_adapters::callback::{Ack, InboundCallback, ParsedCallback};
use paystate_adapters::Adapters;
use paystate_events::{
    Command, CommandEnvelope, CommandId, OrderId, Provider, ProviderSignal, Timestamp,
};
use paystate_service::refs::ProviderRefs;
use paystate_service::Client;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Largest callback body accepted; larger ones get 413 before anything is stored (defined
/// with the gateway's other bounds in [`crate::limits`]).
pub use crate::limits::CALLBACK_BODY_BYTES_MAX;
/// Stream of raw callbacks and their verdicts.
pub const CALLBACKS_STREAM: &str = "PAYSTATE_CALLBACKS";
/// Subject prefix: `paystate.callbacks.<provider>.raw` and `.verdict`.
pub const CALLBACKS_PREFIX: &str = "paystate.callbacks";
/// Bucket of callback dedup keys already turned into commands.
pub const SEEN_BUCKET: &str = "paystate_callbacks_seen";
/// Header values never stored (credentials): only the scheme survives (see [`redact`]).
const REDACTED_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-webhook-token",
];
/// Stands for a credential header's value in stored callbacks.
const REDACTED_VALUE: &str = "[redacted]";

/// Counters for tests and logs.
#[derive(Debug, Default)]
pub struct CallbackStats {
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub duplicates: AtomicU64,
    pub applied: AtomicU64,
}

/// What the callback handler needs. Cheap to clone.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    adapters: Arc<Adapters>,
    js: jetstream::Context,
    seen: kv::Store,
    refs: ProviderRefs,
    client: Client,
    stats: Arc<CallbackStats>,
    /// Files that commands refer to (uploaded at `POST /attachments`, see `attachments`).
    attachments: jetstream::object_store::ObjectStore,
}

impl Callbacks {
    /// Ensures the callback stream and buckets exist.
    pub async fn open(
        nats: async_nats::Client,
        adapters: Arc<Adapters>,
        replicas: usize,
    ) -> Result<Callbacks, String> {
        let js = jetstream::new(nats.clone());
        js.create_or_update_stream(stream::Config {
            name: CALLBACKS_STREAM.into(),
            subjects: vec![format!("{CALLBACKS_PREFIX}.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            description: Some("paystate: raw provider callbacks and verdicts (evidence)".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        let seen = match js.get_key_value(SEEN_BUCKET).await {
            Ok(s) => s,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: SEEN_BUCKET.into(),
                    history: 1,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?,
        };
        let refs = ProviderRefs::open(&js, replicas).await?;
        let attachments = paystate_service::attachments::open(&js, replicas).await?;
        let stats = Arc::new(CallbackStats::default());
        Ok(Callbacks {
            inner: Arc::new(Inner {
                adapters,
                js,
                seen,
                refs,
                client: Client::new(nats),
                stats,
                attachments,
            }),
        })
    }

    pub fn stats(&self) -> Arc<CallbackStats> {
        self.inner.stats.clone()
    }

    /// The attachment store, for the upload route that sits beside the callbacks.
    pub fn attachments(&self) -> jetstream::object_store::ObjectStore {
        self.inner.attachments.clone()
    }
}

/// The callback routes, with their own state (merged into the gateway's router).
pub fn routes(callbacks: Callbacks) -> Router {
    Router::new()
        .route("/callbacks/{provider}", post(receive))
        .layer(DefaultBodyLimit::max(CALLBACK_BODY_BYTES_MAX))
        .with_state(callbacks)
}

async fn receive(
    State(cb): State<Callbacks>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            format!("no provider {provider:?}"),
        )
        .into_response();
    };
    let inner = &cb.inner;
    inner.stats.received.fetch_add(1, Relaxed);
    let received_at = chrono::Utc::now();
    let pairs = header_pairs(&headers);
    let query = query.unwrap_or_default();
    let raw_seq = match inner
        .store_raw(provider, &pairs, &query, &body, received_at)
        .await
    {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(%provider, error = %e, "could not store a callback; asking the provider to retry");
            return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response();
        }
    };
    let inbound = InboundCallback {
        headers: &pairs,
        query: &query,
        body: &body,
    };
    let parsed = match inner
        .adapters
        .verify_and_parse_callback(provider, &inbound, received_at)
    {
        Ok(p) => p,
        Err(e) => {
            inner.stats.rejected.fetch_add(1, Relaxed);
            tracing::warn!(%provider, raw_seq, error = %e, "callback rejected; recorded, not applied");
            inner
                .verdict(provider, raw_seq, "rejected", &e.to_string(), None)
                .await;
            return ack(&e.ack());
        }
    };
    match inner
        .apply(provider, raw_seq, &parsed, received_at, &body)
        .await
    {
        Ok(()) => ack(&parsed.ack),
        Err((status, reason)) => {
            inner
                .verdict(provider, raw_seq, "not_applied", &reason, None)
                .await;
            (status, reason).into_response()
        }
    }
}

impl Inner {
    async fn store_raw(
        &self,
        provider: Provider,
        headers: &[(String, String)],
        query: &str,
        body: &[u8],
        at: Timestamp,
    ) -> Result<u64, String> {
        let record = serde_json::json!({
            "provider": provider,
            "received_at": at,
            "headers": headers.iter().map(|(k, v)| [k.clone(), redact(k, v)]).collect::<Vec<_>>(),
            "query": query,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
        });
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let ack = self
            .js
            .publish(format!("{CALLBACKS_PREFIX}.{provider}.raw"), bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
    }

    async fn verdict(
        &self,
        provider: Provider,
        raw_seq: u64,
        verdict: &str,
        detail: &str,
        order: Option<&OrderId>,
    ) {
        let record = serde_json::json!({"raw_seq": raw_seq, "verdict": verdict, "detail": detail, "order_id": order});
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let subject = format!("{CALLBACKS_PREFIX}.{provider}.verdict");
        match self.js.publish(subject, bytes.into()).await {
            Ok(ack) => {
                if let Err(e) = ack.await {
                    tracing::warn!(raw_seq, error = %e, "verdict not stored");
                }
            }
            Err(e) => tracing::warn!(raw_seq, error = %e, "verdict not stored"),
        }
    }

    /// Routes the signals to their order and publishes them, once per dedup key.
    async fn apply(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: &ParsedCallback,
        at: Timestamp,
        body: &[u8],
    ) -> Result<(), (StatusCode, String)> {
        if parsed.signals.is_empty() {
            self.verdict(
                provider,
                raw_seq,
                "no_signal",
                "the report carries no state",
                None,
            )
            .await;
            return Ok(());
        }
        // A provider's report id is unique only per order at best (and a provider's test
        // environment may reuse it), so the dedup key is scoped to the order.
        let order = self.order_of(provider, parsed).await?;
        let dedup = dedup_hash(provider, &order, parsed.dedup_key.as_deref(), body);
        let seen_key = format!("{provider}.{dedup}");
        if let Ok(Some(_)) = self.seen.get(&seen_key).await {
            self.stats.duplicates.fetch_add(1, Relaxed);
            self.verdict(provider, raw_seq, "duplicate", "already applied", None)
                .await;
            return Ok(());
        }
        let commands = commands(&order, provider, parsed, &dedup, raw_seq, at);
        for c in &commands {
            self.client.publish(c).await.map_err(|e| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("could not submit: {e}"),
                )
            })?;
        }
        if let Some(r) = &parsed.hint.provider_ref {
            let _ = self.refs.remember(provider, r, &order).await;
        }
        if let Err(e) = self
            .seen
            .put(&seen_key, raw_seq.to_string().into_bytes().into())
            .await
        {
            tracing::warn!(raw_seq, error = %e, "dedup key not stored; a resend would be re-submitted (and applied once by the engine)");
        }
        self.stats.applied.fetch_add(1, Relaxed);
        self.verdict(
            provider,
            raw_seq,
            "applied",
            &format!("{} signal(s)", commands.len()),
            Some(&order),
        )
        .await;
        Ok(())
    }

    async fn order_of(
        &self,
        provider: Provider,
        parsed: &ParsedCallback,
    ) -> Result<OrderId, (StatusCode, String)> {
        if let Some(o) = &parsed.hint.order_id {
            return Ok(o.clone());
        }
        let unknown = || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "order not known (yet); retry later".to_string(),
            )
        };
        let reference = parsed.hint.provider_ref.as_deref().ok_or_else(unknown)?;
        match self.refs.lookup(provider, reference).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err(unknown()),
            Err(e) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("refs lookup failed: {e}"),
            )),
        }
    }
}

/// One `provider_signal` command per signal; ids are derived from the dedup key, so a resend
/// that slips past the seen-bucket gets the same ids and is applied once by the engine.
fn commands(
    order: &OrderId,
    provider: Provider,
    parsed: &ParsedCallback,
    dedup: &str,
    raw_seq: u64,
    at: Timestamp,
) -> Vec<CommandEnvelope> {
    parsed
        .signals
        .iter()
        .enumerate()
        .filter_map(|(i, kind)| {
            let command_id = CommandId::parse(format!("cb.{provider}.{dedup}.{i}")).ok()?;
            let observed_at = parsed.observed_at.unwrap_or(at);
            let signal = ProviderSignal {
                provider,
                provider_ref: parsed.hint.provider_ref.clone(),
                evidence_ref: format!("callbacks:{raw_seq}"),
                observed_at,
                kind: kind.clone(),
            };
            Some(CommandEnvelope {
                command_id,
                order_id: order.clone(),
                issued_at: at,
                command: Command::ProviderSignal { signal },
            })
        })
        .collect()
}

fn dedup_hash(provider: Provider, order: &OrderId, key: Option<&str>, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(provider.as_str().as_bytes());
    h.update(order.as_str().as_bytes());
    match key {
        Some(k) => h.update(k.as_bytes()),
        None => h.update(body),
    }
    hex::encode(h.finalize())[..24].to_string()
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect()
}

/// A credential header's stored form: the scheme (when the value starts with one) and
/// `[redacted]`, nothing derived from the credential (an unkeyed digest would let a guessed
/// token be confirmed offline against the stored callbacks). Other headers are kept.
fn redact(name: &str, value: &str) -> String {
    if !REDACTED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return value.to_string();
    }
    // Only a known scheme is kept: a credential that happens to contain a space is not one.
    let scheme = value
        .trim_start()
        .split_once(' ')
        .map(|(s, _)| s)
        .filter(|s| AUTH_SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(s)));
    match scheme {
        Some(s) => format!("{s} {REDACTED_VALUE}"),
        None => REDACTED_VALUE.to_string(),
    }
}

/// Authorization schemes kept in front of `[redacted]` (anything else is dropped whole).
const AUTH_SCHEMES: [&str; 6] = ["Bearer", "Basic", "Digest", "Token", "HMAC", "Signature"];

fn ack(a: &Ack) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, a.content_type)],
        a.body.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn credential_headers_keep_only_the_scheme() {
        assert_eq!(
            redact("Authorization", "Bearer plexy-test-webhook-token"),
            "Bearer [redacted]"
        );
        assert_eq!(redact("authorization", "basic dTpw"), "basic [redacted]");
        assert_eq!(redact("Authorization", "raw-api-key"), "[redacted]");
        assert_eq!(redact("Authorization", "s3cr3t with-space"), "[redacted]");
        assert_eq!(redact("cookie", "session=abc"), "[redacted]");
        assert_eq!(redact("X-Api-Key", "k-123"), "[redacted]");
        assert_eq!(
            redact("content-type", "application/json"),
            "application/json"
        );
        // Nothing derived from the token: two tokens store the same thing.
        assert_eq!(
            redact("authorization", "Bearer a"),
            redact("authorization", "Bearer b")
        );
    }
}
