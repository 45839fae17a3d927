//! One command, start to finish: stored outcome? → load (cache or log) → decide → append
//! with optimistic concurrency → remember the outcome. Conflicts re-load and re-decide, up to
//! a named bound; then the command goes back to the queue (never dropped).

use crate::cache::{CachedOrder, OrderCache};
use crate::config::EngineConfig;
use crate::outcomes::{Outcomes, StoredOutcome};
use paystate_engine::{apply_commit, check_invariants, decide, Decision};
use paystate_events::{
    Command, CommandEnvelope, CommandId, Commit, OrderId, OrderState, Outcome, Rejection,
    RejectionCode, StateView, Timestamp,
};
use paystate_journal::{AppendError, EncodedCommit, Journal};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Pause after a broker error before trying again, growing per attempt up to the last value.
const BROKER_BACKOFF_MS: [u64; 5] = [5, 20, 100, 300, 1000];

/// What to do with the command message after processing.
#[derive(Debug)]
// Why: one per command, consumed at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Disposition {
    /// Acknowledge; reply with the outcome.
    Done(Outcome),
    /// A new commit, already in the log: reply with the outcome, then store it in the outcome
    /// bucket ([`Processor::remember_encoded`], the same bytes as the reply), then acknowledge.
    /// The log holds the outcome already, so the caller does not wait for the bucket.
    Committed {
        outcome: Outcome,
        order: OrderId,
        command: CommandId,
        fingerprint: String,
    },
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
}

pub struct Processor {
    pub journal: Journal,
    pub outcomes: Outcomes,
    pub cache: OrderCache,
    pub cfg: EngineConfig,
    pub stats: Arc<Stats>,
}

impl Processor {
    /// Processes `env`, received by the broker at `now`.
    pub async fn handle(&mut self, env: &CommandEnvelope, now: Timestamp) -> Disposition {
        let fingerprint = env.fingerprint();
        match self.outcomes.get(&env.order_id, &env.command_id).await {
            // A refused reply target was recorded only so its caller could read why; the
            // command itself was never processed, so a retry with a good inbox proceeds.
            Ok(Some(stored))
                if stored.outcome.rejection_code() == Some(RejectionCode::ReplyTargetRefused) => {}
            Ok(Some(stored)) if stored.fingerprint == fingerprint => {
                self.stats.duplicates.fetch_add(1, Relaxed);
                return Disposition::Done(as_duplicate(stored.outcome));
            }
            Ok(Some(_)) => return Disposition::Done(self.reused(env)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outcome lookup failed; retrying later");
                return self.retry_later();
            }
        }
        let mut caught_up: Option<Current> = None;
        // Set after a conflict or an unconfirmed append: the cached state is behind the log.
        let mut behind = false;
        for attempt in 0..=self.cfg.conflict_retries_max {
            let current = match caught_up.take() {
                Some(c) => c,
                None => match self.current(env, std::mem::take(&mut behind)).await {
                    Ok(c) => c,
                    Err(LoadError::Unreadable(detail)) => {
                        return Disposition::Done(self.unreadable(env, detail))
                    }
                    Err(LoadError::Broker(e)) => {
                        tracing::warn!(order = %env.order_id, error = %e, "order read failed");
                        backoff(attempt).await;
                        continue;
                    }
                },
            };
            crate::telemetry::record_order(current.state.as_ref());
            match decide(current.state.as_ref(), env, now) {
                Err(rejection) if !current.fresh => {
                    // Decided on a cached state: another instance may have moved the order.
                    // A rejection stands only once the log's tail confirms the cache.
                    match self.catch_up(env, current).await {
                        Ok(fresh) => caught_up = Some(fresh),
                        Err(LoadError::Unreadable(detail)) => {
                            return Disposition::Done(self.unreadable(env, detail))
                        }
                        Err(e) => {
                            tracing::warn!(order = %env.order_id, error = %e, %rejection, "catch-up failed");
                            backoff(attempt).await;
                        }
                    }
                }
                Err(rejection) => {
                    return Disposition::Done(self.rejected(env, &fingerprint, rejection).await)
                }
                Ok(Decision::AlreadyApplied { commit }) => {
                    self.stats.duplicates.fetch_add(1, Relaxed);
                    if let Some(outcome) = self.already_applied(env, commit).await {
                        self.remember(env, &fingerprint, &outcome).await;
                        return Disposition::Done(as_duplicate(outcome));
                    }
                    backoff(attempt).await;
                }
                Ok(Decision::Commit(events)) => {
                    let commit =
                        next_commit(current.state.as_ref(), env, &fingerprint, now, events);
                    match self.commit(env, current, commit).await {
                        Ok(outcome) => {
                            return Disposition::Committed {
                                outcome,
                                order: env.order_id.clone(),
                                command: env.command_id.clone(),
                                fingerprint,
                            }
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
                        Err(Retry::Refused(outcome)) => return Disposition::Done(outcome),
                    }
                }
            }
        }
        self.retry_later()
    }

    /// The order from the cache, or on a miss from its latest snapshot plus the commits after
    /// it ([`crate::snapshots::load`]; then marked fresh). `behind`: the log moved past the
    /// cached state (a conflict, an unconfirmed append), so the cache is caught up with the
    /// log's tail first. The cached state is always a prefix of the order's history, so its
    /// tail is all that is missing; re-reading a long order whole would cost far more.
    async fn current(&mut self, env: &CommandEnvelope, behind: bool) -> Result<Current, LoadError> {
        if let Some(hit) = self.cache.get(&env.order_id) {
            let cached = Current {
                state: hit.state,
                last_seq: hit.last_seq,
                fresh: false,
            };
            return if behind {
                self.catch_up(env, cached).await
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
        let loaded = crate::snapshots::load(&self.journal, &self.outcomes, &env.order_id).await?;
        let entry = CachedOrder {
            state: loaded.state,
            last_seq: loaded.last_seq,
        };
        self.cache.put(env.order_id.clone(), entry.clone());
        Ok(Current {
            state: entry.state,
            last_seq: entry.last_seq,
            fresh: true,
        })
    }

    /// Folds the log's tail after the cached state into the cache: the result is current.
    async fn catch_up(
        &mut self,
        env: &CommandEnvelope,
        current: Current,
    ) -> Result<Current, LoadError> {
        let tail = self
            .journal
            .read_order_tail(&env.order_id, current.last_seq + 1)
            .await?;
        let mut state = current.state;
        // Past the last commit if a quarantined message follows it.
        let last_seq = tail.last_seq.max(current.last_seq);
        for c in &tail.commits {
            match apply_commit(state.take(), &c.commit, &c.hash) {
                Ok(s) => state = Some(s),
                Err(e) => {
                    self.cache.forget(&env.order_id);
                    return Err(LoadError::Unreadable(format!(
                        "commit at sequence {} does not fold: {e}",
                        c.sequence
                    )));
                }
            }
        }
        self.cache.put(
            env.order_id.clone(),
            CachedOrder {
                state: state.clone(),
                last_seq,
            },
        );
        Ok(Current {
            state,
            last_seq,
            fresh: true,
        })
    }

    /// Folds and checks the commit, then appends it; on success the cache holds the new state.
    async fn commit(
        &mut self,
        env: &CommandEnvelope,
        current: Current,
        commit: Commit,
    ) -> Result<Outcome, Retry> {
        let encoded = EncodedCommit::new(commit);
        let state = match apply_commit(current.state, &encoded.commit, &encoded.hash) {
            Ok(s) => s,
            Err(e) => {
                return Err(Retry::Refused(
                    self.internal(env, format!("commit does not fold: {e}")),
                ))
            }
        };
        let violations = check_invariants(&state);
        if !violations.is_empty() {
            return Err(Retry::Refused(
                self.internal(env, format!("invariants would break: {violations:?}")),
            ));
        }
        match self.journal.append(&encoded, current.last_seq).await {
            Ok(appended) if appended.duplicate => {
                // Our own earlier write of this very command: catch up to answer from the log.
                Err(Retry::Conflict)
            }
            Ok(appended) => {
                tracing::debug!(sequence = appended.sequence, "appended");
                if crate::snapshots::due(&state) {
                    if let Err(e) =
                        crate::snapshots::put(&self.outcomes, appended.sequence, &state).await
                    {
                        // Harmless: loads read a longer tail (or the whole order).
                        tracing::debug!(order = %env.order_id, error = %e, "snapshot not written");
                    }
                }
                self.cache.put(
                    env.order_id.clone(),
                    CachedOrder {
                        state: Some(state.clone()),
                        last_seq: appended.sequence,
                    },
                );
                self.stats.accepted.fetch_add(1, Relaxed);
                Ok(Outcome::Accepted {
                    command_id: env.command_id.clone(),
                    order_id: env.order_id.clone(),
                    commit: encoded.commit.commit,
                    events: encoded.commit.events,
                    state: StateView::of(&state),
                    duplicate: false,
                })
            }
            // The cache keeps the state before this attempt (a prefix of the log); the next
            // attempt reads only the log's tail after it.
            Err(AppendError::Conflict) => Err(Retry::Conflict),
            Err(AppendError::Unconfirmed(e)) => {
                tracing::warn!(order = %env.order_id, error = %e, "append not confirmed; catching up with the log");
                Err(Retry::Broker)
            }
        }
    }

    /// The original outcome of a command found in the order's history (its outcome expired
    /// from the bucket or was deleted): rebuilt from the log — its commit's events and the
    /// state right after that commit, re-folded — so it is the very outcome the command got
    /// first, never today's state. `None` if the log cannot be read now (retried).
    async fn already_applied(&mut self, env: &CommandEnvelope, commit: u64) -> Option<Outcome> {
        let stored = match self.journal.read_order(&env.order_id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(order = %env.order_id, error = %e, "could not read the log to rebuild an outcome");
                return None;
            }
        };
        let end = stored.iter().position(|c| c.commit.commit == commit)?;
        let found = &stored[end];
        if found.commit.command.command_id != env.command_id {
            tracing::error!(order = %env.order_id, commit, "commit does not hold the command its state says");
            return None;
        }
        let state = paystate_journal::read::fold(&env.order_id, &stored[..=end])
            .ok()
            .flatten()?;
        Some(Outcome::Accepted {
            command_id: env.command_id.clone(),
            order_id: env.order_id.clone(),
            commit,
            events: found.commit.events.clone(),
            state: StateView::of(&state),
            duplicate: false,
        })
    }

    async fn rejected(
        &mut self,
        env: &CommandEnvelope,
        fingerprint: &str,
        r: Rejection,
    ) -> Outcome {
        self.stats.rejected.fetch_add(1, Relaxed);
        let outcome = rejection(env, r.code, r.message);
        if r.code != RejectionCode::IdempotencyKeyReused {
            self.remember(env, fingerprint, &outcome).await;
        }
        outcome
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

    /// Stores a committed command's outcome, given as the JSON bytes its caller was sent.
    pub async fn remember_encoded(
        &self,
        order: &OrderId,
        command: &CommandId,
        fingerprint: &str,
        outcome_json: &[u8],
    ) {
        if let Err(e) = self
            .outcomes
            .put_encoded(order, command, fingerprint, outcome_json)
            .await
        {
            tracing::warn!(%order, error = %e, "could not store the outcome (harmless: the log is the truth)");
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

// Why: as for `Disposition`.
#[allow(clippy::large_enum_variant)]
enum Retry {
    Conflict,
    Broker,
    Refused(Outcome),
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
