//! The pure payment state machine. No IO, no clock, no randomness: time and ids come in with
//! the command, so the same log always folds to the same state (replay and audit rely on it).
//!
//! - [`decide`]: what a command or provider signal means for an order → events or a typed
//!   rejection. Business rules live here and only here.
//! - [`evolve`]: folds one event into the state. No rules, only bookkeeping.
//! - [`fold`]: folds whole commits (the unit the journal stores), tracking commit numbers,
//!   the hash chain head and applied command ids.
//! - [`invariants`]: what must hold after every step (money bounds, terminal states, legal
//!   transitions); checked by tests, by the engine after every decision and by the audit.
//!
//! The crate depends only on `paystate-events`; the compiler keeps it pure.

mod decide;
mod evolve;
pub mod fold;
pub mod invariants;
mod signals;

pub use decide::{decide, logs_rejection, Decision, COMMITS_PER_ORDER_MAX};
pub use evolve::{evolve, evolve_in_place, EvolveError};
pub use fold::{apply_commit, FoldError};
pub use invariants::{check_invariants, is_legal_transition, Violation};
pub use signals::REFERENCE_MISMATCH;
