//! `paystate dev`: everything on one machine — a local nats-server (started if none answers),
//! the engine, projector, adapter workers, reconciler and gateway, and a sandbox of all five
//! providers — then one sample order through each provider, with its timeline.

use crate::settings::{connect, Settings};
use anyhow::Context;
use paystate_broker::{NatsServer, ServerOptions};
use paystate_sandbox::{SandboxConfig, TimeScale};
use paystate_workers::{ReconcilerConfig, WorkerConfig};
use std::process::ExitCode;
use std::time::Duration;

/// `dev` runs the reconciler 60× faster than production (a minute is a second), so a lost
/// exchanger IPN is resolved while you watch.
const DEV_RECONCILER_SPEEDUP: u32 = 60;

#[derive(clap::Args)]
pub struct Args {
    /// Stop after the sample orders instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_demo: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let (url, _server) = ensure_nats(&settings).await?;
    let nats = connect(&url).await?;
    // The gateway keeps the socket it probed with: no second bind, no window to lose it.
    let listener = match tokio::net::TcpListener::bind(&settings.http).await {
        Ok(l) => l,
        Err(e) => {
            println!(
                "gateway: {} is taken ({e}); using a free port",
                settings.http
            );
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("gateway cannot listen")?
        }
    };
    let sandbox_cfg = SandboxConfig {
        time_scale: TimeScale(0.01),
        ..Default::default()
    };
    let reconciler = ReconcilerConfig::default().scaled(DEV_RECONCILER_SPEEDUP);
    let (stack, sandbox, _) = paystate::stack::with_sandbox(
        nats.clone(),
        settings.log(),
        settings.engine(),
        WorkerConfig::default(),
        reconciler,
        sandbox_cfg,
        listener,
    )
    .await?;
    let gateway = stack.gateway_url.clone().unwrap_or_default();
    println!(
        "engine: {} partitions | projector | adapter workers | reconciler",
        settings.engine.partitions
    );
    println!("gateway: {gateway} (GET /orders, POST /callbacks/<provider>, POST /attachments)");
    println!(
        "sandboxes: {} (control API {})",
        sandbox.addr(),
        sandbox.control_url()
    );
    let client = paystate_service::Client::new(nats.clone());
    let journal = paystate_journal::Journal::existing(
        async_nats::jetstream::new(nats),
        &settings.log().events_stream,
    )
    .await?;
    let orders = paystate::demo::drive_all(&client, &sandbox, &journal, settings.wait()).await;
    let orders = orders.context("a sample order did not complete")?;
    for (provider, order) in &orders {
        let commits = journal.read_order(order).await?;
        println!("\n{provider}: order {order} (timeline read back from the log)");
        print!("{}", crate::timeline::render(&commits));
    }
    if let Some((_, first)) = orders.first() {
        crate::cmd::serving::show_projected(&stack.projection, &gateway, first).await;
    }
    if args.exit_after_demo {
        stack.shutdown().await;
        sandbox.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("\nserving on {url}; publish commands to paystate.cmd.<order_id>; try `paystate orders list` (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await?;
    stack.shutdown().await;
    sandbox.shutdown().await;
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
