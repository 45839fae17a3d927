//! `paystate check`: is this process's NATS reachable, new enough, and is the log there?
//! Exit 0 when healthy (docker-compose health checks use it), 1 otherwise, with the reason.

use crate::settings::{connect, Settings};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(settings: Settings, _args: Args) -> anyhow::Result<ExitCode> {
    let nats = match connect(&settings.nats_url).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Err(e) = paystate_journal::check_server_version(&nats) {
        eprintln!("unhealthy: {e}");
        return Ok(ExitCode::from(1));
    }
    let js = async_nats::jetstream::new(nats);
    match paystate_journal::Journal::existing(js, &settings.log().events_stream).await {
        Ok(_) => {
            println!(
                "healthy: {} reachable, log stream present",
                settings.nats_url
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
