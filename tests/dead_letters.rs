//! Dead letters end to end (issue 12): a poison message in each consumer (engine, adapter
//! workers, projector, reconciler) lands in the dead-letter stream after its delivery bound,
//! with its reason; the order's later messages are still applied in order; `paystate dlq
//! list | show | redrive` finds it and, once its cause is fixed, applies it.

mod support;

use async_nats::jetstream;
use futures::StreamExt;
use paystate_events::subjects::{command_subject, events_subject, OUTCOMES_BUCKET, REPLY_HEADER};
use paystate_events::{Outcome, Provider, RejectionCode, Status};
use paystate_journal::dead_letters::{self, DeadLetter, DeadLetterFilter, Source};
use paystate_service::{run_engine, EngineConfig};
use std::time::{Duration, Instant};
use support::quiet::wait_quiet;
use support::*;

/// Dead letters of `source` for `order` (not yet redriven), waiting up to [`WAIT`] for `n`.
async fn letters(
    js: &jetstream::Context,
    source: Source,
    order: &str,
    n: usize,
) -> Vec<DeadLetter> {
    let started = Instant::now();
    loop {
        let filter = DeadLetterFilter {
            source: Some(source),
            order: Some(order.to_string()),
            ..Default::default()
        };
        let page = dead_letters::list(js, &filter).await.expect("list");
        if page.letters.len() >= n {
            return page.letters;
        }
        assert!(
            started.elapsed() < WAIT,
            "{n} {source} dead letters for {order} expected, found {:?}",
            page.letters
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The engine: while every outcome lookup fails, a capture (A) for an order that does not
/// exist yet (the one path that reads the outcome bucket, decision 0013) is tried
/// `deliveries_max` times in-process, holding its order's queue, then dead-lettered; its
/// caller gets `dead_lettered`. The order's create (B), start (C) and authorization (D),
/// queued behind it, are applied only after A was set aside, in order. `paystate dlq
/// redrive` then applies A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_poison_is_set_aside_and_the_orders_next_commands_follow_in_order() {
    let nats = TestNats::start().await;
    let cfg = EngineConfig {
        deliveries_max: 3,
        retry_later: Duration::from_millis(300),
        conflict_retries_max: 0,
        ack_wait: Duration::from_secs(10),
        ..engine_config()
    };
    let engine = run_engine(nats.connect().await, log_settings(), cfg)
        .await
        .expect("engine");
    let client = nats.client().await;
    let journal = nats.journal().await;
    let raw = nats.connect().await;
    let js = jetstream::new(raw.clone());
    let o = order("poison-engine");
    js.delete_key_value(OUTCOMES_BUCKET)
        .await
        .expect("outcome bucket deleted: every lookup fails");
    let inbox = raw.new_inbox();
    let mut replies = raw.subscribe(inbox.clone()).await.expect("inbox");
    let a = env_with_id(&o, "a-capture", capture(Some(500)));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(REPLY_HEADER, inbox.as_str());
    js.publish_with_headers(
        command_subject(&o),
        headers,
        serde_json::to_vec(&a).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let b = env_with_id(&o, "b-create", create(1_000));
    let c = env_with_id(&o, "c-start", start());
    let d = env_with_id(&o, "d-authorized", authorized());
    for cmd in [&b, &c, &d] {
        client.publish(cmd).await.expect("queued");
    }

    let answer = tokio::time::timeout(WAIT, replies.next())
        .await
        .expect("A is answered")
        .expect("reply");
    let outcome: Outcome = serde_json::from_slice(&answer.payload).expect("outcome");
    assert_eq!(outcome.rejection_code(), Some(RejectionCode::DeadLettered));
    paystate_service::outcomes::Outcomes::open(&js, 1)
        .await
        .expect("outcome bucket back");

    let commits = wait_for_commits(&journal, &o, 3).await;
    let ids: Vec<&str> = commits
        .iter()
        .map(|c| c.commit.command.command_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["b-create", "c-start", "d-authorized"],
        "B, C, D in order, A not applied"
    );
    let dead = letters(&js, Source::Engine, o.as_str(), 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert!(letter.reason.contains("3 deliveries"), "{}", letter.reason);
    assert_eq!(letter.subject, command_subject(&o));
    assert_eq!(letter.consumer, paystate_events::subjects::ENGINE_CONSUMER);
    assert!(
        letter.time <= commits[0].time,
        "B was written only after A was set aside ({} vs {})",
        letter.time,
        commits[0].time
    );

    // The operator's view, then the redrive: A is applied now that its cause is gone.
    let url = nats.url();
    let (code, out, err) = paystate_cli(&url, &["dlq", "list", "--consumer", "engine"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(o.as_str()) && out.contains("3 deliveries"),
        "{out}"
    );
    let seq = letter.seq.to_string();
    let (code, out, err) = paystate_cli(&url, &["dlq", "show", &seq]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("a-capture") && out.contains(REPLY_HEADER),
        "{out}"
    );
    let (code, out, err) = paystate_cli(&url, &["dlq", "redrive", &seq]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&command_subject(&o)), "{out}");
    let commits = wait_for_commits(&journal, &o, 4).await;
    assert_eq!(commits[3].commit.command.command_id.as_str(), "a-capture");
    assert_each_command_once(&commits);
    let (code, out, _) = paystate_cli(&url, &["dlq", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        !out.contains(o.as_str()),
        "a redriven letter is not listed: {out}"
    );
    let (code, _, err) = paystate_cli(&url, &["dlq", "redrive", &seq]).await;
    assert_ne!(code, 0, "a second redrive is refused");
    assert!(err.contains("already redriven"), "{err}");
    engine.shutdown().await;
}

/// The projector: a record it cannot write makes it give the order's new commit back; past
/// its bound the commit is set aside with the reason. Once the bucket is repaired, the
/// order's next commit is projected with everything before it, in order, and a redrive of the
/// dead letter re-projects the order (nothing left to do). (A record holding a value paystate
/// did not write is no poison: it is written over, `projection_e2e`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_poison_is_set_aside_and_the_order_catches_up_in_order() {
    use paystate_projection::{start_projector, ProjectorConfig};
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    let store = projection_store(&nats).await;
    let cfg = ProjectorConfig {
        deliveries_max: 3,
        retry_delay: Duration::from_millis(50),
        ack_wait: Duration::from_secs(5),
        ..Default::default()
    };
    let projector = start_projector(store.clone(), cfg)
        .await
        .expect("projector");
    let js = store.context().clone();
    let o = order("poison-projector");
    accept(&client, env(&o, create(1_000))).await;
    wait_projection_caught_up(&store).await;
    let generation = store.live().await.expect("live");
    let bucket = store.bucket(&generation).await.expect("bucket");
    // The bucket takes no value the size of a record.
    let mut config = bucket.stream.get_info().await.expect("bucket info").config;
    let size_max = config.max_message_size;
    config.max_message_size = 16;
    js.update_stream(&config).await.expect("bucket spoiled");

    accept(&client, env(&o, start())).await;
    let dead = letters(&js, Source::Projector, o.as_str(), 1).await;
    assert!(
        dead[0].reason.contains("3 deliveries") && dead[0].reason.contains("record write failed"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].subject, events_subject(&o));
    assert_eq!(
        projector
            .stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    config.max_message_size = size_max;
    js.update_stream(&config).await.expect("bucket repaired");
    accept(&client, env(&o, authorized())).await;
    wait_projection_caught_up(&store).await;
    let record = store.get(&o).await.expect("read").expect("projected");
    assert_eq!(record.state.commits, 3, "commits 1..3 applied in order");
    assert_eq!(record.state.status, Status::Authorized);

    dead_letters::redrive(&js, dead[0].seq)
        .await
        .expect("redrive");
    wait_quiet(&js).await;
    let again = store.get(&o).await.expect("read").expect("projected");
    assert_eq!(again.seq, record.seq, "nothing left to re-project");
    assert!(letters_left(&js, Source::Projector, o.as_str())
        .await
        .is_empty());
    projector.shutdown().await;
    engine.shutdown().await;
}

async fn letters_left(js: &jetstream::Context, source: Source, order: &str) -> Vec<DeadLetter> {
    let filter = DeadLetterFilter {
        source: Some(source),
        order: Some(order.to_string()),
        ..Default::default()
    };
    dead_letters::list(js, &filter).await.expect("list").letters
}

/// A Plural order waiting for the customer (created, started, challenge shown).
async fn plural_started(ps: &providers::ProviderStack, o: &paystate_events::OrderId) -> String {
    use paystate_events::CaptureMode;
    let create = providers::create_for(Provider::Plural, 10_000, "INR", CaptureMode::Manual);
    accept(&ps.client, env(o, create)).await;
    accept(&ps.client, env(o, start())).await;
    let pending = ps
        .wait_until(o, "waiting for the customer", |s| {
            s.customer_action.is_some()
        })
        .await;
    pending.provider_ref.clone().expect("Plural order id")
}

/// The adapter workers: a capture Plural refuses with 503 every time is tried
/// `deliveries_max` times (the order waits), then set aside with the reason; after the
/// provider recovers, a redrive performs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_poison_is_set_aside_and_a_redrive_performs_it() {
    use paystate_sandbox::{FaultKind, FaultRule, Op};
    use paystate_workers::WorkerConfig;
    let t = tuned::Tuned::start(tuned::Tuning {
        workers: WorkerConfig {
            ack_wait: tuned::TUNED_WORKER_ACK_WAIT,
            deliveries_max: 3,
            retry_delays: vec![Duration::from_millis(100)],
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let ps = &t.ps;
    let js = jetstream::new(ps.nats.connect().await);
    let o = order("poison-worker");
    let plural_order = plural_started(ps, &o).await;
    ps.sandbox
        .approve(Provider::Plural, &plural_order)
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    ps.sandbox.add_fault(
        Provider::Plural,
        FaultRule::once(FaultKind::ServerError { status: 503 })
            .on_op(Op::Capture)
            .times(1_000),
    );
    let capture = paystate_events::Command::Capture {
        amount: providers::money_in(7_000, "INR"),
    };
    accept(&ps.client, env(&o, capture)).await;
    let dead = letters(&js, Source::Workers, o.as_str(), 1).await;
    assert!(
        dead[0].reason.contains("after 3 attempts"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].subject, events_subject(&o));
    wait_quiet(&js).await;
    let waiting = ps
        .journal
        .load(&o)
        .await
        .expect("load")
        .state
        .expect("order");
    assert!(
        waiting.capture_pending.is_some(),
        "not captured, not failed"
    );

    ps.sandbox.clear_faults(Provider::Plural);
    let redriven = dead_letters::redrive(&js, dead[0].seq)
        .await
        .expect("redrive");
    assert!(redriven.to.starts_with("paystate.dead._redrive.workers."));
    let captured = ps.wait_status(&o, Status::Captured).await;
    assert_eq!(captured.captured.0, 7_000);
    assert!(letters_left(&js, Source::Workers, o.as_str())
        .await
        .is_empty());
}

/// The reconciler: a message in an order's log that is not a commit does not fold; it is
/// reported (counted, set aside with the reason) and the order is no longer probed. Once an
/// operator quarantines the message, a redrive makes the reconciler read the order back and
/// probe it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_fold_error_is_set_aside_and_a_redrive_tracks_the_order_again() {
    use paystate_journal::quarantine::{self, QuarantineEntry};
    use paystate_sandbox::{SandboxConfig, TimeScale};
    use paystate_workers::ReconcilerConfig;
    use std::sync::atomic::Ordering::Relaxed;
    let mut cfg = ReconcilerConfig::default();
    cfg.first_probe_after
        .insert(Provider::Plural, Duration::from_millis(300));
    cfg.backoff = vec![Duration::from_millis(300)];
    cfg.final_deadline = Duration::from_secs(600);
    cfg.tick = Duration::from_millis(50);
    let sandbox = SandboxConfig {
        time_scale: TimeScale::MILLIS,
        ..Default::default()
    };
    let ps = providers::ProviderStack::start_with(sandbox, cfg).await;
    let js = jetstream::new(ps.nats.connect().await);
    let o = order("poison-reconciler");
    plural_started(&ps, &o).await;
    let started = Instant::now();
    while probes(&ps, &o).await == 0 {
        assert!(started.elapsed() < WAIT, "probed while waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let broken = write_broken_commit(&js, &o).await;
    let dead = letters(&js, Source::Reconciler, o.as_str(), 1).await;
    assert!(
        dead[0].reason.contains("unreadable commit"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].origin.as_ref().map(|(_, s)| *s), Some(broken));
    let stats = &ps.stack.reconciler.as_ref().expect("reconciler").stats;
    assert_eq!(stats.fold_errors.load(Relaxed), 1);

    let kv = quarantine::ensure(&js, 1).await.expect("quarantine bucket");
    let entry = QuarantineEntry {
        operator: "test".into(),
        reason: "not a commit".into(),
        at: chrono::Utc::now(),
    };
    kv.put(
        quarantine::key(&o, broken),
        serde_json::to_vec(&entry).expect("json").into(),
    )
    .await
    .expect("quarantined");
    let before = probes(&ps, &o).await;
    let loaded = stats.loaded.load(Relaxed);
    dead_letters::redrive(&js, dead[0].seq)
        .await
        .expect("redrive");
    let started = Instant::now();
    while probes(&ps, &o).await <= before {
        assert!(
            started.elapsed() < WAIT,
            "probed again after the redrive (loaded {} → {})",
            loaded,
            stats.loaded.load(Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.loaded.load(Relaxed) > loaded,
        "read back from the log"
    );
}

/// The order's probe signals so far.
async fn probes(ps: &providers::ProviderStack, o: &paystate_events::OrderId) -> usize {
    ps.signals(o)
        .await
        .iter()
        .filter(|s| s.evidence_ref.starts_with("probe:"))
        .count()
}

/// A broker's answer stored on a dead letter's redrive-marker subject (any client can have
/// one stored at any subject of the stream: docs/security.md, Known limits) is no marker: the
/// letter is still listed and can be redriven; once it is, junk stored after its real marker
/// does not bring it back or allow a second redrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_on_a_marker_subject_neither_hides_a_letter_nor_blocks_its_redrive() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let journal = nats.journal().await;
    let js = journal.context().clone();
    let o = order("dl-planted");
    let subject = command_subject(&o);
    let command = env_with_id(&o, "c-create", create(1_000));
    let payload = serde_json::to_vec(&command).expect("json");
    let out = dead_letters::Outgoing {
        source: Source::Engine,
        consumer: paystate_events::subjects::ENGINE_CONSUMER,
        subject: &subject,
        order: None,
        headers: None,
        payload: payload.into(),
        origin: None,
        deliveries: 20,
        reason: "test: set aside",
    };
    let seq = dead_letters::send(&js, &out).await.expect("set aside");
    let marker = format!("paystate.dead.{}.{seq}", dead_letters::REDRIVEN_TOKEN);
    let planted = plant_pub_ack(&nats, &js, &marker).await;

    let listed = letters_left(&js, Source::Engine, o.as_str()).await;
    assert_eq!(
        listed.iter().map(|l| l.seq).collect::<Vec<_>>(),
        [seq],
        "still listed"
    );
    let (code, out, err) = paystate_cli(&nats.url(), &["dlq", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(o.as_str()), "{out}");
    let shown = dead_letters::show(&js, seq).await.expect("show");
    assert_eq!(shown.letter.redriven, None);
    let redriven = dead_letters::redrive(&js, seq).await.expect("redriven");
    assert_eq!(redriven.to, subject);
    let commits = wait_for_commits(&journal, &o, 1).await;
    assert_eq!(commits[0].commit.command.command_id.as_str(), "c-create");

    // Redriven: not listed, and junk stored after the real marker changes nothing.
    assert!(letters_left(&js, Source::Engine, o.as_str())
        .await
        .is_empty());
    let after = plant_pub_ack(&nats, &js, &marker).await;
    assert!(after > planted);
    assert!(letters_left(&js, Source::Engine, o.as_str())
        .await
        .is_empty());
    let again = dead_letters::redrive(&js, seq).await;
    assert!(
        matches!(
            again,
            Err(dead_letters::DeadLetterError::AlreadyRedriven { .. })
        ),
        "{again:?}"
    );
    engine.shutdown().await;
}

/// Has the broker store its answer to a publish (a PubAck, no headers) at `target` of the
/// dead-letter stream, as any client can; returns its sequence there.
async fn plant_pub_ack(nats: &TestNats, js: &jetstream::Context, target: &str) -> u64 {
    let stream = js
        .get_stream(paystate_events::subjects::DEAD_LETTERS_STREAM)
        .await
        .expect("dead-letter stream");
    let before = stream
        .get_last_raw_message_by_subject(target)
        .await
        .map_or(0, |m| m.sequence);
    let raw = nats.connect().await;
    raw.publish_with_reply(
        command_subject(&order("planter")),
        target.to_string(),
        "junk".into(),
    )
    .await
    .expect("publish");
    raw.flush().await.expect("flush");
    let started = Instant::now();
    loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(target).await {
            if m.sequence > before {
                assert!(m.headers.is_empty(), "a PubAck carries no headers");
                assert!(String::from_utf8_lossy(&m.payload).contains("\"seq\""));
                return m.sequence;
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "the broker's answer stored at {target}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
