//! Publishing commands and waiting for outcomes, for Rust callers (other languages follow the
//! README: publish to `paystate.cmd.<order_id>` with a `Paystate-Reply-To` header).

use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use paystate_events::subjects::{plane_for, plane_prefix, COMMANDS_PREFIX, REPLY_HEADER};
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
    /// The broker accepted the command (it will be processed), but no outcome came in time.
    #[error("command accepted but no outcome within {0:?}; it will still be processed")]
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
}

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
    let prefix = plane_prefix(plane_for(cmd.command.name()));
    format!("{prefix}.{}", cmd.order_id)
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
    pub fn new(nats: async_nats::Client) -> Client {
        let js = jetstream::new(nats.clone());
        let replies = Arc::new(Replies {
            prefix: nats.new_inbox(),
            next_token: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            router: OnceCell::new(),
        });
        Client { nats, js, replies }
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

    /// Publishes `cmd` durably and waits up to `wait` for its outcome.
    pub async fn send(
        &self,
        cmd: &CommandEnvelope,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        let subject = subject_of(cmd);
        self.send_to(subject, bytes, wait).await
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

    /// Publishes raw bytes to `subject` (a command or signal subject) and waits for the outcome.
    pub async fn send_to(
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
                serde_json::from_slice(&payload).map_err(|e| ClientError::BadReply(e.to_string()))
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
