//! Refused callbacks: a bad signature or body, which anyone who can reach the public route
//! can send. Each is verified before anything is stored; its raw record and verdict are kept
//! as evidence only within a byte budget per provider route (a token bucket:
//! [`REFUSED_EVIDENCE_BYTES_PER_MINUTE`], bursts up to [`REFUSED_EVIDENCE_BURST_BYTES`]) and
//! only for [`REFUSED_EVIDENCE_TTL`] (the broker deletes them then). Past the budget a refused
//! callback is counted and logged, not stored.
//!
//! Why: stored unconditionally and for ever, as they were, a loop of unsigned 256 KiB POSTs
//! filled the broker's disk, which the log shares, and stopped the engine. Authentic
//! callbacks are stored as before, for ever, before they are applied.

use crate::limits::{
    REFUSED_EVIDENCE_BURST_BYTES, REFUSED_EVIDENCE_BYTES_PER_MINUTE, REFUSED_EVIDENCE_TTL,
};
use paystate_events::Provider;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// The `Nats-TTL` header value of refused evidence (seconds).
pub(crate) fn ttl_header() -> String {
    format!("{}s", REFUSED_EVIDENCE_TTL.as_secs())
}

/// A byte budget per provider route, refilled continuously.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    buckets: Mutex<BTreeMap<Provider, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    bytes: f64,
    at: Instant,
}

impl Budget {
    /// Takes `bytes` from `provider`'s budget at `now` if they are there.
    pub(crate) fn take(&self, provider: Provider, bytes: usize, now: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let burst = REFUSED_EVIDENCE_BURST_BYTES as f64;
        let bucket = buckets.entry(provider).or_insert(Bucket {
            bytes: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        let refill = elapsed.as_secs_f64() * REFUSED_EVIDENCE_BYTES_PER_MINUTE as f64 / 60.0;
        bucket.bytes = (bucket.bytes + refill).min(burst);
        bucket.at = now;
        let wanted = bytes as f64;
        if wanted > bucket.bytes {
            return false;
        }
        bucket.bytes -= wanted;
        true
    }
}

/// How long until a budget spent to nothing holds `bytes` again.
#[cfg(test)]
fn refill_time(bytes: usize) -> std::time::Duration {
    std::time::Duration::from_secs_f64(
        bytes as f64 * 60.0 / REFUSED_EVIDENCE_BYTES_PER_MINUTE as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RAW_RECORD_BYTES_MAX;
    use std::time::Duration;

    #[test]
    fn a_burst_is_kept_then_the_budget_refills_at_its_rate() {
        // Given a fresh budget ...
        let b = Budget::default();
        let t0 = Instant::now();
        // ... the largest record fits at once, and so does a burst's worth of small ones ...
        assert!(b.take(Provider::Plural, RAW_RECORD_BYTES_MAX, t0));
        let rest = REFUSED_EVIDENCE_BURST_BYTES - RAW_RECORD_BYTES_MAX;
        let small = 1000;
        for _ in 0..rest / small {
            assert!(b.take(Provider::Plural, small, t0));
        }
        // ... then nothing more at that moment, on that route only ...
        assert!(!b.take(Provider::Plural, small, t0));
        assert!(b.take(Provider::Flitt, small, t0));
        // ... and after the time the rate gives, that much again, not more.
        let later = t0 + refill_time(small) + Duration::from_millis(1);
        assert!(b.take(Provider::Plural, small, later));
        assert!(!b.take(Provider::Plural, small, later));
    }

    #[test]
    fn a_budget_never_holds_more_than_its_burst() {
        let b = Budget::default();
        let t0 = Instant::now();
        let much_later = t0 + Duration::from_secs(365 * 24 * 3600);
        assert!(b.take(Provider::Exchanger, 1, t0));
        assert!(!b.take(
            Provider::Exchanger,
            REFUSED_EVIDENCE_BURST_BYTES + 1,
            much_later
        ));
        assert!(b.take(
            Provider::Exchanger,
            REFUSED_EVIDENCE_BURST_BYTES,
            much_later
        ));
    }

    #[test]
    fn the_ttl_header_is_in_seconds() {
        assert_eq!(ttl_header(), "604800s");
    }
}
