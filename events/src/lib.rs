//! paystate's vocabulary: everything that crosses a process boundary, as plain serde types.
//!
//! - [`capabilities`]: what each provider supports ([`capabilities::CAPABILITIES`]), shared
//!   by the engine's rules and the adapters.
//! - [`ids`]: order, command and refund identifiers, parsed at the edge (subject-safe).
//! - [`limits`]: every size bound, tied together by compile-time assertions.
//! - [`money`]: integer minor units with an ISO 4217 currency; exact decimal conversion.
//! - [`command`]: what client services and adapters ask of an order ([`CommandEnvelope`]).
//! - [`signal`]: what a payment provider told us ([`ProviderSignal`]).
//! - [`event`]: what happened to an order, past tense ([`Event`]).
//! - [`state`]: the shape of an order's folded state ([`OrderState`]); the rules live in `engine`.
//! - [`view`]: the bounded view of a state that outcomes and projection records carry
//!   ([`StateView`]); the engine keeps its idempotency data to itself.
//! - [`commit`]: one atomic, hash-chained append to an order's log ([`Commit`]).
//! - [`fast_decode`]: a one-pass commit decoder for long reads, exactly serde's or refusing.
//! - [`outcome`]: the answer a caller gets for a command, with stable rejection codes.
//! - [`subjects`]: NATS subjects, stream and bucket names.
//! - [`secret`]: [`Secret`], a credential that never prints and never serializes.
//! - [`metric_names`]: every Prometheus metric name and its labels, defined once.
//! - [`samples`]: the sample order lifecycle every benchmark sends.
//!
//! This crate does no IO and reads no clock; it is shared by the engine, the journal, the
//! service, the adapters and any client written in Rust. JSON Schemas of the wire types are
//! generated from it into `schemas/`.

pub mod capabilities;
pub mod command;
pub mod commit;
pub mod event;
pub mod fast_decode;
pub mod ids;
pub mod limits;
pub mod metric_names;
pub mod money;
pub mod outcome;
pub mod provider;
pub mod samples;
pub mod schemas;
pub mod secret;
pub mod signal;
pub mod state;
pub mod subjects;
mod timestamp_json;
pub mod view;

pub use capabilities::Capability;
pub use command::{CaptureMode, Command, CommandEnvelope, PaymentInitiation};
pub use commit::{Commit, CommitHash, COMMIT_SCHEMA_VERSION};
pub use event::{CancelledBy, Event, Evidence, SignalDisposition};
pub use ids::{CommandId, IdError, OrderId};
pub use money::{Amount, Currency, MinorUnits, Money, MoneyError};
pub use outcome::{Outcome, Rejection, RejectionCode};
pub use provider::Provider;
pub use secret::Secret;
pub use signal::{CustomerAction, CustomerActionKind, Operation, ProviderSignal, SignalKind};
pub use state::{Applied, Discrepancy, OrderState, Status};
pub use view::StateView;

/// Timestamps everywhere are UTC instants with RFC 3339 on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
