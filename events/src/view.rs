//! The bounded view of an order's state that leaves the engine: what outcomes (the reply and
//! the outcome bucket) and projection records carry. It holds the status, the totals, the
//! pending operations, the references and the flags — never the engine's idempotency data
//! (`applied`: every command id with its fingerprint), which grows with every commit.
//!
//! Every list is cut to a named bound and every text that can come from a provider is cut to
//! [`VIEW_TEXT_LEN_MAX`], with the full counts kept beside the lists; the compile-time
//! assertion in [`crate::limits`] ties the worst case to `STATE_VIEW_BYTES_MAX`, and a unit
//! test checks it against a serialized worst-case view.

use crate::limits::REFUNDS_PENDING_MAX;
use crate::limits::{COMMAND_BYTES_MAX, COMMAND_ID_LEN_MAX};
use crate::{
    CaptureMode, CustomerAction, Discrepancy, MinorUnits, Money, OrderId, OrderState, Provider,
    Status, Timestamp,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most completed refunds listed in a view (the first by refund id); `refunds_completed_count`
/// and `refunded` hold the whole.
pub const VIEW_REFUNDS_COMPLETED_MAX: usize = 16;
/// Most discrepancies listed in a view (the latest); `discrepancies_count` holds the whole.
pub const VIEW_DISCREPANCIES_MAX: usize = 8;
/// Longest text a view copies from a provider's report into a list or the failure (bytes,
/// cut at a character boundary): discrepancy details and evidence, unrequested refund ids,
/// failure code and message.
pub const VIEW_TEXT_LEN_MAX: usize = 128;
/// Bytes one character of text may take in JSON (`\u0001` is six).
const JSON_ESCAPE_FACTOR: usize = 6;
/// A view's own fields besides the texts counted below (names, numbers, times, hashes).
const VIEW_FRAMING_BYTES_MAX: usize = 4 * 1024;
/// The worst-case serialized view: three fields are copied whole from one command each (the
/// creation's reference, account and metadata; the latest provider reference; the latest
/// customer action), the rest is cut and counted.
pub const STATE_VIEW_WORST_BYTES: usize = 3 * COMMAND_BYTES_MAX
    + 2 * VIEW_TEXT_LEN_MAX * JSON_ESCAPE_FACTOR
    + REFUNDS_PENDING_MAX * (COMMAND_ID_LEN_MAX + 32)
    + VIEW_REFUNDS_COMPLETED_MAX * (VIEW_TEXT_LEN_MAX * JSON_ESCAPE_FACTOR + 64)
    + VIEW_DISCREPANCIES_MAX * (4 * VIEW_TEXT_LEN_MAX * JSON_ESCAPE_FACTOR + 128)
    + VIEW_FRAMING_BYTES_MAX;
// Checked against `STATE_VIEW_BYTES_MAX` in `crate::limits`.

/// An order's state as callers and projections see it: bounded whatever the number of
/// commits. Field names are those of [`OrderState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StateView {
    pub order_id: OrderId,
    pub status: Status,
    pub merchant_reference: String,
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_account: Option<String>,
    pub capture_mode: CaptureMode,
    pub amount: Money,
    pub authorized: MinorUnits,
    pub captured: MinorUnits,
    pub refunded: MinorUnits,
    /// A capture asked of the provider and not yet answered: (capture id, amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_pending: Option<(String, MinorUnits)>,
    #[serde(default)]
    pub cancel_pending: bool,
    /// Refunds asked of the provider and not yet answered, by refund id (all of them: at
    /// most [`REFUNDS_PENDING_MAX`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds_pending: BTreeMap<String, MinorUnits>,
    /// Completed refunds by refund id: the first [`VIEW_REFUNDS_COMPLETED_MAX`] by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds_completed: BTreeMap<String, MinorUnits>,
    /// How many refunds completed in all.
    #[serde(default)]
    pub refunds_completed_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_action: Option<CustomerAction>,
    /// (code, message), each cut to [`VIEW_TEXT_LEN_MAX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
    /// The latest [`VIEW_DISCREPANCIES_MAX`] discrepancies, texts cut to [`VIEW_TEXT_LEN_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discrepancies: Vec<Discrepancy>,
    /// How many discrepancies were recorded in all.
    #[serde(default)]
    pub discrepancies_count: u64,
    #[serde(default)]
    pub needs_review: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timestamp_json::write_opt"
    )]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub updated_at: Timestamp,
    /// Number of commits folded (the order's version).
    pub commits: u64,
    /// Hash of the last folded commit (the chain head).
    pub head_hash: String,
}

impl StateView {
    /// The view of a full state.
    pub fn of(s: &OrderState) -> StateView {
        let counts = (
            s.refunds_completed.len() as u64,
            s.discrepancies.len() as u64,
        );
        StateView::with_counts(s, counts)
    }

    /// The view of `s` whose lists may already be cut: `(refunds completed, discrepancies)`
    /// are the full counts (a projection folds onto [`StateView::fold_state`] and counts
    /// what each commit adds).
    pub fn with_counts(s: &OrderState, (refunds_completed, discrepancies): (u64, u64)) -> Self {
        StateView {
            order_id: s.order_id.clone(),
            status: s.status,
            merchant_reference: s.merchant_reference.clone(),
            provider: s.provider,
            merchant_account: s.merchant_account.clone(),
            capture_mode: s.capture_mode,
            amount: s.amount,
            authorized: s.authorized,
            captured: s.captured,
            refunded: s.refunded,
            capture_pending: s.capture_pending.clone(),
            cancel_pending: s.cancel_pending,
            refunds_pending: first(&s.refunds_pending, REFUNDS_PENDING_MAX),
            refunds_completed: s
                .refunds_completed
                .iter()
                .take(VIEW_REFUNDS_COMPLETED_MAX)
                .map(|(k, v)| (cut(k), *v))
                .collect(),
            refunds_completed_count: refunds_completed,
            provider_ref: s.provider_ref.clone(),
            customer_action: s.customer_action.clone(),
            failure: s.failure.as_ref().map(|(c, m)| (cut(c), cut(m))),
            discrepancies: latest_discrepancies(&s.discrepancies),
            discrepancies_count: discrepancies,
            needs_review: s.needs_review,
            expires_at: s.expires_at,
            metadata: s.metadata.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            commits: s.commits,
            head_hash: s.head_hash.clone(),
        }
    }

    /// A state to fold the next commits onto: everything `evolve` reads is here whole (the
    /// pending refunds, the totals, the chain head); the cut lists only ever grow. Its
    /// `applied` map is empty: a projection never decides.
    pub fn fold_state(&self) -> OrderState {
        OrderState {
            order_id: self.order_id.clone(),
            status: self.status,
            merchant_reference: self.merchant_reference.clone(),
            provider: self.provider,
            merchant_account: self.merchant_account.clone(),
            capture_mode: self.capture_mode,
            amount: self.amount,
            authorized: self.authorized,
            captured: self.captured,
            refunded: self.refunded,
            capture_pending: self.capture_pending.clone(),
            cancel_pending: self.cancel_pending,
            refunds_pending: self.refunds_pending.clone(),
            refunds_completed: self.refunds_completed.clone(),
            provider_ref: self.provider_ref.clone(),
            customer_action: self.customer_action.clone(),
            failure: self.failure.clone(),
            discrepancies: self.discrepancies.clone(),
            needs_review: self.needs_review,
            expires_at: self.expires_at,
            metadata: self.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            commits: self.commits,
            head_hash: self.head_hash.clone(),
            applied: BTreeMap::new(),
            // Read only by the engine's decisions (the bound on logged rejections).
            rejections_logged: 0,
        }
    }

    pub fn currency(&self) -> crate::Currency {
        self.amount.currency
    }
}

fn first(m: &BTreeMap<String, MinorUnits>, n: usize) -> BTreeMap<String, MinorUnits> {
    m.iter().take(n).map(|(k, v)| (k.clone(), *v)).collect()
}

fn latest_discrepancies(all: &[Discrepancy]) -> Vec<Discrepancy> {
    let skip = all.len().saturating_sub(VIEW_DISCREPANCIES_MAX);
    all[skip..]
        .iter()
        .map(|d| Discrepancy {
            code: cut(&d.code),
            detail: cut(&d.detail),
            signal: cut(&d.signal),
            evidence_ref: cut(&d.evidence_ref),
            commit: d.commit,
        })
        .collect()
}

/// `text` cut to at most [`VIEW_TEXT_LEN_MAX`] bytes at a character boundary.
pub fn cut(text: &str) -> String {
    if text.len() <= VIEW_TEXT_LEN_MAX {
        return text.to_string();
    }
    let mut end = VIEW_TEXT_LEN_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Amount, Applied, CommandId, Currency, CustomerActionKind};

    /// A text of `len` bytes that JSON escapes worst (`\u0001` each).
    fn nasty(len: usize) -> String {
        "\u{1}".repeat(len)
    }

    /// A state as large as one order can make it in every field the view copies.
    fn worst_state() -> OrderState {
        let t = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        // The create command's texts share one command's budget; count each whole.
        let create_budget = COMMAND_BYTES_MAX / JSON_ESCAPE_FACTOR;
        let metadata = (0..32)
            .map(|i| (format!("{i:02}{}", nasty(100)), nasty(create_budget / 96)))
            .collect();
        let id = |i: usize| format!("{i:04}{}", "r".repeat(COMMAND_ID_LEN_MAX - 4));
        let discrepancy = |i: usize| Discrepancy {
            code: nasty(1000),
            detail: nasty(1000),
            signal: nasty(1000),
            evidence_ref: nasty(1000),
            commit: i as u64,
        };
        OrderState {
            order_id: OrderId::parse("o".repeat(64)).unwrap(),
            status: Status::Captured,
            merchant_reference: nasty(256),
            provider: Provider::Plural,
            merchant_account: Some(nasty(256)),
            capture_mode: CaptureMode::Manual,
            amount: Money {
                minor_units: Amount::new(1).unwrap(),
                currency: Currency::parse("USD").unwrap(),
            },
            authorized: MinorUnits(u64::MAX),
            captured: MinorUnits(u64::MAX),
            refunded: MinorUnits(u64::MAX),
            capture_pending: Some((id(0), MinorUnits(u64::MAX))),
            cancel_pending: true,
            refunds_pending: (0..2 * REFUNDS_PENDING_MAX)
                .map(|i| (id(i), MinorUnits(u64::MAX)))
                .collect(),
            refunds_completed: (0..1000)
                .map(|i| {
                    (
                        format!("provider:{i:04}{}", nasty(5000)),
                        MinorUnits(u64::MAX),
                    )
                })
                .collect(),
            // One signal's budget each, whole.
            provider_ref: Some(nasty(COMMAND_BYTES_MAX / JSON_ESCAPE_FACTOR)),
            customer_action: Some(CustomerAction {
                kind: CustomerActionKind::Redirect,
                url: Some(nasty(COMMAND_BYTES_MAX / JSON_ESCAPE_FACTOR)),
                details: BTreeMap::new(),
            }),
            failure: Some((nasty(10_000), nasty(10_000))),
            discrepancies: (0..1000).map(discrepancy).collect(),
            needs_review: true,
            expires_at: Some(t),
            metadata,
            created_at: t,
            updated_at: t,
            commits: 10_000,
            head_hash: "f".repeat(64),
            applied: (0..1000)
                .map(|i| {
                    let applied = Applied {
                        commit: i,
                        fingerprint: "f".repeat(64),
                    };
                    (CommandId::parse(id(i as usize)).unwrap(), applied)
                })
                .collect(),
            rejections_logged: 1000,
        }
    }

    #[test]
    fn outcomes_read_back_as_written_in_any_field_order() {
        use crate::{Outcome, RejectionCode};
        let state = worst_state();
        let accepted = Outcome::Accepted {
            command_id: CommandId::parse("c-1").unwrap(),
            order_id: state.order_id.clone(),
            commit: 7,
            events: vec![crate::Event::rejected(&crate::Rejection::new(
                RejectionCode::InvalidTransition,
                "no",
            ))],
            state: StateView::of(&state),
            duplicate: true,
        };
        let rejected = Outcome::Rejected {
            command_id: None,
            order_id: Some("o-1".into()),
            code: RejectionCode::OrderNotFound,
            message: "order o-1 does not exist".into(),
            duplicate: false,
        };
        for outcome in [accepted, rejected] {
            let json = serde_json::to_value(&outcome).unwrap();
            assert_eq!(
                serde_json::from_value::<Outcome>(json.clone()).unwrap(),
                outcome
            );
            // The tag last, keys reversed: the same outcome.
            let mut reversed = serde_json::Map::new();
            for (k, v) in json.as_object().unwrap().iter().rev() {
                reversed.insert(k.clone(), v.clone());
            }
            let text = serde_json::to_string(&reversed).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome);
        }
        let missing = r#"{"outcome":"rejected","message":"m"}"#;
        assert!(serde_json::from_str::<Outcome>(missing)
            .unwrap_err()
            .to_string()
            .contains("code"));
        let bad_id = r#"{"outcome":"accepted","command_id":"a b","order_id":"o","commit":1,"events":[],"state":{}}"#;
        assert!(serde_json::from_str::<Outcome>(bad_id).is_err());
    }

    #[test]
    fn the_worst_view_fits_its_bound_and_carries_no_idempotency_data() {
        let state = worst_state();
        let view = StateView::of(&state);
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            json.len() <= STATE_VIEW_WORST_BYTES,
            "{} > {STATE_VIEW_WORST_BYTES}",
            json.len()
        );
        assert!(!json.contains("applied"));
        eprintln!(
            "worst view: {} bytes, bound {STATE_VIEW_WORST_BYTES}",
            json.len()
        );
        assert_eq!(view.refunds_completed_count, 1000);
        assert_eq!(view.discrepancies_count, 1000);
        assert_eq!(view.discrepancies.len(), VIEW_DISCREPANCIES_MAX);
        assert_eq!(
            view.discrepancies[0].commit,
            1000 - VIEW_DISCREPANCIES_MAX as u64
        );
    }

    #[test]
    fn folding_onto_a_view_keeps_what_evolve_reads() {
        let state = worst_state();
        let view = StateView::of(&state);
        let again = StateView::with_counts(&view.fold_state(), (1000, 1000));
        assert_eq!(again, view);
    }

    #[test]
    fn cut_keeps_character_boundaries() {
        let text = "é".repeat(VIEW_TEXT_LEN_MAX);
        let c = cut(&text);
        assert!(c.len() <= VIEW_TEXT_LEN_MAX && text.starts_with(&c));
        assert_eq!(cut("short"), "short");
    }
}
