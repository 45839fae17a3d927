//! The audit fold: every message of the log, in stream order, checked and folded through the
//! pure core. Synchronous and IO-free: the caller feeds it messages.
//!
//! Per message: stream-sequence gap (deleted messages), readable commit, hash header = body
//! hash, subject = order, fingerprint = command's, commit number and `prev_hash` continue the
//! order's chain, and the re-decision: `engine::decide(state before, command, decided_at)`
//! must give exactly the commit's events (anything else was not written by the engine's
//! rules). Then the fold (`engine::apply_commit`), the lifecycle transition and the
//! invariants. After a break in an order's history the order is re-synchronised on the
//! commit that follows it and its later commits are folded but not re-decided (counted as
//! unverified), so one deletion reports once instead of cascading.

use crate::report::{
    DiscrepancyEntry, Finding, FindingKind, OrderSummary, Report, DISCREPANCIES_LISTED_MAX,
    FINDINGS_LISTED_MAX, ORDERS_FLAGGED_LISTED_MAX,
};
use paystate_engine::{
    apply_commit, check_invariants, decide, is_legal_transition, logs_rejection, Decision,
};
use paystate_events::commit::GENESIS_HASH;
use paystate_events::{Commit, CommitHash, Event, OrderId, OrderState, RejectionCode};

use paystate_journal::RawEntry;
use std::collections::HashMap;

/// What the audit keeps per order: small, and never the order's commits.
#[derive(Debug, Default)]
pub struct OrderTrack {
    pub state: Option<OrderState>,
    pub last_seq: u64,
    pub commits_seen: u64,
    /// The sequence of the first break in the order's history, if any.
    pub broken_at: Option<u64>,
    pub findings: u64,
    pub discrepancies: u64,
    pub unverified: u64,
}

/// Every order's track, by order.
pub type Tracks = HashMap<OrderId, Box<OrderTrack>>;

/// Feeds on log messages in stream order; see the module docs.
pub struct Auditor {
    /// Why boxed: a track holds the order's whole state (over 500 bytes); boxed, the map's
    /// growth moves a pointer per order instead of the track (a visible share of an audit of
    /// many orders: copies and fresh pages while the map doubled).
    pub orders: Tracks,
    pub report: Report,
    /// Chain breaks seen, to name the order of a stream gap.
    pub breaks: Breaks,
    /// Messages an operator quarantined: (order, stream sequence).
    pub quarantined: std::sync::Arc<std::collections::HashSet<(String, u64)>>,
}

impl Auditor {
    pub fn new(stream: &str, snapshot_last_seq: u64) -> Auditor {
        let report = Report {
            stream: stream.to_string(),
            snapshot_last_seq,
            ..Default::default()
        };
        Auditor {
            orders: HashMap::new(),
            report,
            breaks: Breaks::default(),
            quarantined: Default::default(),
        }
    }

    /// Checks and folds one message. Messages of one order must come in stream order (those of
    /// different orders may be split over several auditors; see [`assemble`]).
    pub fn observe(&mut self, entry: &RawEntry) {
        self.report.commits += 1;
        let Some(order) = entry.subject_order().and_then(|t| OrderId::parse(t).ok()) else {
            self.finding(
                FindingKind::Unreadable,
                None,
                entry.sequence,
                None,
                format!("subject {:?} is not an order subject", entry.subject),
            );
            return;
        };
        let commit = match paystate_journal::scan::decode_commit(&entry.payload) {
            Ok(c) => c,
            Err(e) => {
                let kind = if self
                    .quarantined
                    .contains(&(order.to_string(), entry.sequence))
                {
                    FindingKind::Quarantined
                } else if entry.is_stray() {
                    FindingKind::Stray
                } else {
                    FindingKind::Unreadable
                };
                self.finding(
                    kind,
                    Some(&order),
                    entry.sequence,
                    None,
                    format!("not a commit: {e}"),
                );
                return;
            }
        };
        let hash = CommitHash::of(&entry.payload).0;
        if entry.header_hash() != Some(hash.as_str()) {
            let detail = format!(
                "hash header {:?} but the body hashes to {hash}: the body was edited",
                entry.header_hash()
            );
            self.finding(
                FindingKind::HashMismatch,
                Some(&order),
                entry.sequence,
                Some(commit.commit),
                detail,
            );
        }
        self.check_identity(&order, entry.sequence, &commit);
        // Why the map is taken out while folding instead of removing and re-inserting the
        // order's track: a track holds the order's whole state (hundreds of bytes), moved
        // twice per commit, and hashed twice; `fold` reports through `self` but never touches
        // `self.orders` (its findings count on the track).
        let mut orders = std::mem::take(&mut self.orders);
        let track = orders.entry(order.clone()).or_default();
        self.fold(&order, track, entry.sequence, &commit, &hash);
        track.last_seq = entry.sequence;
        track.commits_seen += 1;
        self.report.events += commit.events.len() as u64;
        self.orders = orders;
    }

    fn check_identity(&mut self, order: &OrderId, seq: u64, commit: &Commit) {
        if &commit.order_id != order || &commit.command.order_id != order {
            let detail = format!(
                "stored under order {order}, commit names {} and its command {}",
                commit.order_id, commit.command.order_id
            );
            self.finding(
                FindingKind::SubjectMismatch,
                Some(order),
                seq,
                Some(commit.commit),
                detail,
            );
        }
        if commit.fingerprint != commit.command.fingerprint() {
            let detail = "the fingerprint is not the command's: the command was edited".to_string();
            self.finding(
                FindingKind::FingerprintMismatch,
                Some(order),
                seq,
                Some(commit.commit),
                detail,
            );
        }
    }

    /// Chain, re-decision, fold, transition and invariants for one commit of `order`.
    fn fold(
        &mut self,
        order: &OrderId,
        track: &mut OrderTrack,
        seq: u64,
        commit: &Commit,
        hash: &str,
    ) {
        let (expected, head) = match &track.state {
            Some(s) => (s.commits + 1, s.head_hash.as_str()),
            None => (1, GENESIS_HASH),
        };
        if commit.commit != expected || commit.prev_hash != head {
            let detail = chain_detail(expected, head, commit, track.last_seq, seq);
            self.breaks.push(order, track.last_seq, seq);
            self.finding_for(
                track,
                FindingKind::ChainBroken,
                order,
                seq,
                commit.commit,
                detail,
            );
            track.broken_at.get_or_insert(seq);
            if !resync(&mut track.state, commit) {
                return;
            }
        }
        let verify = track.broken_at.is_none();
        if verify {
            self.redecide(order, track, seq, commit);
        } else {
            track.unverified += 1;
        }
        let before = track.state.as_ref().map(|s| s.status);
        let backup = needs_backup(track.state.as_ref(), commit)
            .then(|| track.state.clone())
            .flatten();
        match apply_commit(track.state.take(), commit, hash) {
            Ok(s) => track.state = Some(s),
            Err(e) => {
                track.state = backup;
                self.finding_for(
                    track,
                    FindingKind::IllegalCommit,
                    order,
                    seq,
                    commit.commit,
                    format!("does not fold: {e}"),
                );
                return;
            }
        }
        self.discrepancies(order, track, seq, commit);
        let Some(after) = &track.state else { return };
        if !verify {
            return;
        }
        let after_status = after.status;
        let violations = check_invariants(after);
        if let Some(from) = before.filter(|from| !is_legal_transition(*from, after_status)) {
            let detail = format!("{from} -> {after_status}");
            self.finding_for(
                track,
                FindingKind::IllegalTransition,
                order,
                seq,
                commit.commit,
                detail,
            );
        }
        for v in violations {
            self.finding_for(
                track,
                FindingKind::InvariantViolation,
                order,
                seq,
                commit.commit,
                format!("{}: {}", v.code, v.detail),
            );
        }
    }

    /// The commit must be exactly what the core decides for its command on the state before: its
    /// events, or for a `command_rejected` commit the core's rejection code.
    fn redecide(&mut self, order: &OrderId, track: &mut OrderTrack, seq: u64, commit: &Commit) {
        let state = track.state.as_ref();
        let decided = decide(state, &commit.command, commit.decided_at);
        let detail = match (decided, logged_rejection(commit)) {
            // A logged rejection (decision 0013): the core must refuse the command with the
            // same code, and the engine must be one that logs it (not `idempotency_key_reused`
            // or `order_history_full`, not past the order's bound).
            (Err(rejection), Some(code)) if rejection.code == code => {
                if logs_rejection(state, code) {
                    return;
                }
                format!(
                    "the log has a command_rejected {code} for {} that the engine does not log here",
                    commit.command.command.name()
                )
            }
            (Err(rejection), Some(code)) => format!(
                "the core rejects this {} with {} but the log has command_rejected {code}",
                commit.command.command.name(),
                rejection.code
            ),
            (Ok(Decision::Commit(events)), Some(code)) => format!(
                "the core decides [{}] for {} but the log has command_rejected {code}",
                names(&events),
                commit.command.command.name()
            ),
            (decided, _) => match decided {
                Ok(Decision::Commit(events)) if events == commit.events => return,
                Ok(Decision::Commit(events)) => {
                    format!(
                        "the core decides [{}] for {} but the log has [{}]",
                        names(&events),
                        commit.command.command.name(),
                        names(&commit.events)
                    )
                }
                Ok(Decision::AlreadyApplied { commit: earlier }) => {
                    format!(
                        "command {} was already applied in commit {earlier}: a repeated commit",
                        commit.command.command_id
                    )
                }
                Err(rejection) => format!(
                    "the core rejects this {} ({}) but the log has [{}]",
                    commit.command.command.name(),
                    rejection,
                    names(&commit.events)
                ),
            },
        };
        self.finding_for(
            track,
            FindingKind::IllegalCommit,
            order,
            seq,
            commit.commit,
            detail,
        );
    }

    fn discrepancies(
        &mut self,
        order: &OrderId,
        track: &mut OrderTrack,
        seq: u64,
        commit: &Commit,
    ) {
        for e in &commit.events {
            if let Event::DiscrepancyDetected { code, detail, .. } = e {
                track.discrepancies += 1;
                self.report.discrepancies_total += 1;
                if self.report.discrepancies.len() < DISCREPANCIES_LISTED_MAX {
                    self.report.discrepancies.push(DiscrepancyEntry {
                        order: order.to_string(),
                        sequence: seq,
                        commit: commit.commit,
                        code: code.clone(),
                        detail: detail.clone(),
                    });
                }
            }
        }
    }

    fn finding(
        &mut self,
        kind: FindingKind,
        order: Option<&OrderId>,
        seq: u64,
        commit: Option<u64>,
        detail: String,
    ) {
        if let Some(o) = order {
            self.orders.entry(o.clone()).or_default().findings += 1;
        }
        self.report.add(Finding {
            kind,
            order: order.map(|o| o.to_string()),
            sequence: Some(seq),
            commit,
            detail,
        });
    }

    fn finding_for(
        &mut self,
        track: &mut OrderTrack,
        kind: FindingKind,
        order: &OrderId,
        seq: u64,
        commit: u64,
        detail: String,
    ) {
        track.findings += 1;
        self.report.add(Finding {
            kind,
            order: Some(order.to_string()),
            sequence: Some(seq),
            commit: Some(commit),
            detail,
        });
    }
}

/// The code of a `command_rejected` commit (its only event); `None` for any other commit.
fn logged_rejection(commit: &Commit) -> Option<RejectionCode> {
    match commit.events.as_slice() {
        [Event::CommandRejected { code, .. }] => Some(*code),
        _ => None,
    }
}

/// Gap ranges an audit holds, to list and to tell apart across passes; past it further ranges
/// are counted, not held (a log with millions of deleted ranges audits in bounded memory).
pub const GAPS_HELD_MAX: usize = FINDINGS_LISTED_MAX;
/// Chain breaks an audit holds to name the order of a gap; past it no gap is named.
pub const BREAKS_HELD_MAX: usize = 10 * FINDINGS_LISTED_MAX;

/// Stream-level check: sequence numbers missing between the messages read (deleted ones).
#[derive(Debug, Default)]
pub struct SequenceGaps {
    next_seq: u64,
    /// The first missing ranges, `(first, last)`, in stream order: at most [`GAPS_HELD_MAX`].
    pub held: Vec<(u64, u64)>,
    /// Missing ranges past `held`'s bound: counted only.
    pub more: u64,
}

impl SequenceGaps {
    pub fn new() -> SequenceGaps {
        SequenceGaps {
            next_seq: 1,
            held: Vec::new(),
            more: 0,
        }
    }

    /// Notes the next message's sequence (messages in stream order).
    pub fn observe(&mut self, seq: u64) {
        if seq > self.next_seq {
            self.gap(self.next_seq, seq - 1);
        }
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// The snapshot ended at `end`: anything after the last message read is missing too.
    pub fn finish(&mut self, end: u64) {
        if end >= self.next_seq {
            self.gap(self.next_seq, end);
        }
    }

    fn gap(&mut self, first: u64, last: u64) {
        if self.held.len() < GAPS_HELD_MAX {
            self.held.push((first, last));
        } else {
            self.more += 1;
        }
    }
}

/// The gaps of every pass of an audit: a range every pass sees is one finding; one that
/// appears only in a later pass (a message deleted while the audit ran) is another. Distinct
/// ranges are held up to [`GAPS_HELD_MAX`]; past it they are counted, from each pass's own
/// count (exact unless a log with more ranges than the bound also lost messages mid-audit).
#[derive(Debug, Default)]
pub struct GapsSeen {
    /// Distinct ranges, in stream order: at most [`GAPS_HELD_MAX`].
    held: std::collections::BTreeSet<(u64, u64)>,
    /// Distinct ranges of a later pass that did not fit.
    new_past_bound: u64,
    /// The largest count of ranges past a pass's own bound.
    more_max: u64,
}

impl GapsSeen {
    pub fn absorb(&mut self, pass: SequenceGaps) {
        for range in pass.held {
            if self.held.contains(&range) {
                continue;
            }
            if self.held.len() < GAPS_HELD_MAX {
                self.held.insert(range);
            } else {
                self.new_past_bound += 1;
            }
        }
        self.more_max = self.more_max.max(pass.more);
    }

    /// Ranges found, held or not.
    pub fn total(&self) -> u64 {
        self.held.len() as u64 + self.new_past_bound + self.more_max
    }
}

fn gap_finding((first, last): (u64, u64)) -> Finding {
    let detail = if first == last {
        format!("stream sequence {first} is missing (deleted)")
    } else {
        format!("stream sequences {first}..={last} are missing (deleted)")
    };
    Finding {
        kind: FindingKind::SequenceGap,
        order: None,
        sequence: Some(first),
        commit: None,
        detail,
    }
}

/// Chain breaks seen, `(order, sequence of the commit before the break, sequence after)`, to
/// name the order of a gap: at most [`BREAKS_HELD_MAX`]. Once one is dropped no gap is named
/// (a dropped break could be a second one over the gap, and a wrong name is worse than none).
#[derive(Debug, Default)]
pub struct Breaks {
    pub held: Vec<(String, u64, u64)>,
    pub dropped: u64,
}

impl Breaks {
    pub fn push(&mut self, order: &OrderId, before: u64, after: u64) {
        if self.held.len() < BREAKS_HELD_MAX {
            self.held.push((order.to_string(), before, after));
        } else {
            self.dropped += 1;
        }
    }

    pub fn absorb(&mut self, other: Breaks) {
        let room = BREAKS_HELD_MAX.saturating_sub(self.held.len());
        let offered = other.held.len();
        self.held.extend(other.held.into_iter().take(room));
        self.dropped += other.dropped + offered.saturating_sub(room) as u64;
    }

    /// For each of `gaps` (ascending stream sequences), the one order whose chain breaks over
    /// it, if exactly one does and every break is held. One sweep over the breaks sorted by
    /// where they open and where they close, so the held bounds cost a sort, not their product.
    fn owners(&self, gaps: &[u64]) -> Vec<Option<&str>> {
        if self.dropped > 0 {
            return vec![None; gaps.len()];
        }
        // A break covers the sequences strictly between `before` and `after`; one covering
        // none is left out (it would open in the sweep after it had closed).
        let spans: Vec<&(String, u64, u64)> = self
            .held
            .iter()
            .filter(|(_, before, after)| before.saturating_add(1) < *after)
            .collect();
        let mut opening: Vec<usize> = (0..spans.len()).collect();
        opening.sort_unstable_by_key(|&i| spans[i].1);
        let mut closing = opening.clone();
        closing.sort_unstable_by_key(|&i| spans[i].2);
        let (mut opened, mut closed) = (0, 0);
        let mut covering = std::collections::BTreeSet::new();
        gaps.iter()
            .map(|&gap| {
                while let Some(&i) = opening.get(opened).filter(|&&i| spans[i].1 < gap) {
                    covering.insert(i);
                    opened += 1;
                }
                while let Some(&i) = closing.get(closed).filter(|&&i| spans[i].2 <= gap) {
                    covering.remove(&i);
                    closed += 1;
                }
                match (covering.len(), covering.first()) {
                    (1, Some(&i)) => Some(spans[i].0.as_str()),
                    _ => None,
                }
            })
            .collect()
    }
}

/// Joins the stream-level gaps and the auditors that shared the orders into one report (and
/// every order's track, for the projection comparison). A gap inside exactly one order's
/// chain break is attributed to that order.
pub fn assemble(
    stream: &str,
    snapshot_last_seq: u64,
    gaps: SequenceGaps,
    parts: Vec<Auditor>,
) -> (Report, Tracks) {
    let mut joined = join(stream, snapshot_last_seq, parts);
    let mut seen = GapsSeen::default();
    seen.absorb(gaps);
    place_gaps(&mut joined.report, seen, &joined.breaks);
    (joined.report, joined.orders)
}

/// The auditors of one pass over the log, joined: their report without the stream-level
/// gaps, their orders' tracks and the chain breaks they saw.
pub struct Joined {
    pub report: Report,
    pub orders: Tracks,
    /// To name a gap's order.
    pub breaks: Breaks,
}

/// Joins auditors that shared the orders (see [`assemble`]; an audit in several passes joins
/// each pass's, then [`place_gaps`] once).
pub fn join(stream: &str, snapshot_last_seq: u64, parts: Vec<Auditor>) -> Joined {
    let mut report = Report {
        stream: stream.to_string(),
        snapshot_last_seq,
        passes: 1,
        ..Default::default()
    };
    let mut orders = HashMap::new();
    let mut breaks = Breaks::default();
    for part in parts {
        report.absorb(part.report);
        breaks.absorb(part.breaks);
        orders.extend(part.orders);
    }
    report.orders = orders.len() as u64;
    // Why the flagged orders are listed by the smallest ids rather than as found: the listing
    // is then the same whatever the map's order, the workers and the passes.
    let mut flagged: Vec<(&OrderId, &OrderTrack)> = orders
        .iter()
        .filter(|(_, t)| t.findings > 0 || t.discrepancies > 0 || t.unverified > 0)
        .map(|(order, t)| (order, &**t))
        .collect();
    report.orders_flagged_total = flagged.len() as u64;
    if flagged.len() > ORDERS_FLAGGED_LISTED_MAX {
        flagged.select_nth_unstable_by(ORDERS_FLAGGED_LISTED_MAX, |a, b| {
            a.0.as_str().cmp(b.0.as_str())
        });
        flagged.truncate(ORDERS_FLAGGED_LISTED_MAX);
    }
    for (order, t) in flagged {
        report.orders_flagged.push(OrderSummary {
            order: order.to_string(),
            commits: t.commits_seen,
            last_sequence: t.last_seq,
            status: t.state.as_ref().map(|s| s.status.to_string()),
            findings: t.findings,
            discrepancies: t.discrepancies,
            unverified_commits: t.unverified,
        });
    }
    Joined {
        report,
        orders,
        breaks,
    }
}

/// Adds the stream-level gap findings to `report` (a gap inside exactly one order's chain
/// break named as that order's; those past the held bound only counted) and puts the listings
/// in stream order.
pub fn place_gaps(report: &mut Report, gaps: GapsSeen, breaks: &Breaks) {
    let unlisted = gaps.total() - gaps.held.len() as u64;
    let starts: Vec<u64> = gaps.held.iter().map(|range| range.0).collect();
    let owners = breaks.owners(&starts);
    for (range, owner) in gaps.held.into_iter().zip(owners) {
        let mut f = gap_finding(range);
        if let Some(order) = owner {
            f.order = Some(order.to_string());
            f.detail
                .push_str(&format!("; order {order}'s chain breaks over it"));
        }
        report.add(f);
    }
    report.count(FindingKind::SequenceGap, unlisted);
    report.findings.sort_by_key(|f| (f.sequence, f.kind));
    report.discrepancies.sort_by_key(|d| d.sequence);
    report.orders_flagged.sort_by(|a, b| a.order.cmp(&b.order));
}

/// Puts the order's chain head where `commit` says it was, so folding can go on after a break.
/// False when there is nothing to fold onto (the order's creation is missing).
fn resync(state: &mut Option<OrderState>, commit: &Commit) -> bool {
    match state {
        Some(s) => {
            s.commits = commit.commit.saturating_sub(1);
            s.head_hash = commit.prev_hash.clone();
            true
        }
        None => commit.commit == 1 && commit.prev_hash == GENESIS_HASH,
    }
}

fn chain_detail(expected: u64, head: &str, commit: &Commit, prev_seq: u64, seq: u64) -> String {
    if commit.commit > expected {
        let missing = if commit.commit - expected == 1 {
            format!("commit {expected} is")
        } else {
            format!("commits {expected}..={} are", commit.commit - 1)
        };
        return format!("commit {} follows commit {}: {missing} missing (stored between seq {prev_seq} and {seq})", commit.commit, expected - 1);
    }
    if commit.commit < expected {
        return format!(
            "commit {} comes again after commit {}: a repeated or reordered commit",
            commit.commit,
            expected - 1
        );
    }
    format!("prev_hash {} is not the hash {head} of commit {}: the previous commit was edited or replaced", commit.prev_hash, expected - 1)
}

/// Whether `apply_commit` may refuse `commit` after taking the state (which is then kept from
/// a copy): another order, no events, an `order_created`, a `command_rejected` beside others.
fn needs_backup(state: Option<&OrderState>, commit: &Commit) -> bool {
    state.is_some_and(|s| {
        s.order_id != commit.order_id
            || commit.events.is_empty()
            || commit.events.iter().any(|e| {
                matches!(
                    e,
                    Event::OrderCreated { .. } | Event::CommandRejected { .. }
                )
            })
    })
}

fn names(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every other sequence missing: `ranges` gaps of one sequence each.
    fn gaps_every_other(ranges: u64) -> SequenceGaps {
        let mut gaps = SequenceGaps::new();
        for i in 0..ranges {
            gaps.observe(2 * i + 2);
        }
        gaps
    }

    #[test]
    fn gaps_past_the_bound_are_counted_not_held() {
        let gaps = gaps_every_other(GAPS_HELD_MAX as u64 + 5);
        assert_eq!(gaps.held.len(), GAPS_HELD_MAX);
        assert_eq!(gaps.more, 5);
        assert_eq!(gaps.held[0], (1, 1), "held in stream order");
        let mut report = Report::default();
        let mut seen = GapsSeen::default();
        seen.absorb(gaps);
        place_gaps(&mut report, seen, &Breaks::default());
        assert_eq!(report.findings_total, GAPS_HELD_MAX as u64 + 5);
        assert_eq!(report.errors_total, GAPS_HELD_MAX as u64 + 5);
        assert_eq!(
            report.findings_by_kind[&FindingKind::SequenceGap],
            GAPS_HELD_MAX as u64 + 5
        );
        assert_eq!(report.findings.len(), FINDINGS_LISTED_MAX);
    }

    #[test]
    fn a_gap_every_pass_sees_is_one_finding_and_a_new_one_another() {
        let mut seen = GapsSeen::default();
        for _ in 0..3 {
            seen.absorb(gaps_every_other(4));
        }
        assert_eq!(seen.total(), 4, "the same ranges in three passes");
        let mut later = gaps_every_other(4);
        later.observe(20); // 10..=19 deleted while the audit ran
        seen.absorb(later);
        assert_eq!(seen.total(), 5);
        // Past the bound: each pass's own count, not the sum of the passes'.
        let mut seen = GapsSeen::default();
        for _ in 0..3 {
            seen.absorb(gaps_every_other(GAPS_HELD_MAX as u64 + 7));
        }
        assert_eq!(seen.total(), GAPS_HELD_MAX as u64 + 7);
        assert_eq!(seen.held.len(), GAPS_HELD_MAX);
    }

    #[test]
    fn a_gap_is_named_only_when_one_held_break_covers_it_and_none_was_dropped() {
        let (a, b) = (
            OrderId::parse("a").expect("id"),
            OrderId::parse("b").expect("id"),
        );
        let mut breaks = Breaks::default();
        breaks.push(&a, 3, 9);
        breaks.push(&b, 7, 12);
        assert_eq!(
            breaks.owners(&[3, 5, 8, 10, 12]),
            [None, Some("a"), None, Some("b"), None],
            "not inside, one, two orders over it, one, not inside"
        );
        let mut full = Breaks::default();
        for i in 0..BREAKS_HELD_MAX as u64 {
            full.push(&b, 100 + i, 101 + i);
        }
        full.absorb(breaks);
        assert_eq!(full.held.len(), BREAKS_HELD_MAX);
        assert_eq!(full.dropped, 2);
        assert_eq!(full.owners(&[5]), [None], "a dropped break could cover it");
    }

    proptest::proptest! {
        /// The sweep names what the definition names: the one held break strictly around
        /// each gap, none where zero or several are (breaks of any shape, overlapping,
        /// empty or backwards, sequences up to the top of the range).
        #[test]
        fn owners_agree_with_the_definition(
            spans in proptest::collection::vec((0u8..4, 0u64..40, 0u64..40), 0..24),
            mut gaps in proptest::collection::vec(0u64..42, 0..16),
            top in proptest::bool::ANY,
        ) {
            let shift = if top { u64::MAX - 41 } else { 0 };
            let mut breaks = Breaks::default();
            for (order, before, after) in &spans {
                let order = OrderId::parse(format!("o-{order}")).expect("id");
                breaks.push(&order, before + shift, after + shift);
            }
            gaps.sort_unstable();
            let gaps: Vec<u64> = gaps.iter().map(|g| g + shift).collect();
            let expected: Vec<Option<&str>> = gaps
                .iter()
                .map(|&gap| {
                    let mut over = breaks.held.iter().filter(|(_, b, a)| *b < gap && gap < *a);
                    match (over.next(), over.next()) {
                        (Some((order, _, _)), None) => Some(order.as_str()),
                        _ => None,
                    }
                })
                .collect();
            proptest::prop_assert_eq!(breaks.owners(&gaps), expected);
        }
    }

    #[test]
    fn flagged_orders_past_the_bound_are_counted_not_listed() {
        let flagged = |from: usize, n: usize| {
            let mut auditor = Auditor::new("TEST", 0);
            for i in from..from + n {
                let order = OrderId::parse(format!("o-{i}")).expect("id");
                auditor.orders.insert(
                    order,
                    Box::new(OrderTrack {
                        findings: 1,
                        ..Default::default()
                    }),
                );
            }
            join("TEST", 0, vec![auditor]).report
        };
        let one = flagged(0, ORDERS_FLAGGED_LISTED_MAX + 3);
        assert_eq!(
            one.orders_flagged_total,
            ORDERS_FLAGGED_LISTED_MAX as u64 + 3
        );
        assert_eq!(one.orders_flagged.len(), ORDERS_FLAGGED_LISTED_MAX);
        let smallest = |r: &Report| {
            let mut listed: Vec<String> =
                r.orders_flagged.iter().map(|o| o.order.clone()).collect();
            listed.sort();
            listed
        };
        let mut ids: Vec<String> = (0..ORDERS_FLAGGED_LISTED_MAX + 3)
            .map(|i| format!("o-{i}"))
            .collect();
        ids.sort();
        ids.truncate(ORDERS_FLAGGED_LISTED_MAX);
        assert_eq!(
            smallest(&one),
            ids,
            "the smallest ids, whatever the map's order"
        );
        // The same orders split over two passes list the same.
        let mut audit = Report::default();
        audit.absorb_pass(flagged(0, 5_000));
        audit.absorb_pass(flagged(5_000, ORDERS_FLAGGED_LISTED_MAX - 5_000 + 3));
        assert_eq!(
            audit.orders_flagged_total,
            ORDERS_FLAGGED_LISTED_MAX as u64 + 3
        );
        assert_eq!(audit.orders_flagged.len(), ORDERS_FLAGGED_LISTED_MAX);
        assert_eq!(smallest(&audit), ids);
    }
}
