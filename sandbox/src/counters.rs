//! Counters of effects at the provider and of callback deliveries, per provider and order,
//! so tests can assert "the provider saw each effect once".

use paystate_events::Provider;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How often something happened to one order (or, summed, to one provider).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Orders, links, payments or deposit requests created at the provider.
    pub created: u32,
    /// Customer payment attempts started (Plural payments, Plexy 3DS, Flitt processing).
    pub attempted: u32,
    pub authorized: u32,
    pub captured: u32,
    pub cancelled: u32,
    pub refunded: u32,
    pub declined: u32,
    pub expired: u32,
    /// Paykassma activations accepted.
    pub activated: u32,
    /// Paykassma deposits credited; exchanger payments received.
    pub credited: u32,
    /// Exchanger payouts done.
    pub paid_out: u32,
    /// Exchanger payouts failed (`errorPayout`).
    pub payout_failed: u32,
    /// Any other provider status change (exchanger hold/returned and the like).
    pub other_transitions: u32,
    /// Callbacks the provider produced (before drop, duplicate or reorder faults).
    pub callbacks_enqueued: u32,
    /// HTTP attempts made, first sends and resends.
    pub callbacks_attempts: u32,
    /// Attempts the receiver acknowledged as the provider requires.
    pub callbacks_delivered: u32,
    /// Attempts after the first of a callback (retries / resends).
    pub callbacks_resent: u32,
    /// Callbacks whose schedule ran out without an acknowledgement.
    pub callbacks_abandoned: u32,
    /// Callbacks never sent (exchanger drop share, drop fault, full queue, no URL).
    pub callbacks_dropped: u32,
    /// Extra copies sent by the duplicate fault.
    pub callbacks_duplicated: u32,
    /// Attempts sent with a spoiled signature by the bad-signature fault.
    pub callbacks_bad_signature: u32,
    /// Callbacks held back and sent after a later one by the reorder fault.
    pub callbacks_reordered: u32,
    /// Requests answered with an injected 5xx (the provider did not act).
    pub injected_errors: u32,
    /// Responses dropped or withheld after the provider acted.
    pub dropped_responses: u32,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        let pairs: [(&mut u32, u32); 24] = [
            (&mut self.created, o.created),
            (&mut self.attempted, o.attempted),
            (&mut self.authorized, o.authorized),
            (&mut self.captured, o.captured),
            (&mut self.cancelled, o.cancelled),
            (&mut self.refunded, o.refunded),
            (&mut self.declined, o.declined),
            (&mut self.expired, o.expired),
            (&mut self.activated, o.activated),
            (&mut self.credited, o.credited),
            (&mut self.paid_out, o.paid_out),
            (&mut self.payout_failed, o.payout_failed),
            (&mut self.other_transitions, o.other_transitions),
            (&mut self.callbacks_enqueued, o.callbacks_enqueued),
            (&mut self.callbacks_attempts, o.callbacks_attempts),
            (&mut self.callbacks_delivered, o.callbacks_delivered),
            (&mut self.callbacks_resent, o.callbacks_resent),
            (&mut self.callbacks_abandoned, o.callbacks_abandoned),
            (&mut self.callbacks_dropped, o.callbacks_dropped),
            (&mut self.callbacks_duplicated, o.callbacks_duplicated),
            (&mut self.callbacks_bad_signature, o.callbacks_bad_signature),
            (&mut self.callbacks_reordered, o.callbacks_reordered),
            (&mut self.injected_errors, o.injected_errors),
            (&mut self.dropped_responses, o.dropped_responses),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }
}

/// All counters of one sandbox, keyed by provider and the provider's own order key.
#[derive(Debug, Default)]
pub(crate) struct CounterStore {
    by_order: Mutex<BTreeMap<(Provider, String), Counters>>,
}

impl CounterStore {
    /// Applies `f` to the counters of one order.
    pub(crate) fn bump(&self, provider: Provider, key: &str, f: impl FnOnce(&mut Counters)) {
        let mut map = self.by_order.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry((provider, key.to_string())).or_default());
    }

    pub(crate) fn get(&self, provider: Provider, key: &str) -> Counters {
        let map = self.by_order.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(provider, key.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Every order of `provider` with its counters.
    pub(crate) fn all(&self, provider: Provider) -> BTreeMap<String, Counters> {
        let map = self.by_order.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((p, _), _)| *p == provider)
            .map(|((_, k), c)| (k.clone(), *c))
            .collect()
    }

    /// The sum over every order of `provider`.
    pub(crate) fn totals(&self, provider: Provider) -> Counters {
        let mut sum = Counters::default();
        for c in self.all(provider).values() {
            sum.add(c);
        }
        sum
    }
}
