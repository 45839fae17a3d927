//! NATS users and permissions, against a real nats-server running the shipped config
//! (deploy/nats/paystate-users.conf): what a client-role connection is refused by NATS, that
//! every role's work runs without a single permission violation, that the shipped files match
//! the code, and that `paystate check` names what a user is missing.

mod support;

use async_nats::jetstream;
use paystate::permissions::Role;
use paystate_events::subjects::{COMMANDS_STREAM, EVENTS_STREAM, OUTCOMES_BUCKET};
use paystate_events::{Outcome, Provider, Status};
use paystate_sandbox::{SandboxConfig, TimeScale};
use paystate_service::Client;
use paystate_workers::{ReconcilerConfig, WorkerConfig};
use std::time::{Duration, Instant};
use support::secure::SecureNats;
use support::*;

/// How long a refused JetStream publish may wait for an ack that never comes.
const REFUSED_WAIT: Duration = Duration::from_secs(2);

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_shipped_users_config_and_readme_table_match_the_code() {
    let shipped = support::secure::shipped_users_conf();
    assert_eq!(
        shipped,
        paystate::permissions::users_conf(),
        "deploy/nats/paystate-users.conf drifted from cli/src/permissions.rs: run `paystate schemas`"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert_eq!(
        paystate::permissions::with_readme_table(&readme).as_deref(),
        Some(readme.as_str()),
        "README.md's permission table drifted from cli/src/permissions.rs: run `paystate schemas`"
    );
}

/// A JetStream publish as `js`: `Err` when the broker did not store it in time.
async fn js_publish(js: &jetstream::Context, subject: String, body: &'static [u8]) -> bool {
    let ack = tokio::time::timeout(REFUSED_WAIT, async {
        js.publish(subject, body.into()).await?.await
    })
    .await;
    matches!(ack, Ok(Ok(_)))
}

/// The number of messages stored on `subject` in `stream` (read as the admin).
async fn stored_on(admin: &jetstream::Context, stream: &str, subject: &str) -> u64 {
    let s = admin.get_stream(stream).await.expect("stream");
    let info = s
        .info_with_subjects(subject)
        .await
        .expect("stream info with subjects");
    let mut n = 0;
    let mut info = info;
    while let Some(Ok((_, count))) = futures::StreamExt::next(&mut info).await {
        n += count as u64;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_signal_write_the_log_or_buckets_or_delete_streams_but_can_send_commands() {
    let nats = SecureNats::start().await;
    let engine = paystate_service::run_engine(
        nats.client_as(Role::Engine).await,
        log_settings(),
        engine_config(),
    )
    .await
    .expect("the engine starts as paystate-engine");
    let (conn, errors) = nats.connect_as(Role::Client).await;
    let client = Client::new(conn.clone());
    let js = jetstream::new(conn.clone());
    let admin = jetstream::new(nats.client_as(Role::Admin).await);

    // A normal command: accepted. The outcome bucket stays readable by the client (since
    // decision 0013 it holds only rejections that have no order; accepted outcomes are
    // answered from the log).
    let o = order("perm");
    let create = env(&o, create(10_000));
    let state = accept(&client, create.clone()).await;
    assert_eq!(state.status, Status::Created);
    let outcomes = js
        .get_key_value(OUTCOMES_BUCKET)
        .await
        .expect("the client opens the outcome bucket");
    let key = paystate_service::outcomes::key(&o, &create.command_id);
    outcomes
        .get(&key)
        .await
        .expect("the client reads the outcome bucket");

    // A provider signal on the signal plane: refused by NATS, nothing stored.
    let signal = serde_json::to_vec(&env(&o, authorized())).expect("json");
    let signal: &'static [u8] = Box::leak(signal.into_boxed_slice());
    let subject = format!("paystate.signal.{o}");
    assert!(!js_publish(&js, subject.clone(), signal).await);
    assert!(
        errors
            .wait_for("Permissions Violation for Publish to \"paystate.signal.")
            .await,
        "NATS refused the signal: {:?}",
        errors.all()
    );
    assert_eq!(stored_on(&admin, COMMANDS_STREAM, &subject).await, 0);
    // Through the Rust client (which picks the signal plane for provider_signal): not taken.
    let sent = client.send(&env(&o, authorized()), REFUSED_WAIT).await;
    assert!(sent.is_err(), "a client's provider signal got {sent:?}");
    assert_eq!(stored_on(&admin, COMMANDS_STREAM, &subject).await, 0);
    // The fast path's signal plane: refused by NATS too (the client went there above).
    let rpc_signal = paystate_events::subjects::rpc_subject(
        paystate_events::subjects::Plane::Signal,
        o.as_str(),
    );
    let asked = conn.request(rpc_signal, signal.into()).await;
    assert!(asked.is_err(), "a client's fast-path signal got {asked:?}");
    assert!(
        errors
            .wait_for("Permissions Violation for Publish to \"paystate.rpc.signal.")
            .await,
        "NATS refused the fast-path signal: {:?}",
        errors.all()
    );

    // The log: refused, nothing written.
    let events = format!("paystate.events.{o}");
    assert!(!js_publish(&js, events.clone(), b"{\"forged\":true}").await);
    assert!(
        errors.wait_for("paystate.events.").await,
        "{:?}",
        errors.all()
    );
    assert_eq!(
        stored_on(&admin, EVENTS_STREAM, &events).await,
        1,
        "only the creation"
    );

    // Every paystate bucket: refused, nothing written.
    for (bucket, key) in [
        (OUTCOMES_BUCKET, format!("{o}.forged")),
        ("paystate_refs", "plural.forged".to_string()),
        ("paystate_projection", "orders".to_string()),
        ("paystate_callbacks_seen", "forged".to_string()),
        ("paystate_orders_g1", format!("order.{o}")),
        // Engine membership: a client cannot pose as an engine instance.
        (
            paystate_events::subjects::ENGINES_BUCKET,
            "forged-instance".to_string(),
        ),
    ] {
        let subject = format!("$KV.{bucket}.{key}");
        assert!(
            !js_publish(&js, subject.clone(), b"forged").await,
            "{subject}"
        );
        assert!(
            errors.wait_for(&format!("$KV.{bucket}.")).await,
            "{subject}: {:?}",
            errors.all()
        );
    }
    let kv = admin.get_key_value(OUTCOMES_BUCKET).await.expect("bucket");
    assert!(kv.get(format!("{o}.forged")).await.expect("get").is_none());
    assert!(
        js.create_key_value(async_nats::jetstream::kv::Config {
            bucket: "paystate_refs".into(),
            ..Default::default()
        })
        .await
        .is_err(),
        "a client may not create buckets"
    );

    // Streams: delete and purge are refused (no answer from JetStream), the log is intact.
    for stream in [EVENTS_STREAM, COMMANDS_STREAM, "KV_paystate_outcomes"] {
        let deleted = tokio::time::timeout(REFUSED_WAIT, js.delete_stream(stream)).await;
        assert!(
            !matches!(deleted, Ok(Ok(_))),
            "{stream} deleted by a client"
        );
        let purge: Result<Result<async_nats::Message, _>, _> = tokio::time::timeout(
            REFUSED_WAIT,
            conn.request(format!("$JS.API.STREAM.PURGE.{stream}"), "".into()),
        )
        .await;
        assert!(!matches!(purge, Ok(Ok(_))), "{stream} purge answered");
    }
    assert!(errors.wait_for("$JS.API.STREAM.DELETE.").await);
    assert!(errors.wait_for("$JS.API.STREAM.PURGE.").await);
    assert_eq!(stored_on(&admin, EVENTS_STREAM, &events).await, 1);
    // Stealing the engine's commands: no consumer on the work queue.
    let steal = tokio::time::timeout(
        REFUSED_WAIT,
        conn.request(
            format!("$JS.API.CONSUMER.CREATE.{COMMANDS_STREAM}"),
            "{}".into(),
        ),
    )
    .await;
    assert!(!matches!(steal, Ok(Ok(_))));

    // And the order still works.
    let state = accept(&client, env(&o, start())).await;
    assert_eq!(state.status, Status::Pending);
    engine.shutdown().await;
    let roles_violations: Vec<String> = nats
        .violations()
        .into_iter()
        .filter(|l| !l.contains("paystate-client"))
        .collect();
    assert!(
        roles_violations.is_empty(),
        "violations by other roles: {roles_violations:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_stack_runs_with_per_role_users_without_a_violation() {
    let nats = SecureNats::start().await;
    // Another client service, listening to every client inbox (as it may): it must not hear
    // what paystate's own processes receive (their reads of the log, callbacks and
    // attachments; outcomes of signals), which go below their roles' own inboxes.
    let snooper = nats.client_as(Role::Client).await;
    let mut heard = snooper.subscribe("_INBOX.>").await.expect("subscribe");
    snooper.flush().await.expect("flush");
    let conns = nats
        .connections(&[Role::Engine, Role::Projector, Role::Reporter])
        .await;
    let workers = WorkerConfig {
        ack_wait: Duration::from_secs(10),
        ..Default::default()
    };
    let (stack, sandbox, _) = paystate::stack::with_sandbox(
        conns,
        log_settings(),
        engine_config(),
        workers,
        ReconcilerConfig::default().scaled(60_000),
        SandboxConfig {
            time_scale: TimeScale::MILLIS,
            ..Default::default()
        },
        gateway_listeners().await,
    )
    .await
    .expect("the stack starts with per-role users");
    const OWN_INBOX: &str = "_INBOX.test_client";
    let client = Client::new(nats.connect_as_with_inbox(Role::Client, OWN_INBOX).await.0);
    // The demo reads the log and uploads a screenshot as the gateway would: the reporter.
    let journal = paystate_journal::Journal::existing(
        jetstream::new(nats.client_as(Role::Reporter).await),
        &log_settings().events_stream,
    )
    .await
    .expect("journal");
    let orders = paystate::demo::drive_all(&client, &sandbox, &journal, Duration::from_secs(20))
        .await
        .expect("every sample order completes with per-role users");
    let providers: Vec<Provider> = orders.iter().map(|(p, _)| *p).collect();
    assert_eq!(providers.len(), 5);
    // The same file uploaded twice (content-addressed): no overwrite, so no purge.
    let store = paystate_service::attachments::open(journal.context(), 1)
        .await
        .expect("attachment store as the reporter");
    let bytes = b"the same screenshot twice";
    let first = paystate_service::attachments::put(&store, "a.png", "image/png", bytes)
        .await
        .expect("an upload");
    let again = paystate_service::attachments::put(&store, "a.png", "image/png", bytes)
        .await
        .expect("the same upload again");
    assert_eq!(first.object, again.object);
    // The projection catches up (projector user) and the gateway serves it (reporter user).
    wait_projection_caught_up(&stack.projection).await;
    let (_, first) = &orders[0];
    assert!(stack.projection.get(first).await.expect("get").is_some());

    // Operator commands, run by the binary as paystate-operator.
    let first = first.to_string();
    for args in [
        vec!["audit"],
        vec!["show", first.as_str()],
        vec!["replay", first.as_str()],
        vec!["orders", "list"],
        vec!["order", "show", first.as_str()],
        vec!["project", "status"],
        vec!["export"],
        vec!["project", "rebuild", "--quiet"],
    ] {
        let (code, out, err) = nats.cli_as(Role::Operator, &args).await;
        assert_eq!(
            code,
            0,
            "`paystate {}` as operator: {out}{err}",
            args.join(" ")
        );
    }
    // And `check` for the roles this stack ran, each as its own user.
    for (role, parts) in [
        (Role::Engine, "engine"),
        (Role::Projector, "projector"),
        (Role::Reporter, "workers,reconciler,gateway"),
    ] {
        let (code, out, err) = nats.cli_as(role, &["check", "--roles", parts]).await;
        assert_eq!(code, 0, "check --roles {parts} as {role}: {out}{err}");
    }
    // Everything routed to the snooper so far is in its subscription once a flush returns.
    snooper.flush().await.expect("flush");
    let (mut own, mut others) = (0, Vec::new());
    while let Some(Some(msg)) =
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut heard))
    {
        match msg.subject.starts_with(OWN_INBOX) {
            true => own += 1,
            false => others.push(msg.subject.to_string()),
        }
    }
    // It hears a client's replies (the test client's outcomes), so it would hear others'.
    assert!(own > 0, "the snooper hears client inboxes");
    assert!(
        others.is_empty(),
        "a client heard {} replies meant for paystate's processes: {:?}",
        others.len(),
        &others[..others.len().min(5)]
    );
    let (code, out, err) = nats
        .cli_as(Role::Client, &["check", "--as", "client"])
        .await;
    assert_eq!(code, 0, "check --as client: {out}{err}");

    stack.shutdown().await;
    sandbox.shutdown().await;
    let violations = nats.violations();
    assert!(
        violations.is_empty(),
        "permission violations: {violations:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_permissions_a_user_is_missing() {
    let nats = SecureNats::start().await;
    // The client's user cannot run an engine: check says so, exit 1.
    let (code, out, err) = nats
        .cli_as(Role::Client, &["check", "--roles", "engine"])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("paystate.events.>"), "{text}");
    assert!(text.contains("missing"), "{text}");
    // The engine's own user has all it needs (the log may not exist yet: start an engine).
    let engine = paystate_service::run_engine(
        nats.client_as(Role::Engine).await,
        log_settings(),
        engine_config(),
    )
    .await
    .expect("engine");
    let (code, out, err) = nats
        .cli_as(Role::Engine, &["check", "--roles", "engine"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_process_and_a_client_run_as_their_users_through_settings() {
    let nats = SecureNats::start().await;
    let mut engine = EngineProcess::start_with(
        &nats.url(),
        &[
            ("PAYSTATE_NATS__ROLES__ENGINE__USER", &Role::Engine.user()),
            (
                "PAYSTATE_NATS__ROLES__ENGINE__PASSWORD",
                &nats.passwords[&Role::Engine],
            ),
        ],
    );
    let o = order("settings");
    let body = serde_json::to_string(&env(&o, create(500))).expect("json");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), body).expect("write");
    let path = file.path().display().to_string();
    let started = Instant::now();
    loop {
        let (code, out, err) = nats.cli_as(Role::Client, &["send", &path]).await;
        if code == 0 {
            let outcome: Outcome = serde_json::from_str(&out).expect("an outcome");
            assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
            break;
        }
        assert!(started.elapsed() < WAIT, "send as client: {out}{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    engine.kill9().await;
    let violations = nats.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Queue-path order affinity under the shipped permissions: two engines, each on the engine
/// user, forward the queued commands of the other's partitions to it (a fast-path request on
/// the plane they were queued on). Client commands and provider signals (queued by the
/// reporter user) are all decided, some forwarded, and the server logs no violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_forward_queued_commands_under_the_shipped_permissions() {
    let nats = SecureNats::start().await;
    let engine = || async {
        paystate_service::run_engine(
            nats.client_as(Role::Engine).await,
            log_settings(),
            engine_config(),
        )
        .await
        .expect("engine starts as the engine user")
    };
    let (a, b) = (engine().await, engine().await);
    served_once_within(
        &nats.client_as(Role::Operator).await,
        2,
        Duration::from_secs(30),
    )
    .await
    .expect("the engines split the partitions (discovery as the operator)");
    let client = Client::queue(nats.client_as(Role::Client).await);
    let reporter = Client::queue(nats.client_as(Role::Reporter).await);
    for i in 0..16 {
        let o = order(&format!("fwd{i}"));
        accept(&client, env(&o, create(1_000))).await;
        accept(&client, env(&o, support::start())).await;
        accept(&reporter, env(&o, authorized())).await;
    }
    let forwarded = a.stats.forwarded.load(std::sync::atomic::Ordering::Relaxed)
        + b.stats.forwarded.load(std::sync::atomic::Ordering::Relaxed);
    println!("48 queued commands over two engines as their users: {forwarded} forwarded");
    assert!(
        forwarded > 0,
        "some commands were pulled by the other instance"
    );
    a.shutdown().await;
    b.shutdown().await;
    let violations = nats.violations();
    assert!(
        violations.is_empty(),
        "permission violations: {violations:#?}"
    );
}
