//! The reconciler: for providers whose callbacks can be lost (the exchanger always; any
//! provider when callbacks stop), it asks the provider for the truth about orders that wait
//! on it for too long, and submits what it learns as signals.
//!
//! It follows the log with an ordered consumer (from the start at boot, then live), keeping
//! the state of every order that waits on a provider: status `pending`, a capture,
//! cancellation or refund in flight, or (for providers that finish after capturing, see
//! [`SETTLES_AFTER_CAPTURE`]) a captured order not yet settled. Orders flagged for review
//! (`needs_review`, by a provider report or by this reconciler) belong to a person and are
//! not probed again, also after a restart. An order becomes due a per-provider deadline after it
//! started waiting; each probe is a status query whose answer is submitted as signals (or as
//! a `probed` record when it changes nothing), so the audit shows every question and answer.
//! Probes back off per order along a schedule; an order still waiting past the final
//! deadline gets one `needs_review` signal and is no longer probed. Providers without a status
//! query (Paykassma) are never probed: their orders only meet the final deadline.

use crate::submit::{publish_all, signal_command};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use paystate_adapters::features::{supports, Feature};
use paystate_adapters::Adapters;
use paystate_events::subjects::{order_token, EVENTS_PREFIX};
use paystate_events::{
    Commit, CommitHash, OrderId, OrderState, Provider, SignalKind, Status, Timestamp,
};
use paystate_service::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Most orders the reconciler tracks at once; beyond it new waiting orders are logged and
/// left to a later restart (the log keeps them).
pub const TRACKED_ORDERS_MAX: usize = 1_000_000;
/// Most probes per tick, so a backlog cannot flood a provider.
pub const PROBES_PER_TICK_MAX: usize = 64;
/// First probe of a provider the configuration does not name.
const FIRST_PROBE_AFTER_DEFAULT: Duration = Duration::from_secs(900);
/// Providers whose captured orders still wait on them: the exchanger's `inProgressPayout`
/// (funds received, queued for payout) is captured, and only `done`, `returned` or
/// `errorPayout` finish it.
pub const SETTLES_AFTER_CAPTURE: [Provider; 1] = [Provider::Exchanger];

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How long an order may wait on each provider before the first probe.
    pub first_probe_after: HashMap<Provider, Duration>,
    /// Pauses between later probes of one order (the last one repeats).
    pub backoff: Vec<Duration>,
    /// After this long waiting, the order is flagged for manual review and left alone.
    pub final_deadline: Duration,
    /// How often due orders are looked for.
    pub tick: Duration,
    /// This instance probes orders whose hash modulo `instances` is `instance`.
    pub instance: u64,
    pub instances: u64,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let first = Provider::ALL
            .into_iter()
            .map(|p| {
                (
                    p,
                    if p == Provider::Exchanger {
                        minutes(1)
                    } else {
                        minutes(15)
                    },
                )
            })
            .collect();
        ReconcilerConfig {
            first_probe_after: first,
            backoff: vec![
                minutes(1),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(24 * 60),
            ],
            final_deadline: minutes(7 * 24 * 60),
            tick: Duration::from_secs(5),
            instance: 0,
            instances: 1,
        }
    }
}

impl ReconcilerConfig {
    /// Every deadline divided by `factor` (tests and `dev` use fast schedules).
    pub fn scaled(mut self, factor: u32) -> ReconcilerConfig {
        let f = factor.max(1);
        for d in self.first_probe_after.values_mut() {
            *d /= f;
        }
        for d in &mut self.backoff {
            *d /= f;
        }
        self.final_deadline /= f;
        self.tick = (self.tick / f).max(Duration::from_millis(10));
        self
    }
}

#[derive(Debug, Default)]
pub struct ReconcilerStats {
    pub probes: AtomicU64,
    pub flagged: AtomicU64,
    pub tracked: AtomicU64,
}

pub struct ReconcilerHandle {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub stats: Arc<ReconcilerStats>,
}

impl ReconcilerHandle {
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One order the reconciler watches.
struct Tracked {
    state: OrderState,
    /// What the order waits for; a change restarts the schedule.
    waiting_on: String,
    since: Timestamp,
    next_probe: Timestamp,
    probes: u32,
    flagged: bool,
}

pub async fn run_reconciler(
    nats: async_nats::Client,
    events_stream: &str,
    adapters: Arc<Adapters>,
    cfg: ReconcilerConfig,
) -> Result<ReconcilerHandle, String> {
    let js = jetstream::new(nats.clone());
    let stream = js
        .get_stream(events_stream)
        .await
        .map_err(|e| e.to_string())?;
    let follower = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("{EVENTS_PREFIX}.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // Nothing to replay: probing may start at once; otherwise after the history is folded.
    let caught_up = follower.cached_info().num_pending == 0;
    let messages = follower.messages().await.map_err(|e| e.to_string())?;
    let stats = Arc::new(ReconcilerStats::default());
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let r = Reconciler {
        cfg,
        adapters,
        client: Client::new(nats),
        tracked: HashMap::new(),
        stats: stats.clone(),
        caught_up,
    };
    tasks.spawn(r.run(messages, rx));
    Ok(ReconcilerHandle {
        shutdown,
        tasks,
        stats,
    })
}

struct Reconciler {
    cfg: ReconcilerConfig,
    adapters: Arc<Adapters>,
    client: Client,
    tracked: HashMap<OrderId, Tracked>,
    stats: Arc<ReconcilerStats>,
    /// True once the history that existed at start is folded: before that, a tracked state
    /// may be stale (an order flagged or finished later in the log), so nothing is probed.
    caught_up: bool,
}

impl Reconciler {
    async fn run(
        mut self,
        mut messages: consumer::pull::Ordered,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.cfg.tick);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick(), if self.caught_up => self.probe_due(chrono::Utc::now()).await,
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        self.follow(&msg.subject, &msg.payload);
                        self.caught_up |= msg.info().is_ok_and(|i| i.pending == 0);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "reconciler: log stream error; carrying on"),
                    None => return,
                },
            }
        }
    }

    /// Folds one commit into the tracked orders.
    fn follow(&mut self, subject: &str, payload: &[u8]) {
        let Some(order) = order_token(subject).and_then(|t| OrderId::parse(t).ok()) else {
            return;
        };
        if !self.mine(&order) {
            return;
        }
        let Ok(commit) = Commit::decode(payload) else {
            return;
        };
        let hash = CommitHash::of(payload).0;
        let previous = self.tracked.remove(&order);
        let prev_state = previous.as_ref().map(|t| t.state.clone());
        // Orders first seen mid-history (created before tracking) are skipped until whole.
        if prev_state.is_none() && commit.commit != 1 {
            return;
        }
        let Ok(state) = paystate_engine::apply_commit(prev_state, &commit, &hash) else {
            return;
        };
        if state.status.is_terminal() {
            self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
            return;
        }
        // Every open order's state is kept (later commits fold onto it); only those waiting
        // on the provider are ever due.
        let waiting = waiting_on(&state);
        self.keep(order, state, waiting, previous, commit.decided_at);
    }

    fn keep(
        &mut self,
        order: OrderId,
        state: OrderState,
        waiting_on: String,
        previous: Option<Tracked>,
        at: Timestamp,
    ) {
        if self.tracked.len() >= TRACKED_ORDERS_MAX {
            tracing::warn!(%order, "reconciler: tracking bound reached; order not tracked");
            return;
        }
        let tracked = match previous {
            Some(p) if p.waiting_on == waiting_on => Tracked { state, ..p },
            _ => {
                // A provider without a status query cannot be asked: the order only waits
                // for its final deadline (and a callback that may still come).
                let first = match supports(state.provider, Feature::StatusQuery) {
                    true => self
                        .cfg
                        .first_probe_after
                        .get(&state.provider)
                        .copied()
                        .unwrap_or(FIRST_PROBE_AFTER_DEFAULT)
                        .min(self.cfg.final_deadline),
                    false => self.cfg.final_deadline,
                };
                Tracked {
                    state,
                    waiting_on,
                    since: at,
                    next_probe: at + first,
                    probes: 0,
                    flagged: false,
                }
            }
        };
        self.tracked.insert(order, tracked);
        self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
    }

    fn mine(&self, order: &OrderId) -> bool {
        let instances = self.cfg.instances.max(1);
        paystate_service::intake::partition_of(order.as_str(), instances as usize) as u64
            == self.cfg.instance % instances
    }

    /// Probes the orders that are due (bounded per tick).
    async fn probe_due(&mut self, now: Timestamp) {
        let due: Vec<OrderId> = self
            .tracked
            .iter()
            .filter(|(_, t)| !t.waiting_on.is_empty() && !t.flagged && t.next_probe <= now)
            .map(|(o, _)| o.clone())
            .take(PROBES_PER_TICK_MAX)
            .collect();
        for order in due {
            let final_due = self
                .tracked
                .get(&order)
                .is_some_and(|t| now - t.since >= chrono_dur(self.cfg.final_deadline));
            if final_due {
                self.flag(&order, now).await;
            } else {
                self.probe(&order, now).await;
            }
        }
    }

    async fn probe(&mut self, order: &OrderId, now: Timestamp) {
        let Some(t) = self.tracked.get_mut(order) else {
            return;
        };
        t.probes += 1;
        let attempt = t.probes;
        let pause = self
            .cfg
            .backoff
            .get((attempt as usize).saturating_sub(1))
            .or(self.cfg.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(3600));
        // Never past the final deadline: the flag comes on time, not one pause late.
        t.next_probe = (now + chrono_dur(pause)).min(t.since + chrono_dur(self.cfg.final_deadline));
        let state = t.state.clone();
        self.stats.probes.fetch_add(1, Relaxed);
        let prefix = format!("r.{}.{}", state.commits, attempt);
        let commands = match self.adapters.status(&state).await {
            Ok(reported) => {
                let evidence = format!("probe:{attempt}:call:{}", reported.call_ref);
                let mut kinds = reported.signals;
                if kinds.is_empty() {
                    kinds.push(SignalKind::Probed {
                        answer: "no change reported".into(),
                    });
                }
                kinds
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| {
                        signal_command(
                            order,
                            &format!("{prefix}.{i}"),
                            state.provider,
                            reported.provider_ref.clone(),
                            evidence.clone(),
                            now,
                            k,
                        )
                    })
                    .collect()
            }
            Err(e) => {
                let kind = SignalKind::Probed {
                    answer: format!("status query failed: {e}"),
                };
                vec![signal_command(
                    order,
                    &prefix,
                    state.provider,
                    None,
                    format!("probe:{attempt}:error"),
                    now,
                    kind,
                )]
            }
        };
        if let Err(e) = publish_all(&self.client, &commands).await {
            tracing::warn!(%order, error = %e, "reconciler: could not submit probe results");
        }
    }

    async fn flag(&mut self, order: &OrderId, now: Timestamp) {
        let Some(t) = self.tracked.get_mut(order) else {
            return;
        };
        t.flagged = true;
        let reason = format!(
            "still waiting on the provider ({}) after {} probes; needs a person",
            t.waiting_on, t.probes
        );
        let cmd = signal_command(
            order,
            &format!("r.{}.review", t.state.commits),
            t.state.provider,
            None,
            "reconciler:final-deadline".into(),
            now,
            SignalKind::NeedsReview { reason },
        );
        self.stats.flagged.fetch_add(1, Relaxed);
        if let Err(e) = publish_all(&self.client, &[cmd]).await {
            tracing::warn!(%order, error = %e, "reconciler: could not flag the order");
        }
    }
}

/// What the order waits on a provider for; empty when nothing (or when a person owns it).
fn waiting_on(s: &OrderState) -> String {
    let mut parts = Vec::new();
    if s.needs_review {
        return String::new();
    }
    if s.status == Status::Pending {
        parts.push("payment".to_string());
    }
    if s.status == Status::Captured && SETTLES_AFTER_CAPTURE.contains(&s.provider) {
        parts.push("settlement".to_string());
    }
    if let Some((id, _)) = &s.capture_pending {
        parts.push(format!("capture {id}"));
    }
    if s.cancel_pending {
        parts.push("cancel".to_string());
    }
    for id in s.refunds_pending.keys() {
        parts.push(format!("refund {id}"));
    }
    parts.join(", ")
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystate_events::{CaptureMode, Event};

    fn order(provider: Provider, status: Status) -> OrderState {
        let created = Event::OrderCreated {
            order_id: OrderId::parse("o-1").expect("id"),
            merchant_reference: "m".into(),
            amount: paystate_events::command::money(100, "USD").expect("money"),
            provider,
            capture_mode: CaptureMode::Auto,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
            created_at: "2026-01-01T00:00:00Z".parse().expect("time"),
        };
        let mut s = paystate_engine::evolve(None, &created).expect("created");
        s.status = status;
        s
    }

    #[test]
    fn what_an_order_waits_for() {
        assert_eq!(
            waiting_on(&order(Provider::Plural, Status::Pending)),
            "payment"
        );
        assert_eq!(waiting_on(&order(Provider::Plural, Status::Captured)), "");
        assert_eq!(
            waiting_on(&order(Provider::Exchanger, Status::Captured)),
            "settlement",
            "captured is not final at the exchanger: the payout is still to come"
        );
        let mut refunding = order(Provider::Plexy, Status::Captured);
        refunding
            .refunds_pending
            .insert("r1".into(), paystate_events::MinorUnits(50));
        assert_eq!(waiting_on(&refunding), "refund r1");
        let mut flagged = order(Provider::Exchanger, Status::Pending);
        flagged.needs_review = true;
        assert_eq!(waiting_on(&flagged), "", "a person owns a flagged order");
    }
}
