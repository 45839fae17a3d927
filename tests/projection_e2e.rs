//! The order projection through a real nats-server: equal to a fresh fold of the log after a
//! random workload on several engines; unchanged by a projector SIGKILLed mid-stream;
//! rebuilt into a fresh generation and swapped in while the old one serves; queried over
//! HTTP and the CLI.

mod support;

use paystate_events::{Outcome, Status};
use paystate_projection::layout::{order_key, POINTER_BUCKET, POINTER_KEY};
use paystate_projection::{
    list, rebuild, start_projector, Generation, OrderFilter, ProjectedOrder, ProjectorConfig,
    RebuildOptions, LIST_LIMIT_DEFAULT,
};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workload_projection_equals_a_fresh_fold_of_the_log() {
    let nats = TestNats::start().await;
    let (_a, _b) = (nats.engine().await, nats.engine().await);
    let store = projection_store(&nats).await;
    let projector = start_projector(
        store.clone(),
        ProjectorConfig {
            batch_max: 64,
            ..Default::default()
        },
    )
    .await
    .expect("projector");
    let seed = test_seed();
    eprintln!("workload seed {seed} (PAYSTATE_TEST_SEED={seed} replays it)");
    let workload = sample(workload_strategy(24, 12), seed);
    let client = nats.client().await;
    let done = run_workload(&client, "rand", workload).await;
    wait_projection_caught_up(&store).await;
    let journal = nats.journal().await;
    let orders: Vec<_> = done.iter().map(|(o, _)| o.clone()).collect();
    assert_projection_equals_fold(&store, &journal, &orders).await;
    // The projection also agrees with what the engine answered last for each order.
    for (o, outcomes) in &done {
        let last_state = outcomes
            .iter()
            .rev()
            .find_map(Outcome::state)
            .expect("creation was accepted");
        let record = store.get(o).await.expect("get").expect("projected");
        // Rejections after it are logged commits (decision 0013): they move only the commit
        // count, the chain head and the time.
        let mut expected = last_state.clone();
        if outcomes.last().is_some_and(|last| last.state().is_none()) {
            assert!(record.state.commits >= expected.commits, "order {o}");
            expected.commits = record.state.commits;
            expected.head_hash.clone_from(&record.state.head_hash);
            expected.updated_at = record.state.updated_at;
        }
        assert_eq!(
            record.state, expected,
            "order {o}: projection vs the engine's last reported state"
        );
    }
    assert!(
        projector
            .stats
            .applied
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    projector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_killed_mid_stream_and_restarted_applies_everything_exactly_once() {
    let nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let url = nats.url();
    // A projector process, SIGKILLed and restarted while commands keep coming.
    let mut projector = ProjectorProcess::start(&url);
    let orders: Vec<_> = (0..40).map(|i| order(&format!("kill{i}"))).collect();
    let writer = {
        let (client, orders) = (client.clone(), orders.clone());
        tokio::spawn(async move {
            for round in 0..5 {
                for o in &orders {
                    let cmd = match round {
                        0 => create(10_000),
                        1 => start(),
                        2 => authorized(),
                        3 => capture(Some(7_000)),
                        _ => captured(7_000),
                    };
                    client.publish(&env(o, cmd)).await.expect("broker accepts");
                }
            }
        })
    };
    let store = projection_store(&nats).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        projector.kill9().await;
        projector.spawn();
    }
    writer.await.expect("writer");
    let journal = nats.journal().await;
    for o in &orders {
        wait_for_commits(&journal, o, 5).await;
    }
    wait_until_live(&store).await;
    wait_projection_caught_up(&store).await;
    assert_projection_equals_fold(&store, &journal, &orders).await;
    for o in &orders {
        let r = store.get(o).await.expect("get").expect("projected");
        assert_eq!(
            (r.state.status, r.state.commits, r.state.captured.0),
            (Status::Captured, 5, 7_000),
            "order {o}"
        );
    }
    projector.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_swaps_in_a_fresh_generation_while_the_old_one_serves_and_http_queries_it() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let done = run_workload(
        &client,
        "gen",
        sample(workload_strategy(10, 8), test_seed()),
    )
    .await;
    let captured_order = order("cap");
    for cmd in [
        create(5_000),
        start(),
        authorized(),
        capture(None),
        captured(5_000),
    ] {
        accept(&client, env(&captured_order, cmd)).await;
    }
    wait_projection_caught_up(&store).await;
    let before = projection_records(&store).await;
    let old = store.live().await.expect("live");
    let journal = nats.journal().await;
    let opts = RebuildOptions {
        keep_old: true,
        ..Default::default()
    };
    let report = rebuild(&store, &journal, &opts, &mut |_, _| {})
        .await
        .expect("rebuild");
    assert!(report.swapped);
    assert_eq!(report.generation.generation, old.generation + 1);
    assert_eq!(
        store.live().await.expect("live").generation,
        report.generation.generation
    );
    // The kept old bucket still answers, and the new one holds exactly the same records.
    let old_bucket = store.bucket(&old).await.expect("old bucket kept");
    assert!(old_bucket
        .get(paystate_projection::layout::order_key(&captured_order))
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        projection_records(&store).await,
        before,
        "rebuilt generation equals the live one it replaced"
    );
    // The running projector follows the swap: new commands land in the new generation.
    let late = order("late");
    accept(&client, env(&late, create(1_000))).await;
    wait_projection_caught_up(&store).await;
    let mut all: Vec<_> = done.iter().map(|(o, _)| o.clone()).collect();
    all.extend([captured_order.clone(), late.clone()]);
    assert_projection_equals_fold(&store, &journal, &all).await;
    http_queries(&store, &captured_order).await;
    cli_queries(&nats.url(), &captured_order).await;
    projector.shutdown().await;
}

/// A log of more orders than one pass may fold is rebuilt in several passes, each writing
/// its share of the records: the rebuilt generation equals the live one, record for record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_in_several_passes_writes_the_same_records() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let done = run_workload(
        &client,
        "passes",
        sample(workload_strategy(10, 8), test_seed()),
    )
    .await;
    wait_projection_caught_up(&store).await;
    let before = projection_records(&store).await;
    assert!(before.len() >= 2, "a workload of several orders");
    let journal = nats.journal().await;
    let opts = RebuildOptions {
        orders_per_pass: 3,
        ..Default::default()
    };
    let report = rebuild(&store, &journal, &opts, &mut |_, _| {})
        .await
        .expect("rebuild");
    let orders = journal
        .stream()
        .get_info()
        .await
        .expect("info")
        .state
        .subjects_count;
    assert_eq!(report.passes, orders.div_ceil(3), "{report:?}");
    assert!(report.passes > 1, "{report:?}");
    assert_eq!(report.orders, before.len() as u64, "{report:?}");
    assert!(report.swapped);
    assert_eq!(
        projection_records(&store).await,
        before,
        "rebuilt in passes, the generation equals the live one it replaced"
    );
    let all: Vec<_> = done.iter().map(|(o, _)| o.clone()).collect();
    assert_projection_equals_fold(&store, &journal, &all).await;
    projector.shutdown().await;
}

/// Anyone who may publish can have the broker store its answer (a PubAck) at the projection
/// pointer (docs/security.md, Known limits). Readers look past it to the generation written
/// before it; a rebuild, a starting projector and a running one each take the key over with a
/// revision-checked write (with that generation, not a new generation 1); projecting goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_planted_at_the_projection_pointer_stops_nothing() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let a = order("ptr-a");
    for cmd in to_captured(5_000) {
        accept(&client, env(&a, cmd)).await;
    }
    wait_projection_caught_up(&store).await;
    projector.shutdown().await;
    // Given the broker's answer at the pointer, and no projector running to take it over.
    let pointer = store
        .context()
        .get_key_value(POINTER_BUCKET)
        .await
        .expect("pointer bucket");
    let planted = plant::<Generation>(&nats, &pointer, POINTER_KEY).await;
    // Then readers still follow generation 1: one order, a listing, the status.
    assert_eq!(store.live().await.expect("live").generation, 1);
    let record = store.get(&a).await.expect("get").expect("projected");
    assert_eq!(record.state.status, Status::Captured);
    assert!(projection_records(&store).await.contains_key(a.as_str()));
    assert_eq!(
        store.status().await.expect("status").generation.generation,
        1
    );
    // When a rebuild runs, it swaps its generation in over the planted value.
    let report = rebuild(&store, &journal, &RebuildOptions::default(), &mut |_, _| {})
        .await
        .expect("rebuild");
    assert!(report.swapped, "{report:?}");
    assert_eq!(report.generation.generation, 2);
    assert_eq!(report.previous.map(|g| g.generation), Some(1));
    assert_pointer(&pointer, 2, planted).await;
    // When a projector starts on a planted value, it writes the generation before it back.
    let planted = plant::<Generation>(&nats, &pointer, POINTER_KEY).await;
    let projector = start_projector(store.clone(), ProjectorConfig::default())
        .await
        .expect("a projector starts");
    assert_pointer(&pointer, 2, planted).await;
    // And a running projector takes over the next one.
    let before = pointer_revision(&pointer).await;
    plant_raw(&nats, POINTER_BUCKET, POINTER_KEY).await;
    poll_until(|| async {
        let e = pointer.entry(POINTER_KEY).await.ok().flatten()?;
        let g = serde_json::from_slice::<Generation>(&e.value).ok()?;
        (e.revision > before + 1).then_some(g.generation)
    })
    .await;
    let junk = pointer
        .entry_for_revision(POINTER_KEY, before + 1)
        .await
        .expect("entry")
        .expect("the planted value");
    assert!(serde_json::from_slice::<Generation>(&junk.value).is_err());
    assert_pointer(&pointer, 2, before + 1).await;
    // Projecting goes on.
    let b = order("ptr-b");
    accept(&client, env(&b, create(1_000))).await;
    accept(&client, env(&a, refund(Some(1_000)))).await;
    wait_projection_caught_up(&store).await;
    assert_projection_equals_fold(&store, &journal, &[a, b]).await;
    projector.shutdown().await;
}

/// The broker's answer stored at the key of no order in a generation bucket: one order, a
/// listing and the audit's projection comparison all go on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_planted_at_a_generation_key_is_skipped_by_scans() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let a = order("scan-a");
    for cmd in to_captured(5_000) {
        accept(&client, env(&a, cmd)).await;
    }
    wait_projection_caught_up(&store).await;
    let generation = store.live().await.expect("live");
    let bucket = store.bucket(&generation).await.expect("bucket");
    let planted = order("planted");
    plant::<ProjectedOrder>(&nats, &bucket, &order_key(&planted)).await;
    assert_eq!(
        store.get(&planted).await.expect("a read, not an error"),
        None
    );
    let records = projection_records(&store).await;
    assert_eq!(
        records.keys().collect::<Vec<_>>(),
        [a.as_str()],
        "the planted value is skipped"
    );
    let listed = list(&store, &OrderFilter::default(), LIST_LIMIT_DEFAULT)
        .await
        .expect("list");
    assert_eq!(listed.scanned, 1);
    assert_eq!(listed.orders.len(), 1);
    let report = paystate_audit::audit(
        &journal,
        Some(&store),
        &paystate_audit::AuditOptions::default(),
        &mut |_, _| {},
    )
    .await
    .expect("the audit runs");
    let check = report.projection.as_ref().expect("projection compared");
    assert_eq!((check.records, check.compared), (1, 1), "{report:#?}");
    assert_eq!(report.findings_total, 0, "{report:#?}");
    projector.shutdown().await;
}

/// The broker's answer stored at a real order's record: read as no record (not an error) until
/// the order's next commit, when the projector folds the order's log from its start and writes
/// the record over the planted value; nothing is given back or dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_answer_planted_at_an_orders_record_is_written_over_from_the_log() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let (a, other) = (order("rec-a"), order("rec-other"));
    for cmd in [create(5_000), start(), authorized()] {
        accept(&client, env(&a, cmd)).await;
    }
    accept(&client, env(&other, create(1_000))).await;
    wait_projection_caught_up(&store).await;
    let generation = store.live().await.expect("live");
    let bucket = store.bucket(&generation).await.expect("bucket");
    let key = order_key(&a);
    let planted = plant::<ProjectedOrder>(&nats, &bucket, &key).await;
    assert_eq!(store.get(&a).await.expect("a read, not an error"), None);
    assert_eq!(
        projection_records(&store).await.keys().collect::<Vec<_>>(),
        [other.as_str()]
    );
    // When the order's next commits come (and another order's), they are projected.
    accept(&client, env(&a, capture(None))).await;
    accept(&client, env(&a, captured(5_000))).await;
    accept(&client, env(&other, start())).await;
    wait_projection_caught_up(&store).await;
    assert_projection_equals_fold(&store, &journal, &[a.clone(), other]).await;
    let record = store.get(&a).await.expect("get").expect("projected");
    assert_eq!(
        (record.state.status, record.state.commits),
        (Status::Captured, 5)
    );
    let entry = bucket.entry(&key).await.expect("entry").expect("record");
    assert!(entry.revision > planted, "written over the planted value");
    let dead = projector
        .stats
        .dead_lettered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dead, 0, "nothing dead-lettered");
    projector.shutdown().await;
}

/// `paystate project swap` after `project rebuild --no-swap`, with commits in between that
/// nobody projected into the new generation: readers see the latest state, not the snapshot
/// the generation was built from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_catches_the_generation_up_before_readers_see_it() {
    let nats = TestNats::start().await;
    let (_engine, store, projector) = projected(&nats).await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let a = order("swap-a");
    for cmd in [create(5_000), start(), authorized()] {
        accept(&client, env(&a, cmd)).await;
    }
    wait_projection_caught_up(&store).await;
    let opts = RebuildOptions {
        swap: false,
        ..Default::default()
    };
    let report = rebuild(&store, &journal, &opts, &mut |_, _| {})
        .await
        .expect("rebuild --no-swap");
    assert_eq!((report.generation.generation, report.swapped), (2, false));
    // Later: more commits, projected into the live generation 1 only.
    let b = order("swap-b");
    accept(&client, env(&a, capture(None))).await;
    accept(&client, env(&a, captured(5_000))).await;
    accept(&client, env(&b, create(1_000))).await;
    wait_projection_caught_up(&store).await;
    projector.shutdown().await;
    let (code, out, err) = paystate_cli(&nats.url(), &["project", "swap", "2"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // Readers, at once: generation 2, with every commit.
    assert_eq!(store.live().await.expect("live").generation, 2);
    let record = store.get(&a).await.expect("get").expect("projected");
    assert_eq!(
        (record.state.status, record.state.commits),
        (Status::Captured, 5)
    );
    assert!(store.get(&b).await.expect("get").is_some(), "the new order");
    assert_projection_equals_fold(&store, &journal, &[a, b]).await;
}

/// Has nats-server store its answer to a JetStream publish at `key` of `bucket`, as any
/// client may: a command publish naming the key as its reply subject (docs/security.md, Known
/// limits). Returns the planted value's revision, once it is there (a value that does not
/// decode as `T`, paystate's own type for the key).
async fn plant<T: serde::de::DeserializeOwned>(
    nats: &TestNats,
    bucket: &async_nats::jetstream::kv::Store,
    key: &str,
) -> u64 {
    let before = bucket
        .entry(key)
        .await
        .expect("entry")
        .map_or(0, |e| e.revision);
    let name = bucket.name.clone();
    plant_raw(nats, &name, key).await;
    let (revision, value) = poll_until(|| async {
        let e = bucket.entry(key).await.ok().flatten()?;
        (e.revision > before).then_some((e.revision, e.value))
    })
    .await;
    assert!(serde_json::from_slice::<T>(&value).is_err(), "{value:?}");
    assert!(
        String::from_utf8_lossy(&value).contains("\"seq\""),
        "the broker's PubAck is stored at {key}: {value:?}"
    );
    revision
}

async fn plant_raw(nats: &TestNats, bucket: &str, key: &str) {
    let planter = nats.connect().await;
    planter
        .publish_with_reply(
            format!("paystate.cmd.{}", order("planter")),
            format!("$KV.{bucket}.{key}"),
            "junk".into(),
        )
        .await
        .expect("publish");
    planter.flush().await.expect("flush");
}

async fn pointer_revision(pointer: &async_nats::jetstream::kv::Store) -> u64 {
    pointer
        .entry(POINTER_KEY)
        .await
        .expect("entry")
        .expect("pointer")
        .revision
}

/// The pointer names `generation`, written after the planted value at `planted`.
async fn assert_pointer(pointer: &async_nats::jetstream::kv::Store, generation: u64, planted: u64) {
    let e = pointer
        .entry(POINTER_KEY)
        .await
        .expect("entry")
        .expect("pointer");
    let g: Generation = serde_json::from_slice(&e.value).expect("a generation paystate wrote");
    assert_eq!(g.generation, generation);
    assert!(e.revision > planted, "written over the planted value");
}

/// Polls `f` until it gives a value (up to [`WAIT`]).
async fn poll_until<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < WAIT, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn http_queries(
    store: &paystate_projection::ProjectionStore,
    captured_order: &paystate_events::OrderId,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = paystate_gateway::private_router(
        paystate_gateway::AppState {
            projection: store.clone(),
        },
        None,
        api_keys(),
        Default::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(paystate_gateway::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    let (status, body) = http_get_as(addr, &format!("/orders/{captured_order}"), None).await;
    assert_eq!(status, 401, "the private listener needs a key: {body}");
    assert!(!body.contains(captured_order.as_str()), "{body}");
    let (status, body) = http_get(addr, &format!("/orders/{captured_order}")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (v["status"].as_str(), v["captured"]["minor_units"].as_u64()),
        (Some("captured"), Some(5_000)),
        "{body}"
    );
    let (status, body) = http_get(addr, "/orders/no-such-order").await;
    assert_eq!(status, 404, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(v["error"]["code"], "order_not_found");
    let (status, body) = http_get(addr, "/orders?state=captured&provider=plural&limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let listed = v["orders"].as_array().expect("orders");
    assert!(listed.iter().all(|o| o["status"] == "captured"));
    assert!(listed
        .iter()
        .any(|o| o["order_id"] == captured_order.as_str()));
    let (status, body) = http_get(addr, "/orders?state=teleported").await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).expect("json")["error"]["code"]
                .clone()
        ),
        (400, "invalid_query".into())
    );
    let _ = stop.send(());
    let _ = server.await;
}

async fn cli_queries(url: &str, captured_order: &paystate_events::OrderId) {
    let (code, out, err) =
        paystate_cli(url, &["order", "show", captured_order.as_str(), "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"status\": \"captured\""), "{out}");
    let (code, _, _) = paystate_cli(url, &["order", "show", "no-such-order"]).await;
    assert_eq!(code, 1);
    let (code, out, err) = paystate_cli(
        url,
        &[
            "orders",
            "list",
            "--state",
            "captured",
            "--created-after",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(captured_order.as_str()), "{out}");
    let (code, out, _) = paystate_cli(
        url,
        &["orders", "list", "--has-discrepancy", "--state", "created"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(!out.contains(captured_order.as_str()), "{out}");
}

/// A minimal HTTP/1.1 GET: (status, body).
/// A GET on the private listener with the test read key.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get_as(addr, path, Some(&test_keys().read)).await
}

async fn http_get_as(addr: std::net::SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
