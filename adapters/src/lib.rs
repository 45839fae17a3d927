//! paystate's payment provider adapters.
//!
//! - [`secret`]: [`Secret`], a credential that prints as `***`.
//! - [`crypto`]: digests, HMACs, constant-time comparison, [`SignatureError`].
//! - One module per provider, each with `signature` (and, later, flows and wire types):
//!   [`plexy`], [`paykassma`], [`plural`], [`exchanger`], [`flitt`].

pub mod config;
pub mod crypto;
pub mod exchanger;
pub mod executor;
pub mod flitt;
pub mod http;
pub mod paykassma;
pub mod plexy;
pub mod plural;
pub mod secret;

pub use crypto::SignatureError;
pub use secret::Secret;
