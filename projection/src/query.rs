//! Queries over the projection: one order's view, and listing with filters. The same types
//! serve the CLI (`paystate order show`, `paystate orders list`) and the gateway's JSON.

use crate::record::ProjectedOrder;
use crate::store::ProjectionStore;
use crate::ProjectionError;
use paystate_events::money::minor_to_decimal;
use paystate_events::{
    CaptureMode, Currency, CustomerAction, Discrepancy, MinorUnits, Provider, Status, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Orders a list returns when no limit is given.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Most orders one list returns.
pub const LIST_LIMIT_MAX: usize = 10_000;

/// Which orders a list wants. Every given filter must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderFilter {
    pub status: Option<Status>,
    pub provider: Option<Provider>,
    /// Created strictly before this instant.
    pub created_before: Option<Timestamp>,
    /// Created at or after this instant.
    pub created_after: Option<Timestamp>,
    pub has_discrepancy: Option<bool>,
    /// Flagged for review (true) or not (false).
    #[serde(default)]
    pub needs_review: Option<bool>,
    /// Text found in the order id, the merchant reference or a provider reference
    /// (case-insensitive substring; at most [`SEARCH_LEN_MAX`] bytes are used).
    #[serde(default)]
    pub search: Option<String>,
}

/// Longest search text used (longer text is cut; ids and references are shorter).
pub const SEARCH_LEN_MAX: usize = 256;

impl OrderFilter {
    pub fn matches(&self, r: &ProjectedOrder) -> bool {
        let s = &r.state;
        self.status.is_none_or(|st| s.status == st)
            && self.provider.is_none_or(|p| s.provider == p)
            && self.created_before.is_none_or(|t| s.created_at < t)
            && self.created_after.is_none_or(|t| s.created_at >= t)
            && self
                .has_discrepancy
                .is_none_or(|want| want != s.discrepancies.is_empty())
            && self.needs_review.is_none_or(|want| want == s.needs_review)
            && self.search.as_deref().is_none_or(|text| found(r, text))
    }
}

/// Whether `text` occurs in the order id, merchant reference or a provider reference.
fn found(r: &ProjectedOrder, text: &str) -> bool {
    let text = text.trim();
    let cut = (0..=text.len().min(SEARCH_LEN_MAX))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let needle = text[..cut].to_lowercase();
    if needle.is_empty() {
        return true;
    }
    let s = &r.state;
    std::iter::once(s.order_id.as_str())
        .chain(std::iter::once(s.merchant_reference.as_str()))
        .chain(s.provider_ref.iter().map(String::as_str))
        .chain(r.provider_refs.iter().map(String::as_str))
        .any(|hay| hay.to_lowercase().contains(&needle))
}

/// An amount in the order's currency (the view's `currency`): exact minor units, the same
/// integer the state and outcomes carry, and its decimal form for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AmountView {
    pub minor_units: u64,
    pub decimal: String,
}

impl AmountView {
    fn of(units: MinorUnits, currency: Currency) -> AmountView {
        AmountView {
            minor_units: units.0,
            decimal: minor_to_decimal(units.0, currency.exponent()),
        }
    }
}

/// A capture asked of the provider and not yet answered (the state's `capture_pending`
/// pair, with its members named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PendingCapture {
    pub capture_id: String,
    pub amount: AmountView,
}

/// What a person or a client wants to know about an order (`GET /orders/{id}`, `paystate
/// order show --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderView {
    pub order_id: String,
    pub status: Status,
    pub provider: Provider,
    pub merchant_reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_account: Option<String>,
    pub capture_mode: CaptureMode,
    pub currency: Currency,
    pub amount: AmountView,
    pub authorized: AmountView,
    pub captured: AmountView,
    pub refunded: AmountView,
    /// Refunds by refund id: completed (the first 16 by id; `refunds_completed_count` in
    /// all) and still waiting for the provider (all of them).
    pub refunds_completed: BTreeMap<String, AmountView>,
    pub refunds_completed_count: u64,
    pub refunds_pending: BTreeMap<String, AmountView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    pub provider_refs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_action: Option<CustomerAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
    /// The latest discrepancies (8 at most; `discrepancies_count` in all).
    pub discrepancies: Vec<Discrepancy>,
    pub discrepancies_count: u64,
    pub needs_review: bool,
    /// A capture waiting for the provider, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_pending: Option<PendingCapture>,
    pub cancel_pending: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub commits: u64,
    /// Log sequence of the last commit the projection applied.
    pub last_sequence: u64,
    /// Set when the projection met a commit it could not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_problem: Option<String>,
}

impl From<&ProjectedOrder> for OrderView {
    fn from(r: &ProjectedOrder) -> OrderView {
        let s = &r.state;
        let c = s.currency();
        let amounts = |m: &BTreeMap<String, MinorUnits>| {
            m.iter()
                .map(|(k, v)| (k.clone(), AmountView::of(*v, c)))
                .collect()
        };
        OrderView {
            order_id: s.order_id.to_string(),
            status: s.status,
            provider: s.provider,
            merchant_reference: s.merchant_reference.clone(),
            merchant_account: s.merchant_account.clone(),
            capture_mode: s.capture_mode,
            currency: c,
            amount: AmountView::of(s.amount.minor_units.units(), c),
            authorized: AmountView::of(s.authorized, c),
            captured: AmountView::of(s.captured, c),
            refunded: AmountView::of(s.refunded, c),
            refunds_completed: amounts(&s.refunds_completed),
            refunds_completed_count: s.refunds_completed_count,
            refunds_pending: amounts(&s.refunds_pending),
            provider_ref: s.provider_ref.clone(),
            provider_refs: r.provider_refs.iter().cloned().collect(),
            customer_action: s.customer_action.clone(),
            failure: s.failure.clone(),
            discrepancies: s.discrepancies.clone(),
            discrepancies_count: s.discrepancies_count,
            needs_review: s.needs_review,
            capture_pending: s
                .capture_pending
                .as_ref()
                .map(|(id, units)| PendingCapture {
                    capture_id: id.clone(),
                    amount: AmountView::of(*units, c),
                }),
            cancel_pending: s.cancel_pending,
            created_at: s.created_at,
            updated_at: s.updated_at,
            commits: s.commits,
            last_sequence: r.seq,
            projection_problem: r
                .problem
                .as_ref()
                .map(|p| format!("seq {}: {}", p.seq, p.detail)),
        }
    }
}

/// A page of matching orders (`GET /orders`, `paystate orders list --json`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderList {
    pub orders: Vec<OrderView>,
    /// Records examined.
    pub scanned: u64,
    /// More orders matched than the limit allowed.
    pub truncated: bool,
    /// The generation served.
    pub generation: u64,
}

/// Lists the live generation's orders matching `filter`, at most `limit` (capped at
/// [`LIST_LIMIT_MAX`]), in the bucket's key order.
pub async fn list(
    store: &ProjectionStore,
    filter: &OrderFilter,
    limit: usize,
) -> Result<OrderList, ProjectionError> {
    let generation = store.live().await?;
    let limit = limit.clamp(1, LIST_LIMIT_MAX);
    let mut orders = Vec::new();
    let mut truncated = false;
    let scanned = store
        .scan(&generation, |r| {
            if !filter.matches(&r) {
                return true;
            }
            if orders.len() == limit {
                truncated = true;
                return false;
            }
            orders.push(OrderView::from(&r));
            true
        })
        .await?;
    Ok(OrderList {
        orders,
        scanned,
        truncated,
        generation: generation.generation,
    })
}
