//! The log: every order's commits in one JetStream stream, one subject per order.
//!
//! - [`setup`]: stream, consumer and bucket configuration ([`LogSettings`]), created or
//!   updated idempotently by every process at start.
//! - [`append`]: one commit = one message, appended atomically with optimistic concurrency
//!   on the order subject's last sequence (`Nats-Expected-Last-Subject-Sequence`). Conflicts
//!   (10071, and 10163/10164 on newer servers) come back as [`AppendError::Conflict`].
//! - [`read`]: an order's commits back in order, in a few batched requests (read-after-write:
//!   checked against the leader's last sequence), the order folded to its state, hash and
//!   chain verified on the way.
//! - [`batch_read`]: JetStream's batched direct get (many messages of a subject per request).
//! - [`quarantine`]: operator decisions to skip a message that is not a commit (the log
//!   denies deletes), by order and sequence.
//! - [`dead_letters`]: messages a consumer gave up on after its delivery bound, with their
//!   reason: set aside ([`dead_letters::send`]), listed, shown, redriven.
//! - [`scan`]: the whole log in stream order, raw, up to a snapshot of its last sequence: for
//!   projection rebuilds, audits, exports.
//! - [`pull`]: a pull consumer's messages with the count of what is due kept by the reader
//!   (async-nats's own pull streams can stall; see there).
//! - [`follow`]: a consumer followed for as long as a process runs (durable, or in stream
//!   order without acks), pulled anew after whatever ends a pull.
//!
//! Layout: stream `PAYSTATE_EVENTS`, subjects `paystate.events.<order_id>`, file storage;
//! each message is a JSON [`paystate_events::Commit`] with headers `Paystate-Commit-Hash`
//! (SHA-256 of the body) and `Paystate-Commit` (the order's commit number).

pub mod append;
pub mod batch_read;
pub mod dead_letters;
pub mod follow;
pub mod passes;
pub mod pull;
pub mod quarantine;
pub mod read;
pub mod scan;
pub mod setup;

pub use append::{AppendError, Appended, EncodedCommit};
pub use read::{LoadedOrder, OrderTail, ReadError, StoredCommit};
pub use scan::{LogScan, RawEntry, ScanOptions};
pub use setup::{check_server_version, ensure_log, LogSettings, SetupError, SERVER_VERSION_MIN};

use async_nats::jetstream::{self, stream::Stream};

/// Handle on the log. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Journal {
    js: jetstream::Context,
    events: Stream,
}

impl Journal {
    /// Opens the log, creating or updating the stream as `settings` say.
    pub async fn open(
        js: jetstream::Context,
        settings: &LogSettings,
    ) -> Result<Journal, SetupError> {
        let events = ensure_log(&js, settings).await?;
        // Why not fatal: only the engine and operators create it; readers treat a missing
        // bucket as "nothing quarantined".
        if let Err(e) = quarantine::ensure(&js, settings.replicas).await {
            tracing::debug!(error = %e, "quarantine bucket not created by this role");
        }
        Ok(Journal { js, events })
    }

    /// Opens an existing log without changing its configuration.
    pub async fn existing(js: jetstream::Context, stream: &str) -> Result<Journal, SetupError> {
        let events = js
            .get_stream(stream)
            .await
            .map_err(|e| SetupError::Stream(format!("{stream}: {e}")))?;
        Ok(Journal { js, events })
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }
    pub fn stream(&self) -> &Stream {
        &self.events
    }
}
