//! Every Prometheus metric paystate exports, named once: the recording sites (service,
//! gateway, adapters, workers, the binary) use these constants, the exporter registers their
//! help text from [`CATALOG`], and docs/operations.md lists the same names (a test checks).
//!
//! Naming follows Prometheus conventions: `paystate_` prefix, base units in the name
//! (`_seconds`), `_total` on counters. Label values are always from a closed set (command
//! types, outcome words, rejection codes, providers, operations, statuses, fixed reason
//! words): never an order id, command id, reference or free text, so the number of series
//! stays bounded whatever the traffic.

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric's name, kind, labels and help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

// --- engine (service crate) ---
/// Commands answered, by `type` (command type, or `unknown` when it did not parse),
/// `outcome` (`accepted`, `rejected`, `duplicate`) and `code` (rejection code, `none` when
/// accepted).
pub const COMMANDS_TOTAL: &str = "paystate_commands_total";
/// Time from the engine taking a command to its answer, by `type`.
pub const COMMAND_DURATION_SECONDS: &str = "paystate_command_duration_seconds";
/// Optimistic-concurrency conflicts (another writer moved the order; re-load, re-decide).
pub const COMMAND_CONFLICTS_TOTAL: &str = "paystate_command_conflicts_total";
/// Command attempts that ended without an answer and are retried (conflict bound reached,
/// broker trouble); past `engine.deliveries_max` attempts the command is dead-lettered.
pub const COMMAND_RETRIES_TOTAL: &str = "paystate_command_retries_total";
/// Messages set aside in the dead-letter stream, by `consumer` and `reason` (counted where
/// every consumer sets them aside: `paystate_journal::dead_letters::send`).
pub const DEAD_LETTERS_TOTAL: &str = "paystate_dead_letters_total";
/// Strays skipped on orders' logs: messages that are not commits and carry no commit hash
/// header, which paystate never writes (typically nats-server's answer to a client's publish
/// that named an order's subject as its reply subject; `paystate_journal::read::is_stray`).
/// Counted by every reader that skips one (an order's read, the workers, the reconciler), so
/// one stray counts once per reader: any increase means someone aimed at an order's log.
pub const LOG_STRAYS_TOTAL: &str = "paystate_log_strays_total";

// --- projection (sampled by processes with the projector role) ---
/// Log messages the live projection generation has not applied yet.
pub const PROJECTION_LAG_MESSAGES: &str = "paystate_projection_lag_messages";
/// Orders in the projection by `state` (status).
pub const ORDERS: &str = "paystate_orders";

// --- gateway ---
/// Provider callbacks received, by `provider` and `verdict`.
pub const CALLBACKS_TOTAL: &str = "paystate_callbacks_total";

// --- adapters (workers, reconciler) ---
/// Provider HTTP calls, by `provider` and `operation` (retries inside one call included).
pub const PROVIDER_REQUEST_DURATION_SECONDS: &str = "paystate_provider_request_duration_seconds";
/// Provider calls that failed, by `provider`, `operation` and `kind`.
pub const PROVIDER_ERRORS_TOTAL: &str = "paystate_provider_errors_total";

// --- reconciler ---
/// Status probes, by `provider` and `result` (`answered`, `error`).
pub const RECONCILER_PROBES_TOTAL: &str = "paystate_reconciler_probes_total";
/// Orders flagged for manual review by the reconciler, by `provider`.
pub const RECONCILER_FLAGGED_TOTAL: &str = "paystate_reconciler_flagged_total";

/// The `code` label of a command that was not rejected.
pub const CODE_NONE: &str = "none";
/// The `type` label of a command that did not parse.
pub const TYPE_UNKNOWN: &str = "unknown";

/// Outcome label values of [`COMMANDS_TOTAL`].
pub mod outcome {
    pub const ACCEPTED: &str = "accepted";
    pub const REJECTED: &str = "rejected";
    pub const DUPLICATE: &str = "duplicate";
}

/// `consumer` label values of [`DEAD_LETTERS_TOTAL`].
pub mod consumer {
    pub const ENGINE: &str = "engine";
    pub const WORKERS: &str = "workers";
    pub const PROJECTOR: &str = "projector";
    pub const RECONCILER: &str = "reconciler";
    pub const CALLBACKS: &str = "callbacks";
}

/// Every metric, for the exporter's help text and the documentation check.
pub const CATALOG: [Metric; 13] = [
    Metric {
        name: COMMANDS_TOTAL,
        kind: Kind::Counter,
        labels: &["type", "outcome", "code"],
        help: "Commands answered by the engine, by command type, outcome and rejection code.",
    },
    Metric {
        name: COMMAND_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &["type"],
        help: "Seconds from the engine taking a command to its answer.",
    },
    Metric {
        name: COMMAND_CONFLICTS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Optimistic-concurrency conflicts on append (the command was re-decided).",
    },
    Metric {
        name: COMMAND_RETRIES_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Command attempts that ended without an answer and are retried.",
    },
    Metric {
        name: DEAD_LETTERS_TOTAL,
        kind: Kind::Counter,
        labels: &["consumer", "reason"],
        help: "Messages moved to the dead-letter stream.",
    },
    Metric {
        name: LOG_STRAYS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Strays (not commits, no commit hash header) skipped on orders' logs.",
    },
    Metric {
        name: PROJECTION_LAG_MESSAGES,
        kind: Kind::Gauge,
        labels: &[],
        help: "Log messages the live projection has not applied yet.",
    },
    Metric {
        name: ORDERS,
        kind: Kind::Gauge,
        labels: &["state"],
        help: "Orders in the projection by state.",
    },
    Metric {
        name: CALLBACKS_TOTAL,
        kind: Kind::Counter,
        labels: &["provider", "verdict"],
        help: "Provider callbacks received, by provider and verdict.",
    },
    Metric {
        name: PROVIDER_REQUEST_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &["provider", "operation"],
        help: "Seconds per provider call (its retries included).",
    },
    Metric {
        name: PROVIDER_ERRORS_TOTAL,
        kind: Kind::Counter,
        labels: &["provider", "operation", "kind"],
        help: "Provider calls that ended in an error, by kind.",
    },
    Metric {
        name: RECONCILER_PROBES_TOTAL,
        kind: Kind::Counter,
        labels: &["provider", "result"],
        help: "Reconciler status probes, by provider and result.",
    },
    Metric {
        name: RECONCILER_FLAGGED_TOTAL,
        kind: Kind::Counter,
        labels: &["provider"],
        help: "Orders the reconciler flagged for manual review.",
    },
];

/// Histogram buckets in seconds, shared by both histograms: 1 ms (a cached decide) to 30 s
/// (a provider call at its timeout, retried).
pub const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for m in CATALOG {
            assert!(m.name.starts_with("paystate_"), "{}", m.name);
            assert!(seen.insert(m.name), "{} twice", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
                Kind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            for l in m.labels {
                let is_id = *l == "id" || l.ends_with("_id") || l.ends_with("_ref");
                assert!(!is_id, "{}: unbounded label {l}", m.name);
            }
        }
        assert!(DURATION_BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn docs_operations_lists_every_metric_with_its_labels() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
        let docs = std::fs::read_to_string(path).expect("docs/operations.md");
        for m in CATALOG {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", m.name)))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for {}", m.name));
            for l in m.labels {
                assert!(
                    row.contains(&format!("`{l}`")),
                    "{}: label {l} undocumented",
                    m.name
                );
            }
        }
    }
}
