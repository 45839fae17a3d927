//! `paystate`: the binary. Thin: parse arguments, load settings, run one subcommand.

mod cmd;
mod runtime;
mod settings;
mod timeline;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc: the long reads (audit, rebuild) allocate and free per commit on several threads;
/// it is markedly faster there than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "paystate",
    version,
    about = "Event-sourced payment state machine engine on NATS JetStream"
)]
struct Cli {
    /// Settings file (TOML). Default: ./paystate.toml if present. Environment variables
    /// PAYSTATE_* override it (e.g. PAYSTATE_NATS_URL, PAYSTATE_ENGINE__PARTITIONS).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Parse the arguments and settings, report them valid, and stop (used to check
    /// deployment files against this binary's real flags).
    #[arg(long, global = true, hide = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything on one machine: a local nats-server (started if none answers), the engine,
    /// and a sample order driven through its lifecycle with its timeline printed.
    Dev(cmd::dev::Args),
    /// Run an engine instance against the configured NATS until Ctrl-C.
    Run(cmd::run::Args),
    /// The provider sandboxes as a standalone server.
    Sandbox(cmd::sandbox::Args),
    /// Health check: NATS reachable, new enough, log present (exit 0 / 1).
    Check(cmd::check::Args),
    /// Ask a running process's operations listener whether it is ready (`/readyz`; exit 0/1).
    Health(cmd::health::Args),
    /// Publish a command (JSON from a file or stdin) and print its outcome.
    Send(cmd::send::Args),
    /// Upload a file (Paykassma: the transfer screenshot) and send `confirm_transfer` naming it.
    Attach(cmd::attach::Args),
    /// Show one order's commits, events and state, read from the log.
    Show(cmd::show::Args),
    /// Set aside a message in an order's log that is not a commit (operator repair).
    Quarantine(cmd::quarantine::Args),
    /// Dead letters: messages a consumer gave up on (`dlq list | show SEQ | redrive SEQ`).
    #[command(subcommand)]
    Dlq(cmd::dlq::Command),
    /// Write (or with --check, verify) the JSON Schemas of every command and event.
    Schemas(cmd::schemas::Args),
    /// One order from the projection (`order show <id>`).
    #[command(subcommand)]
    Order(cmd::order::Command),
    /// Orders from the projection, filtered (`orders list --state captured ...`).
    #[command(subcommand)]
    Orders(cmd::orders::Command),
    /// Orders flagged for review, and an operator's resolution (`review list | resolve`).
    #[command(subcommand)]
    Review(cmd::review::Command),
    /// An order's timeline re-derived from the log, and its state at a sequence or time.
    Replay(cmd::replay::Args),
    /// Re-fold the whole log through the core and report everything wrong (exit 1 if any).
    Audit(cmd::audit::Args),
    /// Write the log (or a range) as JSON Lines.
    Export(cmd::export::Args),
    /// Load an export into an empty log stream (refused if any hash chain is broken).
    Import(cmd::import::Args),
    /// The order projection: run the projector, rebuild and swap, status and lag.
    #[command(subcommand)]
    Project(cmd::project::Command),
    /// API keys of the gateway's private listener (`apikey new --scope read`).
    #[command(subcommand)]
    Apikey(cmd::apikey::Command),
    /// The engine's NATS service, as `nats micro ls|info|stats paystate` show it.
    #[command(subcommand)]
    Service(cmd::service::Command),
    /// Benchmark re-reading the log: raw ordered read vs audit vs projection rebuild (release).
    BenchRead(cmd::bench_read::Args),
    /// Benchmark the whole engine against the raw JetStream yardstick in the same run: table
    /// (or --json) of throughput, latency, contention, reads, pure core, memory, durability
    /// (release build; about 10 minutes, --quick about one).
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let built = match serves(&cli.command) {
        true => runtime::serving(),
        false => runtime::reading(),
    };
    match built {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether a command serves requests (the engine, the whole stack, the bench driving them):
/// those run on [`runtime::serving`], every other command on [`runtime::reading`].
fn serves(command: &Command) -> bool {
    matches!(
        command,
        Command::Dev(_) | Command::Run(_) | Command::Bench(_)
    )
}

async fn run(cli: Cli) -> std::process::ExitCode {
    init_tracing();
    let result = match settings::Settings::load(cli.config.as_deref()) {
        Err(e) => Err(e),
        Ok(settings) if cli.dry_run => dry_run(&settings, &cli.command),
        Ok(settings) => match cli.command {
            Command::Dev(a) => cmd::dev::run(settings, a).await,
            Command::Run(a) => cmd::run::run(settings, a).await,
            Command::Sandbox(a) => cmd::sandbox::run(a).await,
            Command::Check(a) => cmd::check::run(settings, a).await,
            Command::Health(a) => cmd::health::run(a).await,
            Command::Send(a) => cmd::send::run(settings, a).await,
            Command::Attach(a) => cmd::attach::run(settings, a).await,
            Command::Show(a) => cmd::show::run(settings, a).await,
            Command::Quarantine(a) => cmd::quarantine::run(settings, a).await,
            Command::Dlq(c) => cmd::dlq::run(settings, c).await,
            Command::Schemas(a) => cmd::schemas::run(a),
            Command::Order(c) => cmd::order::run(settings, c).await,
            Command::Orders(c) => cmd::orders::run(settings, c).await,
            Command::Review(c) => cmd::review::run(settings, c).await,
            Command::Replay(a) => cmd::replay::run(settings, a).await,
            Command::Audit(a) => cmd::audit::run(settings, a).await,
            Command::Export(a) => cmd::export::run(settings, a).await,
            Command::Import(a) => cmd::import::run(settings, a).await,
            Command::Project(c) => cmd::project::run(settings, c).await,
            Command::Apikey(c) => cmd::apikey::run(c),
            Command::Service(c) => cmd::service::run(settings, c).await,
            Command::BenchRead(a) => until_stopped(cmd::bench_read::run(a)).await,
            Command::Bench(a) => until_stopped(cmd::bench::run(a)).await,
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs a command that starts its own nats-server and processes (the benchmarks) until it ends
/// or a stop signal comes (Ctrl-C, SIGTERM, SIGHUP). On a signal the command is dropped, and
/// with it its nats-server (stopped and waited for) and the processes it started (killed on
/// drop); exit code 130. Before, any signal but a terminal's Ctrl-C ended the process on the
/// spot and left its nats-server running without a parent.
async fn until_stopped(
    work: impl std::future::Future<Output = anyhow::Result<std::process::ExitCode>>,
) -> anyhow::Result<std::process::ExitCode> {
    let mut stop = cmd::stop::Stop::listen()?;
    tokio::select! {
        result = work => result,
        signal = stop.signal() => {
            eprintln!("{signal}: stopped; the benchmark's nats-server and processes are stopped");
            Ok(std::process::ExitCode::from(130))
        }
    }
}

/// `--dry-run`: the arguments parsed and the settings loaded; `run` also checks its roles
/// and the providers file. Nothing connects or listens.
fn dry_run(
    settings: &settings::Settings,
    command: &Command,
) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Run(args) = command {
        args.check(settings)?;
    }
    println!("ok: arguments and settings are valid");
    Ok(std::process::ExitCode::SUCCESS)
}

/// Logs to stderr, filtered by `PAYSTATE_LOG` (default `warn`); `PAYSTATE_LOG_FORMAT=json`
/// writes one JSON object per line (with the current span's fields: order id, command id,
/// provider) for log shippers instead of text.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYSTATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("PAYSTATE_LOG_FORMAT").as_deref() {
        Ok("json") => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        _ => fmt.init(),
    }
}
