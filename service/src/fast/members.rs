//! Which engine instances are alive, and which fast-path partitions this one serves.
//!
//! Every instance puts its id in [`ENGINES_BUCKET`] every [`HEARTBEAT_INTERVAL`] and watches
//! the bucket. A member is live while its last heartbeat was received less than
//! [`MEMBER_LEASE`] ago (this instance's clock of receipt, so clocks need not agree); a clean
//! stop deletes its key, which every watcher sees at once. The owner of partition `p` is the
//! live member with the highest [`score`] of `(member, p)` (rendezvous hashing): a member
//! coming or going moves only its own share of the partitions.

use super::endpoints::Served;
use super::{
    ENGINES_BUCKET_MAX_AGE, HEARTBEAT_INTERVAL, MEMBERSHIP_SETTLE_MAX, MEMBER_LEASE,
    RECONCILE_INTERVAL,
};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use paystate_events::subjects::{ENGINES_BUCKET, RPC_PARTITIONS};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::watch;
use tokio::time::{interval, Instant, MissedTickBehavior};

/// Length of a member id: a v4 UUID in simple form (32 lowercase hex digits).
const MEMBER_ID_LEN: usize = 32;

/// A new instance's member id, the key of its heartbeats: a v4 UUID in simple form.
pub fn new_member_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether a bucket entry is a member's heartbeat: a key of the form [`new_member_id`]
/// writes, holding an RFC 3339 time as [`beat`] writes it. Why both: the broker stores its
/// own answer to a publish (PubAck or error JSON) at any key a client names as its reply
/// subject (`$KV.paystate_engines.<key>`, docs/security.md "Known limits"); such an entry
/// must not become a member (rendezvous hashing would give partitions to an instance that
/// does not exist), so a value that does not decode is read as absent.
pub fn is_heartbeat(key: &str, value: &[u8]) -> bool {
    let member_id = key.len() == MEMBER_ID_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    member_id
        && std::str::from_utf8(value)
            .is_ok_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok())
}

/// The members this instance knows of, by when their last heartbeat arrived.
#[derive(Debug)]
pub struct Members {
    me: String,
    seen: HashMap<String, Instant>,
}

impl Members {
    pub fn new(me: String) -> Members {
        Members {
            me,
            seen: HashMap::new(),
        }
    }

    /// A heartbeat of `member` arrived (`at`: when, on this instance's clock).
    pub fn saw(&mut self, member: &str, at: Instant) {
        match self.seen.get_mut(member) {
            Some(last) => *last = (*last).max(at),
            None => {
                self.seen.insert(member.to_string(), at);
            }
        }
    }

    /// `member` stopped cleanly (its key was deleted).
    pub fn left(&mut self, member: &str) {
        self.seen.remove(member);
    }

    /// Forgets members unseen for [`MEMBER_LEASE`] at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.seen
            .retain(|_, last| now.saturating_duration_since(*last) < MEMBER_LEASE);
    }

    /// The live members, this instance always among them (it serves while it runs).
    pub fn live(&self) -> Vec<&str> {
        let mut live: Vec<&str> = self.seen.keys().map(String::as_str).collect();
        if !self.seen.contains_key(&self.me) {
            live.push(&self.me);
        }
        live.sort_unstable();
        live
    }

    /// The partitions this instance owns among the live members.
    pub fn owned(&self) -> BTreeSet<usize> {
        owned_by(&self.me, &self.live())
    }
}

/// The rendezvous score of `member` for `partition`: the first 8 bytes of
/// SHA-256(`member` `.` `partition`), so every instance computes the same owner.
pub fn score(member: &str, partition: usize) -> u64 {
    let digest = Sha256::new()
        .chain_update(member.as_bytes())
        .chain_update(b".")
        .chain_update(partition.to_string().as_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// The owner of `partition` among `members`: highest score, ties broken by the id.
pub fn owner<'a>(members: &[&'a str], partition: usize) -> Option<&'a str> {
    members
        .iter()
        .copied()
        .max_by_key(|m| (score(m, partition), *m))
}

/// The partitions `me` owns among `members`.
pub fn owned_by(me: &str, members: &[&str]) -> BTreeSet<usize> {
    (0..RPC_PARTITIONS)
        .filter(|p| owner(members, *p) == Some(me))
        .collect()
}

/// Heartbeats, membership and endpoints until `shutdown`; then the endpoints stop and this
/// instance's key is deleted so the others take its partitions at once.
pub(crate) async fn run(
    client: async_nats::Client,
    replicas: usize,
    me: String,
    mut served: Served,
    mut shutdown: watch::Receiver<bool>,
) {
    let js = jetstream::new(client);
    let mut members = Members::new(me.clone());
    let mut bucket: Option<kv::Store> = None;
    let mut watcher: Option<kv::Watch> = None;
    // Until the watch has replayed the bucket, this instance knows only itself and would
    // claim every partition; it waits (bounded) for the others first.
    let mut settled = false;
    // While the watch replays the bucket (after it opens), entries are dated by when they
    // were written; afterwards by their receipt.
    let mut replaying = false;
    let started = Instant::now();
    let mut heartbeat = interval(HEARTBEAT_INTERVAL);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reconcile = interval(RECONCILE_INTERVAL);
    reconcile.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = heartbeat.tick() => {
                let reopened = bucket.is_none();
                beat(&js, replicas, &me, &mut bucket).await;
                // A bucket opened anew (first beat, or re-created after a server restart)
                // gets a new watch: the old one watched a stream that is gone.
                if watcher.is_none() || (reopened && bucket.is_some()) {
                    watcher = open_watch(bucket.as_ref()).await;
                    replaying = watcher.is_some();
                }
            }
            _ = reconcile.tick() => {
                members.expire(Instant::now());
                if settled || started.elapsed() >= MEMBERSHIP_SETTLE_MAX {
                    served.reconcile(members.owned()).await;
                }
            }
            entry = next_entry(&mut watcher) => match entry {
                Some(Ok(entry)) => {
                    apply(&mut members, &entry, !replaying);
                    if entry.delta == 0 {
                        replaying = false;
                        settled = true;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "engines watch failed; re-opening it");
                    watcher = None;
                }
                None => watcher = None,
            },
        }
    }
    served.stop().await;
    if let Some(kv) = bucket {
        if let Err(e) = kv.delete(&me).await {
            tracing::warn!(error = %e, "could not remove this instance from the engines bucket; it is dropped after the lease");
        }
    }
}

/// Writes this instance's heartbeat, opening (or creating) the bucket first if needed. A
/// failure is logged and the instance goes on serving what it has (see the module docs).
async fn beat(js: &jetstream::Context, replicas: usize, me: &str, bucket: &mut Option<kv::Store>) {
    if bucket.is_none() {
        *bucket = match open_bucket(js, replicas).await {
            Ok(kv) => Some(kv),
            Err(e) => {
                tracing::warn!(error = %e, "engines bucket not available; serving the partitions held");
                return;
            }
        };
    }
    let Some(kv) = bucket.as_ref() else {
        return;
    };
    let now = chrono::Utc::now().to_rfc3339();
    if let Err(e) = kv.put(me, now.into_bytes().into()).await {
        tracing::warn!(error = %e, "heartbeat not written; serving the partitions held");
        // The bucket may be gone (memory storage does not survive a server restart): open or
        // create it again on the next beat, or every later heartbeat fails the same way and
        // the instances lose sight of each other for good.
        *bucket = None;
    }
}

async fn open_bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(ENGINES_BUCKET).await {
        return Ok(kv);
    }
    js.create_key_value(kv::Config {
        bucket: ENGINES_BUCKET.to_string(),
        history: 1,
        max_age: ENGINES_BUCKET_MAX_AGE,
        // Heartbeats need not survive a server restart: the next one comes within a second.
        storage: jetstream::stream::StorageType::Memory,
        num_replicas: replicas,
        description: "paystate: live engine instances (fast-path partition owners)".into(),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

async fn open_watch(bucket: Option<&kv::Store>) -> Option<kv::Watch> {
    // The last heartbeat of every key first (the members so far), then every change.
    match bucket?.watch_with_history(">").await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the engines bucket; retrying");
            None
        }
    }
}

async fn next_entry(
    watcher: &mut Option<kv::Watch>,
) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match watcher {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Folds one bucket entry into the members; a put that is not a heartbeat ([`is_heartbeat`])
/// is ignored. Entries replayed when the watch opens may be old: they count from when they
/// were written (bounded by the lease), so a crashed instance's last heartbeat does not look
/// fresh; live ones count from their receipt.
fn apply(members: &mut Members, entry: &kv::Entry, live: bool) {
    match entry.operation {
        // Neither refreshes nor removes a member whose key it took: that member's next
        // heartbeat (within a second) is read as usual.
        kv::Operation::Put if !is_heartbeat(&entry.key, &entry.value) => {
            if let Some(not_logged) = crate::telemetry::bad_input_warning() {
                tracing::warn!(key = %entry.key, earlier_not_logged = not_logged, "engines bucket entry is not a heartbeat; ignored");
            }
        }
        kv::Operation::Put => {
            let now = Instant::now();
            let at = if live {
                now
            } else {
                let age = time::OffsetDateTime::now_utc() - entry.created;
                let age = std::time::Duration::try_from(age)
                    .unwrap_or_default()
                    .min(MEMBER_LEASE);
                now.checked_sub(age).unwrap_or(now)
            };
            members.saw(&entry.key, at);
        }
        kv::Operation::Delete | kv::Operation::Purge => members.left(&entry.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What the broker stores at a key named as a publish's reply subject: its PubAck, or
    /// its error, as JSON.
    const JUNK: [&[u8]; 5] = [
        br#"{"stream":"KV_paystate_engines","seq":5}"#,
        br#"{"stream":"KV_paystate_engines","domain":"hub","seq":7,"duplicate":true}"#,
        br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        b"",
        b"\xff\xfe2026-11-22T10:00:00Z",
    ];

    fn entry(key: &str, value: &[u8], operation: kv::Operation) -> kv::Entry {
        kv::Entry {
            bucket: ENGINES_BUCKET.to_string(),
            key: key.to_string(),
            value: bytes::Bytes::copy_from_slice(value),
            revision: 1,
            delta: 0,
            created: time::OffsetDateTime::now_utc(),
            operation,
            seen_current: true,
        }
    }

    fn heartbeat_now() -> Vec<u8> {
        chrono::Utc::now().to_rfc3339().into_bytes()
    }

    #[test]
    fn only_a_timestamp_at_a_member_id_is_a_heartbeat() {
        let id = new_member_id();
        assert!(is_heartbeat(&id, &heartbeat_now()), "what beat writes");
        assert!(is_heartbeat(&id, b"2026-11-22T10:00:00.123+02:00"));
        for junk in JUNK {
            assert!(
                !is_heartbeat(&id, junk),
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
        assert!(!is_heartbeat(&id, b"2026-11-22 10:00:00"), "not RFC 3339");
        for key in [
            "ghost1",
            "",
            &id.to_uppercase(),
            &id[1..],
            &format!("{id}0"),
        ] {
            assert!(!is_heartbeat(key, &heartbeat_now()), "key {key:?}");
        }
    }

    #[test]
    fn junk_puts_never_become_members_nor_touch_real_ones() {
        // Given this instance and one real member ...
        let (me, other) = (new_member_id(), new_member_id());
        let mut members = Members::new(me.clone());
        apply(
            &mut members,
            &entry(&other, &heartbeat_now(), kv::Operation::Put),
            true,
        );
        let before = members.seen.clone();
        assert_eq!(members.live().len(), 2);
        // ... when the broker stores junk at ghost keys, at member-like keys and at the real
        // member's own key, replayed or live ...
        for (i, junk) in JUNK.iter().enumerate() {
            for key in [
                format!("ghost{i}"),
                new_member_id(),
                other.clone(),
                me.clone(),
            ] {
                for live in [false, true] {
                    apply(&mut members, &entry(&key, junk, kv::Operation::Put), live);
                }
            }
        }
        // ... then the members are exactly as before, none refreshed (so the real one still
        // expires on its lease if its heartbeats stop) and none removed.
        assert_eq!(members.seen, before);
        let mut live = vec![me.as_str(), other.as_str()];
        live.sort_unstable();
        assert_eq!(members.live(), live);
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let members = ["a", "b", "c"];
        let mut total = 0;
        for m in members {
            let mine = owned_by(m, &members);
            assert!(!mine.is_empty(), "{m} owns something of 64");
            total += mine.len();
        }
        assert_eq!(total, RPC_PARTITIONS);
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_partitions() {
        let before = ["a", "b", "c"];
        let after = ["a", "c"];
        for p in 0..RPC_PARTITIONS {
            let was = owner(&before, p);
            if was != Some("b") {
                assert_eq!(owner(&after, p), was, "partition {p}");
            }
        }
    }

    #[test]
    fn members_expire_after_the_lease_and_self_stays() {
        let mut m = Members::new("me".into());
        let t0 = Instant::now();
        m.saw("other", t0);
        assert_eq!(m.live(), vec!["me", "other"]);
        m.expire(t0 + MEMBER_LEASE - Duration::from_millis(1));
        assert_eq!(m.live().len(), 2);
        m.expire(t0 + MEMBER_LEASE);
        assert_eq!(m.live(), vec!["me"]);
        assert_eq!(m.owned().len(), RPC_PARTITIONS);
        m.saw("other", t0);
        m.left("other");
        assert_eq!(m.live(), vec!["me"]);
    }
}
