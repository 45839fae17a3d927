//! Connecting to NATS the way every paystate process does: one server or a cluster list,
//! reconnecting forever, with any of the NATS auth methods (user/password, token, NKey seed,
//! `.creds` file) and TLS (CA, client certificate, TLS required), and a reply-inbox prefix.
//!
//! [`NatsAuth`] and [`NatsTls`] deserialize from the `[nats]` table of `paystate.toml`; secrets
//! are held in [`Secret`], which never prints its value (not in `Debug`, not in errors).

use async_nats::{ConnectOptions, ServerAddr};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use paystate_events::Secret;

/// How a connection authenticates: at most one method (user/password, token, NKey seed or
/// seed file, credentials file). All empty: no authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsAuth {
    pub user: Option<String>,
    // Why skip: a secret never serializes (settings dumps, defaults); it is only read.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    #[serde(skip_serializing)]
    pub token: Option<Secret>,
    /// An NKey user seed (`SU...`).
    #[serde(skip_serializing)]
    pub nkey_seed: Option<Secret>,
    /// A file holding an NKey user seed.
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and seed, as `nsc` writes it).
    pub creds_file: Option<PathBuf>,
}

impl NatsAuth {
    /// Whether any method is set.
    pub fn is_set(&self) -> bool {
        *self != NatsAuth::default()
    }

    /// Names of the methods set (for errors; never their values).
    fn methods(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.user.is_some() || self.password.is_some() {
            m.push("user/password");
        }
        if self.token.is_some() {
            m.push("token");
        }
        if self.nkey_seed.is_some() {
            m.push("nkey_seed");
        }
        if self.nkey_seed_file.is_some() {
            m.push("nkey_seed_file");
        }
        if self.creds_file.is_some() {
            m.push("creds_file");
        }
        m
    }

    /// At most one method; user and password together; files exist; seeds look like user
    /// seeds. Errors name settings, never secret values.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        let methods = self.methods();
        if methods.len() > 1 {
            return Err(format!(
                "{what}: more than one NATS auth method set ({}); choose one",
                methods.join(", ")
            ));
        }
        match (&self.user, &self.password) {
            (Some(u), Some(_)) if u.is_empty() => {
                return Err(format!("{what}: NATS user is empty"))
            }
            (Some(_), None) => return Err(format!("{what}: NATS user set without a password")),
            (None, Some(_)) => return Err(format!("{what}: NATS password set without a user")),
            _ => {}
        }
        if self.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
            return Err(format!("{what}: NATS token is empty"));
        }
        if let Some(seed) = &self.nkey_seed {
            check_seed(seed.expose()).map_err(|e| format!("{what}: nkey_seed {e}"))?;
        }
        for (name, file) in [
            ("nkey_seed_file", &self.nkey_seed_file),
            ("creds_file", &self.creds_file),
        ] {
            if let Some(f) = file {
                file_exists(f).map_err(|e| format!("{what}: {name} {e}"))?;
            }
        }
        Ok(())
    }
}

/// TLS towards the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsTls {
    /// PEM file of the CA(s) that signed the server certificate (added to the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Refuse to connect without TLS (also implied by `tls://` URLs).
    pub required: bool,
}

impl NatsTls {
    pub fn validate(&self, what: &str) -> Result<(), String> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err(format!("{what}: tls.cert_file set without key_file")),
            (None, Some(_)) => return Err(format!("{what}: tls.key_file set without cert_file")),
            _ => {}
        }
        for (name, file) in [
            ("tls.ca_file", &self.ca_file),
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ] {
            if let Some(f) = file {
                file_exists(f).map_err(|e| format!("{what}: {name} {e}"))?;
            }
        }
        Ok(())
    }
}

/// Everything one connection needs besides its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NatsOptions {
    /// One URL or a comma-separated list of cluster members.
    pub urls: String,
    pub auth: NatsAuth,
    pub tls: NatsTls,
    /// Prefix of this connection's reply inboxes (`_INBOX` when `None`); without a trailing dot.
    pub inbox_prefix: Option<String>,
}

impl NatsOptions {
    /// Plain: no auth, no TLS, default inboxes.
    pub fn plain(urls: &str) -> NatsOptions {
        NatsOptions {
            urls: urls.to_string(),
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        parse_urls(&self.urls)?;
        self.auth.validate("nats")?;
        self.tls.validate("nats")?;
        if let Some(p) = &self.inbox_prefix {
            check_inbox_prefix(p)?;
        }
        Ok(())
    }

    /// The async-nats options (reads the credentials file and the seed file).
    pub async fn connect_options(&self, name: &str) -> Result<ConnectOptions, String> {
        self.validate()?;
        let a = &self.auth;
        let mut opts = if let (Some(user), Some(pass)) = (&a.user, &a.password) {
            ConnectOptions::with_user_and_password(user.clone(), pass.expose().to_string())
        } else if let Some(token) = &a.token {
            ConnectOptions::with_token(token.expose().to_string())
        } else if let Some(seed) = &a.nkey_seed {
            ConnectOptions::with_nkey(seed.expose().to_string())
        } else if let Some(file) = &a.nkey_seed_file {
            let seed = read_seed_file(file)?;
            ConnectOptions::with_nkey(seed)
        } else if let Some(file) = &a.creds_file {
            ConnectOptions::with_credentials_file(file.clone())
                .await
                // Why not the error text: it may quote the file's content.
                .map_err(|e| {
                    format!(
                        "creds_file {}: unreadable or not a NATS credentials file ({:?})",
                        file.display(),
                        e.kind()
                    )
                })?
        } else {
            ConnectOptions::new()
        };
        let t = &self.tls;
        if let Some(ca) = &t.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        let tls_urls = self.urls.split(',').any(|u| u.trim().starts_with("tls://"));
        if t.required || tls_urls {
            opts = opts.require_tls(true);
        }
        if let Some(p) = &self.inbox_prefix {
            opts = opts.custom_inbox_prefix(p.trim_end_matches('.'));
        }
        Ok(opts.name(name).max_reconnects(None))
    }

    /// A short description for logs: URLs, which auth method (never its secret), TLS.
    pub fn describe(&self) -> String {
        let methods = self.auth.methods();
        let auth = match (methods.first(), &self.auth.user) {
            (Some(&"user/password"), Some(u)) => format!("user {u}"),
            (Some(m), _) => (*m).to_string(),
            (None, _) => "no auth".to_string(),
        };
        let tls = if self.tls.required || self.tls.ca_file.is_some() || self.urls.contains("tls://")
        {
            ", TLS"
        } else {
            ""
        };
        format!("{} ({auth}{tls})", redacted_urls(&self.urls))
    }
}

/// Checks an inbox prefix: one or more plain subject tokens, no wildcards, not a paystate,
/// `$JS`, `$KV` or `$SYS` subject.
pub fn check_inbox_prefix(prefix: &str) -> Result<(), String> {
    let p = prefix.trim_end_matches('.');
    let plain = !p.is_empty()
        && p.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
        && p.chars().all(|c| c.is_ascii_graphic());
    let reserved = ["paystate", "$JS", "$KV", "$O", "$SYS"]
        .iter()
        .any(|r| p == *r || p.starts_with(&format!("{r}.")));
    if !plain || reserved {
        return Err(format!(
            "nats.inbox_prefix {prefix:?} must be plain subject tokens (e.g. _INBOX or _INBOX_billing) outside paystate, $JS, $KV, $O and $SYS"
        ));
    }
    Ok(())
}

/// `urls` (one NATS URL or a comma-separated list) fit to print: the credentials a URL may
/// carry (`nats://user:password@host`) replaced by `***`; everything else as given.
pub fn redacted_urls(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            // Why a scheme must look like one (a letter, then letters, digits, '+', '-',
            // '.'): a password holding "://" must not pass for the end of a scheme.
            let is_scheme = |s: &str| {
                let s = s.trim_start();
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            };
            let (scheme, rest) = match url.find("://") {
                Some(i) if is_scheme(&url[..i]) => url.split_at(i + 3),
                _ => ("", url),
            };
            // Why the last '@' of the whole rest: an unencoded '@' or '/' in a password
            // must not end the part that is hidden.
            match rest.rfind('@') {
                Some(at) => format!("{scheme}***{}", &rest[at..]),
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_urls(urls: &str) -> Result<Vec<ServerAddr>, String> {
    let addrs: Vec<ServerAddr> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .map_err(|e| format!("bad NATS URL {:?}: {e}", redacted_urls(u)))
        })
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err("no NATS URL given".to_string());
    }
    Ok(addrs)
}

fn file_exists(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a file", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// An NKey user seed is 58 base32 characters starting with `SU`. Says what is wrong without
/// quoting the seed.
fn check_seed(seed: &str) -> Result<(), String> {
    let seed = seed.trim();
    let base32 = seed
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c));
    if seed.len() != 58 || !seed.starts_with("SU") || !base32 {
        return Err("is not an NKey user seed (58 characters starting with SU)".to_string());
    }
    Ok(())
}

fn read_seed_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("nkey_seed_file {}: {e}", path.display()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SU"))
        .unwrap_or_default()
        .to_string();
    check_seed(&seed).map_err(|e| format!("nkey_seed_file {}: {e}", path.display()))?;
    Ok(seed)
}

/// Why a connection could not be made. [`ConnectError::is_transient`]: only an unreachable
/// server may answer later; wrong settings and refused credentials need a person.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The settings are wrong (URL, credential or TLS files, inbox prefix).
    #[error("{0}")]
    Settings(String),
    /// The server refused us (authentication, authorization, TLS): retrying cannot help.
    #[error("NATS at {at} refused the connection: {detail}")]
    Refused { at: String, detail: String },
    /// No server answered (down, starting, unreachable): may work later.
    #[error("cannot connect to NATS at {at}: {detail}")]
    Unreachable { at: String, detail: String },
    /// [`connect_with_patiently`] ran out of attempts.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        last: Box<ConnectError>,
        attempts: u32,
    },
}

impl ConnectError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ConnectError::Unreachable { .. })
    }
}

/// Connects (failing fast if no server answers) to one server or a comma-separated list of cluster members
/// (`nats://a:4222,nats://b:4222`), reconnecting forever: engines ride out broker restarts
/// and leader elections; servers discovered from the cluster are used for failover too.
pub async fn connect(urls: &str, name: &str) -> Result<async_nats::Client, ConnectError> {
    connect_with(&NatsOptions::plain(urls), name).await
}

/// [`connect`] with authentication, TLS and an inbox prefix.
pub async fn connect_with(
    opts: &NatsOptions,
    name: &str,
) -> Result<async_nats::Client, ConnectError> {
    use async_nats::ConnectErrorKind as K;
    let addrs = parse_urls(&opts.urls).map_err(ConnectError::Settings)?;
    let options = opts
        .connect_options(name)
        .await
        .map_err(ConnectError::Settings)?;
    options.connect(addrs).await.map_err(|e| {
        let (at, detail) = (opts.describe(), e.to_string());
        match e.kind() {
            K::Authentication | K::AuthorizationViolation | K::Tls => {
                ConnectError::Refused { at, detail }
            }
            _ => ConnectError::Unreachable { at, detail },
        }
    })
}

/// Attempts at the first connection in [`connect_patiently`], one second apart.
pub const CONNECT_ATTEMPTS_MAX: u32 = 60;

/// [`connect`], retried while the broker is not up yet (containers starting together).
pub async fn connect_patiently(urls: &str, name: &str) -> Result<async_nats::Client, ConnectError> {
    connect_with_patiently(&NatsOptions::plain(urls), name).await
}

/// [`connect_with`], retried while the broker is not up yet. Settings errors and refusals
/// fail at once.
pub async fn connect_with_patiently(
    opts: &NatsOptions,
    name: &str,
) -> Result<async_nats::Client, ConnectError> {
    opts.validate().map_err(ConnectError::Settings)?;
    let mut last = None;
    for _ in 0..CONNECT_ATTEMPTS_MAX {
        match connect_with(opts, name).await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_transient() => last = Some(e),
            Err(e) => return Err(e),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(ConnectError::GaveUp {
        last: Box::new(last.unwrap_or(ConnectError::Settings("no attempt made".into()))),
        attempts: CONNECT_ATTEMPTS_MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a URL's user and password hold (any printable ASCII but the comma that
        /// separates URLs, '@' and '/' included), the printable form keeps neither and keeps
        /// the host and port.
        #[test]
        fn printed_urls_never_carry_their_credentials(
            user in "[ -+\\--~]{0,24}",
            password in "[ -+\\--~]{1,24}",
            port in 1u16..,
            // The schemes settings accept (a URL without one is ambiguous when its password
            // holds "://"; the example test covers the plain cases).
            scheme in prop::sample::select(vec!["nats://", "tls://"]),
        ) {
            let url = format!("{scheme}{user}:{password}@127.0.0.1:{port}");
            let list = format!("nats://127.0.0.1:4222,{url}");
            let shown = redacted_urls(&list);
            prop_assert_eq!(shown, format!("nats://127.0.0.1:4222,{scheme}***@127.0.0.1:{port}"));
            // A URL that does not parse is named in the error the same way.
            let bad = format!("{scheme}{user}:{password}@");
            if let Err(e) = parse_urls(&bad) {
                prop_assert!(e.contains(&format!("\"{scheme}***@\"")), "{e}");
                prop_assert!(!e.contains(&bad), "{e}");
            }
        }
    }

    #[test]
    fn urls_without_credentials_print_as_given() {
        let urls = "nats://a:4222, tls://b.example:4443,c:4222";
        assert_eq!(redacted_urls(urls), urls);
        assert_eq!(redacted_urls("nats://u:p@h:1"), "nats://***@h:1");
        assert_eq!(redacted_urls("nats://tok@h:1"), "nats://***@h:1");
        assert_eq!(redacted_urls("u:p@h:1"), "***@h:1");
        // A password holding "://" does not pass for the end of a scheme.
        assert_eq!(redacted_urls("://x@h:1"), "***@h:1");
        assert_eq!(redacted_urls("nats://:a://b@h:1"), "nats://***@h:1");
    }

    #[test]
    fn one_auth_method_and_complete_pairs() {
        let mut a = NatsAuth {
            user: Some("u".into()),
            password: Some(Secret::new("p")),
            ..Default::default()
        };
        assert!(a.validate("x").is_ok());
        a.token = Some(Secret::new("t"));
        let e = a.validate("x").unwrap_err();
        assert!(e.contains("user/password, token"), "{e}");
        assert!(!e.contains('t') || !e.contains("\"t\""));
        let a = NatsAuth {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(a.validate("x").unwrap_err().contains("without a password"));
        let a = NatsAuth {
            creds_file: Some("/nonexistent/x.creds".into()),
            ..Default::default()
        };
        assert!(a.validate("x").unwrap_err().contains("creds_file"));
        let a = NatsAuth {
            nkey_seed: Some(Secret::new("SUNOTASEED")),
            ..Default::default()
        };
        let e = a.validate("x").unwrap_err();
        assert!(!e.contains("SUNOTASEED"), "the seed is never quoted: {e}");
    }

    #[test]
    fn secrets_never_print() {
        let a = NatsAuth {
            user: Some("u".into()),
            password: Some(Secret::new("hunter2")),
            ..Default::default()
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        let o = NatsOptions {
            urls: "nats://h:4222".into(),
            auth: a,
            ..Default::default()
        };
        assert!(!o.describe().contains("hunter2"));
        assert!(o.describe().contains("user u"));
    }

    #[test]
    fn tls_pairs_and_inbox_prefixes() {
        let t = NatsTls {
            cert_file: Some("/etc/hostname".into()),
            ..Default::default()
        };
        assert!(t.validate("x").unwrap_err().contains("without key_file"));
        assert!(check_inbox_prefix("_INBOX").is_ok());
        assert!(check_inbox_prefix("_INBOX_billing.").is_ok());
        for bad in ["", "paystate.x", "$JS.API", "a.*", "a..b", "$SYS"] {
            assert!(check_inbox_prefix(bad).is_err(), "{bad}");
        }
    }
}
