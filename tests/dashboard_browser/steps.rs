//! The browser test's steps: each one page of the dashboard, driven through chromium, with
//! what must be on it. Screenshots go to `target/test-artifacts/dashboard/`.

use super::webdriver::Browser;
use super::{PAGE_WAIT, PROJECTED_WAIT};
use crate::support::providers::ProviderStack;
use crate::support::{capture, env, test_keys};
use paystate_events::OrderId;
use paystate_journal::dead_letters;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A headless browser on one order's dashboard.
pub struct Ui {
    b: Browser,
    pub base: String,
    shots: PathBuf,
    o: OrderId,
}

impl Ui {
    pub async fn start(ps: &ProviderStack, o: &OrderId) -> Ui {
        Ui {
            b: Browser::start().await,
            base: format!("{}/dashboard", ps.private_url()),
            shots: artifacts(),
            o: o.clone(),
        }
    }

    async fn shot(&self, name: &str) {
        self.b.screenshot(&self.shots.join(name)).await;
    }

    /// Not logged in, every page leads to the login form; a wrong key is refused; the admin
    /// key logs in with a session cookie the page could not read. Returns the cookie.
    pub async fn log_in(&self) -> serde_json::Value {
        let (b, base) = (&self.b, &self.base);
        b.goto(&format!("{base}/orders")).await;
        b.find("#login-form", PAGE_WAIT).await;
        let key = b.find("#key", PAGE_WAIT).await;
        key.type_text("psk_not-a-configured-key").await;
        b.find("#login", PAGE_WAIT).await.click().await;
        b.find("#login-error", PAGE_WAIT).await;
        self.shot("01-login-refused.png").await;

        let key = b.find("#key", PAGE_WAIT).await;
        key.type_text(&test_keys().admin).await;
        b.find("#login", PAGE_WAIT).await.click().await;
        b.find("table#orders", PAGE_WAIT).await;
        let cookies = b.cookies().await;
        let session = cookies
            .iter()
            .find(|c| c["name"] == "paystate_session")
            .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"))
            .clone();
        assert_eq!(session["httpOnly"], true, "{session}");
        assert_eq!(session["sameSite"], "Strict", "{session}");
        assert!(
            !b.source().await.contains(&test_keys().admin),
            "the key is never shown"
        );
        session
    }

    /// Search by the provider's reference, then by order id through the search form; open it.
    pub async fn search_and_open(&self, ps: &ProviderStack) {
        let (b, base, o) = (&self.b, &self.base, &self.o);
        let provider_ref = ps
            .journal
            .load(o)
            .await
            .ok()
            .and_then(|l| l.state)
            .and_then(|s| s.provider_ref)
            .expect("Flitt's payment id is recorded");
        let by_ref = format!("{base}/orders?q={provider_ref}&provider=flitt");
        page_until(b, &by_ref, &format!("/dashboard/orders/{o}")).await;
        b.goto(&format!("{base}/orders")).await;
        b.find("input#q", PAGE_WAIT)
            .await
            .type_text(o.as_str())
            .await;
        b.find("button#search", PAGE_WAIT).await.click().await;
        // Why: the click submits the search form, and until the browser has navigated, the
        // rows of the unfiltered list are still there: reading one of them then fails as a
        // stale element (seen once in the suite).
        b.url_until("q=", PAGE_WAIT).await;
        let found = b.find("table#orders tr.order", PAGE_WAIT).await;
        assert!(found.text().await.contains(o.as_str()));
        assert_eq!(b.find_all("table#orders tr.order").await.len(), 1);
        self.shot("02-orders-search.png").await;
        b.find("a.order-link", PAGE_WAIT).await.click().await;
    }

    /// The order page: its timeline, the provider's reports with the raw callback behind
    /// them, the flag and the discrepancy.
    pub async fn flagged_order_page(&self) {
        let b = &self.b;
        b.find("ol#timeline", PAGE_WAIT).await;
        let entries = b.find_all("li.entry").await;
        let n = entries.len();
        assert!(n >= 5, "create, start, action, authorized, flag: {n}");
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
            let seen = events.iter().any(|e| e.starts_with(want));
            assert!(seen, "{want} not in {events:?}");
        }
        let source = b.source().await;
        assert!(source.contains("raw callback #"), "callback evidence");
        assert!(source.contains("flitt reported"), "provider reports");
        let review = b.find("#review", PAGE_WAIT).await.text().await;
        assert_eq!(review, "needs review");
        self.shot("03-order-flagged.png").await;
    }

    /// A POST without the session's CSRF token is refused, whatever the cookie.
    pub async fn forged_resolve_is_refused(&self, session: &serde_json::Value) {
        let token = session["value"].as_str().expect("cookie value");
        let forged = reqwest::Client::new()
            .post(format!("{}/review/{}/resolve", self.base, self.o))
            .header("cookie", format!("paystate_session={token}"))
            .form(&[("csrf", "forged"), ("reason", "no")])
            .send()
            .await
            .expect("an answer");
        assert_eq!(forged.status(), 403);
    }

    /// The review queue lists the order; resolve it there.
    pub async fn resolve_in_the_review_queue(&self) {
        let b = &self.b;
        b.goto(&format!("{}/review", self.base)).await;
        let row = b.find("table#review-queue tr.review", PAGE_WAIT).await;
        assert!(row.text().await.contains(self.o.as_str()));
        let reason = b.find("input.reason", PAGE_WAIT).await;
        reason.type_text("checked at Flitt: authorized").await;
        self.shot("04-review-queue.png").await;
        b.find("button.resolve-button", PAGE_WAIT)
            .await
            .click()
            .await;
        let notice = b.find("#notice", PAGE_WAIT).await.text().await;
        assert!(notice.starts_with("Review resolved"), "{notice}");
        let timeline = b.find("ol#timeline", PAGE_WAIT).await.text().await;
        let said = "review_resolved by dashboard:admin: checked at Flitt: authorized";
        assert!(timeline.contains(said), "{timeline}");
        self.shot("05-order-resolved.png").await;
    }

    /// Redrives dead letter `seq` (the order's) from the dead-letter page.
    pub async fn redrive(&self, seq: u64) {
        let (b, o) = (&self.b, &self.o);
        b.goto(&format!("{}/dead-letters", self.base)).await;
        let row = b.find("table#dead-letters tr.dead-letter", PAGE_WAIT).await;
        assert!(row.text().await.contains(o.as_str()));
        self.shot("06-dead-letters.png").await;
        let button = format!("form[action$='/dead-letters/{seq}/redrive'] button");
        b.find(&button, PAGE_WAIT).await.click().await;
        let notice = b.find("#notice", PAGE_WAIT).await.text().await;
        let want = format!("Dead letter {seq} redriven to paystate.cmd.{o}.");
        assert_eq!(notice, want);
    }

    /// The captured order's page; and an order nobody created is said to be so.
    pub async fn captured_order_page(&self) {
        let (b, base) = (&self.b, &self.base);
        page_until(b, &format!("{base}/orders/{}", self.o), "payment_captured").await;
        assert_eq!(b.find("#state", PAGE_WAIT).await.text().await, "captured");
        self.shot("07-order-captured.png").await;
        b.goto(&format!("{base}/orders/no-such-order")).await;
        b.find("#no-commits", PAGE_WAIT).await;
    }

    /// Health: projection lag, and per provider the last callback and the counters.
    pub async fn health(&self) {
        let b = &self.b;
        b.goto(&format!("{}/health", self.base)).await;
        b.find("table#projection", PAGE_WAIT).await;
        let mut flitt = Vec::new();
        for row in b.find_all("table#providers tr").await {
            let cells = row.find_all("td").await;
            let Some(first) = cells.first() else {
                continue;
            };
            if first.text().await == "flitt" {
                for c in &cells {
                    flitt.push(c.text().await);
                }
            }
        }
        assert!(flitt.len() == 7 && flitt[1] != "never", "{flitt:?}");
        let callbacks: u64 = flitt[3]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(callbacks >= 1, "the sandbox's callbacks count: {flitt:?}");
        self.shot("08-health.png").await;
    }

    /// Logging out ends the session: the next page is the login form again. Ends the browser.
    pub async fn log_out(self) {
        let b = &self.b;
        b.find("header form button", PAGE_WAIT).await.click().await;
        b.find("#login-form", PAGE_WAIT).await;
        b.goto(&format!("{}/orders", self.base)).await;
        b.find("#login-form", PAGE_WAIT).await;
        self.b.quit().await;
    }
}

/// Sets a capture of `o` aside in the dead-letter stream, as the engine does with a command
/// that failed on every delivery; returns its sequence there.
pub async fn set_aside_capture(ps: &ProviderStack, o: &OrderId) -> u64 {
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

/// Logs in over plain HTTP with the read key and tries to resolve `o` with a valid CSRF token.
pub async fn read_key_cannot_act(base: &str, o: &OrderId) {
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
