//! `paystate run`: an engine instance against the configured NATS, until Ctrl-C.

use crate::settings::Settings;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(settings: Settings, _args: Args) -> anyhow::Result<ExitCode> {
    let client = paystate_service::connect_patiently(&settings.nats_url, "paystate-engine")
        .await
        .map_err(anyhow::Error::msg)?;
    let engine = paystate_service::run_engine(client.clone(), settings.log(), settings.engine()).await?;
    let query = crate::cmd::serving::start(client, &settings.log().events_stream, settings.replicas, &settings.http).await?;
    eprintln!(
        "paystate engine running against {} (Ctrl-C to stop)",
        settings.nats_url
    );
    eprintln!("projector running; order queries on {}/orders", query.url());
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping: finishing commands in hand");
    query.shutdown().await;
    engine.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
