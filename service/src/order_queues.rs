//! Per-order queues of one partition task: each order's messages in arrival order, the
//! orders taken in turn (round robin), and orders whose head message failed parked until
//! its retry is due, so a later message of the same order never overtakes it while the
//! other orders go on. Used by the engine's intake and the adapter workers.
//!
//! Bounded by what is put in: the consumers' `max_ack_pending` bounds the messages a
//! partition holds.

use std::collections::{HashMap, HashSet, VecDeque};
use tokio::time::Instant;

/// A message waiting in its order's queue, with the in-process retries it has had.
pub struct Queued<T> {
    pub item: T,
    pub retries: u32,
}

/// The queues of one partition.
pub struct OrderQueues<T> {
    queues: HashMap<String, VecDeque<Queued<T>>>,
    /// Orders with a message ready, in turn.
    turns: VecDeque<String>,
    /// Orders whose head waits for its retry, and when it is due.
    parked: Vec<(Instant, String)>,
    /// Orders whose head is taken and not yet done or retried: what arrives for them meanwhile
    /// waits (their turn comes back with `done`).
    busy: HashSet<String>,
}

impl<T> Default for OrderQueues<T> {
    fn default() -> Self {
        OrderQueues {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            parked: Vec::new(),
            busy: HashSet::new(),
        }
    }
}

impl<T> OrderQueues<T> {
    /// Queues `item` behind its order's earlier ones; an order with nothing queued gets a turn.
    pub fn push(&mut self, order: String, item: T) {
        let queue = self.queues.entry(order.clone()).or_default();
        if queue.is_empty() && !self.busy.contains(&order) {
            self.turns.push_back(order);
        }
        queue.push_back(Queued { item, retries: 0 });
    }

    /// The head of the next order in turn (parked orders that are due get their turn back
    /// first). The order has no turn until [`OrderQueues::done`] or [`OrderQueues::retry`].
    pub fn take_next(&mut self) -> Option<(String, Queued<T>)> {
        self.unpark(Instant::now());
        loop {
            let order = self.turns.pop_front()?;
            if let Some(head) = self.queues.get_mut(&order).and_then(VecDeque::pop_front) {
                self.busy.insert(order.clone());
                return Some((order, head));
            }
            self.queues.remove(&order);
        }
    }

    /// The head taken by [`OrderQueues::take_next`] is finished: the order's next one gets a turn.
    pub fn done(&mut self, order: String) {
        self.busy.remove(&order);
        match self.queues.get(&order).is_some_and(|q| !q.is_empty()) {
            true => self.turns.push_back(order),
            false => {
                self.queues.remove(&order);
            }
        }
    }

    /// The head taken by [`OrderQueues::take_next`] failed: it goes back first in its order's
    /// queue, and the order waits (parked) until `at`.
    pub fn retry(&mut self, order: String, item: T, retries: u32, at: Instant) {
        self.busy.remove(&order);
        let queue = self.queues.entry(order.clone()).or_default();
        queue.push_front(Queued {
            item,
            retries: retries + 1,
        });
        self.parked.push((at, order));
    }

    /// Whether some order may go now.
    pub fn ready(&mut self) -> bool {
        self.unpark(Instant::now());
        !self.turns.is_empty()
    }

    /// When the next parked order is due.
    pub fn wake_at(&self) -> Option<Instant> {
        self.parked.iter().map(|(at, _)| *at).min()
    }

    fn unpark(&mut self, now: Instant) {
        let turns = &mut self.turns;
        self.parked.retain(|(at, order)| {
            let due = *at <= now;
            if due {
                turns.push_back(order.clone());
            }
            !due
        });
    }
}

/// Sleeps until `at`, or forever without one (for a `select!` branch).
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn orders_take_turns_and_keep_their_own_order() {
        let mut q = OrderQueues::default();
        q.push("a".into(), 1);
        q.push("a".into(), 2);
        q.push("b".into(), 10);
        let (o, h) = q.take_next().expect("a");
        assert_eq!((o.as_str(), h.item), ("a", 1));
        q.done(o);
        let (o, h) = q.take_next().expect("b");
        assert_eq!((o.as_str(), h.item), ("b", 10));
        q.done(o);
        let (o, h) = q.take_next().expect("a again");
        assert_eq!((o.as_str(), h.item), ("a", 2));
        q.done(o);
        assert!(q.take_next().is_none());
    }

    #[test]
    fn a_failed_head_is_retried_before_the_rest_of_its_order() {
        let mut q = OrderQueues::default();
        q.push("a".into(), 1);
        q.push("a".into(), 2);
        q.push("b".into(), 10);
        let (o, h) = q.take_next().expect("a");
        q.retry(
            o,
            h.item,
            h.retries,
            Instant::now() + Duration::from_secs(3600),
        );
        let (o, h) = q.take_next().expect("b goes on meanwhile");
        assert_eq!(h.item, 10);
        q.done(o);
        q.push("a".into(), 3);
        assert!(
            q.take_next().is_none(),
            "a is parked; nothing of it overtakes"
        );
        assert!(!q.ready());
        assert!(q.wake_at().is_some());
    }

    #[test]
    fn what_arrives_while_the_head_is_out_waits_for_it() {
        let mut q = OrderQueues::default();
        q.push("a".into(), 1);
        let (o, h) = q.take_next().expect("a");
        assert_eq!(h.item, 1);
        q.push("a".into(), 2);
        assert!(q.take_next().is_none(), "1 is still out: 2 waits");
        q.done(o);
        let (_, h) = q.take_next().expect("then 2");
        assert_eq!(h.item, 2);
    }

    #[test]
    fn a_due_retry_comes_first_in_its_order() {
        let mut q = OrderQueues::default();
        q.push("a".into(), 1);
        q.push("a".into(), 2);
        let (o, h) = q.take_next().expect("a");
        q.retry(o, h.item, h.retries, Instant::now());
        let (o, h) = q.take_next().expect("a's head, retried");
        assert_eq!((h.item, h.retries), (1, 1));
        q.done(o);
        let (_, h) = q.take_next().expect("then 2");
        assert_eq!(h.item, 2);
    }
}
