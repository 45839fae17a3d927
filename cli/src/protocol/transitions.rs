//! The transition table, computed: every sample command and provider signal is decided by the
//! pure core (`paystate_engine::decide`) against every sample state, and accepted decisions
//! are folded (`apply_commit`) to show the state after. Sample states are themselves built by
//! running the core from an empty log, so nothing here restates a rule.
//!
//! Samples are JSON, keyed by command `type`: every name in [`Command::NAMES`] must have one
//! (the generator stops with a message naming a type without samples), so a new command type
//! appears in the table as soon as it has a sample. Signal kinds are matched exhaustively in
//! [`kind_index`]: a new kind does not compile until it is listed.

use chrono::{Duration, TimeZone, Utc};
use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::{
    Command, CommandEnvelope, Commit, CommitHash, Event, OrderState, Provider, Rejection,
    SignalKind, Timestamp,
};
use serde_json::{json, Value};

/// The sample order: 100.00 USD, manual capture, expiring a day after creation.
pub const ORDER: &str = "o-1";
const AMOUNT: u64 = 10_000;

/// When the sample order is created; every later step is a minute apart.
pub fn t0() -> Timestamp {
    // Why: a fixed, valid instant.
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

/// When sample inputs are decided: after the order's `expires_at`.
fn decided_at() -> Timestamp {
    t0() + Duration::days(2)
}

/// One input of the table: a command (a provider signal is the `provider_signal` command).
#[derive(Debug, Clone)]
pub struct Input {
    /// What the row shows, e.g. `capture (no amount)` or `signal captured`.
    pub label: String,
    /// The command `type`.
    pub command_type: &'static str,
    /// The command's own fields (JSON), without the envelope.
    pub body: Value,
    /// Decided an hour after creation (before the order's expiry) instead of two days after.
    pub before_expiry: bool,
}

/// A sample state: how it was reached and the state itself (`None`: no order yet).
#[derive(Debug, Clone)]
pub struct Sample {
    pub label: String,
    pub state: Option<OrderState>,
}

/// What the core answered for one (state, input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted { events: Vec<String>, after: String },
    Duplicate,
    Rejected(String),
}

impl Answer {
    /// Short form: `→ pending`, `recorded (late)`, `⚠ captured_after_cancel` or
    /// `✗ invalid_transition`.
    pub fn short(&self) -> String {
        match self {
            Answer::Accepted { events, after } => match events.as_slice() {
                [only] if only.starts_with("signal_recorded") => format!(
                    "recorded ({})",
                    only.trim_start_matches("signal_recorded (disposition: ")
                        .trim_end_matches(')')
                ),
                [only] if only.starts_with("discrepancy_detected") => format!(
                    "⚠ {}",
                    only.trim_start_matches("discrepancy_detected (code: ")
                        .trim_end_matches(')')
                ),
                _ => format!("→ {after}"),
            },
            Answer::Duplicate => "duplicate".into(),
            Answer::Rejected(code) => format!("✗ `{code}`"),
        }
    }
}

fn signal(provider: Provider, kind: Value, evidence: &str) -> Value {
    let mut s = json!({
        "provider": provider.as_str(),
        "evidence_ref": evidence,
        "observed_at": t0().to_rfc3339(),
    });
    if let (Some(obj), Some(k)) = (s.as_object_mut(), kind.as_object()) {
        obj.extend(k.clone());
    }
    json!({ "signal": s })
}

fn money(units: u64) -> Value {
    json!({"minor_units": units, "currency": "USD"})
}

/// Sample bodies of every command type except `provider_signal` (label, type, body).
fn command_samples() -> Vec<(&'static str, &'static str, Value)> {
    let attachment = json!({"object": "sha256-ab12", "file_name": "shot.png",
        "content_type": "image/png", "sha256": "ab12", "size": 2048});
    vec![
        ("create_order", "create_order", create_body()),
        ("start_payment", "start_payment", json!({})),
        ("capture (no amount: all authorized)", "capture", json!({})),
        ("capture 40.00", "capture", json!({"amount": money(4_000)})),
        (
            "capture 200.00 (above the order)",
            "capture",
            json!({"amount": money(20_000)}),
        ),
        ("cancel", "cancel", json!({"reason": "customer asked"})),
        ("refund (no amount: all refundable)", "refund", json!({})),
        ("refund 40.00", "refund", json!({"amount": money(4_000)})),
        (
            "confirm_transfer",
            "confirm_transfer",
            json!({"reference": "123456789012", "attachment": attachment}),
        ),
        ("expire (after expires_at)", "expire", json!({})),
        ("expire (before expires_at)", "expire", json!({})),
        (
            "resolve_review",
            "resolve_review",
            json!({"operator": "op-7", "reason": "checked with the provider"}),
        ),
    ]
}

fn create_body() -> Value {
    json!({"merchant_reference": "shop-42", "amount": money(AMOUNT), "provider": "plural",
        "capture_mode": "manual", "expires_at": (t0() + Duration::days(1)).to_rfc3339()})
}

/// Sample signal kinds (label, kind fields); every [`SignalKind`] is among them.
fn signal_samples() -> Vec<(&'static str, Value)> {
    let failed = |op: &str| json!({"status": "failed", "operation": op, "code": "declined", "message": "declined"});
    vec![
        (
            "accepted (customer action)",
            json!({"status": "accepted", "action": {"kind": "redirect", "url": "https://pay.example/p"}}),
        ),
        ("authorized", json!({"status": "authorized"})),
        ("captured", json!({"status": "captured"})),
        ("failed (payment)", failed("payment")),
        ("failed (capture)", failed("capture")),
        ("failed (cancel)", failed("cancel")),
        ("failed (refund)", failed("refund")),
        ("cancelled", json!({"status": "cancelled"})),
        ("refunded (no id or amount)", json!({"status": "refunded"})),
        ("settled", json!({"status": "settled"})),
        (
            "unrecognised",
            json!({"status": "unrecognised", "raw_status": "WEIRD"}),
        ),
        (
            "outcome_unknown",
            json!({"status": "outcome_unknown", "operation": "capture", "detail": "timed out"}),
        ),
        (
            "needs_review",
            json!({"status": "needs_review", "reason": "funds arrived after payout error"}),
        ),
        (
            "probed",
            json!({"status": "probed", "answer": "still pending"}),
        ),
    ]
}

/// Position of a signal kind in [`signal_samples`]'s coverage check; exhaustive on purpose.
fn kind_index(k: &SignalKind) -> usize {
    match k {
        SignalKind::Accepted { .. } => 0,
        SignalKind::Authorized { .. } => 1,
        SignalKind::Captured { .. } => 2,
        SignalKind::Failed { .. } => 3,
        SignalKind::Cancelled => 4,
        SignalKind::Refunded { .. } => 5,
        SignalKind::Settled { .. } => 6,
        SignalKind::Unrecognised { .. } => 7,
        SignalKind::OutcomeUnknown { .. } => 8,
        SignalKind::NeedsReview { .. } => 9,
        SignalKind::Probed { .. } => 10,
    }
}
const SIGNAL_KINDS: usize = 11;

/// Every input of the table for an order of `provider`: each command type's samples, then
/// each signal kind, then a signal from another provider.
pub fn inputs(provider: Provider) -> Vec<Input> {
    let mut out = Vec::new();
    let samples = command_samples();
    for name in Command::NAMES {
        if name == "provider_signal" {
            continue;
        }
        let mine: Vec<_> = samples.iter().filter(|(_, t, _)| *t == name).collect();
        assert!(
            !mine.is_empty(),
            "command type {name} has no sample in cli/src/protocol/transitions.rs: add one"
        );
        for (label, command_type, body) in mine {
            let mut body = body.clone();
            if *command_type == "create_order" {
                body["provider"] = json!(provider.as_str());
            }
            out.push(Input {
                label: label.to_string(),
                command_type: name,
                body,
                // A new order's `expires_at` must be in the future when it is created.
                before_expiry: label.contains("before expires_at") || name == "create_order",
            });
        }
    }
    let mut covered = [false; SIGNAL_KINDS];
    for (label, kind) in signal_samples() {
        let body = signal(provider, kind, &format!("callbacks:{label}"));
        if let Ok(s) =
            serde_json::from_value::<paystate_events::ProviderSignal>(body["signal"].clone())
        {
            covered[kind_index(&s.kind)] = true;
        }
        out.push(Input {
            label: format!("signal {label}"),
            command_type: "provider_signal",
            body,
            before_expiry: false,
        });
    }
    assert!(
        covered.iter().all(|c| *c),
        "a provider signal kind has no sample in cli/src/protocol/transitions.rs"
    );
    let other = Provider::ALL
        .into_iter()
        .find(|p| *p != provider)
        .unwrap_or(provider);
    out.push(Input {
        label: "signal captured, from another provider".into(),
        command_type: "provider_signal",
        body: signal(other, json!({"status": "captured"}), "callbacks:other"),
        before_expiry: false,
    });
    out
}

/// The envelope of `body` as command `id` on the sample order.
pub fn envelope(
    id: &str,
    command_type: &str,
    body: &Value,
    issued_at: Timestamp,
) -> CommandEnvelope {
    let mut v = body.clone();
    v["type"] = json!(command_type);
    v["command_id"] = json!(id);
    v["order_id"] = json!(ORDER);
    v["issued_at"] = json!(issued_at.to_rfc3339());
    match serde_json::from_value(v) {
        Ok(env) => env,
        Err(e) => panic!("sample {command_type} {body} is not a valid command: {e}"),
    }
}

/// Decides `env` at `now` and, if accepted, folds it as the next commit: the core's answer,
/// the events and the state after.
pub fn step(
    state: Option<&OrderState>,
    env: &CommandEnvelope,
    now: Timestamp,
) -> Result<Option<(Commit, OrderState)>, Rejection> {
    match decide(state, env, now)? {
        Decision::AlreadyApplied { .. } => Ok(None),
        Decision::Commit(events) => {
            let commit = next_commit(state, env, now, events);
            let hash = CommitHash::of(&commit.encode()).0;
            match apply_commit(state.cloned(), &commit, &hash) {
                Ok(after) => Ok(Some((commit, after))),
                Err(e) => panic!("the core's own commit does not fold: {e}"),
            }
        }
    }
}

/// The commit the engine would append for `events`.
pub fn next_commit(
    state: Option<&OrderState>,
    env: &CommandEnvelope,
    now: Timestamp,
    events: Vec<Event>,
) -> Commit {
    Commit::after(state, env.clone(), env.fingerprint(), now, events)
}

/// Runs `steps` (type, body) from an empty log, a minute apart; the state after the last.
pub fn reach(steps: &[(&str, Value)]) -> OrderState {
    let mut state: Option<OrderState> = None;
    for (i, (command_type, body)) in steps.iter().enumerate() {
        let at = t0() + Duration::minutes(i as i64);
        let env = envelope(&format!("s-{i}"), command_type, body, at);
        match step(state.as_ref(), &env, at) {
            Ok(Some((_, after))) => state = Some(after),
            Ok(None) => panic!("step {i} ({command_type}) was a duplicate"),
            Err(r) => panic!("step {i} ({command_type}) was refused: {r}"),
        }
    }
    match state {
        Some(s) => s,
        None => panic!("a sample state needs at least create_order"),
    }
}

/// The sample states, each reached through the core: every status, plus the operations in
/// flight that change answers (capture pending, cancel requested, refund pending).
pub fn samples(provider: Provider) -> Vec<Sample> {
    let p = provider;
    let mut create = create_body();
    create["provider"] = json!(p.as_str());
    let sig = |kind: Value, ev: &str| ("provider_signal", signal(p, kind, ev));
    let created = vec![("create_order", create)];
    let pending = [created.clone(), vec![("start_payment", json!({}))]].concat();
    let authorized = [
        pending.clone(),
        vec![sig(json!({"status": "authorized"}), "e-auth")],
    ]
    .concat();
    let capture_pending = [authorized.clone(), vec![("capture", json!({}))]].concat();
    let cancel_requested = [authorized.clone(), vec![("cancel", json!({}))]].concat();
    let captured = [
        capture_pending.clone(),
        vec![sig(json!({"status": "captured"}), "e-cap")],
    ]
    .concat();
    let refund_pending = [
        captured.clone(),
        vec![("refund", json!({"amount": money(4_000)}))],
    ]
    .concat();
    let done = [
        captured.clone(),
        vec![sig(json!({"status": "settled"}), "e-set")],
    ]
    .concat();
    let returned = [
        captured.clone(),
        vec![
            ("refund", json!({})),
            sig(json!({"status": "refunded"}), "e-ref"),
        ],
    ]
    .concat();
    let cancelled = [created.clone(), vec![("cancel", json!({}))]].concat();
    let failed = [
        pending.clone(),
        vec![sig(json!({"status": "failed", "operation": "payment", "code": "declined", "message": "declined"}), "e-fail")],
    ]
    .concat();
    let mut out = vec![Sample {
        label: "(no order)".into(),
        state: None,
    }];
    for (label, steps) in [
        ("created", created),
        ("pending", pending),
        ("authorized", authorized),
        ("authorized, capture pending", capture_pending),
        ("authorized, cancel requested", cancel_requested),
        ("captured", captured),
        ("captured, refund pending", refund_pending),
        ("done", done),
        ("cancelled", cancelled),
        ("returned", returned),
        ("failed", failed),
    ] {
        out.push(Sample {
            label: label.into(),
            state: Some(reach(&steps)),
        });
    }
    out
}

/// The same sample, flagged for review by a provider's `needs_review` report.
pub fn flagged(sample: &Sample) -> Option<Sample> {
    let s = sample.state.as_ref()?;
    let body = signal(
        s.provider,
        json!({"status": "needs_review", "reason": "a person must look"}),
        "e-review",
    );
    let at = s.updated_at + Duration::minutes(1);
    let env = envelope("s-review", "provider_signal", &body, at);
    match step(Some(s), &env, at) {
        Ok(Some((_, after))) if after.needs_review => Some(Sample {
            label: format!("{}, needs review", sample.label),
            state: Some(after),
        }),
        _ => None,
    }
}

/// What the core answers for `input` in `sample`.
pub fn answer(sample: &Sample, input: &Input) -> Answer {
    let now = if input.before_expiry {
        t0() + Duration::hours(1)
    } else {
        decided_at()
    };
    let env = envelope("c-new", input.command_type, &input.body, now);
    match step(sample.state.as_ref(), &env, now) {
        Ok(Some((commit, after))) => Answer::Accepted {
            events: commit.events.iter().map(describe_event).collect(),
            after: describe_state(&after),
        },
        Ok(None) => Answer::Duplicate,
        Err(r) => Answer::Rejected(r.code.as_str().to_string()),
    }
}

/// `order_cancelled (by: expiry)`, `signal_recorded (disposition: late)`: the event's name and
/// the one field that says what kind of it this is.
pub fn describe_event(e: &Event) -> String {
    let v = serde_json::to_value(e).unwrap_or_default();
    for key in ["disposition", "by", "code"] {
        if let Some(s) = v.get(key).and_then(Value::as_str) {
            return format!("{} ({key}: {s})", e.name());
        }
    }
    e.name().to_string()
}

/// `authorized, capture pending`: the status and the flags that change what is allowed.
pub fn describe_state(s: &OrderState) -> String {
    let mut parts = vec![s.status.as_str().to_string()];
    if s.capture_pending.is_some() {
        parts.push("capture pending".into());
    }
    if s.cancel_pending {
        parts.push("cancel requested".into());
    }
    if !s.refunds_pending.is_empty() {
        parts.push("refund pending".into());
    }
    if s.needs_review {
        parts.push("needs review".into());
    }
    parts.join(", ")
}
