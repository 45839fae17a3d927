//! The audit's findings and report (printed, and written as JSON with `--report FILE`).

use serde::Serialize;
use std::collections::BTreeMap;

/// Findings listed individually in a report; beyond this they are only counted.
pub const FINDINGS_LISTED_MAX: usize = 10_000;
/// Discrepancies listed individually; beyond this they are only counted.
pub const DISCREPANCIES_LISTED_MAX: usize = 10_000;
/// Flagged orders listed individually; beyond this they are only counted.
pub const ORDERS_FLAGGED_LISTED_MAX: usize = 10_000;

/// What kind of wrong.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Stream sequences missing: messages deleted from the log.
    SequenceGap,
    /// A message that is not a readable commit.
    Unreadable,
    /// A message that is not a commit, set aside by an operator (`paystate quarantine`):
    /// readers skip it (a warning: the decision is on record).
    Quarantined,
    /// A message that is not a commit and carries no commit hash header, so paystate did not
    /// write it: typically nats-server's answer to a client's publish that named the order's
    /// subject as its reply subject (docs/security.md, "Known limits"). Readers skip it (a
    /// warning: it changes no order, but says some client aimed at this order).
    Stray,
    /// The hash header does not match the body: the body was edited.
    HashMismatch,
    /// The commit names another order than its subject, or its command another order.
    SubjectMismatch,
    /// Commit numbers or `prev_hash` do not continue the order's history: a commit was
    /// removed, reordered, inserted or edited.
    ChainBroken,
    /// The commit's events are not what the core decides for its command on the state before
    /// it: written around the engine (forged) or by a different rule set.
    IllegalCommit,
    /// The commit's fingerprint is not its command's.
    FingerprintMismatch,
    /// A state after a commit breaks an invariant of the core.
    InvariantViolation,
    /// A commit moved the order from one status to another the lifecycle does not allow.
    IllegalTransition,
    /// The projection's record differs from the fold of the log.
    ProjectionDiffers,
    /// The projection lacks an order, or is behind on it, although its consumer has
    /// acknowledged every commit of the audited snapshot.
    ProjectionMissing,
    /// The projection holds an order or a commit the log does not.
    ProjectionUnknown,
    /// The projection is behind the snapshot because its consumer is still catching up
    /// (a warning: nothing is wrong yet).
    ProjectionLagging,
}

impl FindingKind {
    /// Whether this finding makes the audit fail (warnings only fail with `--strict`).
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            FindingKind::ProjectionLagging | FindingKind::Quarantined | FindingKind::Stray
        )
    }
}

/// One thing found wrong, with where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// The stream sequence it concerns (the first missing one for a gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<u64>,
    pub detail: String,
}

/// A discrepancy recorded in the log (a provider report contradicting it), for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DiscrepancyEntry {
    pub order: String,
    pub sequence: u64,
    pub commit: u64,
    pub code: String,
    pub detail: String,
}

/// Per order, for every order with findings or discrepancies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OrderSummary {
    pub order: String,
    pub commits: u64,
    pub last_sequence: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub findings: u64,
    pub discrepancies: u64,
    /// Commits after a break in the history that could not be re-decided.
    pub unverified_commits: u64,
}

/// How the projection compared with the fold.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ProjectionCheck {
    pub generation: u64,
    pub records: u64,
    pub compared: u64,
    /// Records newer than the audited snapshot (not compared).
    pub newer: u64,
    /// The projector's lag when compared.
    pub lag: u64,
}

/// The whole audit.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub stream: String,
    /// The snapshot audited: stream sequences up to this one.
    pub snapshot_last_seq: u64,
    pub commits: u64,
    pub events: u64,
    pub orders: u64,
    pub findings_total: u64,
    pub errors_total: u64,
    pub findings_by_kind: BTreeMap<FindingKind, u64>,
    pub findings: Vec<Finding>,
    pub discrepancies_total: u64,
    pub discrepancies: Vec<DiscrepancyEntry>,
    /// Orders with findings, discrepancies or unverified commits: those with the smallest ids
    /// listed, at most [`ORDERS_FLAGGED_LISTED_MAX`], all counted in `orders_flagged_total`.
    pub orders_flagged: Vec<OrderSummary>,
    pub orders_flagged_total: u64,
    /// `None` when no projection was compared.
    pub projection: Option<ProjectionCheck>,
    /// Passes over the log: 1, or more when the log holds more orders than one pass keeps in
    /// memory (each pass checks its share of the orders; `AuditOptions::orders_per_pass`).
    pub passes: u64,
    pub elapsed_ms: u64,
    pub commits_per_sec: f64,
}

impl Report {
    pub(crate) fn add(&mut self, f: Finding) {
        self.count(f.kind, 1);
        if self.findings.len() < FINDINGS_LISTED_MAX {
            self.findings.push(f);
        }
    }

    /// Counts `n` findings of `kind` without listing them (past a held bound; [`Report::add`]
    /// lists what it counts while there is room).
    pub(crate) fn count(&mut self, kind: FindingKind, n: u64) {
        if n == 0 {
            return;
        }
        self.findings_total += n;
        if kind.is_error() {
            self.errors_total += n;
        }
        *self.findings_by_kind.entry(kind).or_default() += n;
    }

    /// Adds another part's counts and listings (see `check::assemble`).
    pub(crate) fn absorb(&mut self, other: Report) {
        self.commits += other.commits;
        self.events += other.events;
        self.findings_total += other.findings_total;
        self.errors_total += other.errors_total;
        for (kind, n) in other.findings_by_kind {
            *self.findings_by_kind.entry(kind).or_default() += n;
        }
        let room = FINDINGS_LISTED_MAX.saturating_sub(self.findings.len());
        self.findings.extend(other.findings.into_iter().take(room));
        self.discrepancies_total += other.discrepancies_total;
        let room = DISCREPANCIES_LISTED_MAX.saturating_sub(self.discrepancies.len());
        self.discrepancies
            .extend(other.discrepancies.into_iter().take(room));
    }

    /// Adds one pass's report (its share of the orders, with their projection comparison)
    /// to the audit's: [`Report::absorb`] plus the orders and the projection's counts.
    pub(crate) fn absorb_pass(&mut self, mut pass: Report) {
        self.orders += pass.orders;
        self.orders_flagged_total += pass.orders_flagged_total;
        // The smallest ids of all passes, as one pass lists them.
        self.orders_flagged
            .append(&mut std::mem::take(&mut pass.orders_flagged));
        if self.orders_flagged.len() > ORDERS_FLAGGED_LISTED_MAX {
            self.orders_flagged.sort_by(|a, b| a.order.cmp(&b.order));
            self.orders_flagged.truncate(ORDERS_FLAGGED_LISTED_MAX);
        }
        if let Some(p) = pass.projection.take() {
            let sum = self.projection.get_or_insert_with(|| ProjectionCheck {
                generation: p.generation,
                ..Default::default()
            });
            sum.records += p.records;
            sum.compared += p.compared;
            sum.newer += p.newer;
            sum.lag = sum.lag.max(p.lag);
        }
        self.absorb(pass);
    }

    /// True when nothing is wrong (`strict`: no warnings and no discrepancies either).
    pub fn is_clean(&self, strict: bool) -> bool {
        if strict {
            self.findings_total == 0 && self.discrepancies_total == 0
        } else {
            self.errors_total == 0
        }
    }

    /// A human summary: totals, then each listed finding.
    pub fn render(&self, findings_shown_max: usize) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "audited {} commits ({} events) of {} orders in {} up to seq {} in {:.2} s ({:.0} commits/s)",
            self.commits,
            self.events,
            self.orders,
            self.stream,
            self.snapshot_last_seq,
            self.elapsed_ms as f64 / 1000.0,
            self.commits_per_sec
        );
        if self.passes > 1 {
            let _ = writeln!(
                out,
                "in {} passes over the log (each checked its share of the orders)",
                self.passes
            );
        }
        if let Some(p) = &self.projection {
            let _ = writeln!(out, "projection generation {}: {} records, {} compared, {} newer than the snapshot, lag {}", p.generation, p.records, p.compared, p.newer, p.lag);
        }
        let _ = writeln!(
            out,
            "discrepancies recorded: {} (provider reports that contradict the log; for review)",
            self.discrepancies_total
        );
        for d in self.discrepancies.iter().take(findings_shown_max) {
            let _ = writeln!(
                out,
                "  order {} seq {} commit {}: {} {}",
                d.order, d.sequence, d.commit, d.code, d.detail
            );
        }
        let _ = writeln!(
            out,
            "findings: {} ({} errors)",
            self.findings_total, self.errors_total
        );
        for (kind, n) in &self.findings_by_kind {
            let _ = writeln!(
                out,
                "  {:<22} {n}",
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
        }
        for f in self.findings.iter().take(findings_shown_max) {
            let _ = writeln!(
                out,
                "  {:?} order {} seq {} commit {}: {}",
                f.kind,
                f.order.as_deref().unwrap_or("-"),
                f.sequence.map_or("-".into(), |s| s.to_string()),
                f.commit.map_or("-".into(), |c| c.to_string()),
                f.detail
            );
        }
        if self.findings.len() > findings_shown_max {
            let _ = writeln!(
                out,
                "  ... {} more in the JSON report (--report FILE)",
                self.findings_total - findings_shown_max as u64
            );
        }
        out
    }
}
