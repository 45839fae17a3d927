//! Paykassma (wallet transfer, `bnb_ml`).
//!
//! - [`signature`]: postback signature over `additional_data` as received.
//! - [`transformers`]: requests, answers, postback translation.
//! - This file: the flows. `start_payment` creates the wallet transaction and reports the
//!   wallet as a `WalletTransfer` action; after paying, the customer's 12-digit number and
//!   screenshot are sent with [`Paykassma::activate`] (multipart). The postback
//!   (`direction: ingoing`) settles the order. Paykassma has no capture, cancel, refund or
//!   status query: those are `Unsupported`. Postbacks are resent until answered with
//!   [`transformers::POSTBACK_ACK`]; the account is chosen by the postback's `access_key`.
//!   A postback whose `additional_data` holds several transactions is decided on the first
//!   and flags the others for review (see [`transformers::postback_signals`]).

pub mod signature;
pub mod transformers;

use crate::callback::{Ack, InboundCallback, OrderHint, ParsedCallback};
use crate::config::{PaykassmaAccount, ProviderConfig};
use crate::connector::{Connected, Connector, Env, Parsed};
use crate::error::{AdapterError, CallbackError, Op};
use crate::flow::{send, unreadable, Ctx, Reported};
use crate::http::HttpResponse;
use paystate_events::{OrderState, PaymentInitiation, Provider, SignalKind, Timestamp};
use transformers::{self as tf, Activation};

const P: Provider = Provider::Paykassma;

/// One Paykassma flow: configuration and executor.
pub struct Paykassma<'a> {
    pub cfg: &'a ProviderConfig<PaykassmaAccount>,
    pub ctx: Ctx<'a>,
}

impl Connector for Paykassma<'_> {
    const PROVIDER: Provider = P;

    async fn start_payment(
        &self,
        order: &OrderState,
        initiation: &PaymentInitiation,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let label = tf::label(initiation).map_err(|detail| AdapterError::InvalidInput {
            provider: P,
            op: Op::Payment,
            detail,
        })?;
        let r = send(
            self.ctx,
            Op::Payment,
            &tf::create_request(self.cfg, account, order, &label),
        )
        .await?;
        let answer = answer(Op::Payment, &r)?;
        let action = tf::wallet_action(&answer).map_err(|e| unreadable(P, Op::Payment, &r, e))?;
        let signals = vec![SignalKind::Accepted {
            action: Some(action),
        }];
        Ok(Reported {
            provider_ref: None,
            signals,
            call_ref: format!("{}:create", order.order_id),
        })
    }

    /// Sends the customer's transaction number and screenshot. Accepted means "verifying":
    /// the order stays pending until the postback.
    async fn activate(
        &self,
        order: &OrderState,
        activation: &Activation,
    ) -> Result<Reported, AdapterError> {
        let (_, account) = self.cfg.account(P, order.merchant_account.as_deref())?;
        let req =
            tf::activation_request(self.cfg, account, order, activation).map_err(|detail| {
                AdapterError::InvalidInput {
                    provider: P,
                    op: Op::Activation,
                    detail,
                }
            })?;
        let r = send(self.ctx, Op::Activation, &req).await?;
        answer(Op::Activation, &r)?;
        let call_ref = tf::custom_transaction_id(&order.order_id, &activation.activation_id);
        Ok(Reported {
            provider_ref: None,
            signals: vec![SignalKind::Accepted { action: None }],
            call_ref,
        })
    }

    fn verify_and_parse_callback(&self, cb: &InboundCallback<'_>, _now: Timestamp) -> Parsed {
        parse_callback(self.cfg, cb)
    }
}

/// Paykassma's registration ([`crate::connector::REGISTRY`]): its flow for one call.
pub fn connect(env: Env<'_>) -> Connected<'_> {
    let cfg = env.config.paykassma()?;
    let ctx = env.ctx(P, cfg.timeouts);
    Ok(Box::new(Paykassma { cfg, ctx }))
}

fn answer(op: Op, r: &HttpResponse) -> Result<tf::ApiAnswer, AdapterError> {
    let parsed: Result<tf::ApiAnswer, _> = r.json();
    match parsed {
        Ok(a) if r.is_success() && tf::answer_ok(&a) => Ok(a),
        Ok(a) => {
            let (code, message) = tf::refusal(&a, r);
            Err(AdapterError::Rejected {
                provider: P,
                op,
                code,
                message,
            })
        }
        Err(_) if !r.is_success() => Err(AdapterError::Rejected {
            provider: P,
            op,
            code: format!("http_{}", r.status),
            message: r.body_excerpt(),
        }),
        Err(e) => Err(unreadable(P, op, r, e)),
    }
}

/// Verifies a postback (the account whose `access_key` it names; signature over
/// `additional_data` as received) and translates it from the signed `additional_data` only
/// (see [`tf::postback_signals`]). Answer: 200 `{"status":"ok"}`, also for resends.
pub fn parse_callback(
    cfg: &ProviderConfig<PaykassmaAccount>,
    cb: &InboundCallback<'_>,
) -> Result<ParsedCallback, CallbackError> {
    let malformed = |detail: String| CallbackError::Malformed {
        provider: P,
        detail,
    };
    let body = std::str::from_utf8(cb.body).map_err(|e| malformed(e.to_string()))?;
    let parts = signature::signed_parts(body).map_err(|reason| match reason {
        signature::SignatureError::Malformed(d) => malformed(d),
        other => CallbackError::BadSignature {
            provider: P,
            reason: other,
        },
    })?;
    let (name, account) = cfg
        .accounts
        .iter()
        .find(|(_, a)| a.access_key == parts.access_key)
        .ok_or(CallbackError::BadSignature {
            provider: P,
            reason: signature::SignatureError::Mismatch,
        })?;
    let signed =
        signature::verify_postback_body(body, &account.access_key, account.private_key.expose())
            .map_err(|reason| CallbackError::BadSignature {
                provider: P,
                reason,
            })?;
    // Only `additional_data` is signed: the transaction, its order, amount and currency are
    // read from exactly the text that was verified. The top-level fields are not signed.
    let items: Vec<tf::PostbackItem> = serde_json::from_str(&signed.additional_data_compact)
        .map_err(|e| malformed(format!("additional_data: {e}")))?;
    let unsigned: tf::Postback =
        serde_json::from_str(body).map_err(|e| malformed(e.to_string()))?;
    let decided = tf::postback_signals(&items, &unsigned).map_err(malformed)?;
    // The first signed item names the order and the transaction; any further items are
    // listed for review on that order by `postback_signals`, never dropped or applied.
    let item = items.first();
    let custom = item.and_then(|i| i.plugin_custom_order_id.clone());
    let tx_id = item
        .and_then(|i| i.transaction_id.as_ref())
        .and_then(crate::flow::json_text);
    // Resends of one postback share the key. The key names the signed transaction and what
    // paystate decided, never an unsigned field as received: a copy with a flipped `status`
    // is decided differently and cannot use up the genuine postback's key.
    let dedup_key = tx_id.as_ref().map(|t| format!("{t}:{}", decided.label));
    Ok(ParsedCallback {
        provider: P,
        merchant_account: name.clone(),
        hint: OrderHint {
            order_id: custom.as_deref().and_then(crate::keys::order_id_of),
            provider_ref: tx_id.clone(),
            unsigned_order_id: None,
        },
        dedup_key,
        observed_at: None,
        signals: decided.signals,
        ack: Ack::json(200, tf::POSTBACK_ACK),
        confirm_by_status: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ProviderConfig<PaykassmaAccount> {
        toml::from_str(
            r#"base_url = "https://api.paykassma.test"
            [accounts.default]
            plugin_secret = "plug-1"
            access_key = "uowkn0b3LfBxpcWYHi4_"
            private_key = "PRIVATE_test_key_1""#,
        )
        .expect("valid config")
    }

    /// A postback signed over `additional_data` as the provider would send it.
    fn signed_postback(additional_data: &serde_json::Value) -> String {
        let compact = additional_data.to_string();
        let sig =
            signature::postback_signature("uowkn0b3LfBxpcWYHi4_", "PRIVATE_test_key_1", &compact);
        format!(
            r#"{{"signature":"{sig}","wallet_type":"bnb_ml","amount":300,"currency_code":"BTN","direction":"ingoing","access_key":"uowkn0b3LfBxpcWYHi4_","additional_data":{compact}}}"#
        )
    }

    /// Through the whole parser: the second signed transaction of a postback is recorded on
    /// the order the first names, and its presence changes the dedup key.
    #[test]
    fn a_signed_two_item_postback_keeps_the_second_item() {
        let item = |tx: &str, order: &str, amount: &str| {
            serde_json::json!({"amount": amount, "currency_code": "BTN", "transaction_id": tx,
                "plugin_custom_order_id": order, "withdrawal_id": null})
        };
        let body = signed_postback(&serde_json::json!([
            item("293397556789", "ord-1.act.a1", "300"),
            item("293397556790", "ord-2.act.b2", "150"),
        ]));
        let cb = InboundCallback {
            headers: &[],
            query: "",
            body: body.as_bytes(),
        };
        let parsed = parse_callback(&cfg(), &cb).expect("verifies");
        assert_eq!(
            parsed.hint.order_id.map(|o| o.to_string()).as_deref(),
            Some("ord-1")
        );
        assert_eq!(parsed.hint.provider_ref.as_deref(), Some("293397556789"));
        assert!(
            matches!(parsed.signals.as_slice(),
                [SignalKind::Settled { .. }, SignalKind::NeedsReview { reason }]
                    if reason.contains("293397556790") && reason.contains("ord-2.act.b2")),
            "{:?}",
            parsed.signals
        );
        let key = parsed.dedup_key.expect("a key");
        assert!(key.starts_with("293397556789:credited+1:"), "{key}");
        assert_eq!(parsed.ack.body, tf::POSTBACK_ACK);
    }
}
