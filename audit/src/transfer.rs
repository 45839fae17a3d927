//! Export and import of the log as JSON Lines, one message per line:
//!
//! ```text
//! {"sequence":12,"subject":"paystate.events.o-1","time":"...","headers":{"Paystate-Commit-Hash":["..."]},"body":{...the commit, byte for byte...}}
//! ```
//!
//! `body` is the stored bytes verbatim (a JSON commit), so hashes still match after the trip;
//! a body that is not single-line JSON is carried as `body_base64` instead. Import verifies
//! every order's hash chain over the whole file first and refuses a broken one, then loads
//! into an empty stream in file order (each publish expects the stream's previous sequence,
//! so nothing can interleave), preserving per-order order and chains.
//!
//! Export leaves out what no reader applies: strays (a broker's answer stored on an order's
//! log, [`paystate_journal::read::is_stray`]) and messages an operator quarantined that do not
//! decode; it counts them ([`TransferSummary::skipped_strays`],
//! [`TransferSummary::skipped_quarantined`]) and logs a warning. Both are skipped by every
//! reader and never part of a chain, so the imported log folds and audits the same, only
//! without them (its stream sequences are renumbered from 1 in file order). Any other message
//! that is not a commit is exported and refuses the import: a person decides about it first.
//! Only lines on the log's subjects (`paystate.events.<order>`) are imported.

use crate::AuditError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use base64::Engine as _;
use paystate_events::commit::GENESIS_HASH;
use paystate_events::subjects::{order_token, EVENTS_PREFIX};
use paystate_events::{Commit, CommitHash, OrderId, Timestamp};
use paystate_journal::{Journal, RawEntry, ScanOptions};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, Write};

/// Publishes in flight during an import.
const IMPORT_WINDOW_MAX: usize = 1024;
/// Longest line accepted on import (the stream's message limit plus headers and framing).
pub const LINE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Headers never copied on import: they are the exporter's publish conditions.
const SKIPPED_HEADERS: [&str; 4] = [
    "Nats-Expected-Last-Sequence",
    "Nats-Expected-Last-Subject-Sequence",
    "Nats-Expected-Stream",
    "Nats-Expected-Last-Msg-Id",
];

/// One exported message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line {
    pub sequence: u64,
    pub subject: String,
    pub time: Timestamp,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl Line {
    fn of(entry: &RawEntry) -> Line {
        let mut headers = BTreeMap::new();
        if let Some(h) = &entry.headers {
            for (name, values) in h.iter() {
                headers.insert(
                    name.to_string(),
                    values.iter().map(|v| v.as_str().to_string()).collect(),
                );
            }
        }
        let verbatim = (!entry.payload.contains(&b'\n'))
            .then(|| std::str::from_utf8(&entry.payload).ok())
            .flatten()
            .and_then(|text| RawValue::from_string(text.to_string()).ok())
            .filter(|raw| raw.get().as_bytes() == &entry.payload[..]);
        let body_base64 = verbatim
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(&entry.payload));
        Line {
            sequence: entry.sequence,
            subject: entry.subject.to_string(),
            time: entry.time,
            headers,
            body: verbatim,
            body_base64,
        }
    }

    /// The stored bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.body, &self.body_base64) {
            (Some(raw), _) => Ok(raw.get().as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| e.to_string()),
            (None, None) => Err("no body".into()),
        }
    }
}

/// Which part of the log to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    /// Store time at or after.
    pub since: Option<Timestamp>,
    /// Store time strictly before.
    pub until: Option<Timestamp>,
    /// Only these orders (all when empty).
    pub orders: Vec<OrderId>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferSummary {
    pub messages: u64,
    pub orders: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Export: strays left out (not commits, no commit hash header: a broker's answer).
    pub skipped_strays: u64,
    /// Export: quarantined messages left out (not commits, set aside by an operator).
    pub skipped_quarantined: u64,
}

/// Why export leaves a message out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skipped {
    /// Not a commit and without the commit hash header: paystate did not write it.
    Stray,
    /// Not a commit, and an operator's decision sets it aside.
    Quarantined,
}

/// Whether export leaves `entry` out (see the module docs): what every reader skips.
fn skipped(entry: &RawEntry, quarantined: &HashSet<(String, u64)>) -> Option<Skipped> {
    if entry.is_stray() {
        return Some(Skipped::Stray);
    }
    let order = entry.subject_order()?;
    let set_aside = quarantined.contains(&(order.to_string(), entry.sequence))
        && paystate_journal::scan::decode_commit(&entry.payload).is_err();
    set_aside.then_some(Skipped::Quarantined)
}

/// The order token of a subject of the log (`paystate.events.<order>`); `None` for any
/// other subject (commands, signals, operator commands are not the log).
fn log_order(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(EVENTS_PREFIX)?
        .strip_prefix('.')
        .filter(|t| !t.is_empty() && !t.contains('.'))
}

/// Writes the selected messages as JSON Lines, leaving out strays and quarantined messages
/// (counted in the summary). `progress` gets (messages read, in snapshot).
pub async fn export(
    journal: &Journal,
    filter: &ExportFilter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<TransferSummary, AuditError> {
    let single = (filter.orders.len() == 1).then(|| filter.orders[0].clone());
    let wanted: HashSet<&str> = filter.orders.iter().map(|o| o.as_str()).collect();
    let opts = ScanOptions {
        from_seq: filter.from_seq.unwrap_or(1),
        order: single,
        ..ScanOptions::default()
    };
    let quarantined = paystate_journal::quarantine::all(journal.context())
        .await
        .map_err(AuditError::Broker)?;
    let mut scan = journal.scan(opts).await?;
    let (mut summary, mut read, mut orders) = (TransferSummary::default(), 0u64, HashSet::new());
    while let Some(entry) = scan.next().await {
        let entry = entry?;
        read += 1;
        if read.is_multiple_of(4096) {
            progress(read, scan.messages_total);
        }
        if filter.to_seq.is_some_and(|to| entry.sequence > to) {
            break;
        }
        let in_time = filter.since.is_none_or(|t| entry.time >= t)
            && filter.until.is_none_or(|t| entry.time < t);
        let in_orders =
            wanted.is_empty() || entry.subject_order().is_some_and(|o| wanted.contains(o));
        if !(in_time && in_orders) {
            continue;
        }
        if let Some(why) = skipped(&entry, &quarantined) {
            match why {
                Skipped::Stray => summary.skipped_strays += 1,
                Skipped::Quarantined => summary.skipped_quarantined += 1,
            }
            continue;
        }
        serde_json::to_writer(&mut *out, &Line::of(&entry))
            .map_err(|e| AuditError::Io(e.to_string()))?;
        out.write_all(b"\n")
            .map_err(|e| AuditError::Io(e.to_string()))?;
        if summary.messages == 0 {
            summary.first_seq = entry.sequence;
        }
        summary.messages += 1;
        summary.last_seq = entry.sequence;
        orders.insert(entry.subject_order().unwrap_or_default().to_string());
    }
    out.flush().map_err(|e| AuditError::Io(e.to_string()))?;
    progress(read, scan.messages_total);
    summary.orders = orders.len() as u64;
    if summary.skipped_strays + summary.skipped_quarantined > 0 {
        tracing::warn!(
            strays = summary.skipped_strays,
            quarantined = summary.skipped_quarantined,
            "export left out {} strays and {} quarantined messages (not commits; every reader \
             skips them)",
            summary.skipped_strays,
            summary.skipped_quarantined
        );
    }
    Ok(summary)
}

/// Checks every line of an export: readable, on the log (`paystate.events.<order>`), hash
/// header = body hash, subject = order, and each order's commits numbered from 1 and
/// hash-chained. Returns the summary or the first problem (line number, order, sequence).
pub fn verify_file(input: &mut dyn BufRead) -> Result<TransferSummary, AuditError> {
    let mut heads: HashMap<String, (u64, String)> = HashMap::new();
    let mut summary = TransferSummary::default();
    let mut last_seq = 0u64;
    for_each_line(input, |n, line| {
        let bytes = line.body_bytes().map_err(|e| refused(n, &line, e))?;
        let token = log_order(&line.subject)
            .ok_or_else(|| refused(n, &line, "not a subject of the log".into()))?;
        let commit = Commit::decode(&bytes).map_err(|e| refused(n, &line, e.to_string()))?;
        let hash = CommitHash::of(&bytes).0;
        let header = line
            .headers
            .get(paystate_events::subjects::HASH_HEADER)
            .and_then(|v| v.first());
        if header != Some(&hash) {
            return Err(refused(
                n,
                &line,
                format!("hash header {header:?} does not match the body's hash {hash}"),
            ));
        }
        if commit.order_id.as_str() != token {
            return Err(refused(
                n,
                &line,
                format!(
                    "commit of order {} under subject {}",
                    commit.order_id, line.subject
                ),
            ));
        }
        if line.sequence <= last_seq {
            return Err(refused(
                n,
                &line,
                format!(
                    "sequence {} after {last_seq}: lines out of order",
                    line.sequence
                ),
            ));
        }
        let (prev_commit, prev_hash) = heads
            .get(token)
            .cloned()
            .unwrap_or((0, GENESIS_HASH.to_string()));
        if commit.commit != prev_commit + 1 || commit.prev_hash != prev_hash {
            let detail = format!("commit {} (prev_hash {}) does not continue commit {prev_commit} (hash {prev_hash}): the chain is broken", commit.commit, commit.prev_hash);
            return Err(refused(n, &line, detail));
        }
        heads.insert(token.to_string(), (commit.commit, hash));
        if summary.messages == 0 {
            summary.first_seq = line.sequence;
        }
        summary.messages += 1;
        summary.last_seq = line.sequence;
        last_seq = line.sequence;
        Ok(())
    })?;
    summary.orders = heads.len() as u64;
    Ok(summary)
}

/// Loads a verified export into the (empty) log stream in file order.
pub async fn import(
    journal: &Journal,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, AuditError> {
    let info = journal
        .stream()
        .get_info()
        .await
        .map_err(|e| AuditError::Broker(e.to_string()))?;
    if info.state.messages > 0 {
        return Err(AuditError::NotEmpty {
            stream: info.config.name,
            messages: info.state.messages,
        });
    }
    let mut expected_last = info.state.last_sequence;
    let js = journal.context().clone();
    let mut inflight = VecDeque::new();
    let mut published = 0u64;
    let mut reader = LineReader::default();
    while let Some((n, line)) = reader.next(input)? {
        if log_order(&line.subject).is_none() {
            return Err(refused(n, &line, "not a subject of the log".into()));
        }
        let bytes = line.body_bytes().map_err(|e| refused(n, &line, e))?;
        let mut headers = HeaderMap::new();
        for (name, values) in line
            .headers
            .iter()
            .filter(|(k, _)| !SKIPPED_HEADERS.contains(&k.as_str()))
        {
            for v in values {
                headers.append(name.as_str(), v.as_str());
            }
        }
        let publish = PublishMessage::build()
            .payload(bytes.into())
            .headers(headers)
            .expected_last_sequence(expected_last);
        if inflight.len() >= IMPORT_WINDOW_MAX {
            if let Some(ack) = inflight.pop_front() {
                wait_ack(ack).await?;
            }
        }
        inflight.push_back(
            js.send_publish(line.subject.clone(), publish)
                .await
                .map_err(|e| AuditError::Broker(e.to_string()))?,
        );
        expected_last += 1;
        published += 1;
        if published.is_multiple_of(4096) {
            progress(published);
        }
    }
    while let Some(ack) = inflight.pop_front() {
        wait_ack(ack).await?;
    }
    progress(published);
    Ok(published)
}

async fn wait_ack(ack: async_nats::jetstream::context::PublishAckFuture) -> Result<(), AuditError> {
    ack.await.map(|_| ()).map_err(|e| {
        AuditError::Broker(format!(
            "import interrupted (delete the stream and import again): {e}"
        ))
    })
}

fn for_each_line(
    input: &mut dyn BufRead,
    mut f: impl FnMut(u64, Line) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let mut reader = LineReader::default();
    while let Some((n, line)) = reader.next(input)? {
        f(n, line)?;
    }
    Ok(())
}

/// Reads export lines one at a time (never the whole file).
#[derive(Default)]
struct LineReader {
    buf: String,
    n: u64,
}

impl LineReader {
    fn next(&mut self, input: &mut dyn BufRead) -> Result<Option<(u64, Line)>, AuditError> {
        loop {
            self.buf.clear();
            let read = input
                .read_line(&mut self.buf)
                .map_err(|e| AuditError::Io(e.to_string()))?;
            if read == 0 {
                return Ok(None);
            }
            self.n += 1;
            let n = self.n;
            if read > LINE_BYTES_MAX {
                return Err(AuditError::Refused {
                    line: n,
                    order: None,
                    sequence: None,
                    detail: format!("line longer than {LINE_BYTES_MAX} bytes"),
                });
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&self.buf).map_err(|e| AuditError::Refused {
                line: n,
                order: None,
                sequence: None,
                detail: format!("not an export line: {e}"),
            })?;
            return Ok(Some((n, line)));
        }
    }
}

fn refused(n: u64, line: &Line, detail: String) -> AuditError {
    AuditError::Refused {
        line: n,
        order: order_token(&line.subject).map(str::to_string),
        sequence: Some(line.sequence),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystate_events::samples;
    use paystate_events::subjects::HASH_HEADER;

    /// A real first commit of `order`, as the engine writes it: (bytes, hash).
    fn first_commit(order: &OrderId) -> (Vec<u8>, String) {
        let env = samples::envelope(order, "c-1", samples::create(1_000));
        let at = env.issued_at;
        let events = match paystate_engine::decide(None, &env, at) {
            Ok(paystate_engine::Decision::Commit(events)) => events,
            other => panic!("not a commit: {other:?}"),
        };
        let fingerprint = env.fingerprint();
        let bytes = Commit::after(None, env, fingerprint, at, events).encode();
        let hash = CommitHash::of(&bytes).0;
        (bytes, hash)
    }

    fn line(subject: &str, bytes: &[u8], hash: &str) -> String {
        let body = std::str::from_utf8(bytes).expect("utf-8");
        format!(
            r#"{{"sequence":1,"subject":"{subject}","time":"2026-11-22T10:00:00Z","headers":{{"{HASH_HEADER}":["{hash}"]}},"body":{body}}}"#
        )
    }

    fn entry(headers: Option<HeaderMap>, payload: &[u8]) -> RawEntry {
        RawEntry {
            sequence: 7,
            subject: "paystate.events.o-1".into(),
            time: samples::instant(),
            headers,
            payload: bytes::Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn only_lines_on_the_log_are_imported() {
        let order = OrderId::parse("o-1").expect("order");
        let (bytes, hash) = first_commit(&order);
        let on_log = line("paystate.events.o-1", &bytes, &hash);
        let summary = verify_file(&mut on_log.as_bytes()).expect("a commit on the log");
        assert_eq!((summary.messages, summary.orders), (1, 1));
        for subject in [
            "paystate.cmd.o-1",
            "paystate.signal.o-1",
            "paystate.op.o-1",
            "paystate.events",
            "paystate.eventsx.o-1",
            "paystate.events.o-1.x",
        ] {
            let text = line(subject, &bytes, &hash);
            let refused = verify_file(&mut text.as_bytes());
            assert!(
                matches!(&refused, Err(AuditError::Refused { detail, .. }) if detail.contains("not a subject of the log")),
                "{subject}: {refused:?}"
            );
        }
    }

    #[test]
    fn export_leaves_out_strays_and_quarantined_messages_only() {
        let order = OrderId::parse("o-1").expect("order");
        let (bytes, hash) = first_commit(&order);
        let mut hashed = HeaderMap::new();
        hashed.insert(HASH_HEADER, hash.as_str());
        let none = HashSet::new();
        let set_aside: HashSet<(String, u64)> = [("o-1".to_string(), 7)].into();
        let pub_ack = br#"{"stream":"PAYSTATE_COMMANDS","seq":5}"#;
        assert_eq!(skipped(&entry(None, pub_ack), &none), Some(Skipped::Stray));
        let broken = entry(Some(hashed.clone()), b"not a commit");
        assert_eq!(
            skipped(&broken, &none),
            None,
            "refused at import, not hidden"
        );
        assert_eq!(skipped(&broken, &set_aside), Some(Skipped::Quarantined));
        let commit = entry(Some(hashed), &bytes);
        assert_eq!(skipped(&commit, &none), None);
        assert_eq!(
            skipped(&commit, &set_aside),
            None,
            "a commit is never left out"
        );
        assert_eq!(skipped(&entry(None, &bytes), &set_aside), None);
    }
}
