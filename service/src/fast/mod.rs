//! The fast path (decision 0013): commands as core NATS requests to the `paystate` service.
//!
//! ```text
//! client ──request paystate.rpc.<plane>.<partition>.<order>──▶ endpoint p<partition>
//!        (queue group shared by every instance; only the partition's owner subscribes)
//!          │ reply subject checked, subject parsed (400 if wrong)
//!          ▼
//!        partition task of the order (the same one queued commands of the order go to)
//!          │ parse as if on paystate.<plane>.<order>, decide, append (OCC)
//!          ▼
//!        reply: the outcome JSON, or a 503 service error (nothing committed: retry)
//! ```
//!
//! - [`members`]: live instances from heartbeats in `paystate_engines` ([`paystate_events::subjects::ENGINES_BUCKET`]), and which partitions
//!   this instance owns (rendezvous hashing).
//! - [`endpoints`]: the registered service and its endpoints, one per owned partition,
//!   re-registered when ownership changes.
//!
//! An instance that cannot heartbeat (NATS unreachable) keeps serving the partitions it has:
//! when it is cut off nobody can reach it anyway, and while the others already took its
//! partitions over, the optimistic-concurrency check on every append keeps two servers of one
//! order correct (one of them only pays a conflict and a retry).

pub mod discovery;
pub mod endpoints;
pub mod forward;
pub mod members;

use crate::config::COMMAND_BYTES_MAX;
use crate::intake::Work;
use crate::order_queues::OrderQueues;
use crate::processor::{Disposition, Processor, Stats};
use async_nats::service::{error::Error as ServiceError, Request};
use paystate_events::limits::{MSG_HEADERS_BYTES_MAX, NATS_MAX_PAYLOAD_BYTES};
use paystate_events::subjects::{queue_subject_of, Plane};
use paystate_events::Timestamp;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How often an instance writes its heartbeat to [`ENGINES_BUCKET`].
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// An instance whose heartbeat has not been received for this long is gone (receiver's clock).
pub const MEMBER_LEASE: Duration = Duration::from_secs(3);
/// How often membership is re-read and the endpoints brought in line with it.
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(250);
/// Age limit of heartbeat entries in the bucket: stale keys of crashed instances go by
/// themselves (the lease, not this, decides liveness).
pub const ENGINES_BUCKET_MAX_AGE: Duration = Duration::from_secs(30);
/// How long a starting instance waits for the bucket's current members before serving
/// with what it knows (so it does not briefly claim every partition).
pub const MEMBERSHIP_SETTLE_MAX: Duration = Duration::from_secs(2);
/// Fast-path requests one partition task may hold; past it a request is answered 503 at
/// once (the client backs off and retries) instead of queueing without bound.
pub const REQUESTS_HELD_MAX: usize = 4096;
/// Largest fast-path request a partition task holds: a command and its headers. Larger ones
/// are answered at the endpoint and never queued (`endpoints::size_refusal`).
pub const REQUEST_BYTES_MAX: usize = COMMAND_BYTES_MAX + MSG_HEADERS_BYTES_MAX;
/// What the requests one partition task holds take at most (288 MiB).
pub const REQUEST_BYTES_HELD_MAX: usize = REQUESTS_HELD_MAX * REQUEST_BYTES_MAX;

// The endpoint's size check is what bounds a held request: NATS alone lets one be as large
// as its `max_payload`, which would let one partition hold 4 GiB. (And the bound stated above
// stays the bound.)
const _: () = assert!(REQUEST_BYTES_MAX < NATS_MAX_PAYLOAD_BYTES);
const _: () = assert!(REQUEST_BYTES_HELD_MAX <= 288 * 1024 * 1024);

/// Forwarded queued commands whose queued time one instance reads back at once; past it a
/// forward is answered 503 and its sender decides the command itself (as without affinity).
pub const QUEUED_AT_READS_MAX: usize = 256;

/// Service error code: the request cannot be served as sent (wrong partition, bad subject).
pub const CODE_BAD_REQUEST: usize = 400;
/// Service error code: nothing was committed now (broker trouble, conflicts, busy): retry
/// with the same bytes.
pub const CODE_RETRY: usize = 503;
/// Service error code: the outcome could not be encoded (a bug; retrying is safe).
pub const CODE_INTERNAL: usize = 500;

/// A fast-path request on its way to its order's partition task.
pub struct FastRequest {
    pub request: Request,
    pub plane: Plane,
    /// The engine's clock when the request was received: its `decided_at` (a core request
    /// has no broker receive time).
    pub received_at: Timestamp,
}

impl FastRequest {
    /// The order token: the last token of the (already checked) request subject.
    pub fn order(&self) -> &str {
        let subject = self.request.message.subject.as_str();
        subject.rsplit_once('.').map_or(subject, |(_, order)| order)
    }
}

/// Orders whose expiry schedule failed on the fast path that one partition task remembers;
/// past it a failing order is set aside at its first failure (the bound holds regardless).
pub const SCHEDULE_FAILURES_HELD_MAX: usize = 1024;

/// The consumer named in a dead letter the fast path writes (it has no durable consumer).
pub const FAST_PATH_CONSUMER: &str = "paystate-rpc";

/// Counts the fast-path requests a partition task holds, to bound them, and the orders whose
/// expiry schedule could not be stored, to bound their retries.
#[derive(Default)]
pub struct HeldRequests {
    held: usize,
    /// Failed schedule writes per order since its last success (each client retry is one).
    schedule_failures: std::collections::HashMap<String, i64>,
}

impl HeldRequests {
    /// One more failed schedule write for `order`: `Some(failures)` once it is to be set
    /// aside (`bound` reached, or too many orders failing at once to count one more).
    fn schedule_failed(&mut self, order: &str, bound: i64) -> Option<i64> {
        let full = self.schedule_failures.len() >= SCHEDULE_FAILURES_HELD_MAX;
        let failures = match self.schedule_failures.get_mut(order) {
            Some(n) => {
                *n += 1;
                *n
            }
            None if full => return Some(1),
            None => {
                self.schedule_failures.insert(order.to_string(), 1);
                1
            }
        };
        (failures >= bound).then_some(failures)
    }

    /// `order`'s schedule is stored (or set aside): its count starts afresh.
    fn schedule_stored(&mut self, order: &str) {
        if !self.schedule_failures.is_empty() {
            self.schedule_failures.remove(order);
        }
    }
}

impl HeldRequests {
    /// Queues `work` in its order's queue, or answers a request 503 when too many are held.
    pub(crate) async fn take_in(&mut self, queues: &mut OrderQueues<Work>, work: Work) {
        if let Work::Request(req) = &work {
            if self.held >= REQUESTS_HELD_MAX {
                respond_error(&req.request, CODE_RETRY, "engine busy; retry").await;
                return;
            }
            self.held += 1;
        }
        queues.push(work.order().to_string(), work);
    }

    /// A held request was taken out to be answered.
    pub(crate) fn release(&mut self) {
        self.held = self.held.saturating_sub(1);
    }
}

/// One request, start to finish: processed by the same code as a queued command (parsed as
/// if published on its plane's queue subject), answered with the outcome JSON once the log
/// holds it, or with a 503 service error when nothing could be committed now. Never held
/// for an in-process retry: the client retries.
pub(crate) async fn answer(
    processor: &mut Processor,
    client: &async_nats::Client,
    held: &mut HeldRequests,
    req: FastRequest,
) {
    let started = Instant::now();
    let subject = queue_subject_of(req.plane, req.order());
    let (kind, disposition) = crate::intake::process_bytes(
        processor,
        &req.request.message.payload,
        &subject,
        req.received_at,
    )
    .await;
    if crate::intake::expiry_scheduled(processor, client, &disposition).await {
        held.schedule_stored(req.order());
    } else {
        // Committed, but its expiry schedule is not stored: the client's retry is answered
        // from the log as a duplicate, which writes the schedule again. Bounded as on the
        // queue path: past `deliveries_max` failures the command is set aside in the
        // dead-letter stream (its redrive writes the schedule) and its outcome answered.
        crate::telemetry::requeued();
        let set_aside = match held.schedule_failed(req.order(), processor.cfg.deliveries_max) {
            Some(failures) => {
                Box::pin(set_aside(processor, client, &req, &subject, failures)).await
            }
            None => false,
        };
        if !set_aside {
            respond_error(
                &req.request,
                CODE_RETRY,
                "expiry schedule not stored; retry",
            )
            .await;
            return;
        }
        held.schedule_stored(req.order());
    }
    let outcome = match disposition {
        Disposition::Done(outcome) | Disposition::Committed { outcome, .. } => outcome,
        Disposition::RetryLater => {
            crate::telemetry::requeued();
            respond_error(
                &req.request,
                CODE_RETRY,
                "outcome unknown (broker trouble or conflicts): send the same bytes again, a retry is answered from the log",
            )
            .await;
            return;
        }
    };
    match crate::intake::encode(&outcome) {
        Some(bytes) => {
            if let Err(e) = req.request.respond(Ok(bytes)).await {
                tracing::warn!(error = %e, "could not publish the outcome (a retry is answered from the log)");
            }
        }
        None => respond_error(&req.request, CODE_INTERNAL, "outcome not encoded").await,
    }
    crate::telemetry::answered(kind, &outcome, started);
}

/// Writes a request whose expiry schedule keeps failing to the dead-letter stream, as if it
/// had been queued on `subject` (a redrive sends it there); true once it is stored.
async fn set_aside(
    processor: &Processor,
    client: &async_nats::Client,
    req: &FastRequest,
    subject: &str,
    failures: i64,
) -> bool {
    let reason = crate::expiry::not_stored_reason(failures);
    let js = async_nats::jetstream::new(client.clone());
    let out = paystate_journal::dead_letters::Outgoing {
        source: paystate_journal::dead_letters::Source::Engine,
        consumer: FAST_PATH_CONSUMER,
        subject,
        order: None,
        headers: None,
        payload: req.request.message.payload.clone(),
        origin: None,
        deliveries: u64::try_from(failures).unwrap_or(u64::MAX),
        reason: &reason,
    };
    let stored = paystate_journal::dead_letters::send(&js, &out).await;
    crate::intake::counted_aside(processor, subject, &reason, stored)
}

/// Answers a request with a service error (`Nats-Service-Error-Code`, counted in the
/// endpoint's error statistics).
pub(crate) async fn respond_error(request: &Request, code: usize, status: &str) {
    let error = ServiceError {
        status: status.to_string(),
        code,
    };
    if let Err(e) = request.respond(Err(error)).await {
        tracing::warn!(error = %e, code, "could not publish a service error");
    }
}

/// The fast path of one engine instance until shutdown: heartbeats and membership, the
/// service and its endpoints. Requests go to `senders` (the partition tasks).
pub(crate) async fn serve(
    client: async_nats::Client,
    replicas: usize,
    cfg: crate::config::EngineConfig,
    senders: Vec<mpsc::Sender<Work>>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<Stats>,
    ownership: Arc<forward::Ownership>,
) {
    let route = Arc::new(endpoints::Route {
        senders,
        inboxes: cfg.inbox_prefixes.clone(),
        stats,
        js: async_nats::jetstream::new(client.clone()),
        queued_reads: Arc::new(tokio::sync::Semaphore::new(QUEUED_AT_READS_MAX)),
    });
    let instance = members::new_member_id();
    let served = endpoints::Served::new(client.clone(), instance.clone(), route, ownership);
    members::run(client, replicas, instance, served, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_failures_are_set_aside_at_the_bound_and_counted_afresh_after() {
        let mut held = HeldRequests::default();
        assert_eq!(held.schedule_failed("o-1", 3), None);
        assert_eq!(held.schedule_failed("o-1", 3), None);
        assert_eq!(held.schedule_failed("o-2", 3), None, "counted per order");
        assert_eq!(held.schedule_failed("o-1", 3), Some(3));
        held.schedule_stored("o-1");
        assert_eq!(held.schedule_failed("o-1", 3), None, "afresh after success");
    }

    #[test]
    fn with_too_many_orders_failing_a_new_one_is_set_aside_at_once() {
        let mut held = HeldRequests::default();
        for i in 0..SCHEDULE_FAILURES_HELD_MAX {
            assert_eq!(held.schedule_failed(&format!("o-{i}"), 20), None);
        }
        assert_eq!(held.schedule_failed("another", 20), Some(1));
        assert_eq!(
            held.schedule_failures.len(),
            SCHEDULE_FAILURES_HELD_MAX,
            "bounded"
        );
        assert_eq!(
            held.schedule_failed("o-0", 20),
            None,
            "known orders still counted"
        );
    }
}
