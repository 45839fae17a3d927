//! Publishing commands and waiting for outcomes, for Rust callers (other languages follow the
//! README: publish to `paystate.cmd.<order_id>` with a `Paystate-Reply-To` header).

use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::HeaderMap;
use futures::StreamExt;
use paystate_events::subjects::{COMMANDS_PREFIX, REPLY_HEADER};
use paystate_events::{CommandEnvelope, Outcome};
use std::time::Duration;

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

/// A paystate client over one NATS connection.
#[derive(Clone)]
pub struct Client {
    nats: async_nats::Client,
    js: jetstream::Context,
}

impl Client {
    pub fn new(nats: async_nats::Client) -> Client {
        let js = jetstream::new(nats.clone());
        Client { nats, js }
    }

    /// Publishes `cmd` durably and waits up to `wait` for its outcome.
    pub async fn send(
        &self,
        cmd: &CommandEnvelope,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        self.send_raw(cmd.order_id.as_str(), bytes, wait).await
    }

    /// Publishes raw bytes as a command for `order_token` (used for bad-input tests and the
    /// CLI) and waits for the outcome.
    pub async fn send_raw(
        &self,
        order_token: &str,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<Outcome, ClientError> {
        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        self.publish_raw(order_token, bytes, Some(&inbox)).await?;
        match tokio::time::timeout(wait, replies.next()).await {
            Ok(Some(msg)) => serde_json::from_slice(&msg.payload)
                .map_err(|e| ClientError::BadReply(e.to_string())),
            Ok(None) | Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// Publishes durably without waiting for the outcome; returns once the broker stored it.
    pub async fn publish(&self, cmd: &CommandEnvelope) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(cmd).map_err(|e| ClientError::NotAccepted(e.to_string()))?;
        self.publish_raw(cmd.order_id.as_str(), bytes, None).await
    }

    async fn publish_raw(
        &self,
        order_token: &str,
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
        let subject = format!("{COMMANDS_PREFIX}.{order_token}");
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
