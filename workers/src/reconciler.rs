//! The reconciler: for providers whose callbacks can be lost (the exchanger always; any
//! provider when callbacks stop), it asks the provider for the truth about orders that wait
//! on it for too long, and submits what it learns as signals.
//!
//! It starts from the projection's waiting orders (each read back from the log, see
//! [`startup`]; from the start of the log when there is no projection), then follows the log
//! live with an ordered consumer, keeping the state of every order that waits on a provider: status `pending`, a capture,
//! cancellation or refund in flight, or (for providers that finish after capturing, see
//! [`SETTLES_AFTER_CAPTURE`]) a captured order not yet settled. Orders flagged for review
//! (`needs_review`, by a provider report or by this reconciler) belong to a person and are
//! not probed again, also after a restart, until an operator resolves the review
//! (`resolve_review`; the order is then tracked afresh). An order becomes due a
//! per-provider deadline after it
//! started waiting; each probe is a status query whose answer is submitted as signals (or as
//! a `probed` record when it changes nothing), so the audit shows every question and answer.
//! Probes back off per order along a schedule; an order still waiting past the final
//! deadline gets one `needs_review` signal and is no longer probed. Providers without a status
//! query (Paykassma) are never probed: their orders only meet the final deadline.
//!
//! Expiry: the engine retries an order's expiry a bounded number of times (decision 0010,
//! [`paystate_service::expiry`]); an order still open and idle past its `expires_at` after the
//! last attempt ([`paystate_service::expiry::exhausted`]) gets one `needs_review` signal with
//! a deterministic id, so a restart or a second look never flags it twice.
//!
//! Probes and flags run off the log-following loop in a bounded task set ([`probes`]).
//! Instances split the orders by a stable hash ([`paystate_events::ids::shard_of`], FNV-1a).
//! A commit that does not fold onto the order's state is reported, not swallowed: logged,
//! counted, and set aside in the dead-letter stream with its reason; the order is no longer
//! tracked until a redrive (`paystate dlq redrive`) makes the reconciler read it back from the
//! log.

mod probes;
mod startup;

pub use probes::PROBES_IN_FLIGHT_MAX;

use async_nats::jetstream;
use paystate_adapters::features::{supports, Feature};
use paystate_adapters::Adapters;
use paystate_events::subjects::{order_token, DEAD_LETTERS_STREAM, EVENTS_PREFIX};
use paystate_events::{Commit, CommitHash, OrderId, OrderState, Provider, Status, Timestamp};
use paystate_journal::dead_letters::{self, Outgoing, Source};
use paystate_journal::follow::{next_if_any, Follow};
use paystate_journal::Journal;
use paystate_service::Client;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Name the reconciler's dead letters carry as their consumer (it reads the log with an
/// ordered consumer, which has no durable name).
pub const RECONCILER_CONSUMER: &str = "paystate-reconciler";

pub const TRACKED_ORDERS_MAX: usize = 1_000_000;
/// Most probes per tick, so a backlog cannot flood a provider.
pub const PROBES_PER_TICK_MAX: usize = 64;
/// Wait before a review flag whose submission failed is sent again (on a later tick).
pub const FLAG_RETRY_AFTER: Duration = Duration::from_secs(30);
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
    /// Commits that did not fold onto their order's state (each dead-lettered).
    pub fold_errors: AtomicU64,
    /// Probe or flag results that could not be submitted.
    pub submit_errors: AtomicU64,
    /// Orders read back from the log (at start, or when first seen mid-history).
    pub loaded: AtomicU64,
    /// Whether the start came from the projection (1) or the whole log (0).
    pub from_projection: AtomicU64,
    /// Rounds of looking for due orders (one per tick once caught up with the log): a test
    /// that asserts "no new probe" waits for rounds to pass, not for the clock.
    pub rounds: AtomicU64,
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
pub(crate) struct Tracked {
    state: OrderState,
    /// Stream sequence of the last commit folded into `state` (earlier ones are skipped).
    seq: u64,
    /// What the order waits for; a change restarts the schedule.
    waiting_on: String,
    since: Timestamp,
    next_probe: Timestamp,
    probes: u32,
    flagged: bool,
    /// The expiry-exhausted flag was sent for this order by this process (its command id is
    /// deterministic: a second one would be answered as a duplicate, not applied).
    expiry_flagged: bool,
    /// A flag's submission failed: neither flag nor probe before this time (then the flag
    /// is sent again).
    flag_retry_at: Option<Timestamp>,
}

pub async fn run_reconciler(
    nats: async_nats::Client,
    events_stream: &str,
    adapters: Arc<Adapters>,
    cfg: ReconcilerConfig,
) -> Result<ReconcilerHandle, String> {
    let js = jetstream::new(nats.clone());
    let journal = Journal::existing(js.clone(), events_stream)
        .await
        .map_err(|e| e.to_string())?;
    let stats = Arc::new(ReconcilerStats::default());
    let mut r = Reconciler {
        cfg,
        adapters,
        client: Client::new(nats),
        journal,
        js: js.clone(),
        events_stream: events_stream.to_string(),
        tracked: HashMap::new(),
        in_flight: HashSet::new(),
        jobs: JoinSet::new(),
        stats: stats.clone(),
        caught_up: false,
    };
    let mine = {
        let (instance, instances) = (r.cfg.instance, r.cfg.instances);
        move |o: &OrderId| is_mine(o, instance, instances)
    };
    let start_seq =
        match startup::from_projection(&js, &r.journal, events_stream, mine, TRACKED_ORDERS_MAX)
            .await
        {
            Ok(start) => {
                stats.from_projection.store(1, Relaxed);
                for (order, loaded) in start.tracked {
                    r.track(order, loaded);
                }
                start.follow_from.max(1)
            }
            Err(e) => {
                tracing::info!(reason = %e, "reconciler: folding the log from its start");
                1
            }
        };
    let stream = js
        .get_stream(events_stream)
        .await
        .map_err(|e| e.to_string())?;
    // Nothing to follow up to now: probing may start at once; otherwise once caught up.
    let last = stream.cached_info().state.last_sequence;
    r.caught_up = start_seq > last;
    let mut messages = Follow::ordered(
        &js,
        &stream,
        &format!("{EVENTS_PREFIX}.>"),
        start_seq,
        "paystate reconciler: the log, followed",
    );
    messages.open().await?;
    let redrives = redrive_requests(&js).await;
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(r.run(messages, redrives, rx));
    Ok(ReconcilerHandle {
        shutdown,
        tasks,
        stats,
    })
}

/// Redrive requests for the reconciler, from now on (`None` when unavailable: logged).
async fn redrive_requests(js: &jetstream::Context) -> Option<Follow> {
    let opened = async {
        let stream = js
            .get_stream(DEAD_LETTERS_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let from = stream.cached_info().state.last_sequence + 1;
        Ok::<_, String>(Follow::ordered(
            js,
            &stream,
            &Source::Reconciler.redrive_subject(),
            from,
            "paystate reconciler: redrive requests",
        ))
    };
    match opened.await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "reconciler: redrive requests unavailable");
            None
        }
    }
}

/// Whether an instance handles `order` (FNV-1a shards, stable everywhere).
fn is_mine(order: &OrderId, instance: u64, instances: u64) -> bool {
    let instances = instances.max(1);
    let shards = usize::try_from(instances).unwrap_or(usize::MAX);
    paystate_events::ids::shard_of(order.as_str(), shards) as u64 == instance % instances
}

struct Reconciler {
    cfg: ReconcilerConfig,
    adapters: Arc<Adapters>,
    client: Client,
    journal: Journal,
    js: jetstream::Context,
    events_stream: String,
    tracked: HashMap<OrderId, Tracked>,
    /// Orders with a probe or flag job running (never two at once for one order).
    in_flight: HashSet<OrderId>,
    jobs: JoinSet<probes::Report>,
    stats: Arc<ReconcilerStats>,
    /// True once the history that existed at start is folded: before that, a tracked state
    /// may be stale (an order flagged or finished later in the log), so nothing is probed.
    caught_up: bool,
}

impl Reconciler {
    async fn run(
        mut self,
        mut messages: Follow,
        mut redrives: Option<Follow>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.cfg.tick);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.jobs.abort_all();
                    return;
                }
                _ = tick.tick(), if self.caught_up => self.start_due(chrono::Utc::now()),
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => self.finished(done),
                msg = next_if_any(&mut redrives) => self.redriven(&msg).await,
                msg = messages.next() => {
                    let info = msg.info().ok().map(|i| (i.stream_sequence, i.pending));
                    let (seq, pending) = info.unwrap_or((0, 1));
                    if paystate_journal::read::is_stray(msg.headers.as_ref(), &msg.payload) {
                        // Not written by paystate (a broker's answer sent to the order's
                        // subject): no commit to fold; the order stays tracked.
                        paystate_journal::read::stray_skipped("reconciler", &msg.subject, seq);
                    } else {
                        self.follow(&msg.subject, &msg.payload, seq).await;
                    }
                    self.caught_up |= pending == 0;
                }
            }
        }
    }

    /// Folds one commit into the tracked orders.
    async fn follow(&mut self, subject: &str, payload: &bytes::Bytes, seq: u64) {
        let Some(order) = order_token(subject).and_then(|t| OrderId::parse(t).ok()) else {
            return;
        };
        if !self.mine(&order) || self.tracked.get(&order).is_some_and(|t| seq <= t.seq) {
            return;
        }
        let commit = match Commit::decode(payload) {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("unreadable commit: {e}");
                return self
                    .fold_failed(&order, subject, payload, seq, &reason)
                    .await;
            }
        };
        let hash = CommitHash::of(payload).0;
        let previous = self.tracked.remove(&order);
        if previous.is_none() && commit.commit != 1 {
            // First seen mid-history (not waiting at start, or tracked no longer): read back.
            return self.load(&order).await;
        }
        let prev_state = previous.as_ref().map(|t| t.state.clone());
        let state = match paystate_engine::apply_commit(prev_state, &commit, &hash) {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("commit {} does not fold onto the order: {e}", commit.commit);
                return self
                    .fold_failed(&order, subject, payload, seq, &reason)
                    .await;
            }
        };
        if state.status.is_terminal() {
            self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
            return;
        }
        // Every open order's state is kept (later commits fold onto it); only those waiting
        // on the provider are ever due.
        let waiting = waiting_on(&state);
        self.keep(order, state, seq, waiting, previous, commit.decided_at);
    }

    /// A commit that does not fold: reported (logged, counted, dead-lettered with its
    /// reason); the order is not tracked until redriven.
    async fn fold_failed(
        &mut self,
        order: &OrderId,
        subject: &str,
        payload: &bytes::Bytes,
        seq: u64,
        reason: &str,
    ) {
        self.tracked.remove(order);
        self.stats.fold_errors.fetch_add(1, Relaxed);
        self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
        tracing::error!(%order, seq, %reason, "reconciler: commit does not fold; order no longer tracked");
        let out = Outgoing {
            source: Source::Reconciler,
            consumer: RECONCILER_CONSUMER,
            subject,
            order: Some(order.as_str()),
            headers: None,
            payload: payload.clone(),
            origin: Some((&self.events_stream, seq)),
            deliveries: 1,
            reason,
        };
        if let Err(e) = dead_letters::send(&self.js, &out).await {
            tracing::error!(%order, seq, error = %e, "reconciler: could not set the commit aside");
        }
    }

    /// A redrive request: the order is read back from the log and tracked again.
    async fn redriven(&mut self, msg: &async_nats::jetstream::Message) {
        let order = dead_letters::redrive_request(msg.headers.as_ref(), &msg.payload)
            .and_then(|r| order_token(&r.subject).and_then(|t| OrderId::parse(t).ok()));
        match order {
            Some(order) if self.mine(&order) => {
                tracing::info!(%order, "reconciler: redrive; reading the order back from the log");
                self.tracked.remove(&order);
                self.load(&order).await;
            }
            _ => {}
        }
    }

    /// Reads `order` back from the log and tracks it if it is open.
    async fn load(&mut self, order: &OrderId) {
        self.stats.loaded.fetch_add(1, Relaxed);
        if let Some(loaded) = startup::load(&self.journal, order).await {
            self.track(order.clone(), loaded);
        }
    }

    fn track(&mut self, order: OrderId, loaded: startup::Loaded) {
        if self.tracked.len() >= TRACKED_ORDERS_MAX {
            tracing::warn!(%order, "reconciler: tracking bound reached; order not tracked");
            return;
        }
        let cfg = &self.cfg;
        let tracked = loaded.into_tracked(|s| chrono_dur(first_probe_after(cfg, s)));
        self.tracked.insert(order, tracked);
        self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
    }

    fn keep(
        &mut self,
        order: OrderId,
        state: OrderState,
        seq: u64,
        waiting_on: String,
        previous: Option<Tracked>,
        at: Timestamp,
    ) {
        if self.tracked.len() >= TRACKED_ORDERS_MAX {
            tracing::warn!(%order, "reconciler: tracking bound reached; order not tracked");
            return;
        }
        let tracked = match previous {
            Some(p) if p.waiting_on == waiting_on => Tracked { state, seq, ..p },
            _ => Tracked {
                next_probe: at + chrono_dur(first_probe_after(&self.cfg, &state)),
                state,
                seq,
                waiting_on,
                since: at,
                probes: 0,
                flagged: false,
                expiry_flagged: false,
                flag_retry_at: None,
            },
        };
        self.tracked.insert(order, tracked);
        self.stats.tracked.store(self.tracked.len() as u64, Relaxed);
    }

    fn mine(&self, order: &OrderId) -> bool {
        is_mine(order, self.cfg.instance, self.cfg.instances)
    }

    /// Starts jobs for the due orders: at most [`PROBES_PER_TICK_MAX`] per tick, and no more
    /// than [`PROBES_IN_FLIGHT_MAX`] running.
    fn start_due(&mut self, now: Timestamp) {
        self.stats.rounds.fetch_add(1, Relaxed);
        let room = PROBES_IN_FLIGHT_MAX
            .saturating_sub(self.jobs.len())
            .min(PROBES_PER_TICK_MAX);
        let due: Vec<OrderId> = self
            .tracked
            .iter()
            .filter(|(o, t)| {
                let probe_due = !t.waiting_on.is_empty() && !t.flagged && t.next_probe <= now;
                let retry_wait_over = t.flag_retry_at.is_none_or(|at| at <= now);
                (probe_due || expiry_flag_due(t)) && retry_wait_over && !self.in_flight.contains(*o)
            })
            .map(|(o, _)| o.clone())
            .take(room)
            .collect();
        for order in due {
            let Some(job) = self.schedule(&order, now) else {
                continue;
            };
            let Some(state) = self.tracked.get(&order).map(|t| t.state.clone()) else {
                continue;
            };
            self.in_flight.insert(order);
            let (adapters, client) = (self.adapters.clone(), self.client.clone());
            self.jobs
                .spawn(probes::run(adapters, client, state, job, now));
        }
    }

    /// The job for a due order, its schedule moved on (next probe, or flagged).
    fn schedule(&mut self, order: &OrderId, now: Timestamp) -> Option<probes::Job> {
        let final_deadline = chrono_dur(self.cfg.final_deadline);
        let t = self.tracked.get_mut(order)?;
        if expiry_flag_due(t) {
            t.expiry_flagged = true;
            self.stats.flagged.fetch_add(1, Relaxed);
            return Some(probes::Job::ExpiryFlag);
        }
        if now - t.since >= final_deadline {
            t.flagged = true;
            self.stats.flagged.fetch_add(1, Relaxed);
            let reason = format!(
                "still waiting on the provider ({}) after {} probes; needs a person",
                t.waiting_on, t.probes
            );
            return Some(probes::Job::Flag { reason });
        }
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
        t.next_probe = (now + chrono_dur(pause)).min(t.since + final_deadline);
        self.stats.probes.fetch_add(1, Relaxed);
        Some(probes::Job::Probe { attempt })
    }

    fn finished(&mut self, done: Result<probes::Report, tokio::task::JoinError>) {
        match done {
            Ok(report) => {
                self.in_flight.remove(&report.order);
                if let Some(e) = &report.error {
                    self.stats.submit_errors.fetch_add(1, Relaxed);
                    tracing::warn!(order = %report.order, error = %e, "reconciler: could not submit probe results");
                }
                if let Some(t) = self.tracked.get_mut(&report.order) {
                    flag_settled(t, &report, chrono::Utc::now());
                }
            }
            Err(e) => {
                // A panicked job: its order stays marked busy until a restart; say so.
                self.stats.submit_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "reconciler: a probe job failed");
            }
        }
    }
}

/// How long `state`'s order may wait before its first probe: its provider's setting (the
/// final deadline for a provider without a status query, which cannot be asked).
fn first_probe_after(cfg: &ReconcilerConfig, state: &OrderState) -> Duration {
    match supports(state.provider, Feature::StatusQuery) {
        true => cfg
            .first_probe_after
            .get(&state.provider)
            .copied()
            .unwrap_or(FIRST_PROBE_AFTER_DEFAULT)
            .min(cfg.final_deadline),
        false => cfg.final_deadline,
    }
}

/// A flag job's end: a flag whose submission failed is unmarked, so a later tick (after
/// [`FLAG_RETRY_AFTER`]) sends it again instead of the order being taken as flagged while
/// nobody was told.
fn flag_settled(t: &mut Tracked, report: &probes::Report, now: Timestamp) {
    let (Some(flag), Some(_)) = (report.flag, &report.error) else {
        t.flag_retry_at = None;
        return;
    };
    match flag {
        probes::FlagKind::Deadline => t.flagged = false,
        probes::FlagKind::Expiry => t.expiry_flagged = false,
    }
    t.flag_retry_at = Some(now + chrono_dur(FLAG_RETRY_AFTER));
}

/// Whether `t`'s expiry made every attempt and the order is still open past its `expires_at`:
/// a person must decide (flagged once; the engine schedules nothing more).
fn expiry_flag_due(t: &Tracked) -> bool {
    !t.expiry_flagged && paystate_service::expiry::exhausted(&t.state)
}

/// What the order waits on a provider for; empty when nothing (or when a person owns it).
pub(crate) fn waiting_on(s: &OrderState) -> String {
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
    fn every_order_belongs_to_exactly_one_instance_by_fnv() {
        for i in 0..200 {
            let o = OrderId::parse(format!("order-{i}")).expect("id");
            let owners = (0..3).filter(|n| is_mine(&o, *n, 3)).count();
            assert_eq!(owners, 1, "{o}");
            assert_eq!(
                is_mine(&o, 1, 3),
                paystate_events::ids::shard_of(o.as_str(), 3) == 1,
                "the same shards as audit and rebuild"
            );
        }
        let one = OrderId::parse("o").expect("id");
        assert!(is_mine(&one, 0, 0), "no instances count as one");
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

    #[test]
    fn a_flag_that_was_not_submitted_is_sent_again_after_a_pause_one_that_was_is_not() {
        let s = order(Provider::Plexy, Status::Pending);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let mut t = Tracked {
            state: s.clone(),
            seq: 1,
            waiting_on: "capture".into(),
            since: s.created_at,
            next_probe: s.created_at,
            probes: 3,
            flagged: true,
            expiry_flagged: true,
            flag_retry_at: None,
        };
        let report = |flag, error: Option<&str>| probes::Report {
            order: s.order_id.clone(),
            flag,
            error: error.map(str::to_string),
        };
        // Given a deadline flag whose submission failed: unmarked, retried after the pause.
        flag_settled(
            &mut t,
            &report(Some(probes::FlagKind::Deadline), Some("broker down")),
            now,
        );
        assert!(!t.flagged, "sent again");
        assert!(t.expiry_flagged, "the other flag untouched");
        assert_eq!(t.flag_retry_at, Some(now + chrono_dur(FLAG_RETRY_AFTER)));
        // The same for the expiry flag.
        flag_settled(
            &mut t,
            &report(Some(probes::FlagKind::Expiry), Some("broker down")),
            now,
        );
        assert!(!t.expiry_flagged);
        // Then once one is submitted, the order counts as flagged and nothing waits.
        t.flagged = true;
        flag_settled(&mut t, &report(Some(probes::FlagKind::Deadline), None), now);
        assert!(t.flagged);
        assert_eq!(t.flag_retry_at, None);
        // A probe's failed submission unmarks no flag.
        flag_settled(&mut t, &report(None, Some("broker down")), now);
        assert!(t.flagged);
    }

    #[test]
    fn an_order_whose_expiry_ran_out_of_attempts_is_flagged_once_under_one_id() {
        let mut s = order(Provider::Plural, Status::Authorized);
        s.expires_at = Some("2026-01-01T01:00:00Z".parse().expect("time"));
        let mut t = Tracked {
            state: s.clone(),
            seq: 1,
            waiting_on: String::new(),
            since: s.created_at,
            next_probe: s.created_at,
            probes: 0,
            flagged: false,
            expiry_flagged: false,
            flag_retry_at: None,
        };
        assert!(!expiry_flag_due(&t), "no attempt made yet");
        for n in 0..=paystate_service::expiry::RETRIES_MAX {
            let id = paystate_service::expiry::attempt_id(&s.order_id, n).expect("id");
            let applied = paystate_events::Applied {
                commit: u64::from(n) + 2,
                fingerprint: String::new(),
            };
            t.state.applied.insert(id, applied);
        }
        assert!(expiry_flag_due(&t), "every attempt made, still authorized");
        t.state.cancel_pending = true;
        assert!(!expiry_flag_due(&t), "a void is still in flight");
        t.state.cancel_pending = false;
        t.expiry_flagged = true;
        assert!(!expiry_flag_due(&t), "flagged once per process");

        // After a restart (or an operator's resolve_review) the same flag is the same command:
        // answered as a duplicate, never a second flag.
        let first = probes::expiry_flag(&t.state, "2026-01-01T02:00:00Z".parse().expect("time"));
        let again = probes::expiry_flag(&t.state, "2026-01-03T00:00:00Z".parse().expect("time"));
        assert_eq!(first, again);
        assert!(first.command_id.as_str().starts_with("r.expiry."));
    }
}
