//! Pointing paystate's adapters at a running sandbox: the adapter configuration whose base
//! URLs are the sandbox's and whose credentials are the ones the sandbox expects. Used by
//! `paystate dev` and the end-to-end tests.

use crate::{SandboxConfig, SandboxHandle};
use paystate_adapters::config::AdaptersConfig;
use paystate_events::Provider;
use serde_json::json;

/// The adapters' configuration for `sandbox` (started with `cfg`), with callbacks to
/// `gateway_url` (`http://host:port`, the gateway's `/callbacks/{provider}` is appended).
pub fn adapters_config(
    sandbox: &SandboxHandle,
    cfg: &SandboxConfig,
    gateway_url: &str,
) -> Result<AdaptersConfig, String> {
    let cb = |p: Provider| format!("{}/callbacks/{p}", gateway_url.trim_end_matches('/'));
    let route = cfg
        .exchanger
        .routes
        .first()
        .map(|r| r.id.clone())
        .unwrap_or_default();
    let value = json!({
        "http": {"attempts_max": 3, "backoff_base_ms": 20, "backoff_max_ms": 200},
        "plexy": {
            "base_url": sandbox.base_url(Provider::Plexy),
            "callback_url": cb(Provider::Plexy),
            "accounts": {"default": {"api_key": cfg.plexy.api_key, "webhook_token": cfg.plexy.webhook_token}},
        },
        "paykassma": {
            "base_url": sandbox.base_url(Provider::Paykassma),
            "callback_url": cb(Provider::Paykassma),
            "accounts": {"default": {
                "plugin_secret": cfg.paykassma.api_secret,
                "access_key": cfg.paykassma.access_key,
                "private_key": cfg.paykassma.private_key,
            }},
        },
        "plural": {
            "base_url": sandbox.base_url(Provider::Plural),
            "callback_url": cb(Provider::Plural),
            "accounts": {"default": {
                "client_id": cfg.plural.client_id,
                "client_secret": cfg.plural.client_secret,
                "return_url_secret_hex": cfg.plural.return_url_secret_hex,
                "webhook_secret": cfg.plural.webhook_secret,
            }},
        },
        "exchanger": {
            "base_url": sandbox.base_url(Provider::Exchanger),
            "callback_url": cb(Provider::Exchanger),
            "accounts": {"default": {
                "partner": "paystate",
                "route_id": route,
                "api_key": cfg.exchanger.api_key,
                "ipn_secret": "ipn-secret-1",
            }},
        },
        "flitt": {
            "base_url": sandbox.base_url(Provider::Flitt),
            "callback_url": cb(Provider::Flitt),
            "accounts": {"default": {"merchant_id": cfg.flitt.merchant_id, "password": cfg.flitt.password}},
        },
    });
    let config: AdaptersConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}
