//! Hot order state, bounded. Each partition task owns one cache, so there is no locking.
//! An entry is only a shortcut: the optimistic-concurrency check on append catches a stale
//! entry (another instance wrote the order), which is then dropped and re-read from the log.

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
    pub fn get(&mut self, order: &OrderId) -> Option<CachedOrder> {
        self.entries.get(order).cloned()
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
