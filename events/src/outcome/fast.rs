//! The cheaper readers of an outcome (issue 15: a fast-path client spent a tenth of its CPU
//! reading replies).
//!
//! - [`FastStateView`]: [`StateView`]'s fields with the same types and attributes, its
//!   timestamps read by [`crate::fast_decode`]'s parser (the written shape without chrono's
//!   general parser, anything else by chrono): the same value or refusal as `StateView`'s
//!   derived reader for every input, so [`Outcome`]'s `Deserialize` uses it directly.
//! - [`one_pass`]: the events read by [`FastEvent`], tag first as written, refusing any other
//!   shape; [`Outcome::from_json`] then falls back to serde for the value or the error.
//!
//! A field added to `StateView` must be added here too (the conversion below names every
//! field, so it fails to compile until it is), with the same type and serde attributes; the
//! differential tests in `outcome::tests` generate every field.

use super::FlatOutcome;
use crate::fast_decode::{FastEvent, FastTs, OptTs};
use crate::state::Discrepancy;
use crate::{
    CaptureMode, CustomerAction, MinorUnits, Money, OrderId, Outcome, Provider, StateView, Status,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// An outcome as the engine writes it, else an error meaning only "not on the fast path".
pub(super) fn one_pass(bytes: &[u8]) -> Result<Outcome, serde_json::Error> {
    serde_json::from_slice::<FlatOutcome<FastEvent, FastStateView>>(bytes)?.into_outcome()
}

/// [`StateView`] field for field (same order, types and attributes; times by [`FastTs`]).
#[derive(Deserialize)]
// Why the rename: serde's messages name the struct ("expected struct StateView").
#[serde(rename = "StateView")]
pub(super) struct FastStateView {
    order_id: OrderId,
    status: Status,
    merchant_reference: String,
    provider: Provider,
    #[serde(default)]
    merchant_account: Option<String>,
    capture_mode: CaptureMode,
    amount: Money,
    authorized: MinorUnits,
    captured: MinorUnits,
    refunded: MinorUnits,
    #[serde(default)]
    capture_pending: Option<(String, MinorUnits)>,
    #[serde(default)]
    cancel_pending: bool,
    #[serde(default)]
    refunds_pending: BTreeMap<String, MinorUnits>,
    #[serde(default)]
    refunds_completed: BTreeMap<String, MinorUnits>,
    #[serde(default)]
    refunds_completed_count: u64,
    #[serde(default)]
    provider_ref: Option<String>,
    #[serde(default)]
    customer_action: Option<CustomerAction>,
    #[serde(default)]
    failure: Option<(String, String)>,
    #[serde(default)]
    discrepancies: Vec<Discrepancy>,
    #[serde(default)]
    discrepancies_count: u64,
    #[serde(default)]
    needs_review: bool,
    #[serde(default)]
    expires_at: OptTs,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    created_at: FastTs,
    updated_at: FastTs,
    commits: u64,
    head_hash: String,
}

impl From<FastStateView> for StateView {
    fn from(v: FastStateView) -> StateView {
        StateView {
            order_id: v.order_id,
            status: v.status,
            merchant_reference: v.merchant_reference,
            provider: v.provider,
            merchant_account: v.merchant_account,
            capture_mode: v.capture_mode,
            amount: v.amount,
            authorized: v.authorized,
            captured: v.captured,
            refunded: v.refunded,
            capture_pending: v.capture_pending,
            cancel_pending: v.cancel_pending,
            refunds_pending: v.refunds_pending,
            refunds_completed: v.refunds_completed,
            refunds_completed_count: v.refunds_completed_count,
            provider_ref: v.provider_ref,
            customer_action: v.customer_action,
            failure: v.failure,
            discrepancies: v.discrepancies,
            discrepancies_count: v.discrepancies_count,
            needs_review: v.needs_review,
            expires_at: v.expires_at.into(),
            metadata: v.metadata,
            created_at: v.created_at.into(),
            updated_at: v.updated_at.into(),
            commits: v.commits,
            head_hash: v.head_hash,
        }
    }
}
