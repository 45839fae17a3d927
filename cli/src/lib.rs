//! The `paystate` package's library half: how paystate's parts are composed into running
//! processes. The binary (`main.rs`) and the end-to-end tests both use it.
//!
//! - [`stack`]: engine, projector, adapter workers, reconciler and gateway (queries and
//!   callbacks) over one NATS connection, each optional; and [`stack::with_sandbox`], the same
//!   wired to a local sandbox of all five providers (what `paystate dev` and the provider
//!   tests run).
//! - [`ops`]: each process's operations listener (`/metrics`, `/healthz`, `/readyz`) and
//!   the projection sampler behind the lag and orders-by-state gauges.
//! - [`protocol`]: docs/protocol.md, generated from the code (transition table computed by
//!   running the pure core).
//! - [`answers`]: the shapes of HTTP answers and CLI `--json` outputs, for their schemas.
//! - [`demo`]: one sample order through each of the five providers against a sandbox,
//!   playing the customer through the sandbox's control API (for `paystate dev`).

pub mod answers;
pub mod demo;
pub mod ops;
pub mod permissions;
pub mod protocol;
pub mod stack;
