//! `paystate dev`: everything on one machine — a local nats-server (started if none answers),
//! the engine, projector, adapter workers, reconciler and gateway, and a sandbox of all five
//! providers — then one sample order through each provider, with its timeline.

use crate::settings::{RoleNats, Settings};
use anyhow::Context;
use paystate::permissions::Role;
use paystate::stack::GatewayListeners;
use paystate_broker::{NatsServer, ServerOptions};
use paystate_gateway::auth::Scope;
use paystate_sandbox::{SandboxConfig, TimeScale};
use paystate_workers::{ReconcilerConfig, WorkerConfig};
use std::process::ExitCode;
use std::time::Duration;

/// `dev` runs the reconciler 60× faster than production (a minute is a second), so a lost
/// exchanger IPN is resolved while you watch.
const DEV_RECONCILER_SPEEDUP: u32 = 60;
/// Name of the admin key `dev` makes for each run.
const DEV_KEY_NAME: &str = "paystate-dev";

#[derive(clap::Args)]
pub struct Args {
    /// Stop after the sample orders instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_demo: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    // Listening from the first line: a stop signal while the parts start or the demo runs
    // drops what has started, and the nats-server this run started with it (before, such a
    // signal ended the process on the spot and left that server running without a parent).
    let mut stop = crate::cmd::stop::Stop::listen()?;
    let (url, server, settings) = tokio::select! {
        started = ensure_nats(settings) => started?,
        signal = stop.signal() => return Ok(stopped_early(signal)),
    };
    let (stack, sandbox) = tokio::select! {
        up = start_and_demo(settings, server.is_none().then_some(url.as_str())) => up?,
        signal = stop.signal() => return Ok(stopped_early(signal)),
    };
    if args.exit_after_demo {
        stack.shutdown().await;
        sandbox.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("\nserving on {url}; publish commands to paystate.cmd.<order_id>; try `paystate orders list` (Ctrl-C to stop)");
    let signal = stop.signal().await;
    println!("{signal}: stopping the parts and the nats-server started for this run");
    stack.shutdown().await;
    sandbox.shutdown().await;
    drop(server);
    Ok(ExitCode::SUCCESS)
}

/// A stop signal before `dev` served: what had started is dropped with the caller's frame (the
/// nats-server this run started is killed and waited for by its `Drop`, on every path out of
/// `run`); exits as interrupted.
fn stopped_early(signal: &str) -> ExitCode {
    println!("{signal} while starting: stopping what had started (and the nats-server started for this run)");
    ExitCode::from(130)
}

/// Starts every part and the sandbox, then drives the sample orders and prints their
/// timelines. `existing_server`: the (printable) URL of a server that was already running,
/// so check first that it takes this run's credentials.
async fn start_and_demo(
    settings: Settings,
    existing_server: Option<&str>,
) -> anyhow::Result<(paystate::stack::Stack, paystate_sandbox::SandboxHandle)> {
    // Each part runs as its role's NATS user; the demo sends as a client and reads the log
    // (and uploads its screenshot, as the gateway would) as the reporter.
    // The dashboard reads as the operator (the log, raw callbacks, dead letters).
    let roles = [
        Role::Engine,
        Role::Projector,
        Role::Reporter,
        Role::Client,
        Role::Operator,
    ];
    let nats = settings.connections(&roles, false).await?;
    if let Some(url) = existing_server {
        let store = settings.data_dir.join("nats");
        jetstream_answers(url, &store, nats.get(Role::Engine)?).await?;
    }
    // The gateway keeps the sockets it probed with: no second bind, no window to lose them.
    let public = bind_or_free_port(&settings.http, "public").await?;
    let private = bind_or_free_port(&settings.http_private, "private").await?;
    // A fresh admin key for this run, so the demo's queries and uploads work; it is printed
    // once below and only its hash is held.
    let dev_key =
        paystate_gateway::auth::generate(DEV_KEY_NAME, Scope::Admin).map_err(anyhow::Error::msg)?;
    let mut keys = settings.gateway.api_keys.clone();
    keys.push(dev_key.config.clone());
    let keys = paystate_gateway::auth::ApiKeys::new(&keys).map_err(anyhow::Error::msg)?;
    let gateway = GatewayListeners {
        public,
        private,
        keys,
        limits: settings.http_limits(),
    };
    let sandbox_cfg = SandboxConfig {
        time_scale: TimeScale(0.01),
        ..Default::default()
    };
    let reconciler = ReconcilerConfig::default().scaled(DEV_RECONCILER_SPEEDUP);
    // Metrics for the private listener's /metrics (admin key; docs/operations.md).
    paystate_gateway::telemetry::install()?;
    let (stack, sandbox, _) = paystate::stack::with_sandbox(
        nats.clone(),
        settings.log(),
        settings.engine(),
        WorkerConfig::default(),
        reconciler,
        sandbox_cfg,
        gateway,
    )
    .await?;
    let gateway = stack.gateway_url.clone().unwrap_or_default();
    let private = stack.private_url.clone().unwrap_or_default();
    println!(
        "engine: {} partitions | projector | adapter workers | reconciler",
        settings.engine.partitions
    );
    println!("gateway: {gateway} (public: POST /callbacks/<provider>)");
    println!("gateway: {private} (private: GET /orders, GET /orders/<id>, POST /attachments)");
    println!(
        "gateway: dev API key (admin, this run only): {}\n  try: curl -H 'Authorization: Bearer {}' {private}/orders",
        dev_key.key, dev_key.key
    );
    println!("dashboard: open {private}/dashboard in a browser and log in with the dev API key");
    println!(
        "sandboxes: {} (control API {})",
        sandbox.addr(),
        sandbox.control_url()
    );
    let client = paystate_service::Client::new(nats.get(Role::Client)?);
    let journal = paystate_journal::Journal::existing(
        async_nats::jetstream::new(nats.get(Role::Reporter)?),
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
        crate::cmd::serving::show_projected(&stack.projection, &private, first).await;
    }
    Ok((stack, sandbox))
}

/// Binds `addr`, or a free loopback port if it is taken.
async fn bind_or_free_port(addr: &str, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) => {
            println!("gateway: {addr} ({what}) is taken ({e}); using a free port");
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .with_context(|| format!("the gateway's {what} listener cannot listen"))
        }
    }
}

/// Uses the configured NATS (with the configured credentials) if something listens there;
/// otherwise starts nats-server as a child process with its store under the data directory,
/// the shipped per-role users (fresh random passwords each start, handed to the server in its
/// environment and to the parts in memory only) and a convenience user for the CLI. Returns
/// the settings the parts connect with.
async fn ensure_nats(
    mut settings: Settings,
) -> anyhow::Result<(String, Option<NatsServer>, Settings)> {
    let first = settings.nats_url.split(',').next().unwrap_or_default();
    let host_port = first
        .trim()
        .trim_start_matches("nats://")
        .trim_start_matches("tls://")
        .trim_end_matches('/')
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_string();
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(host_port),
    )
    .await;
    if let Ok(Ok(_)) = probe {
        let shown = paystate_service::connect::redacted_urls(&settings.nats_url);
        println!("nats: using the server at {shown} with the configured credentials");
        return Ok((shown, None, settings));
    }
    let port = settings
        .nats_url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(4222);
    let store = settings.data_dir.join("nats");
    let mut env = Vec::new();
    settings.nats = Default::default();
    for role in Role::ALL {
        let password = random_password();
        env.push((role.password_env(), password.clone()));
        settings.nats.roles.insert(
            role.name().to_string(),
            RoleNats {
                user: Some(role.user()),
                password: Some(paystate_service::Secret::new(password)),
                ..Default::default()
            },
        );
    }
    env.push((DEV_CLI_PASSWORD_ENV.to_string(), random_password()));
    let dev_user = paystate::permissions::render_user(
        paystate::permissions::DEV_CLI_USER,
        Some(&format!("${DEV_CLI_PASSWORD_ENV}")),
        &paystate::permissions::dev_cli_permissions(),
    );
    let opts = ServerOptions {
        port,
        store_dir: Some(store.clone()),
        extra_config: paystate::permissions::render_authorization(
            &dev_user,
            Some(paystate::permissions::DEV_CLI_USER),
        ),
        env: paystate_broker::ServerEnv(env),
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
    let users: Vec<String> = Role::ALL.iter().map(|r| r.user()).collect();
    println!(
        "nats: one user per role ({}; passwords generated for this run, held in memory only); \
         the parts run as engine, projector, reporter; the demo sends as client",
        users.join(", ")
    );
    println!(
        "nats: connections without credentials (the CLI, `nats` tools) are {}: send commands, \
         read the log, outcomes and projection; no provider signals, no log or bucket writes",
        paystate::permissions::DEV_CLI_USER
    );
    settings.nats_url = server.url();
    Ok((server.url(), Some(server), settings))
}

/// How long a server that was already running gets to answer the engine's first JetStream
/// request before `dev` says it will not.
const EXISTING_SERVER_ANSWER: Duration = Duration::from_secs(5);

/// Whether the server that was already running serves JetStream to the engine's
/// credentials. A server left by an earlier `paystate dev` (killed so that it could not stop
/// its server) answers on the port but knows only that run's passwords: connections without
/// them are the dev CLI user, which may not call the JetStream API, and every part would then
/// fail on its first request with a bare timeout.
async fn jetstream_answers(
    url: &str,
    dev_store: &std::path::Path,
    engine: async_nats::Client,
) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(engine);
    match tokio::time::timeout(EXISTING_SERVER_ANSWER, js.query_account()).await {
        Ok(Ok(_)) => Ok(()),
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer in {} s", EXISTING_SERVER_ANSWER.as_secs()),
            };
            anyhow::bail!(
                "the nats-server already listening at {url} does not serve JetStream to this run's \
                 engine credentials ({why}). If it is one an earlier `paystate dev` left behind, stop \
                 it (`pkill -f 'nats-server -c {}'`) and run again; to use a server of your own, \
                 give each role's credentials in the config (`[nats.roles.<role>]`, README)",
                dev_store.display()
            )
        }
    }
}

/// nats-server's variable for the dev CLI user's password.
const DEV_CLI_PASSWORD_ENV: &str = "PAYSTATE_NATS_DEV_CLI_PASSWORD";

/// 244 random bits (two v4 UUIDs), hex.
fn random_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
