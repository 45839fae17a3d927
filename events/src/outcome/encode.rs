//! A cheaper writer of accepted outcomes, byte for byte `serde_json::to_vec`'s (issue 15: the
//! engine's encode of each reply showed at ~5 % of a fast-path process).
//!
//! The state is written through [`StateOut`], [`StateView`]'s fields borrowed in the same
//! order with the same `skip_serializing_if` attributes, its timestamps by [`TsOut`] (chrono's
//! RFC 3339 text, `SecondsFormat::AutoSi` with `Z`, written without `fmt` machinery). The
//! tag-first struct [`AcceptedOut`] writes what serde writes for the internally tagged
//! variant. Rejections (no timestamps) go to serde as they are.
//!
//! A field added to `StateView` must be added to `StateOut` (the destructuring below names
//! every field, so it fails to compile until it is), with the same attributes; the proptest
//! in `outcome::tests` compares the bytes with `serde_json::to_vec`'s.

use crate::state::Discrepancy;
use crate::timestamp_json::TsOut;
use crate::{
    CaptureMode, CommandId, CustomerAction, Event, MinorUnits, Money, OrderId, Outcome, Provider,
    StateView, Status,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// An accepted outcome's JSON with room for the typical reply without regrowing.
pub(super) fn to_vec(outcome: &Outcome) -> Result<Vec<u8>, serde_json::Error> {
    match outcome {
        Outcome::Rejected { .. } => serde_json::to_vec(outcome),
        Outcome::Accepted {
            command_id,
            order_id,
            commit,
            events,
            state,
            duplicate,
        } => {
            let mut out = Vec::with_capacity(1024);
            let accepted = AcceptedOut {
                outcome: "accepted",
                command_id,
                order_id,
                commit: *commit,
                events,
                state: StateOut::of(state),
                duplicate: *duplicate,
            };
            serde_json::to_writer(&mut out, &accepted)?;
            Ok(out)
        }
    }
}

/// `Outcome::Accepted` as serde writes it: the tag first, then the fields in order.
#[derive(Serialize)]
struct AcceptedOut<'a> {
    outcome: &'static str,
    command_id: &'a CommandId,
    order_id: &'a OrderId,
    commit: u64,
    events: &'a [Event],
    state: StateOut<'a>,
    duplicate: bool,
}

/// [`StateView`]'s fields, borrowed, in order, with its attributes; times by [`TsOut`].
#[derive(Serialize)]
struct StateOut<'a> {
    order_id: &'a OrderId,
    status: Status,
    merchant_reference: &'a str,
    provider: Provider,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_account: &'a Option<String>,
    capture_mode: CaptureMode,
    amount: &'a Money,
    authorized: MinorUnits,
    captured: MinorUnits,
    refunded: MinorUnits,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture_pending: &'a Option<(String, MinorUnits)>,
    cancel_pending: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    refunds_pending: &'a BTreeMap<String, MinorUnits>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    refunds_completed: &'a BTreeMap<String, MinorUnits>,
    refunds_completed_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_ref: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_action: &'a Option<CustomerAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: &'a Option<(String, String)>,
    #[serde(skip_serializing_if = "<[Discrepancy]>::is_empty")]
    discrepancies: &'a [Discrepancy],
    discrepancies_count: u64,
    needs_review: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<TsOut<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
    created_at: TsOut<'a>,
    updated_at: TsOut<'a>,
    commits: u64,
    head_hash: &'a str,
}

impl<'a> StateOut<'a> {
    fn of(v: &'a StateView) -> StateOut<'a> {
        // Every field named: a field added to `StateView` stops this compiling.
        let StateView {
            order_id,
            status,
            merchant_reference,
            provider,
            merchant_account,
            capture_mode,
            amount,
            authorized,
            captured,
            refunded,
            capture_pending,
            cancel_pending,
            refunds_pending,
            refunds_completed,
            refunds_completed_count,
            provider_ref,
            customer_action,
            failure,
            discrepancies,
            discrepancies_count,
            needs_review,
            expires_at,
            metadata,
            created_at,
            updated_at,
            commits,
            head_hash,
        } = v;
        StateOut {
            order_id,
            status: *status,
            merchant_reference,
            provider: *provider,
            merchant_account,
            capture_mode: *capture_mode,
            amount,
            authorized: *authorized,
            captured: *captured,
            refunded: *refunded,
            capture_pending,
            cancel_pending: *cancel_pending,
            refunds_pending,
            refunds_completed,
            refunds_completed_count: *refunds_completed_count,
            provider_ref,
            customer_action,
            failure,
            discrepancies,
            discrepancies_count: *discrepancies_count,
            needs_review: *needs_review,
            expires_at: expires_at.as_ref().map(TsOut),
            metadata,
            created_at: TsOut(created_at),
            updated_at: TsOut(updated_at),
            commits: *commits,
            head_hash,
        }
    }
}
