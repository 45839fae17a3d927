//! Order expiry that needs no one awake: when an order with `expires_at` is committed, the
//! engine stores a schedule in `PAYSTATE_SCHEDULES` (JetStream message scheduling, ADR-51,
//! nats-server 2.12+). At `expires_at` the *server* publishes the order's `expire` command,
//! the command queue sources it as `paystate.cmd.<order_id>`, and it waits there until an
//! engine takes it, however long no engine runs.
//!
//! Durability: the schedule is written after the commit and before the outcome is answered,
//! stored or acknowledged; if the write fails the command is retried first in its order (and
//! after a crash, redelivered), answered from the log as a duplicate, which writes the
//! schedule again; past `deliveries_max` attempts a queued command is set aside in the
//! dead-letter stream (its redrive writes the schedule) and answered, so the retry is bounded
//! (decision 0010). Writing it twice is harmless: the schedule's subject is its
//! identity (one per order and attempt), `Nats-Msg-Id` drops a retry within the duplicate
//! window, and the expire command's id is deterministic ([`attempt_id`]), so a second firing
//! is answered as a duplicate.
//!
//! Retries (decision 0010): an attempt that does not end the order — refused
//! `operation_in_progress` because a capture or cancellation was in flight, or accepted as a
//! void the provider then refused (`cancel_failed`) — leaves it open past `expires_at`. Once
//! the operation in flight has settled without ending the order (`capture_failed`,
//! `cancel_failed`), the commit that says so schedules the next attempt, `expire.<order>.<n>`,
//! [`EngineConfig::expiry_retry_after`] after it, through the same schedule stream and with
//! the same durability. At most [`RETRIES_MAX`] retries; an order still open and idle after
//! the last one is [`exhausted`], and the reconciler flags it for a person (`needs_review`).
//! What is due is a function of the order's state alone ([`retry_due`]), so a redelivered or
//! replayed command schedules the same attempt again, never a second one.
//!
//! [`EngineConfig::expiry_retry_after`]: crate::EngineConfig::expiry_retry_after

use crate::cache::OrderCache;
use async_nats::jetstream;
use async_nats::HeaderMap;
use paystate_events::limits::{
    COMMAND_ID_LEN_MAX, ORDER_ID_LEN_MAX, REJECTIONS_LOGGED_PER_ORDER_MAX,
};
use paystate_events::subjects::{
    EXPIRY_COMMAND_ID_PREFIX, EXPIRY_FIRED_PREFIX, EXPIRY_SCHEDULE_PREFIX,
};
use paystate_events::{
    Command, CommandEnvelope, CommandId, Event, OrderId, OrderState, Outcome, Status, Timestamp,
};
use paystate_journal::setup::FIRED_EXPIRY_TTL;
use std::time::Duration;

/// Expiry attempts after the first (`expire.<order>`) that did not end the order: each is
/// `expire.<order>.<n>`, `n` in `1..=RETRIES_MAX`. Past them a person decides (the reconciler
/// flags the order), so nothing retries for ever.
pub const RETRIES_MAX: u32 = 4;

/// Default pause before retry `n` (index `n - 1`), counted from the commit that made it due
/// (the operation in flight settled without ending the order): soon after a failed capture,
/// longer after each void the provider refused (the adapter workers already retried its
/// transient errors). About 71 minutes from the first failure to the flag.
pub const RETRY_AFTER_DEFAULT: [Duration; RETRIES_MAX as usize] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(60 * 60),
];

/// Decimal digits of `n`.
const fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

// The longest attempt id, `expire.<64-char order id>.<RETRIES_MAX>`, is a valid command id.
const _: () = assert!(
    EXPIRY_COMMAND_ID_PREFIX.len() + 1 + ORDER_ID_LEN_MAX + 1 + digits(RETRIES_MAX)
        <= COMMAND_ID_LEN_MAX
);
// Every attempt's refusal fits among the rejections an order logs (decision 0013), with room
// to spare for the order's other commands: an unlogged refusal would not count as an attempt.
const _: () = assert!((RETRIES_MAX as u64 + 1) * 100 <= REJECTIONS_LOGGED_PER_ORDER_MAX);

/// Why a schedule could not be stored (the command is then redelivered).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("expiry schedule for {order} not published: {detail}")]
    Publish { order: OrderId, detail: String },
    #[error("expiry schedule for {order} not acknowledged: {detail}")]
    Unconfirmed { order: OrderId, detail: String },
    #[error("expiry command for {order} could not be built: {detail}")]
    Build { order: OrderId, detail: String },
}

/// An expire command to schedule: `attempt` 0 is the order's expiry itself, at `expires_at`;
/// `1..=RETRIES_MAX` are its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub order: OrderId,
    pub attempt: u32,
    pub at: Timestamp,
}

/// The expire command an outcome asks to schedule: for an `order_created` with `expires_at`,
/// the first attempt; for a commit that settled a capture or cancellation without ending an
/// order its expiry already tried, the next retry ([`retry_due`] of the order's state after it,
/// as this partition's `cache` holds it). Also on a duplicate answer, which is how a lost
/// schedule write is repaired.
pub fn due(
    outcome: &Outcome,
    cache: &OrderCache,
    retry_after: &[Duration; RETRIES_MAX as usize],
) -> Option<Due> {
    let Outcome::Accepted {
        order_id,
        events,
        state: view,
        ..
    } = outcome
    else {
        return None;
    };
    if let Some(at) = events.iter().find_map(created_expiry) {
        return Some(Due {
            order: order_id.clone(),
            attempt: 0,
            at,
        });
    }
    if view.expires_at.is_none() || !events.iter().any(settles_without_ending) {
        return None;
    }
    let Some(state) = cache.peek(order_id).and_then(|c| c.state.as_ref()) else {
        // Why unreachable in practice: the processor puts the state it answers from into the
        // cache before the outcome leaves it.
        tracing::warn!(order = %order_id, "expiry: order state not cached; no retry scheduled");
        return None;
    };
    retry_due(state, retry_after).map(|r| Due {
        order: order_id.clone(),
        attempt: r.attempt,
        at: r.at,
    })
}

fn created_expiry(e: &Event) -> Option<Timestamp> {
    match e {
        Event::OrderCreated {
            expires_at: Some(at),
            ..
        } => Some(*at),
        _ => None,
    }
}

/// Events that end an operation in flight and leave the order open: what makes an expiry
/// that was refused (`operation_in_progress`) or whose void failed worth another attempt.
fn settles_without_ending(e: &Event) -> bool {
    matches!(e, Event::CaptureFailed { .. } | Event::CancelFailed { .. })
}

/// The next expiry attempt an order's state calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// `1..=RETRIES_MAX`.
    pub attempt: u32,
    pub at: Timestamp,
}

/// The retry `state` calls for: its expiry was tried (at least `expire.<order>` is applied),
/// the order is still one an expiry acts on (created, pending or authorized), nothing is in
/// flight, and fewer than [`RETRIES_MAX`] retries were made. Due `retry_after[n - 1]` after
/// the order's last commit (the one that settled the operation). Pure: the same state always
/// gives the same retry, so redeliveries and replays schedule it again, never another one.
pub fn retry_due(
    state: &OrderState,
    retry_after: &[Duration; RETRIES_MAX as usize],
) -> Option<Retry> {
    let expires_at = state.expires_at?;
    if !open_and_idle(state) {
        return None;
    }
    let made = attempts_made(state);
    if made == 0 || made > RETRIES_MAX {
        return None;
    }
    let pause = retry_after[(made - 1) as usize];
    let pause = chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::MAX);
    let from = state.updated_at.max(expires_at);
    Some(Retry {
        attempt: made,
        at: from.checked_add_signed(pause).unwrap_or(from),
    })
}

/// Whether every expiry attempt was made and the order is still open and idle past its
/// `expires_at` (and not already flagged): a person must decide. The reconciler flags such an
/// order (`needs_review`); the engine schedules nothing more for it.
pub fn exhausted(state: &OrderState) -> bool {
    state.expires_at.is_some()
        && !state.needs_review
        && open_and_idle(state)
        && attempts_made(state) > RETRIES_MAX
}

/// Expiry attempts applied to the order, counted from `expire.<order>` while each next one is
/// applied too (they are scheduled one after another). `0..=RETRIES_MAX + 1`.
pub fn attempts_made(state: &OrderState) -> u32 {
    let applied =
        |n: u32| attempt_id(&state.order_id, n).is_ok_and(|id| state.applied.contains_key(&id));
    (0..=RETRIES_MAX)
        .take_while(|n| applied(*n))
        .fold(0, |made, _| made + 1)
}

/// An order an expiry still acts on (created, pending, authorized), with no capture or
/// cancellation waiting for the provider (what `decide` refuses `operation_in_progress`).
fn open_and_idle(s: &OrderState) -> bool {
    matches!(
        s.status,
        Status::Created | Status::Pending | Status::Authorized
    ) && s.capture_pending.is_none()
        && !s.cancel_pending
}

/// The dead-letter reason of a command whose commit is in the log but whose expiry schedule
/// could not be stored in `attempts` attempts (decision 0010).
pub fn not_stored_reason(attempts: i64) -> String {
    format!(
        "committed, but its expiry schedule was not stored after {attempts} attempts; redrive \
         this command once schedules can be stored (it is answered from the log and its \
         schedule written again)"
    )
}

/// The deterministic id of an order's scheduled expire command: `expire.<order_id>`.
pub fn command_id(order: &OrderId) -> Result<CommandId, String> {
    attempt_id(order, 0)
}

/// The deterministic id of an order's expiry attempt: `expire.<order_id>` for the first,
/// `expire.<order_id>.<n>` for retry `n`.
pub fn attempt_id(order: &OrderId, attempt: u32) -> Result<CommandId, String> {
    let id = match attempt {
        0 => format!("{EXPIRY_COMMAND_ID_PREFIX}.{order}"),
        n => format!("{EXPIRY_COMMAND_ID_PREFIX}.{order}.{n}"),
    };
    CommandId::parse(id).map_err(|e| e.to_string())
}

/// The subject of an attempt's schedule (its identity): `paystate.schedule.expire.<order_id>`
/// for the first, `….<order_id>.<n>` for retry `n`.
pub fn schedule_subject(order: &OrderId, attempt: u32) -> String {
    match attempt {
        0 => format!("{EXPIRY_SCHEDULE_PREFIX}.{order}"),
        n => format!("{EXPIRY_SCHEDULE_PREFIX}.{order}.{n}"),
    }
}

/// The `Nats-Msg-Id` of an attempt's schedule write.
fn schedule_msg_id(order: &OrderId, attempt: u32) -> String {
    match attempt {
        0 => format!("expiry:{order}"),
        n => format!("expiry:{order}:{n}"),
    }
}

/// The `Nats-Schedule` value: `@at <RFC 3339>`, rounded up to the whole second so the server
/// never fires before `expires_at` (an early expire would be refused as `not_expired`).
pub fn schedule_header(at: Timestamp) -> String {
    let whole = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    let rounded = chrono::DateTime::from_timestamp(whole, 0).unwrap_or(at);
    format!("@at {}", rounded.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// Stores (or re-stores) the schedule that publishes `due`'s expire command at its time. Every
/// attempt fires into `paystate.fired.expire.<order_id>`, which the command queue sources.
pub async fn schedule(js: &jetstream::Context, due: &Due) -> Result<(), ScheduleError> {
    let order = &due.order;
    let build = |detail: String| ScheduleError::Build {
        order: order.clone(),
        detail,
    };
    let env = CommandEnvelope {
        command_id: attempt_id(order, due.attempt).map_err(build)?,
        order_id: order.clone(),
        issued_at: due.at,
        command: Command::Expire,
    };
    let body = serde_json::to_vec(&env).map_err(|e| build(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Schedule", schedule_header(due.at).as_str());
    headers.insert(
        "Nats-Schedule-Target",
        format!("{EXPIRY_FIRED_PREFIX}.{order}").as_str(),
    );
    headers.insert("Nats-Schedule-TTL", FIRED_EXPIRY_TTL);
    headers.insert("Nats-Msg-Id", schedule_msg_id(order, due.attempt).as_str());
    let ack = js
        .publish_with_headers(schedule_subject(order, due.attempt), headers, body.into())
        .await
        .map_err(|e| ScheduleError::Publish {
            order: order.clone(),
            detail: e.to_string(),
        })?;
    ack.await.map_err(|e| ScheduleError::Unconfirmed {
        order: order.clone(),
        detail: e.to_string(),
    })?;
    tracing::debug!(%order, attempt = due.attempt, at = %due.at, "expiry scheduled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachedOrder;
    use paystate_engine::{apply_commit, decide, logs_rejection, Decision};
    use paystate_events::{
        CaptureMode, Commit, Operation, Provider, ProviderSignal, RejectionCode, SignalKind,
    };

    /// One order driven through the real core, its state kept in a cache as the engine keeps
    /// it: what `due` sees after each command.
    struct Order {
        id: OrderId,
        state: Option<OrderState>,
        cache: OrderCache,
        n: u32,
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    /// Expires at 10:00:00.
    const EXPIRES_AT: &str = "2026-12-01T10:00:00Z";

    impl Order {
        fn new() -> Order {
            let mut o = Order {
                id: OrderId::parse("o-1").expect("id"),
                state: None,
                cache: OrderCache::new(4),
                n: 0,
            };
            let create = Command::CreateOrder {
                merchant_reference: "m".into(),
                amount: paystate_events::command::money(10_000, "USD").expect("money"),
                provider: Provider::Plural,
                capture_mode: CaptureMode::Manual,
                expires_at: Some(t(EXPIRES_AT)),
                merchant_account: None,
                metadata: Default::default(),
            };
            let created = o.send(create, "2026-12-01T09:00:00Z");
            assert_eq!(
                due(&created, &o.cache, &RETRY_AFTER_DEFAULT),
                Some(Due {
                    order: o.id.clone(),
                    attempt: 0,
                    at: t(EXPIRES_AT)
                }),
                "the create schedules the first attempt at expires_at"
            );
            o.send(
                Command::StartPayment {
                    initiation: Default::default(),
                },
                "2026-12-01T09:00:01Z",
            );
            o.signal(
                SignalKind::Authorized { amount: None },
                "2026-12-01T09:00:02Z",
            );
            o
        }

        /// Decides `command` at `now` and folds its commit (a logged rejection too), as the
        /// processor does; returns the outcome.
        fn send_as(&mut self, id: CommandId, command: Command, now: &str) -> Outcome {
            let env = CommandEnvelope {
                command_id: id,
                order_id: self.id.clone(),
                issued_at: t(now),
                command,
            };
            let events = match decide(self.state.as_ref(), &env, t(now)) {
                Ok(Decision::Commit(events)) => events,
                Ok(Decision::AlreadyApplied { .. }) => panic!("test commands are new"),
                Err(r) if logs_rejection(self.state.as_ref(), r.code) => vec![Event::rejected(&r)],
                Err(r) => panic!("not logged: {r}"),
            };
            let commit = Commit::after(
                self.state.as_ref(),
                env.clone(),
                env.fingerprint(),
                t(now),
                events,
            );
            let encoded = paystate_journal::EncodedCommit::new(commit);
            let after =
                apply_commit(self.state.take(), &encoded.commit, &encoded.hash).expect("folds");
            let outcome = crate::processor::outcome_of(&env, &encoded.commit, &after);
            self.cache.put(
                &self.id,
                CachedOrder {
                    state: Some(after.clone()),
                    last_seq: after.commits,
                },
            );
            self.state = Some(after);
            outcome
        }

        fn send(&mut self, command: Command, now: &str) -> Outcome {
            self.n += 1;
            let id = CommandId::parse(format!("c-{}", self.n)).expect("id");
            self.send_as(id, command, now)
        }

        fn signal(&mut self, kind: SignalKind, now: &str) -> Outcome {
            let signal = ProviderSignal {
                provider: Provider::Plural,
                provider_ref: Some("p-1".into()),
                evidence_ref: format!("ev-{}", self.n),
                observed_at: t(now),
                kind,
            };
            self.send(Command::ProviderSignal { signal }, now)
        }

        fn failed(&mut self, operation: Operation, now: &str) -> Outcome {
            let kind = SignalKind::Failed {
                operation,
                code: "refused".into(),
                message: "refused".into(),
                refund_id: None,
            };
            self.signal(kind, now)
        }

        fn expire(&mut self, attempt: u32, now: &str) -> Outcome {
            let id = attempt_id(&self.id, attempt).expect("id");
            self.send_as(id, Command::Expire, now)
        }

        fn state(&self) -> &OrderState {
            self.state.as_ref().expect("order")
        }

        fn due(&self, outcome: &Outcome) -> Option<Due> {
            due(outcome, &self.cache, &RETRY_AFTER_DEFAULT)
        }
    }

    /// Whether the outcome accepted an expire that asks the provider for the void.
    fn asks_void(outcome: &Outcome) -> bool {
        let Outcome::Accepted { events, .. } = outcome else {
            return false;
        };
        matches!(events.as_slice(), [Event::CancelRequested { .. }])
    }

    fn secs(n: u64) -> chrono::Duration {
        chrono::Duration::from_std(Duration::from_secs(n)).expect("duration")
    }

    #[test]
    fn the_schedule_never_fires_before_the_expiry() {
        let exact: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        assert_eq!(schedule_header(exact), "@at 2026-12-01T10:00:00Z");
        let fraction: Timestamp = "2026-12-01T10:00:00.001Z".parse().expect("time");
        assert_eq!(schedule_header(fraction), "@at 2026-12-01T10:00:01Z");
    }

    #[test]
    fn the_expire_command_id_is_deterministic_and_valid_for_any_order_id() {
        let longest = OrderId::parse("a".repeat(64)).expect("order id");
        let id = command_id(&longest).expect("valid command id");
        assert_eq!(id.to_string(), format!("expire.{}", "a".repeat(64)));
    }

    #[test]
    fn each_attempt_has_its_own_deterministic_id_and_schedule_up_to_the_bound() {
        let longest = OrderId::parse("a".repeat(64)).expect("order id");
        let ids: Vec<String> = (0..=RETRIES_MAX)
            .map(|n| attempt_id(&longest, n).expect("valid id").to_string())
            .collect();
        assert_eq!(
            ids[0],
            format!("expire.{}", "a".repeat(64)),
            "the first is unchanged"
        );
        assert_eq!(ids[1], format!("expire.{}.1", "a".repeat(64)));
        let last = ids.last().expect("last");
        assert!(last.len() <= COMMAND_ID_LEN_MAX, "{last}");
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "one id per attempt");
        assert_eq!(
            ids,
            (0..=RETRIES_MAX)
                .map(|n| attempt_id(&longest, n).expect("id").to_string())
                .collect::<Vec<_>>()
        );
        let subjects: std::collections::BTreeSet<_> = (0..=RETRIES_MAX)
            .map(|n| schedule_subject(&longest, n))
            .collect();
        assert_eq!(subjects.len(), ids.len(), "one schedule per attempt");
        assert_eq!(
            schedule_subject(&longest, 0),
            format!("paystate.schedule.expire.{}", "a".repeat(64))
        );
    }

    #[test]
    fn an_expiry_refused_while_a_capture_is_in_flight_is_retried_once_the_capture_fails() {
        let mut o = Order::new();
        o.send(Command::Capture { amount: None }, "2026-12-01T09:30:00Z");
        let refused = o.expire(0, "2026-12-01T10:00:01Z");
        assert!(
            matches!(
                refused,
                Outcome::Rejected {
                    code: RejectionCode::OperationInProgress,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(o.due(&refused), None, "nothing before the capture settles");
        assert_eq!(retry_due(o.state(), &RETRY_AFTER_DEFAULT), None);

        let failed = o.failed(Operation::Capture, "2026-12-01T10:05:00Z");
        let next = o.due(&failed).expect("a retry is due");
        assert_eq!(next.attempt, 1);
        assert_eq!(next.at, t("2026-12-01T10:05:00Z") + secs(10));
        assert_eq!(
            o.due(&failed),
            Some(next.clone()),
            "the same retry, asked again"
        );

        let voided = o.expire(1, "2026-12-01T10:05:10Z");
        assert!(asks_void(&voided), "{voided:?}");
        o.signal(SignalKind::Cancelled, "2026-12-01T10:05:11Z");
        assert_eq!(o.state().status, Status::Cancelled);
        assert_eq!(retry_due(o.state(), &RETRY_AFTER_DEFAULT), None);
        assert!(!exhausted(o.state()));
    }

    #[test]
    fn a_refused_void_is_retried_with_backoff_until_the_bound_then_the_order_is_exhausted() {
        let mut o = Order::new();
        let mut now = t("2026-12-01T10:00:01Z");
        for attempt in 0..=RETRIES_MAX {
            let asked = o.expire(attempt, &now.to_rfc3339());
            assert!(asks_void(&asked), "attempt {attempt}: {asked:?}");
            assert!(!exhausted(o.state()), "a void is in flight");
            now += secs(2);
            let failed = o.failed(Operation::Cancel, &now.to_rfc3339());
            assert_eq!(attempts_made(o.state()), attempt + 1);
            match o.due(&failed) {
                Some(next) => {
                    assert!(attempt < RETRIES_MAX, "no retry past the bound");
                    assert_eq!(next.attempt, attempt + 1);
                    let pause = RETRY_AFTER_DEFAULT[attempt as usize];
                    assert_eq!(
                        next.at,
                        now + chrono::Duration::from_std(pause).expect("pause")
                    );
                    now = next.at;
                }
                None => assert_eq!(attempt, RETRIES_MAX, "attempt {attempt} not retried"),
            }
        }
        assert_eq!(o.state().status, Status::Authorized, "funds still held");
        assert!(exhausted(o.state()), "a person must decide now");
        assert_eq!(retry_due(o.state(), &RETRY_AFTER_DEFAULT), None);

        // Flagged for review (the reconciler's signal): a person owns it, nothing is due.
        o.signal(
            SignalKind::NeedsReview {
                reason: "expiry".into(),
            },
            "2026-12-01T12:00:00Z",
        );
        assert!(!exhausted(o.state()));
    }

    #[test]
    fn a_capture_that_settles_before_the_first_attempt_schedules_no_retry() {
        let mut o = Order::new();
        o.send(Command::Capture { amount: None }, "2026-12-01T09:30:00Z");
        // The capture fails after expires_at, before the fired expire was decided: the first
        // attempt is still to come (it waits in the queue), so no retry is due.
        let failed = o.failed(Operation::Capture, "2026-12-01T10:00:01Z");
        assert_eq!(o.due(&failed), None);
        assert_eq!(attempts_made(o.state()), 0);
    }

    #[test]
    fn a_capture_that_wins_over_a_refused_expiry_ends_the_retries() {
        let mut o = Order::new();
        o.send(Command::Capture { amount: None }, "2026-12-01T09:30:00Z");
        o.expire(0, "2026-12-01T10:00:01Z");
        let captured = o.signal(
            SignalKind::Captured { amount: None },
            "2026-12-01T10:00:05Z",
        );
        assert_eq!(o.due(&captured), None);
        assert_eq!(o.state().status, Status::Captured);
        assert!(!exhausted(o.state()));
    }
}
