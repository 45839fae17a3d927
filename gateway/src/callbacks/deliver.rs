//! Turning one report into signal commands and getting each into the log.
//!
//! - **Deterministic commands.** The first receipt of a report pins what is not in the signed
//!   content: its evidence reference (`callbacks:<raw stream sequence of the first receipt>`)
//!   and, when the provider says no time, its observed time (the first receipt time). The pin
//!   is a `pending` record in the seen bucket, created only if absent, so concurrent resends
//!   agree on it. Every resend builds byte-identical commands (ids from the dedup key), so
//!   the engine answers a resend with the original outcome, never `idempotency_key_reused`.
//! - **Success only when in the log.** Each command is sent with a reply inbox and its
//!   outcome awaited (bounded). Accepted (new or duplicate) is in the log; the seen record
//!   becomes `applied` only then. A transient failure (no outcome in time, broker trouble)
//!   is `NotApplied::Later` (503: the provider resends, or paystate re-drives it); a
//!   permanent rejection quarantines the callback for a person.
//! - **Too large.** A signal whose command would pass the command size limit is replaced by
//!   one `needs_review` signal pointing at the stored raw callback: the order is flagged and
//!   the provider gets its success answer.

use super::keys::seen_key;
use super::route::{Applied, NotApplied};
use super::Inner;
use async_nats::jetstream::kv;
use axum::http::StatusCode;
use paystate_events::{
    Command, CommandEnvelope, CommandId, OrderId, Outcome, Provider, ProviderSignal, RejectionCode,
    SignalKind, Timestamp,
};
use paystate_service::config::COMMAND_BYTES_MAX;
use paystate_service::ClientError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;

/// Where a report stands, as the seen bucket records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SeenState {
    /// Received; its commands may or may not be in the log yet (a resend sends them again).
    Pending,
    /// Every command has its outcome in the log: a resend is only acknowledged.
    Applied,
    /// Set aside for a person (`paystate_callbacks_held`): a resend is only acknowledged.
    Quarantined,
}

/// A seen-bucket record: the report's state and what its first receipt pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SeenRecord {
    pub state: SeenState,
    pub order_id: OrderId,
    /// Raw stream sequence of the first receipt (its evidence).
    pub first_raw_seq: u64,
    pub first_received_at: Timestamp,
    /// What every command of this report carries as `evidence_ref` and `observed_at`.
    pub evidence_ref: String,
    pub observed_at: Timestamp,
}

/// One report, ready to be delivered.
pub(crate) struct Report<'a> {
    pub provider: Provider,
    pub raw_seq: u64,
    pub order: &'a OrderId,
    pub dedup: String,
    pub provider_ref: Option<String>,
    /// Evidence of this receipt (used if it is the first).
    pub evidence_ref: String,
    /// When the provider says it happened (else the first receipt time).
    pub observed_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub kinds: &'a [SignalKind],
    /// Extra words for the verdict (what a status query confirmed).
    pub detail: String,
}

/// What the engine's answer to one command means for the callback.
enum Landed {
    /// Committed now (`false`) or before (`true`: a resend, or the queued command of a
    /// receipt that got no answer).
    InLog(bool),
    /// A resend (or paystate's re-drive) may still get it in.
    Later(String),
    /// No resend ever will: a person must look.
    Never(RejectionCode, String),
}

/// The longest `needs_review` reason: a flag, not a copy of the report.
const REVIEW_REASON_LEN_MAX: usize = 512;

impl Inner {
    /// Gets every signal of `report` into the log once (see the module docs).
    pub(crate) async fn deliver(&self, report: Report<'_>) -> Result<Applied, NotApplied> {
        let key = seen_key(report.provider, &report.dedup);
        let (pinned, revision) = match self.pin(&key, &report).await? {
            Pinned::Pending(record, revision) => (record, revision),
            Pinned::Done(state) => {
                self.stats.duplicates.fetch_add(1, Relaxed);
                self.verdict(
                    report.provider,
                    report.raw_seq,
                    "duplicate",
                    &format!("already {}", state_name(state)),
                    Some(report.order),
                )
                .await;
                return Ok(Applied::Duplicate);
            }
        };
        let (commands, flagged) = commands(&report, &pinned);
        tracing::Span::current().record("order_id", report.order.as_str());
        let mut all_duplicates = true;
        for c in &commands {
            tracing::debug!(command_id = %c.command_id, "submitting the reported signal");
            match self.land(c).await {
                Landed::InLog(duplicate) => all_duplicates &= duplicate,
                Landed::Later(reason) => {
                    return Err(NotApplied::Later(StatusCode::SERVICE_UNAVAILABLE, reason))
                }
                Landed::Never(code, message) => {
                    let reason = format!(
                        "the engine refused command {}: {code}: {message}",
                        c.command_id
                    );
                    let quarantined = self
                        .quarantine(report.provider, report.raw_seq, Some(report.order), &reason)
                        .await;
                    if quarantined.is_ok() {
                        self.mark(&key, &pinned, revision, SeenState::Quarantined)
                            .await;
                    }
                    return quarantined;
                }
            }
        }
        self.mark(&key, &pinned, revision, SeenState::Applied).await;
        match all_duplicates {
            true => self.stats.duplicates.fetch_add(1, Relaxed),
            false => self.stats.applied.fetch_add(1, Relaxed),
        };
        let (verdict, what) = match flagged {
            _ if all_duplicates => (
                "duplicate",
                format!("already in the log ({} signal(s))", commands.len()),
            ),
            Some(bytes) => ("flagged", format!("too large to become a command ({bytes} bytes over {COMMAND_BYTES_MAX}); the order is flagged for review with evidence {}", pinned.evidence_ref)),
            None => ("applied", format!("{} signal(s)", commands.len())),
        };
        let detail = match report.detail.is_empty() {
            true => what,
            false => format!("{}: {what}", report.detail),
        };
        self.verdict(
            report.provider,
            report.raw_seq,
            verdict,
            &detail,
            Some(report.order),
        )
        .await;
        Ok(Applied::InLog)
    }

    /// The report's pinned record: created from this receipt if it is the first, else read.
    async fn pin(&self, key: &str, report: &Report<'_>) -> Result<Pinned, NotApplied> {
        let fresh = SeenRecord {
            state: SeenState::Pending,
            order_id: report.order.clone(),
            first_raw_seq: report.raw_seq,
            first_received_at: report.received_at,
            evidence_ref: report.evidence_ref.clone(),
            observed_at: report.observed_at.unwrap_or(report.received_at),
        };
        let bytes = serde_json::to_vec(&fresh).map_err(|e| later(format!("seen record: {e}")))?;
        // Why two tries: a pending record may be deleted between create and entry by nothing
        // but an operator; one retry covers a create racing another receipt's create.
        for _ in 0..2 {
            match self.seen.create(key, bytes.clone().into()).await {
                Ok(revision) => return Ok(Pinned::Pending(fresh, revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(later(format!("seen bucket unavailable: {e}"))),
            }
            let entry = self
                .seen
                .entry(key)
                .await
                .map_err(|e| later(format!("seen bucket unavailable: {e}")))?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                continue;
            };
            match read_seen(&entry.value) {
                SeenValue::Record(r) if r.state == SeenState::Pending => {
                    return Ok(Pinned::Pending(r, entry.revision))
                }
                SeenValue::Record(r) => return Ok(Pinned::Done(r.state)),
                SeenValue::Legacy => return Ok(Pinned::Done(SeenState::Applied)),
                // Why not "applied": anyone who may publish can have the broker store its
                // answer (a PubAck) at this key (docs/security.md, known limits), which
                // would then silence the provider's genuine report. Junk is read as absent:
                // this receipt takes the key over, if nobody changed it meanwhile.
                SeenValue::Junk => {
                    tracing::warn!(key, "seen record unreadable (not written by paystate); replaced by this receipt's");
                    match self
                        .seen
                        .update(key, bytes.clone().into(), entry.revision)
                        .await
                    {
                        Ok(revision) => return Ok(Pinned::Pending(fresh, revision)),
                        Err(_) => continue, // changed under us: read it again
                    }
                }
            }
        }
        Err(later("seen record changed under us; retry".into()))
    }

    /// Records the report's final state (a failure only costs a resend a round trip to the
    /// engine, which answers it as a duplicate).
    async fn mark(&self, key: &str, pinned: &SeenRecord, revision: u64, state: SeenState) {
        let record = SeenRecord {
            state,
            ..pinned.clone()
        };
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        if let Err(e) = self.seen.update(key, bytes.into(), revision).await {
            tracing::warn!(key, error = %e, "seen record not updated; a resend will be sent to the engine again (and answered as a duplicate)");
        }
    }

    /// Sends one command with a reply inbox and classifies its outcome.
    async fn land(&self, cmd: &CommandEnvelope) -> Landed {
        match self.client.send(cmd, self.timings.outcome_wait).await {
            Ok(Outcome::Accepted { duplicate, .. }) => Landed::InLog(duplicate),
            Ok(Outcome::Rejected {
                code,
                message,
                duplicate,
                ..
            }) => classify(code, message, duplicate),
            Err(e @ ClientError::Timeout(_)) => Landed::Later(format!("{e}")),
            Err(e) => Landed::Later(format!("engine unavailable: {e}")),
        }
    }
}

/// What a rejection of a signal command means. `order_not_found` is transient (the order
/// may be created: the gateway checks first, so this is a race at most) unless it is the
/// engine's stored answer to this very command, which no resend changes.
fn classify(code: RejectionCode, message: String, duplicate: bool) -> Landed {
    use RejectionCode::*;
    match code {
        OrderNotFound if !duplicate => Landed::Later(format!("{code}: {message}")),
        Unavailable | OrderUnreadable => Landed::Later(format!("{code}: {message}")),
        _ => Landed::Never(code, message),
    }
}

enum Pinned {
    Pending(SeenRecord, u64),
    Done(SeenState),
}

/// A value found in the seen bucket.
#[derive(Debug)]
enum SeenValue {
    Record(SeenRecord),
    /// Written by a version before the seen record (the raw sequence in decimal, nothing
    /// else): that callback was applied then.
    Legacy,
    /// Anything else: not paystate's.
    Junk,
}

fn read_seen(value: &[u8]) -> SeenValue {
    if let Ok(r) = serde_json::from_slice::<SeenRecord>(value) {
        return SeenValue::Record(r);
    }
    let legacy = !value.is_empty()
        && value.len() <= 20
        && value.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(value).is_ok_and(|v| v.parse::<u64>().is_ok());
    if legacy {
        SeenValue::Legacy
    } else {
        SeenValue::Junk
    }
}

fn state_name(s: SeenState) -> &'static str {
    match s {
        SeenState::Pending => "pending",
        SeenState::Applied => "applied",
        SeenState::Quarantined => "quarantined for review",
    }
}

fn later(reason: String) -> NotApplied {
    NotApplied::Later(StatusCode::SERVICE_UNAVAILABLE, reason)
}

/// One `provider_signal` command per signal, ids `cb.<provider>.<dedup>.<i>`, bodies from
/// the report and its pin only. If any would pass the command size limit, one
/// `needs_review` command (`cb.<provider>.<dedup>.review`) instead, and its size.
fn commands(report: &Report<'_>, pinned: &SeenRecord) -> (Vec<CommandEnvelope>, Option<usize>) {
    let envelope = |suffix: String, kind: SignalKind| {
        let command_id =
            CommandId::parse(format!("cb.{}.{}.{suffix}", report.provider, report.dedup)).ok()?;
        let signal = ProviderSignal {
            provider: report.provider,
            provider_ref: report.provider_ref.clone(),
            evidence_ref: pinned.evidence_ref.clone(),
            observed_at: pinned.observed_at,
            kind,
        };
        Some(CommandEnvelope {
            command_id,
            order_id: report.order.clone(),
            issued_at: pinned.first_received_at,
            command: Command::ProviderSignal { signal },
        })
    };
    let all: Vec<CommandEnvelope> = report
        .kinds
        .iter()
        .enumerate()
        .filter_map(|(i, k)| envelope(i.to_string(), k.clone()))
        .collect();
    let largest = all
        .iter()
        .map(|c| serde_json::to_vec(c).map(|b| b.len()).unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0);
    if largest <= COMMAND_BYTES_MAX {
        return (all, None);
    }
    let mut reason = format!(
        "a {} callback ({}) reports what does not fit a command ({largest} bytes, limit {COMMAND_BYTES_MAX}); the raw callback is kept as evidence",
        report.provider, pinned.evidence_ref
    );
    reason.truncate(REVIEW_REASON_LEN_MAX);
    let review = envelope("review".into(), SignalKind::NeedsReview { reason });
    (review.into_iter().collect(), Some(largest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(order: &'a OrderId, kinds: &'a [SignalKind]) -> Report<'a> {
        Report {
            provider: Provider::Exchanger,
            raw_seq: 7,
            order,
            dedup: "0123456789abcdef0123456789abcdef".into(),
            provider_ref: Some("ref-1".into()),
            evidence_ref: "callbacks:7".into(),
            observed_at: None,
            received_at: chrono::Utc::now(),
            kinds,
            detail: String::new(),
        }
    }

    fn pin(r: &Report<'_>) -> SeenRecord {
        SeenRecord {
            state: SeenState::Pending,
            order_id: r.order.clone(),
            first_raw_seq: 3,
            first_received_at: "2026-01-01T00:00:00Z".parse().expect("time"),
            evidence_ref: "callbacks:3".into(),
            observed_at: "2026-01-01T00:00:00Z".parse().expect("time"),
        }
    }

    #[test]
    fn a_resend_builds_the_same_commands_as_the_first_receipt() {
        let o = OrderId::parse("o-1").expect("id");
        let kinds = [SignalKind::Cancelled];
        let first = report(&o, &kinds);
        let mut resend = report(&o, &kinds);
        resend.raw_seq = 99;
        resend.received_at = chrono::Utc::now() + chrono::Duration::seconds(60);
        let pinned = pin(&first);
        let (a, _) = commands(&first, &pinned);
        let (b, _) = commands(&resend, &pinned);
        assert_eq!(a, b);
        assert_eq!(a[0].fingerprint(), b[0].fingerprint());
        assert_eq!(
            a[0].command_id.as_str(),
            format!("cb.exchanger.{}.0", first.dedup)
        );
    }

    #[test]
    fn a_signal_too_large_for_a_command_becomes_one_review_flag() {
        let o = OrderId::parse("o-1").expect("id");
        let kinds = [SignalKind::Unrecognised {
            raw_status: "x".repeat(COMMAND_BYTES_MAX + 1),
        }];
        let r = report(&o, &kinds);
        let (cmds, flagged) = commands(&r, &pin(&r));
        assert!(flagged.is_some_and(|n| n > COMMAND_BYTES_MAX));
        assert_eq!(cmds.len(), 1);
        assert!(cmds[0].command_id.as_str().ends_with(".review"));
        let Command::ProviderSignal { signal } = &cmds[0].command else {
            panic!("a signal");
        };
        assert!(
            matches!(&signal.kind, SignalKind::NeedsReview { reason } if reason.contains("callbacks:3"))
        );
        assert!(serde_json::to_vec(&cmds[0]).expect("json").len() < COMMAND_BYTES_MAX);
    }

    #[test]
    fn a_seen_value_not_written_by_paystate_reads_as_junk_not_applied() {
        let junk = [
            &br#"{"stream":"PAYSTATE_COMMANDS","seq":7}"#[..],
            br#"{"error":{"code":503,"err_code":10077,"description":"x"}}"#,
            b"",
            b"\xff\xfe",
            b"12a",
            b"-3",
            b"123456789012345678901234567890",
        ];
        for v in junk {
            assert!(matches!(read_seen(v), SeenValue::Junk), "{v:?}");
        }
        assert!(matches!(read_seen(b"4711"), SeenValue::Legacy));
        let o = OrderId::parse("o-1").expect("id");
        let record = pin(&report(&o, &[]));
        let bytes = serde_json::to_vec(&record).expect("json");
        assert!(
            matches!(read_seen(&bytes), SeenValue::Record(r) if r.evidence_ref == record.evidence_ref && r.state == SeenState::Pending)
        );
    }

    #[test]
    fn rejections_split_into_later_and_never() {
        let later = |c, d| matches!(classify(c, String::new(), d), Landed::Later(_));
        assert!(later(RejectionCode::OrderNotFound, false));
        assert!(!later(RejectionCode::OrderNotFound, true));
        assert!(later(RejectionCode::Unavailable, false));
        assert!(!later(RejectionCode::ProviderMismatch, false));
        assert!(!later(RejectionCode::OrderHistoryFull, false));
        assert!(!later(RejectionCode::CommandTooLarge, false));
        assert!(!later(RejectionCode::IdempotencyKeyReused, false));
    }
}
