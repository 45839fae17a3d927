//! Row 4, hot orders: many clients on few orders, served by two engine instances (as a
//! deployment with two `paystate run` processes would be). Within one instance an order's
//! commands are serialised by its partition; across instances the optimistic-concurrency
//! check on append decides, and the loser re-reads and re-decides (a conflict retry).

use super::engine::{Counters, Engines, CLIENT_CONNECTIONS};
use super::load::{clients, send_answered, LoadReport, Path};
use super::workload::{create, envelope, order_id, refund, signal};
use paystate_events::command::money;
use paystate_events::{Command, SignalKind};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

/// Engine instances competing for the hot orders.
pub const ENGINES: usize = 2;
/// Amount of a hot order: large enough for every refund the run sends.
const HOT_AMOUNT_MINOR: u64 = 1_000_000_000;
/// Each refund takes one minor unit.
const REFUND_EACH_MINOR: u64 = 1;

/// What the contention run saw.
pub struct Contention {
    pub report: LoadReport,
    pub counters: Counters,
    pub orders: usize,
    pub clients: usize,
}

/// `commands` refunds from `concurrency` clients spread over `orders` captured orders.
pub async fn hot_orders(
    url: &str,
    orders: usize,
    concurrency: usize,
    commands: usize,
    path: Path,
) -> anyhow::Result<Contention> {
    let engines = Engines::start(url, ENGINES).await?;
    let clients = clients(url, CLIENT_CONNECTIONS, path).await?;
    // Each path its own orders (both runs share one server).
    let tag = match path {
        Path::Fast => "hot",
        Path::Queue => "hotq",
    };
    let mut setup = LoadReport::default();
    for o in 0..orders {
        for cmd in captured_order(tag, o) {
            send_answered(&clients[0], &cmd, &mut setup).await;
        }
    }
    anyhow::ensure!(
        setup.accepted == setup.commands,
        "hot order setup was not accepted: {setup:?}"
    );
    let before = engines.counters();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..concurrency.max(1) {
        let (client, next) = (clients[w % clients.len()].clone(), next.clone());
        workers.spawn(async move {
            let mut report = LoadReport::default();
            loop {
                let k = next.fetch_add(1, Relaxed);
                if k >= commands {
                    return report;
                }
                let order = order_id(tag, k % orders.max(1));
                let cmd = envelope(&order, &format!("r-{k}"), refund(REFUND_EACH_MINOR));
                send_answered(&client, &cmd, &mut report).await;
            }
        });
    }
    let mut report = LoadReport::default();
    while let Some(part) = workers.join_next().await {
        if let Ok(part) = part {
            report.merge(part);
        }
    }
    report.elapsed = started.elapsed();
    let after = engines.counters();
    engines.stop().await;
    Ok(Contention {
        report,
        counters: Counters {
            accepted: after.accepted - before.accepted,
            rejected: after.rejected - before.rejected,
            conflicts: after.conflicts - before.conflicts,
            retried_later: after.retried_later - before.retried_later,
            forwarded: after.forwarded - before.forwarded,
            forward_fallbacks: after.forward_fallbacks - before.forward_fallbacks,
        },
        orders,
        clients: concurrency,
    })
}

/// Create, start, authorized, capture all, captured: ready for many refunds.
fn captured_order(tag: &str, o: usize) -> Vec<paystate_events::CommandEnvelope> {
    let order = order_id(tag, o);
    let all = money(HOT_AMOUNT_MINOR, "USD");
    vec![
        envelope(&order, "create", create(HOT_AMOUNT_MINOR)),
        envelope(
            &order,
            "start",
            Command::StartPayment {
                initiation: Default::default(),
            },
        ),
        envelope(
            &order,
            "auth",
            signal(SignalKind::Authorized { amount: None }, "ev-auth"),
        ),
        envelope(&order, "capture", Command::Capture { amount: all }),
        envelope(
            &order,
            "captured",
            signal(SignalKind::Captured { amount: all }, "ev-capture"),
        ),
    ]
}
