//! Whole-log reads in passes, so that a reader keeping something per order (the audit keeps
//! each order's state, the projection rebuild its record) stays within a memory bound
//! whatever the log holds: with more orders than one pass may keep, the log's snapshot is
//! read once per pass and each pass handles one share of the orders (FNV-1a of the order id,
//! [`paystate_events::ids::shard_of`]). Every pass reads the whole log, so memory is traded
//! for time.

use crate::{Journal, LogScan, RawEntry, ReadError, ScanOptions};
use paystate_events::ids::shard_of;
use tokio::sync::mpsc;

/// Default for the orders one pass keeps. The audit keeps each order's whole state while it
/// reads (an order may get its next commit anywhere later in the log), about 3 KB per order
/// of the bench's lifecycle (`paystate bench-read --events 1200000`, 2026-12-05: 479 MB
/// resident for 160,000 orders, 39 MB for the raw read alone), the rebuild about 2.4 KB (386
/// MB): about 1.5 GB at this bound.
pub const ORDERS_PER_PASS_DEFAULT: u64 = 500_000;

/// Most passes over one snapshot: a log needing more asks for a larger bound (each pass
/// reads the whole log).
pub const PASSES_MAX: u64 = 256;

/// More passes than [`PASSES_MAX`] would be needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the log holds {orders} orders: {passes} passes of {per_pass} orders, more than {max}; \
     raise the orders per pass (memory: about 3 KB per order)",
    max = PASSES_MAX
)]
pub struct TooManyPasses {
    pub orders: u64,
    pub passes: u64,
    pub per_pass: u64,
}

/// Passes needed for `orders` orders at `per_pass` per pass (at least one; a bound of 0
/// counts as 1).
pub fn passes_for(orders: u64, per_pass: u64) -> u64 {
    orders.div_ceil(per_pass.max(1)).max(1)
}

/// [`passes_for`], refused beyond [`PASSES_MAX`].
pub fn plan(orders: u64, per_pass: u64) -> Result<u64, TooManyPasses> {
    let passes = passes_for(orders, per_pass);
    if passes > PASSES_MAX {
        return Err(TooManyPasses {
            orders,
            passes,
            per_pass,
        });
    }
    Ok(passes)
}

/// Progress is reported every this many messages read.
pub const PROGRESS_EVERY: u64 = 4096;
/// Messages handed to a worker thread at a time.
pub const FEED_BATCH_MAX: usize = 256;

/// The passes of one whole-log read: the first scan's snapshot and how many passes its
/// orders take.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub passes: u64,
    /// The snapshot's last sequence: every pass ends there.
    pub end_seq: u64,
    /// Messages in the snapshot (for progress).
    pub messages: u64,
}

impl Plan {
    /// The passes `first` (a whole-log scan just opened) needs at `per_pass` orders per pass.
    pub fn of(first: &LogScan, per_pass: u64) -> Result<Plan, TooManyPasses> {
        Ok(Plan {
            passes: plan(first.subjects_total, per_pass)?,
            end_seq: first.end_seq,
            messages: first.messages_total,
        })
    }

    /// The scan of a pass after the first: the same snapshot again, whatever was written since.
    pub async fn rescan(&self, journal: &Journal) -> Result<LogScan, ReadError> {
        let again = ScanOptions {
            until_seq: Some(self.end_seq),
            ..ScanOptions::default()
        };
        journal.scan(again).await
    }

    /// The share of `pass`, split over `workers` threads.
    pub fn share(&self, pass: u64, workers: usize) -> Share {
        Share {
            pass,
            passes: self.passes,
            workers,
        }
    }

    /// `(done, to do)` over all passes once `pass` has read `read` messages.
    fn progress(&self, pass: u64, read: u64) -> (u64, u64) {
        let all = self.passes.saturating_mul(self.messages);
        (pass.saturating_mul(self.messages).saturating_add(read), all)
    }
}

/// Reads `scan` (pass `pass` of `plan`) to its end, showing every message to `each` and
/// handing those of the pass's orders to their worker (`senders`, one per worker thread, at
/// least one; in batches of [`FEED_BATCH_MAX`]; the senders are dropped at the end, so the
/// workers finish). `progress` gets (messages read,
/// messages to read) over all the plan's passes every [`PROGRESS_EVERY`] and at the end. Returns the messages read
/// and the read's failure, if it failed; a worker that is gone ends the read early (joining it
/// says why).
pub async fn feed(
    scan: &mut LogScan,
    plan: &Plan,
    pass: u64,
    senders: Vec<mpsc::Sender<Vec<RawEntry>>>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
    mut each: impl FnMut(&RawEntry),
) -> (u64, Option<ReadError>) {
    let share = plan.share(pass, senders.len());
    let mut batches: Vec<Vec<RawEntry>> = senders
        .iter()
        .map(|_| Vec::with_capacity(FEED_BATCH_MAX))
        .collect();
    let (mut read, mut failure) = (0u64, None);
    while let Some(entry) = scan.next().await {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        read += 1;
        each(&entry);
        if read.is_multiple_of(PROGRESS_EVERY) {
            let (done, all) = plan.progress(pass, read);
            progress(done, all);
        }
        let Some(w) = share.worker(entry.subject_order().unwrap_or(&entry.subject)) else {
            continue; // another pass handles this order
        };
        // Why indexing cannot fail: `w` < the share's workers = `senders.len()` (at least one).
        batches[w].push(entry);
        if batches[w].len() >= FEED_BATCH_MAX {
            let full = std::mem::replace(&mut batches[w], Vec::with_capacity(FEED_BATCH_MAX));
            if senders[w].send(full).await.is_err() {
                break; // the worker is gone; joining it says why
            }
        }
    }
    for (batch, sender) in batches.into_iter().zip(&senders) {
        if !batch.is_empty() {
            let _ = sender.send(batch).await;
        }
    }
    drop(senders);
    let (done, all) = plan.progress(pass, read);
    progress(done, all);
    (read, failure)
}

/// Which pass, and which of the pass's worker threads, handle an order: one FNV-1a shard of
/// `passes × workers`. With one pass an order goes to worker `shard_of(order, workers)`, as
/// it did before passes.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    pub pass: u64,
    pub passes: u64,
    pub workers: usize,
}

impl Share {
    /// The worker of this pass that handles `order` (any subject token), `None` if another
    /// pass does.
    pub fn worker(&self, order: &str) -> Option<usize> {
        let workers = self.workers.max(1);
        let shards = usize::try_from(self.passes)
            .unwrap_or(usize::MAX)
            .saturating_mul(workers);
        let shard = shard_of(order, shards);
        let pass = (shard / workers) as u64;
        (pass == self.pass).then_some(shard % workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passes_cover_the_orders_at_their_bound() {
        assert_eq!(passes_for(0, 500_000), 1, "an empty log is one pass");
        assert_eq!(passes_for(500_000, 500_000), 1);
        assert_eq!(passes_for(500_001, 500_000), 2);
        assert_eq!(passes_for(12, 3), 4);
        assert_eq!(passes_for(12, 0), 12, "a bound of 0 counts as 1");
        assert_eq!(plan(PASSES_MAX, 1), Ok(PASSES_MAX));
        let refused = plan(PASSES_MAX + 1, 1).expect_err("too many passes");
        assert!(
            refused.to_string().contains("raise the orders per pass"),
            "{refused}"
        );
    }

    proptest! {
        /// Every order (and any subject a stray message has) is handled by exactly one pass,
        /// by a worker that exists; by the worker it would have in one pass.
        #[test]
        fn each_order_has_exactly_one_pass_and_worker(
            order in prop_oneof!["[A-Za-z0-9_-]{1,64}", any::<String>()],
            passes in 1u64..=PASSES_MAX,
            workers in 1usize..=16,
        ) {
            let claims: Vec<(u64, usize)> = (0..passes)
                .filter_map(|pass| Share { pass, passes, workers }.worker(&order).map(|w| (pass, w)))
                .collect();
            prop_assert_eq!(claims.len(), 1);
            prop_assert_eq!(claims[0].1, shard_of(&order, workers));
            let one = Share { pass: 0, passes: 1, workers };
            prop_assert_eq!(one.worker(&order), Some(shard_of(&order, workers)));
        }
    }
}
