//! The provider-neutral entry point for adapter workers, the reconciler and the gateway.
//!
//! [`Adapters`] holds the configuration, the one [`Executor`] and the token cache, and
//! dispatches through the registry ([`crate::connector`]): each call builds the order's
//! provider's connector ([`DynConnector`]) and calls it. Each operation returns [`Reported`] (signals to
//! append) or an [`AdapterError`] whose [`AdapterError::signal`] says what, if anything, to
//! record. Operations the capability table ([`paystate_events::capabilities`]) says a
//! provider lacks are refused as `AdapterError::Unsupported` before any call.
//!
//! Secrets: every result leaves through [`Adapters::guard`] / the callback path, which
//! pass all provider text through the one [`Redactor`] built from the configuration (see
//! [`crate::redact`]). Nothing a provider says reaches signals, errors, logs or answers
//! unredacted.
//!
//! Time: the adapters read the clock only here (Plural token expiry, Plexy link expiry),
//! through an injectable clock, never in the translation code.

use crate::callback::{InboundCallback, ParsedCallback};
use crate::config::AdaptersConfig;
use crate::connector::{self, AccessTokens, DynConnector, Env};
use crate::error::{AdapterError, CallbackError, Op};
use crate::executor::Executor;
use crate::flow::Reported;
use crate::paykassma::transformers::Activation;
use crate::redact::{self, Redact, Redactor};
use paystate_events::capabilities::{supports, Capability};
use paystate_events::{Money, OrderState, PaymentInitiation, Provider, Timestamp};

/// Where "now" comes from (tests pin it).
pub type Clock = fn() -> Timestamp;

fn system_clock() -> Timestamp {
    chrono::Utc::now()
}

/// All adapters, ready to call. Cheap to share behind an `Arc`.
pub struct Adapters {
    config: AdaptersConfig,
    executor: Executor,
    tokens: AccessTokens,
    clock: Clock,
    redactor: Redactor,
}

impl Adapters {
    /// Validates the configuration and builds the executor.
    pub fn new(config: AdaptersConfig) -> Result<Adapters, AdapterError> {
        config.validate()?;
        let executor = Executor::new(&config.http)?;
        let redactor = Redactor::from_config(&config);
        Ok(Adapters {
            config,
            executor,
            tokens: Default::default(),
            clock: system_clock,
            redactor,
        })
    }

    /// The redactor of every configured secret, for text about provider calls that is
    /// produced outside the adapters.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The boundary: runs one provider operation with the redactor in scope (so excerpts are
    /// redacted before they are cut) and redacts everything it returns.
    async fn guard<T: Redact>(
        &self,
        op: impl std::future::Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        redact::scope(self.redactor.clone(), op)
            .await
            .redact(&self.redactor)
    }

    pub fn with_clock(mut self, clock: Clock) -> Adapters {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &AdaptersConfig {
        &self.config
    }

    /// The connector of `provider` for one call, if the capability table says it can do
    /// `capability` (refused as `Unsupported` for `op` otherwise, before anything is built).
    fn connector(
        &self,
        provider: Provider,
        capability: Capability,
        op: Op,
    ) -> Result<Box<dyn DynConnector + '_>, AdapterError> {
        if !supports(provider, capability) {
            return Err(AdapterError::Unsupported { provider, op });
        }
        let env = Env {
            config: &self.config,
            executor: &self.executor,
            tokens: &self.tokens,
            now: (self.clock)(),
        };
        Ok(connector::connect(provider, env)?)
    }

    /// Starts the payment at the order's provider (the `PaymentRequested` work).
    pub async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, Capability::StartPayment, Op::Payment)?;
            c.start_payment(order, initiation).await
        })
        .await
    }

    /// Captures `amount` (the `CaptureRequested` work); `capture_id` keys the provider call.
    pub async fn capture(
        &self,
        order: &OrderState,
        capture_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, Capability::PartialCapture, Op::Capture)?;
            c.capture(order, capture_id, amount).await
        })
        .await
    }

    /// Cancels (voids) the payment (the `CancelRequested` work).
    pub async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, Capability::Cancel, Op::Cancel)?;
            c.cancel(order).await
        })
        .await
    }

    /// Refunds `amount` (the `RefundRequested` work); `refund_id` keys the provider call and
    /// is echoed in the `Refunded` signal.
    pub async fn refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, Capability::Refund, Op::Refund)?;
            c.refund(order, refund_id, amount).await
        })
        .await
    }

    /// Asks the provider where the order stands (reconciler, unknown outcomes).
    pub async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, Capability::StatusQuery, Op::Status)?;
            c.status(order).await
        })
        .await
    }

    /// Transfer providers (Paykassma): send the customer's transaction number and
    /// screenshot.
    pub async fn paykassma_activate(
        &self,
        order: &OrderState,
        activation: &Activation,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            let c = self.connector(
                order.provider,
                Capability::TransferConfirmation,
                Op::Activation,
            )?;
            c.activate(order, activation).await
        })
        .await
    }

    /// Payment-link providers (Plexy): cancel the payment link, or move its expiry.
    pub async fn plexy_cancel_link(&self, order: &OrderState) -> Result<(), AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, LINKS, Op::LinkUpdate)?;
            c.cancel_link(order).await
        })
        .await
    }
    pub async fn plexy_update_link_expiry(
        &self,
        order: &OrderState,
        at: Timestamp,
    ) -> Result<(), AdapterError> {
        self.guard(async {
            let c = self.connector(order.provider, LINKS, Op::LinkUpdate)?;
            c.update_link_expiry(order, at).await
        })
        .await
    }

    /// Verifies a callback's signature (against every configured account of the provider) and
    /// translates it. `now` is for replay windows (Plural's 300 s). On error, answer with
    /// [`CallbackError::ack`]; never apply it.
    pub fn verify_and_parse_callback(
        &self,
        provider: Provider,
        callback: &InboundCallback<'_>,
        now: Timestamp,
    ) -> Result<ParsedCallback, CallbackError> {
        let env = Env {
            config: &self.config,
            executor: &self.executor,
            tokens: &self.tokens,
            now,
        };
        let parsed = connector::connect(provider, env)
            .map_err(CallbackError::from)
            .and_then(|c| c.verify_and_parse_callback(callback, now));
        parsed.redact(&self.redactor)
    }
}

const LINKS: Capability = Capability::PaymentLinkUpdates;

#[cfg(test)]
mod tests;
