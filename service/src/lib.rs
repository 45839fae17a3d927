//! The command service: how commands published to NATS become commits in the log.
//!
//! ```text
//! client ──js publish──▶ PAYSTATE_COMMANDS (work queue, paystate.cmd.<order>: client plane;
//! reporter ─────────────▶                   paystate.signal.<order>: provider signals only;
//! operator ─────────────▶                   paystate.op.<order>: resolve_review only)
//!                              │ durable pull consumer "paystate-engine", shared by every instance
//!                              ▼
//!        intake ──by order──▶ partition task: cache ─▶ decide ─▶ journal.append (OCC) ─▶ reply
//!                                                         ▲ conflict: re-load, re-decide (bounded)
//! ```
//!
//! - [`parse`]: bytes → [`paystate_events::CommandEnvelope`] or a typed rejection; with
//!   [`strict_json`] (no repeated keys) and [`card_data`] (no PAN/CVV into the log).
//! - [`cache`]: per-partition bounded LRU of order states with their last stream sequence.
//! - [`outcomes`]: the KV bucket of outcomes by (order, command id), only for rejections
//!   with no order to live in (`order_not_found`, a refused create) and refused reply
//!   targets; everything else is answered from the order's log (decision 0013).
//! - [`snapshots`]: the full state of an order every 100 commits, so a cache miss reads a
//!   snapshot and the commits after it (verified against the hash chain).
//! - [`processor`]: one command, start to finish (the decide/append loop): accepted
//!   commands and rejections on an existing order (`command_rejected`) are appended with the
//!   same optimistic-concurrency check; a retry is answered from its commit in the log.
//! - [`intake`]: the consumer loop, partitioning, acknowledgement, shutdown.
//! - [`fast`]: the fast path (decision 0013): the `paystate` NATS service, one endpoint per
//!   partition this instance owns (rendezvous hashing over live instances), requests routed
//!   to the same partition tasks as queued commands, answered once the log holds the commit.
//! - [`order_queues`]: a partition's per-order queues: one order's commands in order, a
//!   failed one retried (parked) before anything behind it, the other orders going on.
//! - [`attachments`]: files commands refer to (object store), checked by hash on read.
//! - [`expiry`]: order expiry schedules (JetStream message scheduling), written after a commit.
//! - [`refs`]: provider references → order ids (for callbacks that name only the former).
//! - [`client`]: publishing a command and waiting for its outcome (for Rust callers).
//! - [`telemetry`]: the engine's metrics and the tracing span every command is handled in.
//!
//! A command is acknowledged to JetStream (or answered on the fast path) only after its
//! outcome is durable (committed, a rejection logged, or a rejection with no order decided),
//! so a crash at any point leads to redelivery, and redelivery is idempotent: the order's
//! state remembers every command id it logged, accepted or refused.

pub mod attachments;
pub mod cache;
pub mod card_data;
pub mod client;
pub mod config;
pub mod connect;
pub mod expiry;
pub mod fast;
pub mod intake;
pub mod order_queues;
pub mod outcomes;
pub mod parse;
pub mod processor;
pub mod refs;
pub mod snapshots;
pub mod strict_json;
pub mod telemetry;

pub use client::{Client, ClientError};
pub use config::EngineConfig;
pub use connect::{
    connect, connect_patiently, connect_with, connect_with_patiently, ConnectError, NatsAuth,
    NatsOptions, NatsTls, Secret,
};
pub use intake::{run_engine, EngineError, EngineHandle};
