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
    /// `None`: the order's state is taken out (being handled) or was left out after an
    /// attempt it cannot vouch for; either way a miss. The slot stays, so taking and putting
    /// back moves no key and no LRU node (no allocation per command).
    entries: LruCache<OrderId, Option<CachedOrder>>,
}

impl OrderCache {
    /// A cache holding at most `orders_max` orders (at least one).
    pub fn new(orders_max: usize) -> OrderCache {
        let cap = NonZeroUsize::new(orders_max.max(1)).unwrap_or(NonZeroUsize::MIN);
        OrderCache {
            entries: LruCache::new(cap),
        }
    }
    /// Takes the order's entry out (the caller puts back what it ends with); marks it most
    /// recently used.
    pub fn take(&mut self, order: &OrderId) -> Option<CachedOrder> {
        self.entries.get_mut(order).and_then(Option::take)
    }
    /// Puts the order's entry (back) in; the id is copied only for an order not in the cache.
    pub fn put(&mut self, order: &OrderId, entry: CachedOrder) {
        match self.entries.get_mut(order) {
            Some(slot) => *slot = Some(entry),
            None => {
                self.entries.put(order.clone(), Some(entry));
            }
        }
    }
    /// The order's entry, without taking it out or marking it used (`None`: not cached, or
    /// taken out). What the expiry reads after a command to see the state it left.
    pub fn peek(&self, order: &OrderId) -> Option<&CachedOrder> {
        self.entries.peek(order).and_then(Option::as_ref)
    }
    pub fn forget(&mut self, order: &OrderId) {
        self.entries.pop(order);
    }
    /// Orders with a slot (an entry, or one taken out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(last_seq: u64) -> CachedOrder {
        CachedOrder {
            state: None,
            last_seq,
        }
    }

    #[test]
    fn a_taken_entry_is_a_miss_until_put_back_and_the_bound_holds() {
        let mut cache = OrderCache::new(2);
        let (a, b, c) = (
            OrderId::parse("a").expect("id"),
            OrderId::parse("b").expect("id"),
            OrderId::parse("c").expect("id"),
        );
        cache.put(&a, entry(1));
        assert_eq!(cache.take(&a).map(|e| e.last_seq), Some(1));
        assert!(cache.take(&a).is_none(), "taken out: a miss");
        cache.put(&a, entry(2));
        cache.put(&b, entry(3));
        // `a` was used last before `b`: a third order evicts `a`, never more than two.
        cache.put(&c, entry(4));
        assert_eq!(cache.len(), 2);
        assert!(cache.take(&a).is_none());
        assert_eq!(cache.take(&b).map(|e| e.last_seq), Some(3));
        assert_eq!(cache.take(&c).map(|e| e.last_seq), Some(4));
        cache.forget(&c);
        assert_eq!(cache.len(), 1);
    }
}
