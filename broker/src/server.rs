//! A child nats-server process with JetStream on loopback.

use crate::{locate, BrokerError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How long a starting server may take to accept connections.
const READY_WAIT_MS_MAX: u64 = 15_000;

/// Options for a child nats-server (defaults: a free port, a fresh temporary store).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Client port; 0 picks a free one.
    pub port: u16,
    /// JetStream store directory; `None` uses a fresh temporary directory (removed on drop).
    pub store_dir: Option<PathBuf>,
    /// `sync_interval: always` (fsync every write) instead of the server default.
    pub sync_always: bool,
    /// Extra config-file text (e.g. a `cluster {}` block).
    pub extra_config: String,
    /// Server name (needed in clusters).
    pub name: Option<String>,
    /// A specific nats-server binary instead of the located one (e.g. an old version).
    pub binary: Option<PathBuf>,
    /// Environment of the server process (e.g. the passwords its config names as
    /// `$PAYSTATE_NATS_ENGINE_PASSWORD`); values never printed.
    pub env: ServerEnv,
    /// How the readiness probe connects when the config asks for credentials or TLS.
    pub probe: Probe,
}

/// Environment variables for the server process. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct ServerEnv(pub Vec<(String, String)>);

impl std::fmt::Debug for ServerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// The readiness probe's connection: a user and password allowed `$JS.API.INFO`, and the CA
/// of a TLS server. `Debug` hides the password.
#[derive(Clone, Default)]
pub struct Probe {
    pub user_password: Option<(String, String)>,
    /// A token, for servers with token authentication.
    pub token: Option<String>,
    /// A `.creds` file (user JWT and seed), for servers in operator mode.
    pub creds_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("user", &self.user_password.as_ref().map(|(u, _)| u))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("creds_file", &self.creds_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Probe {
    async fn connect(&self, url: String) -> Result<async_nats::Client, async_nats::ConnectError> {
        let mut opts = match &self.user_password {
            Some((u, p)) => {
                async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            None => match (&self.token, &self.creds_file) {
                (Some(t), _) => async_nats::ConnectOptions::with_token(t.clone()),
                (None, Some(f)) => async_nats::ConnectOptions::with_credentials_file(f).await?,
                (None, None) => async_nats::ConnectOptions::new(),
            },
        };
        if let Some(ca) = &self.ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        opts.connect(url).await
    }
}

/// A running child nats-server. Dropping it kills the process and waits for it (bounded).
pub struct NatsServer {
    child: Option<Child>,
    opts: ServerOptions,
    port: u16,
    store: PathBuf,
    _temp: Option<tempfile::TempDir>,
    binary: PathBuf,
}

/// Why a `Drop` beside tokio's `kill_on_drop`: that kills the server but nobody waits for it,
/// and a killed child nobody waits for stays a zombie once this process ends wherever the
/// machine's first process does not reap orphans (as on these machines). The wait is bounded
/// (SIGKILL ends a nats-server within milliseconds) and blocks only the dropping thread.
impl Drop for NatsServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.start_kill();
        let deadline = Instant::now() + DROP_WAIT;
        while let Ok(None) = child.try_wait() {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Longest a dropped server is waited for after its SIGKILL.
const DROP_WAIT: Duration = Duration::from_secs(2);

/// A free TCP port on 127.0.0.1 (bound then released; tiny race, fine for tests).
pub fn free_port() -> Result<u16, BrokerError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl NatsServer {
    /// Starts nats-server with JetStream and waits until it accepts connections.
    pub async fn start(opts: ServerOptions) -> Result<NatsServer, BrokerError> {
        let binary = match &opts.binary {
            Some(b) => b.clone(),
            None => locate()?,
        };
        let port = if opts.port == 0 {
            free_port()?
        } else {
            opts.port
        };
        let (store, temp) = match &opts.store_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("paystate-nats-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&store)?;
        let mut server = NatsServer {
            child: None,
            opts,
            port,
            store,
            _temp: temp,
            binary,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The server's process id while it runs (benchmarks read its CPU time from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// The server's log file (permission violations are logged here).
    pub fn log_path(&self) -> PathBuf {
        self.store.join(format!("nats-{}.log", self.port))
    }

    /// SIGKILL: no clean shutdown, no final fsync.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        self.kill().await;
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), BrokerError> {
        let conf = self.store.join(format!("nats-{}.conf", self.port));
        std::fs::write(&conf, self.config_text())?;
        let log = self.store.join(format!("nats-{}.log", self.port));
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&conf)
            .envs(
                self.opts
                    .env
                    .0
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                path: self.binary.display().to_string(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready(&log).await
    }

    fn config_text(&self) -> String {
        let name = self
            .opts
            .name
            .clone()
            .unwrap_or_else(|| format!("paystate-{}", self.port));
        let sync = if self.opts.sync_always {
            "  sync_interval: always\n"
        } else {
            ""
        };
        format!(
            "server_name: {name:?}\nlisten: \"127.0.0.1:{port}\"\nmax_payload: {max_payload}\nlog_file: {log:?}\njetstream {{\n  store_dir: {store:?}\n{sync}}}\n{extra}\n",
            port = self.port,
            // The limit every paystate size bound is checked against (events::limits).
            max_payload = paystate_events::limits::NATS_MAX_PAYLOAD_BYTES,
            log = self.store.join(format!("nats-{}.log", self.port)).display().to_string(),
            store = self.store.display().to_string(),
            extra = self.opts.extra_config,
        )
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<(), BrokerError> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(READY_WAIT_MS_MAX) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_status)) = child.try_wait() {
                    break;
                }
            }
            if let Ok(client) = self.opts.probe.connect(self.url()).await {
                // JetStream answers once the server (and, in a cluster, its meta leader) is up.
                // Any well-formed answer without an error counts (old servers included).
                let answer = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.request("$JS.API.INFO", "".into()),
                )
                .await;
                if let Ok(Ok(msg)) = answer {
                    let body: serde_json::Value =
                        serde_json::from_slice(&msg.payload).unwrap_or_default();
                    if body.get("error").is_none() && body.get("type").is_some() {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BrokerError::NotReady {
            port: self.port,
            waited_ms: started.elapsed().as_millis() as u64,
            log: std::fs::read_to_string(log)
                .unwrap_or_default()
                .chars()
                .rev()
                .take(2000)
                .collect::<String>()
                .chars()
                .rev()
                .collect(),
        })
    }
}
