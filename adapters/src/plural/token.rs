//! Plural access tokens: `POST /api/auth/v1/token` gives a bearer token with `expires_in`
//! (seconds) or `expires_at`; there is no refresh token, so we ask for a new one shortly
//! before expiry. [`TokenCache`] is pure: the caller passes `now`.

use crate::secret::Secret;
use paystate_events::Timestamp;

/// Renew this long before the token expires (clock skew and call duration).
pub const RENEW_BEFORE_S: i64 = 60;
/// Lifetime assumed when the token response states none.
pub const TOKEN_TTL_S_DEFAULT: i64 = 300;
/// Longest lifetime believed, whatever the response says.
pub const TOKEN_TTL_S_MAX: i64 = 24 * 3600;

/// A bearer token and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: Secret,
    pub expires_at: Timestamp,
}

impl Token {
    /// A token received at `now` that lives `expires_in_s` seconds (bounded).
    pub fn received(value: Secret, now: Timestamp, expires_in_s: Option<i64>) -> Token {
        let ttl = expires_in_s
            .unwrap_or(TOKEN_TTL_S_DEFAULT)
            .clamp(0, TOKEN_TTL_S_MAX);
        Token {
            value,
            expires_at: now + chrono::Duration::seconds(ttl),
        }
    }
}

/// One account's cached token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCache {
    token: Option<Token>,
}

impl TokenCache {
    /// True when there is no token or it expires within [`RENEW_BEFORE_S`] of `now`.
    pub fn needs_renewal(&self, now: Timestamp) -> bool {
        match &self.token {
            None => true,
            Some(t) => t.expires_at - chrono::Duration::seconds(RENEW_BEFORE_S) <= now,
        }
    }

    /// The token, if it need not be renewed yet.
    pub fn valid(&self, now: Timestamp) -> Option<&Secret> {
        if self.needs_renewal(now) {
            return None;
        }
        self.token.as_ref().map(|t| &t.value)
    }

    pub fn store(&mut self, token: Token) {
        self.token = Some(token);
    }

    /// Forget the token (the provider refused it).
    pub fn clear(&mut self) {
        self.token = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renews_before_expiry() {
        let t0 = chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time");
        let mut cache = TokenCache::default();
        assert!(cache.needs_renewal(t0));
        cache.store(Token::received(Secret::new("tok"), t0, Some(3600)));
        assert_eq!(cache.valid(t0).map(Secret::expose), Some("tok"));
        let almost = t0 + chrono::Duration::seconds(3600 - RENEW_BEFORE_S - 1);
        assert!(!cache.needs_renewal(almost));
        let renew = t0 + chrono::Duration::seconds(3600 - RENEW_BEFORE_S);
        assert!(cache.needs_renewal(renew));
        assert_eq!(cache.valid(renew), None);
        cache.clear();
        assert!(cache.needs_renewal(t0));
        let capped = Token::received(Secret::new("t"), t0, Some(i64::MAX));
        assert_eq!(
            capped.expires_at,
            t0 + chrono::Duration::seconds(TOKEN_TTL_S_MAX)
        );
    }
}
