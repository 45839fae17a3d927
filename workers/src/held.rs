//! What an adapter worker holds between receiving a commit and acknowledging it, and the
//! bounds on it.
//!
//! - [`HeldAnswers`]: provider answers already worked out into signal commands, kept until
//!   the commit they answer is acknowledged (or set aside). A later attempt at the commit
//!   re-sends exactly those commands (same ids, so the engine applies them once) and never
//!   calls the provider again: for a provider without an idempotency key (Plexy capture,
//!   cancel and refund; Paykassma deposits; exchanger orders) a second call is a second
//!   effect.
//! - [`Holding`]: every message a partition holds (being worked on, queued behind its
//!   order's earlier work, or parked until its retry), so each gets a progress ack every
//!   `ack_wait / PROGRESS_ACKS_PER_ACK_WAIT` and JetStream never hands it to another worker
//!   while this one still has it; a redelivered copy of a held message is recognised and not
//!   worked twice.
//!
//! What remains (not closed here): both live in the worker's memory. A worker process that
//! dies between a provider's answer and the submission of its signals loses the held answer;
//! the commit is redelivered after the ack wait and an unkeyed provider is called again. The
//! same happens if progress acks cannot reach the broker for a whole ack wait (the commit
//! goes to another worker), or if the acknowledgement of a done commit is lost and the
//! redelivery arrives before the engine applied the submitted signals. Closing those needs
//! the answer stored durably before it is submitted, not in memory.

use paystate_events::{CommandEnvelope, Event};
use std::collections::HashMap;
use std::time::Duration;

/// Unacknowledged commits the workers' log consumer hands out at most (JetStream
/// `max_ack_pending`, shared by all worker processes): what one process can hold from it.
pub const LOG_ACK_PENDING_MAX: usize = 1_024;
/// The same for the workers' consumer of redrive requests on the dead-letter stream.
pub const REDRIVE_ACK_PENDING_MAX: usize = 64;
/// Messages one worker process can hold at once, in work, queued or parked: JetStream hands
/// out no more unacknowledged ones. Bounds [`Holding`] and the orders' queues.
pub const HELD_MESSAGES_MAX: usize = LOG_ACK_PENDING_MAX + REDRIVE_ACK_PENDING_MAX;
/// Provider work events of one commit whose answers a held commit keeps. The engine's
/// decisions make one per commit today (`engine/src/decide.rs`); an answer beyond this is
/// not held (logged as an error) and a failed submission of it would call the provider again.
pub const ANSWERS_PER_COMMIT_MAX: usize = 4;
/// Answers one worker process holds at most: each held message is one commit.
pub const HELD_ANSWERS_MAX: usize = HELD_MESSAGES_MAX * ANSWERS_PER_COMMIT_MAX;
/// Progress acks every held message gets per ack wait.
pub const PROGRESS_ACKS_PER_ACK_WAIT: u32 = 4;
/// Shortest ack wait the workers accept: progress acks go out every quarter of it, and a
/// busy machine must be able to keep that pace.
pub const ACK_WAIT_MIN: Duration = Duration::from_secs(1);

// One progress ack lost or late still leaves another within the ack wait.
const _: () = assert!(PROGRESS_ACKS_PER_ACK_WAIT >= 2);
// The consumers' limits are sent to JetStream as i64.
const _: () = assert!(HELD_MESSAGES_MAX <= i64::MAX as usize);
const _: () = assert!(HELD_ANSWERS_MAX / ANSWERS_PER_COMMIT_MAX == HELD_MESSAGES_MAX);
// The redrive consumer never needs more room than the log's.
const _: () = assert!(REDRIVE_ACK_PENDING_MAX <= LOG_ACK_PENDING_MAX);

/// How often a partition sends the progress acks of what it holds.
pub fn progress_every(ack_wait: Duration) -> Duration {
    ack_wait / PROGRESS_ACKS_PER_ACK_WAIT
}

/// A held commit's identity: its order and its sequence in the log (a redriven commit
/// carries its origin's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CommitKey {
    order: String,
    seq: u64,
}

/// One provider answer as the signal commands it was worked out into.
#[derive(Debug)]
struct Answer {
    /// The event's index in its commit.
    index: usize,
    /// The work it answers (a second check that the key names the same work).
    work: Event,
    commands: Vec<CommandEnvelope>,
}

/// Provider answers held until their commit is acknowledged; at most
/// [`HELD_MESSAGES_MAX`] commits × [`ANSWERS_PER_COMMIT_MAX`] answers.
#[derive(Debug, Default)]
pub struct HeldAnswers {
    commits: HashMap<CommitKey, Vec<Answer>>,
}

impl HeldAnswers {
    /// The commands an earlier attempt worked out for event `index` of commit `seq` of
    /// `order`, if this worker holds them.
    pub fn get(
        &self,
        order: &str,
        seq: u64,
        index: usize,
        work: &Event,
    ) -> Option<&[CommandEnvelope]> {
        let key = CommitKey {
            order: order.to_string(),
            seq,
        };
        self.commits
            .get(&key)?
            .iter()
            .find(|a| a.index == index && a.work == *work)
            .map(|a| a.commands.as_slice())
    }

    /// Holds `commands` as the answer to event `index` of commit `seq` of `order` (replacing
    /// an earlier one for the same event). False, logged as an error, when a bound is reached:
    /// then nothing is held and a failed submission would call the provider again.
    pub fn hold(
        &mut self,
        order: &str,
        seq: u64,
        index: usize,
        work: &Event,
        commands: Vec<CommandEnvelope>,
    ) -> bool {
        let key = CommitKey {
            order: order.to_string(),
            seq,
        };
        if !self.commits.contains_key(&key) && self.commits.len() >= HELD_MESSAGES_MAX {
            tracing::error!(order, seq, held = self.commits.len(), "held answers full (more commits than the consumers hand out): this answer is not held, a failed submission would call the provider again");
            return false;
        }
        let answers = self.commits.entry(key).or_default();
        answers.retain(|a| a.index != index);
        if answers.len() >= ANSWERS_PER_COMMIT_MAX {
            tracing::error!(order, seq, index, "more provider work in one commit than ANSWERS_PER_COMMIT_MAX: this answer is not held, a failed submission would call the provider again");
            return false;
        }
        answers.push(Answer {
            index,
            work: work.clone(),
            commands,
        });
        true
    }

    /// Forgets the answers of commit `seq` of `order` (acknowledged or set aside); gives back
    /// the commands that were held, for the record.
    pub fn release(&mut self, order: &str, seq: u64) -> Vec<CommandEnvelope> {
        let key = CommitKey {
            order: order.to_string(),
            seq,
        };
        self.commits
            .remove(&key)
            .into_iter()
            .flatten()
            .flat_map(|a| a.commands)
            .collect()
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.commits.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }
}

/// Which message a partition holds: its stream and stream sequence (unique across the
/// workers' two consumers, which read different streams). A redelivered copy has the same.
pub type HeldKey = (String, u64);

/// The messages one partition holds, for their progress acks and to recognise redelivered
/// copies. Bounded by what JetStream hands out ([`HELD_MESSAGES_MAX`]); more is logged as
/// an error (the consumers' limits were changed behind the workers' back) and still held,
/// since dropping a held message from its progress acks would let it be worked twice.
#[derive(Debug)]
pub struct Holding<T> {
    held: HashMap<HeldKey, T>,
}

impl<T> Default for Holding<T> {
    fn default() -> Self {
        Holding {
            held: HashMap::new(),
        }
    }
}

impl<T> Holding<T> {
    /// Holds `item` under `key`; gives it back if a message with that key is already held
    /// (a redelivered copy: the held one goes on, the copy must not be worked).
    pub fn admit(&mut self, key: HeldKey, item: T) -> Result<(), T> {
        if self.held.contains_key(&key) {
            return Err(item);
        }
        if self.held.len() >= HELD_MESSAGES_MAX {
            tracing::error!(
                held = self.held.len(),
                "a worker partition holds more messages than its consumers hand out"
            );
        }
        self.held.insert(key, item);
        Ok(())
    }

    /// The message under `key` is acknowledged or set aside: no more progress acks.
    pub fn release(&mut self, key: &HeldKey) {
        self.held.remove(key);
    }

    /// Every held message, for the progress acks.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.held.values()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystate_events::{OrderId, Provider, SignalKind};

    fn refund(id: &str) -> Event {
        Event::RefundRequested {
            refund_id: id.into(),
            amount: paystate_events::command::money(100, "USD").expect("money"),
        }
    }

    fn command(order: &OrderId, n: u32) -> CommandEnvelope {
        crate::submit::signal_command(
            order,
            &format!("w.1.{n}"),
            Provider::Plexy,
            None,
            "call:test".into(),
            chrono::Utc::now(),
            SignalKind::OutcomeUnknown {
                operation: paystate_events::Operation::Refund,
                detail: "test".into(),
            },
        )
    }

    #[test]
    fn a_held_answer_is_found_for_its_own_event_only_and_released_with_its_commit() {
        let order = OrderId::parse("held-1").expect("order id");
        let mut answers = HeldAnswers::default();
        let sent = vec![command(&order, 0)];
        assert!(answers.hold(order.as_str(), 7, 0, &refund("r1"), sent.clone()));
        assert_eq!(
            answers.get(order.as_str(), 7, 0, &refund("r1")),
            Some(sent.as_slice())
        );
        assert_eq!(
            answers.get(order.as_str(), 7, 1, &refund("r1")),
            None,
            "other index"
        );
        assert_eq!(
            answers.get(order.as_str(), 8, 0, &refund("r1")),
            None,
            "other commit"
        );
        assert_eq!(
            answers.get(order.as_str(), 7, 0, &refund("r2")),
            None,
            "other work"
        );
        assert_eq!(
            answers.get("other", 7, 0, &refund("r1")),
            None,
            "other order"
        );
        assert_eq!(answers.release(order.as_str(), 7), sent);
        assert!(answers.is_empty());
        assert_eq!(answers.get(order.as_str(), 7, 0, &refund("r1")), None);
    }

    #[test]
    fn held_answers_stay_within_their_bounds() {
        let order = OrderId::parse("held-2").expect("order id");
        let mut answers = HeldAnswers::default();
        for index in 0..ANSWERS_PER_COMMIT_MAX {
            assert!(answers.hold("o", 1, index, &refund("r"), vec![command(&order, 0)]));
        }
        assert!(
            !answers.hold("o", 1, ANSWERS_PER_COMMIT_MAX, &refund("r"), Vec::new()),
            "one commit holds at most ANSWERS_PER_COMMIT_MAX"
        );
        assert!(
            answers.hold("o", 1, 0, &refund("r"), Vec::new()),
            "the same event's answer is replaced, not added"
        );
        assert_eq!(answers.len(), ANSWERS_PER_COMMIT_MAX);
        for seq in 2..=u64::try_from(HELD_MESSAGES_MAX).expect("fits") {
            assert!(answers.hold("o", seq, 0, &refund("r"), Vec::new()));
        }
        assert!(
            !answers.hold("o", u64::MAX, 0, &refund("r"), Vec::new()),
            "no more commits than the consumers hand out"
        );
        assert!(answers.len() <= HELD_ANSWERS_MAX);
    }

    #[test]
    fn a_redelivered_copy_of_a_held_message_is_refused_until_it_is_released() {
        let mut holding = Holding::default();
        assert_eq!(
            holding.admit(("PAYSTATE_EVENTS".into(), 5), "first"),
            Ok(())
        );
        assert_eq!(
            holding.admit(("PAYSTATE_EVENTS".into(), 5), "copy"),
            Err("copy"),
            "the copy is not worked"
        );
        assert_eq!(
            holding.admit(("PAYSTATE_DEAD_LETTERS".into(), 5), "other stream"),
            Ok(())
        );
        assert_eq!(holding.len(), 2);
        holding.release(&("PAYSTATE_EVENTS".into(), 5));
        assert_eq!(
            holding.admit(("PAYSTATE_EVENTS".into(), 5), "later"),
            Ok(())
        );
        let mut items: Vec<_> = holding.items().copied().collect();
        items.sort_unstable();
        assert_eq!(items, ["later", "other stream"]);
    }

    #[test]
    fn progress_acks_come_well_within_the_ack_wait() {
        for wait in [ACK_WAIT_MIN, Duration::from_secs(120)] {
            assert!(progress_every(wait) * 2 <= wait);
            assert!(progress_every(wait) > Duration::ZERO);
        }
    }
}
