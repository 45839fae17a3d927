//! Test fixtures shared by the provider modules.

use paystate_events::{
    Amount, CaptureMode, Currency, MinorUnits, Money, OrderId, OrderState, Provider, Status,
    Timestamp,
};
use std::collections::BTreeMap;

pub fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp(1_721_381_603, 0).expect("valid time")
}

pub fn money(minor: u64, currency: &str) -> Money {
    Money::new(
        Amount::new(minor).expect("positive"),
        Currency::parse(currency).expect("ISO code"),
    )
}

/// An order of `minor` units of `currency` at `provider`, pending, default account.
pub fn order(provider: Provider, minor: u64, currency: &str, mode: CaptureMode) -> OrderState {
    OrderState {
        order_id: OrderId::parse("ord-1").expect("valid id"),
        status: Status::Pending,
        merchant_reference: "m-1".to_string(),
        provider,
        merchant_account: None,
        capture_mode: mode,
        amount: money(minor, currency),
        authorized: MinorUnits::ZERO,
        captured: MinorUnits::ZERO,
        refunded: MinorUnits::ZERO,
        capture_pending: None,
        cancel_pending: false,
        refunds_pending: BTreeMap::new(),
        refunds_completed: BTreeMap::new(),
        provider_ref: None,
        customer_action: None,
        failure: None,
        discrepancies: vec![],
        needs_review: false,
        expires_at: None,
        metadata: BTreeMap::new(),
        created_at: t0(),
        updated_at: t0(),
        commits: 1,
        head_hash: String::new(),
        applied: BTreeMap::new(),
        rejections_logged: 0,
    }
}

#[allow(dead_code)] // Why: used by the callback tests of several providers.
pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
