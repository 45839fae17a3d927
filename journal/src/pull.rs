//! Pulling a consumer's messages with the count of what is still due kept by the reader.
//!
//! Why not async-nats's `messages()` streams: they send each pull request from a separate
//! task and learn through a channel that it went out. When that task runs late, the messages
//! the request asked for can arrive, and be counted, before the stream learns of the request.
//! Its count of messages still due saturates at zero on the way, so once it learns of the
//! request it believes a whole batch is still coming, asks for no more, and the read stalls
//! until that request's expiry (35 s). Measured: `paystate bench-read`'s audit stopped after
//! exactly 2,000 of 596,000 messages (four requests of 500; the fourth counted only after its
//! 500 messages had come) on a runtime without its LIFO slot, every run; the default runtime
//! only makes the late task rarer. Here the reader publishes each request itself before it
//! reads on, and counts in signed numbers, so what it believes is due is what the server owes.

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::StatusCode;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::time::Duration;

/// How long a pull request waits on the server for messages (then it ends with a 408 that
/// says how many it did not deliver).
pub const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// How often the server says "still here" while a request waits with nothing to deliver.
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(4);
/// How long a long-running reader waits for a message or a heartbeat before it takes the
/// request as lost (a server restart, a new consumer leader) and pulls anew.
pub const PULL_IDLE_MAX: Duration = Duration::from_secs(10);
/// How long the server keeps a scan's consumer once nobody reads it.
pub const SCAN_CONSUMER_INACTIVE: Duration = Duration::from_secs(30);
/// Most bytes one pull request of a long read asks for, whatever its batch: bounds what a
/// scan holds in flight (it asks for thousands of messages, and a commit may be up to
/// [`paystate_events::limits::COMMIT_BYTES_MAX`]). The server ends a request that reaches it
/// with a 409 (`Message Size Exceeds MaxBytes`) naming what it did not send, which is then no
/// longer due. Followers ask for small batches and set no byte bound.
pub const PULL_BYTES_MAX: usize = 8 * 1024 * 1024;
// A request must be able to carry the largest message the stream holds, or one such message
// would end every request without being delivered.
const _: () = assert!(
    PULL_BYTES_MAX
        >= paystate_events::limits::STREAM_MSG_BYTES_MAX
            + paystate_events::limits::MSG_HEADERS_BYTES_MAX
);
/// The header of a 408/409 status that says how many messages of a request were not sent.
const PENDING_MESSAGES_HEADER: &str = "Nats-Pending-Messages";

// The server requires the heartbeat under half the expiry; a reader's idle bound must let
// two heartbeats go by before it gives a request up.
const _: () = assert!(PULL_HEARTBEAT.as_nanos() * 2 <= PULL_EXPIRES.as_nanos());
const _: () = assert!(PULL_HEARTBEAT.as_nanos() * 2 < PULL_IDLE_MAX.as_nanos());

/// The consumer a one-off read (a scan) pulls through a [`Puller`]: no acks, in memory, one
/// replica, dropped by the server [`SCAN_CONSUMER_INACTIVE`] after its last read.
pub fn scan_consumer(
    filter_subject: String,
    deliver_policy: DeliverPolicy,
    description: &str,
) -> pull::Config {
    pull::Config {
        filter_subject,
        deliver_policy,
        ack_policy: AckPolicy::None,
        max_deliver: 1,
        memory_storage: true,
        num_replicas: 1,
        inactive_threshold: SCAN_CONSUMER_INACTIVE,
        description: Some(description.to_string()),
        ..Default::default()
    }
}

/// Where an ordered read (a log scan, an ordered follow) stands: the first stream sequence
/// not read yet, and the current consumer's last sequence, by which a message lost between the
/// server and the reader shows as a gap.
#[derive(Debug, Clone, Copy)]
pub struct OrderedPosition {
    /// The first stream sequence not read yet: where a new consumer starts.
    pub next_seq: u64,
    /// The consumer sequence of the last message read (0: none yet from this consumer).
    consumer_seq: u64,
}

impl OrderedPosition {
    /// Before the first message, reading from stream sequence `start` (at least 1).
    pub fn from(start: u64) -> OrderedPosition {
        OrderedPosition {
            next_seq: start.max(1),
            consumer_seq: 0,
        }
    }

    /// A new consumer from [`OrderedPosition::next_seq`] takes over (its first message is
    /// consumer sequence 1).
    pub fn new_consumer(&mut self) {
        self.consumer_seq = 0;
    }

    /// Moves past a message of the current consumer; an error (why) when it does not follow
    /// the last one, and then nothing moves.
    pub fn advance(&mut self, consumer_seq: u64, stream_seq: u64) -> Result<(), String> {
        if consumer_seq != self.consumer_seq + 1 {
            return Err(format!(
                "consumer sequence {consumer_seq} after {}: a message was lost on the way",
                self.consumer_seq
            ));
        }
        self.consumer_seq = consumer_seq;
        self.next_seq = stream_seq + 1;
        Ok(())
    }
}

/// A new ephemeral consumer of `filter_subject` from stream sequence `start`
/// ([`scan_consumer`], dropped by the server `inactive` after its last read) and its puller:
/// how an ordered read starts, and starts over after a gap or a lost consumer.
pub async fn open_ordered(
    context: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    filter_subject: &str,
    start: u64,
    (description, inactive): (&str, Duration),
    size: PullSize,
) -> Result<Puller, String> {
    let mut config = scan_consumer(
        filter_subject.to_string(),
        DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        description,
    );
    config.inactive_threshold = inactive;
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| format!("consumer not created: {e}"))?;
    Puller::start(context, consumer.cached_info(), size)
        .await
        .map_err(|e| e.to_string())
}

/// Why no message came.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("no message and no heartbeat for {0:?}")]
    Idle(Duration),
    #[error("pull request not sent: {0}")]
    Request(String),
    #[error("the consumer is gone ({0})")]
    Gone(String),
    #[error("the subscription ended")]
    Closed,
    #[error("unexpected status {0}: {1}")]
    Status(u16, String),
}

/// How much one pull request asks for: `batch` messages, and at most `bytes` bytes when set
/// (a long read's bound, [`PULL_BYTES_MAX`]).
#[derive(Debug, Clone, Copy)]
pub struct PullSize {
    pub batch: usize,
    pub bytes: Option<usize>,
}

impl From<usize> for PullSize {
    /// `batch` messages a request, no byte bound.
    fn from(batch: usize) -> PullSize {
        PullSize { batch, bytes: None }
    }
}

/// One consumer's messages, pulled `batch` at a time (the next request goes out when half a
/// batch is still due, so the server always has one queued).
pub struct Puller {
    context: jetstream::Context,
    /// A context lent to each message [`Puller::next_with_info`] reads its metadata from and
    /// taken back (a long scan clones no context per message).
    spare: Option<jetstream::Context>,
    next_subject: String,
    inbox: String,
    subscription: async_nats::Subscriber,
    request: Bytes,
    batch: i64,
    /// The byte bound of each request, if any ([`PullSize::bytes`]).
    bytes: Option<usize>,
    /// Messages asked for and neither received nor released by a status. Signed: counted in
    /// the order things happen in this task, it never needs to saturate.
    due: i64,
}

impl Puller {
    /// Pulls from the pull consumer `consumer` describes (its stream and name).
    pub async fn start(
        context: &jetstream::Context,
        consumer: &jetstream::consumer::Info,
        size: impl Into<PullSize>,
    ) -> Result<Puller, PullError> {
        let size = size.into();
        let client = context.client();
        let inbox = client.new_inbox();
        let subscription = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| PullError::Request(e.to_string()))?;
        let batch = size.batch.max(2);
        let mut request = serde_json::json!({
            "batch": batch,
            "expires": PULL_EXPIRES.as_nanos() as u64,
            "idle_heartbeat": PULL_HEARTBEAT.as_nanos() as u64,
        });
        if let Some(bytes) = size.bytes {
            request["max_bytes"] = bytes.into();
        }
        Ok(Puller {
            context: context.clone(),
            spare: Some(context.clone()),
            next_subject: format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                consumer.stream_name, consumer.name
            ),
            inbox,
            subscription,
            request: Bytes::from(request.to_string()),
            batch: batch as i64,
            bytes: size.bytes,
            due: 0,
        })
    }

    /// The next message; gives up after `idle` without a message or a heartbeat.
    /// Cancel-safe (a `select!` branch may drop it): it awaits only the request's send (not
    /// counted until sent) and the subscription (a message is taken only when returned).
    pub async fn next(&mut self, idle: Duration) -> Result<jetstream::Message, PullError> {
        let message = self.next_raw(idle).await?;
        Ok(self.wrap(message))
    }

    /// The next message (as [`Puller::next`]) with its JetStream metadata, unwrapped: what a
    /// long read that never acknowledges needs, without a context per message.
    pub async fn next_with_info(
        &mut self,
        idle: Duration,
    ) -> Result<(async_nats::Message, Result<Meta, String>), PullError> {
        let message = self.next_raw(idle).await?;
        let context = self.spare.take().unwrap_or_else(|| self.context.clone());
        let wrapped = jetstream::Message { message, context };
        let meta = wrapped.info().map(Meta::from).map_err(|e| e.to_string());
        let jetstream::Message { message, context } = wrapped;
        self.spare = Some(context);
        Ok((message, meta))
    }

    async fn next_raw(&mut self, idle: Duration) -> Result<async_nats::Message, PullError> {
        loop {
            self.ask_if_low().await?;
            let message = match tokio::time::timeout(idle, self.subscription.next()).await {
                Err(_) => return Err(PullError::Idle(idle)),
                Ok(None) => return Err(PullError::Closed),
                Ok(Some(m)) => m,
            };
            if let Some(message) = self.take(message)? {
                return Ok(message);
            }
        }
    }

    fn wrap(&self, message: async_nats::Message) -> jetstream::Message {
        jetstream::Message {
            message,
            context: self.context.clone(),
        }
    }

    /// The next message (waiting as [`Puller::next`] does), then as many more as have already
    /// arrived, `max` in all. Cancel-safe like [`Puller::next`]: once it holds a message it
    /// no longer waits for anything (the next call asks for more).
    pub async fn next_batch(
        &mut self,
        max: usize,
        idle: Duration,
    ) -> Result<Vec<jetstream::Message>, PullError> {
        let mut batch = vec![self.next(idle).await?];
        while batch.len() < max {
            // Why an end or a refusal here only ends the batch: the messages in hand are
            // handed out first; the next call meets the same end (the subscription stays
            // closed, a refused or unanswered request is refused again) and reports it.
            let Some(Some(message)) = self.subscription.next().now_or_never() else {
                break;
            };
            match self.take(message) {
                Ok(Some(message)) => batch.push(self.wrap(message)),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Asks for the next batch once half of the last is no longer due.
    async fn ask_if_low(&mut self) -> Result<(), PullError> {
        if self.due <= self.batch / 2 {
            self.context
                .client()
                .publish_with_reply(
                    self.next_subject.clone(),
                    self.inbox.clone(),
                    self.request.clone(),
                )
                .await
                .map_err(|e| PullError::Request(e.to_string()))?;
            self.due += self.batch;
        }
        Ok(())
    }

    /// What an arrived message means: a message of the consumer, or a status that changes
    /// what is due (`None`), or the end of this pull.
    fn take(
        &mut self,
        message: async_nats::Message,
    ) -> Result<Option<async_nats::Message>, PullError> {
        match message.status {
            None | Some(StatusCode::OK) => {
                self.due -= 1;
                Ok(Some(message))
            }
            Some(StatusCode::IDLE_HEARTBEAT) => Ok(None),
            Some(status @ (StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED)) => {
                let description = message.description.clone().unwrap_or_default();
                if description.contains("Consumer Deleted") {
                    return Err(PullError::Gone(description));
                }
                // A request the consumer's limits refuse would be refused again: the caller
                // backs off instead of asking again at once.
                if description.starts_with("Exceeded Max") {
                    return Err(PullError::Status(status.as_u16(), description));
                }
                // Expired, cut at its byte bound, a new consumer leader, a server going down:
                // what the request did not deliver is no longer due.
                self.due -= ended_request(&message, &description, self.batch, self.bytes)
                    .map_err(|why| PullError::Status(status.as_u16(), why))?;
                Ok(None)
            }
            Some(StatusCode::NO_RESPONDERS) => Err(PullError::Gone("no responders".into())),
            Some(other) => Err(PullError::Status(
                other.as_u16(),
                message.description.unwrap_or_default(),
            )),
        }
    }
}

/// The numbers of a message's JetStream metadata (its `$JS.ACK` reply subject).
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub stream_sequence: u64,
    pub consumer_sequence: u64,
    /// Messages the server still had for the consumer after this one.
    pub pending: u64,
    /// When the server stored the message.
    pub published: time::OffsetDateTime,
}

impl From<jetstream::message::Info<'_>> for Meta {
    fn from(i: jetstream::message::Info<'_>) -> Meta {
        Meta {
            stream_sequence: i.stream_sequence,
            consumer_sequence: i.consumer_sequence,
            pending: i.pending,
            published: i.published,
        }
    }
}

/// How many messages a request that ended early (a 408/409 `status` with `description`)
/// leaves undelivered; an error when asking again could never deliver the next message: the
/// request ended at its byte bound (`bytes`) before delivering anything, so the next message
/// is larger than any request may carry (a stream whose messages the server allows larger
/// than paystate's streams do). Without it the reader would ask, be refused and ask again
/// without end.
fn ended_request(
    status: &async_nats::Message,
    description: &str,
    batch: i64,
    bytes: Option<usize>,
) -> Result<i64, String> {
    let undelivered = released(status, batch);
    if let (Some(bound), true) = (bytes, description.contains("MaxBytes")) {
        if undelivered >= batch {
            return Err(format!(
                "{description}: the next message is larger than a pull request's bound of \
                 {bound} bytes and can never be delivered"
            ));
        }
    }
    Ok(undelivered)
}

/// How many messages of a request a 408/409 status releases: its `Nats-Pending-Messages`,
/// or the whole batch when it names none (a request refused outright).
fn released(status: &async_nats::Message, batch: i64) -> i64 {
    status
        .headers
        .as_ref()
        .and_then(|h| h.get(PENDING_MESSAGES_HEADER))
        .and_then(|v| v.as_str().trim().parse::<i64>().ok())
        .filter(|n| (0..=batch).contains(n))
        .unwrap_or(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pending: Option<&str>) -> async_nats::Message {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(p) = pending {
            headers.insert(PENDING_MESSAGES_HEADER, p);
        }
        async_nats::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            payload: Bytes::new(),
            headers: Some(headers),
            status: Some(StatusCode::TIMEOUT),
            description: Some("Request Timeout".into()),
            length: 0,
        }
    }

    #[test]
    fn a_status_releases_what_it_names_and_never_more_than_a_batch() {
        assert_eq!(released(&status(Some("120")), 500), 120);
        assert_eq!(released(&status(Some(" 7 ")), 500), 7);
        assert_eq!(released(&status(Some("0")), 500), 0);
        // Unreadable or out of range: the request is taken as not delivered at all.
        assert_eq!(released(&status(Some("-3")), 500), 500);
        assert_eq!(released(&status(Some("501")), 500), 500);
        assert_eq!(released(&status(Some("many")), 500), 500);
        assert_eq!(released(&status(None), 500), 500);
    }

    #[test]
    fn a_request_cut_at_its_byte_bound_releases_the_rest_unless_it_delivered_nothing() {
        let cut = |pending| {
            let mut m = status(Some(pending));
            m.status = Some(StatusCode::REQUEST_TERMINATED);
            m
        };
        let bytes = "Message Size Exceeds MaxBytes";
        // Cut after some messages: the rest is no longer due, the reader asks again.
        let bound = Some(PULL_BYTES_MAX);
        assert_eq!(ended_request(&cut("3982"), bytes, 4000, bound), Ok(3982));
        // Cut before the first: that message can never come; an error, not a loop.
        let stuck = ended_request(&cut("4000"), bytes, 4000, bound).unwrap_err();
        assert!(stuck.contains("can never be delivered"), "{stuck}");
        assert!(stuck.contains(&PULL_BYTES_MAX.to_string()), "{stuck}");
        // An expiry that delivered nothing is only an idle request.
        assert_eq!(
            ended_request(&cut("4000"), "Request Timeout", 4000, bound),
            Ok(4000)
        );
    }

    #[test]
    fn an_ordered_position_moves_only_on_the_next_consumer_sequence() {
        let mut at = OrderedPosition::from(0);
        assert_eq!(
            at.next_seq, 1,
            "a read starts at sequence 1 at the earliest"
        );
        assert!(at.advance(1, 5).is_ok());
        assert_eq!(at.next_seq, 6);
        // A gap (consumer sequence 3 after 1): refused, nothing moves.
        assert!(at.advance(3, 9).is_err());
        assert_eq!(at.next_seq, 6);
        assert!(at.advance(2, 7).is_ok());
        assert_eq!(at.next_seq, 8);
        // A new consumer from sequence 8 counts from 1 again.
        at.new_consumer();
        assert!(at.advance(2, 8).is_err());
        assert!(at.advance(1, 8).is_ok());
        assert_eq!(at.next_seq, 9);
    }
}
