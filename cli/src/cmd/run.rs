//! `paystate run`: one paystate process against the configured NATS, until Ctrl-C. Which
//! parts it runs is chosen with `--roles` (several processes with different roles make a
//! deployment; see docker-compose.yml).

use crate::settings::Settings;
use anyhow::bail;
use paystate::stack::{GatewayListeners, Stack, StackOptions};
use paystate_workers::{ReconcilerConfig, WorkerConfig};
use std::process::ExitCode;

/// Every role a process can take.
pub const ROLES: [&str; 5] = ["engine", "projector", "workers", "reconciler", "gateway"];

#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated roles: engine, projector, workers, reconciler, gateway, or `all`.
    /// `all` runs workers and the reconciler only when `providers_file` is set; naming them
    /// without it is an error.
    #[arg(long, env = "PAYSTATE_ROLES", default_value = "all")]
    roles: String,
    /// Where the gateway's public listener (provider callbacks) listens (overrides the
    /// `http` setting).
    #[arg(long)]
    http: Option<String>,
    /// Where the gateway's private listener (queries, attachments; API keys) listens
    /// (overrides the `http_private` setting).
    #[arg(long)]
    http_private: Option<String>,
}

impl Args {
    /// Checks the roles against the settings (for `--dry-run`).
    pub fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        parse_roles(&self.roles, settings.providers()?.is_some()).map(|_| ())
    }
}

/// The permission roles (NATS users) the parts run with, without repeats.
pub fn permission_roles(parts: &[&str]) -> Vec<paystate::permissions::Role> {
    let mut out: Vec<_> = parts
        .iter()
        .filter_map(|p| paystate::permissions::Role::of_part(p))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The roles named in `text`, checked.
pub fn parse_roles(text: &str, have_providers: bool) -> anyhow::Result<Vec<&'static str>> {
    if text.trim() == "all" {
        let all = ROLES.iter().copied();
        return Ok(all
            .filter(|r| have_providers || !matches!(*r, "workers" | "reconciler"))
            .collect());
    }
    let mut roles = Vec::new();
    for r in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        match ROLES.iter().find(|k| **k == r) {
            Some(k) if matches!(*k, "workers" | "reconciler") && !have_providers => {
                bail!("role {k} needs provider configuration: set providers_file (PAYSTATE_PROVIDERS_FILE)")
            }
            Some(k) => roles.push(*k),
            None => bail!("unknown role {r:?}; roles are {} or all", ROLES.join(", ")),
        }
    }
    if roles.is_empty() {
        bail!("no roles given");
    }
    Ok(roles)
}

/// The recorder every part's metrics go to, and the operations listener (`metrics_listen`,
/// unless empty), served before NATS is connected (alive, not ready yet).
async fn serve_ops(
    settings: &Settings,
    engine: bool,
) -> anyhow::Result<Option<(String, paystate::ops::Readiness)>> {
    paystate_gateway::telemetry::install()?;
    if settings.metrics_listen.trim().is_empty() {
        return Ok(None);
    }
    let log = settings.log();
    let mut streams = vec![log.events_stream];
    if engine {
        streams.push(log.commands_stream);
    }
    let ready = paystate::ops::Readiness::new(streams);
    let (url, _task) = paystate::ops::serve(
        &settings.metrics_listen,
        ready.clone(),
        settings.http_limits(),
    )
    .await?;
    Ok(Some((url, ready)))
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let providers = settings.providers()?;
    let roles = parse_roles(&args.roles, providers.is_some())?;
    let http = args.http.unwrap_or_else(|| settings.http.clone());
    let http_private = args
        .http_private
        .unwrap_or_else(|| settings.http_private.clone());
    let ops = serve_ops(&settings, roles.contains(&"engine")).await?;
    if let Some((url, _)) = &ops {
        eprintln!(
            "operations: {url}/metrics, {url}/healthz, {url}/readyz (no keys: keep it private)"
        );
    }
    // One NATS connection per permission role the parts need (one per distinct credential
    // set: roles configured with the same credentials share it).
    let nats = settings
        .connections(&permission_roles(&roles), true)
        .await?;
    let has = |r: &str| roles.contains(&r);
    let nats = match has("gateway") {
        true => dashboard_connections(&settings, nats).await,
        false => nats,
    };
    if let Some((_, ready)) = &ops {
        ready.connected(nats.clients());
    }
    let gateway = match has("gateway") {
        true => Some(
            GatewayListeners::bind(
                &http,
                &http_private,
                settings.api_keys()?,
                settings.http_limits(),
            )
            .await?,
        ),
        false => None,
    };
    let opts = StackOptions {
        log: settings.log(),
        engine: has("engine").then(|| settings.engine()),
        projector: has("projector"),
        workers: has("workers").then(WorkerConfig::default),
        reconciler: has("reconciler").then(ReconcilerConfig::default),
        gateway,
        adapters: providers,
    };
    let stack = Stack::start(nats, opts).await?;
    if has("projector") {
        paystate::ops::spawn_projection_sampler(stack.projection.clone());
    }
    if let Some((_, ready)) = &ops {
        ready.started();
    }
    eprintln!(
        "paystate running against {} with roles {} (Ctrl-C to stop)",
        paystate_service::connect::redacted_urls(&settings.nats_url),
        roles.join(",")
    );
    if let (Some(public), Some(private)) = (&stack.gateway_url, &stack.private_url) {
        eprintln!("gateway: {public}/callbacks/<provider> (public: provider callbacks)");
        eprintln!(
            "gateway: {private}/orders, {private}/attachments (private: Authorization: Bearer <key>)"
        );
        if settings.gateway.api_keys.is_empty() {
            eprintln!("gateway: no API keys configured (gateway.api_keys): the private API answers 401 to everyone; create one with `paystate apikey new --scope read`");
        }
    }
    let signal = crate::cmd::stop::stop_signal().await?;
    eprintln!("{signal}: stopping, finishing work in hand");
    stack.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The gateway's operations dashboard reads as the operator and sends `resolve_review` as
/// the operator (on `paystate.op.<order>`, the operator's alone); it redrives client
/// commands as the client: connections for those roles where their credentials admit them.
/// Without an operator connection the dashboard reads as the reporter and its actions show
/// as unavailable.
async fn dashboard_connections(
    settings: &Settings,
    mut nats: paystate::stack::Connections,
) -> paystate::stack::Connections {
    use paystate::permissions::Role;
    for role in [Role::Operator, Role::Client] {
        if nats.has(role) {
            continue;
        }
        match settings.connect_as(role).await {
            Ok(client) => nats = nats.with_role(role, client),
            Err(e) => tracing::warn!(
                %role,
                error = %e,
                "dashboard: no connection for this role; its actions are unavailable"
            ),
        }
    }
    nats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_need_providers_where_they_call_providers() {
        assert_eq!(
            parse_roles("all", false).unwrap(),
            vec!["engine", "projector", "gateway"]
        );
        assert_eq!(parse_roles("all", true).unwrap().len(), 5);
        assert_eq!(parse_roles("engine", false).unwrap(), vec!["engine"]);
        assert!(parse_roles("workers", false).is_err());
        assert!(parse_roles("engine,teleporter", true).is_err());
        assert!(parse_roles("", true).is_err());
    }
}
