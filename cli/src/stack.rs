//! Composing paystate's parts into one process. Every part is optional, so the same code runs
//! `paystate run` (roles chosen by flags), `paystate dev` (everything plus sandboxes) and the
//! end-to-end tests (everything, with short deadlines).

use crate::permissions::Role;
use anyhow::Context;
use paystate_adapters::config::AdaptersConfig;
use paystate_adapters::Adapters;
use paystate_gateway::callbacks::Callbacks;
use paystate_journal::LogSettings;
use paystate_projection::{start_projector, ProjectionStore, ProjectorConfig, ProjectorHandle};
use paystate_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use paystate_service::{run_engine, EngineConfig, EngineHandle};
use paystate_workers::{
    run_reconciler, run_workers, ReconcilerConfig, ReconcilerHandle, WorkerConfig, WorkersHandle,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which parts to run, and how.
pub struct StackOptions {
    pub log: LogSettings,
    pub engine: Option<EngineConfig>,
    pub projector: bool,
    pub workers: Option<WorkerConfig>,
    pub reconciler: Option<ReconcilerConfig>,
    /// The gateway's two listeners (bound by the caller, so the public address can be handed
    /// to providers before it serves), its keys and bounds.
    pub gateway: Option<GatewayListeners>,
    /// Provider configuration: needed by workers, the reconciler and callbacks.
    pub adapters: Option<AdaptersConfig>,
}

/// The gateway: a public listener (provider callbacks only) and a private one (queries and
/// attachments, behind API keys), with the bounds both get.
pub struct GatewayListeners {
    pub public: TcpListener,
    pub private: TcpListener,
    pub keys: paystate_gateway::auth::ApiKeys,
    pub limits: paystate_gateway::limits::HttpLimits,
}

impl GatewayListeners {
    /// Binds both addresses.
    pub async fn bind(
        public: &str,
        private: &str,
        keys: paystate_gateway::auth::ApiKeys,
        limits: paystate_gateway::limits::HttpLimits,
    ) -> anyhow::Result<GatewayListeners> {
        let bind = |addr: String, what: &'static str| async move {
            TcpListener::bind(&addr)
                .await
                .with_context(|| format!("the gateway's {what} listener cannot listen on {addr}"))
        };
        Ok(GatewayListeners {
            public: bind(public.to_string(), "public").await?,
            private: bind(private.to_string(), "private").await?,
            keys,
            limits,
        })
    }
}

/// The NATS connections of a stack: one shared by every part, or one per permission role
/// (each part connects as its role's NATS user; see [`crate::permissions`]).
#[derive(Clone)]
pub struct Connections {
    shared: Option<async_nats::Client>,
    by_role: BTreeMap<Role, async_nats::Client>,
}

impl Connections {
    /// One connection for every part.
    pub fn shared(client: async_nats::Client) -> Connections {
        Connections {
            shared: Some(client),
            by_role: BTreeMap::new(),
        }
    }

    /// One connection per role; a part whose role has none is an error at start.
    pub fn per_role(by_role: BTreeMap<Role, async_nats::Client>) -> Connections {
        Connections {
            shared: None,
            by_role,
        }
    }

    /// Every connection (for readiness checks), shared one first.
    pub fn clients(&self) -> Vec<async_nats::Client> {
        self.shared
            .iter()
            .chain(self.by_role.values())
            .cloned()
            .collect()
    }

    /// Adds a connection for `role` unless it already has one (optional users such as the
    /// dashboard's operator and client connections).
    pub fn with_role(mut self, role: Role, client: async_nats::Client) -> Connections {
        if self.shared.is_none() {
            self.by_role.entry(role).or_insert(client);
        }
        self
    }

    /// Whether `role`'s parts have a connection.
    pub fn has(&self, role: Role) -> bool {
        self.shared.is_some() || self.by_role.contains_key(&role)
    }

    /// The connection of `role`'s parts.
    pub fn get(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        self.by_role
            .get(&role)
            .or(self.shared.as_ref())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no NATS connection for role {role}"))
    }
}

impl From<async_nats::Client> for Connections {
    fn from(client: async_nats::Client) -> Connections {
        Connections::shared(client)
    }
}

/// The running parts.
pub struct Stack {
    pub engine: Option<EngineHandle>,
    pub projector: Option<ProjectorHandle>,
    pub workers: Option<WorkersHandle>,
    pub reconciler: Option<ReconcilerHandle>,
    pub callbacks: Option<Callbacks>,
    pub projection: ProjectionStore,
    /// `http://addr` of the gateway's public listener (callbacks), if it runs.
    pub gateway_url: Option<String>,
    /// `http://addr` of the gateway's private listener (queries, attachments), if it runs.
    pub private_url: Option<String>,
    gateway: Option<(watch::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl Stack {
    /// Starts the chosen parts: the engine first (it creates the streams), then the rest.
    ///
    /// `nats` is one connection for every part (an `async_nats::Client`) or one per
    /// permission role ([`Connections::per_role`]): each part uses its role's.
    pub async fn start(nats: impl Into<Connections>, opts: StackOptions) -> anyhow::Result<Stack> {
        let nats: Connections = nats.into();
        let engine = match opts.engine {
            Some(cfg) => Some(run_engine(nats.get(Role::Engine)?, opts.log.clone(), cfg).await?),
            None => None,
        };
        // The projection handle: the projector's, else the gateway's (queries), else any.
        let reader = if opts.projector {
            Role::Projector
        } else if opts.gateway.is_some() || opts.workers.is_some() || opts.reconciler.is_some() {
            Role::Reporter
        } else {
            Role::Engine
        };
        let js = async_nats::jetstream::new(nats.get(reader)?);
        let projection =
            ProjectionStore::open(js, &opts.log.events_stream, opts.log.replicas).await?;
        let projector = match opts.projector {
            true => Some(start_projector(projection.clone(), ProjectorConfig::default()).await?),
            false => None,
        };
        let adapters = match opts.adapters {
            Some(cfg) => Some(Arc::new(
                Adapters::new(cfg).context("provider configuration")?,
            )),
            None => None,
        };
        let need = |what: &str| anyhow::anyhow!("{what} needs provider configuration (adapters)");
        let workers = match opts.workers {
            Some(cfg) => Some(
                run_workers(
                    nats.get(Role::Reporter)?,
                    &opts.log,
                    adapters.clone().ok_or_else(|| need("workers"))?,
                    cfg,
                )
                .await
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let reconciler = match opts.reconciler {
            Some(cfg) => Some(
                run_reconciler(
                    nats.get(Role::Reporter)?,
                    &opts.log.events_stream,
                    adapters.clone().ok_or_else(|| need("the reconciler"))?,
                    cfg,
                )
                .await
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let callbacks = match &adapters {
            Some(a) if opts.gateway.is_some() => Some(
                Callbacks::open(nats.get(Role::Reporter)?, a.clone(), opts.log.replicas)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            _ => None,
        };
        let (gateway_url, private_url, gateway) = match opts.gateway {
            Some(g) => {
                let url = format!("http://{}", g.public.local_addr()?);
                let private_url = format!("http://{}", g.private.local_addr()?);
                let state = paystate_gateway::AppState {
                    projection: projection.clone(),
                };
                let public = paystate_gateway::public_router(callbacks.clone(), g.limits);
                // The dashboard is an extra: a gateway whose user cannot read the log for it
                // still serves callbacks and queries.
                let dashboard =
                    match dashboard(&nats, &opts.log, &g.keys, &projection, callbacks.as_ref())
                        .await
                    {
                        Ok(d) => Some(d),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "operations dashboard off");
                            None
                        }
                    };
                let private = paystate_gateway::private_router_with_dashboard(
                    state,
                    callbacks.as_ref().map(Callbacks::attachments),
                    g.keys,
                    g.limits,
                    dashboard,
                );
                let (stop, stopped) = watch::channel(());
                let stopping = |mut rx: watch::Receiver<()>| async move {
                    let _ = rx.changed().await;
                };
                let (on_public, on_private) = (stopping(stopped.clone()), stopping(stopped));
                let task = tokio::spawn(async move {
                    let (public, private) = tokio::join!(
                        paystate_gateway::serve(g.public, public, on_public),
                        paystate_gateway::serve(g.private, private, on_private),
                    );
                    public.and(private)
                });
                (Some(url), Some(private_url), Some((stop, task)))
            }
            None => (None, None, None),
        };
        Ok(Stack {
            engine,
            projector,
            workers,
            reconciler,
            callbacks,
            projection,
            gateway_url,
            private_url,
            gateway,
        })
    }

    /// Stops the gateway (answers in hand finish), then the workers, reconciler, projector
    /// and engine.
    pub async fn shutdown(self) {
        if let Some((stop, task)) = self.gateway {
            let _ = stop.send(());
            let _ = task.await;
        }
        if let Some(w) = self.workers {
            w.shutdown().await;
        }
        if let Some(r) = self.reconciler {
            r.shutdown().await;
        }
        if let Some(p) = self.projector {
            p.shutdown().await;
        }
        if let Some(e) = self.engine {
            e.shutdown().await;
        }
    }

    /// Stops the gateway at once (in-flight requests are cut), as a crash would.
    pub async fn kill_gateway(&mut self) {
        if let Some((_, task)) = self.gateway.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Everything plus a sandbox of all five providers, wired together: the gateway serves on
/// `gateway`'s listeners (bound by the caller), the sandbox calls the public one back, the
/// adapters call the sandbox.
pub async fn with_sandbox(
    nats: impl Into<Connections>,
    log: LogSettings,
    engine: EngineConfig,
    workers: WorkerConfig,
    reconciler: ReconcilerConfig,
    sandbox_cfg: SandboxConfig,
    gateway: GatewayListeners,
) -> anyhow::Result<(Stack, SandboxHandle, SandboxConfig)> {
    let gateway_url = format!("http://{}", gateway.public.local_addr()?);
    let mut sandbox_cfg = sandbox_cfg;
    sandbox_cfg.gateway_url = Some(gateway_url.clone());
    let sandbox = Sandbox::start(sandbox_cfg.clone())
        .await
        .map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    let adapters = paystate_sandbox::wiring::adapters_config(&sandbox, &sandbox_cfg, &gateway_url)
        .map_err(anyhow::Error::msg)?;
    let opts = StackOptions {
        log,
        engine: Some(engine),
        projector: true,
        workers: Some(workers),
        reconciler: Some(reconciler),
        gateway: Some(gateway),
        adapters: Some(adapters),
    };
    let stack = Stack::start(nats, opts).await?;
    Ok((stack, sandbox, sandbox_cfg))
}

/// The operations dashboard of the gateway: reads with the operator's connection (the log,
/// raw callbacks, dead letters) and sends `resolve_review` with it too (the operator plane,
/// `paystate.op.<order>`, admits only the operator role). Without an operator connection (a
/// per-role setup that gives the gateway none) it reads as the reporter and its actions show
/// as unavailable. The client's connection, when there is one, redrives client commands.
async fn dashboard(
    nats: &Connections,
    log: &LogSettings,
    keys: &paystate_gateway::auth::ApiKeys,
    projection: &ProjectionStore,
    callbacks: Option<&Callbacks>,
) -> anyhow::Result<paystate_gateway::dashboard::Dashboard> {
    let operator = nats.get(Role::Operator).ok();
    let reader = match &operator {
        Some(op) => op.clone(),
        None => nats.get(Role::Reporter)?,
    };
    let js = async_nats::jetstream::new(reader);
    let journal = paystate_journal::Journal::existing(js.clone(), &log.events_stream)
        .await
        .context("the dashboard reads the log")?;
    let client = nats.get(Role::Client).ok();
    let commands = operator.clone().map(paystate_service::Client::new);
    let redrive_signals = nats
        .get(Role::Reporter)
        .ok()
        .map(async_nats::jetstream::new);
    Ok(paystate_gateway::dashboard::Dashboard::new(
        paystate_gateway::dashboard::DashboardParts {
            keys: keys.clone(),
            projection: projection.clone(),
            journal,
            js,
            commands,
            callback_stats: callbacks.map(Callbacks::stats),
            redrive_commands: client.map(async_nats::jetstream::new),
            redrive_signals,
            redrive_operator: operator.map(async_nats::jetstream::new),
        },
    ))
}
