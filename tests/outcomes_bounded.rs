//! Outcomes stay bounded and stay the original: an order at the commit bound, with
//! 128-character command ids, still answers every command, and a retry gets its original
//! outcome, rebuilt from its commit in the log, not the order's state today. Since decision
//! 0013 nothing of an existing order is stored in the outcome bucket: accepted commands and
//! rejections (logged as `command_rejected` commits) are answered from the log.

mod support;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use async_nats::HeaderMap;
use paystate_engine::{apply_commit, decide, Decision, COMMITS_PER_ORDER_MAX};
use paystate_events::limits::{COMMAND_ID_LEN_MAX, OUTCOME_BYTES_MAX};
use paystate_events::subjects::{events_subject, COMMIT_HEADER, HASH_HEADER, OUTCOMES_BUCKET};
use paystate_events::{
    CommandEnvelope, Commit, OrderId, OrderState, Outcome, RejectionCode, SignalKind, Status,
};
use paystate_journal::EncodedCommit;
use paystate_service::outcomes::{key, Outcomes};
use std::collections::VecDeque;
use std::time::Instant;
use support::*;

/// Commands the last part of the test sends through the engine (the rest is written to the
/// log directly, the way `bench_fill` does).
const THROUGH_ENGINE: u64 = 5;
/// Publishes in flight while filling the log.
const PUBLISH_WINDOW: usize = 512;

/// A command id of exactly [`COMMAND_ID_LEN_MAX`] characters.
fn long_id(n: u64) -> String {
    let head = format!("cmd-{n:06}-");
    format!("{head}{}", "x".repeat(COMMAND_ID_LEN_MAX - head.len()))
}

/// The `n`-th command of the long order: create, start, authorized, then provider reports
/// (the same authorization again as a duplicate, and every 50th a review request, so the
/// order also collects far more discrepancies than a view lists).
fn nth_command(order: &OrderId, n: u64) -> CommandEnvelope {
    let command = match n {
        1 => create(10_000),
        2 => start(),
        3 => authorized(),
        n if n % 50 == 0 => signal(
            SignalKind::NeedsReview {
                reason: format!("review {n}: {}", "r".repeat(300)),
            },
            &format!("ev-review-{n}-{}", "e".repeat(300)),
        ),
        n => signal(
            SignalKind::Authorized { amount: None },
            &format!("ev-dup-{n}"),
        ),
    };
    env_with_id(order, &long_id(n), command)
}

/// Decides and folds commits 1..=`commits` in process and appends them (pipelined).
async fn fill(js: &jetstream::Context, order: &OrderId, commits: u64) -> OrderState {
    fill_from(js, order, None, commits).await
}

/// [`fill`] on from `state` (the order's commits so far) up to commit `commits`.
async fn fill_from(
    js: &jetstream::Context,
    order: &OrderId,
    mut state: Option<OrderState>,
    commits: u64,
) -> OrderState {
    let first = state.as_ref().map_or(1, |s| s.commits + 1);
    let mut inflight: VecDeque<PublishAckFuture> = VecDeque::new();
    for n in first..=commits {
        let env = nth_command(order, n);
        let events = match decide(state.as_ref(), &env, env.issued_at) {
            Ok(Decision::Commit(events)) => events,
            other => panic!("command {n} was not decided into a commit: {other:?}"),
        };
        let (fingerprint, decided_at) = (env.fingerprint(), env.issued_at);
        let encoded = EncodedCommit::new(Commit::after(
            state.as_ref(),
            env,
            fingerprint,
            decided_at,
            events,
        ));
        state = Some(apply_commit(state, &encoded.commit, &encoded.hash).expect("folds"));
        let mut headers = HeaderMap::new();
        headers.insert(HASH_HEADER, encoded.hash.as_str());
        headers.insert(COMMIT_HEADER, encoded.commit.commit.to_string().as_str());
        let message = PublishMessage::build()
            .payload(encoded.bytes.clone().into())
            .headers(headers)
            .message_id(format!("{order}:{}", encoded.commit.command.command_id));
        if inflight.len() >= PUBLISH_WINDOW {
            if let Some(ack) = inflight.pop_front() {
                ack.await.expect("appended");
            }
        }
        let ack = js.send_publish(events_subject(order), message).await;
        inflight.push_back(ack.expect("published"));
    }
    while let Some(ack) = inflight.pop_front() {
        ack.await.expect("appended");
    }
    state.expect("an order")
}

/// The outcome bucket's raw entry for a command.
async fn bucket_entry(js: &jetstream::Context, env: &CommandEnvelope) -> Option<Vec<u8>> {
    let kv = js
        .get_key_value(OUTCOMES_BUCKET)
        .await
        .expect("outcome bucket");
    let entry = kv.get(key(&env.order_id, &env.command_id)).await;
    entry.expect("bucket readable").map(|b| b.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_at_the_commit_bound_answers_every_command() {
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = journal.context().clone();
    let o = order("bound");
    let prefilled = COMMITS_PER_ORDER_MAX - THROUGH_ENGINE;
    let started = Instant::now();
    let full_state = fill(&js, &o, prefilled).await;
    let filled_in = started.elapsed();
    // The engine's own state of this order is far beyond an outcome: what must not travel.
    let full_bytes = serde_json::to_vec(&full_state).expect("json").len();
    assert!(
        full_bytes > OUTCOME_BYTES_MAX,
        "full state is {full_bytes} bytes"
    );

    let engine = nats.engine().await;
    let client = nats.client().await;
    let mut largest = 0;
    for n in prefilled + 1..=COMMITS_PER_ORDER_MAX {
        let env = nth_command(&o, n);
        let t = Instant::now();
        let outcome = client.send(&env, WAIT).await.expect("an outcome");
        let Outcome::Accepted { commit, state, .. } = &outcome else {
            panic!("command {n} got {outcome:?}");
        };
        assert_eq!((*commit, state.commits), (n, n));
        assert_eq!(state.status, Status::Authorized);
        assert!(state.discrepancies_count >= n / 50 - 1);
        let reply = serde_json::to_vec(&outcome).expect("json").len();
        assert!(
            bucket_entry(&js, &env).await.is_none(),
            "the log answers it"
        );
        largest = largest.max(reply);
        eprintln!("command {n}: {reply} bytes, answered in {:?}", t.elapsed());
    }
    assert!(largest < 16 * 1024, "outcomes stay small: {largest} bytes");

    // Past the bound: a typed rejection, still an outcome; there is no room to log it, so it
    // is not stored anywhere and its retry is decided again (the same answer).
    let over = nth_command(&o, COMMITS_PER_ORDER_MAX + 1);
    for _ in 0..2 {
        let outcome = client.send(&over, WAIT).await.expect("an outcome");
        assert_eq!(
            outcome.rejection_code(),
            Some(RejectionCode::OrderHistoryFull)
        );
        assert!(!outcome.is_duplicate());
    }
    assert!(bucket_entry(&js, &over).await.is_none());
    let stored = journal.load(&o).await.expect("load");
    assert_eq!(stored.state.map(|s| s.commits), Some(COMMITS_PER_ORDER_MAX));

    // A retry of an early command (its outcome never stored: it was written directly) is
    // answered from the log with its original commit, its state right after it.
    let early = nth_command(&o, 3);
    let outcome = client.send(&early, WAIT).await.expect("an outcome");
    let Outcome::Accepted {
        commit,
        state,
        duplicate,
        ..
    } = &outcome
    else {
        panic!("retry got {outcome:?}");
    };
    assert_eq!((*commit, state.commits, *duplicate), (3, 3, true));
    eprintln!(
        "filled {prefilled} commits in {filled_in:?}; full state {full_bytes} bytes; largest outcome {largest} bytes"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_its_original_outcome_from_the_log_not_todays_state() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    let js = jetstream::new(nats.connect().await);
    let o = order("original");
    accept(&client, env(&o, create(10_000))).await;
    accept(&client, env(&o, start())).await;
    accept(&client, env(&o, authorized())).await;
    let cap = env_with_id(&o, &long_id(7), capture(Some(4_000)));
    let first = client.send(&cap, WAIT).await.expect("an outcome");
    let Outcome::Accepted { state, .. } = &first else {
        panic!("capture got {first:?}");
    };
    assert_eq!(state.status, Status::Authorized);
    assert!(state.capture_pending.is_some());
    // A refund before the capture is refused; the refusal is logged (decision 0013).
    let refund_early = env_with_id(&o, &long_id(8), refund(Some(100)));
    let refused = client.send(&refund_early, WAIT).await.expect("an outcome");
    assert_eq!(
        refused.rejection_code(),
        Some(RejectionCode::InvalidTransition)
    );
    // The order moves on: the provider reports the capture.
    let now = accept(&client, env(&o, captured(4_000))).await;
    assert_eq!(now.status, Status::Captured);

    let retry = client.send(&cap, WAIT).await.expect("an outcome");
    assert!(retry.is_duplicate());
    let Outcome::Accepted {
        state,
        commit,
        events,
        ..
    } = &retry
    else {
        panic!("retry got {retry:?}");
    };
    let Outcome::Accepted {
        state: first_state,
        commit: first_commit,
        events: first_events,
        ..
    } = &first
    else {
        unreachable!()
    };
    assert_eq!(
        (state, commit, events),
        (first_state, first_commit, first_events)
    );
    assert_eq!(
        state.status,
        Status::Authorized,
        "the original, not today's state"
    );
    // The refund's retry is its logged rejection, although a refund is allowed today.
    let again = client.send(&refund_early, WAIT).await.expect("an outcome");
    assert_eq!(
        (again.rejection_code(), again.is_duplicate()),
        (Some(RejectionCode::InvalidTransition), true)
    );
    // None of it is in the outcome bucket.
    for env in [&cap, &refund_early] {
        assert!(bucket_entry(&js, env).await.is_none(), "{}", env.command_id);
    }
    engine.shutdown().await;
}

/// The batched read returns exactly what one request per commit returns: every commit, in
/// order, across several batches, from the start or from the middle; a message that is not a
/// commit fails both reads until an operator quarantines it, then both skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_agree_with_one_request_per_commit() {
    use paystate_journal::quarantine;
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = journal.context().clone();
    let (a, b) = (order("batched"), order("other"));
    let state = fill(&js, &a, 1_500).await;
    fill(&js, &b, 10).await;
    let garbage = write_broken_commit(&js, &a).await;
    fill_from(&js, &a, Some(state), 2_600).await;

    let same = |x: &paystate_journal::OrderTail, y: &paystate_journal::OrderTail| {
        let seqs = |t: &paystate_journal::OrderTail| {
            t.commits
                .iter()
                .map(|c| (c.sequence, c.hash.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!((seqs(x), x.last_seq), (seqs(y), y.last_seq));
    };
    let unreadable = journal.read_order_tail(&a, 1).await;
    assert!(
        matches!(unreadable, Err(paystate_journal::ReadError::Corrupt { sequence, .. }) if sequence == garbage),
        "{unreadable:?}"
    );
    assert!(journal.read_order_tail_one_by_one(&a, 1).await.is_err());

    let kv = quarantine::ensure(&js, 1).await.expect("quarantine bucket");
    let decision = quarantine::QuarantineEntry {
        operator: "test".into(),
        reason: "not a commit".into(),
        at: chrono::Utc::now(),
    };
    let decision = serde_json::to_vec(&decision).expect("json");
    kv.put(quarantine::key(&a, garbage), decision.into())
        .await
        .expect("quarantined");
    let t = Instant::now();
    let batched = journal.read_order_tail(&a, 1).await.expect("batched read");
    let batched_in = t.elapsed();
    let t = Instant::now();
    let one_by_one = journal
        .read_order_tail_one_by_one(&a, 1)
        .await
        .expect("read");
    let one_by_one_in = t.elapsed();
    same(&batched, &one_by_one);
    assert_eq!(batched.commits.len(), 2_600);
    let loaded = journal.load(&a).await.expect("load");
    assert_eq!(loaded.state.map(|s| s.commits), Some(2_600));
    eprintln!("2,600 commits: batched {batched_in:?}, one request per commit {one_by_one_in:?}");

    let middle = batched.commits[1_234].sequence;
    same(
        &journal.read_order_tail(&a, middle).await.expect("tail"),
        &journal
            .read_order_tail_one_by_one(&a, middle)
            .await
            .expect("tail"),
    );
    let past = batched.last_seq + 1;
    let empty = journal.read_order_tail(&a, past).await.expect("empty tail");
    assert!(empty.commits.is_empty());
    assert_eq!(empty.last_seq, batched.last_seq);
}

/// The engine snapshots an order every `SNAPSHOT_EVERY_COMMITS` commits; a load from the
/// snapshot plus the commits after it equals the whole read; a snapshot that does not match
/// the log's hash chain is not used (the whole order is read instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_plus_the_tail_loads_what_the_whole_log_folds_to() {
    use paystate_service::snapshots::{self, SNAPSHOT_EVERY_COMMITS};
    let nats = TestNats::start().await;
    let journal = nats.journal().await;
    let js = journal.context().clone();
    let o = order("snap");
    let before = SNAPSHOT_EVERY_COMMITS - 1;
    fill(&js, &o, before).await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    for n in before + 1..=before + 7 {
        let outcome = client
            .send(&nth_command(&o, n), WAIT)
            .await
            .expect("outcome");
        assert!(matches!(outcome, Outcome::Accepted { commit, .. } if commit == n));
    }
    engine.shutdown().await;
    let outcomes = Outcomes::open(&js, 1).await.expect("bucket");
    let raw = outcomes.get_raw(&snapshots::key(&o)).await.expect("read");
    let snap: snapshots::Snapshot =
        serde_json::from_slice(&raw.expect("the engine wrote a snapshot")).expect("snapshot");
    assert_eq!(snap.state.commits, SNAPSHOT_EVERY_COMMITS);

    let whole = journal.load(&o).await.expect("whole read");
    let from_snapshot = snapshots::load(&journal, &outcomes, &o)
        .await
        .expect("load");
    assert_eq!(from_snapshot.state, whole.state);
    assert_eq!(from_snapshot.last_seq, whole.last_seq);

    // A snapshot whose state does not end where the log says is ignored.
    let mut forged = snap.state.clone();
    forged.captured = paystate_events::MinorUnits(10_000);
    forged.head_hash = "0".repeat(64);
    snapshots::put(&outcomes, snap.commit_seq, &forged)
        .await
        .expect("written");
    let loaded = snapshots::load(&journal, &outcomes, &o)
        .await
        .expect("load");
    assert_eq!(loaded.state, whole.state);

    // A fresh engine (cache miss) answers from snapshot + tail like from the whole log.
    snapshots::put(&outcomes, snap.commit_seq, &snap.state)
        .await
        .expect("written");
    let engine = nats.engine().await;
    let n = before + 8;
    let outcome = client
        .send(&nth_command(&o, n), WAIT)
        .await
        .expect("outcome");
    let Outcome::Accepted { commit, state, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!((*commit, state.commits), (n, n));
    engine.shutdown().await;
}
