//! NATS names: subjects, streams, consumers and buckets. A service in another language needs
//! only these (and `schemas/`) to publish commands and read outcomes.

use crate::OrderId;

/// Stream holding every order's commits (the log, the source of truth).
pub const EVENTS_STREAM: &str = "PAYSTATE_EVENTS";
/// Subject prefix of the log: one subject per order, `paystate.events.<order_id>`.
pub const EVENTS_PREFIX: &str = "paystate.events";
/// Stream holding commands until an engine has processed them (work queue).
pub const COMMANDS_STREAM: &str = "PAYSTATE_COMMANDS";
/// Subject prefix of commands: `paystate.cmd.<order_id>`.
pub const COMMANDS_PREFIX: &str = "paystate.cmd";
/// Durable consumer shared by every engine instance (competing consumers).
pub const ENGINE_CONSUMER: &str = "paystate-engine";
/// KV bucket of command outcomes by command id (idempotent replies).
pub const OUTCOMES_BUCKET: &str = "paystate_outcomes";
/// Header naming the subject the engine publishes the command's [`crate::Outcome`] to.
pub const REPLY_HEADER: &str = "Paystate-Reply-To";
/// Header carrying a commit's hash.
pub const HASH_HEADER: &str = "Paystate-Commit-Hash";
/// Header carrying a commit's number within its order.
pub const COMMIT_HEADER: &str = "Paystate-Commit";

pub fn events_subject(order: &OrderId) -> String {
    format!("{EVENTS_PREFIX}.{order}")
}

pub fn command_subject(order: &OrderId) -> String {
    format!("{COMMANDS_PREFIX}.{order}")
}

/// The order id token of an events or commands subject, if it has one.
pub fn order_token(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(EVENTS_PREFIX)
        .or_else(|| subject.strip_prefix(COMMANDS_PREFIX))
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|t| !t.is_empty() && !t.contains('.'))
}
