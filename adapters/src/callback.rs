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
///
/// `order_id` and `provider_ref` come only from what the provider's signature covers (or
/// from a status query answered by the configured host). Anything else that names an order
/// (a query parameter we put on the callback URL, an unsigned body field) is only
/// `unsigned_order_id`: it may help find the order, but the gateway cross-checks it against
/// the signed reference and never moves an order on it alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderHint {
    /// Our order id, when the provider echoes something we derived from it in a signed field.
    pub order_id: Option<OrderId>,
    /// The provider's reference, from a signed field (matches `OrderState::provider_ref`).
    pub provider_ref: Option<String>,
    /// Our order id from something the signature does not cover: a routing hint only.
    pub unsigned_order_id: Option<OrderId>,
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
    /// With `confirm_by_status` these are only what the unsigned body claims (evidence).
    pub signals: Vec<SignalKind>,
    /// The provider signs nothing that says what happened (Plexy webhooks: a bearer token
    /// only), or what it signed is inconclusive (a Plural return URL with an error code
    /// beside a success status): the callback is a trigger. Before any money state moves, the gateway asks the
    /// provider (status query to the configured host) and applies its answer instead of
    /// `signals`, de-duplicated by what the answer says.
    pub confirm_by_status: bool,
    /// What to answer, once the raw callback is stored.
    pub ack: Ack,
}

/// How a provider delivers callbacks: whether a callback not acknowledged comes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Resent until acknowledged (on a schedule, or by a status-query trigger): a 503 makes
    /// the provider try again later.
    Resent,
    /// Sent once (the exchanger's IPN: "IPN will be sent once ... it will not be resent"):
    /// a callback paystate could not apply yet is kept and re-driven by paystate itself.
    /// Only providers whose signature covers the body or query (not a header, which is
    /// stored redacted) can be sent once: the re-drive verifies the stored request again.
    Once,
}

/// How `provider` delivers callbacks (docs/providers.md, "callbacks" row).
pub fn delivery(provider: Provider) -> Delivery {
    match provider {
        // Plural: retried at once, 5 s, 5 min, ... 10 h. Flitt: 2 s ... 24 h. Paykassma:
        // resent until `{"status":"ok"}`. Plexy: retries undocumented, but its callbacks
        // are only triggers for a status query, which the reconciler makes too.
        Provider::Plural | Provider::Flitt | Provider::Paykassma | Provider::Plexy => {
            Delivery::Resent
        }
        Provider::Exchanger => Delivery::Once,
    }
}
