//! Plural (Pine Labs Online).
//!
//! - [`signature`]: return-URL HMAC and webhook signatures.
//! - [`token`]: bearer tokens and the pure [`token::TokenCache`].
//! - [`transformers`]: wire types, request builders, status map.
//! - This file: the flows. `start_payment` = token → create order (`pre_auth` in manual
//!   capture mode) → create payment → `challenge_url` as a `Challenge` customer action; the
//!   Plural order id is the provider reference for everything after. `status` reads the
//!   order. Webhooks are verified and parsed by [`parse_callback`]; their order is not
//!   guaranteed (PROCESSED may precede AUTHORIZED), which the engine handles.
//! - Return URLs are read from their signed message ([`tf::read_return`]). A signed error
//!   code beside any status but FAILED (the seed's failed return says AUTHORIZED) is never
//!   a success: it is recorded as a claim and confirmed by a status query
//!   (`confirm_by_status`), like an unsigned callback.
//!
//! Unknown outcomes: create order and capture/refund carry our references, so the executor
//! replays them and Plural answers a repeat with what it already did; when every answer to
//! a create or refund is lost, it is recorded and the same keyed request once more is the
//! status query (Plural has no lookup by our reference; its order shows no refunds).
//! Capture is resolved by the worker's status query (the order shows the capture). Create payment and cancel have no key: an unknown outcome is
//! recorded (`outcome_unknown`), the order is read, and the write is made once more only
//! when the order shows it did not happen. A start that finds its Plural order past CREATED
//! (work redelivered after a crash) reports it instead of paying again.
//!
//! A request refused with 401 clears the cached token and is retried once with a new one.
//! Every token received is registered with the facade call's redactor before it is used
//! ([`crate::redact::remember_in_scope`]): it is not in the configuration, yet Plural's error
//! answers may quote the `Authorization` header back.

pub mod signature;
pub mod token;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::{PluralAccount, ProviderConfig};
use crate::connector::{AccessTokens, Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, unreadable, Ctx, Reported};
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::Secret;
use paystate_events::{Money, OrderState, PaymentInitiation, Provider, SignalKind, Timestamp};
use token::Token;
use transformers as tf;

const P: Provider = Provider::Plural;

/// One Plural flow: configuration, executor and token cache, at a given time.
pub struct Plural<'a> {
    pub cfg: &'a ProviderConfig<PluralAccount>,
    pub ctx: Ctx<'a>,
    pub tokens: &'a AccessTokens,
    pub now: Timestamp,
}

impl Plural<'_> {
    /// Sends a write that carries one of our references. When every answer was lost (the
    /// executor already replayed it), records that and sends it once more: Plural answers a
    /// repeated reference with what it already did, the only lookup by our reference it has.
    async fn keyed_call(
        &self,
        op: Op,
        name: &str,
        account: &PluralAccount,
        build: &(dyn Fn(&Secret) -> HttpRequest + Sync),
    ) -> Result<(Vec<SignalKind>, HttpResponse), AdapterError> {
        match self.call(op, name, account, build).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => Ok((
                unknown_signal(op, detail),
                self.call(op, name, account, build).await?,
            )),
            other => Ok((Vec::new(), other?)),
        }
    }

    /// A write without an idempotency key (create payment, cancel) whose outcome is unknown:
    /// records that, asks Plural where the order stands, and only when the answer shows the
    /// write did not happen (the order is still where the write starts from) makes it once
    /// more. Returns the unknown-outcome signal and the answer to report.
    async fn resolve_unknown(
        &self,
        op: Op,
        name: &str,
        account: &PluralAccount,
        id: &str,
        detail: String,
        redo: &(dyn Fn(&Secret) -> HttpRequest + Sync),
    ) -> Result<(Vec<SignalKind>, HttpResponse), AdapterError> {
        let recorded = unknown_signal(op, detail.clone());
        let unknown = AdapterError::OutcomeUnknown {
            provider: P,
            op,
            detail,
        };
        let Ok(r) = self
            .call(Op::Status, name, account, |t| {
                tf::get_order_request(self.cfg, t, id)
            })
            .await
        else {
            return Err(unknown);
        };
        let Ok(d) = order_data(Op::Status, &r) else {
            return Err(unknown);
        };
        let not_done = match op {
            Op::Payment => tf::STATUS_CREATED,
            _ => tf::STATUS_AUTHORIZED,
        };
        if d.status != not_done {
            return Ok((recorded, r));
        }
        tracing::info!(%op, plural_order = id, "status query shows the write did not happen; making it once more");
        let again = self.call(op, name, account, redo).await?;
        Ok((recorded, again))
    }

    /// Sends a request built with a valid token; on 401 renews the token and tries once more.
    async fn call(
        &self,
        op: Op,
        name: &str,
        account: &PluralAccount,
        build: impl Fn(&Secret) -> HttpRequest,
    ) -> Result<HttpResponse, AdapterError> {
        let token = self.token(name, account).await?;
        match send(self.ctx, op, &build(&token)).await {
            Err(AdapterError::Unauthorized { .. }) => {
                self.tokens
                    .lock()
                    .await
                    .entry((P, name.to_string()))
                    .or_default()
                    .clear();
                let token = self.token(name, account).await?;
                send(self.ctx, op, &build(&token)).await
            }
            other => other,
        }
    }

    async fn token(&self, name: &str, account: &PluralAccount) -> Result<Secret, AdapterError> {
        let mut tokens = self.tokens.lock().await;
        let cache = tokens.entry((P, name.to_string())).or_default();
        if let Some(t) = cache.valid(self.now) {
            return Ok(t.clone());
        }
        let r = send(self.ctx, Op::Token, &tf::token_request(self.cfg, account)).await?;
        if !r.is_success() {
            let (code, message) = tf::error_of(&r);
            return Err(AdapterError::Rejected {
                provider: P,
                op: Op::Token,
                code,
                message,
            });
        }
        // Never `unreadable`: it quotes the body, and this body is the live token.
        let body = tf::token_response(&r).map_err(|problem| AdapterError::Retryable {
            provider: P,
            op: Op::Token,
            detail: format!("unreadable token response (HTTP {}): {problem}", r.status),
        })?;
        // Before its first use: a provider answer that quotes the request (the Authorization
        // header) is then redacted like any configured secret, at the facade's boundary and
        // in response excerpts.
        crate::redact::remember_in_scope(&token_slot(name), &body.access_token);
        let expires_in = body
            .expires_in
            .or_else(|| seconds_until(body.expires_at.as_deref(), self.now));
        let token = Token::received(body.access_token, self.now, expires_in);
        let value = token.value.clone();
        cache.store(token);
        Ok(value)
    }
}

impl Connector for Plural<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        let (name, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let spec = tf::payment_spec(initiation).map_err(|detail| AdapterError::InvalidInput {
            provider: P,
            op: Op::Payment,
            detail,
        })?;
        let create = |t: &Secret| tf::create_order_request(self.cfg, t, order, initiation);
        let (mut signals, r) = self.keyed_call(Op::Payment, name, account, &create).await?;
        let created = order_data(Op::Payment, &r)?;
        let reference = tf::order_reference(order);
        if created.status != tf::STATUS_CREATED {
            // The reference named an order that already has its payment: a replay of ours
            // (work redelivered after Plural acted). Report where it stands; never pay twice.
            signals.extend(
                tf::order_signals(&created).map_err(|e| unreadable(P, Op::Payment, &r, e))?,
            );
            return Ok(reported(created.order_id, signals, reference));
        }
        let id = created.order_id.as_str();
        let pay = |t: &Secret| tf::create_payment_request(self.cfg, t, id, order, &spec);
        let paid = match self.call(Op::Payment, name, account, &pay).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                let (recorded, r) = self
                    .resolve_unknown(Op::Payment, name, account, id, detail, &pay)
                    .await?;
                signals.extend(recorded);
                r
            }
            other => other?,
        };
        let d = order_data(Op::Payment, &paid)?;
        signals.extend(tf::order_signals(&d).map_err(|e| unreadable(P, Op::Payment, &paid, e))?);
        Ok(reported(d.order_id, signals, reference))
    }

    async fn capture(
        &self,
        order: &OrderState,
        capture_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let (name, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let id = plural_id(order, Op::Capture)?;
        let reference = tf::capture_reference(order, capture_id);
        let r = self
            .call(Op::Capture, name, account, |t| {
                tf::capture_request(self.cfg, t, id, &reference, amount)
            })
            .await?;
        let d = order_data(Op::Capture, &r)?;
        let signals = tf::order_signals(&d).map_err(|e| unreadable(P, Op::Capture, &r, e))?;
        Ok(Reported {
            provider_ref: Some(d.order_id),
            signals,
            call_ref: reference,
        })
    }

    /// Cancels an authorized order. Plural has no idempotency key for cancel and refuses a
    /// second one, so the request is not replayed blindly: an unknown outcome is resolved by
    /// a status query.
    async fn cancel(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let (name, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let id = plural_id(order, Op::Cancel)?;
        let cancel = |t: &Secret| tf::cancel_request(self.cfg, t, id);
        let (mut signals, r) = match self.call(Op::Cancel, name, account, &cancel).await {
            Err(AdapterError::OutcomeUnknown { detail, .. }) => {
                self.resolve_unknown(Op::Cancel, name, account, id, detail, &cancel)
                    .await?
            }
            other => (Vec::new(), other?),
        };
        let d = order_data(Op::Cancel, &r)?;
        signals.extend(tf::order_signals(&d).map_err(|e| unreadable(P, Op::Cancel, &r, e))?);
        Ok(reported(d.order_id, signals, format!("{id}:cancel")))
    }

    async fn refund(
        &self,
        order: &OrderState,
        refund_id: &str,
        amount: Money,
    ) -> Result<Reported, AdapterError> {
        let (name, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let id = plural_id(order, Op::Refund)?;
        let reference = tf::refund_reference(order, refund_id);
        let refund = |t: &Secret| tf::refund_request(self.cfg, t, id, &reference, amount);
        let (mut signals, r) = self.keyed_call(Op::Refund, name, account, &refund).await?;
        let d = order_data(Op::Refund, &r)?;
        signals.extend(tf::refund_signals(&d, refund_id, amount));
        Ok(Reported {
            provider_ref: Some(id.to_string()),
            signals,
            call_ref: reference,
        })
    }

    async fn status(&self, order: &OrderState) -> Result<Reported, AdapterError> {
        let (name, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let id = plural_id(order, Op::Status)?;
        let r = self
            .call(Op::Status, name, account, |t| {
                tf::get_order_request(self.cfg, t, id)
            })
            .await?;
        let d = order_data(Op::Status, &r)?;
        let signals = tf::order_signals(&d).map_err(|e| unreadable(P, Op::Status, &r, e))?;
        Ok(Reported {
            provider_ref: Some(d.order_id),
            signals,
            call_ref: format!("{id}:status"),
        })
    }

    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, now: Timestamp) -> Parsed {
        parse_callback(self.cfg, cb, now)
    }
}

/// Plural's registration ([`crate::connector::REGISTRY`]): its flow for one call.
pub fn connect(env: Env<'_>) -> Connected<'_> {
    let cfg = env.config.plural()?;
    let ctx = env.ctx(P, cfg.timeouts);
    Ok(Box::new(Plural {
        cfg,
        ctx,
        tokens: env.tokens,
        now: env.now,
    }))
}

/// The signal that records a write whose outcome was unknown.
fn unknown_signal(op: Op, detail: String) -> Vec<SignalKind> {
    let e = AdapterError::OutcomeUnknown {
        provider: P,
        op,
        detail,
    };
    e.signal(None).into_iter().collect()
}

fn reported(plural_order_id: String, signals: Vec<SignalKind>, call_ref: String) -> Reported {
    Reported {
        provider_ref: Some(plural_order_id),
        signals,
        call_ref,
    }
}

/// The redactor slot of an account's access tokens ([`crate::redact::Redactor::remember`]).
fn token_slot(account: &str) -> String {
    format!("{P}/{account}")
}

fn seconds_until(expires_at: Option<&str>, now: Timestamp) -> Option<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(expires_at?).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).num_seconds())
}

fn plural_id(order: &OrderState, op: Op) -> Result<&str, AdapterError> {
    order
        .provider_ref
        .as_deref()
        .ok_or_else(|| AdapterError::InvalidInput {
            provider: P,
            op,
            detail: "order has no Plural order id (payment not started)".to_string(),
        })
}

/// The order object of a successful response, or the error the response stands for.
fn order_data(op: Op, r: &HttpResponse) -> Result<tf::OrderData, AdapterError> {
    if r.status == 404 {
        let (_, detail) = tf::error_of(r);
        return Err(AdapterError::NotFound {
            provider: P,
            op,
            detail,
        });
    }
    if !r.is_success() {
        let (code, message) = tf::error_of(r);
        return Err(AdapterError::Rejected {
            provider: P,
            op,
            code,
            message,
        });
    }
    r.json::<tf::OrderEnvelope>()
        .map(|e| e.data)
        .map_err(|e| unreadable(P, op, r, e))
}

/// Verifies and translates a webhook (`webhook-id`/`-timestamp`/`-signature` headers) or a
/// return-URL redirect (fields with `signature` in the query). Tries each account's secret.
pub fn parse_callback(
    cfg: &ProviderConfig<PluralAccount>,
    cb: &InboundCallback<'_>,
    now: Timestamp,
) -> Result<ParsedCallback, CallbackError> {
    if cb.header("webhook-signature").is_some() {
        parse_webhook(cfg, cb, now)
    } else {
        parse_return(cfg, cb)
    }
}

fn parse_webhook(
    cfg: &ProviderConfig<PluralAccount>,
    cb: &InboundCallback<'_>,
    now: Timestamp,
) -> Result<ParsedCallback, CallbackError> {
    let id = cb.header("webhook-id").unwrap_or_default();
    let ts = cb.header("webhook-timestamp").unwrap_or_default();
    let sig = cb.header("webhook-signature").unwrap_or_default();
    let mut last = signature::SignatureError::Missing;
    let mut matched = None;
    for (name, account) in &cfg.accounts {
        match signature::verify_webhook(
            account.webhook_secret.expose(),
            id,
            ts,
            cb.body,
            sig,
            now.timestamp(),
        ) {
            Ok(()) => {
                matched = Some(name.clone());
                break;
            }
            Err(e) => last = e,
        }
    }
    let account = matched.ok_or(CallbackError::BadSignature {
        provider: P,
        reason: last,
    })?;
    let hook: tf::Webhook =
        serde_json::from_slice(cb.body).map_err(|e| CallbackError::Malformed {
            provider: P,
            detail: e.to_string(),
        })?;
    let signals = tf::order_signals(&hook.data).map_err(|detail| CallbackError::Malformed {
        provider: P,
        detail,
    })?;
    let observed_at = ts
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    Ok(ParsedCallback {
        provider: P,
        merchant_account: account,
        hint: OrderHint {
            order_id: None,
            provider_ref: Some(hook.data.order_id.clone()),
            unsigned_order_id: None,
        },
        // `webhook-id` is in the signed message (`id.timestamp.body`).
        dedup_key: Some(format!("{id}:{}", hook.event_type)),
        observed_at,
        signals,
        ack: Ack::empty_ok(),
        confirm_by_status: false,
    })
}

fn parse_return(
    cfg: &ProviderConfig<PluralAccount>,
    cb: &InboundCallback<'_>,
) -> Result<ParsedCallback, CallbackError> {
    let pairs = cb.query_pairs();
    let fields: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let account = cfg
        .accounts
        .iter()
        .find(|(_, a)| {
            a.return_url_secret_hex
                .as_ref()
                .is_some_and(|s| signature::verify_return_url(s.expose(), &fields))
        })
        .map(|(name, _)| name.clone())
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Mismatch,
        })?;
    // Read from what was signed: every received field but `signature` is in the message.
    let message = signature::return_url_message(&fields);
    let report = tf::read_return(&message).map_err(|detail| CallbackError::Malformed {
        provider: P,
        detail,
    })?;
    // A signed report that does not say what happened is a trigger, as an unsigned one is:
    // the gateway applies Plural's answer to a status query, never the claim.
    let (signals, confirm_by_status) = match report.meaning {
        tf::ReturnMeaning::Conclusive(signals) => (signals, false),
        tf::ReturnMeaning::Inconclusive(claim) => (vec![claim], true),
    };
    Ok(ParsedCallback {
        provider: P,
        merchant_account: account,
        hint: OrderHint {
            order_id: None,
            provider_ref: Some(report.order_id),
            unsigned_order_id: None,
        },
        // The redirect has no body and no id: what it says (the signed message) identifies
        // it, so a reloaded page is a resend and another order's return is not.
        dedup_key: Some(format!("return:{message}")),
        observed_at: None,
        signals,
        ack: Ack::empty_ok(),
        confirm_by_status,
    })
}
