//! Every HTTP bound of the gateway, defined once, with the constraints that tie them together
//! checked at compile time.
//!
//! - **Callbacks** (public, unauthenticated): a provider notification is a few kilobytes and
//!   becomes at most a handful of signal commands. Its body is capped at 256 KiB, above the
//!   command size limit ([`COMMAND_BYTES_MAX`], 64 KiB) on purpose: an authentic callback
//!   whose signal would not fit a command is stored, verified and flagged for review rather
//!   than refused (a refused provider resends for ever). Its raw record (body
//!   base64-encoded, plus headers) must fit one stream message, or it could not be stored.
//! - **Queries** (private): `GET` requests; bodies are ignored, so almost none is accepted.
//! - **Attachments** (private, `write` key): files such as transfer screenshots are larger
//!   than any command by nature. They never travel inside a command (the command carries only
//!   name, size and SHA-256) and go to the object store, which chunks them, so the message
//!   size does not bound them; [`ATTACHMENT_BYTES_MAX`] (10 MiB) does, plus room for the
//!   multipart framing. Only holders of a write key can send them.
//!
//! Per listener, at run time ([`HttpLimits`]): a request timeout (the whole request, body
//! included, so a slow sender cannot hold a connection forever) and a concurrency limit
//! (requests beyond it wait, and time out if they wait too long).

use paystate_journal::setup::STREAM_MSG_BYTES_MAX;
pub use paystate_service::attachments::ATTACHMENT_BYTES_MAX;
pub use paystate_service::config::COMMAND_BYTES_MAX;
use std::time::Duration;

/// Largest callback body; larger ones get 413 before anything is stored (defined in
/// `paystate_events::limits`).
pub use paystate_events::limits::CALLBACK_BODY_BYTES_MAX;
/// Largest body on a query route (they read none).
pub const QUERY_BODY_BYTES_MAX: usize = 1024;
/// Largest dashboard form (login key, CSRF token, a review reason of at most the command
/// text bound, urlencoded at worst three bytes per byte).
pub const DASHBOARD_FORM_BYTES_MAX: usize = 4 * 1024;
const _: () = assert!(DASHBOARD_FORM_BYTES_MAX > 3 * paystate_events::command::TEXT_LEN_MAX + 256);
/// Room for multipart boundaries and part headers on top of an attachment.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;
/// Largest `POST /attachments` body: one attachment plus its multipart framing.
pub const UPLOAD_BODY_BYTES_MAX: usize = ATTACHMENT_BYTES_MAX + MULTIPART_OVERHEAD_BYTES;
/// Request head (line and headers) hyper buffers at most with its defaults (8 KiB + 100
/// headers of 4 KiB): what a stored raw callback may carry besides the body.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024 + 100 * 4 * 1024;
/// JSON framing of a raw callback record (field names, provider, time, query).
const RAW_RECORD_OVERHEAD_BYTES: usize = 16 * 1024;

const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

// A callback may be larger than a command: an authentic one whose signal does not fit a
// command is stored and flagged for review (callbacks::deliver), never refused for ever.
const _: () = assert!(CALLBACK_BODY_BYTES_MAX >= COMMAND_BYTES_MAX);
// Its raw record (body in base64, headers, framing) fits one stream message.
const _: () = assert!(RAW_RECORD_BYTES_MAX <= STREAM_MSG_BYTES_MAX as usize);
// The upload limit lets through every attachment the store accepts, and queries read less
// than any command.
const _: () = assert!(UPLOAD_BODY_BYTES_MAX > ATTACHMENT_BYTES_MAX);
const _: () = assert!(QUERY_BODY_BYTES_MAX < COMMAND_BYTES_MAX);

/// Largest raw callback record (body in base64, the request head, JSON framing).
pub const RAW_RECORD_BYTES_MAX: usize =
    base64_len(CALLBACK_BODY_BYTES_MAX) + REQUEST_HEAD_BYTES_MAX + RAW_RECORD_OVERHEAD_BYTES;

/// Refused callbacks (bad signature or body: anyone on the internet can send them) are kept
/// as evidence only within a budget per provider route: this many bytes of records a
/// minute, ...
pub const REFUSED_EVIDENCE_BYTES_PER_MINUTE: usize = 64 * 1024;
/// ... up to this many at once (one largest record fits), ...
pub const REFUSED_EVIDENCE_BURST_BYTES: usize = 1024 * 1024;
/// ... each kept this long (`Nats-TTL`), so what refused callbacks take in the callbacks
/// stream is bounded whatever is sent: [`REFUSED_EVIDENCE_BYTES_HELD_MAX`]. Past the budget
/// a refused callback is counted and logged, not stored.
pub const REFUSED_EVIDENCE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most refused callbacks' evidence takes, all provider routes together (~3.1 GiB).
pub const REFUSED_EVIDENCE_BYTES_HELD_MAX: u64 = paystate_events::Provider::ALL.len() as u64
    * (REFUSED_EVIDENCE_BURST_BYTES as u64
        + REFUSED_EVIDENCE_BYTES_PER_MINUTE as u64 * REFUSED_EVIDENCE_TTL.as_secs() / 60);

const _: () = assert!(REFUSED_EVIDENCE_BURST_BYTES >= RAW_RECORD_BYTES_MAX);
const _: () = assert!(REFUSED_EVIDENCE_BYTES_HELD_MAX <= 4 * 1024 * 1024 * 1024);

/// Default time for one whole request (head, body, answer).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default requests served at once per listener.
pub const CONCURRENCY_MAX_DEFAULT: usize = 256;

/// The run-time bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request not answered in this time gets 408 `request_timeout`.
    pub request_timeout: Duration,
    /// Requests in hand at once; more wait for a slot (within their timeout).
    pub concurrency_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            concurrency_max: CONCURRENCY_MAX_DEFAULT,
        }
    }
}
