//! `POST /callbacks/{provider}`: provider callbacks in.
//!
//! 1. The raw request (headers with credentials redacted, query, body, receive time) is
//!    stored in the `PAYSTATE_CALLBACKS` stream before anything else, so nothing is lost if
//!    paystate stops right after answering.
//! 2. The adapter verifies the signature or token (constant time) and translates the body.
//!    A bad or missing signature gets 4xx and a `rejected` verdict; it is never applied.
//! 3. [`route`]: the order is found from what the provider signed (our id, or its reference
//!    through the refs index). An unsigned routing hint (our `?order_id=` on the exchanger's
//!    `ipnUrl`) is only cross-checked: if it contradicts the signed reference, nothing is
//!    applied and the callback gets 409 and a `rejected` verdict. A callback whose body
//!    nobody signed (Plexy, Flitt) is a trigger: the order's status is asked of the provider
//!    and that answer is applied, de-duplicated by what it says. An order not in the log yet
//!    gets 503.
//! 4. [`deliver`]: each signal becomes a `provider_signal` command derived only from the
//!    report and its first receipt (a resend is a true duplicate), sent with a reply inbox;
//!    the gateway waits (bounded) for the engine's outcome. The dedup record in
//!    `paystate_callbacks_seen` says `applied` only once every command is in the log.
//! 5. The provider gets its success answer (`{"status":"ok"}`, HTTP 200, ...) only when the
//!    report is in the log, is a duplicate of one that is, or is quarantined for a person
//!    ([`held`]: permanent engine refusals, reports too large for a command and no known
//!    order); otherwise 503 so it resends. Providers that never resend (the exchanger's
//!    IPN) get their answer once the callback is held, and paystate re-drives it.
//!
//! Map: [`keys`] (dedup keys, bucket keys), [`route`], [`deliver`], [`held`].

use crate::ApiError;
use async_nats::jetstream::{self, kv, stream};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use paystate_adapters::callback::{delivery, Ack, Delivery, InboundCallback};
use paystate_adapters::Adapters;
use paystate_events::{OrderId, Provider, Timestamp};
use paystate_journal::Journal;
use paystate_service::refs::ProviderRefs;
use paystate_service::Client;
use route::{Applied, NotApplied};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

mod deliver;
pub mod held;
mod keys;
mod refused;
mod route;

pub use held::{HeldCallback, HeldState, HELD_BUCKET};

/// Largest callback body accepted; larger ones get 413 before anything is stored (defined
/// with the gateway's other bounds in [`crate::limits`]).
pub use crate::limits::CALLBACK_BODY_BYTES_MAX;
/// Stream of raw callbacks and their verdicts.
pub const CALLBACKS_STREAM: &str = "PAYSTATE_CALLBACKS";
/// Subject prefix: `paystate.callbacks.<provider>.raw` and `.verdict`.
pub const CALLBACKS_PREFIX: &str = "paystate.callbacks";
/// Bucket of callback dedup records: `pending` (first receipt pinned), `applied` (in the
/// log) or `quarantined`.
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
    /// Kept for paystate's re-drive (providers that never resend).
    pub held: AtomicU64,
    /// Set aside for a person.
    pub quarantined: AtomicU64,
    /// Refused (counted in `rejected` too) past the evidence budget: not stored.
    pub refused_unrecorded: AtomicU64,
}

/// The gateway's waits for callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackTimings {
    /// How long one signal command's outcome is awaited before the provider gets 503 (the
    /// command stays queued; a resend or a re-drive gets its outcome). Under Plural's 5 s.
    pub outcome_wait: Duration,
    /// How often held callbacks are looked at.
    pub redrive_every: Duration,
    /// Wait before the first re-drive; doubled for each next one, up to `redrive_backoff_max`.
    pub redrive_backoff_first: Duration,
    pub redrive_backoff_max: Duration,
    /// Re-drives of one held callback before it is quarantined for a person.
    pub redrive_attempts_max: u32,
    /// Held entries looked at per re-drive round; the next round goes on where this one
    /// stopped, so every entry is looked at within `entries / redrive_scan_max` rounds.
    pub redrive_scan_max: usize,
}

impl Default for CallbackTimings {
    /// 4 s per outcome; re-drives from 2 s, doubling to 10 min, 30 of them (about 4 hours).
    fn default() -> CallbackTimings {
        CallbackTimings {
            outcome_wait: Duration::from_secs(4),
            redrive_every: Duration::from_secs(1),
            redrive_backoff_first: Duration::from_secs(2),
            redrive_backoff_max: Duration::from_secs(600),
            redrive_attempts_max: 30,
            redrive_scan_max: held::HELD_SCAN_MAX,
        }
    }
}

/// What the callback handler needs. Cheap to clone.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    adapters: Arc<Adapters>,
    js: jetstream::Context,
    seen: kv::Store,
    /// Callbacks waiting for a re-drive or a person ([`held`]).
    held: kv::Store,
    /// Where the next re-drive round starts in the held bucket's stream.
    redrive_cursor: std::sync::atomic::AtomicU64,
    /// What refused callbacks may still store ([`refused`]).
    refused_budget: refused::Budget,
    timings: CallbackTimings,
    refs: ProviderRefs,
    client: Client,
    stats: Arc<CallbackStats>,
    /// Files that commands refer to (uploaded at `POST /attachments`, see `attachments`).
    attachments: jetstream::object_store::ObjectStore,
    /// The log, opened on first use: orders are read to cross-check routing hints and to
    /// confirm unsigned callbacks.
    journal: tokio::sync::OnceCell<Journal>,
}

impl Callbacks {
    /// Ensures the callback stream and buckets exist, with the default timings.
    pub async fn open(
        nats: async_nats::Client,
        adapters: Arc<Adapters>,
        replicas: usize,
    ) -> Result<Callbacks, String> {
        Callbacks::open_with(nats, adapters, replicas, CallbackTimings::default()).await
    }

    /// [`Callbacks::open`] with `timings`; starts the re-drive of held callbacks, which stops
    /// once every clone of the returned value is dropped.
    pub async fn open_with(
        nats: async_nats::Client,
        adapters: Arc<Adapters>,
        replicas: usize,
        timings: CallbackTimings,
    ) -> Result<Callbacks, String> {
        let js = jetstream::new(nats.clone());
        js.create_or_update_stream(stream::Config {
            name: CALLBACKS_STREAM.into(),
            subjects: vec![format!("{CALLBACKS_PREFIX}.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            description: Some("paystate: raw provider callbacks and verdicts (evidence)".into()),
            // Refused callbacks' evidence expires (`refused`); authentic ones' never does.
            allow_message_ttl: true,
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
        let held = held::open(&js, replicas).await?;
        let refs = ProviderRefs::open(&js, replicas).await?;
        let attachments = paystate_service::attachments::open(&js, replicas).await?;
        let stats = Arc::new(CallbackStats::default());
        let inner = Arc::new(Inner {
            adapters,
            js,
            seen,
            held,
            redrive_cursor: std::sync::atomic::AtomicU64::new(1),
            refused_budget: refused::Budget::default(),
            timings,
            refs,
            client: Client::new(nats),
            stats,
            attachments,
            journal: tokio::sync::OnceCell::new(),
        });
        tokio::spawn(held::redrive_loop(
            Arc::downgrade(&inner),
            timings.redrive_every,
        ));
        Ok(Callbacks { inner })
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

// The span every log line about this callback carries; the engine's span of each command it
// submits carries the same order id (and the command id logged on submission).
#[tracing::instrument(name = "callback", skip_all, fields(provider = %provider, raw_seq = tracing::field::Empty, order_id = tracing::field::Empty))]
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
    let inbound = InboundCallback {
        headers: &pairs,
        query: &query,
        body: &body,
    };
    // Verified before anything is stored: a refused callback is evidence kept within a
    // budget ([`refused`]), an authentic one is stored for ever before it is applied.
    let parsed = match inner
        .adapters
        .verify_and_parse_callback(provider, &inbound, received_at)
    {
        Ok(p) => p,
        Err(e) => {
            let detail = e.to_string();
            inner
                .refused(provider, &inbound, received_at, &detail)
                .await;
            return ack(&e.ack());
        }
    };
    let raw_seq = match inner.store_raw(provider, &inbound, received_at, None).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(%provider, error = %e, "could not store a callback; asking the provider to retry");
            return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response();
        }
    };
    match inner
        .process_verified(provider, raw_seq, parsed, inbound.body, received_at)
        .await
    {
        Handled::Done(_, answer) | Handled::Invalid(answer, _) => ack(&answer),
        Handled::NotApplied(NotApplied::Later(status, reason), answer) => {
            if delivery(provider) == Delivery::Once {
                // Nobody will resend it: paystate keeps it and re-drives it itself.
                match inner
                    .hold(provider, raw_seq, &inbound, received_at, &reason)
                    .await
                {
                    Ok(()) => return ack(&answer),
                    Err(e) => {
                        tracing::warn!(%provider, raw_seq, error = %e, "could not hold a callback that will not be resent")
                    }
                }
            }
            (status, reason).into_response()
        }
        Handled::NotApplied(NotApplied::Refused { detail, answer }, _) => {
            inner.stats.rejected.fetch_add(1, Relaxed);
            tracing::warn!(%provider, raw_seq, %detail, "callback refused; recorded, not applied");
            inner
                .verdict(provider, raw_seq, "rejected", &detail, None)
                .await;
            (StatusCode::CONFLICT, answer).into_response()
        }
    }
}

/// What became of a stored callback.
pub(crate) enum Handled {
    /// In the log, a duplicate, or quarantined: the provider's success answer.
    Done(Applied, Ack),
    /// Bad signature or body: the adapter's answer (a `rejected` verdict is written), and why.
    Invalid(Ack, String),
    /// Verified, not applied (yet); the success answer it would get.
    NotApplied(NotApplied, Ack),
}

impl Inner {
    /// Verifies, translates and applies a stored callback (a request, or a re-drive).
    pub(crate) async fn process(
        &self,
        provider: Provider,
        raw_seq: u64,
        inbound: &InboundCallback<'_>,
        received_at: Timestamp,
    ) -> Handled {
        let parsed = match self
            .adapters
            .verify_and_parse_callback(provider, inbound, received_at)
        {
            Ok(p) => p,
            Err(e) => {
                self.stats.rejected.fetch_add(1, Relaxed);
                tracing::warn!(%provider, raw_seq, error = %e, "callback rejected; recorded, not applied");
                let detail = e.to_string();
                self.verdict(provider, raw_seq, "rejected", &detail, None)
                    .await;
                return Handled::Invalid(e.ack(), detail);
            }
        };
        self.process_verified(provider, raw_seq, parsed, inbound.body, received_at)
            .await
    }

    /// Applies a verified callback stored at `raw_seq`.
    pub(crate) async fn process_verified(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: paystate_adapters::callback::ParsedCallback,
        body: &[u8],
        received_at: Timestamp,
    ) -> Handled {
        match self
            .apply(provider, raw_seq, &parsed, received_at, body)
            .await
        {
            Ok(applied) => Handled::Done(applied, parsed.ack),
            Err(n) => {
                if let NotApplied::Later(_, reason) = &n {
                    self.verdict(provider, raw_seq, "not_applied", reason, None)
                        .await;
                }
                Handled::NotApplied(n, parsed.ack)
            }
        }
    }
}

impl Inner {
    /// Stores a callback's raw record; with `ttl` (a `Nats-TTL` value) it expires.
    async fn store_raw(
        &self,
        provider: Provider,
        inbound: &InboundCallback<'_>,
        at: Timestamp,
        ttl: Option<&str>,
    ) -> Result<u64, String> {
        let bytes = raw_record(provider, inbound, at)?;
        self.store(format!("{CALLBACKS_PREFIX}.{provider}.raw"), bytes, ttl)
            .await
    }

    async fn store(
        &self,
        subject: String,
        bytes: Vec<u8>,
        ttl: Option<&str>,
    ) -> Result<u64, String> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(ttl) = ttl {
            headers.insert("Nats-TTL", ttl);
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
    }

    /// Records a callback refused before it was stored (bad signature or body): its raw
    /// record and a `rejected` verdict, kept for [`crate::limits::REFUSED_EVIDENCE_TTL`], if
    /// the route's evidence budget holds them; else only counted and logged.
    async fn refused(
        &self,
        provider: Provider,
        inbound: &InboundCallback<'_>,
        at: Timestamp,
        detail: &str,
    ) {
        self.stats.rejected.fetch_add(1, Relaxed);
        let raw = raw_record(provider, inbound, at);
        let verdict_bytes = verdict_record(0, "rejected", detail, None).len();
        let wanted = raw.as_ref().map_or(0, Vec::len) + verdict_bytes;
        let (Ok(raw), true) = (
            raw,
            self.refused_budget
                .take(provider, wanted, std::time::Instant::now()),
        ) else {
            self.stats.refused_unrecorded.fetch_add(1, Relaxed);
            metrics::counter!(paystate_events::metric_names::CALLBACKS_TOTAL, "provider" => provider.as_str(), "verdict" => "rejected_unrecorded").increment(1);
            if let Some(not_logged) = paystate_service::telemetry::bad_input_warning() {
                tracing::warn!(%provider, %detail, earlier_not_logged = not_logged, "callback refused past the evidence budget; counted, not stored");
            }
            return;
        };
        let ttl = refused::ttl_header();
        let subject = format!("{CALLBACKS_PREFIX}.{provider}.raw");
        match self.store(subject, raw, Some(&ttl)).await {
            Ok(raw_seq) => {
                tracing::warn!(%provider, raw_seq, %detail, "callback rejected; recorded, not applied");
                self.verdict_with_ttl(provider, raw_seq, "rejected", detail, None, Some(&ttl))
                    .await;
            }
            Err(e) => {
                tracing::warn!(%provider, %detail, error = %e, "callback rejected; its evidence could not be stored");
            }
        }
    }

    async fn verdict(
        &self,
        provider: Provider,
        raw_seq: u64,
        verdict: &str,
        detail: &str,
        order: Option<&OrderId>,
    ) {
        // `verdict` is one of a few literal words here: a bounded label.
        metrics::counter!(paystate_events::metric_names::CALLBACKS_TOTAL, "provider" => provider.as_str(), "verdict" => verdict.to_string()).increment(1);
        tracing::Span::current().record("raw_seq", raw_seq);
        if let Some(o) = order {
            tracing::Span::current().record("order_id", o.as_str());
        }
        tracing::info!(verdict, "callback verdict");
        self.verdict_with_ttl(provider, raw_seq, verdict, detail, order, None)
            .await;
    }

    /// Stores a verdict record (expiring with `ttl`, a `Nats-TTL` value).
    async fn verdict_with_ttl(
        &self,
        provider: Provider,
        raw_seq: u64,
        verdict: &str,
        detail: &str,
        order: Option<&OrderId>,
        ttl: Option<&str>,
    ) {
        let bytes = verdict_record(raw_seq, verdict, detail, order);
        let subject = format!("{CALLBACKS_PREFIX}.{provider}.verdict");
        if let Err(e) = self.store(subject, bytes, ttl).await {
            tracing::warn!(raw_seq, error = %e, "verdict not stored");
        }
    }
}

/// A callback's raw record: provider, time, headers (credentials redacted), query, body.
fn raw_record(
    provider: Provider,
    inbound: &InboundCallback<'_>,
    at: Timestamp,
) -> Result<Vec<u8>, String> {
    let record = serde_json::json!({
        "provider": provider,
        "received_at": at,
        "headers": inbound.headers.iter().map(|(k, v)| [k.clone(), redact(k, v)]).collect::<Vec<_>>(),
        "query": inbound.query,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(inbound.body),
    });
    serde_json::to_vec(&record).map_err(|e| e.to_string())
}

fn verdict_record(raw_seq: u64, verdict: &str, detail: &str, order: Option<&OrderId>) -> Vec<u8> {
    let record = serde_json::json!({"raw_seq": raw_seq, "verdict": verdict, "detail": detail, "order_id": order});
    serde_json::to_vec(&record).unwrap_or_default()
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
pub(crate) fn redact(name: &str, value: &str) -> String {
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
