//! A steady, realistic load for fault tests: clients that wait for each outcome and retry the
//! same command id when none comes (through engine crashes, broker restarts, elections).

use super::*;
use paystate_engine::check_invariants;
use paystate_events::{OrderId, Outcome, SignalKind, Status};
use paystate_service::ClientError;

pub const ORDERS_PER_CLIENT: usize = 4;
pub const CLIENTS: usize = 8;
/// How long a client waits for an outcome before retrying the same command.
pub const ATTEMPT_WAIT: Duration = Duration::from_secs(3);
pub const ATTEMPTS_MAX: usize = 30;

/// The script each order goes through; ids are deterministic so retries reuse them.
pub fn script(o: &OrderId) -> Vec<CommandEnvelope> {
    let refund_a = env_with_id(o, &format!("{o}.refund-a"), refund(Some(1_000)));
    let refund_done = SignalKind::Refunded {
        refund_id: Some(refund_a.command_id.to_string()),
        amount: None,
    };
    vec![
        env_with_id(o, &format!("{o}.create"), create(10_000)),
        env_with_id(o, &format!("{o}.start"), start()),
        env_with_id(o, &format!("{o}.auth"), authorized()),
        env_with_id(o, &format!("{o}.capture"), capture(Some(8_000))),
        env_with_id(o, &format!("{o}.captured"), captured(8_000)),
        refund_a,
        env_with_id(
            o,
            &format!("{o}.refunded"),
            signal(refund_done, "ev-refund-a"),
        ),
        env_with_id(o, &format!("{o}.refund-b"), refund(Some(500))),
    ]
}

/// Sends `cmd` until an outcome arrives, retrying with the same id through outages.
pub async fn send_until_answered(client: &Client, cmd: &CommandEnvelope) -> Outcome {
    for _ in 0..ATTEMPTS_MAX {
        match client.send(cmd, ATTEMPT_WAIT).await {
            Ok(outcome) => return outcome,
            Err(ClientError::Timeout(_)) => {}
            Err(ClientError::NotAccepted(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!(
        "no outcome for {} after {ATTEMPTS_MAX} attempts",
        cmd.command_id
    )
}

async fn drive_orders(client: Client, prefix: String) -> Vec<OrderId> {
    let mut orders = Vec::new();
    for i in 0..ORDERS_PER_CLIENT {
        let o = order(&format!("{prefix}{i}"));
        for cmd in script(&o) {
            let outcome = send_until_answered(&client, &cmd).await;
            assert!(
                matches!(outcome, Outcome::Accepted { .. }),
                "{} rejected: {outcome:?}",
                cmd.command_id
            );
        }
        orders.push(o);
    }
    orders
}

/// Starts [`CLIENTS`] clients, each driving [`ORDERS_PER_CLIENT`] orders through [`script`].
pub fn spawn_clients(client: &Client, tag: &str) -> Vec<tokio::task::JoinHandle<Vec<OrderId>>> {
    (0..CLIENTS)
        .map(|c| tokio::spawn(drive_orders(client.clone(), format!("{tag}{c}x"))))
        .collect()
}

/// Waits for the clients, then checks every order in the log: each command exactly once,
/// invariants hold, the final state is the script's. Returns (orders, commands) checked.
pub async fn assert_all_complete(
    journal: &Journal,
    tasks: Vec<tokio::task::JoinHandle<Vec<OrderId>>>,
) -> (usize, usize) {
    let (mut orders, mut commands) = (0, 0);
    for t in tasks {
        for o in t.await.expect("client finished") {
            let commits = journal.read_order(&o).await.expect("read");
            assert_each_command_once(&commits);
            assert_eq!(
                commits.len(),
                script(&o).len(),
                "order {o}: every command applied exactly once"
            );
            let s = paystate_journal::read::fold(&o, &commits)
                .expect("fold")
                .expect("exists");
            assert!(check_invariants(&s).is_empty());
            assert_eq!(
                (
                    s.status,
                    s.captured.0,
                    s.refunded.0,
                    s.refunds_pending.len()
                ),
                (Status::Captured, 8_000, 1_000, 1)
            );
            orders += 1;
            commands += commits.len();
        }
    }
    (orders, commands)
}

/// How long a fault test waits for the log to grow (leader elections on a loaded 2-core
/// machine take seconds).
pub const LOG_WAIT_MS_MAX: u64 = 90_000;

/// Waits until the log holds at least `at_least` messages.
pub async fn wait_for_log_messages(journal: &Journal, at_least: u64) {
    for _ in 0..(LOG_WAIT_MS_MAX / 25) {
        if journal
            .stream()
            .get_info()
            .await
            .map(|i| i.state.messages)
            .unwrap_or(0)
            >= at_least
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never reached {at_least} messages");
}
