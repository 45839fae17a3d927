//! Probes and flags, off the log-following loop: each is a job in a bounded task set
//! ([`PROBES_IN_FLIGHT_MAX`]); the loop starts jobs for due orders and collects their
//! reports, so a slow provider never holds up following the log.

use crate::submit::{publish_all, signal_command};
use paystate_adapters::Adapters;
use paystate_events::metric_names as m;
use paystate_events::{CommandEnvelope, OrderId, OrderState, SignalKind, Timestamp};
use paystate_service::Client;
use std::sync::Arc;

/// Probe and flag jobs running at once (per reconciler instance).
pub const PROBES_IN_FLIGHT_MAX: usize = 16;

/// What a job does.
pub(crate) enum Job {
    /// Ask the provider for the order's status (`attempt` counts from 1).
    Probe { attempt: u32 },
    /// Flag the order for a person at its final deadline.
    Flag { reason: String },
    /// Flag the order for a person: its expiry made every attempt and it is still open
    /// ([`paystate_service::expiry::exhausted`]).
    ExpiryFlag,
}

/// Which review flag a job carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// [`Job::Flag`]: still waiting on the provider at the final deadline.
    Deadline,
    /// [`Job::ExpiryFlag`].
    Expiry,
}

/// What a job reports back to the loop.
pub(crate) struct Report {
    pub order: OrderId,
    /// The flag it carried, if it was a flag job (unmarked again if it was not submitted).
    pub flag: Option<FlagKind>,
    /// Why the job's signals could not be submitted (the loop logs and counts it).
    pub error: Option<String>,
}

/// Runs one job for `state` (a snapshot of the tracked order) at `now`.
pub(crate) async fn run(
    adapters: Arc<Adapters>,
    client: Client,
    state: OrderState,
    job: Job,
    now: Timestamp,
) -> Report {
    let order = state.order_id.clone();
    let flag = match &job {
        Job::Probe { .. } => None,
        Job::Flag { .. } => Some(FlagKind::Deadline),
        Job::ExpiryFlag => Some(FlagKind::Expiry),
    };
    let commands = match job {
        Job::Probe { attempt } => probe(&adapters, &state, attempt, now).await,
        Job::Flag { reason } => {
            metrics::counter!(m::RECONCILER_FLAGGED_TOTAL, "provider" => state.provider.as_str())
                .increment(1);
            vec![signal_command(
                &order,
                &format!("r.{}.review", state.commits),
                state.provider,
                None,
                "reconciler:final-deadline".into(),
                now,
                SignalKind::NeedsReview { reason },
            )]
        }
        Job::ExpiryFlag => {
            metrics::counter!(m::RECONCILER_FLAGGED_TOTAL, "provider" => state.provider.as_str())
                .increment(1);
            vec![expiry_flag(&state, now)]
        }
    };
    let error = publish_all(&client, &commands)
        .await
        .err()
        .map(|e| e.to_string());
    Report { order, flag, error }
}

/// The `needs_review` signal for an order whose expiry ran out of attempts. Its body is a
/// function of the order alone (observed at `expires_at`, a fixed reason), so its command id
/// is too: flagged once, however often the reconciler restarts or looks again (also after an
/// operator resolved the review: the order is then theirs to decide).
pub(crate) fn expiry_flag(state: &OrderState, now: Timestamp) -> CommandEnvelope {
    use paystate_service::expiry::RETRIES_MAX;
    let at = state.expires_at.unwrap_or(now);
    let reason = format!(
        "expiry: {} attempts (expires_at {}) did not end the order; it is still {}, the \
         provider may still hold the funds; needs a person",
        RETRIES_MAX + 1,
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        state.status
    );
    signal_command(
        &state.order_id,
        "r.expiry",
        state.provider,
        None,
        "reconciler:expiry-attempts-exhausted".into(),
        at,
        SignalKind::NeedsReview { reason },
    )
}

/// A status query; its answer as signals (or a `probed` record when it changes nothing, or
/// when the query failed), so the audit shows every question and answer.
async fn probe(
    adapters: &Adapters,
    state: &OrderState,
    attempt: u32,
    now: Timestamp,
) -> Vec<CommandEnvelope> {
    let order = &state.order_id;
    let prefix = format!("r.{}.{}", state.commits, attempt);
    let answer = adapters.status(state).await;
    let result = if answer.is_ok() { "answered" } else { "error" };
    metrics::counter!(m::RECONCILER_PROBES_TOTAL, "provider" => state.provider.as_str(), "result" => result).increment(1);
    match answer {
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
    }
}
