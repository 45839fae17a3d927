//! Order affinity for the queue path: every instance pulls from the shared command queue, so
//! a queued command may reach an instance that does not serve its order's fast-path
//! partition. That instance hands it to the partition's owner as a fast-path request (the
//! same bytes, on the plane the command was queued on) and relays the owner's outcome, so an
//! order's commands are decided by one instance on both paths and optimistic-concurrency
//! conflicts stay the rare case.
//!
//! Forwarding only ever saves a conflict; it never decides anything. If the owner cannot
//! answer with an outcome (no responders during a hand-over, a service error, no reply within
//! [`FORWARD_WAIT`]) the instance decides the command itself as before: the append's
//! optimistic-concurrency check keeps that correct, and a command the owner did commit is
//! answered from the log as a duplicate. The queued command is acknowledged only after its
//! outcome was relayed, which the owner sends once the log holds it.

use async_nats::service::NATS_SERVICE_ERROR_CODE;
use bytes::Bytes;
use paystate_events::subjects::{
    queue_subject_of, rpc_partition, rpc_subject, Plane, COMMANDS_STREAM, QUEUED_SEQ_HEADER,
    RPC_PARTITIONS,
};
use paystate_events::Timestamp;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Longest wait for the owner's outcome before deciding the command here (at most half the
/// consumer's ack wait, so the queued command is not redelivered meanwhile).
pub const FORWARD_WAIT: Duration = Duration::from_secs(2);

/// How long a forward waits under an ack wait of `ack_wait`.
pub fn forward_wait(ack_wait: Duration) -> Duration {
    FORWARD_WAIT.min(ack_wait / 2)
}

// The owned set is one bit per fast-path partition.
const _: () = assert!(RPC_PARTITIONS <= u64::BITS as usize);

/// The fast-path partitions this instance serves right now, readable by every partition task
/// without a lock. Unknown (nothing registered yet, or stopped) until the first registration.
#[derive(Debug, Default)]
pub struct Ownership {
    mask: AtomicU64,
    known: AtomicBool,
}

impl Ownership {
    /// From now on this instance serves exactly `owned`.
    pub fn set(&self, owned: &BTreeSet<usize>) {
        let mask = owned
            .iter()
            .filter(|&&p| p < RPC_PARTITIONS)
            .fold(0u64, |m, &p| m | (1 << p));
        self.mask.store(mask, Ordering::Release);
        self.known.store(true, Ordering::Release);
    }

    /// Serving nothing any more, or not known: every command is decided here.
    pub fn forget(&self) {
        self.known.store(false, Ordering::Release);
    }

    /// Whether a command for `order_token` is better decided by another instance: known
    /// ownership that does not include the order's partition.
    pub fn elsewhere(&self, order_token: &str) -> bool {
        self.known.load(Ordering::Acquire)
            && self.mask.load(Ordering::Acquire) & (1 << rpc_partition(order_token)) == 0
    }
}

/// The owner's outcome JSON for the queued command at `queued_seq` in the command queue, or
/// `None` when it gave none (decide here). The sequence goes along in
/// [`QUEUED_SEQ_HEADER`] so the owner decides the command at its queued time, as this
/// instance would have (see [`queued_at`]).
pub async fn to_owner(
    client: &async_nats::Client,
    plane: Plane,
    order_token: &str,
    payload: Bytes,
    queued_seq: u64,
    wait: Duration,
) -> Option<Bytes> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(QUEUED_SEQ_HEADER, queued_seq.to_string().as_str());
    let request = client.send_request(
        rpc_subject(plane, order_token),
        async_nats::Request::new().payload(payload).headers(headers),
    );
    let reply = match tokio::time::timeout(wait, request).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "owner did not answer a forwarded command; deciding it here");
            return None;
        }
        Err(_) => {
            tracing::debug!("owner's answer to a forwarded command timed out; deciding it here");
            return None;
        }
    };
    let service_error = reply
        .headers
        .as_ref()
        .is_some_and(|h| h.get(NATS_SERVICE_ERROR_CODE).is_some());
    (!service_error).then_some(reply.payload)
}

/// Why a forwarded command's queued time could not be established (the request is then
/// refused with a service error, and the forwarding instance decides the command itself).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueuedAtError {
    #[error("{QUEUED_SEQ_HEADER} is not a stream sequence")]
    BadSequence,
    #[error("no queued command at that sequence (already settled or never queued)")]
    NotQueued,
    #[error("the queued command at that sequence is not this request's (subject or bytes differ)")]
    Mismatch,
    #[error("the command queue could not be read: {0}")]
    Broker(String),
}

/// The header's sequence, if the request carries one (a forwarded queued command).
pub fn queued_seq(headers: Option<&async_nats::HeaderMap>) -> Option<Result<u64, QueuedAtError>> {
    let value = headers?.get(QUEUED_SEQ_HEADER)?.as_str();
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    Some(
        digits
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .filter(|&s| s > 0)
            .ok_or(QueuedAtError::BadSequence),
    )
}

/// When the command queue received the command a forwarded request carries: read back from
/// [`COMMANDS_STREAM`] at `seq`, and only if the stored message is this very command (the
/// queue subject of the request's plane and order, the same bytes). The header only locates;
/// what decides is what the broker stored, so a caller cannot move its decision time.
pub async fn queued_at(
    js: &async_nats::jetstream::Context,
    seq: u64,
    plane: Plane,
    order_token: &str,
    payload: &[u8],
) -> Result<Timestamp, QueuedAtError> {
    let queue = js
        .get_stream_no_info(COMMANDS_STREAM)
        .await
        .map_err(|e| QueuedAtError::Broker(e.to_string()))?;
    let stored = match queue.get_raw_message(seq).await {
        Ok(m) => m,
        Err(e) if paystate_journal::read::is_no_message(&e) => {
            return Err(QueuedAtError::NotQueued)
        }
        Err(e) => return Err(QueuedAtError::Broker(e.to_string())),
    };
    if stored.subject.as_str() != queue_subject_of(plane, order_token) || stored.payload != payload
    {
        return Err(QueuedAtError::Mismatch);
    }
    Ok(paystate_journal::read::to_chrono(stored.time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_seq(value: &str) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(QUEUED_SEQ_HEADER, value);
        h
    }

    #[test]
    fn the_queued_sequence_is_a_positive_decimal_or_refused() {
        assert_eq!(queued_seq(None), None);
        assert_eq!(queued_seq(Some(&async_nats::HeaderMap::new())), None);
        assert_eq!(queued_seq(Some(&with_seq("42"))), Some(Ok(42)));
        assert_eq!(
            queued_seq(Some(&with_seq(&u64::MAX.to_string()))),
            Some(Ok(u64::MAX))
        );
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "0x10",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(
                queued_seq(Some(&with_seq(bad))),
                Some(Err(QueuedAtError::BadSequence)),
                "{bad:?}"
            );
        }
    }

    proptest::proptest! {
        /// Over any header text: a sequence only for a canonical-or-zero-padded positive
        /// decimal that fits a u64, refused otherwise, never a panic.
        #[test]
        fn any_header_text_is_a_sequence_or_refused(value in "[ -~]{0,24}|[0-9]{1,21}") {
            let got = queued_seq(Some(&with_seq(&value)));
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            match value.parse::<u64>() {
                Ok(n) if n > 0 && digits => proptest::prop_assert_eq!(got, Some(Ok(n))),
                _ => proptest::prop_assert_eq!(got, Some(Err(QueuedAtError::BadSequence))),
            }
        }
    }

    #[test]
    fn a_forward_never_outlasts_half_the_ack_wait() {
        assert_eq!(forward_wait(Duration::from_secs(30)), FORWARD_WAIT);
        assert_eq!(forward_wait(Duration::from_secs(2)), Duration::from_secs(1));
    }

    #[test]
    fn unknown_ownership_decides_everything_here() {
        let o = Ownership::default();
        assert!(!o.elsewhere("o-1"));
        o.set(&BTreeSet::new());
        assert!(
            o.elsewhere("o-1"),
            "serving nothing: everything is elsewhere"
        );
        o.forget();
        assert!(!o.elsewhere("o-1"));
    }

    #[test]
    fn an_owned_partition_is_decided_here_and_the_others_elsewhere() {
        let o = Ownership::default();
        // o-1 is in partition 40 (the README's worked example).
        assert_eq!(rpc_partition("o-1"), 40);
        o.set(&[40].into_iter().collect());
        assert!(!o.elsewhere("o-1"));
        let other = (0..1000)
            .map(|i| format!("x{i}"))
            .find(|t| rpc_partition(t) != 40)
            .expect("another partition");
        assert!(o.elsewhere(&other));
        o.set(&(0..RPC_PARTITIONS).collect());
        assert!(!o.elsewhere(&other));
    }
}
