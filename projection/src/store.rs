//! Reading the projection: resolve the pointer, get one order, scan them all, measure lag.

use crate::layout::{order_key, Generation, ORDER_KEY_PREFIX, POINTER_BUCKET, POINTER_KEY};
use crate::record::ProjectedOrder;
use crate::ProjectionError;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::jetstream::{self, stream::StorageType};
use paystate_events::OrderId;
use paystate_journal::pull::{scan_consumer, PullSize, Puller, PULL_BYTES_MAX};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait for the next record while scanning a bucket.
const SCAN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Records asked for per pull request of a scan (and at most [`PULL_BYTES_MAX`] bytes: a
/// record may be up to `STATE_VIEW_BYTES_MAX`, so a batch unbounded in bytes could hold
/// hundreds of megabytes).
const SCAN_BATCH: usize = 500;
/// Header the KV layer puts on deletes and purges.
const KV_OPERATION_HEADER: &str = "KV-Operation";
/// Values the pointer bucket keeps per key: what lets a reader look past a planted value to
/// the generation paystate wrote before it.
const POINTER_HISTORY: i64 = 5;
/// Most values of the pointer key read while looking past a planted one (the bucket keeps
/// [`POINTER_HISTORY`]; one made by hand may keep more, and then the look gives up rather
/// than stop at an older generation).
const POINTER_HISTORY_READ_MAX: usize = 64;
const _: () = assert!(POINTER_HISTORY as usize <= POINTER_HISTORY_READ_MAX);
/// At most one warning per kind of planted value in this long: readers meet one on every
/// query until it is taken over.
const JUNK_WARN_EVERY: Duration = Duration::from_secs(60);

/// What the pointer key holds. Anyone who may publish can have the broker store its answer
/// there (docs/security.md, Known limits): a value that does not decode is not paystate's
/// and is read as if it had never been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pointer {
    /// Never set (`revision` 0) or deleted (the delete marker's revision).
    Unset { revision: u64 },
    /// A generation paystate wrote.
    Set {
        generation: Generation,
        revision: u64,
    },
    /// A value paystate did not write, at `revision`; `before`: the last generation paystate
    /// wrote before it, from the key's history (`None`: none left, or deleted before it).
    Junk {
        revision: u64,
        before: Option<Generation>,
    },
}

impl Pointer {
    /// The generation readers follow: the one set, or the one written before a planted value.
    pub fn generation(&self) -> Option<&Generation> {
        match self {
            Pointer::Set { generation, .. } => Some(generation),
            Pointer::Junk { before, .. } => before.as_ref(),
            Pointer::Unset { .. } => None,
        }
    }

    /// The key's revision: what a compare-and-set of the pointer expects (0: no key).
    pub fn revision(&self) -> u64 {
        match self {
            Pointer::Unset { revision }
            | Pointer::Set { revision, .. }
            | Pointer::Junk { revision, .. } => *revision,
        }
    }
}

/// Handle on the projection (pointer bucket plus the generation buckets). Cheap to clone.
#[derive(Clone)]
pub struct ProjectionStore {
    js: jetstream::Context,
    pointer: kv::Store,
    /// Stream replicas for buckets this handle creates.
    pub replicas: usize,
    /// The log stream the projection folds.
    pub events_stream: String,
}

/// How far the live generation is behind the log (`GET /projection`, `paystate project
/// status --json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ProjectionStatus {
    pub generation: Generation,
    /// Log sequences delivered to the projector and not yet acknowledged, plus those not yet
    /// delivered: the events behind the log.
    pub lag: u64,
    /// Every log sequence at or below this one is applied.
    pub applied_seq: u64,
    /// The log's last sequence.
    pub log_last_seq: u64,
    /// Order records in the bucket.
    pub orders: u64,
}

impl ProjectionStore {
    /// Opens (creating if needed) the pointer bucket.
    pub async fn open(
        js: jetstream::Context,
        events_stream: &str,
        replicas: usize,
    ) -> Result<ProjectionStore, ProjectionError> {
        let pointer = match js.get_key_value(POINTER_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: POINTER_BUCKET.to_string(),
                    history: POINTER_HISTORY,
                    storage: StorageType::File,
                    num_replicas: replicas,
                    description: "paystate: which generation of each projection is live".into(),
                    ..Default::default()
                })
                .await
                .map_err(broker)?,
        };
        Ok(ProjectionStore {
            js,
            pointer,
            replicas,
            events_stream: events_stream.to_string(),
        })
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// The live generation and the pointer's revision (for a compare-and-set swap). A value
    /// paystate did not write is looked past: the generation is the one written before it,
    /// the revision the planted value's (so a swap takes the key over); `None` when no
    /// generation is left to follow.
    pub async fn current(&self) -> Result<Option<(Generation, u64)>, ProjectionError> {
        let pointer = self.pointer().await?;
        Ok(pointer
            .generation()
            .cloned()
            .map(|g| (g, pointer.revision())))
    }

    /// What the pointer key holds (see [`Pointer`]).
    pub async fn pointer(&self) -> Result<Pointer, ProjectionError> {
        let entry = match self.pointer.entry(POINTER_KEY).await.map_err(broker)? {
            Some(e) if e.operation == Operation::Put => e,
            Some(e) => {
                return Ok(Pointer::Unset {
                    revision: e.revision,
                })
            }
            None => return Ok(Pointer::Unset { revision: 0 }),
        };
        if let Ok(generation) = serde_json::from_slice::<Generation>(&entry.value) {
            return Ok(Pointer::Set {
                generation,
                revision: entry.revision,
            });
        }
        let before = self.written_before(entry.revision).await?;
        if POINTER_JUNK_WARN.allow() {
            tracing::warn!(
                revision = entry.revision,
                following = ?before.as_ref().map(|g| g.generation),
                "the projection pointer holds a value paystate did not write (a broker's answer \
                 planted there?); read past it until a projector takes the key over"
            );
        }
        Ok(Pointer::Junk {
            revision: entry.revision,
            before,
        })
    }

    /// The last generation paystate wrote at the pointer before `revision`: the key's values
    /// read oldest first. `None` when a delete came after it, none is left, or the history is
    /// longer than [`POINTER_HISTORY_READ_MAX`].
    async fn written_before(&self, revision: u64) -> Result<Option<Generation>, ProjectionError> {
        let subject = format!("{}{POINTER_KEY}", self.pointer.prefix);
        let mut last = None;
        let mut from = 1;
        for _ in 0..POINTER_HISTORY_READ_MAX {
            let sent = self
                .pointer
                .stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await;
            let msg = match sent {
                Ok(msg) => msg,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(last),
                Err(e) => return Err(broker(e)),
            };
            if msg.sequence >= revision {
                return Ok(last);
            }
            let deleted = msg
                .headers
                .get(KV_OPERATION_HEADER)
                .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE");
            match serde_json::from_slice::<Generation>(&msg.payload) {
                _ if deleted => last = None,
                Ok(g) => last = Some(g),
                Err(_) => {} // another planted value: still the one before it
            }
            from = msg.sequence + 1;
        }
        Ok(None)
    }

    /// The live generation, or [`ProjectionError::NoProjection`].
    pub async fn live(&self) -> Result<Generation, ProjectionError> {
        self.current()
            .await?
            .map(|(g, _)| g)
            .ok_or(ProjectionError::NoProjection)
    }

    /// Points readers at `next` if the pointer is still at `expected_revision` (0: unset).
    pub async fn set_pointer(
        &self,
        next: &Generation,
        expected_revision: u64,
    ) -> Result<u64, ProjectionError> {
        let bytes = serde_json::to_vec(next).map_err(|e| ProjectionError::Broker(e.to_string()))?;
        let result = if expected_revision == 0 {
            self.pointer
                .create(POINTER_KEY, bytes.into())
                .await
                .map_err(|e| e.to_string())
        } else {
            self.pointer
                .update(POINTER_KEY, bytes.into(), expected_revision)
                .await
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(rev) => Ok(rev),
            Err(_) => {
                let now = self.current().await?.map_or(0, |(g, _)| g.generation);
                Err(ProjectionError::SwapRace(now))
            }
        }
    }

    /// The bucket of a generation.
    pub async fn bucket(&self, generation: &Generation) -> Result<kv::Store, ProjectionError> {
        self.js
            .get_key_value(&generation.bucket)
            .await
            .map_err(broker)
    }

    /// One order's record from the live generation (`None`: the projection has no such order,
    /// or its key holds a value paystate did not write).
    pub async fn get(&self, order: &OrderId) -> Result<Option<ProjectedOrder>, ProjectionError> {
        let generation = self.live().await?;
        get_record(&self.bucket(&generation).await?, order)
            .await
            .map(|(record, _)| record)
    }

    /// Calls `visit` with every order record of `generation`'s bucket (latest values), in key
    /// order of the bucket's stream. Stops early when `visit` returns false. Returns the number
    /// of records visited. A value paystate did not write (a broker's answer planted at a
    /// key) is skipped, counted and warned about (at most once a minute).
    pub async fn scan<F>(
        &self,
        generation: &Generation,
        mut visit: F,
    ) -> Result<u64, ProjectionError>
    where
        F: FnMut(ProjectedOrder) -> bool,
    {
        let bucket = self.bucket(generation).await?;
        // An ephemeral consumer without acks, read through the reader-counted puller
        // (decision 0014: async-nats's ordered consumer can stall a read).
        let config = scan_consumer(
            format!("{}{ORDER_KEY_PREFIX}>", bucket.prefix),
            DeliverPolicy::LastPerSubject,
            "paystate: projection scan",
        );
        let mut consumer = bucket
            .stream
            .create_consumer(config)
            .await
            .map_err(broker)?;
        let info = consumer.info().await.map_err(broker)?;
        if info.num_pending == 0 {
            return Ok(0);
        }
        let size = PullSize {
            batch: SCAN_BATCH,
            bytes: Some(PULL_BYTES_MAX),
        };
        let mut puller = Puller::start(&self.js, info, size).await.map_err(broker)?;
        let mut visited = 0;
        let mut junk = Junk::default();
        let mut consumer_seq = 0;
        let visited = loop {
            let msg = puller
                .next(SCAN_IDLE_TIMEOUT)
                .await
                .map_err(|e| ProjectionError::Broker(format!("projection scan stalled: {e}")))?;
            let (seq, pending) = msg
                .info()
                .map(|i| (i.consumer_sequence, i.pending))
                .unwrap_or((0, 0));
            if seq != consumer_seq + 1 {
                return Err(ProjectionError::Broker(format!(
                    "projection scan lost a message on the way (consumer sequence {seq} after \
                     {consumer_seq}); try again"
                )));
            }
            consumer_seq = seq;
            if !is_delete(&msg.message) {
                match decode(&msg.subject, &msg.payload) {
                    Ok(record) => {
                        visited += 1;
                        if !visit(record) {
                            break visited;
                        }
                    }
                    Err(e) => junk.note(&msg.subject, e),
                }
            }
            if pending == 0 {
                break visited;
            }
        };
        junk.warn(&generation.bucket);
        Ok(visited)
    }

    /// The live generation's lag behind the log.
    pub async fn status(&self) -> Result<ProjectionStatus, ProjectionError> {
        let generation = self.live().await?;
        let stream = self
            .js
            .get_stream(&self.events_stream)
            .await
            .map_err(broker)?;
        let log_last_seq = stream.get_info().await.map_err(broker)?.state.last_sequence;
        let (lag, applied_seq) = match stream.consumer_info(&generation.consumer).await {
            Ok(info) => (
                info.num_pending + info.num_ack_pending as u64,
                info.ack_floor.stream_sequence,
            ),
            Err(_) => (
                log_last_seq.saturating_sub(generation.start_seq.saturating_sub(1)),
                generation.start_seq.saturating_sub(1),
            ),
        };
        let mut bucket = self.bucket(&generation).await?;
        let orders = bucket
            .stream
            .info()
            .await
            .map_err(broker)?
            .state
            .subjects_count;
        Ok(ProjectionStatus {
            generation,
            lag,
            applied_seq,
            log_last_seq,
            orders,
        })
    }
}

/// An order's record and the KV revision a compare-and-set write of it expects (0: no key,
/// or a deleted one: a create). A value paystate did not write reads as no record, with its
/// revision, so that the next write takes the key over (warned about, at most once a minute).
pub async fn get_record(
    bucket: &kv::Store,
    order: &OrderId,
) -> Result<(Option<ProjectedOrder>, u64), ProjectionError> {
    match bucket.entry(order_key(order)).await.map_err(broker)? {
        Some(e) if e.operation == Operation::Put => match decode(&e.key, &e.value) {
            Ok(record) => Ok((Some(record), e.revision)),
            Err(err) => {
                if RECORD_JUNK_WARN.allow() {
                    tracing::warn!(
                        key = %e.key,
                        revision = e.revision,
                        error = %err,
                        "an order record holds a value paystate did not write; read as no \
                         record until it is written over"
                    );
                }
                Ok((None, e.revision))
            }
        },
        _ => Ok((None, 0)),
    }
}

/// Values a scan skipped because paystate did not write them.
#[derive(Default)]
struct Junk {
    count: u64,
    first: Option<(String, String)>,
}

impl Junk {
    fn note(&mut self, key: &str, error: ProjectionError) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((key.to_string(), error.to_string()));
        }
    }

    fn warn(&self, bucket: &str) {
        let Some((key, error)) = &self.first else {
            return;
        };
        if RECORD_JUNK_WARN.allow() {
            tracing::warn!(
                bucket,
                skipped = self.count,
                first_key = %key,
                %error,
                "projection scan skipped values paystate did not write"
            );
        }
    }
}

/// One warning per [`JUNK_WARN_EVERY`] (a planted value is met on every read of it).
struct WarnEvery(Mutex<Option<Instant>>);

impl WarnEvery {
    const fn new() -> WarnEvery {
        WarnEvery(Mutex::new(None))
    }

    /// Whether to warn now (and then not again for a while).
    fn allow(&self) -> bool {
        // Why: a poisoned lock only means another thread panicked while holding an `Instant`.
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < JUNK_WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Warnings about a planted pointer value.
static POINTER_JUNK_WARN: WarnEvery = WarnEvery::new();
/// Warnings about planted order records.
static RECORD_JUNK_WARN: WarnEvery = WarnEvery::new();

fn decode(key: &str, bytes: &[u8]) -> Result<ProjectedOrder, ProjectionError> {
    serde_json::from_slice(bytes).map_err(|e| ProjectionError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn is_delete(msg: &async_nats::Message) -> bool {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(KV_OPERATION_HEADER))
        .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE")
}

pub(crate) fn broker(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Broker(e.to_string())
}
