//! Decision 0013, "rejections live in the order's log" and "idempotency forever, from the
//! log", through a real nats-server: a rejection on an existing order is appended as a
//! `command_rejected` commit; its retry (same bytes) gets the same rejection with
//! `duplicate: true` from the log — after an engine restart (cold cache), after the order
//! moved on, and from a fresh processor; another command id is decided afresh; the audit
//! re-decides the logged rejection. Accepted commands leave nothing in the outcome bucket;
//! a rejection with no order to live in (`order_not_found`) is kept there. A rejection
//! decided on a stale cache conflicts on append and is decided again on the log's tail; past
//! `REJECTIONS_LOGGED_PER_ORDER_MAX` a rejection is answered but not logged.

mod support;

use paystate_events::subjects::OUTCOMES_BUCKET;
use paystate_events::{CommandEnvelope, Event, OrderId, Outcome, RejectionCode, Status, Timestamp};
use paystate_service::cache::OrderCache;
use paystate_service::outcomes::{self, Outcomes};
use paystate_service::processor::{Disposition, Processor, Stats};
use support::*;

/// The rejection's (code, duplicate), or a panic naming what came instead.
fn rejected(outcome: &Outcome) -> (RejectionCode, bool) {
    match outcome {
        Outcome::Rejected {
            code, duplicate, ..
        } => (*code, *duplicate),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The events' names of each commit of the order, in order.
async fn log_of(nats: &TestNats, o: &OrderId) -> Vec<Vec<&'static str>> {
    let commits = nats.journal().await.read_order(o).await.expect("read");
    commits
        .iter()
        .map(|c| c.commit.events.iter().map(Event::name).collect())
        .collect()
}

/// Whether the outcome bucket holds an entry for (order, command).
async fn in_bucket(nats: &TestNats, env: &CommandEnvelope) -> bool {
    let js = async_nats::jetstream::new(nats.connect().await);
    let kv = js.get_key_value(OUTCOMES_BUCKET).await.expect("bucket");
    let key = outcomes::key(&env.order_id, &env.command_id);
    kv.get(key).await.expect("bucket read").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_lives_in_the_log_and_answers_its_retries_on_the_fast_path() {
    rejection_lives_in_the_log(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_lives_in_the_log_and_answers_its_retries_on_the_queue() {
    rejection_lives_in_the_log(true).await;
}

/// The scenario of the module docs, every command on one path (request/reply or queue).
async fn rejection_lives_in_the_log(via_queue: bool) {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    let client = if via_queue {
        client.via_queue()
    } else {
        client
    };
    let o = order("rej");
    let create_cmd = env_with_id(&o, "create-1", create(10_000));
    accept(&client, create_cmd.clone()).await;
    accept(&client, env(&o, start())).await;

    // A capture while the payment is pending is refused, and the refusal is logged.
    let early = env_with_id(&o, "cap-early", capture(None));
    let first = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(rejected(&first), (RejectionCode::InvalidTransition, false));
    let commits = nats.journal().await.read_order(&o).await.expect("read");
    let last = commits.last().expect("commits");
    assert_eq!(last.commit.command.command_id, early.command_id);
    match last.commit.events.as_slice() {
        [Event::CommandRejected { code, message }] => {
            assert_eq!(*code, RejectionCode::InvalidTransition);
            let Outcome::Rejected { message: said, .. } = &first else {
                unreachable!()
            };
            assert_eq!(message, said, "the caller got the logged message");
        }
        other => panic!("expected one command_rejected event, got {other:?}"),
    }

    // The retry is answered from the log, writing nothing.
    let again = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(rejected(&again), (RejectionCode::InvalidTransition, true));
    assert_eq!(
        log_of(&nats, &o).await,
        [
            vec!["order_created"],
            vec!["payment_requested"],
            vec!["command_rejected"]
        ]
    );

    // A new engine instance (cold cache) answers the same.
    engine.shutdown().await;
    let engine = nats.engine().await;
    let after_restart = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(
        rejected(&after_restart),
        (RejectionCode::InvalidTransition, true)
    );

    // The order moves on: a capture would now be accepted, but the retry is the original.
    assert_eq!(
        accept(&client, env(&o, authorized())).await.status,
        Status::Authorized
    );
    let after_move = client.send(&early, WAIT).await.expect("outcome");
    assert_eq!(
        rejected(&after_move),
        (RejectionCode::InvalidTransition, true)
    );
    // The create's retry is its original outcome too: the state right after it.
    match client.send(&create_cmd, WAIT).await.expect("outcome") {
        Outcome::Accepted {
            commit,
            state,
            duplicate,
            ..
        } => {
            assert_eq!(
                (commit, state.status, duplicate),
                (1, Status::Created, true)
            );
        }
        other => panic!("expected the create's acceptance, got {other:?}"),
    }
    // Another body under the rejected command's id is a reused key; a new id is decided afresh.
    let other_body = env_with_id(&o, "cap-early", capture(Some(100)));
    let reused = client.send(&other_body, WAIT).await.expect("outcome");
    assert_eq!(
        rejected(&reused),
        (RejectionCode::IdempotencyKeyReused, false)
    );
    let fresh = accept(&client, env_with_id(&o, "cap-later", capture(None))).await;
    assert!(fresh.capture_pending.is_some(), "{fresh:?}");
    assert_eq!(
        log_of(&nats, &o).await,
        [
            vec!["order_created"],
            vec!["payment_requested"],
            vec!["command_rejected"],
            vec!["payment_authorized"],
            vec!["capture_requested"]
        ],
        "retries and the reused key wrote nothing"
    );

    // Nothing of this order is in the outcome bucket: the log answers everything.
    for env in [&create_cmd, &early] {
        assert!(!in_bucket(&nats, env).await, "{} stored", env.command_id);
    }
    engine.shutdown().await;

    // The audit re-decides the logged rejection and finds the log clean.
    let journal = nats.journal().await;
    let opts = paystate_audit::AuditOptions {
        compare_projection: false,
        ..Default::default()
    };
    let report = paystate_audit::audit(&journal, None, &opts, &mut |_, _| {})
        .await
        .expect("audit");
    assert!(report.is_clean(true), "{}", report.render(20));
    assert_eq!(report.commits, 5);
}

/// A processor of its own (cold cache), as another instance or the fast path would run it.
async fn fresh_processor(nats: &TestNats) -> Processor {
    let js = async_nats::jetstream::new(nats.connect().await);
    Processor {
        journal: nats.journal().await,
        outcomes: Outcomes::open(&js, 1).await.expect("bucket"),
        cache: OrderCache::new(64),
        cfg: engine_config(),
        stats: std::sync::Arc::new(Stats::default()),
        rebuilt: None,
    }
}

fn now() -> Timestamp {
    chrono::Utc::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_commits_a_rejection_and_a_fresh_one_answers_it_from_the_log() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("proc");
    accept(&client, env(&o, create(10_000))).await;
    let early_capture = env_with_id(&o, "cap-1", capture(Some(20_000)));

    let mut p = fresh_processor(&nats).await;
    // Created: a capture is not allowed; the refusal is a new commit.
    match p.handle(&early_capture, now()).await {
        Disposition::Committed { outcome } => {
            assert_eq!(
                rejected(&outcome),
                (RejectionCode::InvalidTransition, false)
            )
        }
        other => panic!("expected a committed rejection, got {other:?}"),
    }
    // The same processor (warm cache) and another one (cold) answer the retry from the log.
    for p in [&mut p, &mut fresh_processor(&nats).await] {
        match p.handle(&early_capture, now()).await {
            Disposition::Done(outcome) => {
                assert_eq!(rejected(&outcome), (RejectionCode::InvalidTransition, true))
            }
            other => panic!("expected the logged rejection, got {other:?}"),
        }
    }
    assert_eq!(
        log_of(&nats, &o).await,
        [vec!["order_created"], vec!["command_rejected"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_without_an_order_is_kept_in_the_outcome_bucket() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("none");
    let orphan = env_with_id(&o, "cap-1", capture(None));
    let first = client.send(&orphan, WAIT).await.expect("outcome");
    assert_eq!(rejected(&first), (RejectionCode::OrderNotFound, false));
    assert!(in_bucket(&nats, &orphan).await, "order_not_found is stored");
    let again = client.send(&orphan, WAIT).await.expect("outcome");
    assert_eq!(rejected(&again), (RejectionCode::OrderNotFound, true));
    let other_body = env_with_id(&o, "cap-1", capture(Some(5)));
    let reused = client.send(&other_body, WAIT).await.expect("outcome");
    assert_eq!(
        rejected(&reused),
        (RejectionCode::IdempotencyKeyReused, false)
    );
    assert!(log_of(&nats, &o).await.is_empty(), "nothing in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_decided_on_a_stale_cache_conflicts_and_is_decided_again() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("stale");
    accept(&client, env(&o, create(10_000))).await;
    accept(&client, env(&o, start())).await;
    // This processor caches the order while it is pending.
    let mut stale = fresh_processor(&nats).await;
    let look = env_with_id(&o, "look", capture(None));
    match stale.handle(&look, now()).await {
        Disposition::Committed { outcome } => {
            assert_eq!(
                rejected(&outcome),
                (RejectionCode::InvalidTransition, false)
            )
        }
        other => panic!("expected a logged rejection, got {other:?}"),
    }
    // Another instance moves the order on; the stale processor's cache does not know.
    accept(&client, env(&o, authorized())).await;
    let cap = env_with_id(&o, "cap-1", capture(None));
    match stale.handle(&cap, now()).await {
        Disposition::Committed {
            outcome: Outcome::Accepted { events, .. },
        } => assert_eq!(events[0].name(), "capture_requested"),
        other => panic!("the capture must be decided on the log's tail, got {other:?}"),
    }
    let conflicts = stale
        .stats
        .conflicts
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(conflicts, 1, "the stale rejection's append conflicted");
    assert_eq!(
        log_of(&nats, &o).await,
        [
            vec!["order_created"],
            vec!["payment_requested"],
            vec!["command_rejected"],
            vec!["payment_authorized"],
            vec!["capture_requested"]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bound_a_rejection_is_answered_but_not_logged() {
    use paystate_events::limits::REJECTIONS_LOGGED_PER_ORDER_MAX;
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("bound");
    accept(&client, env(&o, create(10_000))).await;
    let mut p = fresh_processor(&nats).await;
    let started = std::time::Instant::now();
    for n in 0..REJECTIONS_LOGGED_PER_ORDER_MAX {
        let early = env_with_id(&o, &format!("cap-{n}"), capture(None));
        assert!(
            matches!(p.handle(&early, now()).await, Disposition::Committed { .. }),
            "rejection {n} is logged"
        );
    }
    eprintln!(
        "{REJECTIONS_LOGGED_PER_ORDER_MAX} logged rejections in {:?}",
        started.elapsed()
    );
    let over = env_with_id(&o, "cap-over", capture(None));
    for _ in 0..2 {
        match p.handle(&over, now()).await {
            Disposition::Done(outcome) => {
                assert_eq!(
                    rejected(&outcome),
                    (RejectionCode::InvalidTransition, false)
                )
            }
            other => panic!("expected an unlogged rejection, got {other:?}"),
        }
    }
    let loaded = nats.journal().await.load(&o).await.expect("load");
    let state = loaded.state.expect("order");
    assert_eq!(state.commits, 1 + REJECTIONS_LOGGED_PER_ORDER_MAX);
    assert_eq!(state.rejections_logged, REJECTIONS_LOGGED_PER_ORDER_MAX);
    assert!(!state.applied.contains_key(&over.command_id));
    // The order still takes commands that change it.
    assert_eq!(
        accept(&client, env(&o, start())).await.status,
        Status::Pending
    );
}
