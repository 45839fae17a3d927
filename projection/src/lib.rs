//! The order projection: per-order state anyone can query, folded from the log by the same
//! core the engine uses (`engine::apply_commit` → `evolve`), never a second copy of the rules.
//!
//! - [`layout`]: bucket, key and consumer names; the pointer to the live [`Generation`].
//! - [`record`]: what is stored per order ([`ProjectedOrder`]: state + last applied stream
//!   sequence) and how one commit is applied, idempotently.
//! - [`projector`]: the live durable consumer that keeps the live generation's bucket current,
//!   following the pointer across swaps.
//! - [`rebuild`]: a fresh generation folded from the whole log, caught up, then swapped in
//!   while the old one keeps serving; [`rebuild_fold`]: its fold, on the full state.
//! - [`redrive`]: the projector's dead letters: commits given back past their bound set
//!   aside with their reason; a redrive re-projects the order from the log.
//! - [`store`]: reading — pointer, one order, a scan of all, lag. A value paystate did not
//!   write (anyone who may publish can have the broker store its answer at any key) reads as
//!   absent: the pointer as the generation written before it, a record as none; the
//!   projector, a rebuild or a swap writes over it, revision-checked.
//! - [`query`]: filters and views for `paystate order show`, `paystate orders list` and the
//!   gateway's `GET /orders`.

pub mod layout;
pub mod projector;
pub mod query;
pub mod rebuild;
pub mod rebuild_fold;
pub mod record;
pub mod redrive;
pub mod store;

pub use layout::Generation;
pub use projector::{
    ensure_generation, start_projector, wait_caught_up, ProjectorConfig, ProjectorHandle,
    ProjectorStats,
};
pub use query::{list, OrderFilter, OrderList, OrderView, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
pub use rebuild::{rebuild, swap_to, RebuildOptions, RebuildReport, CATCH_UP_TIMEOUT_DEFAULT};
pub use record::{fold_fresh, ProjectedOrder, Step};
pub use store::{Pointer, ProjectionStatus, ProjectionStore};

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// Nothing has been projected yet (no live generation).
    #[error("no projection yet: run `paystate project run` (or `paystate run`) to build one")]
    NoProjection,
    /// The broker failed or timed out: try again.
    #[error("broker: {0}")]
    Broker(String),
    /// A stored value is not what this build writes.
    #[error("projection value {key} is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
    /// Reading the log failed.
    #[error("log: {0}")]
    Log(#[from] paystate_journal::ReadError),
    /// The log holds more orders than the passes allowed can fold in memory.
    #[error(transparent)]
    TooManyPasses(#[from] paystate_journal::passes::TooManyPasses),
    /// The pointer changed under a swap (another rebuild swapped first).
    #[error("the projection pointer changed meanwhile (now generation {0}); nothing swapped")]
    SwapRace(u64),
}
