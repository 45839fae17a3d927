//! Secrets learnt at run time: a bounded set, per slot (one provider account), of the newest
//! values and their compiled patterns. Behind a lock because tokens are renewed while other
//! calls are being redacted; every clone of a [`super::Redactor`] shares one set.

use super::Patterns;
use crate::secret::Secret;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};

/// Values kept per slot: the current token and the one before it. A call sent with the
/// previous token may be answered (and its answer quote the token) after the renewal; the
/// token before that has been out of use for a whole call already.
pub const SECRETS_PER_SLOT_MAX: usize = 2;
/// Slots kept: one per provider account that is issued tokens. A configuration has a few;
/// past this bound the slot renewed longest ago is dropped (its token has expired, or will
/// be renewed and remembered again).
pub const SLOTS_MAX: usize = 256;

const _: () = assert!(SECRETS_PER_SLOT_MAX >= 2, "current and previous");

#[derive(Default)]
pub(super) struct RuntimeSecrets {
    slots: RwLock<Slots>,
}

#[derive(Default)]
struct Slots {
    by_name: BTreeMap<String, Slot>,
    /// Registrations so far: orders the slots by when they were last renewed.
    registrations: u64,
}

struct Slot {
    /// Newest first, at most [`SECRETS_PER_SLOT_MAX`].
    values: VecDeque<(Secret, Arc<Patterns>)>,
    renewed: u64,
}

impl RuntimeSecrets {
    /// True when `value` is already held in `slot`.
    pub(super) fn holds(&self, slot: &str, value: &str) -> bool {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots
            .by_name
            .get(slot)
            .is_some_and(|s| s.values.iter().any(|(v, _)| v.expose() == value))
    }

    pub(super) fn insert(&self, slot: &str, value: Secret, patterns: Arc<Patterns>) {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters here: at worst one value is missing, and the next renewal adds it.
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        slots.registrations += 1;
        let now = slots.registrations;
        if !slots.by_name.contains_key(slot) && slots.by_name.len() >= SLOTS_MAX {
            let oldest = slots
                .by_name
                .iter()
                .min_by_key(|(_, s)| s.renewed)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                slots.by_name.remove(&name);
            }
        }
        let s = slots.by_name.entry(slot.to_string()).or_insert(Slot {
            values: VecDeque::new(),
            renewed: now,
        });
        s.renewed = now;
        s.values.retain(|(v, _)| v.expose() != value.expose());
        s.values.push_front((value, patterns));
        s.values.truncate(SECRETS_PER_SLOT_MAX);
        assert!(slots.by_name.len() <= SLOTS_MAX);
    }

    /// The patterns of every value held, to apply after the configured ones.
    pub(super) fn patterns(&self) -> Vec<Arc<Patterns>> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots
            .by_name
            .values()
            .flat_map(|s| s.values.iter().map(|(_, p)| p.clone()))
            .collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots.by_name.is_empty()
    }
}
