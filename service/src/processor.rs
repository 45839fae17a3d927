//! One command, start to finish: load (cache or log) → decide → append with optimistic
//! concurrency → outcome. Conflicts re-load the log's tail and re-decide, up to a named
//! bound; then the command goes back to its caller's queue (never dropped).
//!
//! Decision 0013: nothing but the commit is stored for an accepted command, and nothing is
//! read before it. A rejection on an existing order is appended like any commit (one
//! `command_rejected` event, the same optimistic-concurrency check), so a rejection decided
//! on a stale cache cannot stand, and a retry finds the command id in the order's state
//! (`Decision::AlreadyApplied`) and is answered from its commit in the log. Only rejections
//! with no order to live in (`order_not_found`, a refused create) use the outcome bucket: read
//! and written on that path alone.

use crate::cache::{CachedOrder, OrderCache};
use crate::config::EngineConfig;
use crate::outcomes::{Outcomes, StoredOutcome};
use paystate_engine::{apply_commit, check_invariants, decide, logs_rejection, Decision};
use paystate_events::{
    Command, CommandEnvelope, Commit, Event, OrderState, Outcome, Rejection, RejectionCode,
    StateView, Timestamp,
};
use paystate_journal::{AppendError, EncodedCommit, Journal, StoredCommit};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Pause after a broker error before trying again, growing per attempt up to the last value.
const BROKER_BACKOFF_MS: [u64; 5] = [5, 20, 100, 300, 1000];

/// What to do with the command after processing.
#[derive(Debug)]
// Why: one per command, consumed at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Disposition {
    /// Answer with the outcome and acknowledge: nothing new was written (a duplicate, a
    /// rejection that is not logged).
    Done(Outcome),
    /// A new commit, already in the log (accepted, or a logged rejection): answer with the
    /// outcome and acknowledge. Nothing else is stored.
    Committed { outcome: Outcome },
    /// Give it back to the queue (broker trouble or too many conflicts); it is redelivered.
    RetryLater,
}

/// Counters for tests, benchmarks and logs.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub retried_later: AtomicU64,
    pub bad_input: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub unreadable: AtomicU64,
    /// Queued commands handed to their fast-path partition's owner and answered by it.
    pub forwarded: AtomicU64,
    /// Queued commands handed to the owner that gave no outcome (no responders, an error,
    /// no answer in time), decided here instead: expected when an instance dies or the
    /// partitions move, never while the instances are steady.
    pub forward_fallbacks: AtomicU64,
}

pub struct Processor {
    pub journal: Journal,
    pub outcomes: Outcomes,
    pub cache: OrderCache,
    pub cfg: EngineConfig,
    pub stats: Arc<Stats>,
    /// The last outcome rebuilt from the log for a retry. Rebuilding an old command of a long
    /// order reads the order; a fast-path client whose attempt timed out meanwhile sends the
    /// same command again, and that retry (queued behind in the order's queue) is answered
    /// from here instead of reading the order once more. An applied command's outcome never
    /// changes, so this can only be reused, never stale. One slot per partition task.
    pub rebuilt: Option<(
        paystate_events::OrderId,
        paystate_events::CommandId,
        Outcome,
    )>,
}

/// What a decision asks of the processor.
// Why: as for `Disposition`.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Append one commit with these events (accepted, or a logged rejection).
    Append(Vec<Event>),
    /// Answer at once.
    Answer(Outcome),
    /// Read the log's tail and decide again (the attempt decided on a state that may be
    /// behind the log, and its answer is not protected by an append).
    CatchUp,
    /// Broker trouble: pause, then try again.
    Pause,
}

impl Processor {
    /// Processes `env`, received at `now` (the broker's receive time of a queued command, the
    /// instance's clock for a request on the fast path).
    pub async fn handle(&mut self, env: &CommandEnvelope, now: Timestamp) -> Disposition {
        let fingerprint = env.fingerprint();
        // Set after a conflict, an unconfirmed append or an unprotected rejection decided on a
        // cached state: the next attempt reads the log's tail first.
        let mut behind = false;
        for attempt in 0..=self.cfg.conflict_retries_max {
            let reread = std::mem::take(&mut behind);
            // Why no await inside this `match`: what it takes apart (the read, the step, the
            // state before the commit) then ends with the statement instead of staying in
            // this future beside the append.
            let folded = match self.load_and_step(env, &fingerprint, reread, now).await {
                Ok((current, Step::Append(events))) => {
                    let commit =
                        next_commit(current.state.as_ref(), env, &fingerprint, now, events);
                    match self.fold(env, current.state, commit) {
                        Ok((encoded, state)) => Some((encoded, state, current.last_seq)),
                        Err(refused) => return Disposition::Done(*refused),
                    }
                }
                Ok((current, Step::Answer(outcome))) => {
                    self.keep(env, current);
                    return Disposition::Done(outcome);
                }
                Ok((current, Step::CatchUp | Step::Pause)) => {
                    self.keep(env, current);
                    None
                }
                Err(LoadError::Unreadable(detail)) => {
                    return Disposition::Done(self.unreadable(env, detail))
                }
                Err(LoadError::Broker(e)) => {
                    tracing::warn!(order = %env.order_id, error = %e, "order read failed");
                    None
                }
            };
            let Some((encoded, state, last_seq)) = folded else {
                backoff(attempt).await;
                continue;
            };
            match self.commit(env, &encoded, &state, last_seq).await {
                Ok(sequence) => {
                    let outcome = self.committed(env, &encoded, state, sequence);
                    return Disposition::Committed { outcome };
                }
                Err(Retry::Conflict) => {
                    self.stats.conflicts.fetch_add(1, Relaxed);
                    crate::telemetry::conflict();
                    behind = true;
                }
                Err(Retry::Broker) => {
                    behind = true;
                    backoff(attempt).await
                }
            }
        }
        // Why one more read before giving up: the last attempt may have ended on an append
        // the log holds after all (its acknowledgement was lost, or it was our own earlier
        // write). Given up, the command would be retried, or at its bound dead-lettered and
        // answered "nothing was written", while the log says it was.
        if let Some(outcome) = self.answer_if_committed(env, now).await {
            return Disposition::Done(outcome);
        }
        self.retry_later()
    }

    /// The command's original outcome, answered from the log (as a duplicate), if the log's
    /// tail shows it applied; `None` if it does not, or the log cannot be read now.
    async fn answer_if_committed(
        &mut self,
        env: &CommandEnvelope,
        now: Timestamp,
    ) -> Option<Outcome> {
        let current = self.current(env, true).await.ok()?;
        let outcome = match decide(current.state.as_ref(), env, now) {
            Ok(Decision::AlreadyApplied { commit }) => {
                Box::pin(self.answer_applied(env, &current, commit)).await
            }
            _ => None,
        };
        self.keep(env, current);
        outcome
    }

    /// The answer to a command the log holds as commit `commit`: its original outcome as a
    /// duplicate (the last one rebuilt is kept, for a client retrying in a loop); `None` if
    /// the log cannot be read now.
    async fn answer_applied(
        &mut self,
        env: &CommandEnvelope,
        current: &Current,
        commit: u64,
    ) -> Option<Outcome> {
        self.stats.duplicates.fetch_add(1, Relaxed);
        let recent = self
            .rebuilt
            .as_ref()
            .filter(|(order, command, _)| *order == env.order_id && *command == env.command_id);
        if let Some((_, _, outcome)) = recent {
            return Some(as_duplicate(outcome.clone()));
        }
        let outcome = Box::pin(self.already_applied(env, current, commit)).await?;
        self.rebuilt = Some((
            env.order_id.clone(),
            env.command_id.clone(),
            outcome.clone(),
        ));
        Some(as_duplicate(outcome))
    }

    /// Loads the order (`reread`: catch up with the log's tail first) and decides. A rejection
    /// decided on a cached state that no append protects is decided again on the log's tail
    /// within the same attempt (that read is fresh, so this happens at most once).
    async fn load_and_step(
        &mut self,
        env: &CommandEnvelope,
        fingerprint: &str,
        mut reread: bool,
        now: Timestamp,
    ) -> Result<(Current, Step), LoadError> {
        loop {
            let current = self.current(env, reread).await?;
            crate::telemetry::record_order(current.state.as_ref());
            let step = self.step(env, fingerprint, &current, now).await;
            if matches!(step, Step::CatchUp) && !reread {
                self.keep(env, current);
                reread = true;
                continue;
            }
            return Ok((current, step));
        }
    }

    /// Decides `env` on `current` and says what to do about it.
    async fn step(
        &mut self,
        env: &CommandEnvelope,
        fingerprint: &str,
        current: &Current,
        now: Timestamp,
    ) -> Step {
        let state = current.state.as_ref();
        match decide(state, env, now) {
            Ok(Decision::Commit(events)) => Step::Append(events),
            Ok(Decision::AlreadyApplied { commit }) => {
                match Box::pin(self.answer_applied(env, current, commit)).await {
                    Some(outcome) => Step::Answer(outcome),
                    None => Step::Pause,
                }
            }
            // Appended like any commit: the optimistic-concurrency check confirms the state
            // it was decided on, and the log answers its retries.
            Err(r) if logs_rejection(state, r.code) => Step::Append(vec![Event::rejected(&r)]),
            // `idempotency_key_reused` and `order_history_full` only become truer as the log
            // grows, so a cached state is enough; any other rejection that is not logged (no
            // order, past the bound) stands only on the log's tail.
            Err(r) if !current.fresh && !is_monotone(r.code) => Step::CatchUp,
            Err(r) if state.is_none() => {
                match Box::pin(self.without_order(env, fingerprint, r)).await {
                    Some(outcome) => Step::Answer(outcome),
                    None => Step::Pause,
                }
            }
            Err(r) => {
                self.stats.rejected.fetch_add(1, Relaxed);
                Step::Answer(rejection(env, r.code, r.message))
            }
        }
    }

    /// The order taken out of the cache, or on a miss from its latest snapshot plus the
    /// commits after it ([`crate::snapshots::load`]; then marked fresh). `behind`: the log
    /// moved past the cached state (a conflict, an unconfirmed append), so it is caught up
    /// with the log's tail first. The cached state is always a prefix of the order's history,
    /// so its tail is all that is missing; re-reading a long order whole would cost far more.
    /// The caller puts back the state it ends with ([`Processor::keep`], or the commit).
    async fn current(&mut self, env: &CommandEnvelope, behind: bool) -> Result<Current, LoadError> {
        if let Some(hit) = self.cache.take(&env.order_id) {
            let cached = Current {
                state: hit.state,
                last_seq: hit.last_seq,
                fresh: false,
            };
            return if behind {
                // Boxed, like every read below: rare, and their futures would otherwise set
                // the size (and the copying) of every command's future.
                Box::pin(self.catch_up(env, cached)).await
            } else {
                Ok(cached)
            };
        }
        if matches!(env.command, Command::CreateOrder { .. }) && !behind {
            // A create is decided on "no such order" without reading the log: the append's
            // expected last subject sequence 0 lets it land only if the order has no commit,
            // which is what a read would have shown (and the read was only ever a hint: the
            // optimistic-concurrency check is what protects). If the order exists, the
            // append conflicts and the next attempt reads it; a rejection decided on the
            // assumption is confirmed against the log like any other (not `fresh`).
            return Ok(Current {
                state: None,
                last_seq: 0,
                fresh: false,
            });
        }
        let loaded = Box::pin(crate::snapshots::load(
            &self.journal,
            &self.outcomes,
            &env.order_id,
        ))
        .await?;
        Ok(Current {
            state: loaded.state,
            last_seq: loaded.last_seq,
            fresh: true,
        })
    }

    /// Puts the state a command was decided on back into the cache: a prefix of the order's
    /// history, as read or as left by the last commit. "No order" assumed for a create
    /// without a read is not kept (it was never read).
    fn keep(&mut self, env: &CommandEnvelope, current: Current) {
        if current.state.is_none() && current.last_seq == 0 && !current.fresh {
            return;
        }
        self.cache.put(
            &env.order_id,
            CachedOrder {
                state: current.state,
                last_seq: current.last_seq,
            },
        );
    }

    /// Folds the log's tail after the cached state into it: the result is current.
    async fn catch_up(
        &mut self,
        env: &CommandEnvelope,
        current: Current,
    ) -> Result<Current, LoadError> {
        let tail = match self
            .journal
            .read_order_tail(&env.order_id, current.last_seq + 1)
            .await
        {
            Ok(tail) => tail,
            Err(e) => {
                self.keep(env, current);
                return Err(e.into());
            }
        };
        let mut state = current.state;
        // Past the last commit if a quarantined message follows it.
        let last_seq = tail.last_seq.max(current.last_seq);
        for c in &tail.commits {
            match apply_commit(state.take(), &c.commit, &c.hash) {
                Ok(s) => state = Some(s),
                Err(e) => {
                    return Err(LoadError::Unreadable(format!(
                        "commit at sequence {} does not fold: {e}",
                        c.sequence
                    )));
                }
            }
        }
        Ok(Current {
            state,
            last_seq,
            fresh: true,
        })
    }

    /// Encodes the commit and folds it into `state`: the commit and the state after it, or
    /// the outcome refusing it (it does not fold, or would break an invariant).
    fn fold(
        &self,
        env: &CommandEnvelope,
        state: Option<OrderState>,
        commit: Commit,
    ) -> Result<(EncodedCommit, OrderState), Box<Outcome>> {
        let encoded = EncodedCommit::new(commit);
        let state = apply_commit(state, &encoded.commit, &encoded.hash)
            .map_err(|e| Box::new(self.internal(env, format!("commit does not fold: {e}"))))?;
        let violations = check_invariants(&state);
        if !violations.is_empty() {
            let refused = self.internal(env, format!("invariants would break: {violations:?}"));
            return Err(Box::new(refused));
        }
        Ok((encoded, state))
    }

    /// Appends the folded commit after `last_seq`: its sequence in the log once it holds it.
    /// The caller keeps the commit and the state (borrowed here, so each command's future
    /// holds them once: the future is moved whole, its size copied, at every call).
    async fn commit(
        &self,
        env: &CommandEnvelope,
        encoded: &EncodedCommit,
        state: &OrderState,
        last_seq: u64,
    ) -> Result<u64, Retry> {
        match self.journal.append(encoded, last_seq).await {
            Ok(appended) if appended.duplicate => {
                // Our own earlier write of this very command: catch up to answer from the log.
                Err(Retry::Conflict)
            }
            Ok(appended) => {
                tracing::debug!(sequence = appended.sequence, "appended");
                if crate::snapshots::due(state) {
                    // Boxed: one commit in many writes a snapshot.
                    let put = crate::snapshots::put(&self.outcomes, appended.sequence, state);
                    if let Err(e) = Box::pin(put).await {
                        // Harmless: loads read a longer tail (or the whole order).
                        tracing::debug!(order = %env.order_id, error = %e, "snapshot not written");
                    }
                }
                Ok(appended.sequence)
            }
            // The state this attempt was decided on was folded into the refused commit, so
            // the order is out of the cache: the next attempt reads it (rare with order
            // affinity; the cost of not copying the state for every command).
            Err(AppendError::Conflict) => Err(Retry::Conflict),
            Err(AppendError::Unconfirmed(e)) => {
                tracing::warn!(order = %env.order_id, error = %e, "append not confirmed; catching up with the log");
                Err(Retry::Broker)
            }
        }
    }

    /// The outcome of a commit the log holds at `sequence`, counted; the state after it moves
    /// into the cache (the outcome holds its own view of it: no copy of the order per
    /// command).
    fn committed(
        &mut self,
        env: &CommandEnvelope,
        encoded: &EncodedCommit,
        state: OrderState,
        sequence: u64,
    ) -> Outcome {
        let outcome = outcome_of(env, &encoded.commit, &state);
        match outcome {
            Outcome::Accepted { .. } => self.stats.accepted.fetch_add(1, Relaxed),
            Outcome::Rejected { .. } => self.stats.rejected.fetch_add(1, Relaxed),
        };
        self.cache.put(
            &env.order_id,
            CachedOrder {
                state: Some(state),
                last_seq: sequence,
            },
        );
        outcome
    }

    /// The original outcome of a command found in the order's history, rebuilt from its
    /// commit in the log: a logged rejection's code and message, or the accepted events with
    /// the state right after that commit (never today's state). When the command is the
    /// order's latest commit (the usual retry) only that commit is read and `current` is the
    /// state after it; otherwise the order is read (batched) and folded up to it. `None` if the
    /// log cannot be read now (retried).
    async fn already_applied(
        &mut self,
        env: &CommandEnvelope,
        current: &Current,
        commit: u64,
    ) -> Option<Outcome> {
        if let Some(state) = current.state.as_ref().filter(|s| s.commits == commit) {
            match self
                .journal
                .read_order_tail(&env.order_id, current.last_seq)
                .await
            {
                Ok(tail) => {
                    if let Some(found) = tail.commits.iter().find(|c| c.commit.commit == commit) {
                        return self.rebuilt(env, found, || Some(state.clone()));
                    }
                    // A quarantined message after the commit: read the order below.
                }
                Err(e) => {
                    tracing::warn!(order = %env.order_id, error = %e, "could not read the commit to rebuild an outcome");
                    return None;
                }
            }
        }
        let stored = match self.journal.read_order(&env.order_id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(order = %env.order_id, error = %e, "could not read the log to rebuild an outcome");
                return None;
            }
        };
        let end = stored.iter().position(|c| c.commit.commit == commit)?;
        self.rebuilt(env, &stored[end], || {
            paystate_journal::read::fold(&env.order_id, &stored[..=end])
                .ok()
                .flatten()
        })
    }

    /// The outcome `found` answers; `state_after` is folded only for an accepted command.
    fn rebuilt(
        &self,
        env: &CommandEnvelope,
        found: &StoredCommit,
        state_after: impl FnOnce() -> Option<OrderState>,
    ) -> Option<Outcome> {
        if found.commit.command.command_id != env.command_id {
            tracing::error!(order = %env.order_id, commit = found.commit.commit, "commit does not hold the command its state says");
            return None;
        }
        if let Some(r) = logged_rejection(&found.commit) {
            return Some(rejection(env, r.code, r.message));
        }
        Some(outcome_of(env, &found.commit, &state_after()?))
    }

    /// A rejection with no order to live in (`order_not_found`, a refused create; decision
    /// 0013): the outcome bucket answers a retry (it is read on this path only), else the
    /// rejection is stored there now. `None` if the bucket cannot be read now (retried).
    async fn without_order(
        &mut self,
        env: &CommandEnvelope,
        fingerprint: &str,
        r: Rejection,
    ) -> Option<Outcome> {
        match self.outcomes.get(&env.order_id, &env.command_id).await {
            // A refused reply target was recorded only so its caller could read why; the
            // command itself was never processed, so a retry with a good inbox proceeds.
            Ok(Some(stored))
                if stored.outcome.rejection_code() == Some(RejectionCode::ReplyTargetRefused) => {}
            Ok(Some(stored)) if stored.fingerprint == fingerprint => {
                self.stats.duplicates.fetch_add(1, Relaxed);
                return Some(as_duplicate(stored.outcome));
            }
            Ok(Some(_)) => return Some(self.reused(env)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(order = %env.order_id, error = %e, "outcome lookup failed; retrying");
                return None;
            }
        }
        self.stats.rejected.fetch_add(1, Relaxed);
        let outcome = rejection(env, r.code, r.message);
        self.remember(env, fingerprint, &outcome).await;
        Some(outcome)
    }

    /// The order's log holds something that is not a valid commit: refuse at once (no retry
    /// loop, nothing stored, so the order answers normally again once an operator repaired it).
    fn unreadable(&self, env: &CommandEnvelope, detail: String) -> Outcome {
        self.stats.unreadable.fetch_add(1, Relaxed);
        tracing::error!(order = %env.order_id, %detail, "order unreadable; refusing its commands until it is repaired");
        rejection(
            env,
            RejectionCode::OrderUnreadable,
            format!("order {} cannot be read from the log ({detail}); nothing was written; an operator must repair it (docs/security.md)", env.order_id),
        )
    }

    /// Records a refused reply target's rejection (see `intake`), so the caller can read it.
    pub async fn remember_refusal(&self, env: &CommandEnvelope, outcome: &Outcome) {
        self.remember(env, &env.fingerprint(), outcome).await;
    }

    fn reused(&self, env: &CommandEnvelope) -> Outcome {
        self.stats.rejected.fetch_add(1, Relaxed);
        let message = format!(
            "command id {} was used before with a different body",
            env.command_id
        );
        rejection(env, RejectionCode::IdempotencyKeyReused, message)
    }

    fn internal(&self, env: &CommandEnvelope, detail: String) -> Outcome {
        tracing::error!(order = %env.order_id, command = %env.command_id, %detail, "refusing a decision that breaks the core's own rules");
        self.stats.rejected.fetch_add(1, Relaxed);
        rejection(
            env,
            RejectionCode::Unavailable,
            format!("internal check failed, nothing written: {detail}"),
        )
    }

    async fn remember(&self, env: &CommandEnvelope, fingerprint: &str, outcome: &Outcome) {
        let stored = StoredOutcome {
            fingerprint: fingerprint.to_string(),
            outcome: outcome.clone(),
        };
        if let Err(e) = self
            .outcomes
            .put(&env.order_id, &env.command_id, &stored)
            .await
        {
            tracing::warn!(order = %env.order_id, error = %e, "could not store the outcome (harmless: the log is the truth)");
        }
    }

    fn retry_later(&self) -> Disposition {
        self.stats.retried_later.fetch_add(1, Relaxed);
        Disposition::RetryLater
    }
}

/// Why an order could not be loaded: the broker (retry) or the log's content (refuse).
enum LoadError {
    Broker(String),
    Unreadable(String),
}

impl From<paystate_journal::ReadError> for LoadError {
    fn from(e: paystate_journal::ReadError) -> Self {
        match e {
            paystate_journal::ReadError::Corrupt { .. } => LoadError::Unreadable(e.to_string()),
            paystate_journal::ReadError::Broker(_) | paystate_journal::ReadError::TooLong(_) => {
                LoadError::Broker(e.to_string())
            }
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Broker(e) | LoadError::Unreadable(e) => f.write_str(e),
        }
    }
}

/// An order as this attempt sees it; `fresh` when just read from the log (not the cache).
struct Current {
    state: Option<OrderState>,
    last_seq: u64,
    fresh: bool,
}

/// Why an append is tried again.
enum Retry {
    Conflict,
    Broker,
}

fn next_commit(
    state: Option<&OrderState>,
    env: &CommandEnvelope,
    fingerprint: &str,
    now: Timestamp,
    events: Vec<paystate_events::Event>,
) -> Commit {
    Commit::after(state, env.clone(), fingerprint.to_string(), now, events)
}

/// A rejection outcome for a parsed command.
pub fn rejection(env: &CommandEnvelope, code: RejectionCode, message: String) -> Outcome {
    Outcome::Rejected {
        command_id: Some(env.command_id.to_string()),
        order_id: Some(env.order_id.to_string()),
        code,
        message,
        duplicate: false,
    }
}

/// The outcome a new or found commit answers: a logged rejection's, or the accepted events
/// with `after`, the order's state right after the commit.
pub fn outcome_of(env: &CommandEnvelope, commit: &Commit, after: &OrderState) -> Outcome {
    if let Some(r) = logged_rejection(commit) {
        return rejection(env, r.code, r.message);
    }
    Outcome::Accepted {
        command_id: env.command_id.clone(),
        order_id: env.order_id.clone(),
        commit: commit.commit,
        events: commit.events.clone(),
        state: StateView::of(after),
        duplicate: false,
    }
}

/// The rejection a `command_rejected` commit holds (`None` for any other commit).
fn logged_rejection(commit: &Commit) -> Option<Rejection> {
    match commit.events.as_slice() {
        [Event::CommandRejected { code, message }] => Some(Rejection::new(*code, message.clone())),
        _ => None,
    }
}

/// Rejections that only become truer as the order's log grows (a cached state, a prefix of
/// the log, is enough to decide them).
fn is_monotone(code: RejectionCode) -> bool {
    matches!(
        code,
        RejectionCode::IdempotencyKeyReused | RejectionCode::OrderHistoryFull
    )
}

fn as_duplicate(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Accepted {
            command_id,
            order_id,
            commit,
            events,
            state,
            ..
        } => Outcome::Accepted {
            command_id,
            order_id,
            commit,
            events,
            state,
            duplicate: true,
        },
        Outcome::Rejected {
            command_id,
            order_id,
            code,
            message,
            ..
        } => Outcome::Rejected {
            command_id,
            order_id,
            code,
            message,
            duplicate: true,
        },
    }
}

async fn backoff(attempt: u32) {
    let idx = (attempt as usize).min(BROKER_BACKOFF_MS.len() - 1);
    tokio::time::sleep(Duration::from_millis(BROKER_BACKOFF_MS[idx])).await;
}
