//! `paystate send`: publish a command from JSON and print the outcome.

use crate::settings::Settings;
use anyhow::Context;
use paystate_events::Outcome;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// JSON command file; `-` reads stdin.
    file: PathBuf,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    // The subject needs the order id; bad bodies still go to the engine, which answers with a
    // typed rejection, under a placeholder subject token.
    let order = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("order_id")
                .and_then(|o| o.as_str())
                .map(str::to_string)
        })
        .filter(|o| paystate_events::OrderId::parse(o.clone()).is_ok())
        .unwrap_or_else(|| "_invalid".to_string());
    let client = paystate_service::Client::new(
        settings
            .connect_as(paystate::permissions::Role::Client)
            .await?,
    );
    let outcome = client.send_raw(&order, bytes, settings.wait()).await?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(match outcome {
        Outcome::Accepted { .. } => ExitCode::SUCCESS,
        Outcome::Rejected { .. } => ExitCode::from(1),
    })
}
