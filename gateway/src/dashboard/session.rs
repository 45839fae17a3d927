//! Dashboard sessions. A browser cannot send `Authorization: Bearer` by itself, so the
//! operator pastes an API key once into the login form; the dashboard checks it against the
//! configured hashes and answers with a random session token in an `HttpOnly`,
//! `SameSite=Strict` cookie. The key itself is never stored, logged or echoed: a session keeps
//! only the key's name and scope. Sessions live in this process's memory (a restart logs
//! everyone out), bounded by [`SESSIONS_MAX`] and [`SESSION_TTL`].
//!
//! Every form that changes something carries the session's CSRF token, compared in constant
//! time: `SameSite=Strict` already keeps the cookie off cross-site requests; the token also
//! stops a same-site page that is not the dashboard.

use crate::auth::Scope;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "paystate_session";
/// How long a session lasts after login (no sliding renewal: log in again after it).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept; a login beyond it drops the session that expires first.
pub const SESSIONS_MAX: usize = 1024;
/// Bytes of randomness in a session or CSRF token (hex-encoded: twice as many characters).
const TOKEN_BYTES: usize = 32;
/// Longest cookie header read.
const COOKIE_HEADER_LEN_MAX: usize = 4096;

/// A logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API key's configured name (never the key).
    pub key_name: String,
    pub scope: Scope,
    /// The token every changing form must carry.
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        self.csrf.len() == presented.len()
            && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The live sessions, by the SHA-256 of their token (the token is only in the cookie).
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no randomness for a session token: {0}")]
    Random(String),
}

impl Sessions {
    /// A new session for the key named `key_name`; returns the cookie token and the session.
    pub fn open(&self, key_name: &str, scope: Scope) -> Result<(String, Session), SessionError> {
        let token = random_hex()?;
        let session = Session {
            key_name: key_name.to_string(),
            scope,
            csrf: random_hex()?,
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= SESSIONS_MAX {
            let first = map.iter().min_by_key(|(_, s)| s.expires).map(|(h, _)| *h);
            if let Some(h) = first {
                map.remove(&h);
            }
        }
        map.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of `token`, if any.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.lock();
        let h = digest(token);
        match map.get(&h) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&h);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn close(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Why: single inserts and removes keep the map consistent even after a panic.
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session token in a `Cookie` header, if there is one.
pub fn token_from(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter(|v| v.len() <= COOKIE_HEADER_LEN_MAX)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 2 * TOKEN_BYTES)
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn random_hex() -> Result<String, SessionError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_token_and_closed() {
        let sessions = Sessions::default();
        let (token, s) = sessions.open("ops", Scope::Admin).expect("session");
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        let found = sessions.get(&token).expect("live");
        assert_eq!(
            (found.key_name.as_str(), found.scope),
            ("ops", Scope::Admin)
        );
        assert!(found.csrf_ok(&s.csrf) && !found.csrf_ok("x") && !found.csrf_ok(""));
        assert!(sessions.get("nope").is_none());
        sessions.close(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open("a", Scope::Read).expect("session").0;
        for _ in 0..SESSIONS_MAX {
            sessions.open("b", Scope::Read).expect("session");
        }
        assert!(sessions.lock().len() <= SESSIONS_MAX);
        assert!(sessions.get(&first).is_none(), "the oldest made room");
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; paystate_session=abc; b=2".parse().expect("header"),
        );
        assert_eq!(token_from(&h).as_deref(), Some("abc"));
        assert!(
            set_cookie("t").contains("HttpOnly") && set_cookie("t").contains("SameSite=Strict")
        );
    }
}
