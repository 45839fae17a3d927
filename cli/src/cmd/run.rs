//! `paystate run`: an engine instance against the configured NATS, until Ctrl-C.

use crate::settings::Settings;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(settings: Settings, _args: Args) -> anyhow::Result<ExitCode> {
    let client = paystate_service::connect_patiently(&settings.nats_url, "paystate-engine")
        .await
        .map_err(anyhow::Error::msg)?;
    let engine = paystate_service::run_engine(client, settings.log(), settings.engine()).await?;
    eprintln!(
        "paystate engine running against {} (Ctrl-C to stop)",
        settings.nats_url
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping: finishing commands in hand");
    engine.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
