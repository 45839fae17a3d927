//! Order expiry that needs no one awake (JetStream message scheduling, nats-server 2.12+):
//! an order created with `expires_at` is expired by the schedule the engine stored with its
//! commit, even when no engine runs at that instant: the server fires the expire command into
//! the command queue, where it waits for the next engine. An order captured before its expiry
//! keeps its state: the expire is refused, the refusal logged as a `command_rejected` commit
//! (decision 0013). A started payment is voided
//! at a provider that can cancel it (Plexy) and cancelled here where the provider cannot
//! (Paykassma). An expiry that did not end the order (refused while a capture was in flight,
//! or a void the provider refused) is tried again once that operation failed, under a new
//! deterministic id per attempt, a bounded number of times; then the reconciler flags the
//! order for a person (decision 0010).

mod support;

use chrono::Utc;
use paystate::permissions::Role;
use paystate_events::subjects::{COMMANDS_PREFIX, COMMANDS_STREAM, SCHEDULES_STREAM};
use paystate_events::{
    CancelledBy, CaptureMode, Command, Event, OrderId, Outcome, PaymentInitiation, Provider,
    RejectionCode, SignalKind, Status,
};
use paystate_journal::Journal;
use paystate_service::expiry;
use std::time::{Duration, Instant};
use support::*;

/// How far ahead the orders expire.
const EXPIRES_IN: Duration = Duration::from_secs(2);
/// The promise under test: expired within this long of an engine starting.
const EXPIRED_WITHIN: Duration = Duration::from_secs(2);

fn create_expiring(order: &OrderId, id: &str) -> paystate_events::CommandEnvelope {
    create_expiring_in(order, id, EXPIRES_IN)
}

/// A create of `order` expiring `within` from now.
fn create_expiring_in(
    order: &OrderId,
    id: &str,
    within: Duration,
) -> paystate_events::CommandEnvelope {
    let mut cmd = create(10_000);
    if let Command::CreateOrder { expires_at, .. } = &mut cmd {
        *expires_at = Some(Utc::now() + within);
    }
    env_with_id(order, id, cmd)
}

async fn send_accepted(client: &paystate_service::Client, cmd: paystate_events::CommandEnvelope) {
    let outcome = client.send(&cmd, WAIT).await.expect("an outcome");
    assert!(
        matches!(outcome, Outcome::Accepted { .. }),
        "{} not accepted: {outcome:?}",
        cmd.command.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_expires_while_no_engine_runs_as_soon_as_one_starts() {
    let nats = TestNats::start().await;
    let mut engine = EngineProcess::start(&nats.url());
    let client = nats.client().await;
    let journal = nats.journal().await;
    // The engine process may take seconds to start on a busy machine: wait until it answers
    // (another order's create) before the clock of the expiring order starts.
    send_accepted(&client, env(&order("warm"), create(10_000))).await;
    let order = order("exp");
    send_accepted(&client, create_expiring(&order, "c-1")).await;
    // The schedule was stored before the outcome was answered: the engine may die now.
    engine.kill9().await;

    // The server fires the expire at `expires_at`, with no engine running: it waits queued.
    wait_until_queued(&nats, &order).await;
    let state = journal.load(&order).await.expect("order").state;
    assert_eq!(state.expect("order").status, Status::Created);

    let started = Instant::now();
    engine.restart().await;
    let commits = wait_for_status(&journal, &order, Status::Cancelled).await;
    let took = started.elapsed();
    assert!(
        took <= EXPIRED_WITHIN,
        "expired {took:?} after the engine started"
    );
    let last = commits.last().expect("the expiry commit");
    assert_eq!(
        last.commit.command.command_id,
        expiry::command_id(&order).expect("id")
    );
    assert_eq!(
        last.commit.events,
        vec![Event::OrderCancelled {
            by: CancelledBy::Expiry,
            evidence: None
        }]
    );
    assert_each_command_once(&commits);
    eprintln!("expired {took:?} after the engine started");
    engine.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_captured_before_its_expiry_is_untouched() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let order = order("cap");
    send_accepted(&client, create_expiring(&order, "c-1")).await;
    send_accepted(&client, env(&order, start())).await;
    send_accepted(&client, env(&order, authorized())).await;
    send_accepted(&client, env(&order, capture(None))).await;
    send_accepted(&client, env(&order, captured(10_000))).await;
    let before = journal.read_order(&order).await.expect("order");

    // The scheduled expire arrives at `expires_at`; its refusal is logged (decision 0013).
    let refusal = wait_for_expire_commit(&journal, &order).await;
    assert!(
        matches!(
            refusal.commit.events.as_slice(),
            [Event::CommandRejected {
                code: RejectionCode::InvalidTransition,
                ..
            }]
        ),
        "{:?}",
        refusal.commit.events
    );

    let after = journal.read_order(&order).await.expect("order");
    assert_eq!(after.len(), before.len() + 1, "only the logged refusal");
    let state = journal.load(&order).await.expect("order").state;
    let state = state.expect("order");
    assert_eq!(state.status, Status::Captured);
    assert_eq!(
        state.captured,
        paystate_events::MinorUnits(10_000),
        "untouched"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_runs_within_the_shipped_permissions_and_clients_cannot_schedule() {
    let nats = support::secure::SecureNats::start().await;
    let engine = paystate_service::run_engine(
        nats.client_as(Role::Engine).await,
        log_settings(),
        engine_config(),
    )
    .await
    .expect("engine starts as the engine user");
    let client_conn = nats.client_as(Role::Client).await;
    let client = paystate_service::Client::new(client_conn.clone());
    let order = order("perm");
    send_accepted(&client, create_expiring(&order, "c-1")).await;
    let admin = async_nats::jetstream::new(nats.client_as(Role::Admin).await);
    let journal = Journal::existing(admin, "PAYSTATE_EVENTS")
        .await
        .expect("log");
    wait_for_status(&journal, &order, Status::Cancelled).await;
    let v = nats.violations();
    assert!(v.is_empty(), "permission violations: {v:#?}");

    // A client's own schedule would let the server publish on the signal plane for it: the
    // command queue has no message scheduling, so the server refuses the message.
    let js = async_nats::jetstream::new(client_conn);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Schedule", "@at 2020-01-01T00:00:00Z");
    headers.insert(
        "Nats-Schedule-Target",
        format!("paystate.signal.{order}").as_str(),
    );
    let refused = match js
        .publish_with_headers(format!("{COMMANDS_PREFIX}.{order}"), headers, "{}".into())
        .await
    {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a schedule on the command queue was stored");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_payment_expires_at_the_provider_where_it_can_be_cancelled() {
    let ps = support::providers::ProviderStack::start().await;
    let start_expiring = |o: &OrderId, provider: Provider, currency: &str| {
        let mut cmd = support::providers::create_for(provider, 30_000, currency, CaptureMode::Auto);
        if let Command::CreateOrder { expires_at, .. } = &mut cmd {
            *expires_at = Some(Utc::now() + EXPIRES_IN);
        }
        let initiation = PaymentInitiation {
            customer_id: Some(o.to_string()),
            ..Default::default()
        };
        [
            env_with_id(o, "c-1", cmd),
            env_with_id(o, "s-1", Command::StartPayment { initiation }),
        ]
    };
    // Plexy can cancel a payment link: the expiry asks for the void, the provider confirms.
    let plexy = order("exp-plexy");
    // Paykassma cannot cancel a wallet transfer: the expiry cancels the order here.
    let paykassma = order("exp-pk");
    for cmd in start_expiring(&plexy, Provider::Plexy, "USD")
        .into_iter()
        .chain(start_expiring(&paykassma, Provider::Paykassma, "BTN"))
    {
        send_accepted(&ps.client, cmd).await;
    }
    let link = ps
        .wait_until(&plexy, "showing the payment link", |s| {
            s.provider_ref.is_some()
        })
        .await
        .provider_ref
        .expect("link");

    let cancelled = wait_for_status(&ps.journal, &plexy, Status::Cancelled).await;
    let expiry = expiry::command_id(&plexy).expect("id");
    let asked = cancelled
        .iter()
        .find(|c| c.commit.command.command_id == expiry)
        .expect("the expire command was applied");
    assert_eq!(
        asked.commit.events,
        vec![Event::CancelRequested {
            reason: Some("expired".into())
        }]
    );
    assert!(
        cancelled
            .iter()
            .flat_map(|c| c.commit.events.iter())
            .any(|e| matches!(
                e,
                Event::OrderCancelled {
                    by: CancelledBy::Provider,
                    ..
                }
            )),
        "the provider confirmed the cancellation"
    );
    assert_eq!(
        ps.sandbox.order(Provider::Plexy, &link)["status"].as_str(),
        Some("cancelled"),
        "the payment link is closed at the provider"
    );

    let local = wait_for_status(&ps.journal, &paykassma, Status::Cancelled).await;
    assert_eq!(
        local.last().expect("last").commit.events,
        vec![Event::OrderCancelled {
            by: CancelledBy::Expiry,
            evidence: None
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_schedule_cannot_be_stored_is_answered_only_once_it_is() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    // An operator mistake: the schedule stream is gone, so the engine cannot store schedules.
    js.delete_stream(SCHEDULES_STREAM)
        .await
        .expect("schedule stream deleted");
    let order = order("lost");
    let cmd = create_expiring(&order, "c-1");
    let sent = tokio::spawn({
        let client = client.clone();
        async move { client.send(&cmd, WAIT).await }
    });
    // The order is committed, but not answered while its schedule is missing.
    wait_for_status(&journal, &order, Status::Created).await;
    assert!(
        !sent.is_finished(),
        "answered before its expiry was scheduled"
    );
    paystate_journal::setup::ensure_schedules(&js, 1)
        .await
        .expect("schedule stream back");
    let outcome = sent.await.expect("task").expect("an outcome");
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    // The retried schedule expires the order (the command queue's source of the recreated
    // stream resumes after the server's own retry pause, a few seconds).
    let answered = Instant::now();
    let commits = wait_for_status_within(&journal, &order, Status::Cancelled, WAIT * 3).await;
    eprintln!("expired {:?} after the answer", answered.elapsed());
    assert_each_command_once(&commits);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_commit_whose_schedule_keeps_failing_is_set_aside_and_redriven_later() {
    schedule_keeps_failing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_path_commit_whose_schedule_keeps_failing_is_set_aside_and_redriven_later() {
    schedule_keeps_failing(false).await;
}

/// The schedule stream is gone: a command that commits an expiring order is answered once it
/// has been set aside after `deliveries_max` attempts; its redrive, once the stream is back,
/// writes the schedule and the order expires.
async fn schedule_keeps_failing(queued: bool) {
    use paystate_journal::dead_letters::{self, DeadLetterFilter, Source};
    let nats = TestNats::start().await;
    let cfg = paystate_service::EngineConfig {
        deliveries_max: 3,
        retry_later: Duration::from_millis(100),
        ..engine_config()
    };
    let engine = paystate_service::run_engine(nats.connect().await, log_settings(), cfg)
        .await
        .expect("engine starts");
    let client = match queued {
        true => nats.client().await.via_queue(),
        false => nats.client().await,
    };
    let journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    js.delete_stream(SCHEDULES_STREAM)
        .await
        .expect("schedule stream deleted");
    let order = order("never");
    // Long enough that the order cannot expire before the schedule is stored again.
    let cmd = create_expiring_in(&order, "c-1", Duration::from_secs(6));
    // Bounded: after three attempts the command is set aside and its outcome (the commit is
    // in the log) answered, so the order's next command is no longer held behind it.
    let outcome = client.send(&cmd, WAIT).await.expect("an outcome");
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    let filter = DeadLetterFilter {
        source: Some(Source::Engine),
        order: Some(order.to_string()),
        ..Default::default()
    };
    let letters = dead_letters::list(&js, &filter)
        .await
        .expect("list")
        .letters;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]
            .reason
            .contains("expiry schedule was not stored after 3 attempts"),
        "{}",
        letters[0].reason
    );

    // Once schedules can be stored, the redriven command writes the schedule (answered from
    // the log as a duplicate) and the order expires at its time.
    paystate_journal::setup::ensure_schedules(&js, 1)
        .await
        .expect("schedule stream back");
    dead_letters::redrive(&js, letters[0].seq)
        .await
        .expect("redrive");
    let commits = wait_for_status_within(&journal, &order, Status::Cancelled, WAIT * 3).await;
    assert_each_command_once(&commits);
    engine.shutdown().await;
}

/// Engine settings with expiry retries a second apart (the default waits minutes).
fn fast_expiry_retries() -> paystate_service::EngineConfig {
    paystate_service::EngineConfig {
        expiry_retry_after: [Duration::from_secs(1); expiry::RETRIES_MAX as usize],
        ..engine_config()
    }
}

/// The provider's report that `operation` failed.
fn failed(operation: paystate_events::Operation, evidence: &str) -> Command {
    let kind = SignalKind::Failed {
        operation,
        code: "refused".into(),
        message: "refused by the provider".into(),
        refund_id: None,
    };
    signal(kind, evidence)
}

/// Sends a command that must be accepted with exactly the events `events` names.
async fn send_accepted_with(
    client: &paystate_service::Client,
    cmd: paystate_events::CommandEnvelope,
    events: &[&str],
) {
    let name = cmd.command.name();
    match client.send(&cmd, WAIT).await.expect("an outcome") {
        Outcome::Accepted { events: got, .. } => {
            let got: Vec<&str> = got.iter().map(Event::name).collect();
            assert_eq!(got, events, "{name}");
        }
        other => panic!("{name} not accepted: {other:?}"),
    }
}

/// No schedule of `attempt` is stored for `order`, fired or not (the retries are bounded).
async fn assert_never_scheduled(nats: &TestNats, order: &OrderId, attempt: u32) {
    let js = async_nats::jetstream::new(nats.connect().await);
    let stream = js.get_stream(SCHEDULES_STREAM).await.expect("schedules");
    let subject = expiry::schedule_subject(order, attempt);
    assert!(
        stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .is_err(),
        "a schedule for attempt {attempt} was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_refused_while_a_capture_is_in_flight_is_retried_once_the_capture_fails() {
    use paystate_events::Operation;
    let nats = TestNats::start().await;
    let cfg = fast_expiry_retries();
    let engine = paystate_service::run_engine(nats.connect().await, log_settings(), cfg.clone())
        .await
        .expect("engine starts");
    let client = nats.client().await;
    let journal = nats.journal().await;
    // Plural, manual capture: authorized, and a capture waiting for the provider when the
    // order's expiry fires.
    let order = order("inflight");
    send_accepted(&client, create_expiring(&order, "c-1")).await;
    send_accepted(&client, env(&order, start())).await;
    send_accepted(&client, env(&order, authorized())).await;
    send_accepted_with(&client, env(&order, capture(None)), &["capture_requested"]).await;
    let refusal = wait_for_expire_commit(&journal, &order).await;
    assert!(
        matches!(
            refusal.commit.events.as_slice(),
            [Event::CommandRejected {
                code: RejectionCode::OperationInProgress,
                ..
            }]
        ),
        "{:?}",
        refusal.commit.events
    );

    // The capture fails: the order is authorized past its expiry, funds held. The commit
    // that says so schedules the next attempt before it is answered, so the engine may stop
    // now; the attempt waits in the queue for the next one.
    send_accepted_with(
        &client,
        env(&order, failed(Operation::Capture, "ev-capture-failed")),
        &["capture_failed"],
    )
    .await;
    engine.shutdown().await;
    let engine = paystate_service::run_engine(nats.connect().await, log_settings(), cfg)
        .await
        .expect("engine restarts");

    let retry = wait_for_attempt(&journal, &order, 1).await;
    assert_eq!(
        retry.commit.events,
        vec![Event::CancelRequested {
            reason: Some("expired".into())
        }],
        "the second attempt asks the provider to void the authorization"
    );
    // The provider confirms the void.
    send_accepted(
        &client,
        env(&order, signal(SignalKind::Cancelled, "ev-void")),
    )
    .await;
    let commits = wait_for_status(&journal, &order, Status::Cancelled).await;
    assert_each_command_once(&commits);
    let attempts: Vec<_> = commits
        .iter()
        .map(|c| c.commit.command.command_id.to_string())
        .filter(|id| id.starts_with("expire."))
        .collect();
    assert_eq!(
        attempts,
        [0, 1].map(|n| expiry::attempt_id(&order, n).expect("id").to_string()),
        "one command per attempt, each once"
    );
    assert_never_scheduled(&nats, &order, 2).await;
    // Every commit re-decides to itself (decision 0004): no rule changed.
    let (code, out, err) = paystate_cli(&nats.url(), &["audit"]).await;
    assert_eq!(code, 0, "audit: {out}\n{err}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_whose_void_keeps_failing_is_retried_up_to_the_bound_then_flagged() {
    use paystate_events::Operation;
    let nats = TestNats::start().await;
    let engine =
        paystate_service::run_engine(nats.connect().await, log_settings(), fast_expiry_retries())
            .await
            .expect("engine starts");
    // A reconciler that never probes here (nothing waits on a provider for an hour): only its
    // flag for an order whose expiry ran out of attempts is under test.
    let adapters = paystate_adapters::Adapters::new(Default::default()).expect("adapters");
    let reconciler = paystate_workers::run_reconciler(
        nats.connect().await,
        &log_settings().events_stream,
        std::sync::Arc::new(adapters),
        paystate_workers::ReconcilerConfig {
            first_probe_after: Provider::ALL
                .into_iter()
                .map(|p| (p, Duration::from_secs(3600)))
                .collect(),
            tick: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await
    .expect("reconciler starts");
    let client = nats.client().await;
    let journal = nats.journal().await;
    let order = order("void");
    send_accepted(&client, create_expiring(&order, "c-1")).await;
    send_accepted(&client, env(&order, start())).await;
    send_accepted(&client, env(&order, authorized())).await;

    // Every attempt asks for the void; the provider refuses each.
    for attempt in 0..=expiry::RETRIES_MAX {
        let asked = wait_for_attempt(&journal, &order, attempt).await;
        assert_eq!(
            asked.commit.events,
            vec![Event::CancelRequested {
                reason: Some("expired".into())
            }],
            "attempt {attempt}"
        );
        let evidence = format!("ev-void-refused-{attempt}");
        send_accepted_with(
            &client,
            env(&order, failed(Operation::Cancel, &evidence)),
            &["cancel_failed"],
        )
        .await;
    }

    // Past the bound: no further attempt, a person is asked to decide.
    let deadline = Instant::now() + WAIT;
    let state = loop {
        let state = journal.load(&order).await.expect("order").state;
        let state = state.expect("order");
        if state.needs_review {
            break state;
        }
        assert!(Instant::now() < deadline, "never flagged: {state:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state.status, Status::Authorized);
    assert!(
        state.discrepancies.iter().any(|d| d.code == "needs_review"
            && d.evidence_ref == "reconciler:expiry-attempts-exhausted"),
        "{:?}",
        state.discrepancies
    );
    let commits = journal.read_order(&order).await.expect("commits");
    assert_each_command_once(&commits);
    let attempts = commits
        .iter()
        .filter(|c| c.commit.command.command_id.as_str().starts_with("expire."))
        .count();
    assert_eq!(attempts, expiry::RETRIES_MAX as usize + 1, "bounded");
    assert_never_scheduled(&nats, &order, expiry::RETRIES_MAX + 1).await;
    reconciler.shutdown().await;
    engine.shutdown().await;
}

/// Polls the log until the order's expiry attempt `attempt` has its commit; returns it.
async fn wait_for_attempt(
    journal: &Journal,
    order: &OrderId,
    attempt: u32,
) -> paystate_journal::StoredCommit {
    let id = expiry::attempt_id(order, attempt).expect("id");
    let deadline = Instant::now() + EXPIRES_IN + WAIT;
    loop {
        let commits = journal.read_order(order).await.expect("order");
        if let Some(found) = commits
            .into_iter()
            .find(|c| c.commit.command.command_id == id)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expiry attempt {attempt} of {order} never decided"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the command queue until the order's expire command is waiting in it.
async fn wait_until_queued(nats: &TestNats, order: &OrderId) {
    let js = async_nats::jetstream::new(nats.connect().await);
    let subject = format!("{COMMANDS_PREFIX}.{order}");
    let deadline = Instant::now() + EXPIRES_IN + WAIT;
    loop {
        let stream = js.get_stream(COMMANDS_STREAM).await.expect("command queue");
        let queued = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()
            .filter(|m| {
                serde_json::from_slice::<serde_json::Value>(&m.payload)
                    .is_ok_and(|v| v["type"] == "expire")
            });
        if queued.is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no expire command queued for {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the log until the order has `status`; returns its commits.
async fn wait_for_status(
    journal: &Journal,
    order: &OrderId,
    status: Status,
) -> Vec<paystate_journal::StoredCommit> {
    wait_for_status_within(journal, order, status, WAIT).await
}

/// As [`wait_for_status`], with its own deadline.
async fn wait_for_status_within(
    journal: &Journal,
    order: &OrderId,
    status: Status,
    within: Duration,
) -> Vec<paystate_journal::StoredCommit> {
    let deadline = Instant::now() + within;
    loop {
        let loaded = journal.load(order).await.expect("order");
        if loaded.state.as_ref().map(|s| s.status) == Some(status) {
            return journal.read_order(order).await.expect("commits");
        }
        assert!(Instant::now() < deadline, "order {order} never {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the log until the scheduled expire's commit is in it; returns that commit.
async fn wait_for_expire_commit(
    journal: &Journal,
    order: &OrderId,
) -> paystate_journal::StoredCommit {
    let id = expiry::command_id(order).expect("id");
    let deadline = Instant::now() + EXPIRES_IN + WAIT;
    loop {
        let commits = journal.read_order(order).await.expect("order");
        if let Some(found) = commits
            .into_iter()
            .find(|c| c.commit.command.command_id == id)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expire of {order} never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
