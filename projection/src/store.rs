//! Reading the projection: resolve the pointer, get one order, scan them all, measure lag.

use crate::layout::{order_key, Generation, ORDER_KEY_PREFIX, POINTER_BUCKET, POINTER_KEY};
use crate::record::ProjectedOrder;
use crate::ProjectionError;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream::StorageType};
use paystate_events::OrderId;
use paystate_journal::pull::{scan_consumer, PullSize, Puller, PULL_BYTES_MAX};
use std::time::Duration;

/// Longest wait for the next record while scanning a bucket.
const SCAN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Records asked for per pull request of a scan (and at most [`PULL_BYTES_MAX`] bytes: a
/// record may be up to `STATE_VIEW_BYTES_MAX`, so a batch unbounded in bytes could hold
/// hundreds of megabytes).
const SCAN_BATCH: usize = 500;
/// Header the KV layer puts on deletes and purges.
const KV_OPERATION_HEADER: &str = "KV-Operation";

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
                    history: 5,
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

    /// The live generation and the pointer's revision (for a compare-and-set swap).
    pub async fn current(&self) -> Result<Option<(Generation, u64)>, ProjectionError> {
        match self.pointer.entry(POINTER_KEY).await.map_err(broker)? {
            Some(e) if e.operation == Operation::Put => {
                let generation =
                    serde_json::from_slice(&e.value).map_err(|err| ProjectionError::Corrupt {
                        key: POINTER_KEY.into(),
                        detail: err.to_string(),
                    })?;
                Ok(Some((generation, e.revision)))
            }
            _ => Ok(None),
        }
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

    /// One order's record from the live generation (`None`: the projection has no such order).
    pub async fn get(&self, order: &OrderId) -> Result<Option<ProjectedOrder>, ProjectionError> {
        let generation = self.live().await?;
        get_record(&self.bucket(&generation).await?, order)
            .await
            .map(|e| e.map(|(r, _)| r))
    }

    /// Calls `visit` with every order record of `generation`'s bucket (latest values), in key
    /// order of the bucket's stream. Stops early when `visit` returns false. Returns the number
    /// of records visited.
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
        let mut consumer_seq = 0;
        loop {
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
                let record = decode(&msg.subject, &msg.payload)?;
                visited += 1;
                if !visit(record) {
                    return Ok(visited);
                }
            }
            if pending == 0 {
                return Ok(visited);
            }
        }
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

/// An order's record and its KV revision.
pub async fn get_record(
    bucket: &kv::Store,
    order: &OrderId,
) -> Result<Option<(ProjectedOrder, u64)>, ProjectionError> {
    match bucket.entry(order_key(order)).await.map_err(broker)? {
        Some(e) if e.operation == Operation::Put => {
            Ok(Some((decode(&e.key, &e.value)?, e.revision)))
        }
        _ => Ok(None),
    }
}

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
