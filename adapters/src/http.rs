//! Provider-agnostic HTTP messages. Provider modules build [`HttpRequest`]s and read
//! [`HttpResponse`]s; only the [`crate::executor::Executor`] sends them.
//!
//! Requests may carry credentials (an API key header, a `?secret=` query parameter, a token
//! request's JSON body), so `HttpRequest`'s `Debug` prints the method, URL, header and query
//! names and the body's kind and size, never a value.

use crate::secret::Secret;
use bytes::Bytes;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// A header or query value: plain, or a credential that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Plain(String),
    Secret(Secret),
}

impl Value {
    pub fn expose(&self) -> &str {
        match self {
            Value::Plain(s) => s,
            Value::Secret(s) => s.expose(),
        }
    }
}

/// One part of a multipart form.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    Text {
        name: String,
        value: String,
    },
    File {
        name: String,
        file_name: String,
        content_type: String,
        bytes: Bytes,
    },
}

/// A request body.
#[derive(Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    Multipart(Vec<Part>),
}

impl Body {
    fn describe(&self) -> String {
        match self {
            Body::Empty => "empty".to_string(),
            Body::Json(v) => format!("json({} bytes)", v.to_string().len()),
            Body::Form(f) => format!("form({} fields)", f.len()),
            Body::Multipart(p) => format!("multipart({} parts)", p.len()),
        }
    }
}

/// Whether a request may be sent again when its first outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, and writes the provider de-duplicates by an idempotency key we derived.
    Safe,
    /// Writes without an idempotency key: resending could act twice.
    Unsafe,
}

/// An HTTP request, fully built by a provider module.
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    /// Scheme, host and path; never credentials (those go in `query`/`headers` as secrets).
    pub url: String,
    pub query: Vec<(String, Value)>,
    pub headers: Vec<(String, Value)>,
    pub body: Body,
    pub replay: Replay,
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>, replay: Replay) -> HttpRequest {
        HttpRequest {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            replay,
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> HttpRequest {
        self.headers
            .push((name.to_string(), Value::Plain(value.into())));
        self
    }
    pub fn secret_header(mut self, name: &str, value: Secret) -> HttpRequest {
        self.headers.push((name.to_string(), Value::Secret(value)));
        self
    }
    pub fn secret_query(mut self, name: &str, value: Secret) -> HttpRequest {
        self.query.push((name.to_string(), Value::Secret(value)));
        self
    }
    pub fn json(mut self, body: serde_json::Value) -> HttpRequest {
        self.body = Body::Json(body);
        self
    }
    pub fn form(mut self, fields: Vec<(String, String)>) -> HttpRequest {
        self.body = Body::Form(fields);
        self
    }
    pub fn multipart(mut self, parts: Vec<Part>) -> HttpRequest {
        self.body = Body::Multipart(parts);
        self
    }
    /// A header's value (plain or secret), for tests and sandboxes.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.expose())
    }
    /// The JSON body, if it is one.
    pub fn json_body(&self) -> Option<&serde_json::Value> {
        match &self.body {
            Body::Json(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[(String, Value)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("query", &names(&self.query))
            .field("headers", &names(&self.headers))
            .field("body", &self.body.describe())
            .field("replay", &self.replay)
            .finish()
    }
}

/// A provider's answer. Headers are lowercase names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The body as text, lossily (for error messages; truncated). Inside a facade call the
    /// configured secrets are redacted from the whole body before it is cut, so the cut never
    /// leaves part of a secret behind (see [`crate::redact`]).
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = crate::redact::in_scope(&text);
        text.chars().take(BODY_EXCERPT_CHARS_MAX).collect()
    }
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Most characters of a response body quoted in an error.
pub const BODY_EXCERPT_CHARS_MAX: usize = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_values() {
        let req = HttpRequest::new(Method::Post, "https://x.example/api", Replay::Safe)
            .secret_header("Authorization", Secret::new("key-123"))
            .secret_query("secret", Secret::new("q-456"))
            .json(serde_json::json!({"client_secret": "body-789"}));
        let printed = format!("{req:?}");
        for s in ["key-123", "q-456", "body-789"] {
            assert!(!printed.contains(s), "{printed}");
        }
        assert!(printed.contains("Authorization") && printed.contains("https://x.example/api"));
        assert_eq!(req.header_value("authorization"), Some("key-123"));
    }
}
