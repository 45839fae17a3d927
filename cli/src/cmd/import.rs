//! `paystate import FILE`: load an export into an empty log stream, after verifying every
//! order's hash chain in the file (a broken file is refused whole; nothing is written).

use crate::cmd::progress::Progress;
use crate::settings::Settings;
use paystate_audit::{import, verify_file};
use paystate_journal::Journal;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A file written by `paystate export`.
    file: PathBuf,
    /// Only verify the file; import nothing.
    #[arg(long)]
    verify_only: bool,
    #[arg(long, short)]
    quiet: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let open = || -> anyhow::Result<BufReader<std::fs::File>> {
        Ok(BufReader::new(std::fs::File::open(&args.file)?))
    };
    let summary = match verify_file(&mut open()?) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("import refused: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    eprintln!(
        "verified {} messages of {} orders: every chain is whole",
        summary.messages, summary.orders
    );
    if args.verify_only {
        return Ok(ExitCode::SUCCESS);
    }
    let client = settings
        .connect_as(paystate::permissions::Role::Admin)
        .await?;
    let journal = Journal::open(async_nats::jetstream::new(client), &settings.log()).await?;
    let mut progress = Progress::new("import", "messages", args.quiet);
    let total = summary.messages;
    let imported = match import(&journal, &mut open()?, &mut |d| progress.update(d, total)).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("import failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    progress.finish(imported, total);
    eprintln!(
        "imported {imported} messages into {}",
        settings.log().events_stream
    );
    Ok(ExitCode::SUCCESS)
}
