//! The audit fold without a broker: a log built through the pure core audits clean; a
//! forged commit, an edited body, a deleted commit and a repeated commit are each found with
//! their order and sequence.

use async_nats::HeaderMap;
use paystate_audit::check::{assemble, Auditor, SequenceGaps};
use paystate_audit::FindingKind;
use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::subjects::{events_subject, HASH_HEADER};
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, Event, Evidence, OrderId, OrderState,
    Provider, ProviderSignal, Rejection, RejectionCode, SignalKind, Timestamp,
    COMMIT_SCHEMA_VERSION,
};
use paystate_journal::{EncodedCommit, RawEntry};

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
}

fn envelope(order: &OrderId, n: usize, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: CommandId::parse(format!("{order}.{n}")).expect("id"),
        order_id: order.clone(),
        issued_at: at(n as i64),
        command,
    }
}

fn script() -> Vec<Command> {
    let sig = |kind, ev: &str| Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("ref".into()),
            evidence_ref: ev.into(),
            observed_at: at(0),
            kind,
        },
    };
    vec![
        Command::CreateOrder {
            merchant_reference: "m".into(),
            amount: money(10_000, "USD").expect("money"),
            provider: Provider::Plural,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
        },
        Command::StartPayment {
            initiation: Default::default(),
        },
        sig(SignalKind::Authorized { amount: None }, "auth"),
        Command::Capture {
            amount: money(6_000, "USD"),
        },
        sig(SignalKind::Captured { amount: None }, "cap"),
    ]
}

/// Commits of one order as the engine would write them; returns them with the last state.
fn order_commits(order: &OrderId) -> (Vec<EncodedCommit>, OrderState) {
    let mut state: Option<OrderState> = None;
    let mut out = Vec::new();
    for (n, command) in script().into_iter().enumerate() {
        let env = envelope(order, n, command);
        let Ok(Decision::Commit(events)) = decide(state.as_ref(), &env, at(n as i64)) else {
            panic!("the script is accepted")
        };
        let commit = next_commit(state.as_ref(), env, events, at(n as i64));
        let encoded = EncodedCommit::new(commit);
        state = Some(apply_commit(state, &encoded.commit, &encoded.hash).expect("folds"));
        out.push(encoded);
    }
    (out, state.expect("state"))
}

fn next_commit(
    state: Option<&OrderState>,
    command: CommandEnvelope,
    events: Vec<Event>,
    decided_at: Timestamp,
) -> Commit {
    let (commits, prev_hash) = state.map_or(
        (0, paystate_events::commit::GENESIS_HASH.to_string()),
        |s| (s.commits, s.head_hash.clone()),
    );
    Commit {
        v: COMMIT_SCHEMA_VERSION,
        order_id: command.order_id.clone(),
        commit: commits + 1,
        prev_hash,
        decided_at,
        fingerprint: command.fingerprint(),
        command,
        events,
    }
}

fn entry(seq: u64, c: &EncodedCommit, header_hash: &str) -> RawEntry {
    let mut headers = HeaderMap::new();
    headers.insert(HASH_HEADER, header_hash);
    RawEntry {
        sequence: seq,
        subject: events_subject(&c.commit.order_id).into(),
        time: at(0),
        headers: Some(headers),
        payload: c.bytes.clone().into(),
    }
}

/// Audits `entries` (in stream order) up to `end`.
fn audit(entries: &[RawEntry], end: u64) -> paystate_audit::Report {
    let mut gaps = SequenceGaps::new();
    let mut auditor = Auditor::new("TEST", end);
    for e in entries {
        gaps.observe(e.sequence);
        auditor.observe(e);
    }
    gaps.finish(end);
    assemble("TEST", end, gaps, vec![auditor]).0
}

fn two_orders() -> (OrderId, OrderId, Vec<RawEntry>) {
    let (a, b) = (
        OrderId::parse("a").expect("id"),
        OrderId::parse("b").expect("id"),
    );
    let (ca, _) = order_commits(&a);
    let (cb, _) = order_commits(&b);
    let mut entries = Vec::new();
    for (x, y) in ca.iter().zip(cb.iter()) {
        for c in [x, y] {
            let seq = entries.len() as u64 + 1;
            entries.push(entry(seq, c, &c.hash));
        }
    }
    (a, b, entries)
}

fn has(report: &paystate_audit::Report, kind: FindingKind, order: &str, seq: u64) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.kind == kind && f.order.as_deref() == Some(order) && f.sequence == Some(seq))
}

#[test]
fn a_log_written_through_the_core_audits_clean() {
    let (_, _, entries) = two_orders();
    let report = audit(&entries, entries.len() as u64);
    assert!(report.is_clean(true), "{}", report.render(20));
    assert_eq!((report.commits, report.orders), (10, 2));
}

#[test]
fn a_chained_commit_whose_events_do_not_follow_from_its_command_is_illegal() {
    let (a, _, mut entries) = two_orders();
    let (commits, state) = order_commits(&a);
    let command = envelope(
        &a,
        99,
        Command::Refund {
            amount: money(6_000, "USD"),
        },
    );
    let evidence = Evidence {
        provider_ref: None,
        evidence_ref: "forged".into(),
        observed_at: at(0),
    };
    let amount = money(6_000, "USD").expect("money");
    let forged = EncodedCommit::new(next_commit(
        Some(&state),
        command,
        vec![Event::RefundCompleted {
            refund_id: "x".into(),
            amount,
            evidence,
        }],
        at(99),
    ));
    assert_eq!(forged.commit.commit, commits.len() as u64 + 1);
    entries.push(entry(11, &forged, &forged.hash));
    let report = audit(&entries, 11);
    assert!(
        has(&report, FindingKind::IllegalCommit, "a", 11),
        "{}",
        report.render(20)
    );
    assert_eq!(report.errors_total, 1, "{}", report.render(20));
}

#[test]
fn a_deleted_commit_is_a_gap_and_a_chain_break_named_with_order_and_sequence() {
    let (_, _, mut entries) = two_orders();
    // Order a's third commit is at sequence 5; order a's fourth at 7.
    entries.retain(|e| e.sequence != 5);
    let report = audit(&entries, 10);
    assert!(
        has(&report, FindingKind::SequenceGap, "a", 5),
        "{}",
        report.render(20)
    );
    assert!(
        has(&report, FindingKind::ChainBroken, "a", 7),
        "{}",
        report.render(20)
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.order.as_deref() == Some("b")),
        "order b is untouched"
    );
}

#[test]
fn an_edited_body_and_a_repeated_commit_are_found() {
    let (_, _, mut entries) = two_orders();
    // Order b's creation (sequence 2) gets another merchant reference, headers unchanged.
    let edited = String::from_utf8(entries[1].payload.to_vec())
        .expect("utf-8")
        .replace("\"m\"", "\"M\"");
    assert_ne!(edited.as_bytes(), &entries[1].payload[..]);
    entries[1].payload = edited.into_bytes().into();
    let again = entries[4].clone();
    entries.push(RawEntry {
        sequence: 11,
        ..again
    });
    let report = audit(&entries, 11);
    assert!(
        has(&report, FindingKind::HashMismatch, "b", 2),
        "{}",
        report.render(20)
    );
    assert!(
        has(&report, FindingKind::ChainBroken, "b", 4),
        "the next commit names the original hash: {}",
        report.render(20)
    );
    assert!(
        has(&report, FindingKind::ChainBroken, "a", 11),
        "{}",
        report.render(20)
    );
}

/// Order a's log plus one `command_rejected` commit for `command` with `code` (decided after
/// the script); returns the entries and the new commit's sequence.
fn with_rejection(command: Command, code: RejectionCode) -> (Vec<RawEntry>, u64) {
    let (a, _, mut entries) = two_orders();
    let (_, state) = order_commits(&a);
    let env = envelope(&a, 50, command);
    let rejection = Rejection::new(code, "as logged");
    let commit = next_commit(Some(&state), env, vec![Event::rejected(&rejection)], at(50));
    let encoded = EncodedCommit::new(commit);
    let seq = entries.len() as u64 + 1;
    entries.push(entry(seq, &encoded, &encoded.hash));
    (entries, seq)
}

#[test]
fn a_logged_rejection_the_core_confirms_audits_clean() {
    // The script leaves order a captured: a second capture is not allowed.
    let capture = Command::Capture { amount: None };
    let (entries, seq) = with_rejection(capture, RejectionCode::InvalidTransition);
    let report = audit(&entries, seq);
    assert!(report.is_clean(true), "{}", report.render(20));
    assert_eq!(report.commits, 11);
}

#[test]
fn a_logged_rejection_the_core_does_not_make_is_an_illegal_commit() {
    let capture = Command::Capture { amount: None };
    let refund = Command::Refund { amount: None };
    let cases = [
        // The core refuses the capture, but with another code.
        (capture, RejectionCode::CurrencyMismatch),
        // The core accepts the refund: a rejection in its place is forged.
        (refund, RejectionCode::InvalidTransition),
    ];
    for (command, code) in cases {
        let (entries, seq) = with_rejection(command, code);
        let report = audit(&entries, seq);
        assert!(
            has(&report, FindingKind::IllegalCommit, "a", seq),
            "{code}: {}",
            report.render(20)
        );
        assert_eq!(report.errors_total, 1, "{}", report.render(20));
    }
}
