//! `POST /callbacks/{provider}`: provider callbacks in.
//!
//! 1. The raw request (headers with credentials redacted, query, body, receive time) is
//!    stored in the `PAYSTATE_CALLBACKS` stream before anything else, so nothing is lost if
//!    paystate stops right after answering.
//! 2. The adapter verifies the signature or token (constant time) and translates the body.
//!    A bad or missing signature gets 4xx and a `rejected` verdict; it is never applied.
//! 3. The order is found from what the provider signed (our id, or its reference through the
//!    refs index). An unsigned routing hint (our `?order_id=` on the exchanger's `ipnUrl`) is
//!    only cross-checked: if it contradicts the signed reference, nothing is applied and the
//!    callback gets 409 and a `rejected` verdict. A callback whose body nobody signed (Plexy)
//!    is a trigger: the order's status is asked of the provider and that answer is applied,
//!    de-duplicated by what it says.
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
use paystate_events::subjects::EVENTS_STREAM;
use paystate_events::{
    Command, CommandEnvelope, CommandId, OrderId, OrderState, Provider, ProviderSignal, Timestamp,
};
use paystate_journal::Journal;
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
    /// The log, opened on first use: orders are read to cross-check routing hints and to
    /// confirm unsigned callbacks.
    journal: tokio::sync::OnceCell<Journal>,
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
                journal: tokio::sync::OnceCell::new(),
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
        Err(NotApplied::Later(status, reason)) => {
            inner
                .verdict(provider, raw_seq, "not_applied", &reason, None)
                .await;
            (status, reason).into_response()
        }
        Err(NotApplied::Refused { detail, answer }) => {
            inner.stats.rejected.fetch_add(1, Relaxed);
            tracing::warn!(%provider, raw_seq, %detail, "callback refused; recorded, not applied");
            inner
                .verdict(provider, raw_seq, "rejected", &detail, None)
                .await;
            (StatusCode::CONFLICT, answer).into_response()
        }
    }
}

/// Why a verified callback was not applied.
enum NotApplied {
    /// Not now (order not known yet, broker or provider unavailable): the provider retries.
    Later(StatusCode, String),
    /// Never: what routed it contradicts what the provider signed. Recorded as a `rejected`
    /// verdict with `detail`; the sender gets only `answer` (no order ids or references).
    Refused {
        detail: String,
        answer: &'static str,
    },
}

impl From<(StatusCode, String)> for NotApplied {
    fn from((status, reason): (StatusCode, String)) -> NotApplied {
        NotApplied::Later(status, reason)
    }
}

/// Where a callback goes, and whether its signed reference may be indexed for it.
struct Route {
    order: OrderId,
    /// The signed reference is not in the refs index yet and was checked against this order.
    index_ref: bool,
}

/// The answer to a callback whose routing hint contradicts its signed reference.
const REFUSED_ANSWER: &str = "not applied: the order named does not match the signed reference";

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

    /// Routes the signals to their order and publishes them, once per dedup key. A callback
    /// whose body is not signed (`confirm_by_status`) is confirmed by a status query first.
    async fn apply(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: &ParsedCallback,
        at: Timestamp,
        body: &[u8],
    ) -> Result<(), NotApplied> {
        if parsed.confirm_by_status {
            return self.confirm_and_apply(provider, raw_seq, parsed, at).await;
        }
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
        let route = self.route(provider, parsed).await?;
        let order = route.order;
        let dedup = dedup_hash(provider, &order, parsed.dedup_key.as_deref(), body);
        let signals = Outgoing {
            provider_ref: parsed.hint.provider_ref.clone(),
            evidence_ref: format!("callbacks:{raw_seq}"),
            observed_at: parsed.observed_at.unwrap_or(at),
            kinds: &parsed.signals,
        };
        let n = self
            .publish_once(provider, raw_seq, &order, &dedup, &signals, at)
            .await?;
        if let (true, Some(r)) = (route.index_ref, &parsed.hint.provider_ref) {
            let _ = self.refs.remember(provider, r, &order).await;
        }
        if let Some(n) = n {
            self.verdict(
                provider,
                raw_seq,
                "applied",
                &format!("{n} signal(s)"),
                Some(&order),
            )
            .await;
        }
        Ok(())
    }

    /// Publishes `signals` once per `dedup` (the seen bucket, then the engine's command ids).
    /// `None` when it was a duplicate (its verdict is written here).
    async fn publish_once(
        &self,
        provider: Provider,
        raw_seq: u64,
        order: &OrderId,
        dedup: &str,
        signals: &Outgoing<'_>,
        at: Timestamp,
    ) -> Result<Option<usize>, NotApplied> {
        let seen_key = format!("{provider}.{dedup}");
        if let Ok(Some(_)) = self.seen.get(&seen_key).await {
            self.stats.duplicates.fetch_add(1, Relaxed);
            self.verdict(provider, raw_seq, "duplicate", "already applied", None)
                .await;
            return Ok(None);
        }
        let commands = commands(order, provider, signals, dedup, at);
        for c in &commands {
            self.client.publish(c).await.map_err(|e| {
                NotApplied::Later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("could not submit: {e}"),
                )
            })?;
        }
        if let Err(e) = self
            .seen
            .put(&seen_key, raw_seq.to_string().into_bytes().into())
            .await
        {
            tracing::warn!(raw_seq, error = %e, "dedup key not stored; a resend would be re-submitted (and applied once by the engine)");
        }
        self.stats.applied.fetch_add(1, Relaxed);
        Ok(Some(commands.len()))
    }

    /// A callback whose body nobody signed (Plexy): it names an order (a routing hint only),
    /// and the provider's own answer to a status query for that order, asked of the
    /// configured host, is what is applied. The dedup key is what the answer says, so an
    /// altered body cannot use up the key of the genuine report that follows it: both
    /// trigger the same query, and the same answer is applied once.
    async fn confirm_and_apply(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: &ParsedCallback,
        at: Timestamp,
    ) -> Result<(), NotApplied> {
        let unknown = || {
            NotApplied::Later(
                StatusCode::SERVICE_UNAVAILABLE,
                "order not known (yet); retry later".to_string(),
            )
        };
        let order = match (&parsed.hint.order_id, &parsed.hint.unsigned_order_id) {
            (Some(o), _) | (None, Some(o)) => o.clone(),
            (None, None) => self.route(provider, parsed).await?.order,
        };
        let state = self.load(&order).await?.ok_or_else(unknown)?;
        if state.provider != provider {
            return Err(NotApplied::Refused {
                detail: format!(
                    "names order {order}, which is not a {provider} order; nothing applied"
                ),
                answer: REFUSED_ANSWER,
            });
        }
        let reported = self.adapters.status(&state).await.map_err(|e| {
            tracing::warn!(%provider, %order, raw_seq, error = %e, "could not confirm a callback by a status query");
            NotApplied::Later(
                StatusCode::SERVICE_UNAVAILABLE,
                // The detail stays in the log: the answer goes to whoever sent the webhook.
                "not confirmed: the status query to the provider failed; retry later".to_string(),
            )
        })?;
        let claimed: Vec<&str> = parsed.signals.iter().map(|k| k.name()).collect();
        let confirmed: Vec<&str> = reported.signals.iter().map(|k| k.name()).collect();
        if reported.signals.is_empty() {
            self.verdict(
                provider,
                raw_seq,
                "no_signal",
                "the status query reports no state",
                Some(&order),
            )
            .await;
            return Ok(());
        }
        // The answer is the report: the same answer is the same report, whichever webhook
        // asked for it.
        let answer = serde_json::json!({
            "provider_ref": reported.provider_ref,
            "signals": reported.signals,
        });
        let answer_bytes = serde_json::to_vec(&answer).unwrap_or_default();
        let dedup = dedup_hash(provider, &order, None, &answer_bytes);
        let signals = Outgoing {
            provider_ref: reported.provider_ref.clone(),
            evidence_ref: format!("callbacks:{raw_seq}+call:{}", reported.call_ref),
            observed_at: at,
            kinds: &reported.signals,
        };
        let detail = format!(
            "webhook claimed [{}]; the status query reports [{}]",
            claimed.join(", "),
            confirmed.join(", ")
        );
        if let Some(n) = self
            .publish_once(provider, raw_seq, &order, &dedup, &signals, at)
            .await?
        {
            self.verdict(
                provider,
                raw_seq,
                "applied",
                &format!("confirmed by status query: {n} signal(s); {detail}"),
                Some(&order),
            )
            .await;
        }
        Ok(())
    }

    /// The order a callback is about. What the provider signed decides: our order id if it
    /// signs one, else its reference through the refs index. An unsigned routing hint (our
    /// `?order_id=` marker) is only cross-checked: when the signed reference belongs to
    /// another order, or the named order knows another reference, nothing is applied.
    async fn route(
        &self,
        provider: Provider,
        parsed: &ParsedCallback,
    ) -> Result<Route, NotApplied> {
        let unknown = || {
            NotApplied::Later(
                StatusCode::SERVICE_UNAVAILABLE,
                "order not known (yet); retry later".to_string(),
            )
        };
        let hint = &parsed.hint;
        let indexed = match &hint.provider_ref {
            Some(r) => self.refs.lookup(provider, r).await.map_err(|e| {
                NotApplied::Later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("refs lookup failed: {e}"),
                )
            })?,
            None => None,
        };
        let refused = |detail: String| NotApplied::Refused {
            detail,
            answer: REFUSED_ANSWER,
        };
        if let Some(o) = &hint.order_id {
            // Both signed: if they disagree, the engine records the contradiction.
            return Ok(Route {
                order: o.clone(),
                index_ref: indexed.is_none(),
            });
        }
        let reference = hint.provider_ref.as_deref();
        match (indexed, &hint.unsigned_order_id, reference) {
            (Some(found), Some(named), Some(r)) if found != *named => Err(refused(format!(
                "routing hint names order {named}, but the signed reference {r:?} belongs to order {found}; nothing applied"
            ))),
            (Some(found), _, _) => Ok(Route {
                order: found,
                index_ref: false,
            }),
            (None, Some(named), Some(r)) => {
                let state = self.load(named).await?.ok_or_else(unknown)?;
                match state.provider_ref.as_deref() {
                    _ if state.provider != provider => Err(refused(format!(
                        "routing hint names order {named}, which is not a {provider} order; nothing applied"
                    ))),
                    Some(known) if known == r => Ok(Route {
                        order: named.clone(),
                        index_ref: true,
                    }),
                    Some(known) => Err(refused(format!(
                        "routing hint names order {named}, whose reference is {known:?}, not the signed {r:?}; nothing applied"
                    ))),
                    // Nothing to check the hint against yet (the start is not recorded).
                    None => Err(unknown()),
                }
            }
            (None, Some(named), None) => Err(refused(format!(
                "routing hint names order {named}, but nothing signed names an order or a reference; nothing applied"
            ))),
            (None, None, _) => Err(unknown()),
        }
    }

    /// The order's state from the log (`None` if it does not exist).
    async fn load(&self, order: &OrderId) -> Result<Option<OrderState>, NotApplied> {
        let unavailable = |e: String| {
            NotApplied::Later(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("log unavailable: {e}"),
            )
        };
        let journal = self
            .journal
            .get_or_try_init(|| async {
                Journal::existing(self.js.clone(), EVENTS_STREAM)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| unavailable(e.clone()))?;
        journal
            .load(order)
            .await
            .map(|l| l.state)
            .map_err(|e| unavailable(e.to_string()))
    }
}

/// The signals of one report, with what every one of them carries.
struct Outgoing<'a> {
    provider_ref: Option<String>,
    evidence_ref: String,
    observed_at: Timestamp,
    kinds: &'a [paystate_events::SignalKind],
}

/// One `provider_signal` command per signal; ids are derived from the dedup key, so a resend
/// that slips past the seen-bucket gets the same ids and is applied once by the engine.
fn commands(
    order: &OrderId,
    provider: Provider,
    signals: &Outgoing<'_>,
    dedup: &str,
    at: Timestamp,
) -> Vec<CommandEnvelope> {
    signals
        .kinds
        .iter()
        .enumerate()
        .filter_map(|(i, kind)| {
            let command_id = CommandId::parse(format!("cb.{provider}.{dedup}.{i}")).ok()?;
            let signal = ProviderSignal {
                provider,
                provider_ref: signals.provider_ref.clone(),
                evidence_ref: signals.evidence_ref.clone(),
                observed_at: signals.observed_at,
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
