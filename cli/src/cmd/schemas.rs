//! `paystate schemas`: write or check the JSON Schemas in schemas/.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where the schemas live.
    #[arg(long, default_value = "schemas")]
    dir: PathBuf,
    /// Only verify that the files match the types; exit 1 if not.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut drifted = Vec::new();
    for (name, schema) in paystate_events::schemas::all() {
        let path = args.dir.join(name);
        let text = paystate_events::schemas::render(&schema);
        if args.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(name);
            }
        } else {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !drifted.is_empty() {
        bail!(
            "schemas drifted from the types: {} (run `paystate schemas`)",
            drifted.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
