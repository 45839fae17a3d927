//! Running an audit against NATS: scan the log into the [`Auditor`], then compare the
//! projection's records with the fold.

use crate::check::{join, place_gaps, Auditor, Breaks, GapsSeen, OrderTrack, SequenceGaps, Tracks};
use crate::report::{Finding, FindingKind, ProjectionCheck, Report};
use crate::AuditError;
use paystate_events::OrderId;
use paystate_events::StateView;
use paystate_journal::passes::{feed, Plan, Share, ORDERS_PER_PASS_DEFAULT};
use paystate_journal::{Journal, LogScan, RawEntry, ScanOptions};
use paystate_projection::{ProjectedOrder, ProjectionStore};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Compare the live projection with the fold.
    pub compare_projection: bool,
    /// Longest wait for the projector to acknowledge the snapshot before comparing.
    pub projection_wait: Duration,
    /// Threads folding the log (orders are split among them); default: one per core but one.
    pub workers: usize,
    /// Most orders one pass over the log keeps in memory ([`ORDERS_PER_PASS_DEFAULT`], about
    /// 3 KB each); a log with more is read in several passes ([`paystate_journal::passes`]),
    /// each checking its share of the orders.
    pub orders_per_pass: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            compare_projection: true,
            projection_wait: Duration::from_secs(10),
            workers: default_workers(),
            orders_per_pass: ORDERS_PER_PASS_DEFAULT,
        }
    }
}

/// Most threads folding an audit. Orders are split among the threads by a hash of the order
/// id, so each order's commits stay in stream order while the CPU work (decode, hash,
/// re-decide, fold) runs beside the reader.
pub const AUDIT_WORKERS_MAX: usize = 16;

/// One worker per core but one, within 1..=[`AUDIT_WORKERS_MAX`]. Why one fewer: the
/// reader and the connection it reads from take about a core between them; on 2 cores one
/// worker audits faster than two (bench-read, 600k events: 0.77-0.79x raw against
/// 0.65-0.66x), the two workers and the reader otherwise taking turns on the same cores.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, AUDIT_WORKERS_MAX)
}
/// Batches queued per worker before the reader waits (bounds memory).
const QUEUE_BATCHES_MAX: usize = 16;

/// Audits the log (and the projection, when there is one). `progress` gets (commits read,
/// commits to read): the snapshot's messages times the passes.
pub async fn audit(
    journal: &Journal,
    projection: Option<&ProjectionStore>,
    opts: &AuditOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let mut scan = journal.scan(ScanOptions::default()).await?;
    let stream = journal.stream().cached_info().config.name.clone();
    let quarantined = std::sync::Arc::new(
        paystate_journal::quarantine::all(journal.context())
            .await
            .map_err(AuditError::Broker)?,
    );
    let plan = Plan::of(&scan, opts.orders_per_pass)?;
    let workers = opts.workers.clamp(1, AUDIT_WORKERS_MAX);
    let mut report = Report {
        stream: stream.clone(),
        snapshot_last_seq: plan.end_seq,
        passes: plan.passes,
        ..Default::default()
    };
    let (mut gaps, mut breaks) = (GapsSeen::default(), Breaks::default());
    for pass in 0..plan.passes {
        if pass > 0 {
            scan = plan.rescan(journal).await?;
        }
        let (mut part, pass_gaps) = fold_log(
            &mut scan,
            &stream,
            quarantined.clone(),
            &plan,
            pass,
            workers,
            progress,
        )
        .await?;
        gaps.absorb(pass_gaps);
        if let (true, Some(store)) = (opts.compare_projection, projection) {
            let wait = opts.projection_wait;
            let share = plan.share(pass, workers);
            part.report.projection =
                compare_projection(store, &part.orders, &mut part.report, wait, share).await?;
        }
        breaks.absorb(std::mem::take(&mut part.breaks));
        report.absorb_pass(part.report);
        free_aside(part.orders);
    }
    place_gaps(&mut report, gaps, &breaks);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.commits_per_sec = report.commits as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(report)
}

/// Frees the folded orders on a thread of their own. Why: freeing every order's state is no
/// part of the answer, and takes long enough to be seen (`paystate bench-read`, 80,000
/// orders: 2.7 % of the audit's samples, all of it after the last commit was checked). If no
/// thread can be started they are freed here.
fn free_aside(orders: Tracks) {
    if orders.len() < FREE_ASIDE_FROM {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("audit-free".into())
        .spawn(move || drop(orders));
}

/// Below this many orders the fold is freed in place (a thread would cost more).
const FREE_ASIDE_FROM: usize = 4096;

/// Reads the snapshot once (pass `pass` of `plan`, on `workers` threads), checking sequence
/// gaps here and handing each message of the pass's orders to its worker thread; then joins
/// the workers' results.
async fn fold_log(
    scan: &mut LogScan,
    stream: &str,
    quarantined: std::sync::Arc<std::collections::HashSet<(String, u64)>>,
    plan: &Plan,
    pass: u64,
    workers_n: usize,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(crate::check::Joined, SequenceGaps), AuditError> {
    let (senders, workers) = spawn_workers(stream, scan.end_seq, workers_n, quarantined);
    let mut gaps = SequenceGaps::new();
    let (_, failure) = feed(scan, plan, pass, senders, progress, |entry| {
        gaps.observe(entry.sequence)
    })
    .await;
    let parts = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|h| h.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| AuditError::Internal(e.to_string()))?
    .map_err(|_| AuditError::Internal("an audit worker panicked".into()))?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    gaps.finish(scan.end_seq);
    Ok((join(stream, scan.end_seq, parts), gaps))
}

type Workers = (
    Vec<tokio::sync::mpsc::Sender<Vec<RawEntry>>>,
    Vec<std::thread::JoinHandle<Auditor>>,
);

fn spawn_workers(
    stream: &str,
    end_seq: u64,
    n: usize,
    quarantined: std::sync::Arc<std::collections::HashSet<(String, u64)>>,
) -> Workers {
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<RawEntry>>(QUEUE_BATCHES_MAX);
        let stream = stream.to_string();
        let quarantined = quarantined.clone();
        handles.push(std::thread::spawn(move || {
            let mut auditor = Auditor::new(&stream, end_seq);
            auditor.quarantined = quarantined;
            while let Some(batch) = rx.blocking_recv() {
                for entry in &batch {
                    auditor.observe(entry);
                }
            }
            auditor
        }));
        senders.push(tx);
    }
    (senders, handles)
}

/// Compares every projection record of this pass's orders with the fold; `None` when there
/// is no projection.
async fn compare_projection(
    store: &ProjectionStore,
    orders: &Tracks,
    report: &mut Report,
    wait: Duration,
    share: Share,
) -> Result<Option<ProjectionCheck>, AuditError> {
    let Some((generation, _)) = store.current().await? else {
        return Ok(None);
    };
    let snapshot = report.snapshot_last_seq;
    let (acked, lag) = wait_for_projector(store, snapshot, wait).await;
    let mut check = ProjectionCheck {
        generation: generation.generation,
        lag,
        ..Default::default()
    };
    let mut seen: HashMap<&OrderId, ()> = HashMap::with_capacity(orders.len());
    let mut findings = Vec::new();
    store
        .scan(&generation, |record| {
            if share.worker(record.state.order_id.as_str()).is_none() {
                return true; // another pass compares this record
            }
            check.records += 1;
            if record.seq > snapshot {
                check.newer += 1;
                if let Some((k, _)) = orders.get_key_value(&record.state.order_id) {
                    seen.insert(k, ());
                }
                return true;
            }
            check.compared += 1;
            match orders.get_key_value(&record.state.order_id) {
                Some((k, track)) => {
                    seen.insert(k, ());
                    findings.extend(compare_one(&record, track, acked));
                }
                None => findings.push(unknown_order(&record)),
            }
            true
        })
        .await?;
    for (order, track) in orders {
        if !seen.contains_key(order) && track.state.is_some() {
            let kind = if acked {
                FindingKind::ProjectionMissing
            } else {
                FindingKind::ProjectionLagging
            };
            findings.push(Finding {
                kind,
                order: Some(order.to_string()),
                sequence: Some(track.last_seq),
                commit: None,
                detail: "the projection has no record of this order".into(),
            });
        }
    }
    for f in findings {
        report.add(f);
    }
    Ok(Some(check))
}

/// Waits until the live projector has acknowledged every commit up to `snapshot`; returns
/// whether it did, and its lag.
async fn wait_for_projector(store: &ProjectionStore, snapshot: u64, wait: Duration) -> (bool, u64) {
    let started = Instant::now();
    loop {
        let Ok(status) = store.status().await else {
            return (false, 0);
        };
        let done = status.applied_seq >= snapshot || status.lag == 0;
        if done || started.elapsed() >= wait {
            return (done, status.lag);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn compare_one(record: &ProjectedOrder, track: &OrderTrack, acked: bool) -> Option<Finding> {
    let order = Some(record.state.order_id.to_string());
    if record.seq > track.last_seq {
        let detail = format!("the projection applied a commit at seq {} but the order's last commit in the log is at seq {}: that commit is gone from the log", record.seq, track.last_seq);
        return Some(Finding {
            kind: FindingKind::ProjectionUnknown,
            order,
            sequence: Some(record.seq),
            commit: Some(record.state.commits),
            detail,
        });
    }
    if record.seq < track.last_seq {
        let kind = if acked {
            FindingKind::ProjectionMissing
        } else {
            FindingKind::ProjectionLagging
        };
        let detail = format!(
            "the projection is at seq {} but the order's last commit is at seq {}",
            record.seq, track.last_seq
        );
        return Some(Finding {
            kind,
            order,
            sequence: Some(track.last_seq),
            commit: None,
            detail,
        });
    }
    if track.broken_at.is_some() {
        return None; // reported as a chain break; the two folds differ by construction
    }
    // The projection keeps the bounded view of the state: compare with the fold's view.
    match track.state.as_ref().map(|s| (s, StateView::of(s))) {
        Some((_, view)) if view == record.state => None,
        Some((state, view)) => {
            let detail = format!(
                "the projection differs from the fold in: {}",
                differing_fields(&view, &record.state).join(", ")
            );
            Some(Finding {
                kind: FindingKind::ProjectionDiffers,
                order,
                sequence: Some(record.seq),
                commit: Some(state.commits),
                detail,
            })
        }
        None => Some(unknown_order(record)),
    }
}

fn unknown_order(record: &ProjectedOrder) -> Finding {
    Finding {
        kind: FindingKind::ProjectionUnknown,
        order: Some(record.state.order_id.to_string()),
        sequence: Some(record.seq),
        commit: Some(record.state.commits),
        detail: "the projection has an order the log does not fold to".into(),
    }
}

/// Top-level fields whose JSON differs.
fn differing_fields<T: serde::Serialize>(a: &T, b: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["(unserializable)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
