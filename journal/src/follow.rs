//! Following a consumer for as long as a process runs, on [`Puller`]s: whatever ends a pull
//! (a lost request, a server restart, a new consumer leader, a deleted consumer) costs a
//! pause and a new pull, never a stall and never the end of the follow.
//!
//! - [`Follow::durable`]: a durable consumer with acknowledgements (command queues, redrive
//!   requests). What a lost pull had delivered and nobody acknowledged is redelivered by
//!   the server after its ack wait; nothing is tracked here.
//! - [`Follow::ordered`]: every message of a stream's subjects in stream order, without acks
//!   (the reconciler's view of the log): an ephemeral consumer per pull, and a gap in the
//!   consumer sequence (a message lost on the way) or anything that ends a pull starts a new
//!   consumer at the first stream sequence not returned yet, so each message is returned
//!   once and in order.
//!
//! Pauses grow per failure in a row up to the last of [`FOLLOW_BACKOFF`]: a broker that stays
//! away is asked a bounded number of times a minute, and the first message resets the count.

use crate::pull::{open_ordered, OrderedPosition, Puller, PULL_IDLE_MAX, SCAN_CONSUMER_INACTIVE};
use async_nats::jetstream;
use std::time::Duration;

/// Pause before the n-th new pull after failures in a row (the last one repeats).
pub const FOLLOW_BACKOFF: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Messages asked for per pull request by a follow.
pub const FOLLOW_BATCH: usize = 512;

/// What a follow reads.
enum Kind {
    /// A durable consumer that outlives the pulls (its info names stream and consumer).
    Durable(Box<jetstream::consumer::Info>),
    /// Ephemeral consumers, one after another, from the first stream sequence not returned.
    Ordered(Box<Ordered>),
}

struct Ordered {
    stream: jetstream::stream::Stream,
    filter_subject: String,
    description: String,
    /// Where the next consumer starts, and the current one's last message.
    position: OrderedPosition,
}

/// A consumer followed until the caller stops asking (see the module docs).
pub struct Follow {
    context: jetstream::Context,
    kind: Kind,
    batch: usize,
    puller: Option<Puller>,
    /// A new pull being set up (in its own task: see [`Follow::next`]).
    starting: Option<tokio::task::JoinHandle<Result<Puller, String>>>,
    /// Failures in a row (the pause grows with them).
    failures: usize,
    /// No new pull before this instant (after a failure).
    resume_at: Option<tokio::time::Instant>,
    /// What the follow is, in its log lines.
    name: String,
}

impl Follow {
    /// Follows the durable pull consumer `consumer` describes, `batch` messages per request.
    pub fn durable(
        context: &jetstream::Context,
        consumer: &jetstream::consumer::Info,
        batch: usize,
    ) -> Follow {
        Follow {
            context: context.clone(),
            name: format!("{}/{}", consumer.stream_name, consumer.name),
            kind: Kind::Durable(Box::new(consumer.clone())),
            batch,
            puller: None,
            starting: None,
            failures: 0,
            resume_at: None,
        }
    }

    /// Follows `filter_subject` of `stream` in stream order from `start_seq` (1: from the
    /// start, or from the first message the stream still holds).
    pub fn ordered(
        context: &jetstream::Context,
        stream: &jetstream::stream::Stream,
        filter_subject: &str,
        start_seq: u64,
        description: &str,
    ) -> Follow {
        Follow {
            context: context.clone(),
            name: filter_subject.to_string(),
            kind: Kind::Ordered(Box::new(Ordered {
                stream: stream.clone(),
                filter_subject: filter_subject.to_string(),
                description: description.to_string(),
                position: OrderedPosition::from(start_seq),
            })),
            batch: FOLLOW_BATCH,
            puller: None,
            starting: None,
            failures: 0,
            resume_at: None,
        }
    }

    /// The next message. Never ends by itself: a failure is logged and pulled past after a
    /// pause. Cancel-safe (a `select!` branch may drop it and call again at once): a message
    /// is taken only when returned, a pause ends when it was due whoever waits for it, and a
    /// new pull is set up in a task of its own, so a dropped call neither repeats the pause's
    /// work early nor leaves a consumer half made.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            if let Some(at) = self.resume_at {
                tokio::time::sleep_until(at).await;
                self.resume_at = None;
            }
            let Some(puller) = self.puller.as_mut() else {
                let starting = self.starting.get_or_insert_with(|| {
                    tokio::spawn(start(self.context.clone(), self.kind.plan(), self.batch))
                });
                let started = starting.await;
                self.starting = None;
                match started {
                    Ok(Ok(p)) => self.install(p),
                    Ok(Err(e)) => self.failed(&e),
                    Err(e) => self.failed(&format!("the pull's setup ended: {e}")),
                }
                continue;
            };
            match puller.next(PULL_IDLE_MAX).await {
                Ok(msg) => match self.in_order(&msg) {
                    Ok(()) => {
                        self.failures = 0;
                        return msg;
                    }
                    Err(e) => self.failed(&e),
                },
                Err(e) => self.failed(&e.to_string()),
            }
        }
    }

    /// Checks an ordered follow's message continues the consumer's sequence and moves past it.
    fn in_order(&mut self, msg: &jetstream::Message) -> Result<(), String> {
        let Kind::Ordered(o) = &mut self.kind else {
            return Ok(());
        };
        let info = msg
            .info()
            .map_err(|e| format!("a message without JetStream metadata: {e}"))?;
        o.position
            .advance(info.consumer_sequence, info.stream_sequence)
    }

    /// Sets up the first pull now, so a follow that cannot start at all (no such stream, no
    /// permission) is an error its caller can report at start-up instead of a warning every
    /// few seconds. Later failures are [`Follow::next`]'s to ride out.
    pub async fn open(&mut self) -> Result<(), String> {
        if self.puller.is_none() && self.starting.is_none() {
            let puller = start(self.context.clone(), self.kind.plan(), self.batch).await?;
            self.install(puller);
        }
        Ok(())
    }

    /// A new pull takes over (an ordered follow's new consumer counts from its first message).
    fn install(&mut self, puller: Puller) {
        if let Kind::Ordered(o) = &mut self.kind {
            o.position.new_consumer();
        }
        self.puller = Some(puller);
    }

    /// Failed pulls in a row (0 once a message came): for health reports and tests.
    pub fn failures_in_a_row(&self) -> usize {
        self.failures
    }

    /// Drops the current pull; the next one starts after a pause.
    fn failed(&mut self, why: &str) {
        self.puller = None;
        let pause = FOLLOW_BACKOFF[self.failures.min(FOLLOW_BACKOFF.len() - 1)];
        self.failures += 1;
        self.resume_at = Some(tokio::time::Instant::now() + pause);
        tracing::warn!(follow = %self.name, reason = %why, ?pause, "pull interrupted; pulling anew");
    }
}

/// What a new pull needs, owned (it is set up in a task of its own).
enum Plan {
    Durable(Box<jetstream::consumer::Info>),
    Ordered {
        stream: Box<jetstream::stream::Stream>,
        filter_subject: String,
        description: String,
        start: u64,
    },
}

impl Kind {
    fn plan(&self) -> Plan {
        match self {
            Kind::Durable(info) => Plan::Durable(info.clone()),
            Kind::Ordered(o) => Plan::Ordered {
                stream: Box::new(o.stream.clone()),
                filter_subject: o.filter_subject.clone(),
                description: o.description.clone(),
                start: o.position.next_seq,
            },
        }
    }
}

/// How long the server keeps a follow's abandoned consumer. Why longer than a scan's: a
/// follower may wait a long time between messages (the server drops the consumer only once
/// nobody pulls it).
const FOLLOW_CONSUMER_INACTIVE: Duration =
    Duration::from_secs(SCAN_CONSUMER_INACTIVE.as_secs() * 10);

/// A new pull: on the durable consumer, or on a new consumer from the first stream sequence
/// not returned yet.
async fn start(context: jetstream::Context, plan: Plan, batch: usize) -> Result<Puller, String> {
    match plan {
        Plan::Durable(info) => Puller::start(&context, &info, batch)
            .await
            .map_err(|e| e.to_string()),
        Plan::Ordered {
            stream,
            filter_subject,
            description,
            start,
        } => {
            let consumer = (description.as_str(), FOLLOW_CONSUMER_INACTIVE);
            open_ordered(
                &context,
                &stream,
                &filter_subject,
                start,
                consumer,
                batch.into(),
            )
            .await
        }
    }
}

/// The next message of `follow`, or never when there is none (a `select!` branch over a
/// consumer that could not be opened).
pub async fn next_if_any(follow: &mut Option<Follow>) -> jetstream::Message {
    match follow.as_mut() {
        Some(follow) => follow.next().await,
        None => std::future::pending().await,
    }
}
