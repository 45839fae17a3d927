//! Whole-log reads in passes, so that a reader keeping something per order (the audit keeps
//! each order's state, the projection rebuild its record) stays within a memory bound
//! whatever the log holds: with more orders than one pass may keep, the log's snapshot is
//! read once per pass and each pass handles one share of the orders (FNV-1a of the order id,
//! [`paystate_events::ids::shard_of`]). Every pass reads the whole log, so memory is traded
//! for time.

use paystate_events::ids::shard_of;

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
