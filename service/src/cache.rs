//! Hot order state, bounded. Each partition task owns one cache, so there is no locking.
//! An entry is only a shortcut: the optimistic-concurrency check on append catches a stale
//! entry (another instance wrote the order), which is then dropped and re-read from the log.
//!
//! The processor takes an order's entry out while it handles a command of it and puts the
//! state it ends with back ([`OrderCache::take`], [`OrderCache::put`]): the state moves, it is
//! never copied per command. An attempt that ends without a state it can vouch for (a
//! conflict, an unconfirmed append) leaves the order out, and the next command of it reads
//! the log.

use lru::LruCache;
use paystate_events::{OrderId, OrderState};
use std::num::NonZeroUsize;

/// An order as last seen by this partition.
#[derive(Debug, Clone)]
pub struct CachedOrder {
    pub state: Option<OrderState>,
    /// The order subject's last stream sequence.
    pub last_seq: u64,
}

pub struct OrderCache {
    entries: LruCache<OrderId, CachedOrder>,
}

impl OrderCache {
    /// A cache holding at most `orders_max` orders (at least one).
    pub fn new(orders_max: usize) -> OrderCache {
        let cap = NonZeroUsize::new(orders_max.max(1)).unwrap_or(NonZeroUsize::MIN);
        OrderCache {
            entries: LruCache::new(cap),
        }
    }
    /// Takes the order's entry out (the caller puts back what it ends with).
    pub fn take(&mut self, order: &OrderId) -> Option<CachedOrder> {
        self.entries.pop(order)
    }
    pub fn put(&mut self, order: OrderId, entry: CachedOrder) {
        self.entries.put(order, entry);
    }
    pub fn forget(&mut self, order: &OrderId) {
        self.entries.pop(order);
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
