//! Faults, tested rather than assumed, on both paths (decision 0013): the engine process is
//! SIGKILLed mid-stream and restarted; the nats-server is SIGKILLed mid-flow and restarted.
//! Clients behave as real callers do (support::load): on the fast path the client retries
//! "no responders" and timeouts with the same bytes, on the queue path commands wait in the
//! durable queue. Afterwards every command's effect is in the log exactly once and every
//! order is complete.

mod support;

use paystate_events::subjects::{rpc_subject, Plane};
use std::time::{Duration, Instant};
use support::load::*;
use support::*;

/// How long the engine (or the server) stays down: long enough that every client has a
/// command waiting on it.
const DOWN_FOR: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_killed_mid_stream_and_restarted_loses_and_duplicates_nothing_fast_path() {
    engine_killed_mid_stream_and_restarted(Path::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_killed_mid_stream_and_restarted_loses_and_duplicates_nothing_queue_path() {
    engine_killed_mid_stream_and_restarted(Path::Queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_flow_loses_and_duplicates_nothing_fast_path() {
    nats_server_restarted_mid_flow(Path::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_flow_loses_and_duplicates_nothing_queue_path() {
    nats_server_restarted_mid_flow(Path::Queue).await;
}

async fn engine_killed_mid_stream_and_restarted(path: Path) {
    let nats = TestNats::start().await;
    nats.engine().await.shutdown().await; // streams exist before clients publish
    let mut engine = EngineProcess::start(&nats.url());
    let client = on_path(nats.client().await, path);
    let journal = nats.journal().await;
    let load = spawn_clients(&client, "kill");
    wait_for_log_messages(&journal, 40).await;
    engine.kill9().await;
    let killed = Instant::now();
    // Commands keep coming while no engine runs: on the queue path they wait in the queue;
    // on the fast path nobody serves the service and the clients retry.
    tokio::time::sleep(DOWN_FOR).await;
    let while_down = match path {
        Path::Queue => {
            let queued = queue_depth(&nats).await;
            assert!(queued > 0, "the clients' commands wait in the queue");
            format!("{queued} queued")
        }
        Path::Fast => {
            assert_no_responders(&nats).await;
            "requests answered 'no responders'".to_string()
        }
    };
    let logged = log_messages(&journal).await;
    engine.restart().await;
    let down = wait_for_log_growth(&journal, logged).await - killed;
    let done = assert_all_complete(&journal, load).await;
    assert_fast_path_client_retried_alone(path, &done);
    eprintln!(
        "engine SIGKILL, {path:?} path: {done}; engine down {down:?} (kill to next commit; {while_down})"
    );
    engine.kill9().await;
}

/// Order affinity under a crash: two engine processes share the queue, each forwarding the
/// commands of the other's partitions to it. One is SIGKILLed mid-stream and stays dead:
/// forwards to it find no responders (or time out, when it died holding one) and the
/// survivor decides them itself, then takes over all partitions; what the dead one held is
/// redelivered. Every command lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_engines_killed_with_queue_affinity_loses_and_duplicates_nothing() {
    let nats = TestNats::start().await;
    nats.engine().await.shutdown().await; // streams exist before clients publish
    let mut doomed = EngineProcess::start(&nats.url());
    let mut survivor = EngineProcess::start(&nats.url());
    // Both serve their share before the load starts, so commands are forwarded both ways.
    served_once_within(&nats.connect().await, 2, Duration::from_secs(30))
        .await
        .expect("two engines share the partitions");
    let client = on_path(nats.client().await, Path::Queue);
    let journal = nats.journal().await;
    let load = spawn_clients(&client, "aff");
    wait_for_log_messages(&journal, 40).await;
    doomed.kill9().await;
    let killed = Instant::now();
    let done = assert_all_complete(&journal, load).await;
    eprintln!(
        "one of two engines SIGKILLed, queue path with affinity: {done}; all complete {:?} after the kill",
        killed.elapsed()
    );
    survivor.kill9().await;
}

async fn nats_server_restarted_mid_flow(path: Path) {
    let mut nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = on_path(nats.client().await, path);
    let journal = nats.journal().await;
    let load = spawn_clients(&client, "srv");
    wait_for_log_messages(&journal, 40).await;
    nats.server.kill().await;
    let killed = Instant::now();
    tokio::time::sleep(DOWN_FOR).await;
    nats.server
        .restart()
        .await
        .expect("nats-server restarts on the same port and store");
    let down = killed.elapsed();
    let done = assert_all_complete(&journal, load).await;
    assert_fast_path_client_retried_alone(path, &done);
    eprintln!(
        "nats-server SIGKILL, {path:?} path: {done}; server down {down:?} (kill to restarted)"
    );
}

async fn queue_depth(nats: &TestNats) -> u64 {
    let js = async_nats::jetstream::new(nats.connect().await);
    match js
        .get_stream(paystate_events::subjects::COMMANDS_STREAM)
        .await
    {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// With the only engine dead, a fast-path request finds nobody serving its partition.
async fn assert_no_responders(nats: &TestNats) {
    let probe = nats
        .connect()
        .await
        .request(rpc_subject(Plane::Client, "probe"), "{}".into())
        .await;
    match probe {
        Err(e) => assert_eq!(e.kind(), async_nats::RequestErrorKind::NoResponders, "{e}"),
        Ok(m) => panic!("a dead engine answered: {m:?}"),
    }
}

/// On the fast path one `Client::send` (waiting [`FAST_SEND_WAIT`]) covers the outage: it
/// retries with the same bytes until the engine answers, the caller never sends again.
fn assert_fast_path_client_retried_alone(path: Path, done: &Completed) {
    if path == Path::Fast {
        assert_eq!(
            done.resends, 0,
            "Client::send gave up within {FAST_SEND_WAIT:?}: {done}"
        );
    }
}

/// Two engines share the fast-path partitions; the nats-server is SIGKILLed and restarted
/// (the engines bucket, memory storage, is gone with it). Within a deadline the engines find
/// each other again and every partition is served by exactly one of them (before the fix the
/// heartbeats kept failing on the vanished bucket and both served all 64 for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_share_the_partitions_again_after_a_server_restart() {
    let mut nats = TestNats::start().await;
    let _a = nats.engine().await;
    let _b = nats.engine().await;
    let probe = nats.connect().await;
    let before = served_once_within(&probe, 2, Duration::from_secs(20)).await;
    assert_eq!(before, Ok(()), "two engines split the partitions at start");
    nats.server.kill().await;
    nats.server
        .restart()
        .await
        .expect("nats-server restarts on the same port and store");
    let started = std::time::Instant::now();
    // The failure this guards against appears only once a member's lease has run out
    // without heartbeats: look after twice the lease, not before.
    tokio::time::sleep(2 * paystate_service::fast::MEMBER_LEASE).await;
    let after = served_once_within(&probe, 2, Duration::from_secs(30)).await;
    assert_eq!(
        after,
        Ok(()),
        "after the restart every partition has one owner again"
    );
    eprintln!(
        "server restart: partitions served once again {:.1} s after the restart",
        started.elapsed().as_secs_f64()
    );
}
