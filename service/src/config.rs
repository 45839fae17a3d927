//! Engine tuning. Every bound is named; defaults suit one 2-core machine.

use std::time::Duration;

/// Largest command accepted, in bytes; larger ones are rejected as `command_too_large`
/// (defined with the other limits in `paystate_events::limits`).
pub use paystate_events::limits::COMMAND_BYTES_MAX;

/// Default for [`EngineConfig::partitions`]. Each partition task has one command in flight
/// (its append awaited before the next), so this bounds the appends one instance has in
/// flight: enough that its connection carries them in batches (the broker then reads and
/// writes many messages per system call) rather than one by one.
pub const PARTITIONS_DEFAULT: usize = 256;

/// Default for [`EngineConfig::ack_pending_max`]: unacknowledged commands across instances.
pub const ACK_PENDING_MAX_DEFAULT: i64 = 20_000;

/// Default for [`EngineConfig::deliveries_max`]: with `retry_later` of a second and conflict
/// retries within each delivery, a command that cannot be committed for about 20 s is given up.
pub const DELIVERIES_MAX_DEFAULT: i64 = 20;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partition tasks per instance; each order maps to one, so one instance never races itself.
    pub partitions: usize,
    /// Orders cached across all partitions (LRU); a miss re-reads the order from the log.
    pub cache_orders_max: usize,
    /// Re-load and re-decide at most this many times on conflicts before giving the command
    /// back to the queue (it is redelivered later, never dropped).
    pub conflict_retries_max: u32,
    /// Commands a partition may have queued before intake waits. At least
    /// `ack_pending_max` (the default): JetStream hands out no more unacknowledged commands
    /// than that, so intake never waits on one busy order's partition while others idle.
    pub partition_queue_max: usize,
    /// Unacknowledged commands per consumer (JetStream `max_ack_pending`).
    pub ack_pending_max: i64,
    /// How long JetStream waits for an ack before redelivering to any instance.
    pub ack_wait: Duration,
    /// Delay before a command given back after exhausted retries is redelivered.
    pub retry_later: Duration,
    /// Deliveries of one command before it is set aside in the dead-letter stream and its
    /// caller gets `dead_lettered`: nothing is redelivered forever.
    pub deliveries_max: i64,
    /// Subject prefixes (each ending in `.`) below which outcomes may be published: the
    /// `Paystate-Reply-To` header must name a subject below one of them.
    pub inbox_prefixes: Vec<String>,
    /// Order affinity on the queue path: a queued command of a fast-path partition another
    /// live instance serves is handed to that instance ([`crate::fast::forward`]). Off, every
    /// instance decides what it pulls and the optimistic-concurrency check settles races.
    pub queue_affinity: bool,
    /// Pause before each retry of an order's expiry, counted from the commit that made it due
    /// (a capture or void failed on an order its expiry already tried): one per retry, at
    /// most [`crate::expiry::RETRIES_MAX`] (decision 0010).
    pub expiry_retry_after: [Duration; crate::expiry::RETRIES_MAX as usize],
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            partitions: PARTITIONS_DEFAULT,
            cache_orders_max: 100_000,
            conflict_retries_max: 16,
            partition_queue_max: ACK_PENDING_MAX_DEFAULT as usize,
            ack_pending_max: ACK_PENDING_MAX_DEFAULT,
            ack_wait: Duration::from_secs(30),
            retry_later: Duration::from_secs(1),
            deliveries_max: DELIVERIES_MAX_DEFAULT,
            inbox_prefixes: vec![paystate_events::subjects::INBOX_PREFIX_DEFAULT.to_string()],
            queue_affinity: true,
            expiry_retry_after: crate::expiry::RETRY_AFTER_DEFAULT,
        }
    }
}
