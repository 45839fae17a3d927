//! Row 9, a cache-miss load: one order with [`COMMITS`] commits (128-character command ids)
//! read back and folded, as the engine does when the order is not in its cache. Measured
//! side by side in the same run: the old read (one request to the leader per commit), the
//! batched read of the whole order (what workers and duplicates use), and the engine's load:
//! its latest snapshot plus the commits after it in one batch.

use super::table::Row;
use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::limits::COMMAND_ID_LEN_MAX;
use paystate_events::subjects::{events_subject, COMMIT_HEADER, HASH_HEADER};
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, OrderId, OrderState, Provider,
    ProviderSignal, SignalKind,
};
use paystate_journal::{EncodedCommit, Journal, LogSettings};
use paystate_service::outcomes::Outcomes;
use paystate_service::snapshots::{self, SNAPSHOT_EVERY_COMMITS};
use std::time::{Duration, Instant};

/// Commits of the order loaded.
pub const COMMITS: u64 = 1_000;
/// Goal: the batched load at least this many times faster than one request per commit.
pub const GOAL_RATIO: f64 = 20.0;

/// The three rows: the old read (yardstick), the batched read of the whole order, and what
/// the engine does on a cache miss: its latest snapshot plus the commits after it.
pub async fn rows(url: &str, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let nats = paystate_service::connect(url, "paystate-bench-cache-miss")
        .await
        .map_err(anyhow::Error::msg)?;
    let js = async_nats::jetstream::new(nats);
    let journal = Journal::open(js.clone(), &LogSettings::default()).await?;
    let outcomes = Outcomes::open(&js, 1).await.map_err(anyhow::Error::msg)?;
    let order = OrderId::parse(format!("bench-load-{}", uuid::Uuid::new_v4().simple()))?;
    // The engine snapshots every SNAPSHOT_EVERY_COMMITS: on average half that many follow.
    let snapshot_at = COMMITS - SNAPSHOT_EVERY_COMMITS / 2;
    let (snapshot, commit_seq) = fill(&js, &order, COMMITS, snapshot_at).await?;
    snapshots::put(&outcomes, commit_seq, &snapshot).await?;
    let (old_per_s, old_n) = measure(budget, || async {
        let tail = journal.read_order_tail_one_by_one(&order, 1).await?;
        check(paystate_journal::read::fold(&order, &tail.commits)?)
    })
    .await?;
    let (batched_per_s, batched_n) = measure(budget, || async {
        check(journal.load(&order).await?.state)
    })
    .await?;
    let (new_per_s, new_n) = measure(budget, || async {
        check(snapshots::load(&journal, &outcomes, &order).await?.state)
    })
    .await?;
    let old = Row::new(
        "cache_miss_load_one_by_one",
        9,
        "cache-miss load, 1/commit",
        old_per_s,
        "load/s",
    )
    .detail(format!(
        "an order with {COMMITS} commits (128-character ids), one request per commit (the old read) and folded: {old_n} loads, {:.1} ms each",
        1_000.0 / old_per_s
    ));
    let batched = Row::new(
        "cache_miss_load_batched",
        9,
        "cache-miss load, batched",
        batched_per_s,
        "load/s",
    )
    .against("cache-miss 1/commit", old_per_s)
    .detail(format!(
        "the whole order in batches (direct get) and folded: {batched_n} loads, {:.2} ms each",
        1_000.0 / batched_per_s
    ));
    let ratio = new_per_s / old_per_s;
    let new = Row::new(
        "cache_miss_load",
        9,
        "cache-miss load, snapshot",
        new_per_s,
        "load/s",
    )
    .against("cache-miss 1/commit", old_per_s)
    .goal(format!(">= {GOAL_RATIO}x 1/commit"), ratio >= GOAL_RATIO)
    .detail(format!(
        "what the engine does: the snapshot at commit {snapshot_at}, then the {} commits after it in one batch, verified against the hash chain: {new_n} loads, {:.2} ms each",
        COMMITS - snapshot_at,
        1_000.0 / new_per_s
    ));
    Ok(vec![old, batched, new])
}

fn check(state: Option<OrderState>) -> anyhow::Result<()> {
    match state {
        Some(s) if s.commits == COMMITS => Ok(()),
        other => anyhow::bail!(
            "loaded {:?} commits, expected {COMMITS}",
            other.map(|s| s.commits)
        ),
    }
}

/// Loads per second over at least one load and about `budget`.
async fn measure<F, Fut>(budget: Duration, mut load: F) -> anyhow::Result<(f64, u64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut n = 0u64;
    while n == 0 || started.elapsed() < budget {
        load().await?;
        n += 1;
    }
    Ok((n as f64 / started.elapsed().as_secs_f64().max(1e-9), n))
}

/// Appends `commits` commits of one order, decided and folded in process (create, start,
/// authorized, then the authorization reported again under new evidence). Returns the state
/// right after commit `keep` and that commit's stream sequence.
async fn fill(
    js: &async_nats::jetstream::Context,
    order: &OrderId,
    commits: u64,
    keep: u64,
) -> anyhow::Result<(OrderState, u64)> {
    let mut state: Option<OrderState> = None;
    let mut kept = None;
    let mut acks = Vec::with_capacity(commits as usize);
    for n in 1..=commits {
        let env = command(order, n)?;
        let events = match decide(state.as_ref(), &env, env.issued_at) {
            Ok(Decision::Commit(events)) => events,
            other => anyhow::bail!("bench command {n} not committed: {other:?}"),
        };
        let (fingerprint, decided_at) = (env.fingerprint(), env.issued_at);
        let encoded = EncodedCommit::new(Commit::after(
            state.as_ref(),
            env,
            fingerprint,
            decided_at,
            events,
        ));
        let next = apply_commit(state, &encoded.commit, &encoded.hash)?;
        if n == keep {
            kept = Some(next.clone());
        }
        state = Some(next);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HASH_HEADER, encoded.hash.as_str());
        headers.insert(COMMIT_HEADER, encoded.commit.commit.to_string().as_str());
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(encoded.bytes.clone().into())
            .headers(headers)
            .message_id(format!("{order}:{}", encoded.commit.command.command_id));
        acks.push(js.send_publish(events_subject(order), message).await?);
    }
    let mut keep_seq = 0;
    for (n, ack) in (1..).zip(acks) {
        let seq = ack.await?.sequence;
        if n == keep {
            keep_seq = seq;
        }
    }
    let kept = kept.ok_or_else(|| anyhow::anyhow!("commit {keep} not written"))?;
    Ok((kept, keep_seq))
}

fn command(order: &OrderId, n: u64) -> anyhow::Result<CommandEnvelope> {
    let signal = |kind, evidence: String| Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("bench-ref".into()),
            evidence_ref: evidence,
            observed_at: chrono::Utc::now(),
            kind,
        },
    };
    let command = match n {
        1 => Command::CreateOrder {
            merchant_reference: "bench".into(),
            amount: money(10_000, "USD").ok_or_else(|| anyhow::anyhow!("amount"))?,
            provider: Provider::Plural,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
        },
        2 => Command::StartPayment {
            initiation: Default::default(),
        },
        n => signal(SignalKind::Authorized { amount: None }, format!("ev-{n}")),
    };
    let head = format!("load-{n:06}-");
    let id = format!("{head}{}", "x".repeat(COMMAND_ID_LEN_MAX - head.len()));
    Ok(CommandEnvelope {
        command_id: CommandId::parse(id)?,
        order_id: order.clone(),
        issued_at: chrono::Utc::now(),
        command,
    })
}
