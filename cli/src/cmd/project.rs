//! `paystate project`: run the projector, rebuild the projection into a fresh generation and
//! swap it in, or show its status (generation, lag).

use crate::cmd::{common, progress::Progress};
use crate::settings::Settings;
use paystate_projection::{rebuild, start_projector, swap_to, ProjectorConfig, RebuildOptions};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run a projector until Ctrl-C (creates the projection if there is none).
    Run,
    /// Fold the whole log into a fresh generation, catch up, and swap it in; the old
    /// generation keeps serving until the swap.
    Rebuild(RebuildArgs),
    /// Point readers at an existing generation (after `rebuild --no-swap`).
    Swap {
        generation: u64,
        #[arg(long)]
        keep_old: bool,
    },
    /// The live generation and its lag behind the log.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// Build and catch up, but leave the pointer where it is.
    #[arg(long)]
    no_swap: bool,
    /// Keep the old generation's bucket after the swap.
    #[arg(long)]
    keep_old: bool,
    #[arg(long, short)]
    quiet: bool,
    /// Most orders one pass over the log folds in memory (about 2.5 KB each); a log with more
    /// is folded in several passes, each writing its share of the records.
    #[arg(long, default_value_t = paystate_journal::passes::ORDERS_PER_PASS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    orders_per_pass: u64,
}

pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<ExitCode> {
    let role = match cmd {
        Command::Run => paystate::permissions::Role::Projector,
        _ => paystate::permissions::Role::Operator,
    };
    let h = common::open_as(&settings, role).await?;
    match cmd {
        Command::Run => {
            let projector =
                start_projector(h.projection.clone(), ProjectorConfig::default()).await?;
            eprintln!(
                "projector running against {} (Ctrl-C to stop)",
                paystate_service::connect::redacted_urls(&settings.nats_url)
            );
            crate::cmd::stop::stop_signal().await?;
            projector.shutdown().await;
        }
        Command::Rebuild(a) => {
            let opts = RebuildOptions {
                swap: !a.no_swap,
                keep_old: a.keep_old,
                orders_per_pass: a.orders_per_pass,
                ..Default::default()
            };
            let (projection, journal, quiet) = (h.projection.clone(), h.journal.clone(), a.quiet);
            // A task, as `paystate audit` runs its audit (see there).
            let (report, mut progress, last) = tokio::spawn(async move {
                let mut progress = Progress::new("rebuild", "commits", quiet);
                let mut last = (0, 0);
                let report = rebuild(&projection, &journal, &opts, &mut |d, t| {
                    last = (d, t);
                    progress.update(d, t);
                })
                .await;
                (report, progress, last)
            })
            .await?;
            let report = report?;
            progress.finish(last.0, last.1);
            println!(
                "generation {} built: {} commits, {} orders, {} broken, {} writes{}, fold {} ms, total {} ms; {}",
                report.generation.generation,
                report.commits,
                report.orders,
                report.broken,
                report.writes,
                if report.passes > 1 { format!(" in {} passes", report.passes) } else { String::new() },
                report.fold_ms,
                report.total_ms,
                if report.swapped { "swapped in".to_string() } else { format!("not swapped (`paystate project swap {}`)", report.generation.generation) }
            );
        }
        Command::Swap {
            generation,
            keep_old,
        } => {
            let g = swap_to(&h.projection, generation, keep_old).await?;
            println!("generation {} is live (bucket {})", g.generation, g.bucket);
        }
        Command::Status { json } => {
            let s = h.projection.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "generation {} (bucket {}, consumer {}): {} orders, applied through seq {}, log at seq {}, lag {}",
                    s.generation.generation, s.generation.bucket, s.generation.consumer, s.orders, s.applied_seq, s.log_last_seq, s.lag
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
