//! The reconciler end to end: where callbacks are lost (the exchanger with every IPN
//! dropped; Plural and Plexy with their webhooks dropped), orders still reach their true
//! final state by status probes, each probe recorded as evidence; probing backs off and is
//! bounded; an order the provider never resolves, or a provider that cannot be asked
//! (Paykassma), is flagged for manual review at the final deadline, not guessed; a restarted
//! reconciler leaves flagged orders alone. Deadlines are milliseconds here, not hours.

mod support;

use paystate_events::{
    CaptureMode, Command, OrderId, OrderState, PaymentInitiation, Provider, SignalKind, Status,
};
use paystate_sandbox::{Action, FaultKind, FaultRule, SandboxConfig, TimeScale};
use paystate_workers::ReconcilerConfig;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use support::providers::*;
use support::*;

const EX: Provider = Provider::Exchanger;
/// First probe of an order waiting on the exchanger (the default is a minute).
const EXCHANGER_FIRST_PROBE: Duration = Duration::from_millis(100);
/// The shape of the default schedule (1 min, 5 min, 30 min, 2 h, then daily), shrunk.
const BACKOFF_MS: [u64; 5] = [100, 250, 500, 1_000, 2_000];
const FINAL_DEADLINE: Duration = Duration::from_millis(5_000);

fn reconciler(first: &[(Provider, Duration)]) -> ReconcilerConfig {
    let mut first_probe_after: HashMap<Provider, Duration> = Provider::ALL
        .into_iter()
        .map(|p| (p, Duration::from_secs(3600)))
        .collect();
    first_probe_after.extend(first.iter().copied());
    ReconcilerConfig {
        first_probe_after,
        backoff: BACKOFF_MS.map(Duration::from_millis).to_vec(),
        final_deadline: FINAL_DEADLINE,
        tick: Duration::from_millis(20),
        instance: 0,
        instances: 1,
    }
}

fn sandbox_cfg() -> SandboxConfig {
    SandboxConfig {
        time_scale: TimeScale::MILLIS,
        ..Default::default()
    }
}

/// The most probes an order can get before its final deadline with this schedule.
fn probes_max() -> usize {
    let mut at = EXCHANGER_FIRST_PROBE;
    let mut n = 0;
    while at < FINAL_DEADLINE {
        n += 1;
        let pause = BACKOFF_MS
            .get(n - 1)
            .or(BACKOFF_MS.last())
            .copied()
            .unwrap_or(0);
        at += Duration::from_millis(pause);
    }
    n
}

/// The distinct probes an order's log records: one evidence reference
/// (`probe:<n>:call:<what was asked>:status=<what was answered>`) per probe, shared by the
/// signals of one answer.
async fn probes(ps: &ProviderStack, o: &OrderId) -> BTreeSet<String> {
    ps.signals(o)
        .await
        .into_iter()
        .map(|s| s.evidence_ref)
        .filter(|e| e.starts_with("probe:"))
        .collect()
}

async fn start_exchanger(ps: &ProviderStack, name: &str) -> (OrderId, String) {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(EX, 10_000, "UAH", CaptureMode::Auto)),
    )
    .await;
    accept(&ps.client, env(&o, start())).await;
    let s = ps
        .wait_until(&o, "created at the exchanger", |s| s.provider_ref.is_some())
        .await;
    (o, s.provider_ref.expect("orderId"))
}

/// Waits for `pred` and reports how long it took from `since`.
async fn reached(
    ps: &ProviderStack,
    o: &OrderId,
    what: &str,
    since: Instant,
    pred: impl Fn(&OrderState) -> bool,
) -> (OrderState, Duration) {
    let s = ps.wait_until(o, what, pred).await;
    (s, since.elapsed())
}

/// The six exchanger orders of the dropped-IPN test, by the truth each is driven to.
struct Six {
    done: (OrderId, String),
    errpay: (OrderId, String),
    errpayout: (OrderId, String),
    deleted: (OrderId, String),
    returned: (OrderId, String),
    stuck: (OrderId, String),
}

impl Six {
    async fn start(ps: &ProviderStack) -> Six {
        Six {
            done: start_exchanger(ps, "rec-done").await,
            errpay: start_exchanger(ps, "rec-errpay").await,
            errpayout: start_exchanger(ps, "rec-errpayout").await,
            deleted: start_exchanger(ps, "rec-deleted").await,
            returned: start_exchanger(ps, "rec-returned").await,
            stuck: start_exchanger(ps, "rec-stuck").await,
        }
    }

    fn all(&self) -> [&OrderId; 6] {
        [
            &self.done.0,
            &self.errpay.0,
            &self.errpayout.0,
            &self.deleted.0,
            &self.returned.0,
            &self.stuck.0,
        ]
    }

    /// The customer and the exchanger's back office act; nothing tells paystate. The paid
    /// order is first seen captured by a probe, then paid out and probed again.
    async fn act(&self, ps: &ProviderStack, t0: Instant) -> Duration {
        let set = |status: &str| Action::SetStatus {
            status: status.into(),
        };
        ps.sandbox.approve(EX, &self.done.1).expect("paid");
        let (_, t_captured) = reached(ps, &self.done.0, "captured", t0, |s| {
            s.status == Status::Captured
        })
        .await;
        ps.sandbox
            .act(EX, &self.done.1, Action::PayoutDone)
            .expect("paid out");
        ps.sandbox
            .decline(EX, &self.errpay.1)
            .expect("errorPayment");
        ps.sandbox.approve(EX, &self.errpayout.1).expect("paid");
        ps.sandbox
            .act(EX, &self.errpayout.1, Action::ErrorPayout)
            .expect("errorPayout");
        ps.sandbox.expire(EX, &self.deleted.1).expect("deleted");
        ps.sandbox.approve(EX, &self.returned.1).expect("paid");
        ps.sandbox
            .act(EX, &self.returned.1, set("hold"))
            .expect("hold");
        ps.sandbox
            .act(EX, &self.returned.1, set("returned"))
            .expect("returned");
        t_captured
    }

    /// Each order reaches its true state; returns how long each took.
    async fn truths(&self, ps: &ProviderStack, t0: Instant) -> [Duration; 6] {
        let (_, t_done) = reached(ps, &self.done.0, "done", t0, |s| s.status == Status::Done).await;
        let (failed, t_failed) = reached(ps, &self.errpay.0, "failed", t0, |s| {
            s.status == Status::Failed
        })
        .await;
        assert_eq!(failed.failure.map(|f| f.0).as_deref(), Some("errorPayment"));
        let (review, t_review) =
            reached(ps, &self.errpayout.0, "flagged", t0, |s| s.needs_review).await;
        assert_eq!(
            (review.status, review.captured.0),
            (Status::Captured, 10_000),
            "errorPayout: the money arrived"
        );
        assert!(
            review
                .discrepancies
                .iter()
                .any(|d| d.detail.contains("errorPayout")),
            "{:#?}",
            review.discrepancies
        );
        let (_, t_cancelled) = reached(ps, &self.deleted.0, "cancelled", t0, |s| {
            s.status == Status::Cancelled
        })
        .await;
        let (back, t_returned) = reached(ps, &self.returned.0, "returned", t0, |s| {
            s.status == Status::Returned
        })
        .await;
        assert_eq!(back.refunded.0, 10_000);
        let (flagged, t_flagged) = reached(
            ps,
            &self.stuck.0,
            "flagged at the final deadline",
            t0,
            |s| s.needs_review,
        )
        .await;
        assert_eq!(flagged.status, Status::Pending, "never guessed");
        assert!(
            t_flagged >= FINAL_DEADLINE - Duration::from_millis(500),
            "not before the final deadline"
        );
        [
            t_done,
            t_failed,
            t_review,
            t_cancelled,
            t_returned,
            t_flagged,
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_with_every_ipn_dropped_still_reaches_the_truth() {
    let mut ps =
        ProviderStack::start_with(sandbox_cfg(), reconciler(&[(EX, EXCHANGER_FIRST_PROBE)])).await;
    ps.sandbox.set_ipn_drop_percent(100);
    let six = Six::start(&ps).await;
    let t0 = Instant::now();
    let t_captured = six.act(&ps, t0).await;
    let [done, failed, review, cancelled, returned, flagged] = six.truths(&ps, t0).await;
    eprintln!(
        "exchanger, all IPNs dropped: captured {t_captured:?}, done {done:?}, failed {failed:?}, \
         errorPayout flagged {review:?}, cancelled {cancelled:?}, returned {returned:?}, \
         unresolved flagged {flagged:?} (final deadline {FINAL_DEADLINE:?})"
    );
    let c = ps.sandbox.totals(EX);
    assert!(c.callbacks_enqueued >= 8, "{c:?}");
    assert_eq!(
        (c.callbacks_dropped, c.callbacks_attempts),
        (c.callbacks_enqueued, 0),
        "no IPN ever arrived: {c:?}"
    );
    for o in six.all() {
        assert_learned_by_probes(&ps, o).await;
    }
    assert_flagged_once_after_the_schedule(&ps, &six.stuck.0).await;
    restart_leaves_flagged_orders_alone(&mut ps, &six).await;
}

/// After the worker's create call, everything the order learned came from probes (or the
/// final deadline), within the schedule's bound.
async fn assert_learned_by_probes(ps: &ProviderStack, o: &OrderId) {
    for s in ps
        .signals(o)
        .await
        .iter()
        .filter(|s| !s.evidence_ref.starts_with("call:"))
    {
        let by_probe =
            s.evidence_ref.starts_with("probe:") || s.evidence_ref == "reconciler:final-deadline";
        assert!(by_probe, "{o}: {s:?}");
    }
    let n = probes(ps, o).await.len();
    eprintln!("{o}: {n} probes");
    assert!(
        (1..=probes_max()).contains(&n),
        "{o}: {n} probes, at most {}",
        probes_max()
    );
}

/// The unresolved order: probed along the whole schedule, each answer in the log, then
/// flagged exactly once by the final deadline.
async fn assert_flagged_once_after_the_schedule(ps: &ProviderStack, stuck: &OrderId) {
    let signals = ps.signals(stuck).await;
    assert!(
        signals
            .iter()
            .any(|s| s.evidence_ref.ends_with(":status=new")),
        "what was asked and answered: {signals:#?}"
    );
    let flags: Vec<_> = signals
        .iter()
        .filter(|s| matches!(s.kind, SignalKind::NeedsReview { .. }))
        .collect();
    assert_eq!(flags.len(), 1, "flagged once");
    assert_eq!(flags[0].evidence_ref, "reconciler:final-deadline");
    let n = probes(ps, stuck).await.len();
    assert!(
        (probes_max() - 1..=probes_max()).contains(&n),
        "probed along the schedule: {n} of {}",
        probes_max()
    );
}

/// A restarted reconciler (fresh memory, started from the projection: a flagged order does not
/// wait on anyone) leaves flagged orders alone.
async fn restart_leaves_flagged_orders_alone(ps: &mut ProviderStack, six: &Six) {
    if let Some(r) = ps.stack.reconciler.take() {
        r.shutdown().await;
    }
    let adapters = std::sync::Arc::new(ps.adapters());
    let cfg = reconciler(&[(EX, EXCHANGER_FIRST_PROBE)]);
    let restarted = paystate_workers::run_reconciler(
        ps.nats.connect().await,
        &log_settings().events_stream,
        adapters,
        cfg,
    )
    .await
    .expect("reconciler restarts");
    let before = ps.signals(&six.stuck.0).await.len();
    // Caught up with the log and two rounds of looking for due orders done, then everything
    // they could have sent processed: only then is "nothing new" meaningful.
    let started = Instant::now();
    while restarted
        .stats
        .rounds
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        assert!(
            started.elapsed() < WAIT,
            "the restarted reconciler never looked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    support::quiet::wait_quiet_on(&ps.nats).await;
    assert_eq!(
        ps.signals(&six.stuck.0).await.len(),
        before,
        "no new probe or flag after a restart"
    );
    let flags = ps
        .signals(&six.errpayout.0)
        .await
        .iter()
        .filter(|s| s.kind.name() == "needs_review")
        .count();
    assert_eq!(flags, 1, "errorPayout flagged once");
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plural_and_plexy_with_webhooks_dropped_are_authorized_by_probes() {
    let first = [
        (Provider::Plural, Duration::from_millis(150)),
        (Provider::Plexy, Duration::from_millis(150)),
    ];
    let ps = ProviderStack::start_with(sandbox_cfg(), reconciler(&first)).await;
    let mut waiting = Vec::new();
    for p in [Provider::Plural, Provider::Plexy] {
        let currency = if p == Provider::Plural { "INR" } else { "USD" };
        ps.sandbox
            .add_fault(p, FaultRule::once(FaultKind::DropCallback).times(100));
        let o = order(&format!("rec-{p}"));
        accept(
            &ps.client,
            env(&o, create_for(p, 5_000, currency, CaptureMode::Manual)),
        )
        .await;
        accept(&ps.client, env(&o, start())).await;
        let s = ps
            .wait_until(&o, "waiting for the customer", |s| {
                s.customer_action.is_some()
            })
            .await;
        let reference = s.provider_ref.expect("provider reference");
        ps.sandbox.approve(p, &reference).expect("customer pays");
        waiting.push((p, o, reference));
    }
    let t0 = Instant::now();
    for (p, o, reference) in &waiting {
        let (s, took) = reached(&ps, o, "authorized", t0, |s| s.status == Status::Authorized).await;
        assert_eq!(s.authorized.0, 5_000);
        let c = ps.sandbox.counters(*p, reference);
        assert_eq!(c.callbacks_delivered, 0, "{p}: no webhook arrived: {c:?}");
        assert!(c.callbacks_dropped >= 1, "{p}: {c:?}");
        let signals = ps.signals(o).await;
        let authorized = signals
            .iter()
            .find(|s| s.kind.name() == "authorized")
            .expect("authorized");
        assert!(
            authorized.evidence_ref.starts_with("probe:"),
            "{p}: {authorized:?}"
        );
        eprintln!(
            "{p}: webhooks dropped, authorized by probe {} after {took:?}",
            authorized.evidence_ref
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykassma_silent_rejection_is_flagged_at_the_final_deadline_without_probes() {
    let mut sb = sandbox_cfg();
    sb.paykassma.postback_on_reject = false;
    let ps = ProviderStack::start_with(
        sb,
        reconciler(&[(Provider::Paykassma, Duration::from_millis(50))]),
    )
    .await;
    let o = order("rec-pk");
    accept(
        &ps.client,
        env(
            &o,
            create_for(Provider::Paykassma, 30_000, "BTN", CaptureMode::Auto),
        ),
    )
    .await;
    let initiation = PaymentInitiation {
        customer_id: Some(o.to_string()),
        ..Default::default()
    };
    accept(&ps.client, env(&o, Command::StartPayment { initiation })).await;
    ps.wait_until(&o, "wallet shown", |s| s.customer_action.is_some())
        .await;
    let shot = ps
        .upload("shot.png", "image/png", b"\x89PNG\r\n\x1a\n".to_vec())
        .await;
    let confirm = env(
        &o,
        Command::ConfirmTransfer {
            reference: "555566667777".into(),
            attachment: shot,
        },
    );
    let activation = paystate_adapters::paykassma::transformers::custom_transaction_id(
        &o,
        confirm.command_id.as_str(),
    );
    accept(&ps.client, confirm).await;
    let t0 = Instant::now();
    for _ in 0..400 {
        if ps.sandbox.order(Provider::Paykassma, &activation)["status"] == "verifying" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ps.sandbox
        .decline(Provider::Paykassma, &activation)
        .expect("rejected, silently");
    let (flagged, took) = reached(&ps, &o, "flagged", t0, |s| s.needs_review).await;
    assert_eq!(
        flagged.status,
        Status::Pending,
        "no postback, no status API: not guessed"
    );
    eprintln!("paykassma: silent rejection flagged after {took:?}");
    assert!(
        probes(&ps, &o).await.is_empty(),
        "Paykassma cannot be asked: no probes"
    );
    let signals = ps.signals(&o).await;
    assert_eq!(
        signals.last().map(|s| s.evidence_ref.as_str()),
        Some("reconciler:final-deadline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanger_lost_create_answer_and_failing_probes_are_recorded_not_guessed() {
    use paystate_sandbox::Op;
    let mut cfg = reconciler(&[(EX, EXCHANGER_FIRST_PROBE)]);
    cfg.final_deadline = Duration::from_millis(2_500);
    let ps = ProviderStack::start_with(sandbox_cfg(), cfg).await;
    ps.sandbox.set_ipn_drop_percent(100);
    // The exchanger creates the order but its answer is lost: we hold no reference to ask
    // about, so the order can only be flagged for a person (it exists at the exchanger).
    ps.sandbox.add_fault(
        EX,
        FaultRule::once(FaultKind::DropResponse).on_op(Op::Create),
    );
    let lost = order("rec-lost");
    accept(
        &ps.client,
        env(&lost, create_for(EX, 10_000, "UAH", CaptureMode::Auto)),
    )
    .await;
    accept(&ps.client, env(&lost, start())).await;
    // Status queries fail for a while (every retry of two probes): each failed probe is
    // recorded, and a later one learns the truth.
    let (ok, reference) = start_exchanger(&ps, "rec-503").await;
    let executor_attempts = 3; // the wiring's `attempts_max`
    ps.sandbox.add_fault(
        EX,
        FaultRule::once(FaultKind::ServerError { status: 503 })
            .on_op(Op::Status)
            .on_order(&reference)
            .times(2 * executor_attempts),
    );
    ps.sandbox.approve(EX, &reference).expect("paid");
    ps.sandbox
        .act(EX, &reference, Action::PayoutDone)
        .expect("paid out");
    ps.wait_status(&ok, Status::Done).await;
    let signals = ps.signals(&ok).await;
    let failed_probes: Vec<_> = signals
        .iter()
        .filter(|s| s.evidence_ref.starts_with("probe:") && s.evidence_ref.ends_with(":error"))
        .collect();
    assert_eq!(failed_probes.len(), 2, "{signals:#?}");
    assert!(failed_probes
        .iter()
        .all(|s| matches!(&s.kind, SignalKind::Probed { answer } if answer.contains("503"))));
    assert_eq!(ps.sandbox.counters(EX, &reference).injected_errors, 6);

    let flagged = ps.wait_until(&lost, "flagged", |s| s.needs_review).await;
    assert_eq!(
        (flagged.status, flagged.provider_ref.as_deref()),
        (Status::Pending, None)
    );
    let trail = ps.signals(&lost).await;
    let kinds: Vec<&str> = trail.iter().map(|s| s.kind.name()).collect();
    assert_eq!(kinds.first(), Some(&"outcome_unknown"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"needs_review"), "{kinds:?}");
    assert!(
        trail.iter().any(|s| matches!(&s.kind, SignalKind::Probed { answer } if answer.contains("no exchanger reference"))),
        "the probes say why they cannot ask: {trail:#?}"
    );
    assert_eq!(
        ps.sandbox.totals(EX).created,
        2,
        "the lost order does exist at the exchanger"
    );
}

/// A flagged order belongs to a person: the reconciler does not ask about it, even once the
/// customer has paid. An operator's `resolve_review` hands it back: tracked afresh, its first
/// probe learns the payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_review_is_probed_again_and_reaches_the_truth() {
    let ps =
        ProviderStack::start_with(sandbox_cfg(), reconciler(&[(EX, EXCHANGER_FIRST_PROBE)])).await;
    ps.sandbox.set_ipn_drop_percent(100);
    let (o, ex_order) = start_exchanger(&ps, "rec-resolve").await;
    let flagged = ps
        .wait_until(&o, "flagged at the final deadline", |s| s.needs_review)
        .await;
    assert_eq!(flagged.status, Status::Pending, "never guessed");

    ps.sandbox.approve(EX, &ex_order).expect("paid");
    let probed = probes(&ps, &o).await.len();
    let stats = &ps.stack.reconciler.as_ref().expect("a reconciler").stats;
    let rounds = |n: u64| n + stats.rounds.load(std::sync::atomic::Ordering::Relaxed);
    let (target, started) = (rounds(2), Instant::now());
    while rounds(0) < target {
        assert!(started.elapsed() < WAIT, "the reconciler never looked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    support::quiet::wait_quiet_on(&ps.nats).await;
    assert_eq!(
        probes(&ps, &o).await.len(),
        probed,
        "a flagged order is not probed"
    );

    let resolve = Command::ResolveReview {
        operator: "op-ana".into(),
        reason: "asked the exchanger's support: the customer paid".into(),
    };
    accept(&ps.client, env(&o, resolve)).await;
    let s = ps
        .wait_until(&o, "captured, learned by a probe", |s| {
            s.status == Status::Captured
        })
        .await;
    assert!(!s.needs_review, "{s:#?}");
    assert!(probes(&ps, &o).await.len() > probed, "probed again");
}
