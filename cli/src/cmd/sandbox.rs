//! `paystate sandbox`: the provider sandboxes as a standalone server (docker-compose's
//! `sandboxes` service; humans exploring the providers' APIs).

use paystate_sandbox::{Sandbox, SandboxConfig, TimeScale};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where the sandboxes listen; each provider is under /<provider>, the control API under
    /// /_sandbox.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// paystate's gateway, which the sandboxes call back (`/callbacks/<provider>`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway_url: String,
    /// Speed of the providers' retry schedules (1 = as documented, 0.001 = ms for s).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = SandboxConfig {
        time_scale: TimeScale(args.time_scale),
        gateway_url: Some(args.gateway_url.clone()),
        ..Default::default()
    };
    let sandbox = Sandbox::start_on(args.listen, cfg)
        .await
        .map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    println!(
        "sandboxes on http://{} calling back {} (Ctrl-C to stop)",
        sandbox.addr(),
        args.gateway_url
    );
    for p in paystate_events::Provider::ALL {
        println!("  {p:<10} {}", sandbox.base_url(p));
    }
    println!("  control    {}", sandbox.control_url());
    crate::cmd::stop::stop_signal().await?;
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
