//! Test helpers: a sandbox with millisecond schedules and a callback receiver on port 0.
#![allow(dead_code)] // Why: each test file uses a different subset of these helpers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use paystate_sandbox::{Sandbox, SandboxConfig, SandboxHandle, TimeScale};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long tests wait for callbacks before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("callback body is JSON")
    }
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).expect("callback body is a form")
    }
}

type Judge = Box<dyn Fn(&Hit) -> (u16, String) + Send + Sync>;

#[derive(Default)]
struct Inner {
    hits: Mutex<Vec<Hit>>,
    script: Mutex<VecDeque<(u16, String)>>,
    judge: Mutex<Option<Judge>>,
}

/// A callback receiver: answers scripted replies first, then the judge's, then 200 `{"status":"ok"}`.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/callbacks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Receiver { url, inner }
    }

    /// The next answers, in order, before the default.
    pub fn script(&self, answers: &[(u16, &str)]) {
        let mut s = self.inner.script.lock().unwrap();
        s.extend(answers.iter().map(|(c, b)| (*c, b.to_string())));
    }

    /// Decides answers from the request once the script is used up.
    pub fn judge(&self, f: impl Fn(&Hit) -> (u16, String) + Send + Sync + 'static) {
        *self.inner.judge.lock().unwrap() = Some(Box::new(f));
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_hits(&self, n: usize) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let hits = self.hits();
            if hits.len() >= n || tokio::time::Instant::now() >= deadline {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let hit = Hit {
        headers,
        body: body.to_vec(),
    };
    inner.hits.lock().unwrap().push(hit.clone());
    let scripted = inner.script.lock().unwrap().pop_front();
    let (code, body) = scripted
        .or_else(|| inner.judge.lock().unwrap().as_ref().map(|j| j(&hit)))
        .unwrap_or((200, r#"{"status":"ok"}"#.to_string()));
    (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body).into_response()
}

/// A sandbox whose documented seconds last one millisecond, with `edit` applied to its config.
pub async fn sandbox(edit: impl FnOnce(&mut SandboxConfig)) -> SandboxHandle {
    let mut config = SandboxConfig {
        time_scale: TimeScale::MILLIS,
        ..SandboxConfig::default()
    };
    edit(&mut config);
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A client with a short timeout, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client")
}
