//! The payment providers paystate speaks to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A payment provider. Lowercase names are used on the wire, in URLs (`/callbacks/{provider}`)
/// and in configuration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// PlexyPay: payment links, capture/cancel/refund, token-authenticated webhooks.
    Plexy,
    /// Paykassma: wallet transfer confirmed by activation; postbacks resent until acknowledged.
    Paykassma,
    /// Plural by Pine Labs: OAuth token, orders, payments with challenge URL, HMAC-SHA256.
    Plural,
    /// A currency exchanger in payment-processor mode: IPN sent once, reconciled by polling.
    Exchanger,
    /// Flitt (Pay by Payme): checkout URL / token, SHA-1 signatures.
    Flitt,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 5] = [
        Provider::Plexy,
        Provider::Paykassma,
        Provider::Plural,
        Provider::Exchanger,
        Provider::Flitt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Plexy => "plexy",
            Provider::Paykassma => "paykassma",
            Provider::Plural => "plural",
            Provider::Exchanger => "exchanger",
            Provider::Flitt => "flitt",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
