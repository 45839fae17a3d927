//! Plexy (PlexyPay Pay API).
//!
//! - [`signature`]: webhook bearer token, Tilda form signature.
//! - [`transformers`]: request builders, transaction status map, Tilda form.
//! - This file: the flows. `start_payment` creates a payment link (the link id is the
//!   provider reference; the link URL is a `Redirect`). Capture, cancel and refund act on a
//!   transaction, so they first list the link's transactions and pick the one in the right
//!   state (`authorized` for capture/cancel, `charged` for refund). Cancelling an order
//!   nobody has paid yet (no transaction, or only an unfinished one) cancels the payment
//!   link itself. `status` reports the link's most advanced transaction, or, when there is
//!   none, the link's own status (a cancelled or expired link is a cancelled payment).
//!   Webhooks (`transaction.<status>`) are checked against each account's webhook token
//!   ([`parse_callback`]); their body is not signed, so they only trigger a status query
//!   (see `ParsedCallback::confirm_by_status`).
//!
//! Unknown outcomes (no idempotency key is documented, so no write is replayed): the write
//! that lost its answer asks Plexy at once, its own call being over, and Plexy's answer
//! decides. A create is looked up by our order reference: the link found is reported (after
//! checking it is this order's); none found is recorded (`probed`) but decides nothing, since
//! the lookup's path is not in the documents we hold and a wrong one answers 404 too — the
//! order waits for the reconciler, which flags it at its final deadline. A capture or void finds the transaction still `authorized`
//! when it was not made, and reports it failed (`not_captured` / `not_cancelled`), which
//! frees the order for another attempt. When that first question fails too, `status` does
//! the same for the reconciler, but only once the order's log has been quiet for
//! [`SETTLE_TIMEOUTS`] request timeouts (a call of ours may still be on its way before):
//! a link found by reference is always reported. A capture or void that finds its
//! transaction already `charged` / `cancelled` reports that instead of failing.

pub mod signature;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::{PlexyAccount, PlexyConfig};
use crate::connector::{Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, unreadable, Ctx, Reported};
use crate::http::HttpResponse;
use paystate_events::{
    Money, OrderId, OrderState, PaymentInitiation, Provider, SignalKind, Status, Timestamp,
};
use transformers as tf;

/// Longest provider status text copied into a probe's evidence reference.
const RAW_STATUS_IN_EVIDENCE_MAX: usize = 64;

/// A provider's status text, bounded, for evidence references.
fn short(raw: &str) -> String {
    raw.chars().take(RAW_STATUS_IN_EVIDENCE_MAX).collect()
}

const P: Provider = Provider::Plexy;

/// A plain status query concludes that a write did not happen (no link under our reference;
/// a pending capture or void whose transaction is still `authorized`) only when the order's
/// log has been quiet for this many request timeouts: our call for the last request, sent
/// after that commit, has been answered or has timed out by then. Sooner, the write may still
/// be on its way (the reconciler and the gateway ask at any time). The write that lost its
/// answer asks with its own call over and concludes at once.
pub const SETTLE_TIMEOUTS: u32 = 2;

/// One Plexy flow: configuration and executor, at a given time.
pub struct Plexy<'a> {
    pub cfg: &'a PlexyConfig,
    pub ctx: Ctx<'a>,
    pub now: Timestamp,
}

impl Plexy<'_> {
    fn account(&self, order: &OrderState) -> Result<&PlexyAccount, AdapterError> {
        Ok(self
            .cfg
            .common
            .account(P, order.merchant_account.as_deref())?
            .1)
    }

    async fn cancel_link_as(&self, order: &OrderState, op: Op) -> Result<(), AdapterError> {
        let link = link_id(order, op)?;
        let r = send(
            self.ctx,
            op,
            &tf::cancel_link_request(self.cfg, self.account(order)?, link),
        )
        .await?;
        check(op, &r)
    }

    /// Reads a link without transactions: is it still open, or closed without payment?
    async fn link_signals(
        &self,
        order: &OrderState,
        link: &str,
    ) -> Result<(Vec<SignalKind>, String), AdapterError> {
        let r = send(
            self.ctx,
            Op::Status,
            &tf::link_request(self.cfg, self.account(order)?, link),
        )
        .await?;
        check(Op::Status, &r)?;
        let link: tf::PaymentLink = r.json().map_err(|e| unreadable(P, Op::Status, &r, e))?;
        Ok(tf::link_status_signals(&link))
    }

    async fn transactions(
        &self,
        order: &OrderState,
        op: Op,
    ) -> Result<Vec<tf::Transaction>, AdapterError> {
        self.link_transactions(order, link_id(order, op)?, op).await
    }

    async fn link_transactions(
        &self,
        order: &OrderState,
        link: &str,
        op: Op,
    ) -> Result<Vec<tf::Transaction>, AdapterError> {
        let r = send(
            self.ctx,
            op,
            &tf::transactions_request(self.cfg, self.account(order)?, link),
        )
        .await?;
        check(op, &r)?;
        let body: serde_json::Value = r.json().map_err(|e| unreadable(P, Op::Status, &r, e))?;
        tf::transactions_of(&body).map_err(|e| unreadable(P, Op::Status, &r, e))
    }

    async fn transaction(
        &self,
        order: &OrderState,
        op: Op,
        wanted: &[&str],
    ) -> Result<tf::Transaction, AdapterError> {
        let txs = self.transactions(order, op).await?;
        tf::pick(&txs, wanted)
            .cloned()
            .ok_or_else(|| AdapterError::NotFound {
                provider: P,
                op,
                detail: format!("no {} transaction on the payment link", wanted.join("/")),
            })
    }

    async fn payment_op(
        &self,
        order: &OrderState,
        op: Op,
        tx: &tf::Transaction,
        amount: Option<Money>,
        call_ref: String,
    ) -> Result<Reported, AdapterError> {
        let req =
            tf::payment_op_request(self.cfg, self.account(order)?, &tx.id, op.as_str(), amount);
        let r = send(self.ctx, op, &req).await?;
        check(op, &r)?;
        let answered: tf::Transaction = r.json().map_err(|e| unreadable(P, op, &r, e))?;
        let signals = tf::transaction_signals(&answered, self.cfg.transaction_amounts)
            .map_err(|e| unreadable(P, op, &r, e))?;
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            call_ref,
        })
    }

    /// Where the link stands: its most advanced transaction (and, when `conclude`, the
    /// order's pending capture or void it shows was not made, [`tf::not_made`]), or, without
    /// transactions, the link's own status. With the raw status, for the evidence.
    async fn link_report(
        &self,
        order: &OrderState,
        link: &str,
        txs: &[tf::Transaction],
        conclude: bool,
    ) -> Result<(Vec<SignalKind>, String), AdapterError> {
        let Some(tx) = tf::reported(txs) else {
            return self.link_signals(order, link).await;
        };
        let mut signals = tf::transaction_signals(tx, self.cfg.transaction_amounts)
            .map_err(|detail| bad(Op::Status, detail))?;
        if conclude {
            signals.extend(tf::not_made(order, txs));
        }
        Ok((signals, format!("transaction.{}", tx.status)))
    }

    /// Whether the order's log has been quiet for [`SETTLE_TIMEOUTS`] request timeouts.
    fn settled(&self, order: &OrderState) -> bool {
        let settle = self
            .ctx
            .timeout
            .checked_mul(SETTLE_TIMEOUTS)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .unwrap_or(chrono::Duration::MAX);
        self.now.signed_duration_since(order.updated_at) >= settle
    }

    /// The payment link Plexy holds under our order reference; `None` when it has none (404).
    async fn link_by_reference(
        &self,
        order: &OrderState,
    ) -> Result<Option<tf::PaymentLink>, AdapterError> {
        let req = tf::link_by_reference_request(self.cfg, self.account(order)?, &order.order_id);
        let r = send(self.ctx, Op::Status, &req).await?;
        if r.status == 404 {
            return Ok(None);
        }
        check(Op::Status, &r)?;
        let link = r.json().map_err(|e| unreadable(P, Op::Status, &r, e))?;
        Ok(Some(link))
    }

    /// Status of an order whose link id we never learned (its create lost its answer): the
    /// link found by our order reference, or, when `conclude`, that the create did not happen.
    async fn status_by_reference(
        &self,
        order: &OrderState,
        conclude: bool,
    ) -> Result<Reported, AdapterError> {
        match self.link_by_reference(order).await? {
            Some(link) => self.found_link(order, link).await,
            None => Ok(Reported {
                provider_ref: None,
                signals: match conclude {
                    true => vec![tf::no_link_found(order)],
                    false => Vec::new(),
                },
                call_ref: format!("{}:status=by-reference.none", order.order_id),
            }),
        }
    }

    /// Reports a link found by our order reference: its id becomes the order's reference, and
    /// its transactions (or its own status) say where the payment stands; a link still waiting
    /// for the customer is shown as the redirect. A link that is not this order's
    /// ([`tf::foreign_link`]) decides nothing: a person looks at it.
    async fn found_link(
        &self,
        order: &OrderState,
        link: tf::PaymentLink,
    ) -> Result<Reported, AdapterError> {
        if let Some(reason) = tf::foreign_link(order, &link) {
            return Ok(Reported {
                provider_ref: None,
                signals: vec![SignalKind::NeedsReview { reason }],
                call_ref: format!("{}:status=by-reference.foreign", order.order_id),
            });
        }
        let txs = self.link_transactions(order, &link.id, Op::Status).await?;
        let (mut signals, raw) = match tf::reported(&txs) {
            Some(tx) => (
                tf::transaction_signals(tx, self.cfg.transaction_amounts)
                    .map_err(|detail| bad(Op::Status, detail))?,
                format!("transaction.{}", tx.status),
            ),
            None => tf::link_status_signals(&link),
        };
        if signals == [SignalKind::Accepted { action: None }] {
            signals = vec![SignalKind::Accepted {
                action: Some(tf::link_action(&link)),
            }];
        }
        Ok(Reported {
            provider_ref: Some(link.id),
            signals,
            call_ref: format!("{}:status=by-reference.{}", order.order_id, short(&raw)),
        })
    }

    async fn create_link(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        let account = self.account(order)?;
        let ttl =
            chrono::Duration::seconds(i64::try_from(self.cfg.link_ttl_s).unwrap_or(i64::MAX / 2));
        let expires_at = order.expires_at.unwrap_or(self.now + ttl);
        let r = send(
            self.ctx,
            Op::Payment,
            &tf::create_link_request(self.cfg, account, order, initiation, expires_at),
        )
        .await?;
        check(Op::Payment, &r)?;
        let link: tf::PaymentLink = r.json().map_err(|e| unreadable(P, Op::Payment, &r, e))?;
        let signals = vec![SignalKind::Accepted {
            action: Some(tf::link_action(&link)),
        }];
        Ok(Reported {
            provider_ref: Some(link.id),
            signals,
            call_ref: order.order_id.to_string(),
        })
    }

    /// A create whose answer was lost: recorded, then the link is looked up by our order
    /// reference, and Plexy's answer decides (our call is over). When the lookup fails too,
    /// the outcome stays unknown for the worker's and the reconciler's status queries.
    async fn after_unknown_create(
        &self,
        order: &OrderState,
        detail: String,
    ) -> Result<Reported, AdapterError> {
        match self.status_by_reference(order, true).await {
            Ok(mut reported) => {
                reported.signals.splice(0..0, unknown(Op::Payment, detail));
                Ok(reported)
            }
            Err(e) => {
                tracing::warn!(order = %order.order_id, error = %e, "looking up a payment link of unknown outcome failed");
                Err(AdapterError::OutcomeUnknown {
                    provider: P,
                    op: Op::Payment,
                    detail,
                })
            }
        }
    }

    /// A capture or void whose answer was lost: recorded, then the link's transactions are
    /// read (our call is over) and decide: made, or still `authorized` = not made.
    async fn after_unknown_op(
        &self,
        order: &OrderState,
        op: Op,
        detail: String,
        call_ref: &str,
    ) -> Result<Reported, AdapterError> {
        let link = link_id(order, op)?;
        let answer = match self.link_transactions(order, link, Op::Status).await {
            Ok(txs) => self.link_report(order, link, &txs, true).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok((signals, raw)) => Ok(Reported {
                provider_ref: order.provider_ref.clone(),
                signals: unknown(op, detail).into_iter().chain(signals).collect(),
                call_ref: format!("{call_ref}:status={}", short(&raw)),
            }),
            Err(e) => {
                tracing::warn!(order = %order.order_id, %op, error = %e, "status query after an unknown outcome failed");
                Err(AdapterError::OutcomeUnknown {
                    provider: P,
                    op,
                    detail,
                })
            }
        }
    }

    /// No `authorized` transaction to act on: one that shows the operation `done` already (a
    /// call of ours whose answer was lost with its worker, or the merchant's dashboard) is
    /// reported as it stands; otherwise there is nothing to act on.
    fn made_before(
        &self,
        order: &OrderState,
        txs: &[tf::Transaction],
        op: Op,
        done: &str,
    ) -> Result<Reported, AdapterError> {
        let tx = tf::pick(txs, &[done]).ok_or_else(|| AdapterError::NotFound {
            provider: P,
            op,
            detail: "no authorized transaction on the payment link".into(),
        })?;
        let signals = tf::transaction_signals(tx, self.cfg.transaction_amounts)
            .map_err(|detail| bad(op, detail))?;
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            call_ref: format!("{}:{op}:status=transaction.{}", tx.id, short(&tx.status)),
        })
    }
}

impl Connector for Plexy<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        match self.create_link(order, initiation).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                self.after_unknown_create(order, detail).await
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
        let txs = self.transactions(order, Op::Capture).await?;
        let Some(tx) = tf::pick(&txs, &["authorized"]) else {
            return self.made_before(order, &txs, Op::Capture, "charged");
        };
        let call_ref = format!("{}:capture:{capture_id}", tx.id);
        let made = self
            .payment_op(order, Op::Capture, tx, Some(amount), call_ref.clone())
            .await;
        match made {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                self.after_unknown_op(order, Op::Capture, detail, &call_ref)
                    .await
            }
            other => other,
        }
    }

    /// Voids the authorized transaction; with no payment yet, cancels the link instead.
    async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let txs = self.transactions(order, Op::Cancel).await?;
        if let Some(tx) = tf::pick(&txs, &["authorized"]) {
            let call_ref = format!("{}:cancel", tx.id);
            let made = self
                .payment_op(order, Op::Cancel, tx, None, call_ref.clone())
                .await;
            return match made {
                Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                    self.after_unknown_op(order, Op::Cancel, detail, &call_ref)
                        .await
                }
                other => other,
            };
        }
        if !txs.iter().all(tf::is_open) {
            return self.made_before(order, &txs, Op::Cancel, "cancelled");
        }
        self.cancel_link_as(order, Op::Cancel).await?;
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals: vec![SignalKind::Cancelled],
            call_ref: format!("{}:cancel-link", link_id(order, Op::Cancel)?),
        })
    }

    /// A successful refund call is reported as our refund of `amount` (a partial refund may
    /// leave the transaction `charged`).
    async fn refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let tx = self
            .transaction(order, Op::Refund, &["charged", "refunded"])
            .await?;
        let mut reported = self
            .payment_op(
                order,
                Op::Refund,
                &tx,
                Some(amount),
                format!("{}:refund:{refund_id}", tx.id),
            )
            .await?;
        reported.signals = vec![SignalKind::Refunded {
            refund_id: Some(refund_id.to_string()),
            amount: Some(amount),
        }];
        Ok(reported)
    }

    /// The link's transactions (see [`Plexy::link_report`]); for an order whose create lost
    /// its answer, the link found by our order reference.
    async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let conclude = self.settled(order);
        if order.provider_ref.is_none() && awaiting_link(order) {
            return self.status_by_reference(order, conclude).await;
        }
        let link = link_id(order, Op::Status)?;
        let txs = self.link_transactions(order, link, Op::Status).await?;
        let (signals, raw) = self.link_report(order, link, &txs, conclude).await?;
        Ok(Reported {
            provider_ref: order.provider_ref.clone(),
            signals,
            // The raw answer goes into the evidence: an audit sees what Plexy said.
            call_ref: format!("{}:status={}", order.order_id, short(&raw)),
        })
    }

    /// Cancels the payment link itself (no transaction yet).
    async fn cancel_link(&self, order: &OrderState) -> Result<(), AdapterError> {
        self.cancel_link_as(order, Op::LinkUpdate).await
    }

    async fn update_link_expiry(
        &self,
        order: &OrderState,
        at: Timestamp,
    ) -> Result<(), AdapterError> {
        let link = link_id(order, Op::LinkUpdate)?;
        let r = send(
            self.ctx,
            Op::LinkUpdate,
            &tf::update_expiry_request(self.cfg, self.account(order)?, link, at),
        )
        .await?;
        check(Op::LinkUpdate, &r)
    }

    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, _now: Timestamp) -> Parsed {
        parse_callback(self.cfg, cb)
    }
}

/// Plexy's registration ([`crate::connector::REGISTRY`]): its flow for one call.
pub fn connect(env: Env<'_>) -> Connected<'_> {
    let cfg = env.config.plexy()?;
    let ctx = env.ctx(P, cfg.common.timeouts);
    Ok(Box::new(Plexy {
        cfg,
        ctx,
        now: env.now,
    }))
}

fn bad(op: Op, detail: String) -> AdapterError {
    AdapterError::Retryable {
        provider: P,
        op,
        detail: format!("unreadable transaction: {detail}"),
    }
}

/// The signal that records a write whose outcome was unknown.
fn unknown(op: Op, detail: String) -> Vec<SignalKind> {
    let e = AdapterError::OutcomeUnknown {
        provider: P,
        op,
        detail,
    };
    e.signal(None).into_iter().collect()
}

/// A started order still waiting for its payment link (no customer action shown yet).
fn awaiting_link(order: &OrderState) -> bool {
    order.status == Status::Pending && order.customer_action.is_none()
}

fn link_id(order: &OrderState, op: Op) -> Result<&str, AdapterError> {
    order
        .provider_ref
        .as_deref()
        .ok_or_else(|| AdapterError::InvalidInput {
            provider: P,
            op,
            detail: "order has no payment link (payment not started)".to_string(),
        })
}

fn check(op: Op, r: &HttpResponse) -> Result<(), AdapterError> {
    if r.is_success() {
        return Ok(());
    }
    let (code, message) = tf::error_of(r);
    if r.status == 404 {
        return Err(AdapterError::NotFound {
            provider: P,
            op,
            detail: message,
        });
    }
    Err(AdapterError::Rejected {
        provider: P,
        op,
        code,
        message,
    })
}

/// Verifies (`Authorization: Bearer <webhook token>` of some account) and translates a
/// webhook. Plexy signs no webhook body, so the result is a trigger
/// (`confirm_by_status`): the gateway confirms by a status query of the order's payment
/// link before any money state moves, and keeps the webhook as evidence. Answered with 200.
pub fn parse_callback(
    cfg: &PlexyConfig,
    cb: &InboundCallback<'_>,
) -> Result<ParsedCallback, CallbackError> {
    let auth = cb.header("authorization").unwrap_or_default();
    let account = cfg
        .common
        .accounts
        .iter()
        .find(|(_, a)| signature::verify_bearer(&a.webhook_token, auth))
        .map(|(name, _)| name.clone())
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Mismatch,
        })?;
    let malformed = |detail: String| CallbackError::Malformed {
        provider: P,
        detail,
    };
    let hook: tf::Webhook =
        serde_json::from_slice(cb.body).map_err(|e| malformed(e.to_string()))?;
    let tx = hook.transaction().map_err(malformed)?;
    let signals = tf::transaction_signals(&tx, cfg.transaction_amounts).map_err(malformed)?;
    let reference = tx
        .merchant_reference
        .clone()
        .or_else(|| tx.order_reference.clone());
    Ok(ParsedCallback {
        provider: P,
        merchant_account: account,
        // Nothing in the body is signed (the token says who sent it, not what it says): the
        // order it names is a routing hint, its status and amounts are only evidence.
        hint: OrderHint {
            order_id: None,
            provider_ref: None,
            unsigned_order_id: reference.and_then(|r| OrderId::parse(r).ok()),
        },
        dedup_key: Some(format!("{}:{}", tx.id, hook.name)),
        observed_at: None,
        signals,
        ack: Ack::empty_ok(),
        confirm_by_status: true,
    })
}
