//! Reading an order's commits back, in order, and folding them.

use crate::batch_read::{self, DIRECT_BATCH_MAX};
use crate::Journal;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::RawMessageErrorKind;
use paystate_events::subjects::events_subject;
use paystate_events::{Commit, CommitHash, OrderId, OrderState, Timestamp};

/// Most commits read for one order (mirrors the engine's bound on commits per order).
pub const ORDER_COMMITS_READ_MAX: u64 = paystate_engine::COMMITS_PER_ORDER_MAX + 1;

/// One commit as stored.
#[derive(Debug, Clone)]
pub struct StoredCommit {
    pub sequence: u64,
    pub subject: String,
    /// The broker's store time.
    pub time: Timestamp,
    /// SHA-256 of the stored bytes (computed, not trusted from the header).
    pub hash: String,
    /// The hash header as written by the engine (`None` if absent).
    pub header_hash: Option<String>,
    pub commit: Commit,
}

/// An order folded from the log.
#[derive(Debug, Clone)]
pub struct LoadedOrder {
    /// `None` if the order has no commits.
    pub state: Option<OrderState>,
    /// The order subject's last stream sequence (0 if none): the expected sequence for the
    /// next append.
    pub last_seq: u64,
}

/// Commits read from an order's subject, and the last stream sequence seen on it.
#[derive(Debug, Clone)]
pub struct OrderTail {
    pub commits: Vec<StoredCommit>,
    pub last_seq: u64,
}

/// Why an order could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("order {order} commit at sequence {sequence} is unreadable: {detail}")]
    Corrupt {
        order: String,
        sequence: u64,
        detail: String,
    },
    #[error("order {0} has more commits than the bound")]
    TooLong(String),
}

impl Journal {
    /// Every commit of `order`, oldest first.
    pub async fn read_order(&self, order: &OrderId) -> Result<Vec<StoredCommit>, ReadError> {
        self.read_order_from(order, 1).await
    }

    /// The commits of `order` stored at stream sequence `from_seq` or later: the tail after a
    /// cached state. A write acknowledged before the read is seen (see
    /// [`Journal::read_order_tail`]).
    pub async fn read_order_from(
        &self,
        order: &OrderId,
        from_seq: u64,
    ) -> Result<Vec<StoredCommit>, ReadError> {
        Ok(self.read_order_tail(order, from_seq).await?.commits)
    }

    /// [`Journal::read_order_from`], with the subject's last stream sequence read (which is
    /// past the last commit when a quarantined message follows it: the next append must
    /// expect that sequence). A message that is not a commit fails the read unless an
    /// operator quarantined it ([`crate::quarantine`]), in which case it is skipped.
    ///
    /// Reads in batches ([`crate::batch_read`]): the leader's last sequence of the subject
    /// first (one request), then pages of up to [`DIRECT_BATCH_MAX`] messages by direct get,
    /// which any replica may answer; whatever a lagging replica did not return up to the
    /// leader's last sequence is read from the leader one message at a time. So a write
    /// acknowledged before the read is always seen, in a handful of round trips instead of
    /// one per commit.
    pub async fn read_order_tail(
        &self,
        order: &OrderId,
        from_seq: u64,
    ) -> Result<OrderTail, ReadError> {
        let subject = events_subject(order);
        let Some(leader_last) = self.last_sequence_of(&subject).await? else {
            return Ok(OrderTail {
                commits: Vec::new(),
                last_seq: from_seq.saturating_sub(1),
            });
        };
        let mut tail = TailReader::new(order, from_seq);
        let stream = self.events.cached_info().config.name.clone();
        let client = self.js.client();
        while tail.next_seq <= leader_last && tail.read < ORDER_COMMITS_READ_MAX {
            let want = (ORDER_COMMITS_READ_MAX - tail.read).min(DIRECT_BATCH_MAX as u64) as usize;
            let page = match batch_read::page(&client, &stream, &subject, tail.next_seq, want).await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(%order, error = %e, "batched read failed; reading from the leader");
                    break;
                }
            };
            let before = tail.next_seq;
            for msg in page.messages {
                tail.take(self, msg).await?;
            }
            if page.complete || tail.next_seq == before {
                break;
            }
        }
        // Anything a lagging replica (or a failed batch) left out, from the leader.
        while tail.next_seq <= leader_last {
            if tail.read >= ORDER_COMMITS_READ_MAX {
                return Err(ReadError::TooLong(order.to_string()));
            }
            match self.leader_next(&subject, tail.next_seq).await? {
                Some(msg) => tail.take(self, msg).await?,
                None => break,
            }
        }
        tail.finish()
    }

    /// The old read: one request to the leader per message (kept for `paystate bench`, which
    /// measures the batched read against it, and as the reference the tests compare with).
    pub async fn read_order_tail_one_by_one(
        &self,
        order: &OrderId,
        from_seq: u64,
    ) -> Result<OrderTail, ReadError> {
        let subject = events_subject(order);
        let mut tail = TailReader::new(order, from_seq);
        while tail.read < ORDER_COMMITS_READ_MAX {
            match self.leader_next(&subject, tail.next_seq).await? {
                Some(msg) => tail.take(self, msg).await?,
                None => return tail.finish(),
            }
        }
        Err(ReadError::TooLong(order.to_string()))
    }

    /// The subject's first message at `seq` or later, read from the stream leader.
    async fn leader_next(
        &self,
        subject: &str,
        seq: u64,
    ) -> Result<Option<StreamMessage>, ReadError> {
        let request = self
            .events
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(subject.to_string());
        match request.send().await {
            Ok(msg) => Ok(Some(msg)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ReadError::Broker(e.to_string())),
        }
    }

    /// The subject's last stream sequence according to the leader (`None`: no message).
    async fn last_sequence_of(&self, subject: &str) -> Result<Option<u64>, ReadError> {
        let request = self
            .events
            .raw_message_builder()
            .last_by_subject(subject.to_string());
        match request.send().await {
            Ok(msg) => Ok(Some(msg.sequence)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ReadError::Broker(e.to_string())),
        }
    }

    /// The order folded through the pure core, with the sequence to expect on the next append.
    pub async fn load(&self, order: &OrderId) -> Result<LoadedOrder, ReadError> {
        let tail = self.read_order_tail(order, 1).await?;
        Ok(LoadedOrder {
            state: fold(order, &tail.commits)?,
            last_seq: tail.last_seq,
        })
    }
}

/// The commits of one read, in order, with quarantined messages skipped.
struct TailReader<'a> {
    order: &'a OrderId,
    commits: Vec<StoredCommit>,
    next_seq: u64,
    last_seq: u64,
    /// Messages taken (commits and skipped ones), against [`ORDER_COMMITS_READ_MAX`].
    read: u64,
}

impl<'a> TailReader<'a> {
    fn new(order: &'a OrderId, from_seq: u64) -> Self {
        TailReader {
            order,
            commits: Vec::new(),
            next_seq: from_seq.max(1),
            last_seq: from_seq.saturating_sub(1),
            read: 0,
        }
    }

    /// Takes the next message of the subject: a commit, or a quarantined message (skipped);
    /// anything else fails the read. Messages before `next_seq` (a page overlapping what was
    /// read) are ignored.
    async fn take(&mut self, journal: &Journal, msg: StreamMessage) -> Result<(), ReadError> {
        let sequence = msg.sequence;
        if sequence < self.next_seq {
            return Ok(());
        }
        self.next_seq = sequence + 1;
        self.last_seq = sequence;
        self.read += 1;
        let stray = is_stray(Some(&msg.headers), &msg.payload);
        match decode_stored(self.order, msg) {
            Ok(c) => self.commits.push(c),
            Err(_) if stray => stray_skipped("read", &events_subject(self.order), sequence),
            Err(e) => {
                let skip = crate::quarantine::is_quarantined(&journal.js, self.order, sequence)
                    .await
                    .map_err(ReadError::Broker)?;
                if !skip {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<OrderTail, ReadError> {
        Ok(OrderTail {
            commits: self.commits,
            last_seq: self.last_seq,
        })
    }
}

/// Folds stored commits through `engine::apply_commit`, failing on a broken history.
pub fn fold(order: &OrderId, commits: &[StoredCommit]) -> Result<Option<OrderState>, ReadError> {
    let mut state = None;
    for c in commits {
        state = Some(
            paystate_engine::apply_commit(state, &c.commit, &c.hash).map_err(|e| {
                ReadError::Corrupt {
                    order: order.to_string(),
                    sequence: c.sequence,
                    detail: e.to_string(),
                }
            })?,
        );
    }
    Ok(state)
}

/// Records that `reader` skipped the stray at `sequence` on `subject` ([`is_stray`]): counted
/// in `paystate_log_strays_total` and logged as a warning (someone aimed at an order's log).
pub fn stray_skipped(reader: &str, subject: &str, sequence: u64) {
    metrics::counter!(paystate_events::metric_names::LOG_STRAYS_TOTAL).increment(1);
    tracing::warn!(
        reader,
        subject,
        sequence,
        "a message on an order's log that is not a commit and has no commit hash header (a \
         broker's answer sent there as a publish's reply subject?): skipped"
    );
}

/// Whether a message on an order's subject is a *stray*: it carries no `Paystate-Commit-Hash`
/// header ([`paystate_events::subjects::HASH_HEADER`]), which every append writes ([`crate::append`]), and its body is
/// not a commit. paystate did not write it: typically it is nats-server's answer to some
/// client's publish that named the order's subject as its reply subject (the broker sends it
/// on the account's behalf, past the client's permissions; docs/security.md). Readers skip
/// strays without an operator's quarantine: a stray applies nothing, and what could be a lost
/// commit (a body that reads as one, whatever its headers) is never a stray. The audit lists
/// strays as warnings. Only a message without the header is decoded here (the rare case).
pub fn is_stray(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> bool {
    let hashed = headers.and_then(crate::scan::hash_header).is_some();
    !hashed && crate::scan::decode_commit(payload).is_err()
}

/// Decodes a stored message into a commit, checking its hash header.
pub fn decode_stored(order: &OrderId, msg: StreamMessage) -> Result<StoredCommit, ReadError> {
    let corrupt = |detail: String| ReadError::Corrupt {
        order: order.to_string(),
        sequence: msg.sequence,
        detail,
    };
    let commit = crate::scan::decode_commit(&msg.payload).map_err(|e| corrupt(e.to_string()))?;
    let hash = CommitHash::of(&msg.payload).0;
    let header_hash = crate::scan::hash_header(&msg.headers).map(str::to_string);
    if header_hash.as_deref() != Some(hash.as_str()) {
        return Err(corrupt(format!(
            "hash header {header_hash:?} does not match the body's hash {hash}"
        )));
    }
    Ok(StoredCommit {
        sequence: msg.sequence,
        subject: msg.subject.to_string(),
        time: to_chrono(msg.time),
        hash,
        header_hash,
        commit,
    })
}

/// Whether a message get failed because there is no message there (not broker trouble).
pub fn is_no_message(e: &async_nats::jetstream::stream::LastRawMessageError) -> bool {
    use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
    match e.kind() {
        K::NoMessageFound => true,
        // Why: 10037 is JetStream's "no message found"; some paths report it as an API error.
        K::JetStream(j) => j.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND,
        _ => false,
    }
}

/// Converts the broker's timestamp.
pub fn to_chrono(t: time::OffsetDateTime) -> Timestamp {
    let nanos = t.unix_timestamp_nanos();
    chrono::DateTime::from_timestamp(
        (nanos / 1_000_000_000) as i64,
        (nanos % 1_000_000_000) as u32,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod stray_tests {
    use super::*;
    use crate::EncodedCommit;
    use paystate_events::command::{money, CaptureMode, Command, CommandEnvelope};
    use paystate_events::subjects::HASH_HEADER;
    use paystate_events::{CommandId, Provider};
    use proptest::prelude::*;

    /// A real first commit's bytes, as the engine writes them.
    fn commit_bytes() -> Vec<u8> {
        let order = OrderId::parse("o-stray").expect("order id");
        let env = CommandEnvelope {
            command_id: CommandId::parse("c-1").expect("command id"),
            order_id: order,
            issued_at: chrono::Utc::now(),
            command: Command::CreateOrder {
                merchant_reference: "m-1".into(),
                amount: money(1_000, "EUR").expect("money"),
                provider: Provider::Plexy,
                capture_mode: CaptureMode::Manual,
                expires_at: None,
                merchant_account: None,
                metadata: Default::default(),
            },
        };
        let events = match paystate_engine::decide(None, &env, env.issued_at) {
            Ok(paystate_engine::Decision::Commit(events)) => events,
            other => panic!("not a commit: {other:?}"),
        };
        let fingerprint = env.fingerprint();
        let at = env.issued_at;
        EncodedCommit::new(Commit::after(None, env, fingerprint, at, events)).bytes
    }

    fn hashed() -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(HASH_HEADER, "0".repeat(64).as_str());
        h
    }

    #[test]
    fn a_brokers_answer_without_the_hash_header_is_a_stray() {
        let ack = br#"{"stream":"PAYSTATE_EVENTS","seq":7}"#;
        assert!(is_stray(None, ack));
        assert!(is_stray(Some(&async_nats::HeaderMap::new()), ack));
        let mut other = async_nats::HeaderMap::new();
        other.insert("Nats-Stream", "KV_paystate_outcomes");
        assert!(is_stray(Some(&other), br#"{"outcome":"rejected"}"#));
    }

    #[test]
    fn a_message_with_the_hash_header_is_never_a_stray() {
        assert!(!is_stray(Some(&hashed()), b"not a commit"));
        assert!(!is_stray(Some(&hashed()), &commit_bytes()));
    }

    #[test]
    fn a_commit_without_its_header_is_never_a_stray() {
        // Could be a lost commit: an operator decides (quarantine refuses valid commits).
        assert!(!is_stray(None, &commit_bytes()));
    }

    proptest! {
        #[test]
        fn without_the_header_any_bytes_are_a_stray_unless_they_read_as_a_commit(
            body in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            prop_assert_eq!(is_stray(None, &body), crate::scan::decode_commit(&body).is_err());
            prop_assert!(!is_stray(Some(&hashed()), &body));
        }
    }
}
