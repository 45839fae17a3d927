//! Local HTTP simulators of paystate's five payment providers, for tests and `paystate dev`.
//!
//! One server ([`Sandbox::start`]) hosts every provider under its own prefix, with the
//! provider's documented paths below it, so an adapter configured with
//! [`SandboxHandle::base_url`] cannot tell it from the real thing:
//!
//! - [`plexy`]: payment links, transactions, capture/cancel/refund, `transaction.*` webhooks.
//! - [`paykassma`]: deposit request, activation, postbacks resent until `{"status":"ok"}`.
//! - [`plural`]: OAuth token, orders, payments, capture/cancel/refund, signed webhooks.
//! - [`exchanger`]: order create and info, IPN sent once (a share of them never).
//! - [`flitt`]: checkout URL/token, status, capture, reverse, SHA-1 signed callbacks.
//!
//! Around them:
//!
//! - [`config`]: credentials, callback targets, the time scale of retry schedules.
//! - [`control`]: actions of the customer and the provider's back office (`/_sandbox`).
//! - [`faults`]: delays, 5xx, dropped responses, echoed requests ([`echo`]), duplicate /
//!   reordered / badly signed / dropped callbacks, set at run time.
//! - [`counters`]: effects at the provider and callback deliveries, per order.
//! - `outbox`: callback queues, retry schedules and acknowledgement rules.
//! - `server`: the accept loop (which can drop a connection after acting) and the handle.
//! - `sig`: the signature functions, taken from `paystate-adapters`.
//! - [`wiring`]: the adapter configuration that points paystate at this sandbox.
//!
//! Wire handling here is written from the provider documents, independently of the
//! adapters' parsers, so the two cross-check each other; only signatures are shared.

// Why: handlers return `Result<_, Response>` where the error is the HTTP answer itself, sent
// at once; boxing it would only add an allocation per refused request.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod control;
pub mod counters;
pub mod echo;
pub mod exchanger;
pub mod faults;
pub mod flitt;
mod http;
mod ids;
mod outbox;
pub mod paykassma;
pub mod plexy;
pub mod plural;
mod server;
mod shared;
mod sig;
pub mod wiring;

pub use config::{
    DuplicateReference, ExchangerConfig, ExchangerRoute, FlittConfig, PaykassmaConfig, PlexyConfig,
    PluralConfig, SandboxConfig, TimeScale,
};
pub use control::{Action, ActionOutcome, ControlError};
pub use counters::Counters;
pub use faults::{FaultKind, FaultRule, Op};
pub use outbox::DeliveryRecord;
pub use paystate_events::Provider;
pub use server::{Sandbox, SandboxError, SandboxHandle, SHUTDOWN_DRAIN_MAX};
