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
use paystate_events::subjects::{rpc_partition, rpc_subject, Plane, RPC_PARTITIONS};
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

/// The owner's outcome JSON for a queued command, or `None` when it gave none (decide here).
pub async fn to_owner(
    client: &async_nats::Client,
    plane: Plane,
    order_token: &str,
    payload: Bytes,
    wait: Duration,
) -> Option<Bytes> {
    let request = client.request(rpc_subject(plane, order_token), payload);
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

#[cfg(test)]
mod tests {
    use super::*;

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
