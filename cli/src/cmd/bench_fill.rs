//! Filling a benchmark log with realistic order histories: most orders are captured, partly
//! refunded and settled; some are cancelled (with a late capture report: a discrepancy),
//! some fail (with a resent failure report), some settle straight from pending. Orders are
//! interleaved, as in a real log.
//!
//! Two ways in: through the pure core (`decide` + `apply_commit` in process, commits appended
//! with the journal's headers, pipelined: fast) or through the real engine (commands
//! published to the command stream, the engine decides and appends).

use anyhow::Context;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use async_nats::HeaderMap;
use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::subjects::{events_subject, COMMIT_HEADER, HASH_HEADER};
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, OrderId, OrderState, Provider,
    ProviderSignal, SignalKind, Timestamp,
};
use paystate_journal::{EncodedCommit, Journal};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Appends (or command publishes) in flight while filling; below async-nats' default bound on
/// unacknowledged publishes per context (5000), which would otherwise block the sender.
const PUBLISH_WINDOW_MAX: usize = 2048;
/// Longest wait for the engine to process everything published.
const ENGINE_DRAIN_TIMEOUT: Duration = Duration::from_secs(1800);
/// Longest the log may stay the same length while commits are still missing before the fill
/// gives up (the engine refused commands or stopped): a stalled fill ends with its reason
/// instead of waiting out [`ENGINE_DRAIN_TIMEOUT`].
const ENGINE_STALL_MAX: Duration = Duration::from_secs(30);
/// How often the fill looks at the log's length while the engine drains.
const ENGINE_DRAIN_POLL: Duration = Duration::from_secs(2);
const _: () = assert!(ENGINE_DRAIN_POLL.as_nanos() * 4 <= ENGINE_STALL_MAX.as_nanos());

/// What was written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Filled {
    pub commits: u64,
    pub events: u64,
    pub orders: u64,
}

/// One order's script: its kind picks the story, `step` is the next command.
struct Script {
    order: OrderId,
    kind: u64,
    step: usize,
}

impl Script {
    fn new(n: u64) -> Script {
        Script {
            order: OrderId::parse(format!("bench-{n:08}"))
                .unwrap_or_else(|_| unreachable!("digits are a valid id")),
            kind: n % 20,
            step: 0,
        }
    }

    /// Events the whole story appends (see `next`).
    fn planned_events(&self) -> u64 {
        match self.kind {
            0..=15 => 8,
            16 | 17 => 6,
            18 => 4,
            _ => 6, // 19: five commits, the settlement from pending has two events
        }
    }

    /// The next command and the events it yields, or `None` when the story is over.
    fn next(&mut self, now: Timestamp) -> Option<(CommandEnvelope, u64)> {
        let o = self.order.as_str();
        let refund_id = format!("{o}.5");
        let usd = |m| money(m, "USD").unwrap_or_else(|| unreachable!("valid amount"));
        let sig = |kind, ev: &str| signal(kind, &format!("bench:{o}:{ev}"), now);
        let (command, events) = match (self.kind, self.step) {
            (_, 0) => (
                create(
                    usd(10_000),
                    if self.kind == 19 {
                        CaptureMode::Auto
                    } else {
                        CaptureMode::Manual
                    },
                ),
                1,
            ),
            (_, 1) => (
                Command::StartPayment {
                    initiation: Default::default(),
                },
                1,
            ),
            (19, 2) => (sig(SignalKind::Accepted { action: None }, "acc"), 1),
            (19, 3) => (sig(SignalKind::Settled { amount: None }, "settled"), 2),
            (19, 4) => (
                sig(SignalKind::Settled { amount: None }, "settled-again"),
                1,
            ),
            (18, 2) | (18, 3) => (sig(failed(), "failed"), 1),
            (_, 2) if self.kind < 18 => (sig(SignalKind::Authorized { amount: None }, "auth"), 1),
            (16 | 17, 3) => (
                Command::Cancel {
                    reason: Some("customer".into()),
                },
                1,
            ),
            (16 | 17, 4) => (sig(SignalKind::Cancelled, "void"), 1),
            (16 | 17, 5) => (
                sig(SignalKind::Captured { amount: None }, "late-capture"),
                1,
            ),
            (0..=15, 3) => (Command::Capture { amount: None }, 1),
            (0..=15, 4) => (sig(SignalKind::Captured { amount: None }, "captured"), 1),
            (0..=15, 5) => (
                Command::Refund {
                    amount: money(3_000, "USD"),
                },
                1,
            ),
            (0..=15, 6) => (
                sig(
                    SignalKind::Refunded {
                        refund_id: Some(refund_id),
                        amount: None,
                    },
                    "refunded",
                ),
                1,
            ),
            (0..=15, 7) => (sig(SignalKind::Settled { amount: None }, "settled"), 1),
            _ => return None,
        };
        let env = CommandEnvelope {
            command_id: CommandId::parse(format!("{o}.{}", self.step))
                .unwrap_or_else(|_| unreachable!("valid id")),
            order_id: self.order.clone(),
            issued_at: now,
            command,
        };
        self.step += 1;
        Some((env, events))
    }
}

fn create(amount: paystate_events::Money, capture_mode: CaptureMode) -> Command {
    Command::CreateOrder {
        merchant_reference: "bench-shop".into(),
        amount,
        provider: Provider::Plural,
        capture_mode,
        expires_at: None,
        merchant_account: None,
        metadata: Default::default(),
    }
}

fn failed() -> SignalKind {
    SignalKind::Failed {
        operation: paystate_events::Operation::Payment,
        code: "declined".into(),
        message: "card declined".into(),
        refund_id: None,
    }
}

fn signal(kind: SignalKind, evidence_ref: &str, now: Timestamp) -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("pl-ref".into()),
            evidence_ref: evidence_ref.into(),
            observed_at: now,
            kind,
        },
    }
}

/// Interleaves scripts, `in_flight` at a time, until `events` events; calls `emit` with each
/// command in log order.
/// Orders are numbered from `first_order`.
fn interleave(
    first_order: u64,
    events: u64,
    in_flight: usize,
    mut emit: impl FnMut(&mut Script, CommandEnvelope, u64) -> anyhow::Result<()>,
) -> anyhow::Result<Filled> {
    let base: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap_or_default();
    let mut filled = Filled::default();
    let mut running: VecDeque<Script> = VecDeque::new();
    let mut next_order = first_order;
    // Events of the orders started so far, once their stories are told: no order is started
    // once the target is covered.
    let mut planned = 0u64;
    while planned < events || !running.is_empty() {
        while running.len() < in_flight.max(1) && planned < events {
            let script = Script::new(next_order);
            planned += script.planned_events();
            running.push_back(script);
            next_order += 1;
            filled.orders += 1;
        }
        let Some(mut script) = running.pop_front() else {
            break;
        };
        let now = base + chrono::Duration::milliseconds(filled.commits as i64);
        if let Some((env, n)) = script.next(now) {
            emit(&mut script, env, n)?;
            filled.commits += 1;
            filled.events += n;
            running.push_back(script);
        }
    }
    Ok(filled)
}

/// Fills through the pure core: decide, fold, append (pipelined, same headers as the journal).
pub async fn fill_via_core(
    js: &jetstream::Context,
    events: u64,
    in_flight: usize,
) -> anyhow::Result<Filled> {
    let mut states: std::collections::HashMap<OrderId, OrderState> =
        std::collections::HashMap::new();
    let mut pending: Vec<(String, EncodedCommit)> = Vec::new();
    let mut inflight: VecDeque<PublishAckFuture> = VecDeque::new();
    let progress = Instant::now();
    let mut filled = Filled::default();
    let mut remaining = events;
    // Generate in chunks so decide/fold (sync) and publishing (async) alternate.
    while remaining > 0 {
        let chunk = remaining.min(50_000);
        let f = interleave(filled.orders, chunk, in_flight, |_, env, _| {
            let state = states.remove(&env.order_id);
            let commit = decide_commit(state.as_ref(), &env)?;
            let encoded = EncodedCommit::new(commit);
            let folded = apply_commit(state, &encoded.commit, &encoded.hash)
                .context("the core refused its own commit")?;
            states.insert(env.order_id.clone(), folded);
            pending.push((events_subject(&env.order_id), encoded));
            Ok(())
        })?;
        // Orders are complete within a chunk: their states are no longer needed.
        states.clear();
        for (subject, encoded) in pending.drain(..) {
            if inflight.len() >= PUBLISH_WINDOW_MAX {
                if let Some(ack) = inflight.pop_front() {
                    ack.await?;
                }
            }
            inflight.push_back(js.send_publish(subject, append_message(&encoded)).await?);
        }
        filled.commits += f.commits;
        filled.events += f.events;
        filled.orders += f.orders;
        remaining = remaining.saturating_sub(f.events.max(1));
        eprintln!(
            "  filled {} events ({:.0}/s)",
            filled.events,
            filled.events as f64 / progress.elapsed().as_secs_f64().max(1e-9)
        );
    }
    while let Some(ack) = inflight.pop_front() {
        ack.await?;
    }
    Ok(filled)
}

fn decide_commit(state: Option<&OrderState>, env: &CommandEnvelope) -> anyhow::Result<Commit> {
    let now = env.issued_at;
    let events = match decide(state, env, now) {
        Ok(Decision::Commit(events)) => events,
        Ok(Decision::AlreadyApplied { .. }) => anyhow::bail!("benchmark script repeated a command"),
        Err(r) => anyhow::bail!("benchmark script rejected at {}: {r}", env.command_id),
    };
    Ok(Commit::after(
        state,
        env.clone(),
        env.fingerprint(),
        now,
        events,
    ))
}

fn append_message(encoded: &EncodedCommit) -> PublishMessage {
    let mut headers = HeaderMap::new();
    headers.insert(HASH_HEADER, encoded.hash.as_str());
    headers.insert(COMMIT_HEADER, encoded.commit.commit.to_string().as_str());
    let id = format!(
        "{}:{}",
        encoded.commit.order_id, encoded.commit.command.command_id
    );
    PublishMessage::build()
        .payload(encoded.bytes.clone().into())
        .headers(headers)
        .message_id(id)
}

/// Fills through the real engine: every order's whole script is published (the engine
/// applies an order's commands in order), each command on its plane's subject as a real
/// client would publish it (provider signals on `paystate.signal.<order>`), then waits until
/// the log holds every commit, or fails once it stops growing for [`ENGINE_STALL_MAX`].
pub async fn fill_via_engine(
    client: async_nats::Client,
    journal: &Journal,
    events: u64,
    in_flight: usize,
) -> anyhow::Result<Filled> {
    let engine = paystate_service::run_engine(
        client.clone(),
        paystate_journal::LogSettings::default(),
        paystate_service::EngineConfig::default(),
    )
    .await?;
    let js = jetstream::new(client);
    let mut envelopes = Vec::new();
    let filled = interleave(0, events, in_flight, |_, env, _| {
        envelopes.push(env);
        Ok(())
    })?;
    let mut inflight: VecDeque<PublishAckFuture> = VecDeque::new();
    for env in envelopes {
        if inflight.len() >= PUBLISH_WINDOW_MAX {
            if let Some(ack) = inflight.pop_front() {
                ack.await?;
            }
        }
        let bytes = serde_json::to_vec(&env)?;
        inflight.push_back(
            js.send_publish(
                paystate_service::client::subject_of(&env),
                PublishMessage::build().payload(bytes.into()),
            )
            .await?,
        );
    }
    while let Some(ack) = inflight.pop_front() {
        ack.await?;
    }
    let started = Instant::now();
    let (mut last, mut last_moved) = (0u64, Instant::now());
    loop {
        let have = journal.stream().get_info().await?.state.messages;
        if have >= filled.commits {
            break;
        }
        if have != last {
            (last, last_moved) = (have, Instant::now());
        }
        anyhow::ensure!(
            last_moved.elapsed() < ENGINE_STALL_MAX,
            "the engine stopped appending: {have} of {} commits, none for {ENGINE_STALL_MAX:?} \
             (commands refused? see the engine's warnings)",
            filled.commits
        );
        anyhow::ensure!(
            started.elapsed() < ENGINE_DRAIN_TIMEOUT,
            "the engine appended {have} of {} commits in time",
            filled.commits
        );
        eprintln!("  engine: {have}/{} commits", filled.commits);
        tokio::time::sleep(ENGINE_DRAIN_POLL).await;
    }
    engine.shutdown().await;
    Ok(filled)
}
