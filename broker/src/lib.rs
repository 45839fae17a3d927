//! Running nats-server for paystate: the real broker, never a mock.
//!
//! - [`locate`]: finds the pinned nats-server binary (`PAYSTATE_NATS_SERVER`, then the
//!   project's `.tools/nats/bin/nats-server` installed by `scripts/install-nats.sh`, then `PATH`)
//!   and reads its version.
//! - [`NatsServer`]: a child nats-server with JetStream on a loopback port and its own store
//!   directory; it can be killed (SIGKILL) and restarted on the same port and store, which
//!   is how the fault tests take the broker away mid-flow.
//!
//! - [`Cluster`]: three (or more) such servers routed into one JetStream cluster.
//! - [`cpu_seconds`]: CPU a process (a server, the bench) has used, for per-operation figures.
//!
//! `paystate dev`, the end-to-end tests and `paystate bench` all start servers through here.

mod cluster;
mod locate;
mod procfs;
mod server;

pub use cluster::{Cluster, CLUSTER_NAME};
pub use locate::{locate, server_version, Version, PINNED_VERSION};
pub use procfs::{child_named, cpu_seconds, process_state};
pub use server::{free_port, NatsServer, Probe, ServerEnv, ServerOptions};

/// Why a nats-server could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("nats-server not found: set PAYSTATE_NATS_SERVER, run scripts/install-nats.sh, or put it on PATH")]
    NotFound,
    #[error("could not run {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("nats-server on port {port} did not accept connections within {waited_ms} ms; its log: {log}")]
    NotReady {
        port: u16,
        waited_ms: u64,
        log: String,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
