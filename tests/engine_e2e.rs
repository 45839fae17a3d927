//! The engine through a real nats-server: lifecycle, concurrency, idempotency, bad input,
//! commands published while no engine runs, several engines on one stream.

mod support;

use paystate_engine::check_invariants;
use paystate_events::{Outcome, RejectionCode, Status};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_through_nats_matches_the_log() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("life");
    accept(&client, env(&o, create(10_000))).await;
    assert_eq!(
        accept(&client, env(&o, start())).await.status,
        Status::Pending
    );
    assert_eq!(
        accept(&client, env(&o, authorized())).await.status,
        Status::Authorized
    );
    accept(&client, env(&o, capture(Some(6_000)))).await;
    assert_eq!(
        accept(&client, env(&o, captured(6_000))).await.status,
        Status::Captured
    );
    let refund_cmd = env(&o, refund(Some(2_500)));
    let refund_id = refund_cmd.command_id.to_string();
    accept(&client, refund_cmd).await;
    let done = paystate_events::SignalKind::Refunded {
        refund_id: Some(refund_id),
        amount: None,
    };
    let last = accept(&client, env(&o, signal(done, "ev-refund"))).await;
    assert_eq!(
        (last.captured.0, last.refunded.0, last.status),
        (6_000, 2_500, Status::Captured)
    );
    let loaded = nats.journal().await.load(&o).await.expect("load");
    assert_eq!(
        loaded.state.as_ref().map(paystate_events::StateView::of),
        Some(last.clone()),
        "state read back from the log equals the engine's (its bounded view)"
    );
    assert_eq!(last.commits, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_hammering_one_order_lose_nothing() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("hammer");
    for cmd in [create(100_000), start(), authorized()] {
        accept(&client, env(&o, cmd)).await;
    }
    // 8 concurrent captures: exactly one may win.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let (c, o) = (client.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            c.send(&env(&o, capture(Some(50_000 + i))), WAIT).await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.expect("task").expect("every command answered") {
            Outcome::Accepted { events, .. } => won.push(events),
            Outcome::Rejected { code, .. } => assert_eq!(code, RejectionCode::OperationInProgress),
        }
    }
    assert_eq!(won.len(), 1, "exactly one capture accepted");
    let paystate_events::Event::CaptureRequested { amount, .. } = &won[0][0] else {
        panic!("capture requested")
    };
    accept(&client, env(&o, captured(amount.minor_units.get()))).await;
    let captured_total = amount.minor_units.get();
    // 8 clients x 25 refunds of varying size: no lost update, nothing over-refunded.
    let mut tasks = Vec::new();
    for client_no in 0..8u64 {
        let (c, o) = (client.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            for i in 0..25u64 {
                let minor = 100 + (client_no * 37 + i * 53) % 900;
                match c
                    .send(&env(&o, refund(Some(minor))), WAIT)
                    .await
                    .expect("answered")
                {
                    Outcome::Accepted { .. } => accepted += minor,
                    Outcome::Rejected { code, .. } => {
                        assert_eq!(code, RejectionCode::AmountExceedsRefundable)
                    }
                }
            }
            accepted
        }));
    }
    let mut requested = 0;
    for t in tasks {
        requested += t.await.expect("task");
    }
    let commits = nats.journal().await.read_order(&o).await.expect("read");
    assert_each_command_once(&commits);
    let state = paystate_journal::read::fold(&o, &commits)
        .expect("fold")
        .expect("exists");
    assert!(
        check_invariants(&state).is_empty(),
        "{:?}",
        check_invariants(&state)
    );
    let pending: u64 = state.refunds_pending.values().map(|m| m.0).sum();
    assert_eq!(
        pending, requested,
        "every accepted refund is in the log exactly once"
    );
    assert!(pending <= captured_total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_command_ids_have_the_effect_of_once() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("dup");
    let first = env_with_id(&o, "create-1", create(5_000));
    let a = client.send(&first, WAIT).await.expect("outcome");
    let b = client.send(&first, WAIT).await.expect("outcome");
    assert!(!a.is_duplicate() && b.is_duplicate());
    let (
        Outcome::Accepted {
            events: ea,
            commit: ca,
            ..
        },
        Outcome::Accepted {
            events: eb,
            commit: cb,
            ..
        },
    ) = (&a, &b)
    else {
        panic!("both accepted: {a:?} {b:?}")
    };
    assert_eq!((ea, ca), (eb, cb), "the retry gets the same outcome");
    let other_body = env_with_id(&o, "create-1", create(7_000));
    let c = client.send(&other_body, WAIT).await.expect("outcome");
    assert_eq!(
        c.rejection_code(),
        Some(RejectionCode::IdempotencyKeyReused)
    );
    // A rejected command retried gets the same rejection, even after the state changed.
    let early = env_with_id(&o, "capture-early", capture(None));
    let r1 = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(r1.rejection_code(), Some(RejectionCode::InvalidTransition));
    for cmd in [start(), authorized()] {
        accept(&client, env(&o, cmd)).await;
    }
    let r2 = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(r2.rejection_code(), Some(RejectionCode::InvalidTransition));
    assert!(r2.is_duplicate());
    // The rejection lives in the order's log (decision 0013); its retry wrote nothing.
    let commits = nats.journal().await.read_order(&o).await.expect("read");
    let names: Vec<Vec<&str>> = commits
        .iter()
        .map(|c| c.commit.events.iter().map(|e| e.name()).collect())
        .collect();
    assert_eq!(
        names,
        [
            vec!["order_created"],
            vec!["command_rejected"],
            vec!["payment_requested"],
            vec!["payment_authorized"]
        ],
        "create, the rejected capture, start, authorized: nothing else written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_typed_rejection_and_writes_nothing() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let base = r#"{"command_id":"c-1","order_id":"bad-1","issued_at":"2026-11-22T10:00:00Z","type":"create_order","merchant_reference":"m","amount":{"minor_units":AMOUNT,"currency":"CUR"},"provider":"plural","capture_mode":"manual"}"#;
    let body = |amount: &str, currency: &str| {
        base.replace("AMOUNT", amount)
            .replace("CUR", currency)
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, RejectionCode)> = vec![
        (
            "malformed json",
            b"{\"type\": ".to_vec(),
            RejectionCode::MalformedJson,
        ),
        (
            "unknown type",
            br#"{"type":"teleport","command_id":"c","order_id":"bad-1"}"#.to_vec(),
            RejectionCode::UnknownCommand,
        ),
        (
            "missing fields",
            br#"{"type":"capture","order_id":"bad-1"}"#.to_vec(),
            RejectionCode::MissingField,
        ),
        (
            "zero amount",
            body("0", "USD"),
            RejectionCode::InvalidAmount,
        ),
        (
            "negative amount",
            body("-100", "USD"),
            RejectionCode::InvalidAmount,
        ),
        (
            "fractional amount",
            body("10.5", "USD"),
            RejectionCode::InvalidAmount,
        ),
        (
            "overflowing amount",
            body("184467440737095516150", "USD"),
            RejectionCode::AmountOverflow,
        ),
        (
            "unknown currency",
            body("100", "ABC"),
            RejectionCode::UnknownCurrency,
        ),
        (
            "oversize",
            vec![b' '; 100 * 1024],
            RejectionCode::CommandTooLarge,
        ),
        (
            "bad command id",
            base.replace("\"c-1\"", "\"c 1\"")
                .replace("AMOUNT", "1")
                .replace("CUR", "USD")
                .into_bytes(),
            RejectionCode::InvalidId,
        ),
    ];
    for (name, bytes, want) in cases {
        let outcome = client
            .send_raw("bad-1", bytes, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.rejection_code(), Some(want), "{name}: {outcome:?}");
    }
    let mismatch = client
        .send_raw("bad-2", body("100", "USD"), WAIT)
        .await
        .expect("outcome");
    assert_eq!(
        mismatch.rejection_code(),
        Some(RejectionCode::SubjectMismatch)
    );
    let journal = nats.journal().await;
    let info = journal.stream().get_info().await.expect("info");
    assert_eq!(info.state.messages, 0, "no bad input wrote an event");
    // The engine is still healthy.
    accept(&client, env(&order("after-bad"), create(100))).await;
}

/// A command whose last attempt ends on an append the log already holds (its own earlier
/// write under the same message id, or an acknowledgement that was lost) is answered from the
/// log: with no conflict retries and one delivery allowed, the engine gave it up instead —
/// dead-lettered, and the caller told `dead_lettered` ("nothing was written") while the log
/// held its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_last_attempt_finds_it_committed_is_answered_from_the_log() {
    use paystate_engine::{decide, Decision};
    use paystate_events::Commit;
    use paystate_journal::EncodedCommit;
    let nats = TestNats::start().await;
    let cfg = paystate_service::EngineConfig {
        conflict_retries_max: 0,
        deliveries_max: 1,
        ..engine_config()
    };
    let _engine = paystate_service::run_engine(nats.connect().await, log_settings(), cfg)
        .await
        .expect("engine starts");
    let queue = paystate_service::Client::queue(nats.connect().await);
    // Given an order the engine holds in its cache ...
    let o = order("settle");
    accept(&queue, env(&o, create(1_000))).await;
    // ... and its start committed behind the engine's cache, under the message id the
    // engine's own append of that command would carry ...
    let start_env = env(&o, start());
    let journal = nats.journal().await;
    let loaded = journal.load(&o).await.expect("load");
    let events = match decide(loaded.state.as_ref(), &start_env, start_env.issued_at) {
        Ok(Decision::Commit(events)) => events,
        other => panic!("a commit: {other:?}"),
    };
    let encoded = EncodedCommit::new(Commit::after(
        loaded.state.as_ref(),
        start_env.clone(),
        start_env.fingerprint(),
        start_env.issued_at,
        events,
    ));
    journal
        .append(&encoded, loaded.last_seq)
        .await
        .expect("appended");
    // ... when the start is sent, its one attempt's append is answered as a duplicate (no
    // retry left), then it is answered from the log, accepted, not dead-lettered.
    let outcome = queue.send(&start_env, WAIT).await.expect("an outcome");
    assert!(
        matches!(
            outcome,
            Outcome::Accepted {
                duplicate: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    let js = async_nats::jetstream::new(nats.connect().await);
    let dead = paystate_journal::dead_letters::list(&js, &Default::default())
        .await
        .expect("dead letters");
    assert!(dead.letters.is_empty(), "{:?}", dead.letters);
}

/// On the queue path a publish larger than any command is refused by the broker before it
/// is stored (an engine holds up to `ack_pending_max` queued commands: none may be larger
/// than a command), with an error that says so; the fast path answers `command_too_large`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_publish_larger_than_a_command_is_refused_before_it_is_stored() {
    use paystate_events::limits::QUEUED_COMMAND_BYTES_MAX;
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let queue = paystate_service::Client::queue(nats.connect().await);
    let big = vec![b' '; QUEUED_COMMAND_BYTES_MAX + 1];
    let refused = queue.send_raw("big-1", big.clone(), WAIT).await;
    match refused {
        Err(paystate_service::ClientError::NotAccepted(why)) => {
            assert!(why.to_lowercase().contains("size"), "{why}")
        }
        other => panic!("refused by the broker, got {other:?}"),
    }
    let js = async_nats::jetstream::new(nats.connect().await);
    let mut commands = js
        .get_stream(paystate_events::subjects::COMMANDS_STREAM)
        .await
        .expect("command stream");
    let info = commands.info().await.expect("info");
    assert_eq!(info.state.messages, 0, "nothing stored");
    let fast = nats.client().await;
    let outcome = fast.send_raw("big-1", big, WAIT).await.expect("an outcome");
    assert_eq!(
        outcome.rejection_code(),
        Some(RejectionCode::CommandTooLarge)
    );
    // A command at the limit still goes through the queue (refused by the engine, as ever).
    let at_limit = vec![b' '; paystate_events::limits::COMMAND_BYTES_MAX];
    let outcome = queue
        .send_raw("big-1", at_limit, WAIT)
        .await
        .expect("an outcome");
    assert_eq!(outcome.rejection_code(), Some(RejectionCode::MalformedJson));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_published_while_no_engine_runs_are_processed_when_one_starts() {
    let nats = TestNats::start().await;
    // Create the streams (as any engine or `paystate run` would), then stop the engine.
    nats.engine().await.shutdown().await;
    let client = nats.client().await;
    let orders: Vec<_> = (0..20).map(|i| order(&format!("offline{i}"))).collect();
    for o in &orders {
        client
            .publish(&env(o, create(1_000)))
            .await
            .expect("broker accepts");
        client
            .publish(&env(o, start()))
            .await
            .expect("broker accepts");
    }
    let _engine = nats.engine().await;
    let journal = nats.journal().await;
    for o in &orders {
        let commits = wait_for_commits(&journal, o, 2).await;
        let state = paystate_journal::read::fold(o, &commits)
            .expect("fold")
            .expect("exists");
        assert_eq!(state.status, Status::Pending);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engine_instances_share_the_order_space() {
    let nats = TestNats::start().await;
    let _a = nats.engine().await;
    let _b = nats.engine().await;
    let client = nats.client().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let o = order(&format!("multi{i}"));
            for cmd in [
                create(9_000),
                start(),
                authorized(),
                capture(Some(9_000)),
                captured(9_000),
            ] {
                accept(&c, env(&o, cmd)).await;
            }
            for _ in 0..3 {
                accept(&c, env(&o, refund(Some(1_000)))).await;
            }
            o
        }));
    }
    let journal = nats.journal().await;
    for t in tasks {
        let o = t.await.expect("task");
        let commits = journal.read_order(&o).await.expect("read");
        assert_each_command_once(&commits);
        let s = paystate_journal::read::fold(&o, &commits)
            .expect("fold")
            .expect("exists");
        assert_eq!((s.commits, s.refunds_pending.len()), (8, 3));
        assert!(check_invariants(&s).is_empty());
    }
}

/// The queue path hears the broker's answer to its publish on the reply inbox it waits on:
/// a publish no stream takes, or one the stream refuses, fails at once with the broker's
/// reason (not after the caller's wait); a stored one waits for its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_client_hears_the_brokers_refusal_at_once() {
    use async_nats::jetstream::stream;
    use paystate_service::client::{Client, ClientError};
    use std::time::{Duration, Instant};

    let nats = TestNats::start().await;
    let client = Client::queue(nats.connect().await);
    let o = order("refused");
    let wait = Duration::from_secs(20);
    // No stream yet: nothing stores the subject.
    let started = Instant::now();
    let sent = client.send(&env(&o, create(100)), wait).await;
    assert!(
        matches!(&sent, Err(ClientError::NotAccepted(why)) if why.contains("no stream")),
        "{sent:?}"
    );
    let published = client.publish(&env(&o, create(100))).await;
    assert!(
        matches!(&published, Err(ClientError::NotAccepted(why)) if why.contains("no stream")),
        "{published:?}"
    );
    // A stream that takes one message and refuses the next.
    let js = async_nats::jetstream::new(nats.connect().await);
    js.create_stream(stream::Config {
        name: "ONE_ONLY".into(),
        subjects: vec!["paystate.cmd.>".into()],
        max_messages: 1,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .expect("stream");
    client
        .publish(&env(&o, create(100)))
        .await
        .expect("the first is stored");
    let sent = client.send(&env(&o, start()), wait).await;
    assert!(
        matches!(&sent, Err(ClientError::NotAccepted(why)) if why.contains("maximum messages")),
        "{sent:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusals answered at once, not after the wait: {:?}",
        started.elapsed()
    );
}
