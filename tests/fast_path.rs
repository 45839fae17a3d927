//! The fast path (decision 0013) through a real nats-server: the `paystate` NATS service is
//! discoverable, serves commands by request/reply, every partition is served by exactly one
//! live instance and moves to the survivors when one dies, and requests it must not answer
//! are not answered.

mod support;

use async_nats::service::NATS_SERVICE_ERROR_CODE;
use futures::StreamExt;
use paystate_events::subjects::{
    rpc_partition, rpc_subject, Plane, QUEUED_SEQ_HEADER, RPC_PARTITIONS, SERVICE_NAME,
};
use paystate_events::{Outcome, Status};
use paystate_service::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use support::*;

/// How long discovery waits for more answers after the last one.
const DISCOVERY_QUIET: Duration = Duration::from_millis(300);
/// Bound on membership settling and hand-over (lease 3 s + a tick, with slack for CI).
const SETTLE_MAX: Duration = Duration::from_secs(15);

/// Every answer to `$SRV.<verb>.paystate`, as JSON.
async fn discover(nats: &async_nats::Client, verb: &str) -> Vec<serde_json::Value> {
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await.expect("subscribe");
    nats.publish_with_reply(format!("$SRV.{verb}.{SERVICE_NAME}"), inbox, "".into())
        .await
        .expect("publish");
    let mut out = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(DISCOVERY_QUIET, answers.next()).await {
        if msg.status.is_some() {
            // "No responders": no instance registered (yet).
            continue;
        }
        out.push(serde_json::from_slice(&msg.payload).expect("service API answers JSON"));
    }
    out
}

/// Which instances serve each partition, from `$SRV.INFO.paystate`.
async fn served(nats: &async_nats::Client) -> BTreeMap<usize, BTreeSet<String>> {
    let mut by_partition: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for info in discover(nats, "INFO").await {
        assert_eq!(info["name"], SERVICE_NAME);
        let instance = info["metadata"]["instance"]
            .as_str()
            .expect("instance id in the metadata")
            .to_string();
        for e in info["endpoints"].as_array().expect("endpoints") {
            let subject = e["subject"].as_str().expect("subject");
            let p: usize = subject
                .split('.')
                .nth(3)
                .and_then(|t| t.parse().ok())
                .expect("paystate.rpc.*.<p>.*");
            assert_eq!(e["name"], format!("p{p:02}"));
            assert_eq!(e["queue_group"], SERVICE_NAME);
            by_partition.entry(p).or_default().insert(instance.clone());
        }
    }
    by_partition
}

/// Polls until every partition is served by exactly one instance, and `instances` of them
/// serve; returns the map.
async fn settled(nats: &async_nats::Client, instances: usize) -> BTreeMap<usize, BTreeSet<String>> {
    let started = Instant::now();
    loop {
        let map = served(nats).await;
        let owners: BTreeSet<&String> = map.values().flatten().collect();
        let once = map.len() == RPC_PARTITIONS && map.values().all(|s| s.len() == 1);
        if once && owners.len() == instances {
            return map;
        }
        assert!(
            started.elapsed() < SETTLE_MAX,
            "not settled on {instances} instances: {map:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_discoverable_and_counts_its_requests() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let conn = nats.connect().await;
    let t = Instant::now();
    settled(&conn, 1).await;
    println!(
        "one engine serves every partition {:?} after it started",
        t.elapsed()
    );
    let pings = discover(&conn, "PING").await;
    assert_eq!(pings.len(), 1, "{pings:?}");
    assert_eq!(pings[0]["name"], SERVICE_NAME);
    assert_eq!(pings[0]["version"], env!("CARGO_PKG_VERSION"));
    let info = discover(&conn, "INFO").await;
    assert!(info[0]["description"]
        .as_str()
        .is_some_and(|d| d.contains("paystate.rpc")));

    let client = Client::new(conn.clone());
    let commands = 5;
    for i in 0..commands {
        accept(&client, env(&order(&format!("disc{i}")), create(1_000))).await;
    }
    let started = Instant::now();
    loop {
        let stats = discover(&conn, "STATS").await;
        let requests: u64 = stats
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .map(|e| e["num_requests"].as_u64().unwrap_or(0))
            .sum();
        if requests >= commands {
            break;
        }
        assert!(started.elapsed() < WAIT, "stats: {stats:?}");
    }
    // The same through the CLI (for machines without the `nats` CLI).
    let cli = |verb: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
            .args(["service", verb])
            .env("PAYSTATE_NATS_URL", nats.url())
            .output()
            .expect("paystate service runs")
    };
    let ls = cli("ls");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{text}");
    assert!(text.contains("serving 64 partitions"), "{text}");
    let stats = cli("stats");
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.status.success() && text.contains("requests"),
        "{text}"
    );
    engine.shutdown().await;
    let gone = cli("ls");
    assert!(
        !gone.status.success(),
        "no instance answers once the engine stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_over_the_fast_path_and_a_retry_answered_as_duplicate() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let o = order("fastlife");
    accept(&client, env(&o, create(10_000))).await;
    accept(&client, env(&o, start())).await;
    // A provider signal goes on the signal plane (paystate.rpc.signal.*).
    assert_eq!(
        accept(&client, env(&o, authorized())).await.status,
        Status::Authorized
    );
    let capture = env(&o, capture(Some(6_000)));
    accept(&client, capture.clone()).await;
    let again = client.send(&capture, WAIT).await.expect("an outcome");
    assert!(
        matches!(
            again,
            Outcome::Accepted {
                duplicate: true,
                ..
            }
        ),
        "{again:?}"
    );
    let commits = nats.journal().await.read_order(&o).await.expect("read");
    assert_eq!(commits.len(), 4);
    assert_each_command_once(&commits);
    // The queue path still works beside it, on the same orders.
    let queued = client.via_queue();
    let state = accept(&queued, env(&o, captured(6_000))).await;
    assert_eq!(state.status, Status::Captured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_engine_requests_get_no_responders_and_the_client_retries_until_one_starts() {
    let nats = TestNats::start().await;
    let conn = nats.connect().await;
    let o = order("early");
    let cmd = env(&o, create(1_000));
    let bytes = serde_json::to_vec(&cmd).expect("json");
    let asked = Instant::now();
    let err = conn
        .request(rpc_subject(Plane::Client, o.as_str()), bytes.into())
        .await
        .expect_err("nobody serves");
    let took = asked.elapsed();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    assert!(
        took < Duration::from_millis(100),
        "no responders took {took:?}"
    );
    println!("no responders answered in {took:?}");

    let client = Client::new(conn.clone());
    let sending = tokio::spawn(async move { client.send(&cmd, WAIT).await });
    // The client is retrying (backing off); an engine starts meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sending.is_finished());
    let started = Instant::now();
    let _engine = nats.engine().await;
    let outcome = sending
        .await
        .expect("task")
        .expect("an outcome once an engine runs");
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    println!("answered {:?} after the engine started", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_split_the_partitions_and_the_survivor_takes_them_all() {
    let nats = TestNats::start().await;
    let first = nats.engine().await;
    let second = nats.engine().await;
    let conn = nats.connect().await;
    let map = settled(&conn, 2).await;
    let owners: BTreeSet<&String> = map.values().flatten().collect();
    println!(
        "two instances: {:?}",
        owners
            .iter()
            .map(|o| map.values().filter(|s| s.contains(*o)).count())
            .collect::<Vec<_>>()
    );
    let client = Client::new(conn.clone());
    let orders: Vec<_> = (0..8).map(|i| order(&format!("two{i}"))).collect();
    for o in &orders {
        accept(&client, env(o, create(1_000))).await;
    }
    let handled_by_first = first.stats.accepted.load(Relaxed);
    let handled_by_second = second.stats.accepted.load(Relaxed);
    assert_eq!(handled_by_first + handled_by_second, 8);

    // A crash: no clean stop, no key deleted; the survivor takes over after the lease.
    let killed = Instant::now();
    first.abort();
    settled(&conn, 1).await;
    let handover = killed.elapsed();
    println!("hand-over of every partition to the survivor: {handover:?}");
    assert!(handover < SETTLE_MAX);
    for o in &orders {
        accept(&client, env(o, start())).await;
    }
    assert_eq!(second.stats.accepted.load(Relaxed), handled_by_second + 8);
}

/// Order affinity on the queue path: both engines pull from the shared queue, yet each
/// order's commands are decided by the instance serving its partition (the other forwards
/// them and relays the outcome), so clients racing on a few hot orders cause almost no
/// optimistic-concurrency conflicts. tests/cluster.rs races the same way with affinity off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commands_are_decided_by_their_partitions_owner() {
    const ORDERS: usize = 4;
    const CLIENTS: usize = 8;
    const REFUNDS_EACH: usize = 40;
    const REFUND_MINOR: u64 = 1_000;
    let nats = TestNats::start().await;
    let a = nats.engine().await;
    let b = nats.engine().await;
    let conn = nats.connect().await;
    let map = settled(&conn, 2).await;
    let client = Client::new(conn.clone()).via_queue();
    let orders: Vec<_> = (0..ORDERS).map(|i| order(&format!("aff{i}"))).collect();
    for o in &orders {
        for cmd in to_captured(1_000_000) {
            accept(&client, env(o, cmd)).await;
        }
    }
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, orders) = (client.clone(), orders.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..REFUNDS_EACH {
                let o = &orders[(c + k) % ORDERS];
                accept(&client, env(o, refund(Some(REFUND_MINOR)))).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let journal = nats.journal().await;
    let mut refunds = 0;
    for o in &orders {
        let commits = journal.read_order(o).await.expect("read");
        assert_each_command_once(&commits);
        let s = paystate_journal::read::fold(o, &commits)
            .expect("fold")
            .expect("exists");
        refunds += s.refunds_pending.len();
    }
    assert_eq!(refunds, CLIENTS * REFUNDS_EACH, "every refund once");
    let commands = (ORDERS * 5 + CLIENTS * REFUNDS_EACH) as u64;
    let forwarded = a.stats.forwarded.load(Relaxed) + b.stats.forwarded.load(Relaxed);
    let conflicts = a.stats.conflicts.load(Relaxed) + b.stats.conflicts.load(Relaxed);
    let owners: BTreeSet<&String> = orders
        .iter()
        .flat_map(|o| &map[&rpc_partition(o.as_str())])
        .collect();
    println!(
        "two engines, queue path, {ORDERS} hot orders ({} owner(s)), {commands} commands: {forwarded} forwarded, {conflicts} conflicts",
        owners.len()
    );
    assert!(forwarded > 0, "the instance not serving an order forwards");
    let fallbacks =
        a.stats.forward_fallbacks.load(Relaxed) + b.stats.forward_fallbacks.load(Relaxed);
    assert_eq!(
        fallbacks, 0,
        "steady instances: every forward answered by the owner"
    );
    assert!(
        (conflicts as f64) < 0.05 * commands as f64,
        "{conflicts} conflicts in {commands} commands"
    );
}

/// The reply to a fast-path request: the service error code if it is one.
async fn request_with_header(
    conn: &async_nats::Client,
    subject: String,
    bytes: Vec<u8>,
    queued_seq: &str,
) -> async_nats::Message {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(QUEUED_SEQ_HEADER, queued_seq);
    let request = async_nats::Request::new()
        .payload(bytes.into())
        .headers(headers)
        .timeout(Some(WAIT));
    conn.send_request(subject, request)
        .await
        .expect("an answer")
}

fn error_code(reply: &async_nats::Message) -> Option<String> {
    reply
        .headers
        .as_ref()
        .and_then(|h| h.get(NATS_SERVICE_ERROR_CODE))
        .map(|v| v.as_str().to_string())
}

/// A queued command handed to its partition's owner is decided at the time the queue stored
/// it, exactly as the instance that pulled it would have, not at the owner's clock; the
/// sequence header only locates the command, so one that names other bytes, no command or
/// no number is refused 400 and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_command_is_decided_at_its_queued_time() {
    use async_nats::jetstream::consumer::PullConsumer;
    use paystate_events::subjects::{COMMANDS_STREAM, ENGINE_CONSUMER};
    let nats = TestNats::start().await;
    // The consumer's ack wait must outlast the test's hold on the queued command.
    let config = || paystate_service::EngineConfig {
        ack_wait: Duration::from_secs(60),
        ..engine_config()
    };
    let start = || async {
        paystate_service::run_engine(nats.connect().await, log_settings(), config())
            .await
            .expect("engine starts")
    };
    // Queued while no engine runs; then held (pulled, not acknowledged) as the instance that
    // hands it on holds it.
    start().await.shutdown().await;
    let conn = nats.connect().await;
    let o = order("fwdtime");
    let cmd = env(&o, create(10_000));
    Client::queue(conn.clone())
        .publish(&cmd)
        .await
        .expect("queued");
    let js = async_nats::jetstream::new(conn.clone());
    let consumer: PullConsumer = js
        .get_consumer_from_stream(ENGINE_CONSUMER, COMMANDS_STREAM)
        .await
        .expect("the engines' consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(WAIT)
        .messages()
        .await
        .expect("fetch");
    let held = batch
        .next()
        .await
        .expect("the queued command")
        .expect("message");
    let info = held.info().expect("JetStream message");
    let (seq, queued_at) = (
        info.stream_sequence,
        paystate_journal::read::to_chrono(info.published),
    );
    let engine = start().await;
    settled(&conn, 1).await;
    let subject = rpc_subject(Plane::Client, o.as_str());
    let bytes = serde_json::to_vec(&cmd).expect("json");
    let other = serde_json::to_vec(&env(&o, create(20_000))).expect("json");
    for (payload, header, why) in [
        (other, seq.to_string(), "other bytes at that sequence"),
        (bytes.clone(), (seq + 1_000).to_string(), "no command there"),
        (bytes.clone(), "12abc".to_string(), "not a sequence"),
        (bytes.clone(), "0".to_string(), "not a sequence"),
    ] {
        let reply = request_with_header(&conn, subject.clone(), payload, &header).await;
        assert_eq!(
            error_code(&reply).as_deref(),
            Some("400"),
            "{why}: {reply:?}"
        );
    }
    let journal = nats.journal().await;
    assert!(journal.read_order(&o).await.unwrap_or_default().is_empty());
    let reply = request_with_header(&conn, subject, bytes, &seq.to_string()).await;
    assert_eq!(error_code(&reply), None, "{reply:?}");
    let outcome = Outcome::from_json(&reply.payload).expect("an outcome");
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    let commits = journal.read_order(&o).await.expect("read");
    assert_eq!(commits.len(), 1);
    assert_eq!(
        commits[0].commit.decided_at, queued_at,
        "decided at the queue's receive time, not the owner's clock"
    );
    held.ack().await.expect("ack");
    assert_eq!(engine.stats.accepted.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replying_outside_the_inboxes_is_neither_answered_nor_committed() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let conn = nats.connect().await;
    settled(&conn, 1).await;
    let o = order("evilreply");
    let bytes = serde_json::to_vec(&env(&o, create(1_000))).expect("json");
    let mut evil = conn.subscribe("evil.replies.>").await.expect("subscribe");
    conn.publish_with_reply(
        rpc_subject(Plane::Client, o.as_str()),
        "evil.replies.1".to_string(),
        bytes.into(),
    )
    .await
    .expect("publish");
    // The engine saw it and refused it (counted as bad input).
    let started = Instant::now();
    while engine.stats.bad_input.load(Relaxed) == 0 {
        assert!(started.elapsed() < WAIT, "the engine never saw the request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = tokio::time::timeout(DISCOVERY_QUIET, evil.next()).await;
    assert!(answered.is_err(), "answered on evil.replies: {answered:?}");
    let commits = nats
        .journal()
        .await
        .read_order(&o)
        .await
        .unwrap_or_default();
    assert!(commits.is_empty(), "{commits:?}");
    assert_eq!(engine.stats.accepted.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_the_wrong_partition_is_refused_400() {
    let nats = TestNats::start().await;
    let engine = nats.engine().await;
    let conn = nats.connect().await;
    settled(&conn, 1).await;
    let o = order("wrongpart");
    let wrong = (rpc_partition(o.as_str()) + 1) % RPC_PARTITIONS;
    let bytes = serde_json::to_vec(&env(&o, create(1_000))).expect("json");
    let reply = conn
        .request(format!("paystate.rpc.cmd.{wrong}.{o}"), bytes.into())
        .await
        .expect("a service error reply");
    let code = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(NATS_SERVICE_ERROR_CODE))
        .map(|v| v.as_str().to_string());
    assert_eq!(code.as_deref(), Some("400"), "{reply:?}");
    assert_eq!(engine.stats.accepted.load(Relaxed), 0);
    let commits = nats
        .journal()
        .await
        .read_order(&o)
        .await
        .unwrap_or_default();
    assert!(commits.is_empty());
}

/// Throughput of the fast path beside the raw JetStream append (the same payload size, the
/// same concurrency) and the queue path, in one run. A measurement, not a check: run with
/// `cargo test -p paystate --release --test fast_path -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn throughput_against_the_raw_append() {
    // Overridable to see whether a run is bound by latency or by CPU.
    let knob = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let concurrency = knob("PAYSTATE_FAST_CONCURRENCY", 64);
    let per_task = knob("PAYSTATE_FAST_PER_TASK", 50);
    let nats = TestNats::start().await;
    // The shipped partition count (tests use 8): each partition task handles one command at
    // a time, so it bounds the concurrency of both paths.
    let cfg = paystate_service::EngineConfig {
        partitions: knob(
            "PAYSTATE_FAST_PARTITIONS",
            paystate_service::EngineConfig::default().partitions,
        ),
        ..engine_config()
    };
    let _engine = paystate_service::run_engine(nats.connect().await, log_settings(), cfg)
        .await
        .expect("engine");
    let conn = nats.connect().await;
    settled(&conn, 1).await;
    let rate = |n: usize, took: Duration| n as f64 / took.as_secs_f64();

    // Raw append: JetStream publishes of a command-sized body to a scratch stream.
    let js = async_nats::jetstream::new(conn.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await
    .expect("raw stream");
    let body = serde_json::to_vec(&env(&order("raw"), create(1_000))).expect("json");
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (js, body) = (js.clone(), body.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    js.publish(format!("raw.{t}.{i}"), body.clone().into())
                        .await
                        .expect("publish")
                        .await
                        .expect("ack");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let raw = rate(concurrency * per_task, started.elapsed());

    let mut rates = Vec::new();
    for (name, client) in [
        ("fast", Client::new(conn.clone())),
        ("queue", Client::queue(conn.clone())),
    ] {
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let o = order(&format!("{name}{t}x{i}"));
                        accept(&client, env(&o, create(1_000))).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        rates.push((name, rate(concurrency * per_task, started.elapsed())));
    }
    println!("raw append: {raw:.0}/s");
    for (name, r) in rates {
        println!("{name} path: {r:.0}/s = {:.2}x raw", r / raw);
    }
}
