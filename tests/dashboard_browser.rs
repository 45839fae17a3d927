//! Review resolution and the operations dashboard, end to end on a real stack (nats-server,
//! engine, projector, workers, reconciler, gateway with the test keys, provider sandboxes):
//!
//! - from the CLI: a flagged order refuses capture (`under_review`), `paystate review list`
//!   shows it, `paystate review resolve` clears it (a second resolve is `not_under_review`),
//!   and the order is then captured;
//! - in a real headless browser (Debian's `chromium` through `chromedriver`, W3C WebDriver):
//!   log in with the admin key (an `HttpOnly`, `SameSite=Strict` session cookie), search the
//!   order, open it, find its timeline entries and the raw callback behind the provider's
//!   report, resolve its review from the review queue; its capture, set aside as a dead
//!   letter, is redriven from the dead-letter page and captures the order; the health page
//!   shows the projection and the providers.
//!   A POST without the session's CSRF token is refused. Screenshots go to
//!   `target/test-artifacts/dashboard/`.
//!
//! Every wait polls with a deadline. The browser's steps, one page each, are in
//! `dashboard_browser/steps.rs`; the WebDriver client in `dashboard_browser/webdriver.rs`.

mod support;

#[path = "dashboard_browser/webdriver.rs"]
mod webdriver;

#[path = "dashboard_browser/steps.rs"]
mod steps;

use paystate_events::{
    CaptureMode, Command, OrderId, Outcome, PaymentInitiation, Provider, ProviderSignal,
    RejectionCode, SignalKind, Status,
};
use std::time::{Duration, Instant};
use steps::{read_key_cannot_act, set_aside_capture, Ui};
use support::providers::*;
use support::*;

const P: Provider = Provider::Flitt;
const AMOUNT: u64 = 10_000;
/// How long the browser waits for an element to appear (generous: the whole suite shares
/// two cores with chromium).
const PAGE_WAIT: Duration = Duration::from_secs(60);
/// How long a page may take to show what the log already says (the projection's lag).
const PROJECTED_WAIT: Duration = Duration::from_secs(60);

/// A Flitt order authorized by the sandbox's signed callback (so its timeline has a raw
/// callback as evidence), then flagged for review the way the reconciler flags one at its
/// final deadline (a `needs_review` signal on the signal plane).
async fn flagged_order(ps: &ProviderStack, name: &str) -> OrderId {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(P, AMOUNT, "GEL", CaptureMode::Manual)),
    )
    .await;
    let initiation = PaymentInitiation {
        return_url: Some("https://shop.example/back".into()),
        ..Default::default()
    };
    accept(&ps.client, env(&o, Command::StartPayment { initiation })).await;
    ps.wait_until(&o, "waiting for the customer", |s| {
        s.customer_action.is_some()
    })
    .await;
    ps.sandbox
        .approve(P, o.as_str())
        .expect("customer approves");
    ps.wait_status(&o, Status::Authorized).await;
    accept(&ps.client, env(&o, flag_command())).await;
    let refused = ps
        .client
        .send(&env(&o, capture(None)), WAIT)
        .await
        .expect("an outcome");
    assert_eq!(
        refused.rejection_code(),
        Some(RejectionCode::UnderReview),
        "a flagged order takes no capture: {refused:?}"
    );
    o
}

/// Waits until the projection (what the dashboard's lists read) shows the order flagged.
async fn projected_flag(ps: &ProviderStack, o: &OrderId) {
    let started = Instant::now();
    loop {
        if let Ok(Some(r)) = ps.stack.projection.get(o).await {
            if r.state.needs_review {
                return;
            }
        }
        assert!(
            started.elapsed() < PROJECTED_WAIT,
            "{o} never projected as flagged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `needs_review` signal like the reconciler's at its final deadline.
fn flag_command() -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: P,
            provider_ref: None,
            evidence_ref: "reconciler:final-deadline".into(),
            observed_at: chrono::Utc::now(),
            kind: SignalKind::NeedsReview {
                reason: "still waiting on the provider; needs a person".into(),
            },
        },
    }
}

/// Captures the order (now accepted) and waits for the provider's capture.
async fn captured_after_resolution(ps: &ProviderStack, o: &OrderId) {
    match ps
        .client
        .send(&env(o, capture(None)), WAIT)
        .await
        .expect("an outcome")
    {
        Outcome::Accepted { .. } => {}
        other => panic!("capture after the resolution: {other:?}"),
    }
    let s = ps.wait_status(o, Status::Captured).await;
    assert!(!s.needs_review && s.captured.0 == AMOUNT, "{s:#?}");
}

/// Polls `paystate <args>` until its stdout contains `want`.
async fn cli_until(url: &str, args: &[&str], want: &str) -> String {
    let started = Instant::now();
    loop {
        let (code, out, err) = paystate_cli(url, args).await;
        if code == 0 && out.contains(want) {
            return out;
        }
        assert!(
            started.elapsed() < PROJECTED_WAIT,
            "`paystate {}` never showed {want:?}: exit {code}\n{out}\n{err}",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_order_is_resolved_from_the_cli_and_then_captured() {
    let ps = ProviderStack::start().await;
    let url = ps.nats.url();
    let o = flagged_order(&ps, "review-cli").await;

    let listed = cli_until(&url, &["review", "list"], o.as_str()).await;
    assert!(listed.contains("needs_review"), "{listed}");

    let args = [
        "review",
        "resolve",
        o.as_str(),
        "--operator",
        "op-ana",
        "--reason",
        "checked at the provider",
    ];
    let (code, out, err) = paystate_cli(&url, &args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("resolved") && out.contains("authorized"),
        "{out}"
    );

    let (code, out, _) = paystate_cli(&url, &args).await;
    assert_eq!(code, 1, "nothing left to resolve: {out}");
    assert!(out.contains("not_under_review"), "{out}");

    let commits = ps.journal.read_order(&o).await.expect("log");
    let resolution = commits
        .iter()
        .find_map(|c| match &c.commit.command.command {
            Command::ResolveReview { operator, reason } => Some((operator.clone(), reason.clone())),
            _ => None,
        })
        .expect("the resolution is in the log");
    assert_eq!(
        resolution,
        ("op-ana".into(), "checked at the provider".into())
    );

    captured_after_resolution(&ps, &o).await;
    cli_until(&url, &["review", "list"], "0 orders flagged").await;
    ps.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_opens_an_order_and_resolves_its_review_in_a_browser() {
    // The metrics recorder `paystate run` and `dev` install: the health page reads it.
    paystate_gateway::telemetry::install().expect("metrics recorder");
    let ps = ProviderStack::start().await;
    let o = flagged_order(&ps, "review-ui").await;
    projected_flag(&ps, &o).await;
    let ui = Ui::start(&ps, &o).await;

    let session = ui.log_in().await;
    ui.search_and_open(&ps).await;
    ui.flagged_order_page().await;
    ui.forged_resolve_is_refused(&session).await;
    ui.resolve_in_the_review_queue().await;

    // The order moves again: its capture, set aside as a dead letter (as the engine does past
    // its delivery bound), is redriven from the dead-letter page and captures the order.
    let seq = set_aside_capture(&ps, &o).await;
    ui.redrive(seq).await;
    let s = ps.wait_status(&o, Status::Captured).await;
    assert!(!s.needs_review && s.captured.0 == AMOUNT, "{s:#?}");
    ui.captured_order_page().await;
    ui.health().await;
    let base = ui.base.clone();
    ui.log_out().await;

    // A read key may look but not act: no resolve form on a flagged order, and a resolve it
    // forges is refused.
    accept(&ps.client, env(&o, flag_command())).await;
    read_key_cannot_act(&base, &o).await;
    ps.stack.shutdown().await;
}
