//! Replay and audit through a real nats-server and the real `paystate` binary: a deleted
//! message and a forged commit are each caught with their order and sequence; replay `--at`
//! gives the state the engine reported; export → import into a fresh server → audit is clean
//! and the projections are identical; a tampered export is refused.

mod support;

use paystate_events::subjects::{events_subject, COMMIT_HEADER, HASH_HEADER};
use paystate_events::{Commit, Event, Evidence, OrderState, Outcome, StateView};
use paystate_journal::EncodedCommit;
use paystate_projection::{start_projector, ProjectorConfig};
use support::*;

/// Runs `paystate audit --report` and returns (exit code, report JSON, stdout).
async fn audit_cli(url: &str) -> (i32, serde_json::Value, String) {
    audit_cli_with(url, &[]).await
}

/// [`audit_cli`] with more arguments.
async fn audit_cli_with(url: &str, more: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.json");
    let mut args = vec![
        "audit",
        "--report",
        path.to_str().expect("utf-8 path"),
        "--projection-wait-ms",
        "5000",
    ];
    args.extend_from_slice(more);
    let (code, out, err) = paystate_cli(url, &args).await;
    let report = std::fs::read(&path)
        .map(|b| serde_json::from_slice(&b).expect("report is JSON"))
        .unwrap_or_else(|_| panic!("no report: {out}\n{err}"));
    (code, report, out)
}

fn findings_of<'a>(report: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// A few complete orders with a projector running; returns their ids.
async fn healthy_log(nats: &TestNats, prefix: &str, n: usize) -> Vec<paystate_events::OrderId> {
    let client = nats.client().await;
    let mut orders = Vec::new();
    for i in 0..n {
        let o = order(&format!("{prefix}{i}"));
        for cmd in [
            create(10_000),
            start(),
            authorized(),
            capture(Some(6_000)),
            captured(6_000),
        ] {
            accept(&client, env(&o, cmd)).await;
        }
        orders.push(o);
    }
    orders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_catches_a_deleted_message_with_its_order_and_sequence() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let orders = healthy_log(&nats, "del", 4).await;
    wait_projection_caught_up(&store).await;
    let (code, report, out) = audit_cli(&nats.url()).await;
    assert_eq!(code, 0, "a healthy log audits clean: {out}");
    assert_eq!(report["errors_total"], 0);
    let journal = nats.journal().await;
    let victim = &orders[1];
    let commits = journal.read_order(victim).await.expect("read");
    let (deleted, next) = (commits[2].sequence, commits[3].sequence);
    assert!(journal
        .stream()
        .delete_message(deleted)
        .await
        .expect("delete-message API"));
    let (code, report, out) = audit_cli(&nats.url()).await;
    assert_eq!(code, 1, "audit fails after a deletion: {out}");
    let gaps = findings_of(&report, "sequence_gap");
    assert!(
        gaps.iter()
            .any(|f| f["sequence"] == deleted && f["order"] == victim.as_str()),
        "gap named with order and sequence: {report:#}"
    );
    let breaks = findings_of(&report, "chain_broken");
    assert!(
        breaks
            .iter()
            .any(|f| f["order"] == victim.as_str() && f["sequence"] == next && f["commit"] == 4),
        "{report:#}"
    );
    assert!(
        out.contains(victim.as_str()),
        "the printed report names the order: {out}"
    );
    projector.shutdown().await;
}

/// An audit whose orders exceed one pass's bound reads the log in several passes, each
/// checking its share of the orders (and of the projection's records): the report is the
/// one-pass report, finding for finding, with a message deleted. Each later pass reads the
/// first pass's snapshot, not what was written since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_in_several_passes_reports_what_one_pass_does() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let orders = healthy_log(&nats, "pass", 12).await;
    let journal = nats.journal().await;
    let commits = journal.read_order(&orders[5]).await.expect("read");
    assert!(journal
        .stream()
        .delete_message(commits[1].sequence)
        .await
        .expect("delete-message API"));
    wait_projection_caught_up(&store).await;
    let (code_one, one, out_one) = audit_cli_with(&nats.url(), &["--orders-per-pass", "12"]).await;
    let (code_four, four, out_four) =
        audit_cli_with(&nats.url(), &["--orders-per-pass", "3"]).await;
    assert_eq!((code_one, code_four), (1, 1), "{out_one}\n{out_four}");
    assert_eq!((&one["passes"], &four["passes"]), (&1.into(), &4.into()));
    assert!(out_four.contains("in 4 passes"), "{out_four}");
    for field in [
        "commits",
        "events",
        "orders",
        "findings_total",
        "errors_total",
        "findings_by_kind",
        "findings",
        "orders_flagged",
        "orders_flagged_total",
        "snapshot_last_seq",
    ] {
        assert_eq!(one[field], four[field], "{field}: {one:#}\n{four:#}");
    }
    for field in ["records", "compared", "newer"] {
        assert_eq!(
            one["projection"][field], four["projection"][field],
            "{field}"
        );
    }
    assert_eq!(one["projection"]["compared"], 12, "{one:#}");
    assert_eq!(one["orders"], 12);
    assert!(
        findings_of(&four, "sequence_gap")
            .iter()
            .any(|f| f["order"] == orders[5].as_str()),
        "{four:#}"
    );
    let (_, twelve, out) = audit_cli_with(&nats.url(), &["--orders-per-pass", "1"]).await;
    assert_eq!(twelve["passes"], 12, "{out}");
    assert_eq!(one["findings"], twelve["findings"], "{twelve:#}");
    assert_eq!(one["orders_flagged"], twelve["orders_flagged"]);
    assert_eq!(one["orders_flagged_total"], twelve["orders_flagged_total"]);
    assert!(one["orders_flagged_total"].as_u64() >= Some(1), "{one:#}");
    // What a later pass reads: the snapshot's end, whatever came after it.
    let end = one["snapshot_last_seq"].as_u64().expect("snapshot");
    healthy_log(&nats, "later", 1).await;
    let opts = paystate_journal::ScanOptions {
        until_seq: Some(end),
        ..Default::default()
    };
    let mut scan = journal.scan(opts).await.expect("scan");
    let mut last = 0;
    while let Some(entry) = scan.next().await {
        last = entry.expect("entry").sequence;
    }
    assert_eq!((scan.end_seq, last), (end, end));
    projector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_catches_a_forged_commit_that_bypasses_the_engine() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let o = order("forged");
    let mut state = accept(&client, env(&o, create(10_000))).await;
    for cmd in [start(), authorized()] {
        state = accept(&client, env(&o, cmd)).await;
    }
    let journal = nats.journal().await;
    let last_seq = journal
        .read_order(&o)
        .await
        .expect("read")
        .last()
        .expect("commits")
        .sequence;
    // A chain-perfect commit whose events do not follow from its command: a capture command
    // "answered" with funds captured, as if the provider had confirmed.
    let command = env(&o, capture(Some(10_000)));
    let amount = paystate_events::command::money(10_000, "USD").expect("amount");
    let evidence = Evidence {
        provider_ref: None,
        evidence_ref: "forged".into(),
        observed_at: command.issued_at,
    };
    let forged = EncodedCommit::new(Commit {
        v: paystate_events::COMMIT_SCHEMA_VERSION,
        order_id: o.clone(),
        commit: state.commits + 1,
        prev_hash: state.head_hash.clone(),
        decided_at: chrono::Utc::now(),
        fingerprint: command.fingerprint(),
        command,
        events: vec![Event::PaymentCaptured { amount, evidence }],
    });
    let js = async_nats::jetstream::new(nats.connect().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HASH_HEADER, forged.hash.as_str());
    headers.insert(COMMIT_HEADER, forged.commit.commit.to_string().as_str());
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(forged.bytes.clone().into())
        .headers(headers)
        .expected_last_subject_sequence(last_seq);
    let ack = js
        .send_publish(events_subject(&o), publish)
        .await
        .expect("publish")
        .await
        .expect("stored");
    wait_projection_caught_up(&store).await;
    let (code, report, out) = audit_cli(&nats.url()).await;
    assert_eq!(code, 1, "audit fails on a forged commit: {out}");
    let illegal = findings_of(&report, "illegal_commit");
    assert!(
        illegal
            .iter()
            .any(|f| f["order"] == o.as_str() && f["sequence"] == ack.sequence),
        "forgery named with order and sequence: {report:#}"
    );
    projector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_at_a_sequence_or_time_gives_the_state_the_engine_reported() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let o = order("replay");
    let refund_cmd = env(&o, refund(Some(2_000)));
    let refund_id = refund_cmd.command_id.to_string();
    let done = paystate_events::SignalKind::Refunded {
        refund_id: Some(refund_id),
        amount: None,
    };
    let script = vec![
        env(&o, create(10_000)),
        env(&o, start()),
        env(&o, authorized()),
        env(&o, capture(Some(8_000))),
        env(&o, captured(8_000)),
        refund_cmd,
        env(&o, signal(done, "ev-r")),
    ];
    let mut reported = Vec::new();
    for cmd in script {
        let state = accept(&client, cmd).await;
        let seq = journal
            .read_order(&o)
            .await
            .expect("read")
            .last()
            .expect("commit")
            .sequence;
        reported.push((seq, chrono::Utc::now(), state));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for (seq, at, state) in &reported {
        for point in [seq.to_string(), at.to_rfc3339()] {
            let (code, out, err) = paystate_cli(
                &nats.url(),
                &["replay", o.as_str(), "--at", &point, "--json"],
            )
            .await;
            assert_eq!(code, 0, "{err}");
            let v: serde_json::Value = serde_json::from_str(&out).expect("json");
            let replayed: OrderState = serde_json::from_value(v["state"].clone()).expect("a state");
            // Replay shows the full state; the outcome carried its bounded view.
            assert_eq!(&StateView::of(&replayed), state, "replay --at {point}");
            assert_eq!(
                v["entries"].as_array().expect("entries").len() as u64,
                state.commits
            );
        }
    }
    let (code, out, _) = paystate_cli(&nats.url(), &["replay", o.as_str()]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("plural reported captured") && out.contains("command refund"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_into_a_fresh_server_audits_clean_with_identical_projections() {
    let a = TestNats::start().await;
    let _engine = a.engine().await;
    let store_a = projection_store(&a).await;
    let projector = start_projector(store_a.clone(), ProjectorConfig::default())
        .await
        .expect("projector");
    let done = run_workload(
        &a.client().await,
        "exp",
        sample(workload_strategy(12, 8), test_seed()),
    )
    .await;
    assert!(done
        .iter()
        .all(|(_, outs)| matches!(outs[0], Outcome::Accepted { .. })));
    wait_projection_caught_up(&store_a).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    let (code, _, err) = paystate_cli(&a.url(), &["export", "--out", file_arg, "--quiet"]).await;
    assert_eq!(code, 0, "{err}");
    let b = TestNats::start().await;
    let (code, _, err) = paystate_cli(&b.url(), &["import", file_arg, "--quiet"]).await;
    assert_eq!(code, 0, "import: {err}");
    let (code, out, err) = paystate_cli(&b.url(), &["project", "rebuild", "--quiet"]).await;
    assert_eq!(code, 0, "rebuild: {out} {err}");
    let (code, report, out) = audit_cli(&b.url()).await;
    assert_eq!(code, 0, "the imported log audits clean: {out}");
    assert_eq!(report["projection"]["compared"], report["orders"]);
    let store_b = projection_store(&b).await;
    assert_eq!(
        projection_records(&store_b).await,
        projection_records(&store_a).await,
        "identical projections"
    );
    // Importing again into the now non-empty stream is refused; so is a tampered file.
    let (code, _, err) = paystate_cli(&b.url(), &["import", file_arg, "--quiet"]).await;
    assert_eq!(code, 1, "{err}");
    let text = std::fs::read_to_string(&file).expect("export");
    let tampered = text.replacen("\"minor_units\":10000", "\"minor_units\":90000", 1);
    assert_ne!(tampered, text);
    let bad = dir.path().join("tampered.jsonl");
    std::fs::write(&bad, tampered).expect("write");
    let (code, _, err) = paystate_cli(
        &b.url(),
        &["import", bad.to_str().expect("utf-8"), "--verify-only"],
    )
    .await;
    assert_eq!(code, 1, "a tampered export is refused: {err}");
    assert!(err.contains("refused"), "{err}");
    projector.shutdown().await;
}

/// The log scan under audits, replays, exports and rebuilds reads every message once and in
/// order even when its consumer disappears mid-read (the server dropped it; the same path
/// serves a message lost on the way): it starts a new consumer at the first sequence it has
/// not read.
#[tokio::test]
async fn a_scan_that_loses_its_consumer_reads_each_message_once_in_order() {
    const MESSAGES: u64 = 3_000;
    const DROP_AFTER: usize = 1_000;
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    publish_numbered(&js, "scan", 0, MESSAGES).await;
    let mut scan = journal
        .scan(paystate_journal::ScanOptions::default())
        .await
        .expect("the scan opens");
    let mut seen = Vec::new();
    let mut dropped = 0;
    while let Some(entry) = scan.next().await {
        seen.push(entry.expect("the scan reads on").sequence);
        if seen.len() == DROP_AFTER {
            dropped += drop_consumers(&journal).await;
        }
    }
    assert_eq!(dropped, 1, "the scan's consumer was dropped mid-read");
    let expected: Vec<u64> = (scan.first_seq..=scan.end_seq).collect();
    assert_eq!(seen.len() as u64, MESSAGES);
    assert_eq!(seen, expected, "each message once, in stream order");
}

/// A scan asks for thousands of messages per request but at most `PULL_BYTES_MAX` bytes: over
/// messages near the largest the stream takes, each request ends at its byte bound (the server
/// says what it did not send) and the scan still reads every message once, in order.
#[tokio::test]
async fn a_scan_over_large_messages_reads_each_once_in_order_within_its_byte_bound() {
    const LARGE: usize = 900 * 1024;
    const MESSAGES: u64 = 40;
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    // Given a log where every other message is near the largest size (about 18 MB in all,
    // more than two requests' byte bound) ...
    let mut acks = Vec::new();
    for i in 0..MESSAGES {
        let body = match i % 2 {
            0 => vec![b'x'; LARGE],
            _ => format!("message {i}").into_bytes(),
        };
        let subject = format!("paystate.events.large-{}", i % 3);
        acks.push(js.publish(subject, body.into()).await.expect("published"));
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    const _: () = assert!(
        (MESSAGES as usize / 2) * LARGE > 2 * paystate_journal::pull::PULL_BYTES_MAX,
        "the log must exceed the byte bound of more than one request"
    );
    // ... when it is scanned ...
    let mut scan = journal
        .scan(paystate_journal::ScanOptions::default())
        .await
        .expect("the scan opens");
    let mut seen = Vec::new();
    while let Some(entry) = scan.next().await {
        let entry = entry.expect("the scan reads on");
        let large = seen.len() % 2 == 0;
        assert_eq!(
            entry.payload.len() == LARGE,
            large,
            "seq {}",
            entry.sequence
        );
        seen.push(entry.sequence);
    }
    // ... then every message came once, in stream order.
    let expected: Vec<u64> = (scan.first_seq..=scan.end_seq).collect();
    assert_eq!(seen.len() as u64, MESSAGES);
    assert_eq!(seen, expected, "each message once, in stream order");
}

/// A follow of the log (the reconciler's view) returns every message once and in order,
/// those written while it follows too, when its consumer disappears mid-read: it starts a
/// new consumer at the first sequence it has not returned.
#[tokio::test]
async fn a_follow_that_loses_its_consumer_returns_each_message_once_in_order() {
    const BEFORE: u64 = 2_000;
    const DURING: u64 = 500;
    const DROP_AFTER: u64 = 1_000;
    const NEXT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    publish_numbered(&js, "follow", 0, BEFORE).await;
    let mut follow = follow_log(&journal);
    let mut seen = Vec::new();
    let mut dropped = 0;
    while (seen.len() as u64) < BEFORE + DURING {
        seen.push(next_seq(&mut follow, NEXT_WAIT).await);
        if seen.len() as u64 == DROP_AFTER {
            dropped += drop_consumers(&journal).await;
        }
        if seen.len() as u64 == BEFORE {
            publish_numbered(&js, "follow", BEFORE, BEFORE + DURING).await;
        }
    }
    assert_eq!(dropped, 1, "the follow's consumer was dropped mid-read");
    let expected: Vec<u64> = (1..=BEFORE + DURING).collect();
    assert_eq!(seen, expected, "each message once, in stream order");
}

/// Publishes messages `from..to` on seven order subjects `paystate.events.<tag>-<n>` and
/// waits until each is stored.
async fn publish_numbered(js: &async_nats::jetstream::Context, tag: &str, from: u64, to: u64) {
    let mut acks = Vec::new();
    for i in from..to {
        let subject = format!("paystate.events.{tag}-{}", i % 7);
        let ack = js
            .publish(subject, format!("message {i}").into())
            .await
            .expect("published");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

/// Deletes every consumer of the log (what a server dropping them looks like to a reader);
/// how many there were.
async fn drop_consumers(journal: &paystate_journal::Journal) -> usize {
    use futures::TryStreamExt;
    let stream = journal.stream();
    let names: Vec<String> = stream
        .consumer_names()
        .try_collect()
        .await
        .expect("consumers listed");
    for name in &names {
        stream
            .delete_consumer(name)
            .await
            .expect("consumer deleted");
    }
    names.len()
}

/// A follow that cannot pull (its stream is gone) keeps to its growing pauses even when the
/// caller's `select!` drops its future every millisecond: three or four attempts in 1.5 s,
/// not one per wake-up.
#[tokio::test]
async fn a_follow_that_cannot_pull_keeps_its_pauses_when_interrupted() {
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    let name = journal.stream().cached_info().config.name.clone();
    js.delete_stream(&name).await.expect("stream deleted");
    let mut follow = follow_log(&journal);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(1_500);
    while tokio::time::Instant::now() < until {
        tokio::select! {
            _ = tick.tick() => {}
            _ = follow.next() => panic!("a message from a deleted stream"),
        }
    }
    let attempts = follow.failures_in_a_row();
    assert!(
        (2..=4).contains(&attempts),
        "{attempts} failed attempts in 1.5 s (pauses 0.1, 0.5, 1 s)"
    );
}

/// A follow of the log across a nats-server SIGKILL and restart (the reconciler's view of a
/// broker outage): every message once and in order, those written after the restart too.
/// The lost pull shows as silence past the idle bound; the follow then starts a new consumer
/// at the first sequence it has not returned (the in-memory one died with the server).
#[tokio::test]
async fn a_follow_rides_out_a_server_restart_with_each_message_once_in_order() {
    const BEFORE: u64 = 1_000;
    const AFTER: u64 = 500;
    const RESTART_AFTER: u64 = 500;
    // The idle bound (10 s) plus a new consumer, with room for a slow machine.
    const NEXT_WAIT: std::time::Duration = std::time::Duration::from_secs(40);
    let mut nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    let log = journal.stream().cached_info().config.name.clone();
    publish_numbered(&js, "outage", 0, BEFORE).await;
    let mut follow = follow_log(&journal);
    let mut seen = Vec::new();
    while (seen.len() as u64) < BEFORE + AFTER {
        seen.push(next_seq(&mut follow, NEXT_WAIT).await);
        if seen.len() as u64 == RESTART_AFTER {
            nats.server.restart().await.expect("nats-server restarts");
        }
        if seen.len() as u64 == BEFORE {
            let deadline = tokio::time::Instant::now() + NEXT_WAIT;
            while js.get_stream(&log).await.is_err() {
                assert!(tokio::time::Instant::now() < deadline, "the log is back");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            publish_numbered(&js, "outage", BEFORE, BEFORE + AFTER).await;
        }
    }
    let expected: Vec<u64> = (1..=BEFORE + AFTER).collect();
    assert_eq!(seen, expected, "each message once, in stream order");
}

/// A follow of the whole log from its start.
fn follow_log(journal: &paystate_journal::Journal) -> paystate_journal::follow::Follow {
    paystate_journal::follow::Follow::ordered(
        journal.context(),
        journal.stream(),
        "paystate.events.>",
        1,
        "test follow",
    )
}

/// The stream sequence of the follow's next message, waiting at most `wait`.
async fn next_seq(follow: &mut paystate_journal::follow::Follow, wait: std::time::Duration) -> u64 {
    let msg = tokio::time::timeout(wait, follow.next())
        .await
        .expect("the follow goes on");
    msg.info().expect("metadata").stream_sequence
}

/// Has the broker store its answer to a publish (a PubAck) at `target`, as any client can:
/// nats-server answers on whatever reply subject the publisher names (docs/security.md,
/// Known limits). Returns once something is stored at `target` per `stored`.
async fn plant_pub_ack<F, Fut>(nats: &TestNats, target: String, mut stored: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let raw = nats.connect().await;
    raw.publish_with_reply(
        paystate_events::subjects::command_subject(&order("planter")),
        target.clone(),
        "junk".into(),
    )
    .await
    .expect("publish");
    raw.flush().await.expect("flush");
    let started = std::time::Instant::now();
    while !stored().await {
        assert!(
            started.elapsed() < WAIT,
            "the broker's answer stored at {target}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A broker's answer stored at the quarantine key of a message that is not a commit is no
/// operator's decision: the audit still reports the message as an error (exit 1) and readers
/// still refuse the order; a real quarantine still sets it aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_at_a_quarantine_key_sets_nothing_aside() {
    use paystate_journal::quarantine::{self, QUARANTINE_BUCKET};
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let js = journal.context().clone();
    let o = order("q-planted");
    accept(&client, env(&o, create(10_000))).await;
    let broken = write_broken_commit(&js, &o).await;
    let key = quarantine::key(&o, broken);
    let kv = js.get_key_value(QUARANTINE_BUCKET).await.expect("bucket");
    plant_pub_ack(&nats, format!("$KV.{QUARANTINE_BUCKET}.{key}"), || async {
        kv.get(&key)
            .await
            .ok()
            .flatten()
            .is_some_and(|v| String::from_utf8_lossy(&v).contains("\"seq\""))
    })
    .await;

    let (code, report, out) = audit_cli_with(&nats.url(), &["--no-projection"]).await;
    assert_eq!(code, 1, "the message is still an error: {out}");
    let unreadable = findings_of(&report, "unreadable");
    assert!(
        unreadable
            .iter()
            .any(|f| f["order"] == o.as_str() && f["sequence"] == broken),
        "{report:#}"
    );
    assert!(findings_of(&report, "quarantined").is_empty(), "{report:#}");
    let read = journal.read_order(&o).await;
    assert!(
        matches!(read, Err(paystate_journal::ReadError::Corrupt { sequence, .. }) if sequence == broken),
        "readers still refuse the order: {read:?}"
    );
    let outcome = client
        .send(&env(&o, start()), WAIT)
        .await
        .expect("answered");
    assert_eq!(
        outcome.rejection_code(),
        Some(paystate_events::RejectionCode::OrderUnreadable)
    );

    // An operator's decision still counts.
    let seq = broken.to_string();
    let args = [
        "quarantine",
        o.as_str(),
        &seq,
        "--operator",
        "ops-1",
        "--reason",
        "junk",
    ];
    let (code, out, err) = paystate_cli(&nats.url(), &args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(journal.read_order(&o).await.expect("readable").len(), 1);
    let (code, report, out) = audit_cli_with(&nats.url(), &["--no-projection"]).await;
    assert_eq!(code, 0, "quarantined: a warning: {out}");
    assert!(
        findings_of(&report, "quarantined")
            .iter()
            .any(|f| f["order"] == o.as_str() && f["sequence"] == broken),
        "{report:#}"
    );
}

/// A stray (a broker's answer stored on an order's log) and a quarantined message are left
/// out of an export, which says so; the file imports into a fresh server and the imported log
/// audits clean, each order folding to the state it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_a_stray_and_a_quarantined_message_exports_and_imports_clean() {
    let a = TestNats::start().await;
    let _engine = a.engine().await;
    let client = a.client().await;
    let journal_a = a.journal().await;
    let (o, q) = (order("exp-stray"), order("exp-quarantined"));
    for target in [&o, &q] {
        accept(&client, env(target, create(10_000))).await;
    }
    let log = journal_a.stream().clone();
    let subject = events_subject(&o);
    plant_pub_ack(&a, subject.clone(), || async {
        log.get_last_raw_message_by_subject(&subject)
            .await
            .is_ok_and(|m| m.headers.get(HASH_HEADER).is_none())
    })
    .await;
    let broken = write_broken_commit(journal_a.context(), &q).await;
    let seq = broken.to_string();
    let args = [
        "quarantine",
        q.as_str(),
        &seq,
        "--operator",
        "ops-1",
        "--reason",
        "junk",
    ];
    let (code, out, err) = paystate_cli(&a.url(), &args).await;
    assert_eq!(code, 0, "{out}{err}");
    for target in [&o, &q] {
        accept(&client, env(target, start())).await;
    }
    let (code, report, out) = audit_cli_with(&a.url(), &["--no-projection"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(findings_of(&report, "stray").len(), 1, "{report:#}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    let (code, _, err) = paystate_cli(&a.url(), &["export", "--out", file_arg]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("left out 1 strays and 1 quarantined"),
        "the export says what it left out: {err}"
    );
    let lines = std::fs::read_to_string(&file)
        .expect("export")
        .lines()
        .count();
    assert_eq!(lines, 4, "two commits of each order");
    let b = TestNats::start().await;
    let (code, _, err) = paystate_cli(&b.url(), &["import", file_arg, "--quiet"]).await;
    assert_eq!(code, 0, "import: {err}");
    let (code, report, out) = audit_cli_with(&b.url(), &["--no-projection"]).await;
    assert_eq!(code, 0, "the imported log audits clean: {out}");
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    let journal_b = b.journal().await;
    for target in [&o, &q] {
        let was = journal_a.load(target).await.expect("a").state;
        let is = journal_b.load(target).await.expect("b").state;
        assert_eq!(is, was, "{target} folds to the state it had");
        assert_eq!(is.map(|s| s.commits), Some(2));
    }
}
