//! Adapter configuration: per provider a base URL, timeouts, a callback URL and named
//! merchant accounts holding the credentials. An order's `merchant_account` picks the
//! account ([`DEFAULT_ACCOUNT`] when absent). Base URLs are configuration, so the same
//! adapter talks to its sandbox or to the real provider.
//!
//! Everything deserializes with serde (the binary loads TOML, then environment overrides);
//! [`AdaptersConfig::validate`] checks bounds once at start. Credentials are [`Secret`]s.

use crate::exchanger::transformers::Encoding as ExchangerEncoding;
use crate::plexy::signature::TildaMode;
use crate::plexy::transformers::AmountUnit;
use crate::secret::Secret;
use paystate_events::Provider;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The account used when an order names none.
pub const DEFAULT_ACCOUNT: &str = "default";
/// Most merchant accounts per provider (callbacks are checked against each account's secret).
pub const ACCOUNTS_MAX: usize = 32;
/// Default and largest per-call timeout.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 120_000;
/// Smallest per-call timeout accepted (tests use small ones).
pub const REQUEST_TIMEOUT_MS_MIN: u64 = 10;

/// Why configuration was refused or an account could not be found. Never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("provider {0} is not configured")]
    ProviderNotConfigured(Provider),
    #[error("provider {provider} has no merchant account {account:?}")]
    UnknownAccount { provider: Provider, account: String },
    #[error("{provider}: {field}: {reason}")]
    Invalid {
        provider: Provider,
        field: &'static str,
        reason: String,
    },
    /// The shared HTTP settings are out of bounds.
    #[error("http: {field}: {reason}")]
    Http { field: &'static str, reason: String },
    /// A configured secret is too short to be told apart from ordinary text, so it could
    /// not be redacted from provider answers (the value is never shown).
    #[error("a configured secret is shorter than {min} characters: it could not be redacted from provider text; use a longer one")]
    SecretTooShort { min: usize },
}

/// Per-call timeout for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Timeouts {
    /// Whole call: connect, send, and read the response.
    #[serde(default = "default_request_timeout_ms")]
    pub request_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    REQUEST_TIMEOUT_MS_DEFAULT
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl Timeouts {
    pub fn request(&self) -> Duration {
        Duration::from_millis(self.request_ms)
    }
}

/// What every provider has: where it lives, how long to wait, where it calls us back, and
/// its merchant accounts.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig<A> {
    /// e.g. `https://api.pluralpay.in` or a sandbox `http://127.0.0.1:8081`. No trailing path
    /// segments are added beyond the documented ones.
    pub base_url: String,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Our public callback URL for this provider (the gateway's `/callbacks/{provider}`).
    #[serde(default)]
    pub callback_url: Option<String>,
    pub accounts: BTreeMap<String, A>,
}

impl<A> ProviderConfig<A> {
    /// The account an order uses: `merchant_account`, or [`DEFAULT_ACCOUNT`].
    pub fn account(
        &self,
        provider: Provider,
        name: Option<&str>,
    ) -> Result<(&str, &A), ConfigError> {
        let name = name.unwrap_or(DEFAULT_ACCOUNT);
        self.accounts
            .get_key_value(name)
            .map(|(k, a)| (k.as_str(), a))
            .ok_or_else(|| ConfigError::UnknownAccount {
                provider,
                account: name.to_string(),
            })
    }

    /// `base_url` joined with a path that starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), path)
    }

    fn validate_common(&self, provider: Provider) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            provider,
            field,
            reason: reason.to_string(),
        };
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => return Err(invalid("base_url", "must be an http(s) URL")),
        }
        if self.accounts.is_empty() || self.accounts.len() > ACCOUNTS_MAX {
            return Err(invalid(
                "accounts",
                &format!("need 1..={ACCOUNTS_MAX} accounts"),
            ));
        }
        if !(REQUEST_TIMEOUT_MS_MIN..=REQUEST_TIMEOUT_MS_MAX).contains(&self.timeouts.request_ms) {
            return Err(invalid(
                "timeouts.request_ms",
                &format!("must be {REQUEST_TIMEOUT_MS_MIN}..={REQUEST_TIMEOUT_MS_MAX}"),
            ));
        }
        Ok(())
    }
}

/// Plexy: `Authorization: <api key>`; webhooks carry `Bearer <webhook token>`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlexyAccount {
    pub api_key: Secret,
    pub webhook_token: Secret,
    /// Tilda plugin: store id and signing secret (the publishable key), when used.
    #[serde(default)]
    pub tilda_store_id: Option<String>,
    #[serde(default)]
    pub tilda_secret: Option<Secret>,
}

/// Plexy provider settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PlexyConfig {
    #[serde(flatten)]
    pub common: ProviderConfig<PlexyAccount>,
    /// How Tilda signatures are computed (unconfirmed reading; see `plexy::signature`).
    #[serde(default)]
    pub tilda_mode: TildaMode,
    /// The unit of transaction and webhook amounts (undocumented; see `plexy::transformers`).
    #[serde(default)]
    pub transaction_amounts: AmountUnit,
    /// How long a payment link lives when the order has no `expires_at`.
    #[serde(default = "default_link_ttl_s")]
    pub link_ttl_s: u64,
}

fn default_link_ttl_s() -> u64 {
    24 * 3600
}

/// Paykassma: the plugin API secret (sent as `?secret=`), and the postback keys.
#[derive(Debug, Clone, Deserialize)]
pub struct PaykassmaAccount {
    pub plugin_secret: Secret,
    /// Public access key; postbacks carry it in `access_key`.
    pub access_key: String,
    pub private_key: Secret,
    /// Payment system code, `bnb_ml` in the seed.
    #[serde(default = "default_wallet_type")]
    pub wallet_type: String,
}

fn default_wallet_type() -> String {
    "bnb_ml".to_string()
}

/// Plural: OAuth client credentials, the return-URL secret (hex) and the webhook secret.
#[derive(Debug, Clone, Deserialize)]
pub struct PluralAccount {
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default)]
    pub return_url_secret_hex: Option<Secret>,
    pub webhook_secret: Secret,
}

/// Exchanger: partner code, route, API key (auth scheme not public: sent as the configured
/// header), and the IPN secret we hand it at order creation.
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangerAccount {
    pub partner: String,
    pub route_id: String,
    #[serde(default)]
    pub api_key: Option<Secret>,
    pub ipn_secret: Secret,
    /// `eng` or `rus` in the docs' parameter table; `en` in the payment page example.
    #[serde(default = "default_lang")]
    pub lang: String,
}

fn default_lang() -> String {
    "en".to_string()
}

/// Exchanger provider settings: the undocumented parts of its API are configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangerConfig {
    #[serde(flatten)]
    pub common: ProviderConfig<ExchangerAccount>,
    #[serde(default = "default_exchanger_create_path")]
    pub create_path: String,
    #[serde(default = "default_exchanger_status_path")]
    pub status_path: String,
    /// Header that carries `api_key` when one is configured.
    #[serde(default = "default_exchanger_auth_header")]
    pub auth_header: String,
    /// JSON or PHP-style form bodies for create and status.
    #[serde(default)]
    pub encoding: ExchangerEncoding,
    /// The status request's field naming the order (its value: the create answer's `orderId`).
    #[serde(default = "default_exchanger_status_id_field")]
    pub status_id_field: String,
    /// Where customers pay: `{payment_page_base}/{lang}/payment/{uid}/{secret}`; the base URL
    /// when absent.
    #[serde(default)]
    pub payment_page_base: Option<String>,
}

fn default_exchanger_create_path() -> String {
    "/public/exchanger/order/create".to_string()
}
fn default_exchanger_status_path() -> String {
    "/public/exchanger/order/status".to_string()
}
fn default_exchanger_auth_header() -> String {
    "Authorization".to_string()
}
fn default_exchanger_status_id_field() -> String {
    "orderId".to_string()
}

/// Flitt: merchant id and password (the signing key).
#[derive(Debug, Clone, Deserialize)]
pub struct FlittAccount {
    pub merchant_id: u64,
    pub password: Secret,
}

/// Settings for the shared HTTP executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct HttpConfig {
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_attempts")]
    pub attempts_max: u32,
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    crate::executor::CONNECT_TIMEOUT_MS_DEFAULT
}
fn default_attempts() -> u32 {
    crate::executor::ATTEMPTS_MAX_DEFAULT
}
fn default_backoff_base_ms() -> u64 {
    crate::executor::BACKOFF_BASE_MS_DEFAULT
}
fn default_backoff_max_ms() -> u64 {
    crate::executor::BACKOFF_MAX_MS_DEFAULT
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            connect_timeout_ms: default_connect_timeout_ms(),
            attempts_max: default_attempts(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

/// All adapters. A provider that is absent is not available (calls fail with a config error).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdaptersConfig {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub plexy: Option<PlexyConfig>,
    #[serde(default)]
    pub paykassma: Option<ProviderConfig<PaykassmaAccount>>,
    #[serde(default)]
    pub plural: Option<ProviderConfig<PluralAccount>>,
    #[serde(default)]
    pub exchanger: Option<ExchangerConfig>,
    #[serde(default)]
    pub flitt: Option<ProviderConfig<FlittAccount>>,
}

impl AdaptersConfig {
    /// Checks every configured provider once, at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::executor::RetryPolicy::from_config(&self.http)?;
        if let Some(c) = &self.plexy {
            c.common.validate_common(Provider::Plexy)?;
        }
        if let Some(c) = &self.paykassma {
            c.validate_common(Provider::Paykassma)?;
        }
        if let Some(c) = &self.plural {
            c.validate_common(Provider::Plural)?;
            validate_plural_secrets(c)?;
        }
        if let Some(c) = &self.exchanger {
            c.common.validate_common(Provider::Exchanger)?;
        }
        if let Some(c) = &self.flitt {
            c.validate_common(Provider::Flitt)?;
        }
        let min = crate::redact::SECRET_CHARS_MIN;
        if crate::redact::configured_secrets(self)
            .iter()
            .any(|s| s.expose().chars().count() < min)
        {
            return Err(ConfigError::SecretTooShort { min });
        }
        Ok(())
    }

    pub fn plexy(&self) -> Result<&PlexyConfig, ConfigError> {
        self.plexy
            .as_ref()
            .ok_or(ConfigError::ProviderNotConfigured(Provider::Plexy))
    }
    pub fn paykassma(&self) -> Result<&ProviderConfig<PaykassmaAccount>, ConfigError> {
        self.paykassma
            .as_ref()
            .ok_or(ConfigError::ProviderNotConfigured(Provider::Paykassma))
    }
    pub fn plural(&self) -> Result<&ProviderConfig<PluralAccount>, ConfigError> {
        self.plural
            .as_ref()
            .ok_or(ConfigError::ProviderNotConfigured(Provider::Plural))
    }
    pub fn exchanger(&self) -> Result<&ExchangerConfig, ConfigError> {
        self.exchanger
            .as_ref()
            .ok_or(ConfigError::ProviderNotConfigured(Provider::Exchanger))
    }
    pub fn flitt(&self) -> Result<&ProviderConfig<FlittAccount>, ConfigError> {
        self.flitt
            .as_ref()
            .ok_or(ConfigError::ProviderNotConfigured(Provider::Flitt))
    }
}

fn validate_plural_secrets(c: &ProviderConfig<PluralAccount>) -> Result<(), ConfigError> {
    for account in c.accounts.values() {
        if let Some(s) = &account.return_url_secret_hex {
            if hex::decode(s.expose())
                .map(|k| k.is_empty())
                .unwrap_or(true)
            {
                return Err(ConfigError::Invalid {
                    provider: Provider::Plural,
                    field: "return_url_secret_hex",
                    reason: "must be non-empty hex".to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
        [http]
        attempts_max = 2

        [plural]
        base_url = "http://127.0.0.1:9001"
        timeouts = { request_ms = 5000 }
        [plural.accounts.default]
        client_id = "cid"
        client_secret = "very-secret"
        return_url_secret_hex = "00112233"
        webhook_secret = "whsec"
        [plural.accounts.eu]
        client_id = "cid-eu"
        client_secret = "other-secret"
        webhook_secret = "whsec-eu"

        [exchanger]
        base_url = "https://exchanger.example"
        [exchanger.accounts.default]
        partner = "p1"
        route_id = "r1"
        ipn_secret = "ipn-secret-9"
    "#;

    #[test]
    fn loads_from_toml_and_picks_accounts() {
        let cfg: AdaptersConfig = toml::from_str(TOML).expect("valid config");
        cfg.validate().expect("valid");
        assert_eq!(cfg.http.attempts_max, 2);
        let plural = cfg.plural().expect("plural configured");
        assert_eq!(
            plural
                .account(Provider::Plural, None)
                .expect("default")
                .1
                .client_id,
            "cid"
        );
        assert_eq!(
            plural
                .account(Provider::Plural, Some("eu"))
                .expect("eu")
                .1
                .client_id,
            "cid-eu"
        );
        assert!(matches!(
            plural.account(Provider::Plural, Some("us")),
            Err(ConfigError::UnknownAccount { .. })
        ));
        assert_eq!(
            plural.url("/api/auth/v1/token"),
            "http://127.0.0.1:9001/api/auth/v1/token"
        );
        let ex = cfg.exchanger().expect("exchanger configured");
        assert_eq!(ex.create_path, "/public/exchanger/order/create");
        assert_eq!(ex.common.timeouts.request_ms, REQUEST_TIMEOUT_MS_DEFAULT);
        assert!(matches!(
            cfg.flitt(),
            Err(ConfigError::ProviderNotConfigured(Provider::Flitt))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: AdaptersConfig = toml::from_str(TOML).expect("valid config");
        let printed = format!("{cfg:?}");
        assert!(
            !printed.contains("very-secret")
                && !printed.contains("whsec")
                && !printed.contains("ipn\"")
        );
    }

    #[test]
    fn validation_refuses_bad_values() {
        let bad_url = TOML.replace("http://127.0.0.1:9001", "ftp://x");
        let cfg: AdaptersConfig = toml::from_str(&bad_url).expect("parses");
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::Invalid {
                field: "base_url",
                ..
            })
        ));
        let bad_hex = TOML.replace("\"00112233\"", "\"xyz\"");
        let cfg: AdaptersConfig = toml::from_str(&bad_hex).expect("parses");
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::Invalid {
                field: "return_url_secret_hex",
                ..
            })
        ));
        let slow = TOML.replace("request_ms = 5000", "request_ms = 999999");
        let cfg: AdaptersConfig = toml::from_str(&slow).expect("parses");
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::Invalid {
                field: "timeouts.request_ms",
                ..
            })
        ));
    }

    #[test]
    fn secrets_too_short_to_redact_are_refused_without_being_shown() {
        let short = TOML.replace("ipn_secret = \"ipn-secret-9\"", "ipn_secret = \"ipn\"");
        let cfg: AdaptersConfig = toml::from_str(&short).expect("parses");
        let e = cfg.validate().expect_err("refused");
        assert!(matches!(e, ConfigError::SecretTooShort { min: 4 }));
        assert!(!e.to_string().contains("ipn\""), "{e}");
    }
}
