//! Sending commands and waiting for outcomes, for Rust callers (other languages follow the
//! README). Two paths (decision 0013):
//!
//! - the fast path (default, [`Client::new`]): a core NATS request to
//!   `paystate.rpc.<plane>.<partition>.<order_id>`, answered by the `paystate` service once the
//!   log holds the commit; retried with the same bytes on "no responders", on a timeout of one
//!   attempt and on a 503 service error, until the caller's wait runs out;
//! - the queue path ([`Client::queue`], [`Client::via_queue`]): a durable publish to
//!   `paystate.<plane>.<order_id>` in `PAYSTATE_COMMANDS` with a `Paystate-Reply-To` header,
//!   processed even when no engine runs yet. [`Client::publish`] is always this path.

use async_nats::jetstream::{self, message::PublishMessage};
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
use std::collections::HashMap;
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
    js: jetstream::Context,
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
/// Service error code of a request to retry (nothing committed now).
const CODE_RETRY: &str = "503";

/// Commands waiting for their outcome, by reply token.
struct Replies {
    /// `_INBOX.<unique>`; replies arrive on `<prefix>.<token>`.
    prefix: String,
    next_token: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
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
    fn wait_for(&self) -> (u64, oneshot::Receiver<Bytes>) {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(token, tx);
        (token, rx)
    }

    fn forget(&self, token: u64) {
        self.lock().remove(&token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Bytes>>> {
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
        let waiter = token.and_then(|t| replies.lock().remove(&t));
        if let Some(tx) = waiter {
            let _ = tx.send(msg.payload);
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
        let js = jetstream::new(nats.clone());
        let replies = Arc::new(Replies {
            prefix: nats.new_inbox(),
            next_token: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            router: OnceCell::new(),
        });
        Client {
            nats,
            js,
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
                    Some((code, _)) if code == CODE_RETRY => true,
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

    /// The queue path: a durable publish with a reply header, then the outcome on the inbox.
    async fn send_queued(
        &self,
        subject: String,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        self.ensure_router().await?;
        let (token, reply) = self.replies.wait_for();
        let inbox = format!("{}.{token}", self.replies.prefix);
        if let Err(e) = self.publish_raw(subject, bytes, Some(&inbox)).await {
            self.replies.forget(token);
            return Err(e);
        }
        match tokio::time::timeout(wait, reply).await {
            Ok(Ok(payload)) => {
                Outcome::from_json(&payload).map_err(|e| ClientError::BadReply(e.to_string()))
            }
            Ok(Err(_)) | Err(_) => {
                self.replies.forget(token);
                Err(ClientError::Timeout(wait))
            }
        }
    }

    /// Publishes durably without waiting for the outcome; returns once the broker stored it.
    pub async fn publish(&self, cmd: &CommandEnvelope) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        self.publish_raw(subject_of(cmd), bytes, None).await
    }

    async fn publish_raw(
        &self,
        subject: String,
        bytes: Vec<u8>,
        reply_to: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut headers = HeaderMap::new();
        if let Some(to) = reply_to {
            headers.insert(REPLY_HEADER, to);
        }
        let publish = PublishMessage::build()
            .payload(bytes.into())
            .headers(headers);
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        ack.await
            .map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        Ok(())
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
