//! Re-deriving everything from the log with the pure core: replay, audit, export and import.
//!
//! - [`timeline`]: an order's commits as a timeline (sequence, time, cause, events, state
//!   after each), and its state at any sequence or instant (`paystate replay`).
//! - [`check`]: the audit fold, IO-free: stream gaps, hashes, chains, the re-decision of every
//!   commit by `engine::decide`, transitions, invariants, discrepancies.
//! - [`run`]: the audit against NATS: scan the log into the fold, then compare the projection.
//! - [`report`]: findings (with order and stream sequence), per-order and total, as text/JSON.
//! - [`transfer`]: export as JSON Lines (sequence, subject, time, headers, verbatim body) and
//!   import into an empty stream after verifying every hash chain in the file.
//!
//! Nothing here re-implements a rule: states come from `engine::apply_commit`, decisions from
//! `engine::decide`, checks from `engine::check_invariants` / `is_legal_transition`.

pub mod check;
pub mod report;
pub mod run;
pub mod timeline;
pub mod transfer;

pub use check::Auditor;
pub use report::{Finding, FindingKind, Report};
pub use run::{audit, AuditOptions};
pub use timeline::{state_at, timeline, Point};
pub use transfer::{export, import, verify_file, ExportFilter, TransferSummary};

/// Why replay, audit, export or import could not run (findings are not errors: they are the
/// audit's result).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("log: {0}")]
    Log(#[from] paystate_journal::ReadError),
    #[error("projection: {0}")]
    Projection(#[from] paystate_projection::ProjectionError),
    #[error("broker: {0}")]
    Broker(String),
    #[error("io: {0}")]
    Io(String),
    /// The import file is refused (unreadable line, broken chain); nothing was imported.
    #[error("refused at line {line}{}: {detail}", place(order, sequence))]
    Refused {
        line: u64,
        order: Option<String>,
        sequence: Option<u64>,
        detail: String,
    },
    /// A bug: a worker thread failed.
    #[error("internal: {0}")]
    Internal(String),
    /// The log holds more orders than the passes allowed can keep in memory.
    #[error(transparent)]
    TooManyPasses(#[from] paystate_journal::passes::TooManyPasses),
    /// Import only loads into an empty stream.
    #[error(
        "stream {stream} already holds {messages} messages; import loads only into an empty stream"
    )]
    NotEmpty { stream: String, messages: u64 },
}

fn place(order: &Option<String>, sequence: &Option<u64>) -> String {
    match (order, sequence) {
        (Some(o), Some(s)) => format!(" (order {o}, seq {s})"),
        (Some(o), None) => format!(" (order {o})"),
        (None, Some(s)) => format!(" (seq {s})"),
        (None, None) => String::new(),
    }
}
