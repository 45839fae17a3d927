//! Settings: defaults, then a TOML file, then `PAYSTATE_*` environment variables (nested keys
//! with `__`, e.g. `PAYSTATE_ENGINE__PARTITIONS=8`). Validated at start.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use paystate::permissions::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// NATS server URL.
    pub nats_url: String,
    /// How to authenticate to NATS, TLS, the inbox prefix, per-role credentials.
    #[serde(default)]
    pub nats: NatsSettings,
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
    /// Where every `run` process serves `/metrics`, `/healthz` and `/readyz` without keys
    /// (docs/operations.md). Default `127.0.0.1:0`: a free loopback port, printed at start,
    /// so processes on one machine never collide; empty: not served.
    pub metrics_listen: String,
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
    /// Deliveries of a command before it is dead-lettered.
    pub deliveries_max: i64,
    /// Subject prefixes (ending in `.`) the engine may publish outcomes below.
    pub inbox_prefixes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        let e = paystate_service::EngineConfig::default();
        let g = paystate_gateway::limits::HttpLimits::default();
        Settings {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats: NatsSettings::default(),
            data_dir: PathBuf::from(".paystate"),
            replicas: 1,
            protect_log: true,
            wait_ms: 10_000,
            http: "127.0.0.1:8080".into(),
            http_private: "127.0.0.1:8081".into(),
            metrics_listen: "127.0.0.1:0".into(),
            providers_file: None,
            engine: EngineSettings {
                partitions: e.partitions,
                cache_orders_max: e.cache_orders_max,
                conflict_retries_max: e.conflict_retries_max,
                ack_wait_ms: e.ack_wait.as_millis() as u64,
                deliveries_max: e.deliveries_max,
                inbox_prefixes: e.inbox_prefixes,
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
                    // Not settings: `paystate attach`'s key and API URL (also read by the
                    // examples/), so they may sit in the same shell.
                    .ignore(&[
                        "log",
                        "log_format",
                        "nats_server",
                        "roles",
                        "api_key",
                        "api_url",
                    ])
                    // nats-server's password variables (deploy/nats/paystate-users.conf).
                    .filter(|k| !is_server_password_var(k.as_str())),
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
        if !(1..=1000).contains(&self.engine.deliveries_max) {
            bail!(
                "engine.deliveries_max must be 1..=1000 (got {})",
                self.engine.deliveries_max
            );
        }
        if self.engine.inbox_prefixes.is_empty() {
            bail!("engine.inbox_prefixes must name at least one prefix (default [\"_INBOX.\"])");
        }
        for p in &self.engine.inbox_prefixes {
            if !paystate_events::subjects::inbox_prefix_ok(p) {
                bail!("engine.inbox_prefixes: {p:?} is not an inbox prefix (a literal subject prefix ending in '.', not starting with '$' or 'paystate.')");
            }
        }
        if let Some(p) = &self.nats.inbox_prefix {
            // Every paystate process of these settings replies-to below it: clients' commands
            // and the engine's own forwarded ones (queue-path affinity) go unanswered otherwise.
            let inbox = format!("{p}.");
            if !self
                .engine
                .inbox_prefixes
                .iter()
                .any(|e| inbox.starts_with(e.as_str()))
            {
                bail!(
                    "nats.inbox_prefix {p:?} is not below any of engine.inbox_prefixes {:?}: the engine would answer nothing sent with it",
                    self.engine.inbox_prefixes
                );
            }
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
        self.nats.validate(&self.nats_url)?;
        for url in self.nats_url.split(',') {
            if !url.trim().starts_with("nats://") && !url.trim().starts_with("tls://") {
                bail!(
                    "nats_url must be nats:// or tls:// URLs, comma-separated (got {:?})",
                    paystate_service::connect::redacted_urls(&self.nats_url)
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
            deliveries_max: self.engine.deliveries_max,
            inbox_prefixes: self.engine.inbox_prefixes.clone(),
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

/// `PAYSTATE_NATS_<ROLE>_PASSWORD` (and the dev user's): variables for nats-server's config,
/// not paystate settings.
fn is_server_password_var(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("nats_") && key.ends_with("_password") && !key.contains('.')
}

/// `[nats]`: authentication (at most one method), TLS, the reply-inbox prefix, and
/// `[nats.roles.<role>]` overrides of the authentication for each permission role (client,
/// engine, reporter, projector, operator, admin). Env: `PAYSTATE_NATS__USER`,
/// `PAYSTATE_NATS__TLS__CA_FILE`, `PAYSTATE_NATS__ROLES__ENGINE__PASSWORD`, ...
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    pub user: Option<String>,
    // Why skip: a secret never serializes; settings only read it.
    #[serde(skip_serializing)]
    pub password: Option<paystate_service::Secret>,
    #[serde(skip_serializing)]
    pub token: Option<paystate_service::Secret>,
    #[serde(skip_serializing)]
    pub nkey_seed: Option<paystate_service::Secret>,
    pub nkey_seed_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    /// Prefix of reply inboxes of every role (default: `_INBOX` for the client role, the role's
    /// own for the others, see `Role::inbox_prefix`); the engine must be configured to accept it.
    pub inbox_prefix: Option<String>,
    pub tls: paystate_service::NatsTls,
    pub roles: std::collections::BTreeMap<String, RoleNats>,
}

/// One role's credentials: when any of these is set it replaces the top-level authentication
/// for that role (TLS CA and `required` stay shared; a client certificate may be per role).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleNats {
    pub user: Option<String>,
    // Why skip: a secret never serializes; settings only read it.
    #[serde(skip_serializing)]
    pub password: Option<paystate_service::Secret>,
    #[serde(skip_serializing)]
    pub token: Option<paystate_service::Secret>,
    #[serde(skip_serializing)]
    pub nkey_seed: Option<paystate_service::Secret>,
    pub nkey_seed_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl NatsSettings {
    fn auth(&self) -> paystate_service::NatsAuth {
        paystate_service::NatsAuth {
            user: self.user.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            nkey_seed: self.nkey_seed.clone(),
            nkey_seed_file: self.nkey_seed_file.clone(),
            creds_file: self.creds_file.clone(),
        }
    }

    /// The connection options of `role` (its override, else the top-level authentication).
    pub fn for_role(&self, urls: &str, role: Role) -> paystate_service::NatsOptions {
        let mut auth = self.auth();
        let mut tls = self.tls.clone();
        if let Some(r) = self.roles.get(role.name()) {
            let own = paystate_service::NatsAuth {
                user: r.user.clone(),
                password: r.password.clone(),
                token: r.token.clone(),
                nkey_seed: r.nkey_seed.clone(),
                nkey_seed_file: r.nkey_seed_file.clone(),
                creds_file: r.creds_file.clone(),
            };
            if own.is_set() {
                auth = own;
            }
            if r.cert_file.is_some() || r.key_file.is_some() {
                tls.cert_file = r.cert_file.clone();
                tls.key_file = r.key_file.clone();
            }
        }
        // Why a prefix per role: the shipped permissions let each role subscribe only below
        // its own (Role::inbox_prefix), so no other role reads its replies; `nats.inbox_prefix`
        // replaces it for every role (its permissions are then the operator's to set).
        let inbox_prefix = self
            .inbox_prefix
            .clone()
            .or_else(|| (role != Role::Client).then(|| role.inbox_prefix().to_string()));
        paystate_service::NatsOptions {
            urls: urls.to_string(),
            auth,
            tls,
            inbox_prefix,
        }
    }

    /// Every role's options valid, role names known. Errors never quote secrets.
    pub fn validate(&self, urls: &str) -> anyhow::Result<()> {
        for name in self.roles.keys() {
            if Role::parse(name).is_none() {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                bail!(
                    "nats.roles.{name}: unknown role; roles are {}",
                    known.join(", ")
                );
            }
        }
        self.auth().validate("nats").map_err(anyhow::Error::msg)?;
        for role in Role::ALL {
            self.for_role(urls, role)
                .validate()
                .map_err(|e| anyhow::anyhow!("nats.roles.{role}: {e}"))?;
        }
        Ok(())
    }
}

impl Settings {
    /// The NATS connection options of `role`.
    pub fn nats_for(&self, role: Role) -> paystate_service::NatsOptions {
        self.nats.for_role(&self.nats_url, role)
    }

    /// Connects as `role` (fails fast).
    pub async fn connect_as(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        paystate_service::connect_with(&self.nats_for(role), &format!("paystate-{role}"))
            .await
            .map_err(anyhow::Error::msg)
    }

    /// One connection per distinct set of options among `roles` (retried while the broker
    /// is not up yet when `patient`): roles with the same credentials and inbox prefix share
    /// a connection (each role has its own prefix unless `nats.inbox_prefix` sets one).
    pub async fn connections(
        &self,
        roles: &[Role],
        patient: bool,
    ) -> anyhow::Result<paystate::stack::Connections> {
        let mut opened: Vec<(paystate_service::NatsOptions, async_nats::Client)> = Vec::new();
        let mut by_role = std::collections::BTreeMap::new();
        for role in roles {
            let opts = self.nats_for(*role);
            let client = match opened.iter().find(|(o, _)| *o == opts) {
                Some((_, c)) => c.clone(),
                None => {
                    let name = format!("paystate-{role}");
                    let c = if patient {
                        paystate_service::connect_with_patiently(&opts, &name).await
                    } else {
                        paystate_service::connect_with(&opts, &name).await
                    }
                    .map_err(|e| anyhow::anyhow!("role {role}: {e}"))?;
                    opened.push((opts, c.clone()));
                    c
                }
            };
            by_role.insert(*role, client);
        }
        Ok(paystate::stack::Connections::per_role(by_role))
    }
}

#[cfg(test)]
mod nats_settings_tests {
    use super::*;

    fn secret(s: &str) -> Option<paystate_service::Secret> {
        Some(paystate_service::Secret::new(s))
    }

    #[test]
    fn a_role_override_replaces_the_top_level_credentials_and_nothing_else() {
        let mut n = NatsSettings {
            user: Some("shared".into()),
            password: secret("p0"),
            inbox_prefix: Some("_INBOX_shop".into()),
            ..Default::default()
        };
        n.roles.insert(
            "engine".into(),
            RoleNats {
                token: secret("t1"),
                ..Default::default()
            },
        );
        let engine = n.for_role("nats://h:4222", Role::Engine);
        assert_eq!(engine.auth.token, secret("t1"));
        assert_eq!(
            engine.auth.user, None,
            "no mix of the role's and the top-level methods"
        );
        assert_eq!(engine.inbox_prefix.as_deref(), Some("_INBOX_shop"));
        let client = n.for_role("nats://h:4222", Role::Client);
        assert_eq!(client.auth.user.as_deref(), Some("shared"));
        assert!(n.validate("nats://h:4222").is_ok());
        // Roles with the same credentials share one connection (equal options).
        assert_eq!(
            n.for_role("u", Role::Projector),
            n.for_role("u", Role::Reporter)
        );
        n.roles.insert("teleporter".into(), RoleNats::default());
        let e = n.validate("nats://h:4222").unwrap_err().to_string();
        assert!(e.contains("unknown role"), "{e}");
    }

    #[test]
    fn a_connection_inbox_prefix_must_be_one_the_engine_answers() {
        let mut s = Settings::default();
        s.nats.inbox_prefix = Some("_INBOX_shop".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("nats.inbox_prefix"), "{e}");
        s.engine.inbox_prefixes.push("_INBOX_shop.".into());
        assert!(s.validate().is_ok());
        s.nats.inbox_prefix = Some("_INBOX.shop".into());
        assert!(s.validate().is_ok(), "below the default _INBOX.");
    }

    #[test]
    fn server_password_variables_are_not_settings() {
        assert!(is_server_password_var("nats_engine_password"));
        assert!(is_server_password_var("NATS_DEV_CLI_PASSWORD"));
        assert!(!is_server_password_var("nats.password"));
        assert!(!is_server_password_var("nats_url"));
    }
}
