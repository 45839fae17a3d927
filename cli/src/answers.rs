//! The shapes of every HTTP answer and every CLI `--json` output, as types, so their JSON
//! Schemas are generated into schemas/ (`paystate schemas`) next to the wire types'. Tests
//! validate real answers against them (tests/protocol_answers.rs).
//!
//! | schema | answer |
//! |---|---|
//! | `http_order` | `GET /orders/{id}`, `paystate order show --json` |
//! | `http_orders` | `GET /orders`, `paystate orders list --json`, `paystate review list --json` |
//! | `http_projection` | `GET /projection`, `paystate project status --json` |
//! | `http_attachment` | `POST /attachments` (201) |
//! | `http_error` | every HTTP error: `{"error": {"code", "message"}}` |
//! | `cli_show` | `paystate show --json` |
//! | `cli_replay` | `paystate replay --json` |
//! | `cli_audit_report` | `paystate audit --report FILE` |
//! | `cli_dlq_list`, `cli_dlq_show` | `paystate dlq list --json`, `paystate dlq show SEQ --json` |
//! | `outcome` (wire) | `paystate send` |

use paystate_audit::timeline::{Entry, Point};
use paystate_events::{Commit, OrderId, OrderState, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `paystate show --json`: the order's commits as stored, and the state they fold to.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShowOutput {
    pub commits: Vec<ShownCommit>,
    /// The folded state (`None` only for an order without commits, which is never shown).
    pub state: Option<OrderState>,
}

/// One stored commit.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShownCommit {
    /// Stream sequence in the log.
    pub sequence: u64,
    /// The broker's store time.
    pub time: Timestamp,
    /// The `Paystate-Commit-Hash` header: SHA-256 of the stored bytes.
    pub hash: String,
    pub commit: Commit,
}

/// `paystate replay --json`: the timeline up to a point and the state there.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReplayOutput {
    pub order_id: OrderId,
    /// The point asked for (`--at`), if any.
    pub at: Option<Point>,
    pub entries: Vec<Entry>,
    /// The state at that point; `None` if the order did not exist yet.
    pub state: Option<OrderState>,
}

/// `paystate dlq show SEQ --json`: the letter, the original message's headers and its
/// payload (JSON when it is JSON, else a string).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DlqShowOutput {
    pub letter: paystate_journal::dead_letters::DeadLetter,
    /// (name, value) pairs, in no particular order.
    pub headers: Vec<(String, String)>,
    pub payload: serde_json::Value,
}

/// Every HTTP error of the gateway's JSON routes: a stable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `invalid_id`, `invalid_query`,
    /// `order_not_found`, `projection_unavailable`, `body_too_large`, `request_timeout`, ...
    pub code: String,
    pub message: String,
}

/// Which answer each schema describes, for docs/protocol.md.
pub const ANSWERS: [(&str, &str); 11] = [
    (
        "http_order.schema.json",
        "`GET /orders/{id}`; `paystate order show --json`",
    ),
    (
        "http_orders.schema.json",
        "`GET /orders?...`; `paystate orders list --json`; `paystate review list --json`",
    ),
    (
        "http_projection.schema.json",
        "`GET /projection`; `paystate project status --json`",
    ),
    ("http_attachment.schema.json", "`POST /attachments` (201)"),
    (
        "http_error.schema.json",
        "every HTTP error: `{\"error\": {\"code\", \"message\"}}`",
    ),
    ("cli_show.schema.json", "`paystate show --json`"),
    ("cli_replay.schema.json", "`paystate replay --json`"),
    (
        "cli_audit_report.schema.json",
        "`paystate audit --report FILE`",
    ),
    ("cli_dlq_list.schema.json", "`paystate dlq list --json`"),
    ("cli_dlq_show.schema.json", "`paystate dlq show SEQ --json`"),
    (
        "outcome.schema.json",
        "`paystate send` (and every outcome on NATS)",
    ),
];

/// (file name, schema) of every answer.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
    }
    vec![
        (
            "http_order.schema.json",
            one::<paystate_projection::OrderView>(),
        ),
        (
            "http_orders.schema.json",
            one::<paystate_projection::OrderList>(),
        ),
        (
            "http_projection.schema.json",
            one::<paystate_projection::ProjectionStatus>(),
        ),
        (
            "http_attachment.schema.json",
            one::<paystate_events::command::Attachment>(),
        ),
        ("http_error.schema.json", one::<ErrorBody>()),
        ("cli_show.schema.json", one::<ShowOutput>()),
        ("cli_replay.schema.json", one::<ReplayOutput>()),
        (
            "cli_audit_report.schema.json",
            one::<paystate_audit::Report>(),
        ),
        (
            "cli_dlq_list.schema.json",
            one::<paystate_journal::dead_letters::DeadLetterPage>(),
        ),
        ("cli_dlq_show.schema.json", one::<DlqShowOutput>()),
    ]
}

/// Every schema `paystate schemas` writes into schemas/: the wire types and the answers.
pub fn all_schemas() -> Vec<(&'static str, serde_json::Value)> {
    let mut all = paystate_events::schemas::all();
    all.extend(schemas());
    all
}
