//! Adapter configuration: per provider a base URL, timeouts, a callback URL and named
//! merchant accounts holding the credentials. An order's `merchant_account` picks the
//! account ([`DEFAULT_ACCOUNT`] when absent). Base URLs are configuration, so the same
//! adapter talks to its sandbox or to the real provider.
//!
//! Everything deserializes with serde (the binary loads TOML, then environment overrides);
//! [`AdaptersConfig::validate`] checks bounds once at start. Credentials are [`Secret`]s.
//! Base URLs must be https: status answers decide money, so they must come from the
//! configured host over TLS. Plain http is accepted only to loopback (the local sandboxes of
//! `paystate dev` and the tests) and to hosts named in `plain_http_hosts`.

use crate::exchanger::transformers::Encoding as ExchangerEncoding;
use crate::plexy::signature::TildaMode;
use crate::plexy::transformers::AmountUnit;
use crate::secret::Secret;
use paystate_events::Provider;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// A top-level adapters setting is out of bounds.
    #[error("{field}: {reason}")]
    Setting { field: &'static str, reason: String },
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
    /// segments are added beyond the documented ones. Must be https, except to a loopback
    /// host or one in [`AdaptersConfig::plain_http_hosts`] (see [`AdaptersConfig::validate`]).
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

    fn validate_common(
        &self,
        provider: Provider,
        plain_http_hosts: &[String],
    ) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            provider,
            field,
            reason: reason.to_string(),
        };
        check_base_url(&self.base_url, plain_http_hosts).map_err(|r| invalid("base_url", r))?;
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
    /// Hosts besides loopback that a `base_url` may reach over plain http, as the URL names
    /// them (IPv6 in brackets): sandboxes on a private network only (docker-compose's
    /// `sandboxes`). Empty by default. Never a real provider's host: its status answers
    /// decide money, and over plain http anyone on the path could give them.
    #[serde(default)]
    pub plain_http_hosts: Vec<String>,
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
    /// Checks every configured provider once, at start. A plain http `base_url` to a host
    /// that is neither loopback nor listed in `plain_http_hosts` is refused
    /// ([`ConfigError::Invalid`] on `base_url`; the URL itself is never shown).
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::executor::RetryPolicy::from_config(&self.http)?;
        validate_plain_http_hosts(&self.plain_http_hosts)?;
        let plain = self.plain_http_hosts.as_slice();
        if let Some(c) = &self.plexy {
            c.common.validate_common(Provider::Plexy, plain)?;
        }
        if let Some(c) = &self.paykassma {
            c.validate_common(Provider::Paykassma, plain)?;
        }
        if let Some(c) = &self.plural {
            c.validate_common(Provider::Plural, plain)?;
            validate_plural_secrets(c)?;
        }
        if let Some(c) = &self.exchanger {
            c.common.validate_common(Provider::Exchanger, plain)?;
        }
        if let Some(c) = &self.flitt {
            c.validate_common(Provider::Flitt, plain)?;
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

/// Most entries of [`AdaptersConfig::plain_http_hosts`] (one per private sandbox host).
pub const PLAIN_HTTP_HOSTS_MAX: usize = 8;

/// Why a `base_url` with another scheme is refused.
const NOT_HTTP: &str = "must be an http(s) URL";
/// Why a plain http `base_url` is refused. States the rule, never the URL (it may carry
/// credentials as userinfo).
const PLAIN_HTTP_REFUSED: &str = "must be https (plain http only for a loopback sandbox: \
127.0.0.0/8, localhost, [::1], or a host listed in plain_http_hosts)";

/// `base_url` is https, or plain http to a loopback host or a listed sandbox host.
/// Plexy's, Flitt's and the exchanger's status answers decide money (Plexy's and the
/// exchanger's are unsigned), so TLS to the configured host is what authenticates them.
fn check_base_url(base_url: &str, plain_http_hosts: &[String]) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(base_url).map_err(|_| NOT_HTTP)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) || is_listed(&url, plain_http_hosts) => Ok(()),
        "http" => Err(PLAIN_HTTP_REFUSED),
        _ => Err(NOT_HTTP),
    }
}

/// The URL's host is `localhost`, in 127.0.0.0/8 or `[::1]`. Read from the parsed URL, whose
/// host the url crate has already separated from userinfo, port and path and normalised
/// (IPv4 in dotted decimal however it was written, IPv6 in brackets and compressed, names
/// lowercased), so `127.0.0.1.nip.io` and `http://127.0.0.1@evil.com/` name other hosts.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// The URL's host is exactly one of `hosts` (names compare case-insensitively).
fn is_listed(url: &reqwest::Url, hosts: &[String]) -> bool {
    url.host_str()
        .is_some_and(|h| hosts.iter().any(|l| l.eq_ignore_ascii_case(h)))
}

fn validate_plain_http_hosts(hosts: &[String]) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Setting {
        field: "plain_http_hosts",
        reason,
    };
    if hosts.len() > PLAIN_HTTP_HOSTS_MAX {
        return Err(invalid(format!("at most {PLAIN_HTTP_HOSTS_MAX} hosts")));
    }
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(invalid("an empty host".to_string()));
    }
    Ok(())
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

    /// `TOML` with plural's base URL replaced, validated.
    fn with_plural_base(url: &str) -> Result<(), ConfigError> {
        // A TOML basic string escapes backslashes.
        let text = TOML.replace("http://127.0.0.1:9001", &url.replace('\\', "\\\\"));
        let cfg: AdaptersConfig = toml::from_str(&text).expect("parses");
        cfg.validate()
    }

    fn refused_as_plain_http(r: Result<(), ConfigError>) -> bool {
        matches!(r, Err(ConfigError::Invalid { provider: Provider::Plural, field: "base_url", ref reason })
            if reason == PLAIN_HTTP_REFUSED)
    }

    #[test]
    fn base_urls_must_be_https_except_to_loopback() {
        for ok in [
            "https://api.pluralpay.in",
            "https://pluraluat.v2.pinepg.in/",
            "https://10.0.0.7:8443/plural",
            "http://127.0.0.1:9001",
            "http://127.5.6.7/plural",
            "http://localhost:8080",
            "http://LOCALHOST:8080",
            "http://[::1]:9000/plural",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://user:pw@127.0.0.1:1/",
        ] {
            assert_eq!(with_plural_base(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://api.plexypay.com",
            "http://api.pluralpay.in/",
            "http://10.1.2.3:9000",
            "http://192.168.1.10",
            "http://0.0.0.0:9000",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io:9000",
            "http://foo.localhost",
            "http://localhost./",
            "http://127.0.0.1@evil.com/",
            "http://127.0.0.1:9001@evil.com/",
            "http://localhost@evil.com/",
            "http://evil.com#@127.0.0.1/",
            "http://evil.com\\@127.0.0.1/",
            "http://[::2]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                refused_as_plain_http(with_plural_base(refused)),
                "{refused}: {:?}",
                with_plural_base(refused)
            );
        }
        let e = with_plural_base("http://api.pluralpay.in").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "plural: base_url: must be https (plain http only for a loopback sandbox: \
             127.0.0.0/8, localhost, [::1], or a host listed in plain_http_hosts)"
        );
        for not_http in ["ftp://127.0.0.1", "127.0.0.1:9001", "file:///etc/passwd"] {
            assert!(
                matches!(with_plural_base(not_http), Err(ConfigError::Invalid { ref reason, .. }) if reason == NOT_HTTP),
                "{not_http}"
            );
        }
    }

    /// The refusal states the rule, never the URL: userinfo may be a credential.
    #[test]
    fn a_refused_base_url_is_not_shown() {
        let e = with_plural_base("http://svc-user:Hunter2Secret@api.pluralpay.in/x")
            .expect_err("refused");
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("Hunter2Secret")
                && !shown.contains("svc-user")
                && !shown.contains("pluralpay"),
            "{shown}"
        );
    }

    /// docker-compose's sandboxes are reached by service name over a private network: plain
    /// http there is an explicit, exact-host opt-in.
    #[test]
    fn listed_sandbox_hosts_may_use_plain_http() {
        let listed = |hosts: &str, url: &str| {
            let text = format!(
                "plain_http_hosts = {hosts}\n{}",
                TOML.replace("http://127.0.0.1:9001", url)
            );
            let cfg: AdaptersConfig = toml::from_str(&text).expect("parses");
            cfg.validate()
        };
        assert_eq!(
            listed(r#"["sandboxes"]"#, "http://sandboxes:9000/plural"),
            Ok(())
        );
        assert_eq!(
            listed(r#"["Sandboxes"]"#, "http://SANDBOXES:9000/plural"),
            Ok(())
        );
        for other in [
            "http://sandboxes.evil.com:9000",
            "http://sandboxes@evil.com/",
            "http://evil.com/sandboxes",
        ] {
            assert!(
                refused_as_plain_http(listed(r#"["sandboxes"]"#, other)),
                "{other}"
            );
        }
        assert!(refused_as_plain_http(with_plural_base(
            "http://sandboxes:9000/plural"
        )));
        assert!(matches!(
            listed(r#"[""]"#, "https://x.example"),
            Err(ConfigError::Setting {
                field: "plain_http_hosts",
                ..
            })
        ));
        let many = format!("{:?}", vec!["h"; PLAIN_HTTP_HOSTS_MAX + 1]);
        assert!(matches!(
            listed(&many, "https://x.example"),
            Err(ConfigError::Setting {
                field: "plain_http_hosts",
                ..
            })
        ));
    }

    /// The host as the url crate reads it; an independent statement of "loopback".
    fn loopback_oracle(url: &str) -> bool {
        let Ok(u) = reqwest::Url::parse(url) else {
            return false;
        };
        match u.host_str() {
            Some("localhost") | Some("[::1]") => true,
            Some(h) => h.parse::<Ipv4Addr>().is_ok_and(|a| a.octets()[0] == 127),
            None => false,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Over the characters a URL's authority is made of, around loopback spellings so
        /// both answers are reached: plain http is accepted exactly when the parsed host is
        /// loopback, and https whenever the URL is valid.
        #[test]
        fn plain_http_only_reaches_loopback(
            before in "[a-z0-9.:@\\[\\]%#/\\\\-]{0,8}",
            loopback in proptest::sample::select(vec![
                "", "127.0.0.1", "127.9.8.7", "127.1", "2130706433", "0x7f.1", "localhost",
                "LocalHost", "[::1]", "[0::1]", "[::ffff:127.0.0.1]",
            ]),
            after in "[a-z0-9.:@\\[\\]%#/\\\\-]{0,8}",
        ) {
            let authority = format!("{before}{loopback}{after}");
            let http = format!("http://{authority}");
            let accepted = check_base_url(&http, &[]).is_ok();
            proptest::prop_assert_eq!(accepted, loopback_oracle(&http), "{}", http);
            let https = format!("https://{authority}");
            proptest::prop_assert_eq!(
                check_base_url(&https, &[]).is_ok(),
                reqwest::Url::parse(&https).is_ok(),
                "{}", https
            );
        }

        /// Loopback names used as a prefix, suffix or userinfo of another host are refused.
        #[test]
        fn loopback_look_alikes_are_refused(d in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,2}") {
            proptest::prop_assume!(d != "localhost");
            for url in [
                format!("http://{d}/"),
                format!("http://localhost.{d}/"),
                format!("http://{d}.localhost/"),
                format!("http://127.0.0.1.{d}/"),
                format!("http://127.0.0.1@{d}/"),
                format!("http://localhost:80@{d}/"),
                format!("http://{d}#@127.0.0.1/"),
            ] {
                proptest::prop_assert!(check_base_url(&url, &[]).is_err(), "{}", url);
            }
        }

        /// Every IPv4 address: plain http is accepted exactly for 127.0.0.0/8.
        #[test]
        fn plain_http_ipv4(a: u8, b: u8, c: u8, d: u8) {
            let url = format!("http://{a}.{b}.{c}.{d}:9000/p");
            proptest::prop_assert_eq!(check_base_url(&url, &[]).is_ok(), a == 127);
        }
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
