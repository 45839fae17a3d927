//! Exchanger in payment-processor mode.
//!
//! - [`signature`]: IPN SHA-256 over colon-joined fields.
//! - [`transformers`]: our documented choice of the undocumented create/status shapes (see
//!   its module docs), the status map, IPN fields.
//! - This file: the flows. `start_payment` creates the order (`orderId` = provider
//!   reference; payment page as a `Redirect`); `status` polls it — the IPN is sent once and may never
//!   arrive, so the reconciler relies on this. No capture, cancel or refund API exists:
//!   `Unsupported`. IPNs (form-urlencoded) are verified with each account's `ipnSecret`.

pub mod signature;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::ExchangerConfig;
use crate::connector::{Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, unreadable, Ctx, Reported};
use crate::http::HttpResponse;
use paystate_events::{OrderId, OrderState, PaymentInitiation, Provider, SignalKind, Timestamp};
use transformers as tf;

/// Longest provider status text copied into a probe's evidence reference.
const RAW_STATUS_IN_EVIDENCE_MAX: usize = 64;

/// A provider's status text, bounded, for evidence references.
fn short(raw: &str) -> String {
    raw.chars().take(RAW_STATUS_IN_EVIDENCE_MAX).collect()
}

const P: Provider = Provider::Exchanger;

/// One exchanger flow: configuration and executor.
pub struct Exchanger<'a> {
    pub cfg: &'a ExchangerConfig,
    pub ctx: Ctx<'a>,
}

impl Connector for Exchanger<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self
            .cfg
            .common
            .account(P, order.merchant_account.as_deref())?;
        let req = tf::create_request(self.cfg, account, order, initiation).map_err(|detail| {
            AdapterError::InvalidInput {
                provider: P,
                op: Op::Payment,
                detail,
            }
        })?;
        let r = send(self.ctx, Op::Payment, &req).await?;
        let body = json_ok(Op::Payment, &r)?;
        let (uid, action) =
            tf::created(self.cfg, account, &body).map_err(|e| unreadable(P, Op::Payment, &r, e))?;
        let signals = vec![SignalKind::Accepted {
            action: Some(action),
        }];
        Ok(Reported {
            provider_ref: Some(uid),
            signals,
            call_ref: format!("{}:create", order.order_id),
        })
    }

    async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let (_, account) = self
            .cfg
            .common
            .account(P, order.merchant_account.as_deref())?;
        let reference =
            order
                .provider_ref
                .as_deref()
                .ok_or_else(|| AdapterError::InvalidInput {
                    provider: P,
                    op: Op::Status,
                    detail:
                        "order has no exchanger reference (create outcome unknown: needs review)"
                            .into(),
                })?;
        let r = send(
            self.ctx,
            Op::Status,
            &tf::status_request(self.cfg, account, reference),
        )
        .await?;
        let body = json_ok(Op::Status, &r)?;
        let obj = body.get("data").filter(|d| d.is_object()).unwrap_or(&body);
        let text = |k: &str| obj.get(k).and_then(crate::flow::json_text);
        let raw = text("status")
            .or_else(|| text("newStatus"))
            .ok_or_else(|| unreadable(P, Op::Status, &r, "no status"))?;
        let signals = tf::status_signals(
            &raw,
            text("inAmount").as_deref(),
            text("xml_from").as_deref(),
        )
        .map_err(|e| unreadable(P, Op::Status, &r, e))?;
        Ok(Reported {
            provider_ref: Some(reference.to_string()),
            signals,
            // The raw answer goes into the evidence: an audit sees what the exchanger said.
            call_ref: format!("{reference}:status={}", short(&raw)),
        })
    }

    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, _now: Timestamp) -> Parsed {
        parse_callback(self.cfg, cb)
    }
}

/// Exchanger's registration ([`crate::connector::REGISTRY`]): its flow for one call.
pub fn connect(env: Env<'_>) -> Connected<'_> {
    let cfg = env.config.exchanger()?;
    let ctx = env.ctx(P, cfg.common.timeouts);
    Ok(Box::new(Exchanger { cfg, ctx }))
}

fn json_ok(op: Op, r: &HttpResponse) -> Result<serde_json::Value, AdapterError> {
    if r.status == 404 {
        return Err(AdapterError::NotFound {
            provider: P,
            op,
            detail: r.body_excerpt(),
        });
    }
    if !r.is_success() {
        return Err(AdapterError::Rejected {
            provider: P,
            op,
            code: format!("http_{}", r.status),
            message: r.body_excerpt(),
        });
    }
    r.json().map_err(|e| unreadable(P, op, r, e))
}

/// Verifies and translates an IPN (form-urlencoded). State, amounts, the provider reference
/// (`orderId`) and the dedup key come only from the signed fields; the `?order_id=` our
/// `ipnUrl` carries is not signed, so it is only a routing hint (`unsigned_order_id`) that
/// the gateway cross-checks against the signed `orderId`. Answered `200 OK`.
pub fn parse_callback(
    cfg: &ExchangerConfig,
    cb: &InboundCallback<'_>,
) -> Result<ParsedCallback, CallbackError> {
    let malformed = |detail: String| CallbackError::Malformed {
        provider: P,
        detail,
    };
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(cb.body).map_err(|e| malformed(e.to_string()))?;
    let ipn = tf::Ipn { fields };
    let received = ipn
        .signature(cb.header("x-signature"))
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Missing,
        })?;
    let account = cfg
        .common
        .accounts
        .iter()
        .find(|(_, a)| ipn.signed().verify(a.ipn_secret.expose(), &received))
        .map(|(name, _)| name.clone())
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Mismatch,
        })?;
    let status = ipn
        .get("newStatus")
        .ok_or_else(|| malformed("no newStatus".into()))?;
    let signals =
        tf::status_signals(status, ipn.get("inAmount"), ipn.get("xml_from")).map_err(malformed)?;
    let ours = cb
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == tf::IPN_ORDER_PARAM)
        .and_then(|(_, v)| OrderId::parse(v).ok());
    let observed_at = ipn
        .get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    let signed = ipn.signed();
    Ok(ParsedCallback {
        provider: P,
        merchant_account: account,
        hint: OrderHint {
            // The exchanger signs its `orderId` (our provider reference), not our order id:
            // the `?order_id=` we put on `ipnUrl` only helps find the order.
            order_id: None,
            provider_ref: Some(signed.order_id)
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            unsigned_order_id: ours,
        },
        dedup_key: Some(format!(
            "{}:{}:{}",
            signed.order_id, signed.new_status, signed.timestamp
        )),
        observed_at,
        signals,
        ack: Ack::text(200, "OK"),
        confirm_by_status: false,
    })
}
