//! API keys for the private listener.
//!
//! A key is 32 random bytes, written `psk_<base64url>`; paystate stores only its SHA-256
//! (hex) with a name and a [`Scope`]. A request sends `Authorization: Bearer <key>`; the
//! gateway hashes what it received and compares the digest with every configured hash in
//! constant time (no early exit), so neither timing nor the answer tells which key came close.
//! An unsalted SHA-256 is enough here because keys are generated with 256 bits of entropy
//! (`paystate apikey new`): nothing about them can be guessed from the hash.
//!
//! - no `Authorization` header, not `Bearer`, or an unknown key → 401 `unauthorized`
//!   (with `WWW-Authenticate: Bearer`), before routing: the answer is the same for every
//!   path, so it reveals neither orders nor which routes exist;
//! - a known key whose scope is too narrow for the route → 403 `forbidden`.
//!
//! Scopes nest: `admin` ⊇ `write` ⊇ `read`.

use crate::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Prefix of every key paystate generates (so a key found in a file or log is recognisable).
pub const KEY_PREFIX: &str = "psk_";
/// Random bytes in a generated key.
const KEY_RANDOM_BYTES: usize = 32;
/// Longest `Authorization` value looked at (a key is 47 characters).
const AUTHORIZATION_LEN_MAX: usize = 256;

/// What a key may do. Ordered: a wider scope includes every narrower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Queries: `GET /orders`, `GET /orders/{id}`, `GET /projection`.
    Read,
    /// Writes: `POST /attachments` (and every read).
    Write,
    /// Everything (operations routes to come).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a key of this scope may use a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured key, as settings hold it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key (for operators; never sent by clients).
    pub name: String,
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: String,
    pub scope: Scope,
}

/// A freshly generated key: `key` is shown once and stored nowhere; `config` goes into the
/// settings.
pub struct NewKey {
    pub key: String,
    pub config: ApiKeyConfig,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"<redacted>")
            .field("config", &self.config)
            .finish()
    }
}

/// Generates a key from the operating system's random source.
pub fn generate(name: &str, scope: Scope) -> Result<NewKey, String> {
    let mut random = [0u8; KEY_RANDOM_BYTES];
    getrandom::getrandom(&mut random).map_err(|e| format!("no random source: {e}"))?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let config = ApiKeyConfig {
        name: name.to_string(),
        sha256: hex::encode(digest(&key)),
        scope,
    };
    Ok(NewKey { key, config })
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

struct Known {
    name: String,
    hash: [u8; 32],
    scope: Scope,
}

/// The configured keys, checked. Cheap to clone.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<Vec<Known>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.name, k.scope)))
            .finish()
    }
}

impl ApiKeys {
    /// Checks every entry: a name, a 64-hex-digit hash, no name or hash twice.
    pub fn new(configs: &[ApiKeyConfig]) -> Result<ApiKeys, String> {
        let mut keys: Vec<Known> = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(format!("api key #{}: the name is empty", i + 1));
            }
            let hash: [u8; 32] = hex::decode(c.sha256.trim())
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    format!(
                        "api key {:?}: sha256 must be 64 hex digits (the SHA-256 of the key, \
                         as `paystate apikey new` prints it), not the key itself",
                        c.name
                    )
                })?;
            if keys.iter().any(|k| k.name == c.name) {
                return Err(format!("api key {:?} is configured twice", c.name));
            }
            if keys.iter().any(|k| k.hash == hash) {
                return Err(format!(
                    "api key {:?} has the same hash as another key",
                    c.name
                ));
            }
            keys.push(Known {
                name: c.name.clone(),
                hash,
                scope: c.scope,
            });
        }
        Ok(ApiKeys {
            keys: Arc::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scope of `presented`, if it is a configured key. Every configured hash is compared
    /// (constant time each), whichever matches.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let hash = digest(presented);
        let mut found = None;
        for k in self.keys.iter() {
            if bool::from(k.hash.ct_eq(&hash)) {
                found = Some(k.scope);
            }
        }
        found
    }

    /// The name and scope of the key that `presented` is (the dashboard's login): every hash
    /// is compared, like [`ApiKeys::scope_of`].
    pub fn identify(&self, presented: &str) -> Option<(String, Scope)> {
        let hash = digest(presented);
        let mut found = None;
        for k in self.keys.iter() {
            if bool::from(k.hash.ct_eq(&hash)) {
                found = Some((k.name.clone(), k.scope));
            }
        }
        found
    }

    /// The name of the key that `presented` is (for logs: names, never keys).
    fn name_of(&self, presented: &str) -> Option<&str> {
        let hash = digest(presented);
        self.keys
            .iter()
            .find(|k| bool::from(k.hash.ct_eq(&hash)))
            .map(|k| k.name.as_str())
    }
}

/// The scope the request's key was granted (put into request extensions by [`authenticate`]).
#[derive(Debug, Clone, Copy)]
pub struct Granted(pub Scope);

/// The bearer token of an `Authorization` value (`Bearer` is case-insensitive).
fn bearer(value: &HeaderValue) -> Option<&str> {
    if value.len() > AUTHORIZATION_LEN_MAX {
        return None;
    }
    let text = value.to_str().ok()?;
    let (scheme, token) = text.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized() -> Response {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this API needs a key: send `Authorization: Bearer <key>`",
    )
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Middleware over the whole private router: 401 unless the request carries a configured key;
/// otherwise records the key's scope for [`require`].
pub async fn authenticate(State(keys): State<ApiKeys>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(bearer)
        .map(str::to_string);
    let Some(presented) = presented else {
        return unauthorized();
    };
    let Some(scope) = keys.scope_of(&presented) else {
        tracing::info!(path = %req.uri().path(), "request with an unknown API key refused");
        return unauthorized();
    };
    tracing::debug!(key = keys.name_of(&presented).unwrap_or("?"), %scope, "API key accepted");
    req.extensions_mut().insert(Granted(scope));
    next.run(req).await
}

/// Middleware for a group of routes that needs `needed`: 403 `forbidden` when the request's
/// key is narrower (and 401 if [`authenticate`] did not run, which would be a wiring error).
pub async fn require(State(needed): State<Scope>, req: Request, next: Next) -> Response {
    match req.extensions().get::<Granted>() {
        Some(Granted(scope)) if scope.allows(needed) => next.run(req).await,
        Some(Granted(scope)) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this route needs a {needed} key; this key is {scope}"),
        )
        .into_response(),
        None => unauthorized(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read) && Scope::Write.allows(Scope::Write));
        assert!(!Scope::Write.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Write));
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn generated_keys_are_found_by_hash_only() {
        let a = generate("ops", Scope::Read).expect("key");
        let b = generate("shop", Scope::Write).expect("key");
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(KEY_PREFIX) && a.key.len() == 47);
        assert!(!a.config.sha256.contains(&a.key[KEY_PREFIX.len()..]));
        let keys = ApiKeys::new(&[a.config.clone(), b.config.clone()]).expect("valid");
        assert_eq!(keys.scope_of(&a.key), Some(Scope::Read));
        assert_eq!(keys.scope_of(&b.key), Some(Scope::Write));
        assert_eq!(
            keys.scope_of(&a.config.sha256),
            None,
            "the hash is not a key"
        );
        assert_eq!(keys.scope_of(""), None);
        assert!(!format!("{a:?}").contains(&a.key), "Debug hides the key");
    }

    #[test]
    fn bad_configs_are_refused_without_echoing_them() {
        let key = generate("x", Scope::Admin).expect("key");
        let as_key = ApiKeyConfig {
            name: "x".into(),
            sha256: key.key.clone(),
            scope: Scope::Admin,
        };
        let e = ApiKeys::new(&[as_key]).expect_err("a key is not a hash");
        assert!(!e.contains(&key.key), "{e}");
        let twice = [key.config.clone(), key.config.clone()];
        assert!(ApiKeys::new(&twice).is_err());
        let mut same_hash = key.config.clone();
        same_hash.name = "y".into();
        assert!(ApiKeys::new(&[key.config.clone(), same_hash]).is_err());
        let unnamed = ApiKeyConfig {
            name: " ".into(),
            ..key.config
        };
        assert!(ApiKeys::new(&[unnamed]).is_err());
    }

    #[test]
    fn bearer_parsing() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
        assert_eq!(bearer(&v("abc")), None);
    }
}
