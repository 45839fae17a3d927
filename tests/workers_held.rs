//! The adapter workers never call a provider twice for one piece of work while they hold it,
//! over a real nats-server and the Plexy sandbox (Plexy's refund carries no idempotency key,
//! so a second call is a second refund):
//!
//! - an answer whose submission failed (the command queue's signal plane gone for a moment,
//!   as in a broker hiccup) is re-sent on the next attempt, not asked for again;
//! - a message held longer than the ack wait (a slow provider, and an order queued behind it
//!   in the same partition) gets progress acks, so JetStream never redelivers it.

mod support;

use async_nats::jetstream::{self, consumer::pull};
use paystate_events::subjects::{COMMANDS_STREAM, EVENTS_STREAM, SIGNALS_PREFIX};
use paystate_events::{CaptureMode, Command, OrderId, Provider, Status};
use paystate_sandbox::{FaultKind, FaultRule, Op};
use paystate_workers::worker::WORKERS_CONSUMER;
use paystate_workers::WorkerConfig;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use support::providers::*;
use support::tuned::*;
use support::*;

const P: Provider = Provider::Plexy;

/// A Plexy order paid in full (auto capture); returns it with its payment link id.
async fn captured(ps: &ProviderStack, name: &str, minor: u64) -> (OrderId, String) {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(P, minor, "USD", CaptureMode::Auto)),
    )
    .await;
    accept(&ps.client, env(&o, start())).await;
    let pending = ps
        .wait_until(&o, "showing the payment link", |s| {
            s.customer_action.is_some()
        })
        .await;
    let link = pending.provider_ref.expect("payment link id recorded");
    ps.sandbox.approve(P, &link).expect("customer pays");
    ps.wait_status(&o, Status::Captured).await;
    (o, link)
}

fn refund(o: &OrderId, minor: u64) -> paystate_events::CommandEnvelope {
    env(
        o,
        Command::Refund {
            amount: money_in(minor, "USD"),
        },
    )
}

/// Removes (`open == false`) or puts back the signal plane (`paystate.signal.>`) of the
/// command queue: while it is gone, every signal publish is refused by the broker (no stream
/// stores the subject), as in a broker hiccup; client commands still go through.
async fn signal_plane(nats: &TestNats, open: bool) {
    let js = jetstream::new(nats.connect().await);
    let mut stream = js.get_stream(COMMANDS_STREAM).await.expect("command queue");
    let mut cfg = stream
        .info()
        .await
        .expect("command queue info")
        .config
        .clone();
    let signals = format!("{SIGNALS_PREFIX}.>");
    cfg.subjects.retain(|s| *s != signals);
    if open {
        cfg.subjects.push(signals);
    }
    js.update_stream(cfg).await.expect("command queue updated");
}

/// Polls until `pred` holds (panics after `WAIT`).
async fn wait_for(what: &str, pred: impl Fn() -> bool) {
    let started = Instant::now();
    while !pred() {
        assert!(started.elapsed() < WAIT, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_submission_failed_is_resent_and_the_provider_called_once() {
    let t = Tuned::start(Tuning::default()).await;
    let ps = &t.ps;
    let (o, link) = captured(ps, "held-answer", 4_200).await;
    callbacks_idle(&ps.sandbox).await;
    let stats = ps
        .stack
        .workers
        .as_ref()
        .expect("workers run")
        .stats
        .clone();
    let retried = stats.retried.load(Relaxed);

    signal_plane(&ps.nats, false).await;
    accept(&ps.client, refund(&o, 1_000)).await;
    // Plexy refunds (a partial refund sends no webhook: the answer is the only report), and
    // the worker cannot submit what it answered: the commit is postponed.
    wait_for(
        "the refund reached Plexy and its report was postponed",
        || ps.sandbox.counters(P, &link).refunded >= 1 && stats.retried.load(Relaxed) > retried,
    )
    .await;
    signal_plane(&ps.nats, true).await;

    let done = ps
        .wait_until(&o, "refund completed", |s| {
            s.refunds_pending.is_empty() && s.refunded.0 == 1_000
        })
        .await;
    assert_eq!(done.refunds_completed.len(), 1, "{done:#?}");
    let c = ps.sandbox.counters(P, &link);
    assert_eq!(c.refunded, 1, "Plexy was asked to refund once: {c:?}");
    let tx = &ps.sandbox.order(P, &link)["transaction"];
    assert_eq!(tx["refundedAmount"].as_u64(), Some(1_000), "{tx}");
    let steps = trail(&ps.journal, &o).await;
    assert_eq!(count_events(&steps, "refund_completed"), 1, "{steps:#?}");
    assert!(no_discrepancy(&steps), "{steps:#?}");
    assert!(
        stats.resubmitted.load(Relaxed) >= 1,
        "the held answer was re-sent"
    );
}

/// Ack wait of the progress-ack test: short, so that Plexy's slow answer outlasts it thrice.
const SHORT_ACK_WAIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_get_progress_acks_and_are_never_redelivered() {
    let t = Tuned::start(Tuning {
        workers: WorkerConfig {
            ack_wait: SHORT_ACK_WAIT,
            // One partition: the second order's refund waits behind the first's.
            partitions: 1,
            ..Default::default()
        },
        // Plexy's slow answer must not become a timeout.
        request_timeout_ms: 20_000,
        ..Default::default()
    })
    .await;
    let ps = &t.ps;
    let (slow, slow_link) = captured(ps, "slow", 4_200).await;
    let (queued, queued_link) = captured(ps, "queued", 4_200).await;
    callbacks_idle(&ps.sandbox).await;
    let delay_ms = u64::try_from((SHORT_ACK_WAIT * 3).as_millis()).expect("fits");
    ps.sandbox.add_fault(
        P,
        FaultRule::once(FaultKind::Delay { ms: delay_ms })
            .on_op(Op::Refund)
            .on_order(&slow_link),
    );
    let js = jetstream::new(ps.nats.connect().await);
    let mut consumer = js
        .get_stream(EVENTS_STREAM)
        .await
        .expect("log")
        .get_consumer::<pull::Config>(WORKERS_CONSUMER)
        .await
        .expect("workers' consumer");

    accept(&ps.client, refund(&slow, 1_000)).await;
    accept(&ps.client, refund(&queued, 1_000)).await;
    // Until both refunds are in the log, JetStream must never have handed a held message
    // out again (which would let a second worker refund once more).
    let started = Instant::now();
    let mut redelivered_max = 0;
    loop {
        let info = consumer.info().await.expect("consumer info");
        redelivered_max = redelivered_max.max(info.num_redelivered);
        let mut done = 0;
        for o in [&slow, &queued] {
            let state = ps.journal.load(o).await.expect("load").state;
            if state.is_some_and(|s| s.refunds_pending.is_empty() && s.refunded.0 == 1_000) {
                done += 1;
            }
        }
        if done == 2 {
            break;
        }
        assert!(started.elapsed() < WAIT, "refunds never completed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        started.elapsed() > SHORT_ACK_WAIT * 2,
        "the slow answer outlasted the ack wait"
    );
    assert_eq!(redelivered_max, 0, "a held message was redelivered");
    let stats = &ps.stack.workers.as_ref().expect("workers run").stats;
    assert_eq!(
        stats.duplicates.load(Relaxed),
        0,
        "no copy reached the worker"
    );
    for (o, link) in [(&slow, &slow_link), (&queued, &queued_link)] {
        let c = ps.sandbox.counters(P, link);
        assert_eq!(c.refunded, 1, "{o}: Plexy was asked to refund once: {c:?}");
        let steps = trail(&ps.journal, o).await;
        assert_eq!(count_events(&steps, "refund_completed"), 1, "{steps:#?}");
    }
}
