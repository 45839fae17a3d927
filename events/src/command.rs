//! Commands: what client services (and adapters, for provider signals) ask of an order.
//!
//! On the wire a command is one JSON object: the envelope fields plus a `type` tag and the
//! command's own fields, e.g.
//! `{"command_id":"c-1","order_id":"o-1","issued_at":"2026-11-22T10:00:00Z","type":"capture","amount":{"minor_units":500,"currency":"USD"}}`.

use crate::{Amount, CommandId, Currency, Money, OrderId, Provider, ProviderSignal, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most metadata entries of a create command, longest text field (defined in [`crate::limits`]).
pub use crate::limits::{METADATA_ENTRIES_MAX, TEXT_LEN_MAX};

/// A command with its id, target order and time. The id is the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandEnvelope {
    /// Idempotency key: the same id twice has the effect of once.
    pub command_id: CommandId,
    /// The order this command is about (also the NATS subject token it is published on).
    pub order_id: OrderId,
    /// When the caller issued it (the caller's clock; recorded, not trusted for rules).
    #[serde(serialize_with = "crate::timestamp_json::write")]
    pub issued_at: Timestamp,
    #[serde(flatten)]
    pub command: Command,
}

impl CommandEnvelope {
    /// A stable fingerprint of the command (sha256 of its canonical JSON, without
    /// `issued_at`), used to tell a retry (same id, same request) from a reused idempotency
    /// key (same id, another request). A client that retries with a fresh timestamp is still
    /// retrying the same request.
    pub fn fingerprint(&self) -> String {
        crate::commit::sha256_hex(&self.fingerprint_input())
    }

    /// The bytes the fingerprint hashes: compact JSON of `command_id`, `order_id`, then the
    /// command's `type` and fields in declaration order (absent optional fields omitted, maps
    /// sorted by key), without `issued_at`. Shown in docs/protocol.md.
    pub fn fingerprint_input(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Canonical<'a> {
            command_id: &'a CommandId,
            order_id: &'a OrderId,
            #[serde(flatten)]
            command: &'a Command,
        }
        let canonical = Canonical {
            command_id: &self.command_id,
            order_id: &self.order_id,
            command: &self.command,
        };
        // Why: serializing our own typed value cannot fail (no maps with non-string keys).
        serde_json::to_vec(&canonical).unwrap_or_default()
    }
}

/// Everything that can be asked of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Create a payment order.
    CreateOrder {
        merchant_reference: String,
        amount: Money,
        provider: Provider,
        capture_mode: CaptureMode,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "crate::timestamp_json::write_opt"
        )]
        expires_at: Option<Timestamp>,
        /// Which configured merchant account of the provider to use (default account if absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merchant_account: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<String, String>,
    },
    /// Start the payment at the provider.
    StartPayment {
        #[serde(default)]
        initiation: PaymentInitiation,
    },
    /// Capture authorized funds; `amount` absent captures everything authorized.
    Capture {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// Cancel the order (before capture).
    Cancel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Refund captured funds; `amount` absent refunds everything still refundable.
    /// Repeatable; the command id is the refund's id.
    Refund {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// The customer says they made the wallet transfer (Paykassma): their transaction number
    /// and a screenshot, uploaded first as an attachment. Adapter workers send it to the
    /// provider for activation.
    ConfirmTransfer {
        /// The customer's transaction number (Paykassma `key1`: exactly 12 digits).
        reference: String,
        attachment: Attachment,
    },
    /// Expire the order: after `expires_at` an order that is not yet authorized is cancelled,
    /// an authorized one has its authorization voided.
    Expire,
    /// An operator's decision on an order flagged for review (`needs_review`): clears the
    /// flag so the order takes commands again. Kept in the log with who decided and why; the
    /// discrepancies stay in the order's history.
    ResolveReview {
        /// Who decided (an operator id from the operator's own directory; not a secret).
        operator: String,
        /// Why the order may move again (free text, at most [`TEXT_LEN_MAX`] bytes).
        reason: String,
    },
    /// Apply what a provider reported (sent by adapters, the gateway and the reconciler).
    ProviderSignal { signal: ProviderSignal },
}

impl Command {
    /// The `type` tag, for logs and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateOrder { .. } => "create_order",
            Command::StartPayment { .. } => "start_payment",
            Command::Capture { .. } => "capture",
            Command::Cancel { .. } => "cancel",
            Command::Refund { .. } => "refund",
            Command::ConfirmTransfer { .. } => "confirm_transfer",
            Command::Expire => "expire",
            Command::ResolveReview { .. } => "resolve_review",
            Command::ProviderSignal { .. } => "provider_signal",
        }
    }

    /// Every command `type` tag, for error messages and the README.
    pub const NAMES: [&'static str; 9] = [
        "create_order",
        "start_payment",
        "capture",
        "cancel",
        "refund",
        "confirm_transfer",
        "expire",
        "resolve_review",
        "provider_signal",
    ];
}

/// Whether the provider captures by itself after authorization (auto) or waits for a
/// capture command (manual, pre-authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    Auto,
    Manual,
}

/// Provider-specific details for starting a payment. Adapters read what their provider needs
/// from `params` (e.g. Paykassma `label`, Plural `payment_method`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentInitiation {
    /// Where the provider sends the customer back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The customer's id in the merchant's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// A file a command refers to, stored in the `paystate_attachments` object store bucket
/// (commands stay small; the file is fetched by the worker that needs it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    /// Object name in the bucket.
    pub object: String,
    pub file_name: String,
    pub content_type: String,
    /// SHA-256 of the bytes, hex; checked when the file is read back.
    pub sha256: String,
    pub size: u64,
}

/// Amount in a command's currency check: helper for tests and clients.
pub fn money(minor: u64, currency: &str) -> Option<Money> {
    Some(Money::new(
        Amount::new(minor).ok()?,
        Currency::parse(currency).ok()?,
    ))
}
