//! From a verified callback to a [`Report`] about one order: finding the order from what the
//! provider signed (routing hints only cross-checked), confirming unsigned callbacks by a
//! status query, and the dedup identity of what is applied.

use super::deliver::Report;
use super::keys::{dedup_hash, Identity};
use super::Inner;
use async_nats::jetstream::stream::RawMessageErrorKind;
use axum::http::StatusCode;
use paystate_adapters::callback::ParsedCallback;
use paystate_events::subjects::{events_subject, EVENTS_STREAM};
use paystate_events::{OrderId, OrderState, Provider, Timestamp};
use paystate_journal::Journal;

/// A verified callback that needs nothing more from its provider: the provider gets its
/// success answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Every signal is in the log (or the report carries none).
    InLog,
    /// A resend of a report already in the log, or already quarantined.
    Duplicate,
    /// The engine will never take it: kept in `paystate_callbacks_held` for a person.
    Quarantined,
}

/// Why a verified callback was not applied.
#[derive(Debug)]
pub(crate) enum NotApplied {
    /// Not now (order not known yet, broker, engine or provider unavailable): the provider
    /// retries, or paystate re-drives it (providers that send once).
    Later(StatusCode, String),
    /// Never: what routed it contradicts what the provider signed. Recorded as a `rejected`
    /// verdict with `detail`; the sender gets only `answer` (no order ids or references).
    Refused {
        detail: String,
        answer: &'static str,
    },
}

impl From<(StatusCode, String)> for NotApplied {
    fn from((status, reason): (StatusCode, String)) -> NotApplied {
        NotApplied::Later(status, reason)
    }
}

/// Where a callback goes, and whether its signed reference may be indexed for it.
struct Route {
    order: OrderId,
    /// The signed reference is not in the refs index yet and was checked against this order.
    index_ref: bool,
}

/// The answer to a callback whose routing hint contradicts its signed reference.
const REFUSED_ANSWER: &str = "not applied: the order named does not match the signed reference";

fn unknown() -> NotApplied {
    NotApplied::Later(
        StatusCode::SERVICE_UNAVAILABLE,
        "order not known (yet); retry later".to_string(),
    )
}

fn refused(detail: String) -> NotApplied {
    NotApplied::Refused {
        detail,
        answer: REFUSED_ANSWER,
    }
}

impl Inner {
    /// Routes the signals to their order and delivers them, once per dedup key. A callback
    /// whose body is not signed (`confirm_by_status`) is confirmed by a status query first.
    pub(crate) async fn apply(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: &ParsedCallback,
        at: Timestamp,
        body: &[u8],
    ) -> Result<Applied, NotApplied> {
        if parsed.confirm_by_status {
            return self.confirm_and_apply(provider, raw_seq, parsed, at).await;
        }
        if parsed.signals.is_empty() {
            self.verdict(
                provider,
                raw_seq,
                "no_signal",
                "the report carries no state",
                None,
            )
            .await;
            return Ok(Applied::InLog);
        }
        // A provider's report id is unique only per order at best (and a provider's test
        // environment may reuse it), so the dedup key is scoped to the order.
        let route = self.route(provider, parsed).await?;
        let order = route.order;
        let id = match parsed.dedup_key.as_deref() {
            Some(k) => Identity::Key(k),
            None => Identity::Content(body),
        };
        let applied = self
            .deliver(Report {
                provider,
                raw_seq,
                order: &order,
                dedup: dedup_hash(provider, &order, id),
                provider_ref: parsed.hint.provider_ref.clone(),
                evidence_ref: format!("callbacks:{raw_seq}"),
                observed_at: parsed.observed_at,
                received_at: at,
                kinds: &parsed.signals,
                detail: String::new(),
            })
            .await?;
        if let (true, Some(r)) = (route.index_ref, &parsed.hint.provider_ref) {
            let _ = self.refs.remember(provider, r, &order).await;
        }
        Ok(applied)
    }

    /// A callback whose body nobody signed (Plexy, Flitt): it names an order (a routing hint
    /// only), and the provider's own answer to a status query for that order, asked of the
    /// configured host, is what is applied. The dedup key is what the answer says, so an
    /// altered body cannot use up the key of the genuine report that follows it: both
    /// trigger the same query, and the same answer is applied once.
    async fn confirm_and_apply(
        &self,
        provider: Provider,
        raw_seq: u64,
        parsed: &ParsedCallback,
        at: Timestamp,
    ) -> Result<Applied, NotApplied> {
        let order = match (&parsed.hint.order_id, &parsed.hint.unsigned_order_id) {
            (Some(o), _) | (None, Some(o)) => o.clone(),
            (None, None) => self.route(provider, parsed).await?.order,
        };
        let state = self.load(&order).await?.ok_or_else(unknown)?;
        if state.provider != provider {
            return Err(refused(format!(
                "names order {order}, which is not a {provider} order; nothing applied"
            )));
        }
        let reported = self.adapters.status(&state).await.map_err(|e| {
            tracing::warn!(%provider, %order, raw_seq, error = %e, "could not confirm a callback by a status query");
            NotApplied::Later(
                StatusCode::SERVICE_UNAVAILABLE,
                // The detail stays in the log: the answer goes to whoever sent the webhook.
                "not confirmed: the status query to the provider failed; retry later".to_string(),
            )
        })?;
        if reported.signals.is_empty() {
            self.verdict(
                provider,
                raw_seq,
                "no_signal",
                "the status query reports no state",
                Some(&order),
            )
            .await;
            return Ok(Applied::InLog);
        }
        let claimed: Vec<&str> = parsed.signals.iter().map(|k| k.name()).collect();
        let confirmed: Vec<&str> = reported.signals.iter().map(|k| k.name()).collect();
        // The answer is the report: the same answer is the same report, whichever webhook
        // asked for it.
        let answer = serde_json::json!({
            "provider_ref": reported.provider_ref,
            "signals": reported.signals,
        });
        let answer_bytes = serde_json::to_vec(&answer).unwrap_or_default();
        self.deliver(Report {
            provider,
            raw_seq,
            order: &order,
            dedup: dedup_hash(provider, &order, Identity::Content(&answer_bytes)),
            provider_ref: reported.provider_ref.clone(),
            evidence_ref: format!("callbacks:{raw_seq}+call:{}", reported.call_ref),
            observed_at: None,
            received_at: at,
            kinds: &reported.signals,
            detail: format!(
                "confirmed by status query; webhook claimed [{}]; the status query reports [{}]",
                claimed.join(", "),
                confirmed.join(", ")
            ),
        })
        .await
    }

    /// The order a callback is about. What the provider signed decides: our order id if it
    /// signs one (the order must exist), else its reference through the refs index. An
    /// unsigned routing hint (our `?order_id=` marker) is only cross-checked: when the signed
    /// reference belongs to another order, or the named order knows another reference,
    /// nothing is applied.
    async fn route(
        &self,
        provider: Provider,
        parsed: &ParsedCallback,
    ) -> Result<Route, NotApplied> {
        let hint = &parsed.hint;
        let indexed = match &hint.provider_ref {
            Some(r) => self.refs.lookup(provider, r).await.map_err(|e| {
                NotApplied::Later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("refs lookup failed: {e}"),
                )
            })?,
            None => None,
        };
        if let Some(o) = &hint.order_id {
            // Signed, but the order may not exist yet: a signal sent for it now would be
            // refused (and that refusal kept as the command's outcome), so the provider
            // retries until it does. Both signed: if they disagree, the engine records it.
            if !self.order_exists(o).await? {
                return Err(unknown());
            }
            return Ok(Route {
                order: o.clone(),
                index_ref: indexed.is_none(),
            });
        }
        let reference = hint.provider_ref.as_deref();
        match (indexed, &hint.unsigned_order_id, reference) {
            (Some(found), Some(named), Some(r)) if found != *named => Err(refused(format!(
                "routing hint names order {named}, but the signed reference {r:?} belongs to order {found}; nothing applied"
            ))),
            (Some(found), _, _) => Ok(Route {
                order: found,
                index_ref: false,
            }),
            (None, Some(named), Some(r)) => {
                let state = self.load(named).await?.ok_or_else(unknown)?;
                match state.provider_ref.as_deref() {
                    _ if state.provider != provider => Err(refused(format!(
                        "routing hint names order {named}, which is not a {provider} order; nothing applied"
                    ))),
                    Some(known) if known == r => Ok(Route {
                        order: named.clone(),
                        index_ref: true,
                    }),
                    Some(known) => Err(refused(format!(
                        "routing hint names order {named}, whose reference is {known:?}, not the signed {r:?}; nothing applied"
                    ))),
                    // Nothing to check the hint against yet (the start is not recorded).
                    None => Err(unknown()),
                }
            }
            (None, Some(named), None) => Err(refused(format!(
                "routing hint names order {named}, but nothing signed names an order or a reference; nothing applied"
            ))),
            (None, None, _) => Err(unknown()),
        }
    }

    async fn journal(&self) -> Result<&Journal, NotApplied> {
        self.journal
            .get_or_try_init(|| async {
                Journal::existing(self.js.clone(), EVENTS_STREAM)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| unavailable(e.clone()))
    }

    /// The order's state from the log (`None` if it does not exist).
    async fn load(&self, order: &OrderId) -> Result<Option<OrderState>, NotApplied> {
        self.journal()
            .await?
            .load(order)
            .await
            .map(|l| l.state)
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Whether the order has a commit in the log: one read (its first message), whatever
    /// its length. Orders are never deleted, so an order found stays found.
    async fn order_exists(&self, order: &OrderId) -> Result<bool, NotApplied> {
        let first = self
            .journal()
            .await?
            .stream()
            .raw_message_builder()
            .sequence(1)
            .next_by_subject(events_subject(order))
            .send()
            .await;
        match first {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }
}

fn unavailable(e: String) -> NotApplied {
    NotApplied::Later(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("log unavailable: {e}"),
    )
}
