//! What a sandbox expects from its callers: credentials, callback targets and a time scale.
//!
//! Every field has a default that matches the examples in the provider documents, so
//! `SandboxConfig::default()` starts a working sandbox; tests override what they check.

use std::time::Duration;

/// How long one documented second of a retry schedule takes here. `1.0` is real time;
/// tests use `0.001` so "5 min" becomes 300 ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

impl TimeScale {
    /// Real time: schedules run as documented.
    pub const REAL: TimeScale = TimeScale(1.0);
    /// One documented second takes one millisecond.
    pub const MILLIS: TimeScale = TimeScale(0.001);

    /// The real duration of `documented_s` documented seconds (never negative or NaN).
    pub fn scale(self, documented_s: u64) -> Duration {
        let factor = if self.0.is_finite() && self.0 > 0.0 {
            self.0
        } else {
            0.0
        };
        Duration::from_secs_f64(documented_s as f64 * factor)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

/// Everything one sandbox server needs; one server hosts all five providers.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Stretches or shrinks every callback retry schedule.
    pub time_scale: TimeScale,
    /// paystate's gateway base URL; callbacks go to `{gateway_url}/callbacks/{provider}`
    /// unless a provider's own field or the request overrides it.
    pub gateway_url: Option<String>,
    pub plexy: PlexyConfig,
    pub paykassma: PaykassmaConfig,
    pub plural: PluralConfig,
    pub exchanger: ExchangerConfig,
    pub flitt: FlittConfig,
}

/// PlexyPay: a static API key on requests, a static webhook token on webhooks.
#[derive(Debug, Clone)]
pub struct PlexyConfig {
    /// Expected verbatim in `Authorization: <api key>` (no "Bearer").
    pub api_key: String,
    /// Sent as `Authorization: Bearer <webhook token>` on every webhook.
    pub webhook_token: String,
    /// `merchantId` in webhook bodies.
    pub merchant_id: String,
    /// Where webhooks go (configured in Plexy's dashboard in real life).
    pub webhook_url: Option<String>,
    /// What a second `POST /v1/payment-links` with a known `orderReference` does.
    pub duplicate_reference: DuplicateReference,
}

/// Plexy's docs do not say what a repeated `orderReference` does; both readings are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateReference {
    /// Answer with the existing link (same amount and currency), act once.
    ReturnExisting,
    /// Answer 409 with an error body.
    Conflict,
}

impl Default for PlexyConfig {
    fn default() -> Self {
        PlexyConfig {
            api_key: "plexy-test-api-key".into(),
            webhook_token: "plexy-test-webhook-token".into(),
            merchant_id: "merchant-1".into(),
            webhook_url: None,
            duplicate_reference: DuplicateReference::ReturnExisting,
        }
    }
}

/// Paykassma: the plugin API secret in `?secret=`, the access/private keys that sign postbacks.
#[derive(Debug, Clone)]
pub struct PaykassmaConfig {
    /// Expected in `?secret=` on every call.
    pub api_secret: String,
    /// Sent in the postback as `access_key` and first part of the signature.
    pub access_key: String,
    /// Private access key, second part of the postback signature.
    pub private_key: String,
    /// Where postbacks go (agreed with Paykassma support in real life).
    pub postback_url: Option<String>,
    /// Credit automatically when an activation names a transfer the customer made.
    pub auto_credit: bool,
    /// Send a `"status": "fail"` postback when an activation is rejected (undocumented
    /// upstream; off = a rejection is silent and only the merchant's own follow-up finds it).
    pub postback_on_reject: bool,
}

impl Default for PaykassmaConfig {
    fn default() -> Self {
        PaykassmaConfig {
            api_secret: "paykassma-plugin-secret".into(),
            access_key: "uowkn0b3LfBxpcWYHi4_".into(),
            private_key: "PRIVATE_test_key_1".into(),
            postback_url: None,
            auto_credit: true,
            postback_on_reject: true,
        }
    }
}

/// Plural: OAuth client credentials, the webhook secret and the return-URL secret.
#[derive(Debug, Clone)]
pub struct PluralConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued tokens, in real seconds (not scaled).
    pub token_ttl_s: u64,
    /// HMAC-SHA256 key of webhook signatures (its UTF-8 bytes).
    pub webhook_secret: String,
    /// Hex key of the return-URL signature.
    pub return_url_secret_hex: String,
    /// `merchant_id` in order bodies.
    pub merchant_id: String,
    /// Where webhooks go (configured in Plural's dashboard in real life).
    pub webhook_url: Option<String>,
}

impl Default for PluralConfig {
    fn default() -> Self {
        PluralConfig {
            client_id: "1234567890".into(),
            client_secret: "asdfgwei7egyhuggwp39w8rh".into(),
            token_ttl_s: 3600,
            webhook_secret: "my_plural_secret".into(),
            return_url_secret_hex: "00112233445566778899aabbccddeeff".into(),
            merchant_id: "104359".into(),
            webhook_url: None,
        }
    }
}

/// Exchanger: an API key of our choosing (the real scheme is private) and its routes.
#[derive(Debug, Clone)]
pub struct ExchangerConfig {
    /// Expected as `Authorization: Bearer <api key>` (a documented sandbox choice).
    pub api_key: String,
    /// Routes the exchanger offers; `routeId` must name one of them.
    pub routes: Vec<ExchangerRoute>,
    /// Share of IPNs, in percent, that are never sent (0..=100).
    pub ipn_drop_percent: u8,
    /// Name of the form field carrying the IPN signature (unconfirmed upstream).
    pub ipn_signature_field: String,
    /// Move a paid order on to `inProgressPayout` at once, as with automatic payouts.
    pub auto_payout: bool,
    /// Used when a create request names no `ipnUrl`.
    pub ipn_url: Option<String>,
}

/// One exchange direction: what the customer pays in and what is paid out.
#[derive(Debug, Clone)]
pub struct ExchangerRoute {
    pub id: String,
    pub xml_from: String,
    pub xml_to: String,
    /// Units of `xml_to` paid out per unit of `xml_from`, as an exact decimal string.
    pub rate: String,
}

impl Default for ExchangerConfig {
    fn default() -> Self {
        ExchangerConfig {
            api_key: "exchanger-api-key".into(),
            routes: vec![ExchangerRoute {
                id: "65a1f0c2e4b0a1b2c3d4e5f0".into(),
                xml_from: "CARDUAH".into(),
                xml_to: "BTC".into(),
                rate: "0.0000153".into(),
            }],
            ipn_drop_percent: 0,
            ipn_signature_field: "sign".into(),
            auto_payout: true,
            ipn_url: None,
        }
    }
}

/// Flitt: the merchant id and the password that signs requests, responses and callbacks.
#[derive(Debug, Clone)]
pub struct FlittConfig {
    pub merchant_id: u64,
    pub password: String,
    /// Used when a create request names no `server_callback_url`.
    pub callback_url: Option<String>,
}

impl Default for FlittConfig {
    fn default() -> Self {
        FlittConfig {
            merchant_id: 1549901,
            password: "test".into(),
            callback_url: None,
        }
    }
}
