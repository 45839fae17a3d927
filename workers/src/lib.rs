//! Where paystate meets the providers' APIs, outside the request path.
//!
//! - [`submit`]: turning what a provider reported into `provider_signal` commands with
//!   deterministic ids (a retried work item submits the same ids: applied once).
//! - [`work`]: one unit of provider work (payment, capture, cancel, refund) from an event in
//!   the log: load the order, skip work already resolved, call the adapter, submit signals.
//!   An unknown outcome is recorded and resolved by a status query, never by resending.
//! - [`worker`]: the durable consumer `paystate-workers` on the log, partitioned by order,
//!   acknowledging a commit only after its work's signals are stored; every message it holds
//!   gets progress acks well within the ack wait, so no second worker takes it meanwhile.
//! - [`held`]: what a worker holds between receiving a commit and acknowledging it (provider
//!   answers not yet submitted, the messages it progress-acks), with the bounds on both.
//! - [`reconciler`]: follows the log, keeps the orders that wait on a provider, and probes
//!   the provider when they stay stuck past a per-provider deadline, with per-order backoff
//!   and a final deadline after which the order is flagged for review.

pub mod held;
pub mod reconciler;
pub mod submit;
pub mod work;
pub mod worker;

pub use reconciler::{run_reconciler, ReconcilerConfig, ReconcilerHandle};
pub use worker::{run_workers, WorkerConfig, WorkersHandle};
