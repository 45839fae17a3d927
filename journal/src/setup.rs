//! Stream configuration for the log and the command queue.

use async_nats::jetstream::{self, stream};
use paystate_events::subjects::{
    COMMANDS_PREFIX, COMMANDS_STREAM, DEAD_LETTERS_PREFIX, DEAD_LETTERS_STREAM, EVENTS_PREFIX,
    EVENTS_STREAM, EXPIRY_FIRED_PREFIX, EXPIRY_SCHEDULE_PREFIX, OPERATOR_PREFIX, SCHEDULES_STREAM,
    SIGNALS_PREFIX,
};
use std::time::Duration;

/// Largest message the streams accept (the server's `max_payload`); the engine's own,
/// smaller limit on commands gives callers a typed rejection instead.
/// Defined in `paystate_events::limits` (this is its `i32` form for the stream config).
pub const STREAM_MSG_BYTES_MAX: i32 = paystate_events::limits::STREAM_MSG_BYTES_MAX as i32;

/// How the log and command streams are stored and replicated.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub events_stream: String,
    pub commands_stream: String,
    /// 1 for `dev` and tests, 3 in production (R3 across a NATS cluster).
    pub replicas: usize,
    /// Refuse the delete-message and purge APIs on the log (production: true). Tests that
    /// tamper with the log to prove the audit catches it turn this off.
    pub protect_log: bool,
    /// `Nats-Msg-Id` duplicate window.
    pub duplicate_window: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            events_stream: EVENTS_STREAM.to_string(),
            commands_stream: COMMANDS_STREAM.to_string(),
            replicas: 1,
            protect_log: true,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The oldest nats-server paystate runs against: order expiry uses JetStream message
/// scheduling (ADR-51), new in 2.12. (Before 2.9.21 the per-subject expected-sequence check
/// that serialises each order's commits also had a race on replicated streams.) Tested on the
/// pinned 2.15.1.
pub const SERVER_VERSION_MIN: (u32, u32, u32) = (2, 12, 0);

/// Why the streams could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("stream setup failed: {0}")]
    Stream(String),
    #[error(
        "nats-server {found} is older than the minimum paystate supports ({}.{}.{}): order expiry needs JetStream message scheduling (2.12+), and before 2.9.21 the optimistic-concurrency check is unreliable on replicated streams; upgrade nats-server (scripts/install-nats.sh installs 2.15.1)",
        SERVER_VERSION_MIN.0, SERVER_VERSION_MIN.1, SERVER_VERSION_MIN.2
    )]
    ServerTooOld { found: String },
}

/// Refuses servers older than [`SERVER_VERSION_MIN`].
pub fn check_server_version(client: &async_nats::Client) -> Result<(), SetupError> {
    let found = client.server_info().version;
    let mut parts = found
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    if version < SERVER_VERSION_MIN {
        return Err(SetupError::ServerTooOld { found });
    }
    Ok(())
}

/// Creates or updates the log stream and the command queue; returns the log stream.
pub async fn ensure_log(
    js: &jetstream::Context,
    s: &LogSettings,
) -> Result<stream::Stream, SetupError> {
    check_server_version(&js.client())?;
    let events = stream::Config {
        name: s.events_stream.clone(),
        subjects: vec![format!("{EVENTS_PREFIX}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window,
        max_message_size: STREAM_MSG_BYTES_MAX,
        deny_delete: s.protect_log,
        deny_purge: s.protect_log,
        allow_direct: true,
        description: Some(
            "paystate: every order's hash-chained commits (the source of truth)".into(),
        ),
        ..Default::default()
    };
    let commands = stream::Config {
        name: s.commands_stream.clone(),
        // Three planes in one queue (one order's commands stay in order across them):
        // clients publish on the first, the signal-reporting role on the second, operators
        // on the third; NATS permissions keep them apart (deploy/nats/). An existing stream
        // gets the operator plane on the next start (create or update).
        subjects: vec![
            format!("{COMMANDS_PREFIX}.>"),
            format!("{SIGNALS_PREFIX}.>"),
            format!("{OPERATOR_PREFIX}.>"),
        ],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window,
        // Why not the broker's 1 MiB: an engine holds up to `ack_pending_max` commands
        // unacknowledged; a command is at most 64 KiB, so anything larger is refused here,
        // before it is stored, and never held.
        max_message_size: paystate_events::limits::QUEUED_COMMAND_BYTES_MAX as i32,
        description: Some("paystate: commands waiting for an engine (work queue)".into()),
        // Due expiries, fired by the server from the schedule stream, arrive as client
        // commands on `paystate.cmd.<order_id>` even when no engine runs.
        sources: Some(vec![expiry_source()]),
        ..Default::default()
    };
    ensure_schedules(js, s.replicas).await?;
    js.create_or_update_stream(commands)
        .await
        .map_err(|e| SetupError::Stream(format!("{}: {e}", s.commands_stream)))?;
    ensure_dead_letters(js, s.replicas).await?;
    js.create_or_update_stream(events)
        .await
        .map_err(|e| SetupError::Stream(format!("{}: {e}", s.events_stream)))?;
    js.get_stream(&s.events_stream)
        .await
        .map_err(|e| SetupError::Stream(format!("{}: {e}", s.events_stream)))
}

/// How long a fired expiry stays in the schedule stream after the command queue sourced it
/// (`Nats-Schedule-TTL` of the fired message; Go duration syntax).
pub const FIRED_EXPIRY_TTL: &str = "168h";

/// The schedule stream: one expiry schedule per order (`paystate.schedule.expire.<id>`,
/// written by the engine), and the messages the server publishes when one is due
/// (`paystate.fired.expire.<id>`, kept [`FIRED_EXPIRY_TTL`]). Only the engine may publish
/// here: a schedule's target is any subject of its stream, which is why this is not the
/// command queue (whose signal plane only the reporter may write).
pub async fn ensure_schedules(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<stream::Stream, SetupError> {
    let cfg = stream::Config {
        name: SCHEDULES_STREAM.to_string(),
        subjects: vec![
            format!("{EXPIRY_SCHEDULE_PREFIX}.>"),
            format!("{EXPIRY_FIRED_PREFIX}.>"),
        ],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas,
        // The command queue sources this stream, and the broker wants a source's messages
        // to fit its target: no larger than a queued command (expiries are a few hundred
        // bytes).
        max_message_size: paystate_events::limits::QUEUED_COMMAND_BYTES_MAX as i32,
        allow_message_schedules: true,
        allow_message_ttl: true,
        description: Some("paystate: order expiry schedules (message scheduling)".into()),
        ..Default::default()
    };
    js.create_or_update_stream(cfg)
        .await
        .map_err(|e| SetupError::Stream(format!("{SCHEDULES_STREAM}: {e}")))?;
    js.get_stream(SCHEDULES_STREAM)
        .await
        .map_err(|e| SetupError::Stream(format!("{SCHEDULES_STREAM}: {e}")))
}

/// The command queue's source: fired expiries, `paystate.fired.expire.<id>` →
/// `paystate.cmd.<id>`.
fn expiry_source() -> stream::Source {
    stream::Source {
        name: SCHEDULES_STREAM.to_string(),
        subject_transforms: vec![stream::SubjectTransform {
            source: format!("{EXPIRY_FIRED_PREFIX}.*"),
            destination: format!("{COMMANDS_PREFIX}.{{{{wildcard(1)}}}}"),
        }],
        ..Default::default()
    }
}

/// How long dead letters are kept, and how much of them at most (oldest dropped first).
pub const DEAD_LETTERS_AGE_MAX: Duration = Duration::from_secs(90 * 24 * 3600);
pub const DEAD_LETTERS_BYTES_MAX: i64 = 1024 * 1024 * 1024;

/// The dead-letter stream: commands that failed on every bounded delivery, with their reason
/// in a header, kept for an operator (bounded by age and size).
pub async fn ensure_dead_letters(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<stream::Stream, SetupError> {
    let cfg = stream::Config {
        name: DEAD_LETTERS_STREAM.to_string(),
        subjects: vec![format!("{DEAD_LETTERS_PREFIX}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas,
        max_age: DEAD_LETTERS_AGE_MAX,
        max_bytes: DEAD_LETTERS_BYTES_MAX,
        discard: stream::DiscardPolicy::Old,
        max_message_size: STREAM_MSG_BYTES_MAX,
        description: Some("paystate: commands set aside after their bounded deliveries".into()),
        ..Default::default()
    };
    js.create_or_update_stream(cfg)
        .await
        .map_err(|e| SetupError::Stream(format!("{DEAD_LETTERS_STREAM}: {e}")))?;
    js.get_stream(DEAD_LETTERS_STREAM)
        .await
        .map_err(|e| SetupError::Stream(format!("{DEAD_LETTERS_STREAM}: {e}")))
}
