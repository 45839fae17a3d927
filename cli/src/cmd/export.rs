//! `paystate export`: the log (or a sequence, time or order range) as JSON Lines.

use crate::cmd::{common, progress::Progress};
use crate::settings::Settings;
use paystate_audit::{export, ExportFilter};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Output file; `-` (default) writes to stdout.
    #[arg(long, short, default_value = "-")]
    out: PathBuf,
    /// Only these orders (repeatable). Their whole histories are exported, so the file can be
    /// imported.
    #[arg(long = "order")]
    orders: Vec<String>,
    /// First stream sequence.
    #[arg(long)]
    from_seq: Option<u64>,
    /// Last stream sequence.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Stored at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Stored before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, short)]
    quiet: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let filter = ExportFilter {
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        since: args.since.as_deref().map(common::instant).transpose()?,
        until: args.until.as_deref().map(common::instant).transpose()?,
        orders: args
            .orders
            .iter()
            .map(|o| common::order_id(o))
            .collect::<Result<_, _>>()?,
    };
    let h = common::open(&settings).await?;
    let mut out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(std::io::BufWriter::new(std::fs::File::create(&args.out)?))
    };
    let mut progress = Progress::new("export", "messages", args.quiet);
    let mut last = (0, 0);
    let summary = export(&h.journal, &filter, &mut out, &mut |d, t| {
        last = (d, t);
        progress.update(d, t);
    })
    .await?;
    progress.finish(last.0, last.1);
    if !args.quiet {
        eprintln!(
            "exported {} messages of {} orders (seq {}..={})",
            summary.messages, summary.orders, summary.first_seq, summary.last_seq
        );
    }
    // Said even with --quiet: the file is not the whole log.
    if summary.skipped_strays + summary.skipped_quarantined > 0 {
        eprintln!(
            "left out {} strays (not commits: a broker's answer aimed at an order's log) and {} \
             quarantined messages; the audit lists both",
            summary.skipped_strays, summary.skipped_quarantined
        );
    }
    Ok(ExitCode::SUCCESS)
}
