//! paystate's payment provider adapters: they translate between paystate's vocabulary
//! (`paystate-events`) and five providers' protocols. Modeled on hyperswitch's connectors:
//! providers build requests and parse responses and callbacks but do no IO; one shared
//! executor makes every HTTP call.
//!
//! Map of the crate:
//! - [`facade`]: [`Adapters`], the provider-neutral entry point (start payment, capture,
//!   cancel, refund, status, verify-and-parse callback). Start here.
//! - [`connector`]: the [`Connector`] trait each provider implements once, its boxed view
//!   [`connector::DynConnector`], and [`connector::REGISTRY`], one line per provider,
//!   through which the facade dispatches.
//! - [`features`]: provider × capability support, as data: a view of
//!   `paystate_events::capabilities`, the table the engine reads too.
//! - [`error`]: [`AdapterError`] / [`CallbackError`], split by how the caller handles them.
//! - [`callback`]: [`InboundCallback`] in, [`ParsedCallback`] (hint, signals, ack) out.
//! - [`flow`]: [`Reported`] (what an operation reported) and the send-and-classify helper.
//! - [`executor`]: the one HTTP client: timeouts, bounded retries with backoff and jitter,
//!   "not sent" vs "outcome unknown". [`http`]: its request/response types.
//! - [`config`]: per-provider base URL, timeouts, callback URL and named merchant accounts.
//! - [`redact`]: [`Redactor`], every configured secret (raw, URL-encoded, JSON/HTML-escaped,
//!   base64, hex) cut out of provider text at the facade, before it leaves the adapters.
//! - [`secret`]: [`Secret`], a credential that prints as `***`. [`crypto`]: digests, HMACs,
//!   constant-time comparison. [`keys`]: provider idempotency keys derived from our ids.
//! - One module per provider, each split into the flow and its `Connector` impl (`mod.rs`),
//!   `transformers` (wire types, builders, exhaustive status map) and `signature`: [`plexy`], [`paykassma`],
//!   [`plural`], [`exchanger`], [`flitt`].

pub mod callback;
pub mod config;
pub mod connector;
pub mod crypto;
pub mod error;
pub mod exchanger;
pub mod executor;
pub mod facade;
pub mod features;
pub mod flitt;
pub mod flow;
pub mod http;
pub mod keys;
pub mod paykassma;
pub mod plexy;
pub mod plural;
pub mod redact;
pub mod secret;
/// Fixtures for the crate's own tests and its integration tests; not for production use.
#[doc(hidden)]
pub mod testing;

pub use callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
pub use config::AdaptersConfig;
pub use connector::Connector;
pub use crypto::SignatureError;
pub use error::{AdapterError, CallbackError, Op};
pub use executor::{CallError, CallOutcome, Executor};
pub use facade::Adapters;
pub use flow::Reported;
pub use redact::Redactor;
pub use secret::Secret;
