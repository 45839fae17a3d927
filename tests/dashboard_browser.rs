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
//! Every wait polls with a deadline.

mod support;

#[path = "dashboard_browser/webdriver.rs"]
mod webdriver;

use paystate_events::{
    CaptureMode, Command, OrderId, Outcome, PaymentInitiation, Provider, ProviderSignal,
    RejectionCode, SignalKind, Status,
};
use paystate_journal::dead_letters;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::providers::*;
use support::*;
use webdriver::Browser;

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

/// Sets a capture of `o` aside in the dead-letter stream, as the engine does with a command
/// that failed on every delivery; returns its sequence there.
async fn set_aside_capture(ps: &ProviderStack, o: &OrderId) -> u64 {
    let payload = serde_json::to_vec(&env(o, capture(None))).expect("command JSON");
    let subject = paystate_events::subjects::command_subject(o);
    let js = async_nats::jetstream::new(ps.nats.connect().await);
    dead_letters::send(
        &js,
        &dead_letters::Outgoing {
            source: dead_letters::Source::Engine,
            consumer: paystate_events::subjects::ENGINE_CONSUMER,
            subject: &subject,
            order: None,
            headers: None,
            payload: payload.into(),
            origin: None,
            deliveries: 20,
            reason: "test: failed on every delivery",
        },
    )
    .await
    .expect("set aside")
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

/// Polls the browser's page (reloading `url`) until its source contains `want`.
async fn page_until(b: &Browser, url: &str, want: &str) {
    let started = Instant::now();
    loop {
        b.goto(url).await;
        if b.source().await.contains(want) {
            return;
        }
        assert!(
            started.elapsed() < PROJECTED_WAIT,
            "{url} never showed {want:?}:\n{}",
            b.source().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_opens_an_order_and_resolves_its_review_in_a_browser() {
    // The metrics recorder `paystate run` and `dev` install: the health page reads it.
    paystate_gateway::telemetry::install().expect("metrics recorder");
    let ps = ProviderStack::start().await;
    let o = flagged_order(&ps, "review-ui").await;
    projected_flag(&ps, &o).await;
    let base = format!("{}/dashboard", ps.private_url());
    let shots = artifacts();
    let b = Browser::start().await;

    // Not logged in: every page leads to the login form. A wrong key is refused.
    b.goto(&format!("{base}/orders")).await;
    b.find("#login-form", PAGE_WAIT).await;
    b.find("#key", PAGE_WAIT)
        .await
        .type_text("psk_not-a-configured-key")
        .await;
    b.find("#login", PAGE_WAIT).await.click().await;
    b.find("#login-error", PAGE_WAIT).await;
    b.screenshot(&shots.join("01-login-refused.png")).await;

    // Log in with the admin key: a session cookie the page's scripts could not read.
    b.find("#key", PAGE_WAIT)
        .await
        .type_text(&test_keys().admin)
        .await;
    b.find("#login", PAGE_WAIT).await.click().await;
    b.find("table#orders", PAGE_WAIT).await;
    let cookies = b.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "paystate_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert!(
        !b.source().await.contains(&test_keys().admin),
        "the key is never shown"
    );

    // Search by the provider's reference, then by order id through the search form.
    let provider_ref = ps
        .journal
        .load(&o)
        .await
        .ok()
        .and_then(|l| l.state)
        .and_then(|s| s.provider_ref)
        .expect("Flitt's payment id is recorded");
    let by_ref = format!("{base}/orders?q={provider_ref}&provider=flitt");
    page_until(&b, &by_ref, &format!("/dashboard/orders/{o}")).await;
    b.goto(&format!("{base}/orders")).await;
    b.find("input#q", PAGE_WAIT)
        .await
        .type_text(o.as_str())
        .await;
    b.find("button#search", PAGE_WAIT).await.click().await;
    let found = b
        .find("table#orders tr.order", PAGE_WAIT)
        .await
        .text()
        .await;
    assert!(found.contains(o.as_str()), "{found}");
    assert_eq!(b.find_all("table#orders tr.order").await.len(), 1);
    b.screenshot(&shots.join("02-orders-search.png")).await;
    b.find("a.order-link", PAGE_WAIT).await.click().await;

    // The order page: its timeline, the provider's report with the raw callback behind it,
    // the flag and the discrepancy.
    b.find("ol#timeline", PAGE_WAIT).await;
    let entries = b.find_all("li.entry").await;
    assert!(
        entries.len() >= 5,
        "create, start, action, authorized, flag: {}",
        entries.len()
    );
    let mut events = Vec::new();
    for e in &entries {
        for ev in e.find_all("span.event").await {
            events.push(ev.text().await);
        }
    }
    for want in [
        "order_created",
        "payment_requested",
        "payment_authorized",
        "discrepancy_detected",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(want)),
            "{want} not in {events:?}"
        );
    }
    let source = b.source().await;
    assert!(
        source.contains("raw callback #"),
        "the callback evidence is shown"
    );
    assert!(
        source.contains("flitt reported"),
        "provider reports are shown"
    );
    assert_eq!(
        b.find("#review", PAGE_WAIT).await.text().await,
        "needs review"
    );
    b.screenshot(&shots.join("03-order-flagged.png")).await;

    // A POST without the session's CSRF token is refused, whatever the cookie.
    let token = session["value"].as_str().expect("cookie value");
    let forged = reqwest::Client::new()
        .post(format!("{base}/review/{o}/resolve"))
        .header("cookie", format!("paystate_session={token}"))
        .form(&[("csrf", "forged"), ("reason", "no")])
        .send()
        .await
        .expect("an answer");
    assert_eq!(forged.status(), 403);

    // The review queue lists it; resolve it there.
    b.goto(&format!("{base}/review")).await;
    let row = b.find("table#review-queue tr.review", PAGE_WAIT).await;
    assert!(row.text().await.contains(o.as_str()));
    b.find("input.reason", PAGE_WAIT)
        .await
        .type_text("checked at Flitt: authorized")
        .await;
    b.screenshot(&shots.join("04-review-queue.png")).await;
    b.find("button.resolve-button", PAGE_WAIT)
        .await
        .click()
        .await;
    let notice = b.find("#notice", PAGE_WAIT).await.text().await;
    assert!(notice.starts_with("Review resolved"), "{notice}");
    let timeline = b.find("ol#timeline", PAGE_WAIT).await.text().await;
    assert!(
        timeline.contains("review_resolved by dashboard:admin: checked at Flitt: authorized"),
        "{timeline}"
    );
    b.screenshot(&shots.join("05-order-resolved.png")).await;

    // The order moves again: its capture, set aside as a dead letter (as the engine does past
    // its delivery bound), is redriven from the dead-letter page and captures the order.
    let seq = set_aside_capture(&ps, &o).await;
    b.goto(&format!("{base}/dead-letters")).await;
    let row = b.find("table#dead-letters tr.dead-letter", PAGE_WAIT).await;
    assert!(row.text().await.contains(o.as_str()));
    b.screenshot(&shots.join("06-dead-letters.png")).await;
    b.find(
        &format!("form[action$='/dead-letters/{seq}/redrive'] button"),
        PAGE_WAIT,
    )
    .await
    .click()
    .await;
    let notice = b.find("#notice", PAGE_WAIT).await.text().await;
    assert_eq!(
        notice,
        format!("Dead letter {seq} redriven to paystate.cmd.{o}.")
    );
    let s = ps.wait_status(&o, Status::Captured).await;
    assert!(!s.needs_review && s.captured.0 == AMOUNT, "{s:#?}");
    page_until(&b, &format!("{base}/orders/{o}"), "payment_captured").await;
    assert_eq!(b.find("#state", PAGE_WAIT).await.text().await, "captured");
    b.screenshot(&shots.join("07-order-captured.png")).await;

    // An order nobody created: said so, not an error page.
    b.goto(&format!("{base}/orders/no-such-order")).await;
    b.find("#no-commits", PAGE_WAIT).await;

    // Health: projection lag, and per provider the last callback and the counters.
    b.goto(&format!("{base}/health")).await;
    b.find("table#projection", PAGE_WAIT).await;
    let mut flitt = Vec::new();
    for row in b.find_all("table#providers tr").await {
        let cells = row.find_all("td").await;
        if let Some(first) = cells.first() {
            if first.text().await == "flitt" {
                for c in &cells {
                    flitt.push(c.text().await);
                }
            }
        }
    }
    assert!(flitt.len() == 7 && flitt[1] != "never", "{flitt:?}");
    let callbacks: u64 = flitt[3]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        callbacks >= 1,
        "the sandbox's callbacks are counted: {flitt:?}"
    );
    b.screenshot(&shots.join("08-health.png")).await;

    // Logging out ends the session: the next page is the login form again.
    b.find("header form button", PAGE_WAIT).await.click().await;
    b.find("#login-form", PAGE_WAIT).await;
    b.goto(&format!("{base}/orders")).await;
    b.find("#login-form", PAGE_WAIT).await;
    b.quit().await;

    // A read key may look but not act: no resolve form on a flagged order, and a resolve it
    // forges is refused.
    accept(&ps.client, env(&o, flag_command())).await;
    read_key_cannot_act(&base, &o).await;
    ps.stack.shutdown().await;
}

/// Logs in over plain HTTP with the read key and tries to resolve `o` with a valid CSRF token.
async fn read_key_cannot_act(base: &str, o: &OrderId) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let login = http
        .post(format!("{base}/login"))
        .form(&[("key", test_keys().read.as_str())])
        .send()
        .await
        .expect("an answer");
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let started = Instant::now();
    let page = loop {
        let page = http
            .get(format!("{base}/orders/{o}"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("an answer")
            .text()
            .await
            .expect("a page");
        if page.contains("needs a write or admin key") {
            break page;
        }
        assert!(
            started.elapsed() < PROJECTED_WAIT,
            "the flag never showed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!page.contains("class=\"resolve\""), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the logout form's CSRF token")
        .to_string();
    let forged = http
        .post(format!("{base}/review/{o}/resolve"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("reason", "a read key tries")])
        .send()
        .await
        .expect("an answer");
    assert_eq!(forged.status(), 403);
    let header = |name: &str| {
        forged
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(
        header("content-security-policy").starts_with("default-src 'none'"),
        "no script may run on a dashboard page"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    let text = forged.text().await.unwrap_or_default();
    assert!(text.contains("needs a write key"), "{text}");
}
