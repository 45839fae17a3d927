//! The `paystate` NATS service of one instance: one endpoint per owned partition.
//!
//! Endpoint `p07` subscribes `paystate.rpc.*.7.*` in the queue group shared by every
//! instance. When the owned set changes, a new service registration with the new set starts
//! first and the old one stops after (its subscriptions end once what they hold is passed
//! on), so a partition kept across the change is never without a subscriber, and
//! `nats micro info paystate` lists exactly what each instance serves. Statistics start
//! afresh with each registration (the instance id stays in the metadata).

use super::forward::{queued_at, queued_seq, QueuedAtError};
use super::{respond_error, FastRequest, CODE_BAD_REQUEST, CODE_INTERNAL, CODE_RETRY};
use crate::intake::{bad_command_outcome, bad_command_seen, encode, partition_of_order, Work};
use crate::parse::check_size;
use crate::processor::Stats;
use async_nats::service::{endpoint::Endpoint, Request, Service, ServiceExt};
use futures::StreamExt;
use paystate_events::limits::MSG_HEADERS_BYTES_MAX;
use paystate_events::metric_names::TYPE_UNKNOWN;
use paystate_events::subjects::{
    check_reply_target, parse_rpc_subject, queue_subject_of, Plane, RPC_PREFIX, SERVICE_NAME,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Queue group of every endpoint of every instance: each request reaches one subscriber.
pub const QUEUE_GROUP: &str = SERVICE_NAME;

/// Where requests go: the partition tasks, after the reply subject and the subject are checked.
pub struct Route {
    pub senders: Vec<mpsc::Sender<Work>>,
    pub inboxes: Vec<String>,
    pub stats: Arc<Stats>,
    /// Reads forwarded queued commands back from the command queue (their queued time).
    pub js: async_nats::jetstream::Context,
    /// Queued-time reads in flight, at most [`super::QUEUED_AT_READS_MAX`].
    pub queued_reads: Arc<tokio::sync::Semaphore>,
}

/// The endpoint name of a partition (`p07`).
pub fn endpoint_name(partition: usize) -> String {
    format!("p{partition:02}")
}

/// The endpoint subject of a partition: every plane and order of it.
pub fn endpoint_subject(partition: usize) -> String {
    format!("{RPC_PREFIX}.*.{partition}.*")
}

/// The registered service and what it serves.
pub struct Served {
    client: async_nats::Client,
    instance: String,
    route: Arc<Route>,
    /// What this instance serves, for the queue path's forwarding ([`super::forward`]).
    ownership: Arc<super::forward::Ownership>,
    service: Option<Service>,
    owned: BTreeSet<usize>,
    /// One task per endpoint, passing requests on (never one per request). Dropped with
    /// this value, which aborts them (an aborted engine stops serving at once).
    forwarders: JoinSet<()>,
}

impl Served {
    pub fn new(
        client: async_nats::Client,
        instance: String,
        route: Arc<Route>,
        ownership: Arc<super::forward::Ownership>,
    ) -> Served {
        Served {
            client,
            instance,
            route,
            ownership,
            service: None,
            owned: BTreeSet::new(),
            forwarders: JoinSet::new(),
        }
    }

    /// Serves exactly `want` from now on. On failure the current registration stays and
    /// the next reconcile tries again.
    pub async fn reconcile(&mut self, want: BTreeSet<usize>) {
        while self.forwarders.try_join_next().is_some() {}
        if self.service.is_some() && want == self.owned {
            return;
        }
        // Why ownership covers both sets while they change: from the new registration's
        // first subscription until the old one has stopped, this instance serves both. A
        // queued command of a partition it serves but took for someone else's would be
        // forwarded to itself, find its order busy with that very forward, and wait out the
        // forward's timeout before being decided here.
        let both: BTreeSet<usize> = self.owned.union(&want).copied().collect();
        if self.service.is_some() {
            self.ownership.set(&both);
        }
        let service = match self.register(&want).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "fast-path endpoints not registered; retrying");
                if self.service.is_some() {
                    self.ownership.set(&self.owned);
                }
                return;
            }
        };
        tracing::info!(
            instance = %self.instance,
            partitions = want.len(),
            "fast-path partitions served"
        );
        self.ownership.set(&both);
        self.owned = want;
        if let Some(old) = self.service.replace(service) {
            stop(old).await;
        }
        self.ownership.set(&self.owned);
    }

    /// Stops serving (clean shutdown).
    pub async fn stop(&mut self) {
        self.ownership.forget();
        if let Some(old) = self.service.take() {
            stop(old).await;
        }
        self.owned.clear();
    }

    async fn register(&mut self, want: &BTreeSet<usize>) -> Result<Service, async_nats::Error> {
        let metadata = HashMap::from([
            ("instance".to_string(), self.instance.clone()),
            ("partitions".to_string(), ranges(want)),
        ]);
        let service = self
            .client
            .service_builder()
            .description("paystate commands: request paystate.rpc.<plane>.<partition>.<order_id>")
            .metadata(metadata)
            .queue_group(QUEUE_GROUP)
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await?;
        let mut endpoints = Vec::with_capacity(want.len());
        for &p in want {
            let added = service
                .endpoint_builder()
                .name(endpoint_name(p))
                .add(endpoint_subject(p))
                .await;
            match added {
                Ok(e) => endpoints.push(e),
                Err(e) => {
                    stop(service).await;
                    return Err(e);
                }
            }
        }
        for endpoint in endpoints {
            self.forwarders.spawn(forward(endpoint, self.route.clone()));
        }
        Ok(service)
    }
}

impl Drop for Served {
    /// An aborted engine (what a crash looks like) must not go on answering `$SRV` pings:
    /// the service's own task is stopped too.
    fn drop(&mut self) {
        self.ownership.forget();
        if let Some(service) = self.service.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stop(service));
            }
        }
    }
}

async fn stop(service: Service) {
    if let Err(e) = service.stop().await {
        tracing::warn!(error = %e, "service registration not stopped cleanly");
    }
}

/// `0-3,7,9-10`: the partitions in the service metadata, short enough to read.
fn ranges(set: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(match start == end {
            true => start.to_string(),
            false => format!("{start}-{end}"),
        });
    }
    out.join(",")
}

/// Passes one endpoint's requests on until its subscription ends.
async fn forward(mut endpoint: Endpoint, route: Arc<Route>) {
    while let Some(request) = endpoint.next().await {
        if !route.take(request).await {
            return;
        }
    }
}

impl Route {
    /// Checks a request and sends it to its order's partition task. A reply subject outside
    /// the inbox prefixes gets nothing (the engine publishes only below them); a subject that
    /// is not a fast-path subject of its partition gets a 400; a request too large to hold
    /// is answered at once ([`size_refusal`]). False once the partition tasks are gone
    /// (shutdown).
    async fn take(&self, request: Request) -> bool {
        let received_at = chrono::Utc::now();
        let message = &request.message;
        let reply_ok = match message.reply.as_deref() {
            Some(reply) => check_reply_target(reply, &self.inboxes).map_err(|e| e.to_string()),
            None => Err("no reply subject".to_string()),
        };
        if let Err(reason) = reply_ok {
            self.stats.bad_input.fetch_add(1, Relaxed);
            if let Some(not_logged) = crate::telemetry::bad_input_warning() {
                tracing::warn!(subject = %message.subject, %reason, earlier_not_logged = not_logged, "fast-path request not processed and not answered");
            }
            return true;
        }
        let Some((plane, _, order)) = parse_rpc_subject(&message.subject) else {
            self.stats.bad_input.fetch_add(1, Relaxed);
            respond_error(
                &request,
                CODE_BAD_REQUEST,
                "not paystate.rpc.<plane>.<partition>.<order_id> with partition = FNV-1a(order_id) mod 64",
            )
            .await;
            return true;
        };
        if let Some(refusal) = size_refusal(message, plane, order) {
            self.refuse_size(&request, refusal).await;
            return true;
        }
        let idx = partition_of_order(order, self.senders.len());
        let seq = match queued_seq(message.headers.as_ref()) {
            None => {
                let req = FastRequest {
                    request,
                    plane,
                    received_at,
                };
                return match offer(&self.senders[idx], Work::Request(req)) {
                    Offer::Taken => true,
                    Offer::Full(work) => {
                        busy(work).await;
                        true
                    }
                    Offer::Closed => false,
                };
            }
            Some(Ok(seq)) => seq,
            Some(Err(e)) => {
                self.stats.bad_input.fetch_add(1, Relaxed);
                respond_error(&request, CODE_BAD_REQUEST, &e.to_string()).await;
                return true;
            }
        };
        // A queued command another instance handed on: decided at its queued time, read back
        // beside this loop (the other partitions' requests go on meanwhile).
        let Ok(permit) = self.queued_reads.clone().try_acquire_owned() else {
            respond_error(&request, CODE_RETRY, "engine busy; retry").await;
            return true;
        };
        let (js, sender, stats) = (
            self.js.clone(),
            self.senders[idx].clone(),
            self.stats.clone(),
        );
        let order = order.to_string();
        tokio::spawn(async move {
            let _permit = permit;
            let payload = &request.message.payload;
            match queued_at(&js, seq, plane, &order, payload).await {
                Ok(received_at) => {
                    let req = FastRequest {
                        request,
                        plane,
                        received_at,
                    };
                    if let Offer::Full(work) = offer(&sender, Work::Request(req)) {
                        busy(work).await;
                    }
                }
                Err(e) => {
                    let code = match e {
                        QueuedAtError::Broker(_) => CODE_RETRY,
                        _ => {
                            stats.bad_input.fetch_add(1, Relaxed);
                            CODE_BAD_REQUEST
                        }
                    };
                    tracing::warn!(error = %e, "forwarded command not taken; its sender decides it");
                    respond_error(&request, code, &e.to_string()).await;
                }
            }
        });
        true
    }
}

/// What became of a request offered to its partition task.
#[derive(Debug)]
enum Offer<T> {
    Taken,
    /// The task's channel is full: answered 503 at once (the client backs off and sends the
    /// same bytes again) instead of waiting. Why: the channel is shared with the command
    /// queue's intake, so waiting on one busy partition would stall this endpoint's requests
    /// for every partition and the queue's intake with them; and a request waiting in the
    /// channel is counted by no bound ([`super::REQUESTS_HELD_MAX`] counts the task's own).
    Full(T),
    /// The partition tasks are gone (shutdown).
    Closed,
}

fn offer<T>(tx: &tokio::sync::mpsc::Sender<T>, item: T) -> Offer<T> {
    match tx.try_send(item) {
        Ok(()) => Offer::Taken,
        Err(tokio::sync::mpsc::error::TrySendError::Full(item)) => Offer::Full(item),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
    }
}

/// Answers a request its partition could not take now.
async fn busy(work: Work) {
    if let Work::Request(req) = work {
        crate::telemetry::requeued();
        respond_error(&req.request, CODE_RETRY, "engine busy; retry").await;
    }
}

/// Why a request is answered at the endpoint for its size, never queued.
#[derive(Debug, PartialEq)]
enum SizeRefusal {
    /// The payload is larger than a command: the parser's `command_too_large` rejection of
    /// it on `subject` (its plane's queue subject, as a partition task would parse it).
    TooLarge {
        subject: String,
        rejection: paystate_events::Rejection,
    },
    /// The headers take this many bytes, more than [`MSG_HEADERS_BYTES_MAX`].
    Headers(usize),
}

impl Route {
    /// Answers a request refused for its size, on its own reply inbox (already checked): a
    /// payload too large with the outcome the parser's refusal gets on either path, headers
    /// too large with a 400.
    async fn refuse_size(&self, request: &Request, refusal: SizeRefusal) {
        let (subject, rejection) = match refusal {
            SizeRefusal::TooLarge { subject, rejection } => (subject, rejection),
            SizeRefusal::Headers(bytes) => {
                self.stats.bad_input.fetch_add(1, Relaxed);
                let status = format!(
                    "request headers are {bytes} bytes; the limit is {MSG_HEADERS_BYTES_MAX}"
                );
                respond_error(request, CODE_BAD_REQUEST, &status).await;
                return;
            }
        };
        let started = std::time::Instant::now();
        bad_command_seen(&self.stats, &subject, &rejection);
        let outcome = bad_command_outcome(&request.message.payload, &subject, rejection);
        match encode(&outcome) {
            Some(bytes) => {
                if let Err(e) = request.respond(Ok(bytes)).await {
                    tracing::warn!(error = %e, "could not publish a command_too_large outcome");
                }
            }
            None => respond_error(request, CODE_INTERNAL, "outcome not encoded").await,
        }
        crate::telemetry::answered(TYPE_UNKNOWN, &outcome, started);
    }
}

/// Whether a request is refused for its size before it is queued. Why at the endpoint: a
/// partition task holds up to [`super::REQUESTS_HELD_MAX`] requests, and NATS delivers
/// requests of up to its `max_payload` (1 MiB), while no command is larger than
/// `COMMAND_BYTES_MAX`; a parked order or a slow partition could otherwise hold gigabytes.
/// Refused here, a held request takes at most [`super::REQUEST_BYTES_MAX`] (besides its
/// subjects, which the server's control-line limit bounds).
fn size_refusal(message: &async_nats::Message, plane: Plane, order: &str) -> Option<SizeRefusal> {
    if let Err(rejection) = check_size(&message.payload) {
        return Some(SizeRefusal::TooLarge {
            subject: queue_subject_of(plane, order),
            rejection,
        });
    }
    let headers = header_bytes(message);
    (headers > MSG_HEADERS_BYTES_MAX).then_some(SizeRefusal::Headers(headers))
}

/// The bytes of a message's headers: its length (subject, reply subject, headers and
/// payload as received) less the rest.
fn header_bytes(message: &async_nats::Message) -> usize {
    let reply = message.reply.as_ref().map_or(0, |r| r.len());
    let rest = message.payload.len() + message.subject.len() + reply;
    message.length.saturating_sub(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::COMMAND_BYTES_MAX;
    use paystate_events::subjects::rpc_subject;
    use paystate_events::{Outcome, RejectionCode};

    /// A fast-path request for `order` as the endpoint receives it.
    fn request(order: &str, payload: Vec<u8>, header_bytes: usize) -> async_nats::Message {
        let subject = rpc_subject(Plane::Client, order);
        let reply = "_INBOX.abc.1";
        async_nats::Message {
            length: subject.len() + reply.len() + header_bytes + payload.len(),
            subject: subject.into(),
            reply: Some(reply.into()),
            payload: payload.into(),
            headers: None,
            status: None,
            description: None,
        }
    }

    #[test]
    fn an_oversize_request_is_answered_command_too_large_without_being_queued() {
        // Given a request one byte over the command limit, naming its command id ...
        let mut body = br#"{"command_id":"c-9","order_id":"V","pad":""#.to_vec();
        body.resize(COMMAND_BYTES_MAX - 1, b'x');
        body.extend_from_slice(br#""}"#);
        assert_eq!(body.len(), COMMAND_BYTES_MAX + 1);
        let message = request("V", body.clone(), 0);
        let (plane, _, order) = parse_rpc_subject(&message.subject).expect("a fast-path subject");
        // ... when the endpoint looks at it, then it is refused there (and so never sent to a
        // partition task) with the rejection the parser gives the same bytes on the queue
        // subject, and answered with the outcome the queue path would give.
        let Some(SizeRefusal::TooLarge { subject, rejection }) =
            size_refusal(&message, plane, order)
        else {
            panic!("an oversize request is refused at the endpoint");
        };
        assert_eq!(subject, "paystate.cmd.V");
        let parsed = crate::parse::parse_command(&body, &subject).expect_err("too large");
        assert_eq!(rejection, parsed);
        let outcome = bad_command_outcome(&body, &subject, rejection);
        let Outcome::Rejected {
            command_id,
            order_id,
            code,
            ..
        } = &outcome
        else {
            panic!("rejected: {outcome:?}");
        };
        assert_eq!(*code, RejectionCode::CommandTooLarge);
        assert_eq!(command_id.as_deref(), Some("c-9"));
        assert_eq!(order_id.as_deref(), Some("V"));
    }

    #[test]
    fn a_full_partition_channel_refuses_at_once_instead_of_waiting() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        assert!(matches!(offer(&tx, 1), Offer::Taken));
        assert!(
            matches!(offer(&tx, 2), Offer::Full(2)),
            "handed back to be answered 503"
        );
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert!(matches!(offer(&tx, 3), Offer::Taken));
        drop(rx);
        assert!(matches!(offer(&tx, 4), Offer::Closed));
    }

    #[test]
    fn requests_up_to_the_limits_go_on_and_large_headers_are_refused() {
        let at_limit = request("V", vec![b' '; COMMAND_BYTES_MAX], MSG_HEADERS_BYTES_MAX);
        assert_eq!(size_refusal(&at_limit, Plane::Client, "V"), None);
        let headers = request("V", b"{}".to_vec(), MSG_HEADERS_BYTES_MAX + 1);
        assert_eq!(
            size_refusal(&headers, Plane::Client, "V"),
            Some(SizeRefusal::Headers(MSG_HEADERS_BYTES_MAX + 1))
        );
    }

    #[test]
    fn partition_ranges_read_short() {
        let set: BTreeSet<usize> = [0, 1, 2, 3, 7, 9, 10].into_iter().collect();
        assert_eq!(ranges(&set), "0-3,7,9-10");
        assert_eq!(ranges(&BTreeSet::new()), "");
        assert_eq!(endpoint_name(7), "p07");
        assert_eq!(endpoint_subject(7), "paystate.rpc.*.7.*");
    }
}
