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

/// A provider operation in flight, boxed (what [`DynConnector`] returns).
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

/// The result of an operation, for trait declarations (`async fn` in the impls).
pub type Answer<T> = Result<T, AdapterError>;
/// The result of verifying and parsing a callback.
pub type Parsed = Result<ParsedCallback, CallbackError>;

/// One payment provider: its operations and its callbacks, implemented once per provider
/// (with `async fn`s) on its flow type. Operations the provider does not have keep the
/// default, `Unsupported` (the capability table refuses them first). The facade calls
/// connectors as [`DynConnector`]s, which every `Connector` is.
pub trait Connector: Send + Sync {
    const PROVIDER: Provider;

    /// Starts the payment (the `PaymentRequested` work).
    fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> impl Future<Output = Answer<Reported>> + Send;

    /// Captures `amount`; `capture_id` keys the provider call.
    fn capture(
        &self,
        _order: &OrderState,
        _capture_id: &str,
        _amount: Money,
    ) -> impl Future<Output = Answer<Reported>> + Send {
        refuse(Self::PROVIDER, Op::Capture)
    }

    /// Cancels (voids) the payment.
    fn cancel(&self, _order: &OrderState) -> impl Future<Output = Answer<Reported>> + Send {
        refuse(Self::PROVIDER, Op::Cancel)
    }

    /// Refunds `amount`; `refund_id` keys the provider call.
    fn refund(
        &self,
        _order: &OrderState,
        _refund_id: &str,
        _amount: Money,
    ) -> impl Future<Output = Answer<Reported>> + Send {
        refuse(Self::PROVIDER, Op::Refund)
    }

    /// Asks the provider where the order stands.
    fn status(&self, _order: &OrderState) -> impl Future<Output = Answer<Reported>> + Send {
        refuse(Self::PROVIDER, Op::Status)
    }

    /// Transfer providers: sends the customer's confirmation of their transfer.
    fn activate(
        &self,
        _order: &OrderState,
        _activation: &Activation,
    ) -> impl Future<Output = Answer<Reported>> + Send {
        refuse(Self::PROVIDER, Op::Activation)
    }

    /// Payment-link providers: cancels the link itself.
    fn cancel_link(&self, _order: &OrderState) -> impl Future<Output = Answer<()>> + Send {
        refuse(Self::PROVIDER, Op::LinkUpdate)
    }

    /// Payment-link providers: moves the link's expiry to `at`.
    fn update_link_expiry(
        &self,
        _order: &OrderState,
        _at: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send {
        refuse(Self::PROVIDER, Op::LinkUpdate)
    }

    /// Verifies a callback's signature (against every configured account) and translates
    /// it. `now` is for replay windows.
    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, now: Timestamp) -> Parsed;
}

/// The refusal of an operation a provider does not have.
fn refuse<T>(provider: Provider, op: Op) -> std::future::Ready<Answer<T>> {
    std::future::ready(Err(AdapterError::Unsupported { provider, op }))
}

/// A [`Connector`] as a trait object: the same operations, their futures boxed. Implemented
/// for every `Connector`; nothing else implements it.
pub trait DynConnector: Send + Sync {
    fn provider(&self) -> Provider;
    fn start_payment<'a>(
        &'a self,
        order: &'a OrderState,
        initiation: &'a PaymentInitiation,
    ) -> Call<'a, Reported>;
    fn capture<'a>(
        &'a self,
        order: &'a OrderState,
        id: &'a str,
        amount: Money,
    ) -> Call<'a, Reported>;
    fn cancel<'a>(&'a self, order: &'a OrderState) -> Call<'a, Reported>;
    fn refund<'a>(
        &'a self,
        order: &'a OrderState,
        id: &'a str,
        amount: Money,
    ) -> Call<'a, Reported>;
    fn status<'a>(&'a self, order: &'a OrderState) -> Call<'a, Reported>;
    fn activate<'a>(&'a self, order: &'a OrderState, a: &'a Activation) -> Call<'a, Reported>;
    fn cancel_link<'a>(&'a self, order: &'a OrderState) -> Call<'a, ()>;
    fn update_link_expiry<'a>(&'a self, order: &'a OrderState, at: Timestamp) -> Call<'a, ()>;
    fn verify_and_parse_callback(
        &self,
        callback: &InboundCallback<'_>,
        now: Timestamp,
    ) -> Result<ParsedCallback, CallbackError>;
}

impl<C: Connector> DynConnector for C {
    fn provider(&self) -> Provider {
        C::PROVIDER
    }
    fn start_payment<'a>(
        &'a self,
        order: &'a OrderState,
        initiation: &'a PaymentInitiation,
    ) -> Call<'a, Reported> {
        Box::pin(Connector::start_payment(self, order, initiation))
    }
    fn capture<'a>(
        &'a self,
        order: &'a OrderState,
        id: &'a str,
        amount: Money,
    ) -> Call<'a, Reported> {
        Box::pin(Connector::capture(self, order, id, amount))
    }
    fn cancel<'a>(&'a self, order: &'a OrderState) -> Call<'a, Reported> {
        Box::pin(Connector::cancel(self, order))
    }
    fn refund<'a>(
        &'a self,
        order: &'a OrderState,
        id: &'a str,
        amount: Money,
    ) -> Call<'a, Reported> {
        Box::pin(Connector::refund(self, order, id, amount))
    }
    fn status<'a>(&'a self, order: &'a OrderState) -> Call<'a, Reported> {
        Box::pin(Connector::status(self, order))
    }
    fn activate<'a>(&'a self, order: &'a OrderState, a: &'a Activation) -> Call<'a, Reported> {
        Box::pin(Connector::activate(self, order, a))
    }
    fn cancel_link<'a>(&'a self, order: &'a OrderState) -> Call<'a, ()> {
        Box::pin(Connector::cancel_link(self, order))
    }
    fn update_link_expiry<'a>(&'a self, order: &'a OrderState, at: Timestamp) -> Call<'a, ()> {
        Box::pin(Connector::update_link_expiry(self, order, at))
    }
    fn verify_and_parse_callback(
        &self,
        callback: &InboundCallback<'_>,
        now: Timestamp,
    ) -> Result<ParsedCallback, CallbackError> {
        Connector::verify_and_parse_callback(self, callback, now)
    }
}

/// A provider's connector built for one call, or why not (the provider is not configured).
pub type Connected<'a> = Result<Box<dyn DynConnector + 'a>, ConfigError>;

/// Builds a provider's connector for one call: each provider's `connect`.
pub type Connect = for<'a> fn(Env<'a>) -> Connected<'a>;

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
pub fn connect(
    provider: Provider,
    env: Env<'_>,
) -> Result<Box<dyn DynConnector + '_>, ConfigError> {
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
