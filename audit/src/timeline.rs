//! Replay: an order's timeline re-derived from its commits, and its state at any point.
//!
//! Each entry is one commit: its stream sequence, store time, decision time, what caused it
//! (a command, or a provider's report with its evidence), its events and the state after it.
//! "At a point" is a stream sequence or an instant compared with the commit's `decided_at`
//! (the decision time is part of the hashed commit, so it survives export and import; the
//! broker's store time does not).

use paystate_events::{Command, Event, OrderState, Timestamp};
use paystate_journal::StoredCommit;
use serde::Serialize;

/// What caused a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// A client command.
    Command {
        name: &'static str,
        command_id: String,
    },
    /// A provider's report, with where its evidence is kept.
    Provider {
        provider: String,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        provider_ref: Option<String>,
        evidence_ref: String,
        observed_at: Timestamp,
        command_id: String,
    },
}

impl Cause {
    pub fn of(c: &StoredCommit) -> Cause {
        let command_id = c.commit.command.command_id.to_string();
        match &c.commit.command.command {
            Command::ProviderSignal { signal } => Cause::Provider {
                provider: signal.provider.to_string(),
                status: signal.kind.name(),
                provider_ref: signal.provider_ref.clone(),
                evidence_ref: signal.evidence_ref.clone(),
                observed_at: signal.observed_at,
                command_id,
            },
            other => Cause::Command {
                name: other.name(),
                command_id,
            },
        }
    }
}

/// One commit of the timeline.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Entry {
    pub sequence: u64,
    /// The broker's store time.
    pub time: Timestamp,
    /// When the engine decided (the broker's receive time of the command).
    pub decided_at: Timestamp,
    pub commit: u64,
    pub cause: Cause,
    pub events: Vec<Event>,
    /// The state after this commit; `None` if the history does not fold here.
    pub state_after: Option<OrderState>,
    /// Why the history does not fold here (a broken chain; `paystate audit` says more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A point in an order's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Point {
    /// After every commit stored at this stream sequence or earlier.
    Sequence(u64),
    /// After every commit decided at this instant or earlier.
    Time(Timestamp),
}

impl Point {
    /// A sequence number, or an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<Point, String> {
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(Point::Sequence(seq));
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Point::Time(t.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("{text:?} is neither a stream sequence nor an RFC 3339 time: {e}"))
    }

    fn includes(&self, e: &Entry) -> bool {
        match self {
            Point::Sequence(seq) => e.sequence <= *seq,
            Point::Time(t) => e.decided_at <= *t,
        }
    }
}

/// Folds the commits (oldest first) with the engine's own fold, keeping the state after each.
pub fn timeline(commits: &[StoredCommit]) -> Vec<Entry> {
    let mut state: Option<OrderState> = None;
    let mut broken: Option<String> = None;
    let mut out = Vec::with_capacity(commits.len());
    for c in commits {
        if broken.is_none() {
            match paystate_engine::apply_commit(state.take(), &c.commit, &c.hash) {
                Ok(s) => state = Some(s),
                Err(e) => broken = Some(format!("seq {}: {e}", c.sequence)),
            }
        }
        out.push(Entry {
            sequence: c.sequence,
            time: c.time,
            decided_at: c.commit.decided_at,
            commit: c.commit.commit,
            cause: Cause::of(c),
            events: c.commit.events.clone(),
            state_after: state.clone(),
            error: broken.clone(),
        });
    }
    out
}

/// The entries up to `point` (all of them without one).
pub fn until(entries: &[Entry], point: Option<Point>) -> &[Entry] {
    match point {
        None => entries,
        Some(p) => {
            let n = entries.iter().take_while(|e| p.includes(e)).count();
            &entries[..n]
        }
    }
}

/// The order's state at `point`: after the last commit at or before it (`None`: the order did
/// not exist yet, or its history does not fold there).
pub fn state_at(entries: &[Entry], point: Option<Point>) -> Option<&OrderState> {
    until(entries, point)
        .last()
        .and_then(|e| e.state_after.as_ref())
}
