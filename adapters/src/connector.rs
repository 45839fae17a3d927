//! One [`Connector`] per provider, one registration each ([`REGISTRY`]).
//!
//! Modeled on hyperswitch's connectors (`ConnectorIntegration` / `IncomingWebhook`): a
//! provider implements the trait once, in its own folder, on its flow type (configuration
//! and executor for one call); the facade finds it through [`connect`] and never matches on
//! the provider. What a provider supports is data shared with the engine
//! ([`paystate_events::capabilities`]): the facade refuses an operation the table says no to
//! before any connector is built, and the trait's defaults answer `Unsupported` as a
//! backstop.
//!
//! Adding a provider: its folder (`mod.rs` with the flow type, its `Connector` impl and a
//! `connect` fn; `transformers.rs`; `signature.rs`), one line in [`REGISTRY`], and its
//! vocabulary outside the adapters (a `Provider` variant, its row in the capability table, its
//! configuration section).

use crate::callback::{InboundCallback, ParsedCallback};
use crate::config::{AdaptersConfig, ConfigError, Timeouts};
use crate::error::{AdapterError, CallbackError, Op};
use crate::executor::Executor;
use crate::flow::{Ctx, Reported};
use crate::paykassma::transformers::Activation;
use crate::plural::token::TokenCache;
use crate::{exchanger, flitt, paykassma, plexy, plural};
use paystate_events::{Money, OrderState, PaymentInitiation, Provider, Timestamp};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A provider operation in flight (boxed, so that `Connector` stays dyn-compatible).
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdapterError>> + Send + 'a>>;

/// Cached bearer tokens by provider and merchant account (Plural's OAuth tokens).
pub type AccessTokens = tokio::sync::Mutex<BTreeMap<(Provider, String), TokenCache>>;

/// What a connector is built from for one call: the configuration, the one executor, the
/// shared token cache, and "now" (read once from the facade's clock).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub config: &'a AdaptersConfig,
    pub executor: &'a Executor,
    pub tokens: &'a AccessTokens,
    pub now: Timestamp,
}

impl<'a> Env<'a> {
    /// The call context for `provider` with its timeouts.
    pub fn ctx(&self, provider: Provider, timeouts: Timeouts) -> Ctx<'a> {
        Ctx {
            provider,
            executor: self.executor,
            timeout: timeouts.request(),
        }
    }
}

/// One payment provider: its operations and its callbacks. Operations the provider does not
/// have keep the default, `Unsupported` (the capability table says so first).
pub trait Connector: Send + Sync {
    fn provider(&self) -> Provider;

    /// Starts the payment (the `PaymentRequested` work).
    fn start_payment<'a>(
        &'a self,
        order: &'a OrderState,
        initiation: &'a PaymentInitiation,
    ) -> Call<'a, Reported>;

    /// Captures `amount`; `capture_id` keys the provider call.
    fn capture<'a>(
        &'a self,
        _order: &'a OrderState,
        _capture_id: &'a str,
        _amount: Money,
    ) -> Call<'a, Reported> {
        unsupported(self.provider(), Op::Capture)
    }

    /// Cancels (voids) the payment.
    fn cancel<'a>(&'a self, _order: &'a OrderState) -> Call<'a, Reported> {
        unsupported(self.provider(), Op::Cancel)
    }

    /// Refunds `amount`; `refund_id` keys the provider call.
    fn refund<'a>(
        &'a self,
        _order: &'a OrderState,
        _refund_id: &'a str,
        _amount: Money,
    ) -> Call<'a, Reported> {
        unsupported(self.provider(), Op::Refund)
    }

    /// Asks the provider where the order stands.
    fn status<'a>(&'a self, _order: &'a OrderState) -> Call<'a, Reported> {
        unsupported(self.provider(), Op::Status)
    }

    /// Transfer providers: sends the customer's confirmation of their transfer.
    fn activate<'a>(
        &'a self,
        _order: &'a OrderState,
        _activation: &'a Activation,
    ) -> Call<'a, Reported> {
        unsupported(self.provider(), Op::Activation)
    }

    /// Payment-link providers: cancels the link itself.
    fn cancel_link<'a>(&'a self, _order: &'a OrderState) -> Call<'a, ()> {
        unsupported(self.provider(), Op::LinkUpdate)
    }

    /// Payment-link providers: moves the link's expiry to `at`.
    fn update_link_expiry<'a>(&'a self, _order: &'a OrderState, _at: Timestamp) -> Call<'a, ()> {
        unsupported(self.provider(), Op::LinkUpdate)
    }

    /// Verifies a callback's signature (against every configured account) and translates
    /// it. `now` is for replay windows.
    fn verify_and_parse_callback(
        &self,
        callback: &InboundCallback<'_>,
        now: Timestamp,
    ) -> Result<ParsedCallback, CallbackError>;
}

/// The refusal of an operation a provider does not have.
pub fn unsupported<'a, T: Send + 'a>(provider: Provider, op: Op) -> Call<'a, T> {
    Box::pin(std::future::ready(Err(AdapterError::Unsupported {
        provider,
        op,
    })))
}

/// Builds a provider's connector for one call (fails if the provider is not configured).
pub type Connect = for<'a> fn(Env<'a>) -> Result<Box<dyn Connector + 'a>, ConfigError>;

/// Every provider, registered once.
pub const REGISTRY: [(Provider, Connect); 5] = [
    (Provider::Plexy, plexy::connect),
    (Provider::Paykassma, paykassma::connect),
    (Provider::Plural, plural::connect),
    (Provider::Exchanger, exchanger::connect),
    (Provider::Flitt, flitt::connect),
];

/// The connector of `provider`, built for one call. A provider without a registration is
/// reported as not configured (it cannot be).
pub fn connect(provider: Provider, env: Env<'_>) -> Result<Box<dyn Connector + '_>, ConfigError> {
    let (_, build) = REGISTRY
        .iter()
        .find(|(p, _)| *p == provider)
        .ok_or(ConfigError::ProviderNotConfigured(provider))?;
    build(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_registered_once_and_answers_to_its_name() {
        for p in Provider::ALL {
            assert_eq!(REGISTRY.iter().filter(|(q, _)| *q == p).count(), 1, "{p}");
        }
        let config = AdaptersConfig::default();
        let executor = Executor::new(&config.http).expect("executor");
        let tokens = AccessTokens::default();
        let env = Env {
            config: &config,
            executor: &executor,
            tokens: &tokens,
            now: crate::testing::t0(),
        };
        for p in Provider::ALL {
            // Nothing configured: every registration still names its provider in the error.
            assert_eq!(
                connect(p, env).err(),
                Some(ConfigError::ProviderNotConfigured(p))
            );
        }
    }
}
