//! `paystate audit`: re-fold the whole log through the pure core; report everything wrong.
//! Exit status: 0 clean, 1 findings, 2 the audit could not run.

use crate::cmd::{common, progress::Progress};
use crate::settings::Settings;
use paystate_audit::{audit, AuditOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Findings printed on the terminal (all of them go to the JSON report).
const FINDINGS_SHOWN_MAX: usize = 50;

#[derive(clap::Args)]
pub struct Args {
    /// Write the full report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also fail on warnings (projection lagging) and on discrepancies recorded in the log.
    #[arg(long)]
    strict: bool,
    /// Do not compare the projection with the fold.
    #[arg(long)]
    no_projection: bool,
    /// Longest wait for the projector to reach the audited snapshot, in ms.
    #[arg(long, default_value_t = 10_000)]
    projection_wait_ms: u64,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Threads folding the log (default: one per core but one, at least one).
    #[arg(long, default_value_t = paystate_audit::run::default_workers())]
    workers: usize,
    /// Most orders one pass over the log keeps in memory (about 3 KB each); a log with more
    /// is read in several passes, each checking its share of the orders.
    #[arg(long, default_value_t = paystate_journal::passes::ORDERS_PER_PASS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    orders_per_pass: u64,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let h = common::open(&settings).await?;
    let opts = AuditOptions {
        compare_projection: !args.no_projection,
        projection_wait: Duration::from_millis(args.projection_wait_ms),
        workers: args.workers,
        orders_per_pass: args.orders_per_pass,
    };
    let (journal, projection, quiet) = (h.journal.clone(), h.projection.clone(), args.quiet);
    // Why a task instead of the main thread: the scan's messages then go from the
    // connection's task to the reader on the runtime's own threads, without waking another
    // thread per message (measured: a third less CPU for the same read).
    let (report, mut progress, last) = tokio::spawn(async move {
        let mut progress = Progress::new("audit", "commits", quiet);
        let mut last = (0, 0);
        let report = audit(&journal, Some(&projection), &opts, &mut |done, total| {
            last = (done, total);
            progress.update(done, total);
        })
        .await;
        (report, progress, last)
    })
    .await?;
    let report = report?;
    progress.finish(last.0, last.1);
    print!("{}", report.render(FINDINGS_SHOWN_MAX));
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("report written to {}", path.display());
    }
    let clean = report.is_clean(args.strict);
    println!(
        "{}",
        if clean {
            "audit: clean"
        } else {
            "audit: FAILED"
        }
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
