//! paystate's payment provider adapters.
//!
//! - [`secret`]: [`Secret`], a credential that prints as `***`.
//! - [`crypto`]: digests, HMACs, constant-time comparison, [`SignatureError`].
//! - One module per provider, each with `signature` (and, later, flows and wire types):
//!   [`plexy`], [`paykassma`], [`plural`], [`exchanger`], [`flitt`].

pub mod callback;
pub mod config;
pub mod crypto;
pub mod error;
pub mod exchanger;
pub mod executor;
pub mod flitt;
pub mod flow;
pub mod http;
pub mod keys;
pub mod paykassma;
pub mod plexy;
pub mod plural;
pub mod secret;
#[cfg(test)]
mod testing;

pub use crypto::SignatureError;
pub use secret::Secret;
