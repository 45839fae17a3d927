//! Faults, tested rather than assumed: the engine process is SIGKILLed mid-stream and
//! restarted; the nats-server is SIGKILLed mid-flow and restarted. Clients behave as real
//! callers do: they wait for each outcome and retry with the same command id when none comes.
//! Afterwards every command's effect is in the log exactly once and every order is complete.

mod support;

use paystate_engine::check_invariants;
use paystate_events::{CommandEnvelope, OrderId, Outcome, SignalKind, Status};
use paystate_service::{Client, ClientError};
use std::time::Duration;
use support::*;

const ORDERS_PER_CLIENT: usize = 4;
const CLIENTS: usize = 8;
/// How long a client waits for an outcome before retrying the same command.
const ATTEMPT_WAIT: Duration = Duration::from_secs(3);
const ATTEMPTS_MAX: usize = 20;

/// The script each order goes through; ids are deterministic so retries reuse them.
fn script(o: &OrderId) -> Vec<CommandEnvelope> {
    let refund_a = env_with_id(o, &format!("{o}.refund-a"), refund(Some(1_000)));
    let refund_done = SignalKind::Refunded { refund_id: Some(refund_a.command_id.to_string()), amount: None };
    vec![
        env_with_id(o, &format!("{o}.create"), create(10_000)),
        env_with_id(o, &format!("{o}.start"), start()),
        env_with_id(o, &format!("{o}.auth"), authorized()),
        env_with_id(o, &format!("{o}.capture"), capture(Some(8_000))),
        env_with_id(o, &format!("{o}.captured"), captured(8_000)),
        refund_a,
        env_with_id(o, &format!("{o}.refunded"), signal(refund_done, "ev-refund-a")),
        env_with_id(o, &format!("{o}.refund-b"), refund(Some(500))),
    ]
}

/// Sends `cmd` until an outcome arrives, retrying with the same id through outages.
async fn send_until_answered(client: &Client, cmd: &CommandEnvelope) -> Outcome {
    for _ in 0..ATTEMPTS_MAX {
        match client.send(cmd, ATTEMPT_WAIT).await {
            Ok(outcome) => return outcome,
            Err(ClientError::Timeout(_)) => {}
            Err(ClientError::NotAccepted(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no outcome for {} after {ATTEMPTS_MAX} attempts", cmd.command_id)
}

async fn drive_orders(client: Client, prefix: String) -> Vec<OrderId> {
    let mut orders = Vec::new();
    for i in 0..ORDERS_PER_CLIENT {
        let o = order(&format!("{prefix}{i}"));
        for cmd in script(&o) {
            let outcome = send_until_answered(&client, &cmd).await;
            assert!(matches!(outcome, Outcome::Accepted { .. }), "{} rejected: {outcome:?}", cmd.command_id);
        }
        orders.push(o);
    }
    orders
}

fn spawn_clients(client: &Client, tag: &str) -> Vec<tokio::task::JoinHandle<Vec<OrderId>>> {
    (0..CLIENTS).map(|c| tokio::spawn(drive_orders(client.clone(), format!("{tag}{c}x")))).collect()
}

async fn assert_all_complete(nats: &TestNats, tasks: Vec<tokio::task::JoinHandle<Vec<OrderId>>>) -> usize {
    let journal = nats.journal().await;
    let mut orders = 0;
    for t in tasks {
        for o in t.await.expect("client finished") {
            let commits = journal.read_order(&o).await.expect("read");
            assert_each_command_once(&commits);
            assert_eq!(commits.len(), script(&o).len(), "order {o}: every command applied exactly once");
            let s = paystate_journal::read::fold(&o, &commits).expect("fold").expect("exists");
            assert!(check_invariants(&s).is_empty());
            assert_eq!((s.status, s.captured.0, s.refunded.0, s.refunds_pending.len()), (Status::Captured, 8_000, 1_000, 1));
            orders += 1;
        }
    }
    orders
}

async fn wait_for_log_messages(nats: &TestNats, at_least: u64) {
    let journal = nats.journal().await;
    for _ in 0..400 {
        if journal.stream().get_info().await.map(|i| i.state.messages).unwrap_or(0) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never reached {at_least} messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let nats = TestNats::start().await;
    nats.engine().await.shutdown().await; // streams exist before clients publish
    let mut engine = EngineProcess::start(&nats.url());
    let client = nats.client().await;
    let tasks = spawn_clients(&client, "kill");
    wait_for_log_messages(&nats, 40).await;
    engine.kill9().await;
    // Commands keep arriving while no engine runs; they wait in the queue.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let queued = client_queue_depth(&nats).await;
    engine.restart().await;
    let orders = assert_all_complete(&nats, tasks).await;
    assert_eq!(orders, CLIENTS * ORDERS_PER_CLIENT);
    eprintln!("engine kill: {orders} orders complete; {queued} commands were queued while the engine was down");
    engine.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_flow_loses_and_duplicates_nothing() {
    let mut nats = TestNats::start().await;
    let _engine = nats.engine().await;
    let client = nats.client().await;
    let tasks = spawn_clients(&client, "srv");
    wait_for_log_messages(&nats, 40).await;
    nats.server.kill().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    nats.server.restart().await.expect("nats-server restarts on the same port and store");
    let orders = assert_all_complete(&nats, tasks).await;
    assert_eq!(orders, CLIENTS * ORDERS_PER_CLIENT);
}

async fn client_queue_depth(nats: &TestNats) -> u64 {
    let js = async_nats::jetstream::new(nats.connect().await);
    match js.get_stream(paystate_events::subjects::COMMANDS_STREAM).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}
