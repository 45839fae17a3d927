//! Inbound callbacks: what the gateway hands the adapters and what it gets back.

use paystate_events::{OrderId, Provider, SignalKind, Timestamp};

/// A callback as received. Header names are matched case-insensitively.
#[derive(Debug, Clone, Copy)]
pub struct InboundCallback<'a> {
    pub headers: &'a [(String, String)],
    /// The raw query string without `?` (Plural return URLs, our exchanger `ipnUrl` marker).
    pub query: &'a str,
    pub body: &'a [u8],
}

impl InboundCallback<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn content_type_is(&self, mime: &str) -> bool {
        self.header("content-type")
            .is_some_and(|ct| ct.to_ascii_lowercase().contains(mime))
    }
    /// Query parameters, decoded; malformed pairs are skipped.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(self.query).unwrap_or_default()
    }
}

/// How to find the order a callback is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderHint {
    /// Our order id, when the provider echoes something we derived from it.
    pub order_id: Option<OrderId>,
    /// The provider's reference (matches `OrderState::provider_ref` for most providers).
    pub provider_ref: Option<String>,
}

/// The answer the provider expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Ack {
    pub fn text(status: u16, body: &str) -> Ack {
        Ack {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }
    pub fn json(status: u16, body: &str) -> Ack {
        Ack {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
    pub fn empty_ok() -> Ack {
        Ack::text(200, "")
    }
}

/// A verified, translated callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCallback {
    pub provider: Provider,
    /// The merchant account whose secret verified it.
    pub merchant_account: String,
    pub hint: OrderHint,
    /// Identifies this report across resends (webhook id, transaction id, status+time), for
    /// the gateway's de-duplication and evidence; `None` if the provider gives nothing stable.
    pub dedup_key: Option<String>,
    /// When the provider says it happened, if it says.
    pub observed_at: Option<Timestamp>,
    /// What it means, in order; may be empty for reports that carry no state (e.g. pending).
    pub signals: Vec<SignalKind>,
    /// What to answer, once the raw callback is stored.
    pub ack: Ack,
}
