//! Faults, tested rather than assumed: the engine process is SIGKILLed mid-stream and
//! restarted; the nats-server is SIGKILLed mid-flow and restarted. Clients behave as real
//! callers do (support::load). Afterwards every command's effect is in the log exactly once
//! and every order is complete.

mod support;

use std::time::Duration;
use support::load::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let nats = TestNats::start().await;
    nats.engine().await.shutdown().await; // streams exist before clients publish
    let mut engine = EngineProcess::start(&nats.url());
    let client = nats.client().await;
    let journal = nats.journal().await;
    let tasks = spawn_clients(&client, "kill");
    wait_for_log_messages(&journal, 40).await;
    engine.kill9().await;
    // Commands keep arriving while no engine runs; they wait in the queue.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let queued = queue_depth(&nats).await;
    engine.restart().await;
    let (orders, commands) = assert_all_complete(&journal, tasks).await;
    assert_eq!(orders, CLIENTS * ORDERS_PER_CLIENT);
    eprintln!("engine SIGKILL: {orders} orders, {commands} commands each applied once; {queued} queued while down");
    engine.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_flow_loses_and_duplicates_nothing() {
    let mut nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let journal = nats.journal().await;
    let tasks = spawn_clients(&client, "srv");
    wait_for_log_messages(&journal, 40).await;
    nats.server.kill().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    nats.server
        .restart()
        .await
        .expect("nats-server restarts on the same port and store");
    let (orders, commands) = assert_all_complete(&journal, tasks).await;
    assert_eq!(orders, CLIENTS * ORDERS_PER_CLIENT);
    eprintln!("nats-server SIGKILL: {orders} orders, {commands} commands each applied once");
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
