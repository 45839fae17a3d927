//! [`Redactor`]: the one place where configured secrets are cut out of provider text before it
//! leaves the adapters.
//!
//! Providers quote requests back in error answers (validation errors, echo pages), so any
//! text an adapter got from a provider may contain the credentials we sent it: an API key, a
//! `?secret=` query value, a client secret from a token request body, an IPN secret from an
//! order body, a basic-auth header. [`crate::Adapters`] builds one `Redactor` from every
//! [`Secret`] in the [`AdaptersConfig`] and applies it at its boundary: every [`Reported`],
//! [`AdapterError`], [`ParsedCallback`] and [`CallbackError`] it returns has each string
//! passed through [`Redactor::redact`] (see [`Redact`]). Response excerpts are cut to a
//! bounded length inside the adapters; so that a cut never leaves the first half of a
//! secret behind, [`crate::http::HttpResponse::body_excerpt`] redacts the whole body before
//! cutting, with the redactor the facade puts in scope for the call ([`in_scope`]).
//!
//! Secrets a provider issues while running (Plural's OAuth access tokens, sent as `Bearer`
//! headers and quoted back like any other header) are not in the configuration: the flow that
//! receives one registers it with [`remember_in_scope`] before using it, and from then on the
//! facade's redactor cuts it out too. They are kept per provider account, current and
//! previous only ([`runtime`]).
//!
//! Forms matched for every secret, each replaced by [`REDACTED`]:
//! - the raw value, and each character in any mix of: itself, `%XX` (either hex case, one per
//!   UTF-8 byte), `+` for a space, JSON escapes (`\"`, `\\`, `\/`, `\n`..., `\uXXXX`
//!   including surrogate pairs), HTML entities (`&quot;`, `&#NN;`, `&#xHH;`...). This covers
//!   URL-encoded (query, form, path), JSON-quoted and HTML-quoted echoes, and mixes of them.
//! - base64 (standard and URL-safe alphabets, padded or not) of the secret at each of the
//!   three byte alignments, so it is also found inside a longer base64 text such as a
//!   basic-auth `user:password`. What is matched is the part of the encoding that depends
//!   on the secret's bytes alone; the whole surrounding base64 run is then replaced.
//! - lower- and uppercase hex of the secret's bytes.
//!
//! Limits: secrets under [`SECRET_CHARS_MIN`] characters are not redacted; a secret that is
//! a substring of the marker (`[redacted]`) cannot be told apart
//! from the marker; base64 forms are matched only when at least [`BASE64_CORE_CHARS_MIN`]
//! characters depend on the secret alone (secrets of 3 bytes or more). Secrets are matched
//! case-sensitively, as they are compared.

use crate::callback::ParsedCallback;
use crate::config::{AdaptersConfig, ProviderConfig};
use crate::error::{AdapterError, CallbackError};
use crate::flow::Reported;
use crate::secret::Secret;
use base64::Engine as _;
use paystate_events::SignalKind;
use regex::Regex;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

pub mod runtime;

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";
/// Secrets shorter than this (in characters) are not redacted: they cannot be told apart
/// from ordinary text, and cutting every `k` or `ipn` out of provider messages would destroy
/// them. Such values are test placeholders; a real credential is far longer.
pub const SECRET_CHARS_MIN: usize = 4;
/// Fewest base64 characters (that depend on the secret alone) worth matching.
pub const BASE64_CORE_CHARS_MIN: usize = 4;
/// Redaction passes at most (a replacement may complete a match across its borders only in
/// contrived cases; each pass is cheap).
const PASSES_MAX: usize = 4;
/// Compiled pattern size bound (a configuration has at most a few hundred secrets).
const REGEX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// Replaces every configured secret, and every secret learnt at run time (see
/// [`Redactor::remember`]), in every form above, by [`REDACTED`]. Cheap to clone; clones share
/// the run-time secrets, so one remembered inside a facade call (through [`in_scope`]'s
/// redactor) is also cut out at the facade's boundary.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The configured secrets' patterns, fixed when the redactor is built.
    inner: Option<Arc<Patterns>>,
    /// Secrets the providers issue while running (Plural's access tokens).
    runtime: Arc<runtime::RuntimeSecrets>,
}

struct Patterns {
    /// Raw, escaped, URL-encoded and hex forms: the match itself is replaced.
    direct: Regex,
    /// Base64 cores: the whole base64 run around a match is replaced.
    base64: Option<Regex>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(..)")
    }
}

impl Patterns {
    /// The patterns of these secret values (those under [`SECRET_CHARS_MIN`] are ignored);
    /// `None` when none is left.
    fn compile<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Option<Patterns> {
        let mut secrets: Vec<&str> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= SECRET_CHARS_MIN)
            .collect();
        // Longer first: where one secret contains another, the whole of it is matched.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        if secrets.is_empty() {
            return None;
        }
        let mut direct = Vec::new();
        let mut cores = Vec::new();
        for s in &secrets {
            direct.push(flexible(s));
            direct.push(flexible(&hex::encode(s.as_bytes())));
            direct.push(flexible(&hex::encode_upper(s.as_bytes())));
            for core in base64_cores(s.as_bytes()) {
                cores.push(flexible(&core));
            }
        }
        let build = |alternatives: &[String]| {
            regex::RegexBuilder::new(&alternatives.join("|"))
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
        };
        let direct = match build(&direct) {
            Ok(r) => r,
            // Every piece is escaped, so this only fails on the size limit: fall back to
            // the raw values alone rather than redacting nothing.
            Err(_) => Regex::new(
                &secrets
                    .iter()
                    .map(|s| regex::escape(s))
                    .collect::<Vec<_>>()
                    .join("|"),
            )
            .unwrap_or_else(|_| Regex::new(&regex::escape(REDACTED)).expect("a literal")),
        };
        let base64 = if cores.is_empty() {
            None
        } else {
            build(&cores).ok()
        };
        Some(Patterns { direct, base64 })
    }

    /// Replaces every match in `out`; true when something was replaced.
    fn apply(&self, out: &mut Cow<'_, str>) -> bool {
        let mut changed = false;
        if self.direct.is_match(out) {
            *out = Cow::Owned(self.direct.replace_all(out, REDACTED).into_owned());
            changed = true;
        }
        if let Some(b64) = &self.base64 {
            if let Some(replaced) = replace_base64_runs(b64, out) {
                *out = Cow::Owned(replaced);
                changed = true;
            }
        }
        changed
    }
}

impl Redactor {
    /// A redactor for these secret values (those under [`SECRET_CHARS_MIN`] are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        Redactor {
            inner: Patterns::compile(secrets).map(Arc::new),
            runtime: Arc::default(),
        }
    }

    /// A redactor for every secret in the configuration: each provider's API keys,
    /// passwords, signing secrets, tokens, client secrets, IPN and plugin secrets.
    pub fn from_config(config: &AdaptersConfig) -> Redactor {
        let secrets = configured_secrets(config);
        Redactor::new(secrets.iter().map(|s| s.expose()))
    }

    /// Adds a secret a provider issued at run time (an access token) under `slot` (one per
    /// provider account), for this redactor and every clone of it. A slot keeps its newest
    /// [`runtime::SECRETS_PER_SLOT_MAX`] values: a call made with the previous token may
    /// still be answered after the renewal. Values under [`SECRET_CHARS_MIN`] are ignored.
    pub fn remember(&self, slot: &str, secret: &Secret) {
        let value = secret.expose();
        if value.chars().count() < SECRET_CHARS_MIN || self.runtime.holds(slot, value) {
            return;
        }
        // Compiled before the lock is taken: redaction elsewhere does not wait for it.
        if let Some(p) = Patterns::compile([value]) {
            self.runtime.insert(slot, secret.clone(), Arc::new(p));
        }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none() && self.runtime.is_empty()
    }

    /// `text` with every form of every secret replaced by [`REDACTED`].
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let runtime = self.runtime.patterns();
        let all: Vec<&Patterns> = self
            .inner
            .iter()
            .chain(runtime.iter())
            .map(AsRef::as_ref)
            .collect();
        let mut out = Cow::Borrowed(text);
        if all.is_empty() {
            return out;
        }
        for _ in 0..PASSES_MAX {
            let mut changed = false;
            for p in &all {
                changed |= p.apply(&mut out);
            }
            if !changed {
                break;
            }
        }
        out
    }

    /// Redacts a string in place.
    pub fn redact_string(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }
}

/// Every secret value of the configuration (all providers, all accounts).
pub fn configured_secrets(config: &AdaptersConfig) -> Vec<&Secret> {
    fn accounts<A>(c: Option<&ProviderConfig<A>>) -> impl Iterator<Item = &A> {
        c.into_iter().flat_map(|c| c.accounts.values())
    }
    let mut out: Vec<&Secret> = Vec::new();
    for a in accounts(config.plexy.as_ref().map(|c| &c.common)) {
        out.extend([&a.api_key, &a.webhook_token]);
        out.extend(a.tilda_secret.as_ref());
    }
    for a in accounts(config.paykassma.as_ref()) {
        out.extend([&a.plugin_secret, &a.private_key]);
    }
    for a in accounts(config.plural.as_ref()) {
        out.extend([&a.client_secret, &a.webhook_secret]);
        out.extend(a.return_url_secret_hex.as_ref());
    }
    for a in accounts(config.exchanger.as_ref().map(|c| &c.common)) {
        out.push(&a.ipn_secret);
        out.extend(a.api_key.as_ref());
    }
    for a in accounts(config.flitt.as_ref()) {
        out.push(&a.password);
    }
    out
}

/// A pattern matching `s` with each character in any of its encoded forms.
fn flexible(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        out.push_str("(?:");
        out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        // URL encoding: one %XX per UTF-8 byte, either hex case; `+` for a space.
        out.push('|');
        for b in c.encode_utf8(&mut [0; 4]).bytes() {
            let _ = write!(out, "%(?i:{b:02x})");
        }
        if c == ' ' {
            out.push_str(r"|\+");
        }
        // JSON escapes.
        let short = match c {
            '"' => Some(r#"\\""#),
            '\\' => Some(r"\\\\"),
            '/' => Some(r"\\/"),
            '\n' => Some(r"\\n"),
            '\r' => Some(r"\\r"),
            '\t' => Some(r"\\t"),
            '\u{8}' => Some(r"\\b"),
            '\u{c}' => Some(r"\\f"),
            _ => None,
        };
        if let Some(e) = short {
            out.push('|');
            out.push_str(e);
        }
        out.push('|');
        for unit in c.encode_utf16(&mut [0; 2]) {
            let _ = write!(out, r"\\u(?i:{unit:04x})");
        }
        // HTML entities: numeric (decimal with optional zeros, hex either case), and named.
        let _ = write!(out, "|&#0*{};|&#(?i:x)0*(?i:{:x});", c as u32, c as u32);
        let named = match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '"' => Some("&quot;"),
            '\'' => Some("&apos;"),
            _ => None,
        };
        if let Some(e) = named {
            out.push('|');
            out.push_str(e);
        }
        out.push(')');
    }
    out
}

/// The base64 characters that depend on `secret`'s bytes alone, for each of the three byte
/// alignments the secret can have inside a longer encoded text, in both alphabets.
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for k in 0..3usize {
        let mut buf = vec![0u8; k];
        buf.extend_from_slice(secret);
        buf.extend_from_slice(&[0, 0]);
        let bits_from = 8 * k;
        let bits_to = 8 * (k + secret.len());
        let first = bits_from.div_ceil(6);
        let end = bits_to / 6;
        if end < first + BASE64_CORE_CHARS_MIN {
            continue;
        }
        for engine in [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let enc = engine.encode(&buf);
            if let Some(core) = enc.get(first..end) {
                cores.push(core.to_string());
            }
        }
    }
    cores.sort();
    cores.dedup();
    cores
}

fn is_base64_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_')
}

/// Replaces each base64 run that contains a core match; `None` when there is none.
fn replace_base64_runs(re: &Regex, text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for m in re.find_iter(text) {
        let mut start = m.start();
        while start > 0 && is_base64_char(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = m.end();
        while end < bytes.len() && (is_base64_char(bytes[end]) || bytes[end] == b'=') {
            end += 1;
        }
        match spans.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => spans.push((start, end)),
        }
    }
    if spans.is_empty() {
        return None;
    }
    // Runs are extended over ASCII only, so every span border is a char border.
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

tokio::task_local! {
    static ACTIVE: Redactor;
}

/// Runs `fut` with `redactor` in scope for [`in_scope`] (the facade does this per call).
pub(crate) async fn scope<F: std::future::Future>(redactor: Redactor, fut: F) -> F::Output {
    ACTIVE.scope(redactor, fut).await
}

/// `text` redacted by the redactor of the facade call in progress (unchanged outside one).
/// For text that is cut to a bounded length before it reaches the facade.
pub(crate) fn in_scope(text: &str) -> Cow<'_, str> {
    ACTIVE
        .try_with(|r| match r.redact(text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s),
        })
        .ok()
        .flatten()
        .map_or(Cow::Borrowed(text), Cow::Owned)
}

/// Remembers a secret issued at run time (see [`Redactor::remember`]) in the redactor of the
/// facade call in progress, which the facade also applies to what the call returns. False
/// outside a facade call (nothing is redacted there).
pub(crate) fn remember_in_scope(slot: &str, secret: &Secret) -> bool {
    ACTIVE.try_with(|r| r.remember(slot, secret)).is_ok()
}

/// Values that may carry provider text out of the adapters.
pub trait Redact {
    /// `self` with every string redacted.
    fn redact(self, r: &Redactor) -> Self;
}

impl<T: Redact, E: Redact> Redact for Result<T, E> {
    fn redact(self, r: &Redactor) -> Self {
        match self {
            Ok(v) => Ok(v.redact(r)),
            Err(e) => Err(e.redact(r)),
        }
    }
}

impl Redact for () {
    fn redact(self, _: &Redactor) {}
}

impl Redact for String {
    fn redact(mut self, r: &Redactor) -> String {
        r.redact_string(&mut self);
        self
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact(self, r: &Redactor) -> Self {
        self.map(|v| v.redact(r))
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redact(self, r: &Redactor) -> Self {
        self.into_iter().map(|v| v.redact(r)).collect()
    }
}

impl Redact for SignalKind {
    // Exhaustive on purpose: a new variant with text must be looked at here.
    fn redact(self, r: &Redactor) -> SignalKind {
        match self {
            SignalKind::Accepted { action } => SignalKind::Accepted {
                action: action.map(|mut a| {
                    a.url = a.url.redact(r);
                    a.details = a
                        .details
                        .into_iter()
                        .map(|(k, v)| (k.redact(r), v.redact(r)))
                        .collect();
                    a
                }),
            },
            SignalKind::Failed {
                operation,
                code,
                message,
                refund_id,
            } => SignalKind::Failed {
                operation,
                code: code.redact(r),
                message: message.redact(r),
                refund_id: refund_id.redact(r),
            },
            SignalKind::Refunded { refund_id, amount } => SignalKind::Refunded {
                refund_id: refund_id.redact(r),
                amount,
            },
            SignalKind::Unrecognised { raw_status } => SignalKind::Unrecognised {
                raw_status: raw_status.redact(r),
            },
            SignalKind::OutcomeUnknown { operation, detail } => SignalKind::OutcomeUnknown {
                operation,
                detail: detail.redact(r),
            },
            SignalKind::NeedsReview { reason } => SignalKind::NeedsReview {
                reason: reason.redact(r),
            },
            SignalKind::Probed { answer } => SignalKind::Probed {
                answer: answer.redact(r),
            },
            k @ (SignalKind::Authorized { .. }
            | SignalKind::Captured { .. }
            | SignalKind::Cancelled
            | SignalKind::Settled { .. }) => k,
        }
    }
}

impl Redact for Reported {
    fn redact(self, r: &Redactor) -> Reported {
        Reported {
            provider_ref: self.provider_ref.redact(r),
            signals: self.signals.redact(r),
            call_ref: self.call_ref.redact(r),
        }
    }
}

impl Redact for AdapterError {
    fn redact(self, r: &Redactor) -> AdapterError {
        match self {
            AdapterError::Retryable {
                provider,
                op,
                detail,
            } => AdapterError::Retryable {
                provider,
                op,
                detail: detail.redact(r),
            },
            AdapterError::OutcomeUnknown {
                provider,
                op,
                detail,
            } => AdapterError::OutcomeUnknown {
                provider,
                op,
                detail: detail.redact(r),
            },
            AdapterError::Rejected {
                provider,
                op,
                code,
                message,
            } => AdapterError::Rejected {
                provider,
                op,
                code: code.redact(r),
                message: message.redact(r),
            },
            AdapterError::NotFound {
                provider,
                op,
                detail,
            } => AdapterError::NotFound {
                provider,
                op,
                detail: detail.redact(r),
            },
            AdapterError::InvalidInput {
                provider,
                op,
                detail,
            } => AdapterError::InvalidInput {
                provider,
                op,
                detail: detail.redact(r),
            },
            // Built from our configuration and fixed texts, never from provider text.
            e @ (AdapterError::Unauthorized { .. }
            | AdapterError::Config(_)
            | AdapterError::Unsupported { .. }) => e,
        }
    }
}

impl Redact for CallbackError {
    fn redact(self, r: &Redactor) -> CallbackError {
        match self {
            CallbackError::Malformed { provider, detail } => CallbackError::Malformed {
                provider,
                detail: detail.redact(r),
            },
            // Fixed texts (signature reasons name checks, not values) and configuration.
            e @ (CallbackError::BadSignature { .. }
            | CallbackError::Config(_)
            | CallbackError::Unsupported { .. }) => e,
        }
    }
}

impl Redact for ParsedCallback {
    fn redact(mut self, r: &Redactor) -> ParsedCallback {
        self.hint.provider_ref = self.hint.provider_ref.redact(r);
        self.dedup_key = self.dedup_key.redact(r);
        self.signals = self.signals.redact(r);
        self.ack.body = self.ack.body.redact(r);
        self
    }
}

#[cfg(test)]
mod tests;
