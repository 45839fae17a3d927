//! Test support shared by the engine's test binaries:
//!
//! - builders for commands, provider signals and money (fixed test clock, one test order);
//! - [`commit_after`] / [`fold_one`]: turn a decision into a real hash-chained [`Commit`] and
//!   fold it with `apply_commit`, exactly as the journal would;
//! - a given/when/then harness in the style of cqrs-es's `TestFramework`:
//!   `given(cmds).when(cmd).then_rejected(code)` and friends. Every accepted step (given or
//!   when) is folded through `apply_commit` and checked against `check_invariants` and
//!   `is_legal_transition`, so each rule test also checks the invariants on its path.

// Why: every test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use paystate_engine::{apply_commit, check_invariants, decide, is_legal_transition, Decision};
use paystate_events::commit::GENESIS_HASH;
use paystate_events::{
    Amount, CaptureMode, Command, CommandEnvelope, CommandId, Commit, CommitHash, Currency,
    CustomerAction, CustomerActionKind, Event, Money, Operation, OrderId, OrderState,
    PaymentInitiation, Provider, ProviderSignal, Rejection, RejectionCode, SignalDisposition,
    SignalKind, Status, Timestamp, COMMIT_SCHEMA_VERSION,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The order every given/when/then test is about.
pub const ORDER_ID: &str = "ord-1";
/// The test order's amount in minor units (USD).
pub const AMOUNT: u64 = 1000;
/// The test order's provider.
pub const PROVIDER: Provider = Provider::Plexy;
/// The command id `when` gives its command.
pub const WHEN_ID: &str = "when-1";

/// The fixed test clock: 2026-01-01T00:00:00Z.
pub fn t0() -> Timestamp {
    // Why: a literal RFC 3339 timestamp always parses.
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("literal timestamp")
        .with_timezone(&Utc)
}

/// `t0` plus `m` minutes.
pub fn minutes(m: i64) -> Timestamp {
    t0() + Duration::minutes(m)
}

pub fn money(minor: u64, code: &str) -> Money {
    Money::new(
        Amount::new(minor).expect("test amounts are positive"),
        Currency::parse(code).expect("test currencies are ISO 4217"),
    )
}

pub fn usd(minor: u64) -> Money {
    money(minor, "USD")
}

pub fn eur(minor: u64) -> Money {
    money(minor, "EUR")
}

pub fn command_id(id: &str) -> CommandId {
    CommandId::parse(id).expect("valid command id")
}

pub fn order_id() -> OrderId {
    OrderId::parse(ORDER_ID).expect("valid order id")
}

pub fn envelope(id: &str, order: &str, command: Command, at: Timestamp) -> CommandEnvelope {
    CommandEnvelope {
        command_id: CommandId::parse(id).expect("valid command id"),
        order_id: OrderId::parse(order).expect("valid order id"),
        issued_at: at,
        command,
    }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// A create_order command with test defaults (1000 USD, Plexy, manual capture, no expiry).
#[derive(Debug, Clone)]
pub struct Create {
    pub merchant_reference: String,
    pub amount: Money,
    pub provider: Provider,
    pub capture_mode: CaptureMode,
    pub expires_at: Option<Timestamp>,
    pub merchant_account: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl Default for Create {
    fn default() -> Create {
        Create {
            merchant_reference: "inv-42".into(),
            amount: usd(AMOUNT),
            provider: PROVIDER,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: BTreeMap::new(),
        }
    }
}

impl Create {
    pub fn cmd(self) -> Command {
        Command::CreateOrder {
            merchant_reference: self.merchant_reference,
            amount: self.amount,
            provider: self.provider,
            capture_mode: self.capture_mode,
            expires_at: self.expires_at,
            merchant_account: self.merchant_account,
            metadata: self.metadata,
        }
    }
}

pub fn create() -> Command {
    Create::default().cmd()
}

/// A create command whose order expires at `at`.
pub fn create_expiring(at: Timestamp) -> Command {
    Create {
        expires_at: Some(at),
        ..Create::default()
    }
    .cmd()
}

pub fn start() -> Command {
    Command::StartPayment {
        initiation: PaymentInitiation::default(),
    }
}

/// Capture everything authorized.
pub fn capture_all() -> Command {
    Command::Capture { amount: None }
}

pub fn capture(amount: Money) -> Command {
    Command::Capture {
        amount: Some(amount),
    }
}

pub fn cancel() -> Command {
    Command::Cancel {
        reason: Some("customer asked".into()),
    }
}

/// Refund everything still refundable.
pub fn refund_all() -> Command {
    Command::Refund { amount: None }
}

pub fn refund(amount: Money) -> Command {
    Command::Refund {
        amount: Some(amount),
    }
}

pub fn expire() -> Command {
    Command::Expire
}

// ---------------------------------------------------------------------------------------
// Provider signals
// ---------------------------------------------------------------------------------------

/// Evidence refs are unique across the whole test binary, like the stream sequences of raw
/// callbacks they stand for.
static EVIDENCE_SEQ: AtomicU64 = AtomicU64::new(1);

/// A signal from the test order's provider with fresh evidence.
pub fn sig(kind: SignalKind) -> ProviderSignal {
    sig_from(PROVIDER, kind)
}

pub fn sig_from(provider: Provider, kind: SignalKind) -> ProviderSignal {
    let n = EVIDENCE_SEQ.fetch_add(1, Ordering::Relaxed);
    ProviderSignal {
        provider,
        provider_ref: Some("px-123".into()),
        evidence_ref: format!("callbacks:{n}"),
        observed_at: t0(),
        kind,
    }
}

/// The command carrying `signal`.
pub fn provider_signal(signal: ProviderSignal) -> Command {
    Command::ProviderSignal { signal }
}

/// A provider_signal command with a fresh signal of `kind`.
pub fn signal(kind: SignalKind) -> Command {
    provider_signal(sig(kind))
}

pub fn accepted() -> SignalKind {
    SignalKind::Accepted {
        action: Some(CustomerAction {
            kind: CustomerActionKind::Redirect,
            url: Some("https://pay.example/abc".into()),
            details: BTreeMap::new(),
        }),
    }
}

pub fn authorized(amount: Option<Money>) -> SignalKind {
    SignalKind::Authorized { amount }
}

pub fn captured(amount: Option<Money>) -> SignalKind {
    SignalKind::Captured { amount }
}

pub fn failed(operation: Operation) -> SignalKind {
    SignalKind::Failed {
        operation,
        code: "declined".into(),
        message: "the provider said no".into(),
        refund_id: None,
    }
}

pub fn refund_failed(refund_id: Option<&str>) -> SignalKind {
    SignalKind::Failed {
        operation: Operation::Refund,
        code: "refund_declined".into(),
        message: "the provider said no".into(),
        refund_id: refund_id.map(str::to_string),
    }
}

pub fn cancelled() -> SignalKind {
    SignalKind::Cancelled
}

pub fn refunded(refund_id: Option<&str>, amount: Option<Money>) -> SignalKind {
    SignalKind::Refunded {
        refund_id: refund_id.map(str::to_string),
        amount,
    }
}

pub fn settled(amount: Option<Money>) -> SignalKind {
    SignalKind::Settled { amount }
}

pub fn unrecognised() -> SignalKind {
    SignalKind::Unrecognised {
        raw_status: "WEIRD_STATUS".into(),
    }
}

pub fn outcome_unknown() -> SignalKind {
    SignalKind::OutcomeUnknown {
        operation: Operation::Capture,
        detail: "timed out".into(),
    }
}

pub fn probed() -> SignalKind {
    SignalKind::Probed {
        answer: "still pending".into(),
    }
}

pub fn needs_review() -> SignalKind {
    SignalKind::NeedsReview {
        reason: "errorPayout after funds arrived".into(),
    }
}

/// An operator's resolution of the order's review.
pub fn resolve_review() -> Command {
    Command::ResolveReview {
        operator: "op-ana".into(),
        reason: "checked at the provider: funds arrived".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Orders in each status (given lists)
// ---------------------------------------------------------------------------------------

pub fn in_created() -> Vec<Command> {
    vec![create()]
}

pub fn in_pending() -> Vec<Command> {
    vec![create(), start()]
}

/// Authorized for the full order amount.
pub fn in_authorized() -> Vec<Command> {
    let mut v = in_pending();
    v.push(signal(authorized(None)));
    v
}

/// Captured in full (1000), nothing refunded.
pub fn in_captured() -> Vec<Command> {
    let mut v = in_authorized();
    v.extend([capture_all(), signal(captured(None))]);
    v
}

pub fn in_done() -> Vec<Command> {
    let mut v = in_captured();
    v.push(signal(settled(None)));
    v
}

/// Everything captured was refunded (by a provider-initiated refund).
pub fn in_returned() -> Vec<Command> {
    let mut v = in_captured();
    v.push(signal(refunded(None, None)));
    v
}

pub fn in_cancelled() -> Vec<Command> {
    vec![create(), cancel()]
}

pub fn in_failed() -> Vec<Command> {
    let mut v = in_pending();
    v.push(signal(failed(Operation::Payment)));
    v
}

/// Given lists for every status, for tests that sweep all of them.
pub fn in_status(status: Status) -> Vec<Command> {
    match status {
        Status::Created => in_created(),
        Status::Pending => in_pending(),
        Status::Authorized => in_authorized(),
        Status::Captured => in_captured(),
        Status::Done => in_done(),
        Status::Cancelled => in_cancelled(),
        Status::Returned => in_returned(),
        Status::Failed => in_failed(),
    }
}

// ---------------------------------------------------------------------------------------
// Commits
// ---------------------------------------------------------------------------------------

/// The commit that appends `events` (decided for `env` at `decided_at`) after `state`.
pub fn commit_after(
    state: Option<&OrderState>,
    env: &CommandEnvelope,
    events: Vec<Event>,
    decided_at: Timestamp,
) -> Commit {
    let (commit, prev_hash) = match state {
        Some(s) => (s.commits + 1, s.head_hash.clone()),
        None => (1, GENESIS_HASH.to_string()),
    };
    Commit {
        v: COMMIT_SCHEMA_VERSION,
        order_id: env.order_id.clone(),
        commit,
        prev_hash,
        decided_at,
        fingerprint: env.fingerprint(),
        command: env.clone(),
        events,
    }
}

/// The hash a journal would store with `commit`.
pub fn hash_of(commit: &Commit) -> String {
    CommitHash::of(&commit.encode()).0
}

/// Folds one commit, panicking on a fold error (the harness only builds valid commits).
pub fn fold_one(state: Option<OrderState>, commit: &Commit) -> OrderState {
    match apply_commit(state, commit, &hash_of(commit)) {
        Ok(s) => s,
        Err(e) => panic!("commit {} does not fold: {e}", commit.commit),
    }
}

/// The state without per-commit bookkeeping: what a recorded-only signal must leave as is.
pub fn business(s: &OrderState) -> OrderState {
    let mut s = s.clone();
    s.commits = 0;
    s.head_hash.clear();
    s.updated_at = s.created_at;
    s.applied.clear();
    s.rejections_logged = 0;
    s
}

/// Panics unless the step `before` → `after` keeps every invariant.
pub fn assert_step_ok(before: Option<&OrderState>, after: &OrderState, what: &str) {
    let violations = check_invariants(after);
    assert!(
        violations.is_empty(),
        "{what}: invariants broken: {violations:?}\nstate: {after:#?}"
    );
    if let Some(b) = before {
        assert!(
            is_legal_transition(b.status, after.status),
            "{what}: illegal transition {} -> {}",
            b.status,
            after.status
        );
        if b.status.is_terminal() {
            assert_eq!(b.status, after.status, "{what}: a terminal order moved");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Given / when / then
// ---------------------------------------------------------------------------------------

/// An order built by folding accepted commands.
pub struct Given {
    state: Option<OrderState>,
    log: Vec<Commit>,
    now: Timestamp,
    seq: usize,
}

/// An order built from `cmds` (ids `given-1`, `given-2`, ...), all decided at [`t0`].
pub fn given(cmds: Vec<Command>) -> Given {
    Given {
        state: None,
        log: Vec::new(),
        now: t0(),
        seq: 0,
    }
    .and(cmds)
}

/// No order yet.
pub fn given_no_order() -> Given {
    given(Vec::new())
}

impl Given {
    /// Applies more commands; each must be accepted.
    pub fn and(mut self, cmds: Vec<Command>) -> Given {
        for cmd in cmds {
            self.seq += 1;
            let id = format!("given-{}", self.seq);
            self = self.and_id(&id, cmd);
        }
        self
    }

    /// Applies one command with an explicit command id (e.g. a refund whose id matters).
    pub fn and_id(mut self, id: &str, cmd: Command) -> Given {
        let env = envelope(id, ORDER_ID, cmd, self.now);
        let events = match decide(self.state.as_ref(), &env, self.now) {
            Ok(Decision::Commit(events)) => events,
            Ok(other) => panic!("given command {id} was not applied: {other:?}"),
            Err(r) => panic!(
                "given command {id} ({}) was rejected: {r}",
                env.command.name()
            ),
        };
        let commit = commit_after(self.state.as_ref(), &env, events, self.now);
        let after = fold_one(self.state.clone(), &commit);
        assert_step_ok(self.state.as_ref(), &after, &format!("given {id}"));
        self.state = Some(after);
        self.log.push(commit);
        self
    }

    /// Decides the following commands at `now`.
    pub fn at(mut self, now: Timestamp) -> Given {
        self.now = now;
        self
    }

    /// Edits the folded state directly (for bounds that are too costly to reach by commands).
    pub fn tamper(mut self, edit: impl FnOnce(&mut OrderState)) -> Given {
        edit(self.state.as_mut().expect("tamper needs an order"));
        self
    }

    pub fn state(&self) -> &OrderState {
        self.state.as_ref().expect("the given order exists")
    }

    pub fn log(&self) -> &[Commit] {
        &self.log
    }

    /// Decides `cmd` (command id [`WHEN_ID`]).
    pub fn when(self, cmd: Command) -> Then {
        let env = envelope(WHEN_ID, ORDER_ID, cmd, self.now);
        self.when_envelope(env)
    }

    /// Decides `cmd` under an explicit command id (idempotency tests).
    pub fn when_id(self, id: &str, cmd: Command) -> Then {
        let env = envelope(id, ORDER_ID, cmd, self.now);
        self.when_envelope(env)
    }

    pub fn when_envelope(self, env: CommandEnvelope) -> Then {
        let before_bytes = self
            .state
            .as_ref()
            .map(|s| serde_json::to_vec(s).expect("state"));
        let result = decide(self.state.as_ref(), &env, self.now);
        let after_bytes = self
            .state
            .as_ref()
            .map(|s| serde_json::to_vec(s).expect("state"));
        assert_eq!(
            before_bytes, after_bytes,
            "decide changed the state it was given"
        );
        let mut log = self.log;
        let after = match &result {
            Ok(Decision::Commit(events)) => {
                assert!(!events.is_empty(), "a commit decision must carry events");
                let commit = commit_after(self.state.as_ref(), &env, events.clone(), self.now);
                let after = fold_one(self.state.clone(), &commit);
                assert_step_ok(self.state.as_ref(), &after, "when");
                log.push(commit);
                Some(after)
            }
            Ok(Decision::AlreadyApplied { .. }) | Err(_) => None,
        };
        Then {
            env,
            before: self.state,
            result,
            after,
            log,
            now: self.now,
            seq: self.seq,
        }
    }
}

/// The outcome of `when`, with assertions that return `self` so they chain.
pub struct Then {
    /// The command `when` decided.
    env: CommandEnvelope,
    before: Option<OrderState>,
    result: Result<Decision, Rejection>,
    /// The folded state after an accepted decision (`None` when rejected or already applied).
    after: Option<OrderState>,
    /// What `and_then` continues from.
    log: Vec<Commit>,
    now: Timestamp,
    seq: usize,
}

impl Then {
    pub fn events(&self) -> &[Event] {
        match &self.result {
            Ok(Decision::Commit(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// The order's state after `when`: the new state if accepted, else the unchanged one.
    pub fn state(&self) -> &OrderState {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .expect("an order exists")
    }

    pub fn before(&self) -> &OrderState {
        self.before.as_ref().expect("an order existed before")
    }

    pub fn then_events(self, expected: Vec<Event>) -> Then {
        assert_eq!(self.events(), expected.as_slice());
        self
    }

    /// The events' `type` tags, for events whose evidence the test does not want to spell.
    pub fn then_event_names(self, expected: &[&str]) -> Then {
        let names: Vec<&str> = self.events().iter().map(Event::name).collect();
        assert_eq!(names, expected);
        self
    }

    pub fn then_rejected(self, code: RejectionCode) -> Then {
        match &self.result {
            Err(r) => assert_eq!(r.code, code, "rejected with {r}"),
            other => panic!("expected rejection {code}, got {other:?}"),
        }
        assert!(self.after.is_none());
        self
    }

    pub fn then_already_applied(self, commit: u64) -> Then {
        assert_eq!(self.result, Ok(Decision::AlreadyApplied { commit }));
        self
    }

    /// The rejection logged as the engine logs it (decision 0013): a commit whose only event
    /// is `command_rejected`, folded onto the order and checked like any step; the business
    /// state must not move. `and_then` continues from the state after it.
    pub fn then_logged(mut self) -> Then {
        let Err(rejection) = &self.result else {
            panic!("only a rejection is logged, got {:?}", self.result)
        };
        let before = self
            .before
            .clone()
            .expect("a rejection is logged on an order");
        assert!(
            paystate_engine::logs_rejection(Some(&before), rejection.code),
            "{rejection} is not one the engine logs"
        );
        let events = vec![Event::rejected(rejection)];
        let commit = commit_after(Some(&before), &self.env, events, self.now);
        let after = fold_one(Some(before.clone()), &commit);
        assert_step_ok(Some(&before), &after, "logged rejection");
        assert_eq!(
            business(&after),
            business(&before),
            "a logged rejection moved the order"
        );
        self.log.push(commit);
        self.after = Some(after);
        self
    }

    pub fn then_status(self, status: Status) -> Then {
        assert_eq!(self.state().status, status);
        self
    }

    /// One `discrepancy_detected` event with `code`; the order is flagged for review and
    /// otherwise unchanged.
    pub fn then_discrepancy(self, code: &str) -> Then {
        match self.events() {
            [Event::DiscrepancyDetected { code: got, .. }] => assert_eq!(got, code),
            other => panic!("expected discrepancy {code}, got {other:?}"),
        }
        let (before, after) = (business(self.before()), business(self.state()));
        assert!(
            after.needs_review,
            "a discrepancy flags the order for review"
        );
        let last = after.discrepancies.last().expect("the discrepancy is kept");
        assert_eq!(
            (last.code.as_str(), last.commit),
            (code, self.state().commits)
        );
        let mut expected = before;
        expected.needs_review = true;
        expected.discrepancies.push(last.clone());
        assert_eq!(after, expected, "a discrepancy must not move the order");
        self
    }

    /// One `signal_recorded` event with `disposition`; the order is unchanged.
    pub fn then_recorded(self, disposition: SignalDisposition) -> Then {
        match self.events() {
            [Event::SignalRecorded {
                disposition: got, ..
            }] => assert_eq!(*got, disposition),
            other => panic!("expected signal_recorded {disposition:?}, got {other:?}"),
        }
        assert_eq!(
            business(self.state()),
            business(self.before()),
            "recorded only"
        );
        self
    }

    pub fn then_state(self, check: impl FnOnce(&OrderState)) -> Then {
        check(self.state());
        self
    }

    /// Continues from the order as `when` left it (unchanged if rejected), for rules about
    /// what a second command sees.
    pub fn and_then(self) -> Given {
        let state = self.after.or(self.before);
        Given {
            state,
            log: self.log,
            now: self.now,
            seq: self.seq,
        }
    }
}
