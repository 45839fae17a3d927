//! The provider-neutral entry point for adapter workers, the reconciler and the gateway.
//!
//! [`Adapters`] holds the configuration, the one [`Executor`] and Plural's token cache, and
//! dispatches on the order's provider. Each operation returns [`Reported`] (signals to
//! append) or an [`AdapterError`] whose [`AdapterError::signal`] says what, if anything, to
//! record. Unsupported operations (see [`crate::features::FEATURES`]) are
//! `AdapterError::Unsupported`.
//!
//! Secrets: every result leaves through [`Adapters::guard`] / the callback path, which
//! pass all provider text through the one [`Redactor`] built from the configuration (see
//! [`crate::redact`]). Nothing a provider says reaches signals, errors, logs or answers
//! unredacted.
//!
//! Time: the adapters read the clock only here (Plural token expiry, Plexy link expiry),
//! through an injectable clock, never in the translation code.

use crate::callback::{InboundCallback, ParsedCallback};
use crate::config::{AdaptersConfig, Timeouts};
use crate::error::{AdapterError, CallbackError, Op};
use crate::executor::Executor;
use crate::features::{supports, Feature};
use crate::flow::{Ctx, Reported};
use crate::redact::{self, Redact, Redactor};
use crate::{exchanger, flitt, paykassma, plexy, plural};
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
    plural_tokens: plural::TokenStore,
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
            plural_tokens: Default::default(),
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

    fn ctx(&self, provider: Provider, timeouts: Timeouts) -> Ctx<'_> {
        Ctx {
            provider,
            executor: &self.executor,
            timeout: timeouts.request(),
        }
    }

    fn plural(&self) -> Result<plural::Plural<'_>, AdapterError> {
        let cfg = self.config.plural()?;
        let ctx = self.ctx(Provider::Plural, cfg.timeouts);
        Ok(plural::Plural {
            cfg,
            ctx,
            tokens: &self.plural_tokens,
            now: (self.clock)(),
        })
    }
    fn plexy(&self) -> Result<plexy::Plexy<'_>, AdapterError> {
        let cfg = self.config.plexy()?;
        Ok(plexy::Plexy {
            cfg,
            ctx: self.ctx(Provider::Plexy, cfg.common.timeouts),
            now: (self.clock)(),
        })
    }
    fn flitt(&self) -> Result<flitt::Flitt<'_>, AdapterError> {
        let cfg = self.config.flitt()?;
        Ok(flitt::Flitt {
            cfg,
            ctx: self.ctx(Provider::Flitt, cfg.timeouts),
        })
    }
    fn paykassma(&self) -> Result<paykassma::Paykassma<'_>, AdapterError> {
        let cfg = self.config.paykassma()?;
        Ok(paykassma::Paykassma {
            cfg,
            ctx: self.ctx(Provider::Paykassma, cfg.timeouts),
        })
    }
    fn exchanger(&self) -> Result<exchanger::Exchanger<'_>, AdapterError> {
        let cfg = self.config.exchanger()?;
        Ok(exchanger::Exchanger {
            cfg,
            ctx: self.ctx(Provider::Exchanger, cfg.common.timeouts),
        })
    }

    /// Starts the payment at the order's provider (the `PaymentRequested` work).
    pub async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            match order.provider {
                Provider::Plexy => self.plexy()?.start_payment(order, initiation).await,
                Provider::Paykassma => self.paykassma()?.start_payment(order, initiation).await,
                Provider::Plural => self.plural()?.start_payment(order, initiation).await,
                Provider::Exchanger => self.exchanger()?.start_payment(order, initiation).await,
                Provider::Flitt => self.flitt()?.start_payment(order, initiation).await,
            }
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
        unsupported(order.provider, Feature::PartialCapture, Op::Capture)?;
        self.guard(async {
            match order.provider {
                Provider::Plexy => self.plexy()?.capture(order, capture_id, amount).await,
                Provider::Plural => self.plural()?.capture(order, capture_id, amount).await,
                Provider::Flitt => self.flitt()?.capture(order, capture_id, amount).await,
                Provider::Paykassma | Provider::Exchanger => Err(AdapterError::Unsupported {
                    provider: order.provider,
                    op: Op::Capture,
                }),
            }
        })
        .await
    }

    /// Cancels (voids) the payment (the `CancelRequested` work).
    pub async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        unsupported(order.provider, Feature::Cancel, Op::Cancel)?;
        self.guard(async {
            match order.provider {
                Provider::Plexy => self.plexy()?.cancel(order).await,
                Provider::Plural => self.plural()?.cancel(order).await,
                Provider::Flitt => self.flitt()?.cancel(order).await,
                Provider::Paykassma | Provider::Exchanger => Err(AdapterError::Unsupported {
                    provider: order.provider,
                    op: Op::Cancel,
                }),
            }
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
        unsupported(order.provider, Feature::Refund, Op::Refund)?;
        self.guard(async {
            match order.provider {
                Provider::Plexy => self.plexy()?.refund(order, refund_id, amount).await,
                Provider::Plural => self.plural()?.refund(order, refund_id, amount).await,
                Provider::Flitt => self.flitt()?.refund(order, refund_id, amount).await,
                Provider::Paykassma | Provider::Exchanger => Err(AdapterError::Unsupported {
                    provider: order.provider,
                    op: Op::Refund,
                }),
            }
        })
        .await
    }

    /// Asks the provider where the order stands (reconciler, unknown outcomes).
    pub async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        unsupported(order.provider, Feature::StatusQuery, Op::Status)?;
        self.guard(async {
            match order.provider {
                Provider::Plexy => self.plexy()?.status(order).await,
                Provider::Plural => self.plural()?.status(order).await,
                Provider::Exchanger => self.exchanger()?.status(order).await,
                Provider::Flitt => self.flitt()?.status(order).await,
                Provider::Paykassma => Err(AdapterError::Unsupported {
                    provider: order.provider,
                    op: Op::Status,
                }),
            }
        })
        .await
    }

    /// Paykassma only: send the customer's transaction number and screenshot.
    pub async fn paykassma_activate(
        &self,
        order: &OrderState,
        activation: &paykassma::transformers::Activation,
    ) -> Result<Reported, AdapterError> {
        self.guard(async {
            match order.provider {
                Provider::Paykassma => self.paykassma()?.activate(order, activation).await,
                other => Err(AdapterError::Unsupported {
                    provider: other,
                    op: Op::Activation,
                }),
            }
        })
        .await
    }

    /// Plexy only: cancel the payment link, or move its expiry.
    pub async fn plexy_cancel_link(&self, order: &OrderState) -> Result<(), AdapterError> {
        self.guard(async { self.plexy()?.cancel_link(order).await })
            .await
    }
    pub async fn plexy_update_link_expiry(
        &self,
        order: &OrderState,
        at: Timestamp,
    ) -> Result<(), AdapterError> {
        self.guard(async { self.plexy()?.update_link_expiry(order, at).await })
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
        let parsed = (|| match provider {
            Provider::Plexy => plexy::parse_callback(self.config.plexy()?, callback),
            Provider::Paykassma => paykassma::parse_callback(self.config.paykassma()?, callback),
            Provider::Plural => plural::parse_callback(self.config.plural()?, callback, now),
            Provider::Exchanger => exchanger::parse_callback(self.config.exchanger()?, callback),
            Provider::Flitt => flitt::parse_callback(self.config.flitt()?, callback),
        })();
        parsed.redact(&self.redactor)
    }
}

fn unsupported(provider: Provider, feature: Feature, op: Op) -> Result<(), AdapterError> {
    if supports(provider, feature) {
        Ok(())
    } else {
        Err(AdapterError::Unsupported { provider, op })
    }
}

#[cfg(test)]
mod tests;
