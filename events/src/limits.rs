//! Every size bound of paystate, defined once, with the constraints that tie them together
//! checked by the compiler (the way TigerBeetle's `constants.zig` does with comptime asserts).
//!
//! The chain that matters:
//!
//! ```text
//! command ≤ COMMAND_BYTES_MAX ─┐
//! events  ≤ EVENTS_BYTES_MAX  ─┴─ commit ≤ COMMIT_BYTES_MAX ≤ stream message ≤ NATS max payload
//! events + bounded state view ─── outcome ≤ OUTCOME_BYTES_MAX ≤ KV value ≤ NATS max payload
//! COMMITS_PER_ORDER_MAX × STATE_BYTES_PER_COMMIT_MAX = the full state of a full order, which
//!   does NOT fit an outcome: outcomes and projection records carry a bounded view instead.
//! ```
//!
//! Other crates keep their old names as re-exports (`paystate_service::config::COMMAND_BYTES_MAX`,
//! `paystate_engine::COMMITS_PER_ORDER_MAX`, ...). [`table`] lists every limit for the
//! generated protocol reference (docs/protocol.md).

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// --- the broker ---

/// NATS `max_payload`: the largest message (headers included) the server accepts. The
/// server's default, and what paystate writes into the configs it generates.
pub const NATS_MAX_PAYLOAD_BYTES: usize = MIB;
/// Largest message the paystate streams accept (`max_message_size` of the log and the dead
/// letters; the command queue takes less, [`QUEUED_COMMAND_BYTES_MAX`]): the broker's own
/// limit.
pub const STREAM_MSG_BYTES_MAX: usize = NATS_MAX_PAYLOAD_BYTES;
/// Room kept for the headers paystate puts on a message (`Paystate-Commit-Hash`,
/// `Nats-Msg-Id`, expected-sequence headers, KV bookkeeping).
pub const MSG_HEADERS_BYTES_MAX: usize = 8 * KIB;
/// Largest value written to a KV bucket (a KV entry is one stream message).
pub const KV_VALUE_BYTES_MAX: usize = STREAM_MSG_BYTES_MAX - MSG_HEADERS_BYTES_MAX;

// --- what callers send ---

/// Largest command accepted, in bytes; larger ones are rejected as `command_too_large`.
pub const COMMAND_BYTES_MAX: usize = 64 * KIB;
/// Largest message the command queue stores (`max_message_size`): a command and its headers.
/// Larger publishes are refused by the broker before they are stored, so the commands an
/// engine holds unacknowledged (up to its `ack_pending_max`) are each at most this big.
pub const QUEUED_COMMAND_BYTES_MAX: usize = COMMAND_BYTES_MAX + MSG_HEADERS_BYTES_MAX;
/// Largest provider callback body the gateway reads (413 above it, nothing stored). Larger
/// than a command on purpose: an authentic callback too large to become a command is still
/// stored, verified and flagged for review (and answered with the provider's success), not
/// refused for ever (the adapters' own body limits are this one).
pub const CALLBACK_BODY_BYTES_MAX: usize = 256 * KIB;
/// Longest order id (it is a NATS subject token and part of KV keys).
pub const ORDER_ID_LEN_MAX: usize = 64;
/// Longest command id (it is a `Nats-Msg-Id` and part of KV keys).
pub const COMMAND_ID_LEN_MAX: usize = 128;
/// Latest `expires_at` an order may have, in Unix seconds (9999-12-31T23:59:59Z): its expiry
/// schedule is stored with a four-digit year, rounded up to the whole second, and the broker
/// refuses any other; a later one is rejected at create instead of committed unscheduled.
pub const EXPIRES_AT_MAX_UNIX_S: i64 = 253_402_300_799;
/// Longest merchant reference, merchant account, metadata key or value, start parameter,
/// cancel reason or attachment name, in bytes.
pub const TEXT_LEN_MAX: usize = 256;
/// Most metadata entries a `create_order` may carry.
pub const METADATA_ENTRIES_MAX: usize = 32;
/// Most refunds of one order waiting for the provider at once; more are refused with
/// `operation_in_progress` (the bounded state view lists every pending refund).
pub const REFUNDS_PENDING_MAX: usize = 1024;
/// The largest amount in minor units (10^15): sums within one order never overflow `u64`,
/// and every amount is exact in a JSON double (< 2^53).
pub const AMOUNT_MINOR_MAX: u64 = 1_000_000_000_000_000;
/// Largest attachment (a file a command refers to, kept in the object store, never inside a
/// command).
pub const ATTACHMENT_BYTES_MAX: usize = 10 * MIB;

// --- what the engine writes ---

/// Bound on commits per order: an order with this many commits takes no more commands
/// (`order_history_full`).
pub const COMMITS_PER_ORDER_MAX: u64 = 10_000;
/// Bound on `command_rejected` commits per order (decision 0013): a rejection past it is
/// answered but not logged (a retry is decided again). They count among the order's
/// commits; the bound keeps most of the history for commands that change the order.
pub const REJECTIONS_LOGGED_PER_ORDER_MAX: u64 = 1_000;
/// Longest message a `command_rejected` event keeps (the core's messages are far shorter).
pub const REJECTION_MESSAGE_BYTES_MAX: usize = KIB;
/// Fixed text of an event apart from what it copies from its command (names, amounts,
/// discrepancy codes and details, times).
pub const EVENT_FRAMING_BYTES_MAX: usize = 4 * KIB;
/// The events of one decision. An event copies at most its command's content once (a
/// signal's evidence, the initiation, the metadata); a settlement from pending repeats the
/// evidence in two events, so two commands' worth plus framing.
pub const EVENTS_BYTES_MAX: usize = 2 * COMMAND_BYTES_MAX + 2 * EVENT_FRAMING_BYTES_MAX;
/// A commit's own fields besides its command and events (`v`, ids, numbers, hashes, times).
pub const COMMIT_FRAMING_BYTES_MAX: usize = 4 * KIB;
/// Largest commit: the command as received, its events, the framing.
pub const COMMIT_BYTES_MAX: usize = 256 * KIB;
/// Hex digits of a SHA-256 (commit hashes, `prev_hash`, fingerprints).
pub const SHA256_HEX_LEN: usize = 64;
/// What one commit may add to an order's full folded state: the engine's idempotency entry
/// (command id, fingerprint, commit number) and one refund entry (refund id and amount),
/// with their JSON framing.
pub const STATE_BYTES_PER_COMMIT_MAX: usize = 2 * COMMAND_ID_LEN_MAX + SHA256_HEX_LEN + 128;
/// The full state of an order at its commit bound (the engine keeps it; it never travels).
pub const ORDER_STATE_BYTES_MAX: usize =
    STATE_VIEW_BYTES_MAX + COMMITS_PER_ORDER_MAX as usize * STATE_BYTES_PER_COMMIT_MAX;
/// The bounded state view outcomes and projection records carry (totals, status, pending
/// operations, references), whatever the number of commits.
pub const STATE_VIEW_BYTES_MAX: usize = 400 * KIB;
/// An outcome's own fields besides its events and state view (ids, code, message, flags).
pub const OUTCOME_FRAMING_BYTES_MAX: usize = 8 * KIB;
/// Largest outcome: the reply to a command and the value in the outcome bucket.
pub const OUTCOME_BYTES_MAX: usize = 576 * KIB;

// --- how they fit together (checked at compile time) ---

// A command, its events and the commit's own fields fit a commit ...
const _: () =
    assert!(COMMAND_BYTES_MAX + EVENTS_BYTES_MAX + COMMIT_FRAMING_BYTES_MAX <= COMMIT_BYTES_MAX);
// ... and a commit with its headers fits one stream message, which the server accepts.
const _: () = assert!(COMMIT_BYTES_MAX + MSG_HEADERS_BYTES_MAX <= STREAM_MSG_BYTES_MAX);
const _: () = assert!(STREAM_MSG_BYTES_MAX <= NATS_MAX_PAYLOAD_BYTES);
const _: () = assert!(QUEUED_COMMAND_BYTES_MAX <= STREAM_MSG_BYTES_MAX);
// A command with its headers fits the command queue.
const _: () = assert!(COMMAND_BYTES_MAX + MSG_HEADERS_BYTES_MAX <= STREAM_MSG_BYTES_MAX);
// A provider callback may be larger than a command (it is then flagged, not applied), and
// its raw record (base64 body, request head) fits one stream message (gateway::limits).
const _: () = assert!(CALLBACK_BODY_BYTES_MAX >= COMMAND_BYTES_MAX);
const _: () = assert!(CALLBACK_BODY_BYTES_MAX * 2 <= STREAM_MSG_BYTES_MAX);
// An outcome carries a decision's events and a bounded state view, and fits a KV value.
const _: () = assert!(
    EVENTS_BYTES_MAX + STATE_VIEW_BYTES_MAX + OUTCOME_FRAMING_BYTES_MAX <= OUTCOME_BYTES_MAX
);
const _: () = assert!(OUTCOME_BYTES_MAX <= KV_VALUE_BYTES_MAX);
// The worst-case view (every list at its bound, every text at its worst escaping) fits the
// view's bound (`crate::view`; a unit test serializes one).
const _: () = assert!(crate::view::STATE_VIEW_WORST_BYTES <= STATE_VIEW_BYTES_MAX);
const _: () = assert!(KV_VALUE_BYTES_MAX + MSG_HEADERS_BYTES_MAX <= NATS_MAX_PAYLOAD_BYTES);
// The full state of an order at its commit bound does not fit an outcome: this is why
// outcomes and projection records carry the bounded view, never the full state.
const _: () = assert!(ORDER_STATE_BYTES_MAX > OUTCOME_BYTES_MAX);
// Ids fit inside the texts that quote them, and an idempotency entry holds a full id.
const _: () = assert!(ORDER_ID_LEN_MAX <= COMMAND_ID_LEN_MAX);
const _: () = assert!(STATE_BYTES_PER_COMMIT_MAX > COMMAND_ID_LEN_MAX + SHA256_HEX_LEN);
// Amounts: every amount is exact in a JSON double, and a sum of one order's amounts (at most
// one per commit) cannot overflow u64.
const _: () = assert!(AMOUNT_MINOR_MAX < (1 << 53));
const _: () = assert!(AMOUNT_MINOR_MAX
    .checked_mul(COMMITS_PER_ORDER_MAX)
    .is_some());
// Logged rejections leave at least nine tenths of an order's history to real commits, and a
// rejection's message fits the framing an event may add to its command.
const _: () = assert!(REJECTIONS_LOGGED_PER_ORDER_MAX * 10 <= COMMITS_PER_ORDER_MAX);
const _: () = assert!(REJECTION_MESSAGE_BYTES_MAX < EVENT_FRAMING_BYTES_MAX);
// Metadata cannot make a command larger than the command limit.
const _: () = assert!(METADATA_ENTRIES_MAX * 2 * TEXT_LEN_MAX < COMMAND_BYTES_MAX);
// Attachments never travel inside a command.
const _: () = assert!(ATTACHMENT_BYTES_MAX > COMMAND_BYTES_MAX);

/// One limit, for documentation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LimitRow {
    /// The constant's name in this module.
    pub name: &'static str,
    pub value: u64,
    /// `bytes`, `characters`, `entries`, `commits` or `minor units`.
    pub unit: &'static str,
    /// What it bounds and what happens beyond it.
    pub meaning: &'static str,
}

/// Every limit, in the order of this module, for docs/protocol.md.
pub fn table() -> Vec<LimitRow> {
    fn row(
        name: &'static str,
        value: usize,
        unit: &'static str,
        meaning: &'static str,
    ) -> LimitRow {
        LimitRow {
            name,
            value: value as u64,
            unit,
            meaning,
        }
    }
    let b = "bytes";
    vec![
        row("NATS_MAX_PAYLOAD_BYTES", NATS_MAX_PAYLOAD_BYTES, b, "NATS `max_payload`: the server default, set from here in the nats-server configs paystate writes (dev, tests, benchmarks)"),
        row("STREAM_MSG_BYTES_MAX", STREAM_MSG_BYTES_MAX, b, "largest message of the log and dead-letter streams"),
        row("MSG_HEADERS_BYTES_MAX", MSG_HEADERS_BYTES_MAX, b, "room for message headers"),
        row("KV_VALUE_BYTES_MAX", KV_VALUE_BYTES_MAX, b, "largest KV value (outcomes, projection records)"),
        row("COMMAND_BYTES_MAX", COMMAND_BYTES_MAX, b, "largest command; above it `command_too_large`"),
        row("QUEUED_COMMAND_BYTES_MAX", QUEUED_COMMAND_BYTES_MAX, b, "largest message the command queue stores (a command and its headers); a larger publish is refused by the broker (the queue client's error names it) and never stored"),
        row("CALLBACK_BODY_BYTES_MAX", CALLBACK_BODY_BYTES_MAX, b, "largest provider callback body; above it HTTP 413 (an authentic one whose signal would not fit a command is stored and flagged for review)"),
        row("ORDER_ID_LEN_MAX", ORDER_ID_LEN_MAX, "characters", "order id length (`A-Z a-z 0-9 _ -`); beyond it `invalid_id`"),
        row("COMMAND_ID_LEN_MAX", COMMAND_ID_LEN_MAX, "characters", "command id length (`A-Z a-z 0-9 _ - .`); beyond it `invalid_id`"),
        row("TEXT_LEN_MAX", TEXT_LEN_MAX, b, "merchant reference, merchant account, metadata keys and values, start parameters, cancel reason, attachment names; beyond it `invalid_field`"),
        row("METADATA_ENTRIES_MAX", METADATA_ENTRIES_MAX, "entries", "metadata entries of `create_order`; beyond it `invalid_field`"),
        row("REFUNDS_PENDING_MAX", REFUNDS_PENDING_MAX, "entries", "refunds of one order waiting for the provider at once; beyond it `operation_in_progress`"),
        LimitRow { name: "AMOUNT_MINOR_MAX", value: AMOUNT_MINOR_MAX, unit: "minor units", meaning: "largest amount (10^15); beyond it `amount_overflow`" },
        row("ATTACHMENT_BYTES_MAX", ATTACHMENT_BYTES_MAX, b, "largest attachment (`POST /attachments`)"),
        LimitRow { name: "COMMITS_PER_ORDER_MAX", value: COMMITS_PER_ORDER_MAX, unit: "commits", meaning: "commits per order; then `order_history_full`" },
        LimitRow { name: "REJECTIONS_LOGGED_PER_ORDER_MAX", value: REJECTIONS_LOGGED_PER_ORDER_MAX, unit: "commits", meaning: "`command_rejected` commits per order (they count among its commits); past it a rejection is answered but not logged, and a retry is decided again" },
        row("REJECTION_MESSAGE_BYTES_MAX", REJECTION_MESSAGE_BYTES_MAX, b, "message kept in a `command_rejected` event (cut at a character boundary)"),
        row("EVENTS_BYTES_MAX", EVENTS_BYTES_MAX, b, "the events of one decision"),
        row("COMMIT_BYTES_MAX", COMMIT_BYTES_MAX, b, "largest commit (command + events + framing)"),
        row("STATE_BYTES_PER_COMMIT_MAX", STATE_BYTES_PER_COMMIT_MAX, b, "what one commit may add to an order's full state (idempotency entry, refund entry)"),
        row("ORDER_STATE_BYTES_MAX", ORDER_STATE_BYTES_MAX, b, "full state of an order at its commit bound (kept by the engine; never sent)"),
        row("STATE_VIEW_BYTES_MAX", STATE_VIEW_BYTES_MAX, b, "the bounded state view outcomes and projection records carry"),
        row("OUTCOME_BYTES_MAX", OUTCOME_BYTES_MAX, b, "largest outcome (reply and outcome-bucket value)"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_limit_once_with_its_value() {
        let rows = table();
        let mut names: Vec<_> = rows.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rows.len());
        let commits = rows.iter().find(|r| r.name == "COMMITS_PER_ORDER_MAX");
        assert_eq!(commits.map(|r| r.value), Some(COMMITS_PER_ORDER_MAX));
        let source = include_str!("limits.rs");
        for r in &rows {
            assert!(
                source.contains(&format!("pub const {}:", r.name)),
                "{} is a constant of this module",
                r.name
            );
        }
    }
}
