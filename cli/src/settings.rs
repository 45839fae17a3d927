//! Settings: defaults, then a TOML file, then `PAYSTATE_*` environment variables (nested keys
//! with `__`, e.g. `PAYSTATE_ENGINE__PARTITIONS=8`). Validated at start.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// NATS server URL.
    pub nats_url: String,
    /// Where `dev` keeps its nats-server store and logs.
    pub data_dir: PathBuf,
    /// Stream replicas: 1 (dev) or 3 / 5 (a NATS cluster).
    pub replicas: usize,
    /// Refuse delete/purge on the log stream.
    pub protect_log: bool,
    /// How long `send` and `dev` wait for an outcome, in ms.
    pub wait_ms: u64,
    /// Where the gateway's public listener (provider callbacks only) listens (`run`, `dev`).
    pub http: String,
    /// Where the gateway's private listener (queries, attachments; API keys) listens.
    pub http_private: String,
    /// Provider configuration (TOML: base URLs, accounts, secrets; see
    /// deploy/providers.sandbox.toml). Needed by the workers, the reconciler and callbacks.
    pub providers_file: Option<PathBuf>,
    pub engine: EngineSettings,
    pub gateway: GatewaySettings,
}

/// The gateway's bounds and the private listener's API keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Time for one whole request on either listener, in ms (408 after it).
    pub request_timeout_ms: u64,
    /// Requests served at once per listener; more wait (within their timeout).
    pub concurrency_max: usize,
    /// Keys of the private listener: `{name, sha256, scope}` (scope read, write or admin;
    /// sha256 of the key as `paystate apikey new` prints it; never the key itself).
    pub api_keys: Vec<paystate_gateway::auth::ApiKeyConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub partitions: usize,
    pub cache_orders_max: usize,
    pub conflict_retries_max: u32,
    pub ack_wait_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let e = paystate_service::EngineConfig::default();
        let g = paystate_gateway::limits::HttpLimits::default();
        Settings {
            nats_url: "nats://127.0.0.1:4222".into(),
            data_dir: PathBuf::from(".paystate"),
            replicas: 1,
            protect_log: true,
            wait_ms: 10_000,
            http: "127.0.0.1:8080".into(),
            http_private: "127.0.0.1:8081".into(),
            providers_file: None,
            engine: EngineSettings {
                partitions: e.partitions,
                cache_orders_max: e.cache_orders_max,
                conflict_retries_max: e.conflict_retries_max,
                ack_wait_ms: e.ack_wait.as_millis() as u64,
            },
            gateway: GatewaySettings {
                request_timeout_ms: g.request_timeout.as_millis() as u64,
                concurrency_max: g.concurrency_max,
                api_keys: Vec::new(),
            },
        }
    }
}

impl Settings {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(f) if !f.is_file() => bail!("settings file {} does not exist", f.display()),
            Some(f) => fig = fig.merge(Toml::file(f)),
            None => fig = fig.merge(Toml::file("paystate.toml")),
        }
        let settings: Settings = fig
            .merge(
                Env::prefixed("PAYSTATE_")
                    .split("__")
                    .ignore(&["log", "nats_server", "roles"]),
            )
            .extract()
            .context("invalid settings")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if ![1, 3, 5].contains(&self.replicas) {
            bail!("replicas must be 1, 3 or 5 (got {})", self.replicas);
        }
        if self.engine.partitions == 0 || self.engine.partitions > 1024 {
            bail!(
                "engine.partitions must be 1..=1024 (got {})",
                self.engine.partitions
            );
        }
        if self.engine.cache_orders_max == 0 {
            bail!("engine.cache_orders_max must be positive");
        }
        if self.gateway.request_timeout_ms == 0 || self.gateway.concurrency_max == 0 {
            bail!("gateway.request_timeout_ms and gateway.concurrency_max must be positive");
        }
        if self.http == self.http_private {
            bail!(
                "http and http_private must differ: callbacks and the private API never share \
                 a listener (both are {:?})",
                self.http
            );
        }
        self.api_keys()?;
        for url in self.nats_url.split(',') {
            if !url.trim().starts_with("nats://") && !url.trim().starts_with("tls://") {
                bail!(
                    "nats_url must be nats:// or tls:// URLs, comma-separated (got {:?})",
                    self.nats_url
                );
            }
        }
        Ok(())
    }

    pub fn log(&self) -> paystate_journal::LogSettings {
        paystate_journal::LogSettings {
            replicas: self.replicas,
            protect_log: self.protect_log,
            ..Default::default()
        }
    }

    pub fn engine(&self) -> paystate_service::EngineConfig {
        paystate_service::EngineConfig {
            partitions: self.engine.partitions,
            cache_orders_max: self.engine.cache_orders_max,
            conflict_retries_max: self.engine.conflict_retries_max,
            ack_wait: Duration::from_millis(self.engine.ack_wait_ms),
            ..Default::default()
        }
    }

    /// The private listener's keys, checked (hashes only; see `paystate apikey new`).
    pub fn api_keys(&self) -> anyhow::Result<paystate_gateway::auth::ApiKeys> {
        paystate_gateway::auth::ApiKeys::new(&self.gateway.api_keys)
            .map_err(|e| anyhow::anyhow!("gateway.api_keys: {e}"))
    }

    /// Both listeners' timeout and concurrency limit.
    pub fn http_limits(&self) -> paystate_gateway::limits::HttpLimits {
        paystate_gateway::limits::HttpLimits {
            request_timeout: Duration::from_millis(self.gateway.request_timeout_ms),
            concurrency_max: self.gateway.concurrency_max,
        }
    }

    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.wait_ms)
    }

    /// The provider configuration from `providers_file`, validated; `None` when unset.
    pub fn providers(&self) -> anyhow::Result<Option<paystate_adapters::config::AdaptersConfig>> {
        let Some(path) = &self.providers_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read providers file {}", path.display()))?;
        let config: paystate_adapters::config::AdaptersConfig = toml::from_str(&text)
            .with_context(|| format!("invalid providers file {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("invalid providers file {}", path.display()))?;
        Ok(Some(config))
    }
}

/// Connects to NATS (one URL or a comma-separated cluster list), reconnecting forever.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    paystate_service::connect(url, "paystate")
        .await
        .map_err(anyhow::Error::msg)
}
