//! What the adapter tests against a fake provider share: the fake served on a free loopback
//! port, and the adapters configured for it.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use paystate_adapters::{Adapters, AdaptersConfig};
use paystate_events::Timestamp;

/// The `[http]` settings of a test that wants a failed call retried once, at once.
pub const FAST_RETRIES: &str = r#"
[http]
attempts_max = 2
backoff_base_ms = 1
backoff_max_ms = 5
"#;

/// Serves `app` on a free loopback port until the test ends; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The adapters `toml` configures (a providers file), on `clock`.
pub fn adapters(toml: &str, clock: fn() -> Timestamp) -> Adapters {
    let config: AdaptersConfig = toml::from_str(toml).expect("valid config");
    Adapters::new(config).expect("valid").with_clock(clock)
}
