//! The one place that does HTTP. Provider modules hand it an [`HttpRequest`]; it sends it
//! with a per-call timeout and bounded retries, and says whether the provider answered, the
//! request was definitely not sent, or it may have been sent with no answer.
//!
//! Retry rules (bounded by [`RetryPolicy::attempts_max`], exponential backoff with jitter):
//! - connection not established (refused, DNS, connect timeout): nothing reached the
//!   provider, so it is always retried; after the last attempt: [`CallError::NotSent`].
//! - 5xx: retried only for [`Replay::Safe`] requests (reads, or writes the provider
//!   de-duplicates by our idempotency key); otherwise returned to the caller.
//! - 4xx: never retried.
//! - timeout after connecting, connection dropped after the request was written, unreadable
//!   response: the provider may have acted. `Replay::Safe` requests are retried; others end
//!   at once as [`CallOutcome::Unknown`], which callers record and resolve with a status
//!   query instead of resending.

use crate::config::{ConfigError, HttpConfig};
use crate::http::{Body, HttpRequest, HttpResponse, Method, Part, Replay};
use bytes::{Bytes, BytesMut};
use rand::Rng;
use std::time::Duration;

/// Default total attempts per call (first try included).
pub const ATTEMPTS_MAX_DEFAULT: u32 = 3;
/// Largest configurable number of attempts.
pub const ATTEMPTS_MAX_LIMIT: u32 = 10;
/// First retry waits about this long; each further retry doubles it.
pub const BACKOFF_BASE_MS_DEFAULT: u64 = 200;
/// No single wait is longer than this.
pub const BACKOFF_MAX_MS_DEFAULT: u64 = 5_000;
/// Largest configurable single wait.
pub const BACKOFF_MAX_MS_LIMIT: u64 = 60_000;
/// Connection establishment timeout (shared by all providers).
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Largest response body read; bigger answers are treated as unreadable.
pub const RESPONSE_BODY_LEN_MAX: usize = 2 * 1024 * 1024;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts_max: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    pub fn from_config(c: &HttpConfig) -> Result<RetryPolicy, ConfigError> {
        let invalid = |field, reason: String| ConfigError::Http { field, reason };
        if !(1..=ATTEMPTS_MAX_LIMIT).contains(&c.attempts_max) {
            return Err(invalid(
                "http.attempts_max",
                format!("must be 1..={ATTEMPTS_MAX_LIMIT}"),
            ));
        }
        if c.backoff_max_ms > BACKOFF_MAX_MS_LIMIT || c.backoff_base_ms > c.backoff_max_ms {
            return Err(invalid(
                "http.backoff_ms",
                format!("need base <= max <= {BACKOFF_MAX_MS_LIMIT}"),
            ));
        }
        Ok(RetryPolicy {
            attempts_max: c.attempts_max,
            backoff_base: Duration::from_millis(c.backoff_base_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
        })
    }

    /// Wait before retry number `retry` (1 = first retry): `base * 2^(retry-1)` capped at
    /// `backoff_max`, then "equal jitter": half fixed, half scaled by `jitter` in `[0, 1]`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let capped = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let half = capped / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// What became of a call that was (possibly) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The provider answered (any status; 5xx only after retries were used up or not allowed).
    Response(HttpResponse),
    /// The request may have reached the provider, and we do not know what it did.
    Unknown { detail: String },
}

/// A call that certainly did not reach the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be made in any attempt: safe to try again later.
    #[error("request not sent after {attempts} attempt(s): {detail}")]
    NotSent { attempts: u32, detail: String },
    /// The request could not even be built (bad URL, bad header): a configuration problem.
    #[error("request could not be built: {0}")]
    Invalid(String),
}

/// One attempt's result, before retry rules apply.
enum Attempt {
    Response(HttpResponse),
    NotSent(String),
    MaybeSent(String),
    Invalid(String),
}

/// The shared HTTP executor (cheap to clone: the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Executor {
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl Executor {
    pub fn new(http: &HttpConfig) -> Result<Executor, ConfigError> {
        let retry = RetryPolicy::from_config(http)?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(http.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Http {
                field: "client",
                reason: e.to_string(),
            })?;
        Ok(Executor { client, retry })
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `req` with a whole-call `timeout` per attempt, applying the retry rules above.
    pub async fn execute(
        &self,
        req: &HttpRequest,
        timeout: Duration,
    ) -> Result<CallOutcome, CallError> {
        let mut maybe_sent = false;
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.attempts_max;
            let result = self.send_once(req, timeout).await;
            let retry = match &result {
                Attempt::Response(r) => r.status >= 500 && req.replay == Replay::Safe,
                Attempt::NotSent(_) => true,
                Attempt::MaybeSent(_) => req.replay == Replay::Safe,
                Attempt::Invalid(_) => false,
            };
            maybe_sent |= matches!(result, Attempt::MaybeSent(_));
            if !retry || last {
                return finish(result, attempt, maybe_sent);
            }
            let wait = self
                .retry
                .delay(attempt, rand::thread_rng().gen_range(0.0..=1.0));
            tracing::debug!(url = %req.url, attempt, wait_ms = wait.as_millis() as u64, "retrying provider call");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, req: &HttpRequest, timeout: Duration) -> Attempt {
        let builder = match self.build(req, timeout) {
            Ok(b) => b,
            Err(detail) => return Attempt::Invalid(detail),
        };
        match builder.send().await {
            Err(e) => classify_error(e),
            Ok(resp) => {
                let status = resp.status().as_u16();
                tracing::debug!(method = req.method.as_str(), url = %req.url, status, "provider answered");
                read_response(resp).await
            }
        }
    }

    fn build(
        &self,
        req: &HttpRequest,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, String> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let query: Vec<(&str, &str)> = req
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let mut b = self.client.request(method, &req.url).timeout(timeout);
        if !query.is_empty() {
            b = b.query(&query);
        }
        for (name, value) in &req.headers {
            b = b.header(name.as_str(), value.expose());
        }
        Ok(match &req.body {
            Body::Empty => b,
            Body::Json(v) => b.json(v),
            Body::Form(fields) => b.form(fields),
            Body::Multipart(parts) => b.multipart(multipart_form(parts)?),
        })
    }
}

fn multipart_form(parts: &[Part]) -> Result<reqwest::multipart::Form, String> {
    let mut form = reqwest::multipart::Form::new();
    for part in parts {
        form = match part {
            Part::Text { name, value } => form.text(name.clone(), value.clone()),
            Part::File {
                name,
                file_name,
                content_type,
                bytes,
            } => {
                let p = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(file_name.clone())
                    .mime_str(content_type)
                    .map_err(|e| format!("bad content type for part {name}: {e}"))?;
                form.part(name.clone(), p)
            }
        };
    }
    Ok(form)
}

fn finish(result: Attempt, attempts: u32, maybe_sent: bool) -> Result<CallOutcome, CallError> {
    match result {
        Attempt::Response(r) => Ok(CallOutcome::Response(r)),
        Attempt::MaybeSent(detail) => Ok(CallOutcome::Unknown { detail }),
        // An earlier attempt may have reached the provider: the outcome is not "not sent".
        Attempt::NotSent(detail) if maybe_sent => Ok(CallOutcome::Unknown { detail }),
        Attempt::NotSent(detail) => Err(CallError::NotSent { attempts, detail }),
        Attempt::Invalid(detail) => Err(CallError::Invalid(detail)),
    }
}

/// Sorts a transport error into "not sent" or "maybe sent". The URL is stripped from the
/// message because query strings may carry credentials.
fn classify_error(e: reqwest::Error) -> Attempt {
    let (builder, connect) = (e.is_builder(), e.is_connect());
    let detail = error_chain(&e.without_url());
    if builder {
        Attempt::Invalid(detail)
    } else if connect {
        Attempt::NotSent(detail)
    } else {
        Attempt::MaybeSent(detail)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let (Some(s), true) = (source, depth < 5) {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    out
}

async fn read_response(mut resp: reqwest::Response) -> Attempt {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > RESPONSE_BODY_LEN_MAX => {
                return Attempt::MaybeSent(format!(
                    "response body over {RESPONSE_BODY_LEN_MAX} bytes (status {status})"
                ));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                return Attempt::MaybeSent(format!(
                    "reading response (status {status}): {}",
                    error_chain(&e.without_url())
                ))
            }
        }
    }
    Attempt::Response(HttpResponse {
        status,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests;
