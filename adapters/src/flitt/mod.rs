//! Flitt (Pay by Payme).
//!
//! - [`signature`]: protocol 1.0 / 2.0 signatures, as the official SDKs compute them.
//! - [`transformers`]: signed request builders, response checks, status map.
//! - This file: the flows. `start_payment` calls `/api/checkout/url` (or
//!   `/api/checkout/token` when `initiation.params.flow = "token"`); a create
//!   refused because the order id already exists is resolved by a status query (our order id
//!   is Flitt's `order_id`, so an existing order is ours); a create whose every answer was
//!   lost is recorded as unknown and resolved by a status query, then the checkout is asked
//!   for again under the same `order_id`. `cancel` is a full reversal
//!   (voids a preauth); `refund` a reversal with `reverse_id` derived from the refund id (one
//!   whose outcome is unknown is resolved by a status query that knows which refund it was).
//!   Callbacks (JSON or form) are verified with the account password and parsed by
//!   [`parse_callback`]; they are triggers (`confirm_by_status`): protocol 1.0 does not bind
//!   key names, so the gateway applies Flitt's signed status answer, not the callback body.

pub mod signature;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::{FlittAccount, ProviderConfig};
use crate::connector::{Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, Ctx, Reported};
use crate::http::HttpResponse;
use paystate_events::{
    Money, Operation, OrderId, OrderState, PaymentInitiation, Provider, SignalKind, Timestamp,
};
use serde_json::{Map, Value};
use transformers::{self as tf, ResponseError};

const P: Provider = Provider::Flitt;

/// One Flitt flow: configuration and executor.
pub struct Flitt<'a> {
    pub cfg: &'a ProviderConfig<FlittAccount>,
    pub ctx: Ctx<'a>,
}

impl Flitt<'_> {
    async fn checkout(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
        kind: tf::Checkout,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let r = send(
            self.ctx,
            Op::Payment,
            &tf::checkout_request(self.cfg, account, order, initiation, kind),
        )
        .await?;
        let params = match params(Op::Payment, &r, account) {
            Err(AdapterError::Rejected { code, message, .. }) => {
                return self.existing_or(order, code, message).await
            }
            other => other?,
        };
        let action =
            tf::checkout_action(&params, kind).map_err(|e| unreadable(Op::Payment, &r, e))?;
        let signals = vec![SignalKind::Accepted {
            action: Some(action),
        }];
        Ok(Reported {
            provider_ref: tf::text(&params, "payment_id"),
            signals,
            call_ref: order.order_id.to_string(),
        })
    }

    /// A checkout whose every answer was lost: records that, asks Flitt where the order
    /// stands and, when it still waits for the customer (or Flitt does not know it), asks for
    /// the checkout again under the same `order_id`: Flitt never opens a second order for one
    /// `order_id` and answers an identical repeat with the same checkout, which the customer
    /// needs and a status answer does not carry.
    async fn after_unknown_checkout(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
        kind: tf::Checkout,
        detail: String,
    ) -> Result<Reported, AdapterError> {
        let unknown = SignalKind::OutcomeUnknown {
            operation: Operation::Payment,
            detail,
        };
        let mut reported = match self.status(order).await {
            Ok(r) if !still_at_checkout(&r.signals) => r,
            _ => self.checkout(order, initiation, kind).await?,
        };
        reported.signals.insert(0, unknown);
        Ok(reported)
    }

    /// After a refused create: if Flitt knows the order (a replay of ours), report its status;
    /// otherwise the refusal stands.
    async fn existing_or(
        &self,
        order: &OrderState,
        code: String,
        message: String,
    ) -> Result<Reported, AdapterError> {
        match self.status(order).await {
            Ok(reported) => Ok(reported),
            Err(_) => Err(AdapterError::Rejected {
                provider: P,
                op: Op::Payment,
                code,
                message,
            }),
        }
    }
}

impl Connector for Flitt<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        let kind = tf::checkout_kind(initiation).map_err(|detail| AdapterError::InvalidInput {
            provider: P,
            op: Op::Payment,
            detail,
        })?;
        match self.checkout(order, initiation, kind).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                self.after_unknown_checkout(order, initiation, kind, detail)
                    .await
            }
            other => other,
        }
    }

    async fn capture(
        &self,
        order: &OrderState,
        capture_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let r = send(
            self.ctx,
            Op::Capture,
            &tf::capture_request(self.cfg, account, order, amount),
        )
        .await?;
        let params = params(Op::Capture, &r, account)?;
        let signals = tf::capture_signals(&params, amount);
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            call_ref: format!("{}:capture:{capture_id}", order.order_id),
        })
    }

    /// Void: a full reversal of the order amount.
    async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let reverse_id = tf::reverse_id(order, "cancel", "all");
        let req = tf::reverse_request(self.cfg, account, order, order.amount, &reverse_id);
        let r = send(self.ctx, Op::Cancel, &req).await?;
        let params = params(Op::Cancel, &r, account)?;
        let signals = tf::reverse_signals(&params, order.amount, None);
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            call_ref: reverse_id,
        })
    }

    /// A reversal under `reverse_id` derived from the refund id; when its outcome is unknown,
    /// the status query that resolves it knows which refund was attempted.
    async fn refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        match self.reverse_refund(order, refund_id, amount).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                self.after_unknown_refund(order, refund_id, detail).await
            }
            other => other,
        }
    }

    async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        self.status_after(order, None).await
    }

    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, _now: Timestamp) -> Parsed {
        parse_callback(self.cfg, cb)
    }
}

impl Flitt<'_> {
    async fn reverse_refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let reverse_id = tf::reverse_id(order, "refund", refund_id);
        let r = send(
            self.ctx,
            Op::Refund,
            &tf::reverse_request(self.cfg, account, order, amount, &reverse_id),
        )
        .await?;
        let params = params(Op::Refund, &r, account)?;
        let signals = tf::reverse_signals(&params, amount, Some(refund_id));
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            call_ref: reverse_id,
        })
    }

    /// A reverse call for `refund_id` whose outcome is unknown (every answer lost, or one
    /// that does not read): records that and asks Flitt where the order stands, knowing which
    /// refund was just attempted (a status query elsewhere cannot tell which of two pending
    /// refunds of one amount Flitt made). When the status query fails too, whatever its
    /// error, the outcome stays unknown: the caller records it and resolves it later.
    async fn after_unknown_refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        detail: String,
    ) -> Result<Reported, AdapterError> {
        let mut reported = match self.status_after(order, Some(refund_id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(order = %order.order_id, error = %e, "status query after a refund of unknown outcome failed");
                return Err(AdapterError::OutcomeUnknown {
                    provider: P,
                    op: Op::Refund,
                    detail,
                });
            }
        };
        let unknown = SignalKind::OutcomeUnknown {
            operation: Operation::Refund,
            detail,
        };
        reported.signals.insert(0, unknown);
        Ok(reported)
    }

    /// The status query; `attempted_refund` is our refund whose reverse call's outcome is
    /// unknown, if that is why we ask ([`tf::order_signals_for`]).
    async fn status_after(
        &self,
        order: &OrderState,
        attempted_refund: Option<&str>,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let r = send(
            self.ctx,
            Op::Status,
            &tf::status_request(self.cfg, account, order),
        )
        .await?;
        let params = params(Op::Status, &r, account)?;
        let signals = tf::order_signals_for(&params, Some(order), attempted_refund)
            .map_err(|e| unreadable(Op::Status, &r, e))?;
        let provider_ref = tf::text(&params, "payment_id").or_else(|| order.provider_ref.clone());
        Ok(Reported {
            provider_ref,
            signals,
            call_ref: format!("{}:status", order.order_id),
        })
    }
}

/// Flitt's registration ([`crate::connector::REGISTRY`]): its flow for one call.
pub fn connect(env: Env<'_>) -> Connected<'_> {
    let cfg = env.config.flitt()?;
    let ctx = env.ctx(P, cfg.timeouts);
    Ok(Box::new(Flitt { cfg, ctx }))
}

/// True when a report says only that the order waits for the customer.
fn still_at_checkout(signals: &[SignalKind]) -> bool {
    signals
        .iter()
        .all(|s| matches!(s, SignalKind::Accepted { .. }))
}

fn unreadable(op: Op, r: &HttpResponse, e: impl std::fmt::Display) -> AdapterError {
    crate::flow::unreadable(P, op, r, e)
}

/// The verified `response` parameters, or the error they stand for. A bad-signature failure
/// (1007) is our configuration, not a payment refusal.
fn params(
    op: Op,
    r: &HttpResponse,
    account: &FlittAccount,
) -> Result<Map<String, Value>, AdapterError> {
    match tf::response_params(r, account.password.expose()) {
        Ok(p) if r.is_success() => Ok(p),
        Ok(_) => Err(AdapterError::Rejected {
            provider: P,
            op,
            code: format!("http_{}", r.status),
            message: r.body_excerpt(),
        }),
        Err(ResponseError::Failure { code, .. }) if code == tf::ERROR_BAD_SIGNATURE => {
            Err(AdapterError::Unauthorized {
                provider: P,
                op,
                status: r.status,
            })
        }
        Err(ResponseError::Failure { code, message }) => Err(AdapterError::Rejected {
            provider: P,
            op,
            code,
            message,
        }),
        Err(ResponseError::Unreadable(e)) => Err(unreadable(op, r, e)),
    }
}

/// Verifies and translates a server callback: flat JSON parameters (or `{"response": {...}}`,
/// or a form) signed with the merchant password. Acknowledged with HTTP 200.
pub fn parse_callback(
    cfg: &ProviderConfig<FlittAccount>,
    cb: &InboundCallback<'_>,
) -> Result<ParsedCallback, CallbackError> {
    let params = callback_params(cb)?;
    let merchant_id = tf::text(&params, "merchant_id");
    let account = cfg
        .accounts
        .iter()
        .filter(|(_, a)| {
            merchant_id
                .as_deref()
                .is_none_or(|m| m == a.merchant_id.to_string())
        })
        .find(|(_, a)| signature::verify(a.password.expose(), &params))
        .map(|(name, _)| name.clone())
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Mismatch,
        })?;
    let malformed = |detail: String| CallbackError::Malformed {
        provider: P,
        detail,
    };
    tf::callback_complete(&params).map_err(malformed)?;
    // What the body claims, kept as evidence only (see `confirm_by_status` below).
    let signals = tf::order_signals(&params, None).map_err(malformed)?;
    let order_id = tf::text(&params, "order_id")
        .and_then(|o| OrderId::parse(o).ok())
        .ok_or_else(|| malformed("order_id is not one of our order ids".into()))?;
    let dedup_key = tf::callback_identity(&params);
    Ok(ParsedCallback {
        provider: P,
        merchant_account: account,
        // Protocol 1.0 signs the non-empty values in key order, not the keys: a signed value
        // can be moved to a neighbouring (or renamed) key and still verify. So nothing in the
        // body is signed identity: `order_id` only says which order to ask Flitt about.
        hint: OrderHint {
            order_id: None,
            provider_ref: None,
            unsigned_order_id: Some(order_id),
        },
        dedup_key: Some(dedup_key),
        observed_at: None,
        signals,
        ack: Ack::empty_ok(),
        // A trigger: the gateway asks Flitt's status API (signed answer, over TLS from the
        // configured host) and applies that answer, de-duplicated by what it says.
        confirm_by_status: true,
    })
}

fn callback_params(cb: &InboundCallback<'_>) -> Result<Map<String, Value>, CallbackError> {
    let malformed = |detail: String| CallbackError::Malformed {
        provider: P,
        detail,
    };
    if cb.content_type_is("x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(cb.body).map_err(|e| malformed(e.to_string()))?;
        return Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match serde_json::from_slice::<Value>(cb.body).map_err(|e| malformed(e.to_string()))? {
        Value::Object(mut m) => match m.remove("response") {
            Some(Value::Object(inner)) => Ok(inner),
            Some(other) => {
                m.insert("response".into(), other);
                Ok(m)
            }
            None => Ok(m),
        },
        _ => Err(malformed("callback is not a JSON object".into())),
    }
}
