//! A minimal W3C WebDriver client over HTTP (reqwest), driving Debian's `chromium` through
//! `chromedriver` headless: just the commands the dashboard test needs (open a page, find
//! elements by CSS, type, click, read text and cookies, screenshots).

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The W3C element reference key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long chromedriver may take to answer `/status` after it starts.
const DRIVER_START_MAX: Duration = Duration::from_secs(20);
/// How long one WebDriver command may take (page loads included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and one browser session; both end when dropped.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: tokio::process::Child,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium session.
    pub async fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "{CHROMIUM} and {CHROMEDRIVER} are needed (Debian packages chromium and \
             chromium-driver; scripts/test.sh installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("http client");
        let driver_url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{driver_url}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < DRIVER_START_MAX,
                "chromedriver never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1400"]
            }
        }}});
        let answer = post(&http, &format!("{driver_url}/session"), caps).await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Browser {
            http,
            base: format!("{driver_url}/session/{id}"),
            driver,
        }
    }

    async fn cmd(&self, path: &str, body: Value) -> Value {
        post(&self.http, &format!("{}{path}", self.base), body).await
    }

    async fn query(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("chromedriver answers");
        value_of(resp).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.query("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.query("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every element matching `css` (none: empty).
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .cmd("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting for it up to `wait`.
    pub async fn find(&self, css: &str, wait: Duration) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                started.elapsed() < wait,
                "no element {css:?} on {} within {wait:?}; page:\n{}",
                self.url().await,
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `wait` until the current URL contains `part` (a navigation has happened).
    pub async fn url_until(&self, part: &str, wait: Duration) {
        let started = Instant::now();
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            assert!(
                started.elapsed() < wait,
                "the URL never contained {part:?} within {wait:?}: {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The browser's cookies (name, value, httpOnly, sameSite).
    pub async fn cookies(&self) -> Vec<Value> {
        self.query("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves a PNG screenshot of the page at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.query("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Ends the browser session and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = self.driver.kill().await;
    }
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    pub async fn click(&self) {
        self.browser
            .cmd(&format!("/element/{}/click", self.id), json!({}))
            .await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .cmd(
                &format!("/element/{}/value", self.id),
                json!({ "text": text }),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .query(&format!("/element/{}/text", self.id))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Finds `css` inside this element.
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .browser
            .cmd(
                &format!("/element/{}/elements", self.id),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self.browser,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let resp = http
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("chromedriver answers");
    value_of(resp).await
}

/// The `value` of a WebDriver answer; panics with the driver's error otherwise.
async fn value_of(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON answer");
    assert!(status.is_success(), "webdriver error {status}: {body}");
    body["value"].clone()
}
