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

pub mod signature;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::{PlexyAccount, PlexyConfig};
use crate::connector::{Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, unreadable, Ctx, Reported};
use crate::http::HttpResponse;
use paystate_events::{
    Money, OrderId, OrderState, PaymentInitiation, Provider, SignalKind, Timestamp,
};
use transformers as tf;

/// Longest provider status text copied into a probe's evidence reference.
const RAW_STATUS_IN_EVIDENCE_MAX: usize = 64;

/// A provider's status text, bounded, for evidence references.
fn short(raw: &str) -> String {
    raw.chars().take(RAW_STATUS_IN_EVIDENCE_MAX).collect()
}

const P: Provider = Provider::Plexy;
/// Transaction states in order of preference for a status report (most advanced first).
const STATUS_ORDER: [&str; 8] = [
    "refunded",
    "charged",
    "cancelled",
    "authorized",
    "3d",
    "created",
    "rejected",
    "failed",
];

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

    /// A link without transactions: `active` (or any open status) is still waiting for the
    /// customer; `cancelled` / `expired` closed it without payment.
    async fn link_signals(
        &self,
        order: &OrderState,
    ) -> Result<(Vec<SignalKind>, String), AdapterError> {
        let link = link_id(order, Op::Status)?;
        let r = send(
            self.ctx,
            Op::Status,
            &tf::link_request(self.cfg, self.account(order)?, link),
        )
        .await?;
        check(Op::Status, &r)?;
        let link: tf::PaymentLink = r.json().map_err(|e| unreadable(P, Op::Status, &r, e))?;
        let closed = link
            .status
            .as_deref()
            .is_some_and(|s| tf::LINK_CLOSED_STATUSES.contains(&s));
        let signal = match closed {
            true => SignalKind::Cancelled,
            false => SignalKind::Accepted { action: None },
        };
        let raw = format!("link.{}", link.status.as_deref().unwrap_or("unknown"));
        Ok((vec![signal], raw))
    }

    async fn transactions(
        &self,
        order: &OrderState,
        op: Op,
    ) -> Result<Vec<tf::Transaction>, AdapterError> {
        let link = link_id(order, op)?;
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
}

impl Connector for Plexy<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
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

    async fn capture(
        &self,
        order: &OrderState,
        capture_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let tx = self
            .transaction(order, Op::Capture, &["authorized"])
            .await?;
        self.payment_op(
            order,
            Op::Capture,
            &tx,
            Some(amount),
            format!("{}:capture:{capture_id}", tx.id),
        )
        .await
    }

    /// Voids the authorized transaction; with no payment yet, cancels the link instead.
    async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let txs = self.transactions(order, Op::Cancel).await?;
        if let Some(tx) = tf::pick(&txs, &["authorized"]) {
            return self
                .payment_op(order, Op::Cancel, tx, None, format!("{}:cancel", tx.id))
                .await;
        }
        if !txs.iter().all(tf::is_open) {
            return Err(AdapterError::NotFound {
                provider: P,
                op: Op::Cancel,
                detail: "no authorized transaction on the payment link".into(),
            });
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

    async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let txs = self.transactions(order, Op::Status).await?;
        let (signals, raw) = match tf::pick(&txs, &STATUS_ORDER).or(txs.first()) {
            Some(tx) => (
                tf::transaction_signals(tx, self.cfg.transaction_amounts)
                    .map_err(|detail| bad(Op::Status, detail))?,
                format!("transaction.{}", tx.status),
            ),
            // Nobody has paid: the link's own status says whether it is still open.
            None => self.link_signals(order).await?,
        };
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
