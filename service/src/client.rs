//! Sending commands and waiting for outcomes, for Rust callers (other languages follow the
//! README). Two paths (decision 0013):
//!
//! - the fast path (default, [`Client::new`]): a core NATS request to
//!   `paystate.rpc.<plane>.<partition>.<order_id>`, answered by the `paystate` service once the
//!   log holds the commit; retried with the same bytes on "no responders", on a timeout of one
//!   attempt and on a 503 service error, until the caller's wait runs out;
//! - the queue path ([`Client::queue`], [`Client::via_queue`]): a durable publish to
//!   `paystate.<plane>.<order_id>` in `PAYSTATE_COMMANDS` with a `Paystate-Reply-To` header,
//!   processed even when no engine runs yet. [`Client::publish`] is always this path. The
//!   broker's acknowledgement of the publish (its PubAck) comes back on the same reply inbox
//!   as the outcome: one subscription and one wait per command (see [`Reply`]).

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::HeaderMap;
use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures::StreamExt;
use paystate_events::subjects::{
    order_token, parse_rpc_subject, plane_for, plane_of, queue_subject_of, rpc_subject,
    COMMANDS_PREFIX, REPLY_HEADER,
};
use paystate_events::{CommandEnvelope, Outcome};
use std::collections::hash_map::{Entry, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, OnceCell};
use tokio::task::AbortHandle;

/// Why a command got no outcome.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker did not take the command: it was not accepted and will not be processed.
    #[error("command not accepted by the broker: {0}")]
    NotAccepted(String),
    /// No outcome came in time. On the queue path the broker accepted the command (it will
    /// still be processed); on the fast path it may or may not be committed: send the same
    /// bytes again, the retry is answered from the log.
    #[error("no outcome within {0:?}; the command may still be processed (retrying it with the same bytes is safe)")]
    Timeout(Duration),
    #[error("unreadable outcome: {0}")]
    BadReply(String),
}

/// A paystate client over one NATS connection. Outcomes come back on one wildcard inbox
/// subscription per client (`<inbox>.<n>`, one `n` per command), shared by every clone: no
/// subscribe/unsubscribe per command, which costs the broker and the client more than the
/// command itself at high rates.
#[derive(Clone)]
pub struct Client {
    nats: async_nats::Client,
    replies: Arc<Replies>,
    /// How [`Client::send`] and [`Client::send_to`] deliver commands.
    path: Path,
}

/// The path a client's `send` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Core request to the `paystate` service (`paystate.rpc.*`): one store per command.
    Fast,
    /// Durable publish to the command queue with a reply header: processed even if no
    /// engine runs when it is sent.
    Queue,
}

/// First pause before retrying a request nobody serves right now ("no responders").
pub const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// Longest pause between retries (the backoff doubles up to it).
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest wait for one attempt's answer before the same bytes are sent again.
pub const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(2);
/// Longest wait for the broker's acknowledgement of a fire-and-forget publish
/// ([`Client::publish`]); async-nats's JetStream default.
pub const STORE_WAIT: Duration = Duration::from_secs(5);
/// Service error code of a request to retry (the engine could not settle it now).
const CODE_RETRY: &str = "503";
/// The engine's "outcome not encoded" (`fast::CODE_INTERNAL`): it may follow a commit, so it
/// is no refusal; the same bytes again are answered from the log.
const CODE_INTERNAL: &str = "500";

/// Whether a service error code means "send the same bytes again": the engine may or may not
/// have committed the command, and a retry is answered from the log (decision 0013). Any
/// other code is a refusal of the request itself (a malformed subject or reply inbox).
fn retry_on(code: &str) -> bool {
    code == CODE_RETRY || code == CODE_INTERNAL
}

/// What came back on a queued command's reply inbox (`<prefix>.<token>`): the broker's answer
/// to the publish (published with the inbox as its reply subject), then the engine's outcome
/// (the `Paystate-Reply-To` header names the same inbox).
#[derive(Debug, PartialEq)]
enum Reply {
    /// The broker stored the command (a PubAck without error).
    Stored,
    /// The broker did not store it: a PubAck with an error, or "no responders" (no stream
    /// takes the subject).
    Refused(String),
    /// Anything else: the engine's outcome (read, or refused as unreadable, by the caller).
    Outcome(Bytes),
}

impl Reply {
    fn of(msg: async_nats::Message) -> Reply {
        if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            return Reply::Refused("no stream stores this subject (is paystate set up?)".into());
        }
        // Why the prefix first: every outcome the engine writes starts so (`outcome` is the
        // tag serde writes first), and it spares the probe below on the common reply.
        if msg.payload.starts_with(br#"{"outcome""#) {
            return Reply::Outcome(msg.payload);
        }
        match serde_json::from_slice::<PubAck>(&msg.payload) {
            // Why cut: the text is the broker's, shown to callers and logs; keep it short.
            Ok(PubAck { error: Some(e), .. }) => Reply::Refused(format!(
                "{} ({})",
                paystate_events::view::cut(&e.description),
                e.code
            )),
            Ok(PubAck {
                stream: Some(_),
                seq: Some(_),
                error: None,
            }) => Reply::Stored,
            _ => Reply::Outcome(msg.payload),
        }
    }
}

/// The fields of JetStream's answer to a publish that tell stored from refused.
#[derive(serde::Deserialize)]
struct PubAck {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    error: Option<PubAckError>,
}

#[derive(serde::Deserialize)]
struct PubAckError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    description: String,
}

/// One command waiting on its reply token.
struct Waiter {
    tx: oneshot::Sender<Reply>,
    /// Waits for the outcome ([`Client::send`]): the broker's "stored" is passed over.
    /// Otherwise ([`Client::publish`]) the broker's answer is all it waits for.
    outcome: bool,
}

/// Commands waiting for their outcome, by reply token.
struct Replies {
    /// `_INBOX.<unique>`; replies arrive on `<prefix>.<token>`.
    prefix: String,
    next_token: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
    /// The task routing replies to waiters, started on first use; stopped when the last
    /// clone of the client is dropped (its subscription goes with it).
    router: OnceCell<AbortHandle>,
}

impl Drop for Replies {
    fn drop(&mut self) {
        if let Some(router) = self.router.get() {
            router.abort();
        }
    }
}

impl Replies {
    fn wait_for(&self, outcome: bool) -> (u64, oneshot::Receiver<Reply>) {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(token, Waiter { tx, outcome });
        (token, rx)
    }

    fn forget(&self, token: u64) {
        self.lock().remove(&token);
    }

    /// Hands `reply` to the command waiting on `token`, if it waits for it; a command waiting
    /// for its outcome keeps waiting after the broker's "stored".
    fn deliver(&self, token: u64, reply: Reply) {
        let mut waiting = self.lock();
        let Entry::Occupied(waiter) = waiting.entry(token) else {
            return;
        };
        if waiter.get().outcome && reply == Reply::Stored {
            return;
        }
        let _ = waiter.remove().tx.send(reply);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        // Why: the map stays consistent even if a holder panicked (single inserts/removes).
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The subject a command is published on: provider signals on the signal plane (only the
/// signal-reporting role may publish there), operator commands (`resolve_review`) on the
/// operator plane (only the operator role), everything else on the client plane.
pub fn subject_of(cmd: &CommandEnvelope) -> String {
    queue_subject_of(plane_for(cmd.command.name()), cmd.order_id.as_str())
}

/// Routes each reply to the command waiting for it; replies nobody waits for (a duplicate
/// reply after a redelivery, or one that came after its timeout) are dropped.
async fn route_replies(mut sub: async_nats::Subscriber, replies: std::sync::Weak<Replies>) {
    while let Some(msg) = sub.next().await {
        let Some(replies) = replies.upgrade() else {
            return;
        };
        let token = msg.subject.rsplit('.').next().and_then(|t| t.parse().ok());
        if let Some(token) = token {
            replies.deliver(token, Reply::of(msg));
        }
    }
}

impl Client {
    /// A client on the fast path (request/reply to the `paystate` service).
    pub fn new(nats: async_nats::Client) -> Client {
        Client::on(nats, Path::Fast)
    }

    /// A client on the queue path (durable publish; today's behaviour before decision 0013).
    pub fn queue(nats: async_nats::Client) -> Client {
        Client::on(nats, Path::Queue)
    }

    /// The same client (connection and reply inbox) on the queue path.
    pub fn via_queue(&self) -> Client {
        Client {
            path: Path::Queue,
            ..self.clone()
        }
    }

    /// The path [`Client::send`] takes.
    pub fn path(&self) -> Path {
        self.path
    }

    fn on(nats: async_nats::Client, path: Path) -> Client {
        let replies = Arc::new(Replies {
            prefix: nats.new_inbox(),
            next_token: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            router: OnceCell::new(),
        });
        Client {
            nats,
            replies,
            path,
        }
    }

    /// Subscribes to the client's reply inbox once; later calls return at once.
    async fn ensure_router(&self) -> Result<(), ClientError> {
        self.replies
            .router
            .get_or_try_init(|| async {
                let sub = self
                    .nats
                    .subscribe(format!("{}.*", self.replies.prefix))
                    .await
                    .map_err(|e| ClientError::NotAccepted(e.to_string()))?;
                let task = tokio::spawn(route_replies(sub, Arc::downgrade(&self.replies)));
                Ok::<_, ClientError>(task.abort_handle())
            })
            .await
            .map(|_| ())
    }

    /// Sends `cmd` (fast path or queue, see [`Path`]) and waits up to `wait` for its outcome.
    pub async fn send(
        &self,
        cmd: &CommandEnvelope,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        let plane = plane_for(cmd.command.name());
        match self.path {
            Path::Fast => {
                let subject = rpc_subject(plane, cmd.order_id.as_str());
                self.request(subject, Bytes::from(bytes), wait).await
            }
            Path::Queue => {
                let subject = queue_subject_of(plane, cmd.order_id.as_str());
                self.send_queued(subject, bytes, wait).await
            }
        }
    }

    /// Publishes raw bytes as a command for `order_token` (used for bad-input tests and the
    /// CLI) and waits for the outcome.
    pub async fn send_raw(
        &self,
        order_token: &str,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        self.send_to(format!("{COMMANDS_PREFIX}.{order_token}"), bytes, wait)
            .await
    }

    /// Sends raw bytes as a command on `subject` (a queue-plane subject such as
    /// `paystate.signal.<order>`, or a fast-path subject) and waits for the outcome. On the
    /// fast path a queue-plane subject is mapped to its `paystate.rpc` subject.
    pub async fn send_to(
        &self,
        subject: String,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        match self.path {
            Path::Fast => {
                let subject = fast_subject(subject)?;
                self.request(subject, Bytes::from(bytes), wait).await
            }
            Path::Queue => self.send_queued(subject, bytes, wait).await,
        }
    }

    /// The fast path: the same bytes again on no responders (backing off), on an attempt's
    /// timeout and on a 503, until `wait` runs out.
    async fn request(
        &self,
        subject: String,
        bytes: Bytes,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut backoff = RETRY_BACKOFF_FIRST;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(wait));
            }
            let request = async_nats::Request::new()
                .payload(bytes.clone())
                .timeout(Some(left.min(ATTEMPT_TIMEOUT_MAX)));
            let pause = match self.nats.send_request(subject.clone(), request).await {
                Ok(reply) => match service_error(&reply) {
                    None => {
                        return Outcome::from_json(&reply.payload)
                            .map_err(|e| ClientError::BadReply(e.to_string()))
                    }
                    Some((code, _)) if retry_on(&code) => true,
                    Some((code, text)) => {
                        return Err(ClientError::NotAccepted(format!(
                            "refused by the engine ({code}): {text}"
                        )))
                    }
                },
                Err(e) => match e.kind() {
                    RequestErrorKind::TimedOut => false,
                    RequestErrorKind::NoResponders | RequestErrorKind::Other => true,
                    RequestErrorKind::InvalidSubject | RequestErrorKind::MaxPayloadExceeded => {
                        return Err(ClientError::NotAccepted(e.to_string()))
                    }
                },
            };
            if pause {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }

    /// The queue path: a durable publish with a reply header, then the outcome on the inbox
    /// (the broker's refusal of the publish, if it refuses, on the same inbox).
    async fn send_queued(
        &self,
        subject: String,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        match self.publish_queued(subject, bytes, true, wait).await? {
            Some(payload) => {
                Outcome::from_json(&payload).map_err(|e| ClientError::BadReply(e.to_string()))
            }
            // Why: a waiter for the outcome is never handed "stored" (Replies::deliver).
            None => Err(ClientError::BadReply("no outcome in the reply".into())),
        }
    }

    /// Publishes durably without waiting for the outcome; returns once the broker stored it.
    /// No answer from the broker within [`STORE_WAIT`] is a timeout: it may have stored the
    /// command (publishing the same bytes again is safe: the log answers it as a duplicate).
    pub async fn publish(&self, cmd: &CommandEnvelope) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        match self
            .publish_queued(subject_of(cmd), bytes, false, STORE_WAIT)
            .await?
        {
            None => Ok(()),
            Some(_) => Err(ClientError::BadReply(
                "the broker's answer to the publish is not a JetStream acknowledgement".into(),
            )),
        }
    }

    /// Publishes `bytes` to the command queue with the client's inbox as the reply subject
    /// (the broker's answer) and, if `outcome`, as the `Paystate-Reply-To` header (the
    /// engine's); waits up to `wait` for the outcome (`Some`), or for the broker's "stored"
    /// (`None`).
    async fn publish_queued(
        &self,
        subject: String,
        bytes: Vec<u8>,
        outcome: bool,
        wait: Duration,
    ) -> Result<Option<Bytes>, ClientError> {
        self.ensure_router().await?;
        let (token, reply) = self.replies.wait_for(outcome);
        let inbox = format!("{}.{token}", self.replies.prefix);
        let mut headers = HeaderMap::new();
        if outcome {
            headers.insert(REPLY_HEADER, inbox.as_str());
        }
        if let Err(e) = self
            .nats
            .publish_with_reply_and_headers(subject, inbox, headers, bytes.into())
            .await
        {
            self.replies.forget(token);
            return Err(ClientError::NotAccepted(e.to_string()));
        }
        match tokio::time::timeout(wait, reply).await {
            Ok(Ok(Reply::Refused(why))) => Err(ClientError::NotAccepted(why)),
            Ok(Ok(Reply::Stored)) => Ok(None),
            Ok(Ok(Reply::Outcome(payload))) => Ok(Some(payload)),
            Ok(Err(_)) | Err(_) => {
                self.replies.forget(token);
                Err(ClientError::Timeout(wait))
            }
        }
    }
}

/// The fast-path subject for `subject`: a `paystate.rpc` subject as it is, a queue-plane
/// subject (`paystate.<plane>.<order>`) mapped to its plane and partition.
fn fast_subject(subject: String) -> Result<String, ClientError> {
    if parse_rpc_subject(&subject).is_some() {
        return Ok(subject);
    }
    match (plane_of(&subject), order_token(&subject)) {
        (Some(plane), Some(order)) => Ok(rpc_subject(plane, order)),
        _ => Err(ClientError::NotAccepted(format!(
            "{subject:?} is not a command subject"
        ))),
    }
}

/// The service error of a reply (`Nats-Service-Error-Code`, `Nats-Service-Error`), if any.
fn service_error(reply: &async_nats::Message) -> Option<(String, String)> {
    let headers = reply.headers.as_ref()?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?.as_str().to_string();
    let text = headers
        .get(NATS_SERVICE_ERROR)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    Some((code, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_may_follow_a_commit_is_retried_not_reported_refused() {
        assert!(retry_on("503"), "busy, or not settled now");
        assert!(
            retry_on("500"),
            "outcome not encoded: the command may be committed"
        );
        assert!(!retry_on("400"), "a malformed request is refused");
    }

    fn on_inbox(payload: &[u8], status: Option<async_nats::StatusCode>) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x.1".into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn the_brokers_answers_and_the_outcome_are_told_apart() {
        let stored = [
            &br#"{"stream":"PAYSTATE_COMMANDS", "seq":7}"#[..],
            br#"{"stream":"PAYSTATE_COMMANDS","seq":8,"duplicate":true}"#,
            br#"{"stream":"PAYSTATE_COMMANDS","domain":"hub","seq":9}"#,
        ];
        for payload in stored {
            assert_eq!(Reply::of(on_inbox(payload, None)), Reply::Stored);
        }
        let refused =
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
        assert_eq!(
            Reply::of(on_inbox(refused, None)),
            Reply::Refused("maximum messages exceeded (503)".into())
        );
        let long = format!(
            r#"{{"error":{{"code":400,"description":"{}"}}}}"#,
            "é".repeat(5000)
        );
        let Reply::Refused(why) = Reply::of(on_inbox(long.as_bytes(), None)) else {
            panic!("a refusal")
        };
        assert!(why.len() < 200 && why.ends_with("(400)"), "{why}");
        let nobody = Reply::of(on_inbox(b"", Some(async_nats::StatusCode::NO_RESPONDERS)));
        assert!(matches!(nobody, Reply::Refused(why) if why.contains("no stream")));
        // The outcome, and whatever is neither (left for the outcome reader to refuse).
        for payload in [
            &br#"{"outcome":"accepted","order_id":"o-1"}"#[..],
            br#"{"outcome":"rejected"}"#,
            b"not json",
            br#"{"stream":"S"}"#,
            b"",
        ] {
            assert_eq!(
                Reply::of(on_inbox(payload, None)),
                Reply::Outcome(Bytes::copy_from_slice(payload))
            );
        }
    }

    proptest::proptest! {
        /// Whatever arrives on the inbox is classified without panicking, and anything that
        /// starts as an outcome is handed to the outcome reader, never taken for the broker's.
        #[test]
        fn any_reply_is_classified(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = Reply::of(on_inbox(&tail, None));
            let outcome = [&br#"{"outcome""#[..], &tail].concat();
            proptest::prop_assert_eq!(
                Reply::of(on_inbox(&outcome, None)),
                Reply::Outcome(Bytes::from(outcome))
            );
        }
    }

    #[test]
    fn a_command_waiting_for_its_outcome_passes_over_the_brokers_stored() {
        let replies = Replies {
            prefix: "_INBOX.x".into(),
            next_token: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            router: OnceCell::new(),
        };
        let (sent, mut outcome) = replies.wait_for(true);
        let (published, mut stored) = replies.wait_for(false);
        replies.deliver(sent, Reply::Stored);
        assert!(outcome.try_recv().is_err(), "still waiting for the outcome");
        replies.deliver(published, Reply::Stored);
        assert_eq!(stored.try_recv().ok(), Some(Reply::Stored));
        let answer = Bytes::from_static(br#"{"outcome":"accepted"}"#);
        replies.deliver(sent, Reply::Outcome(answer.clone()));
        assert_eq!(outcome.try_recv().ok(), Some(Reply::Outcome(answer)));
        assert!(replies.lock().is_empty(), "every waiter answered once");
        // A late or repeated reply finds nobody waiting and is dropped.
        replies.deliver(sent, Reply::Stored);
        assert!(replies.lock().is_empty());
    }

    #[test]
    fn queue_subjects_map_to_their_fast_path_subject() {
        let to = fast_subject("paystate.signal.o-1".into()).expect("maps");
        assert_eq!(
            to,
            rpc_subject(paystate_events::subjects::Plane::Signal, "o-1")
        );
        assert_eq!(fast_subject(to.clone()).expect("kept"), to);
        assert!(fast_subject("paystate.events.o-1".into()).is_err());
        assert!(fast_subject("elsewhere".into()).is_err());
    }
}
