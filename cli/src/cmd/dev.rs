//! `paystate dev`: everything on one machine, then a sample order through its lifecycle.

use crate::settings::{connect, Settings};
use anyhow::Context;
use paystate_broker::{NatsServer, ServerOptions};
use paystate_events::{CaptureMode, Command, CommandEnvelope, OrderId, Outcome, Provider};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Stop after the sample order instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_demo: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let (url, _server) = ensure_nats(&settings).await?;
    let client = connect(&url).await?;
    let engine =
        paystate_service::run_engine(client.clone(), settings.log(), settings.engine()).await?;
    println!(
        "engine: running ({} partitions)",
        settings.engine.partitions
    );
    let query = crate::cmd::serving::start(client.clone(), &settings.log().events_stream, settings.replicas, &settings.http).await?;
    println!("projector: running; gateway: {}/orders", query.url());
    let order = crate::cmd::dev_demo::sample_order(
        &paystate_service::Client::new(client.clone()),
        settings.wait(),
    )
    .await;
    let js = async_nats::jetstream::new(client);
    let journal = paystate_journal::Journal::existing(js, &settings.log().events_stream).await?;
    let order = order?;
    let commits = journal.read_order(&order).await?;
    println!("\ntimeline of order {order} (read back from the log):");
    print!("{}", crate::timeline::render(&commits));
    crate::cmd::serving::show_projected(&query, &order).await;
    if args.exit_after_demo {
        query.shutdown().await;
        engine.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("\nserving on {url}; publish commands to paystate.cmd.<order_id> (Ctrl-C to stop)");
    println!("order queries: curl {}/orders/{order}", query.url());
    tokio::signal::ctrl_c().await?;
    query.shutdown().await;
    engine.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Uses the configured NATS if it answers; otherwise starts nats-server as a child process
/// with its store under the data directory.
async fn ensure_nats(settings: &Settings) -> anyhow::Result<(String, Option<NatsServer>)> {
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        async_nats::connect(&settings.nats_url),
    )
    .await;
    if let Ok(Ok(_)) = probe {
        println!("nats: using the server at {}", settings.nats_url);
        return Ok((settings.nats_url.clone(), None));
    }
    let port = settings
        .nats_url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(4222);
    let store = settings.data_dir.join("nats");
    let opts = ServerOptions {
        port,
        store_dir: Some(store.clone()),
        ..Default::default()
    };
    let server = NatsServer::start(opts).await.context(
        "no NATS answered and nats-server could not be started (run scripts/install-nats.sh)",
    )?;
    println!(
        "nats: started nats-server on {} (store {})",
        server.url(),
        store.display()
    );
    Ok((server.url(), Some(server)))
}

/// A command envelope for the demo and the tests.
pub fn envelope(order: &OrderId, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: paystate_events::CommandId::parse(uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| unreachable!("uuids are valid ids")),
        order_id: order.clone(),
        issued_at: chrono::Utc::now(),
        command,
    }
}

/// Prints one outcome line.
pub fn print_outcome(step: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Accepted { state, events, .. } => {
            let names: Vec<_> = events.iter().map(|e| e.name()).collect();
            println!(
                "  {step:<40} accepted -> {:<10} [{}]",
                state.status.to_string(),
                names.join(", ")
            );
        }
        Outcome::Rejected { code, message, .. } => {
            println!("  {step:<40} rejected {code}: {message}")
        }
    }
}

pub const DEMO_PROVIDER: Provider = Provider::Plural;
pub const DEMO_CAPTURE: CaptureMode = CaptureMode::Manual;
