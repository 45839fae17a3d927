//! Dead letters: messages a consumer gave up on after its delivery bound, kept with their
//! reason in the stream `PAYSTATE_DEAD_LETTERS` for a person to look at and redrive.
//!
//! Layout of the stream (subjects under [`DEAD_LETTERS_PREFIX`]):
//!
//! - `paystate.dead.<source>.<order>`: one dead letter. `<source>` names the consumer kind
//!   ([`Source`]: `cmd` for the engine, `workers`, `projector`, `reconciler`, `callbacks`).
//!   The payload is the original message's payload, byte for byte; headers:
//!   [`DEAD_REASON_HEADER`] (why), [`SUBJECT_HEADER`] (original subject),
//!   [`CONSUMER_HEADER`] (durable consumer name), [`ORIGIN_STREAM_HEADER`] and
//!   [`ORIGIN_SEQ_HEADER`] (where it came from), [`DELIVERIES_HEADER`], and every original
//!   header renamed with the prefix [`ORIGINAL_HEADER_PREFIX`] (so JetStream's own headers,
//!   such as `Nats-Msg-Id` or expected-sequence checks, do not act on the dead-letter stream).
//! - `paystate.dead._redrive.<source>.<order>`: a redrive request for a consumer of the log
//!   (workers, projector, reconciler, callback re-drive): the same payload and headers as the
//!   dead letter; the consumer picks it up and processes the original message again.
//! - `paystate.dead._redriven.<seq>`: the marker that dead letter `<seq>` was redriven
//!   (headers [`REDRIVEN_TO_HEADER`], [`REDRIVEN_SEQ_HEADER`]). Dead letters are never deleted
//!   by a redrive (the stream refuses message deletes to every role but admin); the stream's
//!   age and size limits drop them, and the marker, which is newer, outlives its letter.
//!   A marker counts only as paystate writes it ([`marker_of`]): its target is the letter's
//!   [`redrive_target`], its sequence a number, its `Nats-Msg-Id` `redriven:<seq>`. Any
//!   client can make the broker store its answer to a publish (a PubAck, no headers) at any
//!   subject of the stream (docs/security.md, Known limits); such a message is no marker, so
//!   it neither hides a letter from the listing nor blocks its redrive.
//!
//! Redrive of a message whose original subject is on a command plane (`paystate.cmd.*`,
//! `paystate.signal.*`, `paystate.op.*`) republishes it to that subject with its original headers; a commit
//! of the log becomes a redrive request; a quarantined callback's copy is refused
//! ([`DeadLetterError::NotRedrivable`]: it is resolved from the gateway's held entry). A
//! second redrive of one letter is refused; and a redrive is harmless anyway: the engine
//! answers a command it has applied as a duplicate, and the consumers of the log skip work
//! that is already done.

use crate::read::to_chrono;
use async_nats::jetstream::{self, message::PublishMessage, stream::Stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use paystate_events::subjects::{
    order_token, plane_of, DEAD_LETTERS_PREFIX, DEAD_LETTERS_STREAM, DEAD_REASON_HEADER,
};
use paystate_events::Timestamp;

/// Header: the subject the message was on before it was set aside.
pub const SUBJECT_HEADER: &str = "Paystate-Dead-Subject";
/// Header: the durable consumer that gave up.
pub const CONSUMER_HEADER: &str = "Paystate-Dead-Consumer";
/// Header: the stream the message came from.
pub const ORIGIN_STREAM_HEADER: &str = "Paystate-Dead-Stream";
/// Header: its sequence in that stream.
pub const ORIGIN_SEQ_HEADER: &str = "Paystate-Dead-Seq";
/// Header: how often it was delivered before the consumer gave up.
pub const DELIVERIES_HEADER: &str = "Paystate-Dead-Deliveries";
/// Prefix of the original message's headers, kept for the redrive.
pub const ORIGINAL_HEADER_PREFIX: &str = "Paystate-Orig-";
/// Header of a redrive marker: where the message went.
pub const REDRIVEN_TO_HEADER: &str = "Paystate-Redriven-To";
/// Header of a redrive marker: the sequence it got there.
pub const REDRIVEN_SEQ_HEADER: &str = "Paystate-Redriven-Seq";
/// Subject token of redrive requests for consumers of the log.
pub const REDRIVE_TOKEN: &str = "_redrive";
/// Subject token of redrive markers.
pub const REDRIVEN_TOKEN: &str = "_redriven";

/// Dead letters a listing returns unless told otherwise.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Most dead letters one listing returns.
pub const LIST_LIMIT_MAX: usize = 1_000;
/// Most stream messages one listing looks at (markers and requests included), so a listing
/// over a stream full of other sources stays bounded; the page says where to go on.
pub const LIST_SCAN_MAX: usize = 10_000;
/// Every durable consumer's `max_deliver` is its own delivery bound plus this: the consumer
/// dead-letters a message first (with its reason); the server stops redelivering a little
/// later even if the consumer cannot (it crashed on the message each time).
pub const SERVER_DELIVERIES_SLACK: i64 = 3;
/// Longest reason kept (longer ones are cut; header values are single-line).
pub const REASON_LEN_MAX: usize = 1_000;

/// Which kind of consumer set the message aside: the second token of its subject.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The engine's command intake (token `cmd`).
    Engine,
    /// The adapter workers (provider work from the log).
    Workers,
    /// The order projector.
    Projector,
    /// The reconciler (probes of waiting orders).
    Reconciler,
    /// The gateway's callback re-drive (verified callbacks that could not be applied).
    Callbacks,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Engine,
        Source::Workers,
        Source::Projector,
        Source::Reconciler,
        Source::Callbacks,
    ];

    /// The subject token.
    pub fn token(self) -> &'static str {
        match self {
            Source::Engine => "cmd",
            Source::Workers => "workers",
            Source::Projector => "projector",
            Source::Reconciler => "reconciler",
            Source::Callbacks => "callbacks",
        }
    }

    /// The source of a subject token (`engine` is accepted for `cmd`).
    pub fn parse(token: &str) -> Option<Source> {
        match token {
            "engine" => Some(Source::Engine),
            t => Source::ALL.into_iter().find(|s| s.token() == t),
        }
    }

    /// Subjects of this source's dead letters.
    pub fn letters_subject(self) -> String {
        format!("{DEAD_LETTERS_PREFIX}.{}.*", self.token())
    }

    /// Subjects of redrive requests for this source (what its consumer follows).
    pub fn redrive_subject(self) -> String {
        format!("{DEAD_LETTERS_PREFIX}.{REDRIVE_TOKEN}.{}.>", self.token())
    }
}

/// The durable consumer (on the dead-letter stream) through which `source`'s consumer takes
/// its redrive requests.
pub fn redrive_consumer(source: Source) -> String {
    format!("paystate-redrive-{}", source.token())
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// Why a dead-letter operation failed. [`DeadLetterError::is_transient`] says whether trying
/// again later can help.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No message at that sequence (never written, or dropped by the stream's limits).
    #[error("no dead letter at sequence {0}")]
    NotFound(u64),
    /// The sequence holds a redrive request or marker, not a dead letter.
    #[error("sequence {seq} is not a dead letter ({subject})")]
    NotALetter { seq: u64, subject: String },
    /// The dead letter lacks a header paystate writes (written by something else).
    #[error("dead letter {seq} is malformed: {detail}")]
    Malformed { seq: u64, detail: String },
    /// It was redriven before.
    #[error("dead letter {seq} was already redriven at {at} (to {to})")]
    AlreadyRedriven { seq: u64, at: Timestamp, to: String },
    /// The target stream took the republished message for a duplicate (same `Nats-Msg-Id`
    /// within its duplicate window): nothing was redriven; try again after the window.
    #[error("the republished message of dead letter {seq} was dropped as a duplicate by {stream}; retry after its duplicate window")]
    Duplicate { seq: u64, stream: String },
    /// Nothing takes a redrive of this kind: a quarantined callback is a copy of the
    /// gateway's held entry (`paystate_callbacks_held`), resolved there.
    #[error("dead letter {seq} ({consumer}) cannot be redriven: {why}")]
    NotRedrivable {
        seq: u64,
        consumer: Source,
        why: &'static str,
    },
    /// The broker failed, refused or timed out.
    #[error("dead-letter stream: {0}")]
    Broker(String),
}

impl DeadLetterError {
    /// Whether trying again later can help (broker trouble, a duplicate window).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DeadLetterError::Broker(_) | DeadLetterError::Duplicate { .. }
        )
    }
}

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what `show` and `redrive` take).
    pub seq: u64,
    /// The kind of consumer that gave up.
    pub source: Source,
    /// The durable consumer's name.
    pub consumer: String,
    /// The order it belongs to (`_` when the message named none).
    pub order: String,
    /// Why it was set aside.
    pub reason: String,
    /// When it was set aside.
    pub time: Timestamp,
    /// Payload bytes.
    pub size: usize,
    /// The subject it was on.
    pub subject: String,
    /// Where it came from: stream and sequence, when known.
    pub origin: Option<(String, u64)>,
    /// Deliveries before the consumer gave up, when known.
    pub deliveries: Option<u64>,
    /// Set once it was redriven.
    pub redriven: Option<Redriven>,
}

/// A redrive, as recorded by its marker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Redriven {
    pub at: Timestamp,
    /// The subject the message went to.
    pub to: String,
    /// Its sequence there (0 when unknown).
    pub seq: u64,
}

/// A dead letter with its payload and the original headers.
#[derive(Debug, Clone)]
pub struct DeadLetterBody {
    pub letter: DeadLetter,
    /// The original message's headers (name, value), in no particular order.
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

/// Which dead letters to list.
#[derive(Debug, Clone)]
pub struct DeadLetterFilter {
    pub source: Option<Source>,
    pub order: Option<String>,
    /// Start at this sequence of the dead-letter stream (1: from the oldest).
    pub from_seq: u64,
    /// At most this many (capped at [`LIST_LIMIT_MAX`]).
    pub limit: usize,
    /// Also list the ones already redriven.
    pub include_redriven: bool,
}

impl Default for DeadLetterFilter {
    fn default() -> Self {
        DeadLetterFilter {
            source: None,
            order: None,
            from_seq: 1,
            limit: LIST_LIMIT_DEFAULT,
            include_redriven: false,
        }
    }
}

/// One page of a listing (`paystate dlq list --json`).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct DeadLetterPage {
    pub letters: Vec<DeadLetter>,
    /// Where the next page starts, when the listing stopped at its limit or scan bound.
    pub next_seq: Option<u64>,
}

/// A message to set aside.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub source: Source,
    /// The durable consumer that gives up.
    pub consumer: &'a str,
    /// The subject the message was on (what a redrive republishes to, for command planes).
    pub subject: &'a str,
    /// Its order; `None`: the order token of `subject` (else `_`).
    pub order: Option<&'a str>,
    pub headers: Option<&'a HeaderMap>,
    pub payload: Bytes,
    /// Stream and sequence it came from: also its dedup id (`Nats-Msg-Id`), so a consumer
    /// that dies between setting aside and acknowledging does not set it aside twice.
    pub origin: Option<(&'a str, u64)>,
    pub deliveries: u64,
    /// Why; one line is kept, at most [`REASON_LEN_MAX`] bytes. Must not contain secrets.
    pub reason: &'a str,
}

/// Sets a message aside; returns its sequence in the dead-letter stream. Only an `Ok` means
/// it is stored: a caller acknowledges the original message only then.
pub async fn send(js: &jetstream::Context, out: &Outgoing<'_>) -> Result<u64, DeadLetterError> {
    let order = out
        .order
        .or_else(|| order_token(out.subject))
        .unwrap_or("_");
    let subject = format!(
        "{DEAD_LETTERS_PREFIX}.{}.{}",
        out.source.token(),
        subject_token(order)
    );
    let mut headers = HeaderMap::new();
    headers.insert(DEAD_REASON_HEADER, one_line(out.reason).as_str());
    headers.insert(SUBJECT_HEADER, out.subject);
    headers.insert(CONSUMER_HEADER, out.consumer);
    headers.insert(DELIVERIES_HEADER, out.deliveries.to_string().as_str());
    if let Some((stream, seq)) = out.origin {
        headers.insert(ORIGIN_STREAM_HEADER, stream);
        headers.insert(ORIGIN_SEQ_HEADER, seq.to_string().as_str());
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("dead:{}:{stream}:{seq}", out.source.token()).as_str(),
        );
    }
    for (name, values) in out.headers.into_iter().flat_map(HeaderMap::iter) {
        let name: &str = name.as_ref();
        for v in values {
            headers.append(
                format!("{ORIGINAL_HEADER_PREFIX}{name}").as_str(),
                v.as_str(),
            );
        }
    }
    let ack = publish(js, subject, headers, out.payload.clone()).await?;
    count(out);
    Ok(ack.sequence)
}

/// `paystate_dead_letters_total{consumer, reason}`: the source's name, and a fixed word for
/// the reason (its text is free, so it is not a label).
fn count(out: &Outgoing<'_>) {
    use paystate_events::metric_names::consumer;
    let source = match out.source {
        Source::Engine => consumer::ENGINE,
        Source::Workers => consumer::WORKERS,
        Source::Projector => consumer::PROJECTOR,
        Source::Reconciler => consumer::RECONCILER,
        Source::Callbacks => consumer::CALLBACKS,
    };
    let reason = match out.deliveries {
        0 => "refused",
        _ => "deliveries_exhausted",
    };
    metrics::counter!(paystate_events::metric_names::DEAD_LETTERS_TOTAL, "consumer" => source, "reason" => reason)
        .increment(1);
}

/// [`send`] for a JetStream message in hand: its subject, headers, payload, origin and
/// delivery count.
pub async fn send_message(
    js: &jetstream::Context,
    source: Source,
    consumer: &str,
    msg: &jetstream::Message,
    reason: &str,
) -> Result<u64, DeadLetterError> {
    let info = msg.info().ok();
    let stream = info.as_ref().map(|i| i.stream.to_string());
    let out = Outgoing {
        source,
        consumer,
        subject: msg.subject.as_str(),
        order: None,
        headers: msg.headers.as_ref(),
        payload: msg.payload.clone(),
        origin: stream
            .as_deref()
            .zip(info.as_ref().map(|i| i.stream_sequence)),
        deliveries: info.as_ref().map_or(0, |i| i.delivered.max(0) as u64),
        reason,
    };
    send(js, &out).await
}

/// Lists dead letters oldest first, as `filter` says, bounded by its limit and
/// [`LIST_SCAN_MAX`].
pub async fn list(
    js: &jetstream::Context,
    filter: &DeadLetterFilter,
) -> Result<DeadLetterPage, DeadLetterError> {
    let stream = open(js).await?;
    let limit = filter.limit.clamp(1, LIST_LIMIT_MAX);
    let wanted = match (filter.source, &filter.order) {
        (Some(s), Some(o)) => format!("{DEAD_LETTERS_PREFIX}.{}.{}", s.token(), subject_token(o)),
        (Some(s), None) => s.letters_subject(),
        (None, Some(o)) => format!("{DEAD_LETTERS_PREFIX}.*.{}", subject_token(o)),
        (None, None) => format!("{DEAD_LETTERS_PREFIX}.>"),
    };
    let mut letters = Vec::new();
    let mut seq = filter.from_seq.max(1);
    for _ in 0..LIST_SCAN_MAX {
        if letters.len() >= limit {
            return Ok(DeadLetterPage {
                letters,
                next_seq: Some(seq),
            });
        }
        let msg = match stream
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(wanted.clone())
            .send()
            .await
        {
            Ok(m) => m,
            Err(e) if crate::read::is_no_message(&e) => {
                return Ok(DeadLetterPage {
                    letters,
                    next_seq: None,
                })
            }
            Err(e) => return Err(DeadLetterError::Broker(e.to_string())),
        };
        seq = msg.sequence + 1;
        if !is_letter(msg.subject.as_str()) {
            continue;
        }
        let Ok(mut letter) = letter_of(&msg) else {
            tracing::warn!(
                seq = msg.sequence,
                "malformed dead letter skipped by the listing"
            );
            continue;
        };
        letter.redriven = redriven(&stream, &letter).await?;
        if filter.include_redriven || letter.redriven.is_none() {
            letters.push(letter);
        }
    }
    Ok(DeadLetterPage {
        letters,
        next_seq: Some(seq),
    })
}

/// One dead letter with its payload and original headers.
pub async fn show(js: &jetstream::Context, seq: u64) -> Result<DeadLetterBody, DeadLetterError> {
    let stream = open(js).await?;
    let msg = match stream.get_raw_message(seq).await {
        Ok(m) => m,
        Err(e) if crate::read::is_no_message(&e) => return Err(DeadLetterError::NotFound(seq)),
        Err(e) => return Err(DeadLetterError::Broker(e.to_string())),
    };
    if !is_letter(msg.subject.as_str()) {
        return Err(DeadLetterError::NotALetter {
            seq,
            subject: msg.subject.to_string(),
        });
    }
    let mut letter = letter_of(&msg)?;
    letter.redriven = redriven(&stream, &letter).await?;
    Ok(DeadLetterBody {
        letter,
        headers: original_headers(&msg.headers),
        payload: msg.payload,
    })
}

/// Redrives dead letter `seq`: republishes it to its original subject with its original
/// headers (command planes) or publishes a redrive request its consumer picks up (the log's
/// consumers), then records the redrive with a marker. Refuses a letter already redriven.
pub async fn redrive(js: &jetstream::Context, seq: u64) -> Result<Redriven, DeadLetterError> {
    redrive_via(js, js, seq).await
}

/// Where a redrive of `letter` publishes: its original subject (command planes) or a
/// redrive request for its consumer. A caller picks the connection allowed to publish there
/// (the signal plane belongs to the reporter role).
pub fn redrive_target(letter: &DeadLetter) -> String {
    match plane_of(&letter.subject) {
        Some(_) => letter.subject.clone(),
        None => format!(
            "{DEAD_LETTERS_PREFIX}.{REDRIVE_TOKEN}.{}.{}",
            letter.source.token(),
            subject_token(&letter.order)
        ),
    }
}

/// [`redrive`], republishing through `publisher` (reads and the marker go through `js`).
pub async fn redrive_via(
    js: &jetstream::Context,
    publisher: &jetstream::Context,
    seq: u64,
) -> Result<Redriven, DeadLetterError> {
    let body = show(js, seq).await?;
    let letter = &body.letter;
    if letter.source == Source::Callbacks && plane_of(&letter.subject).is_none() {
        return Err(DeadLetterError::NotRedrivable {
            seq,
            consumer: letter.source,
            why: "a quarantined callback is resolved from its held entry in paystate_callbacks_held (the raw request is in PAYSTATE_CALLBACKS)",
        });
    }
    if let Some(r) = &letter.redriven {
        return Err(DeadLetterError::AlreadyRedriven {
            seq,
            at: r.at,
            to: r.to.clone(),
        });
    }
    let to = redrive_target(letter);
    let headers = match plane_of(&letter.subject) {
        Some(_) => {
            let mut h = HeaderMap::new();
            for (name, value) in &body.headers {
                h.append(name.as_str(), value.as_str());
            }
            h
        }
        None => {
            let stream = open(js).await?;
            let raw = stream
                .get_raw_message(seq)
                .await
                .map_err(|e| DeadLetterError::Broker(e.to_string()))?;
            let mut h = raw.headers;
            h.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("redrive:{seq}").as_str(),
            );
            h
        }
    };
    let ack = publish(publisher, to.clone(), headers, body.payload.clone()).await?;
    if ack.duplicate {
        return Err(DeadLetterError::Duplicate {
            seq,
            stream: ack.stream,
        });
    }
    let mut marker = HeaderMap::new();
    marker.insert(REDRIVEN_TO_HEADER, to.as_str());
    marker.insert(REDRIVEN_SEQ_HEADER, ack.sequence.to_string().as_str());
    marker.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("redriven:{seq}").as_str(),
    );
    let marked = publish(js, marker_subject(seq), marker, Bytes::new()).await?;
    tracing::info!(seq, %to, marker = marked.sequence, "dead letter redriven");
    Ok(Redriven {
        at: chrono::Utc::now(),
        to,
        seq: ack.sequence,
    })
}

/// The dead letter a redrive request carries, for the consumer that picks it up: the
/// original subject, headers (as they were), payload and stream sequence.
pub struct RedriveRequest {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    pub origin_seq: Option<u64>,
}

/// Reads a redrive request (`None`: not one paystate wrote).
pub fn redrive_request(headers: Option<&HeaderMap>, payload: &Bytes) -> Option<RedriveRequest> {
    let h = headers?;
    let subject = h.get(SUBJECT_HEADER)?.as_str().to_string();
    let mut original = HeaderMap::new();
    for (name, value) in original_headers(h) {
        original.append(name.as_str(), value.as_str());
    }
    Some(RedriveRequest {
        subject,
        headers: original,
        payload: payload.clone(),
        origin_seq: h
            .get(ORIGIN_SEQ_HEADER)
            .and_then(|v| v.as_str().parse().ok()),
    })
}

async fn open(js: &jetstream::Context) -> Result<Stream<()>, DeadLetterError> {
    js.get_stream_no_info(DEAD_LETTERS_STREAM)
        .await
        .map_err(|e| DeadLetterError::Broker(e.to_string()))
}

async fn publish(
    js: &jetstream::Context,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<jetstream::publish::PublishAck, DeadLetterError> {
    let msg = PublishMessage::build().payload(payload).headers(headers);
    js.send_publish(subject, msg)
        .await
        .map_err(|e| DeadLetterError::Broker(e.to_string()))?
        .await
        .map_err(|e| DeadLetterError::Broker(e.to_string()))
}

fn marker_subject(seq: u64) -> String {
    format!("{DEAD_LETTERS_PREFIX}.{REDRIVEN_TOKEN}.{seq}")
}

/// The redrive marker of `letter`, if any: the last message on its marker subject when that
/// is a marker paystate wrote ([`marker_of`]); otherwise (something else was stored there
/// after it) the first marker on the subject, looking at most [`MARKERS_SCANNED_MAX`]
/// messages. Messages that are not markers are ignored (and logged).
async fn redriven(
    stream: &Stream<()>,
    letter: &DeadLetter,
) -> Result<Option<Redriven>, DeadLetterError> {
    let subject = marker_subject(letter.seq);
    let last = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => m,
        Err(e) if crate::read::is_no_message(&e) => return Ok(None),
        Err(e) => return Err(DeadLetterError::Broker(e.to_string())),
    };
    if let Some(r) = marker_of(letter, &last) {
        return Ok(Some(r));
    }
    not_a_marker(letter.seq, last.sequence);
    let mut from = 1;
    for _ in 0..MARKERS_SCANNED_MAX {
        let m = match stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject.clone())
            .send()
            .await
        {
            Ok(m) => m,
            Err(e) if crate::read::is_no_message(&e) => return Ok(None),
            Err(e) => return Err(DeadLetterError::Broker(e.to_string())),
        };
        if m.sequence >= last.sequence {
            return Ok(None);
        }
        if let Some(r) = marker_of(letter, &m) {
            return Ok(Some(r));
        }
        not_a_marker(letter.seq, m.sequence);
        from = m.sequence + 1;
    }
    Ok(None)
}

/// Most messages on one letter's marker subject looked at for its marker, when the last one
/// there is not a marker (something else was stored on the subject).
pub const MARKERS_SCANNED_MAX: usize = 32;

fn not_a_marker(letter: u64, sequence: u64) {
    tracing::warn!(
        letter,
        sequence,
        "a message on a dead letter's redrive-marker subject is not a marker paystate wrote (a \
         broker's answer planted there?): ignored"
    );
}

/// A redrive marker of `letter` as [`redrive_via`] writes it, or `None`: the marker names the
/// letter's redrive target and the sequence the message got there, and carries the
/// `Nats-Msg-Id` `redriven:<letter seq>`. (A broker's PubAck stored on the subject carries no
/// headers at all.)
fn marker_of(letter: &DeadLetter, m: &jetstream::message::StreamMessage) -> Option<Redriven> {
    let h = &m.headers;
    let to = header(h, REDRIVEN_TO_HEADER).filter(|to| *to == redrive_target(letter))?;
    let seq = header(h, REDRIVEN_SEQ_HEADER)?.parse().ok()?;
    let id = h.get(async_nats::header::NATS_MESSAGE_ID)?.as_str();
    (id == format!("redriven:{}", letter.seq)).then(|| Redriven {
        at: to_chrono(m.time),
        to,
        seq,
    })
}

/// Whether a dead-letter stream subject is a letter (not a redrive request or marker).
fn is_letter(subject: &str) -> bool {
    subject
        .strip_prefix(DEAD_LETTERS_PREFIX)
        .and_then(|r| r.strip_prefix('.'))
        .is_some_and(|r| !r.starts_with('_'))
}

fn letter_of(msg: &jetstream::message::StreamMessage) -> Result<DeadLetter, DeadLetterError> {
    let malformed = |detail: &str| DeadLetterError::Malformed {
        seq: msg.sequence,
        detail: detail.into(),
    };
    let mut tokens = msg
        .subject
        .strip_prefix(DEAD_LETTERS_PREFIX)
        .unwrap_or_default()
        .trim_start_matches('.')
        .splitn(2, '.');
    let source = tokens
        .next()
        .and_then(Source::parse)
        .ok_or_else(|| malformed("unknown source token"))?;
    let order = tokens.next().unwrap_or("_").to_string();
    let h = &msg.headers;
    let origin = header(h, ORIGIN_STREAM_HEADER)
        .zip(header(h, ORIGIN_SEQ_HEADER).and_then(|s| s.parse::<u64>().ok()));
    Ok(DeadLetter {
        seq: msg.sequence,
        source,
        consumer: header(h, CONSUMER_HEADER).unwrap_or_default(),
        reason: header(h, DEAD_REASON_HEADER).ok_or_else(|| malformed("no reason header"))?,
        subject: header(h, SUBJECT_HEADER).ok_or_else(|| malformed("no subject header"))?,
        order,
        time: to_chrono(msg.time),
        size: msg.payload.len(),
        origin,
        deliveries: header(h, DELIVERIES_HEADER).and_then(|s| s.parse().ok()),
        redriven: None,
    })
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.as_str().to_string())
}

/// The original headers kept under [`ORIGINAL_HEADER_PREFIX`].
fn original_headers(h: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, values) in h.iter() {
        let name: &str = name.as_ref();
        if let Some(original) = name.strip_prefix(ORIGINAL_HEADER_PREFIX) {
            out.extend(
                values
                    .iter()
                    .map(|v| (original.to_string(), v.as_str().to_string())),
            );
        }
    }
    out.sort();
    out
}

/// One line of at most [`REASON_LEN_MAX`] bytes (header values cannot hold line breaks).
fn one_line(reason: &str) -> String {
    let mut line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > REASON_LEN_MAX {
        let mut cut = REASON_LEN_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    match line.trim().is_empty() {
        true => "no reason given".into(),
        false => line,
    }
}

/// A subject token for an order id: wildcards, separators and spaces replaced.
fn subject_token(order: &str) -> String {
    let t: String = order
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect();
    match t.is_empty() {
        true => "_".into(),
        false => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_their_tokens() {
        for s in Source::ALL {
            assert_eq!(Source::parse(s.token()), Some(s));
        }
        assert_eq!(Source::parse("engine"), Some(Source::Engine));
        assert_eq!(Source::parse(REDRIVE_TOKEN), None);
    }

    #[test]
    fn letters_are_told_from_requests_and_markers() {
        assert!(is_letter("paystate.dead.cmd.o1"));
        assert!(!is_letter("paystate.dead._redriven.7"));
        assert!(!is_letter("paystate.dead._redrive.workers.o1"));
        assert!(!is_letter("paystate.deadx.cmd"));
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(one_line("a\nb\r"), "a b ");
        assert_eq!(one_line(" \n"), "no reason given");
        let long = "é".repeat(REASON_LEN_MAX);
        assert!(one_line(&long).len() <= REASON_LEN_MAX);
    }

    fn letter(seq: u64) -> DeadLetter {
        DeadLetter {
            seq,
            source: Source::Engine,
            consumer: "paystate-engine".into(),
            order: "o1".into(),
            reason: "r".into(),
            time: chrono::Utc::now(),
            size: 0,
            subject: "paystate.cmd.o1".into(),
            origin: None,
            deliveries: None,
            redriven: None,
        }
    }

    fn stored(
        seq: u64,
        headers: HeaderMap,
        payload: &'static [u8],
    ) -> jetstream::message::StreamMessage {
        jetstream::message::StreamMessage {
            subject: marker_subject(7).into(),
            sequence: seq,
            headers,
            payload: Bytes::from_static(payload),
            time: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn marker_headers(to: &str, seq: &str, id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(REDRIVEN_TO_HEADER, to);
        h.insert(REDRIVEN_SEQ_HEADER, seq);
        h.insert(async_nats::header::NATS_MESSAGE_ID, id);
        h
    }

    #[test]
    fn a_marker_counts_only_as_paystate_writes_it() {
        let l = letter(7);
        let real = stored(
            9,
            marker_headers("paystate.cmd.o1", "42", "redriven:7"),
            b"",
        );
        let r = marker_of(&l, &real).expect("a marker");
        assert_eq!((r.to.as_str(), r.seq), ("paystate.cmd.o1", 42));
        let pub_ack = stored(
            9,
            HeaderMap::new(),
            br#"{"stream":"PAYSTATE_COMMANDS","seq":5}"#,
        );
        assert_eq!(marker_of(&l, &pub_ack), None, "a broker's answer");
        for (to, seq, id) in [
            ("paystate.cmd.o2", "42", "redriven:7"),
            ("paystate.cmd.o1", "x", "redriven:7"),
            ("paystate.cmd.o1", "42", "redriven:8"),
        ] {
            let m = stored(9, marker_headers(to, seq, id), b"");
            assert_eq!(marker_of(&l, &m), None, "{to} {seq} {id}");
        }
    }

    #[test]
    fn order_tokens_never_widen_a_subject() {
        assert_eq!(subject_token("a.b*>c d"), "a_b__c_d");
        assert_eq!(subject_token(""), "_");
    }
}
