//! Provider references → order ids, in a KV bucket: callbacks that name only the provider's
//! reference (a transaction id, a payment link id) are routed to the right order.
//! Written by adapter workers when a provider answers, read by the gateway.

use async_nats::jetstream::{self, kv};
use paystate_events::{OrderId, Provider};
use sha2::{Digest, Sha256};

/// Bucket of provider references.
pub const REFS_BUCKET: &str = "paystate_refs";

#[derive(Clone)]
pub struct ProviderRefs {
    kv: kv::Store,
}

/// `<provider>.<first 32 hex of sha256(reference)>`: references may hold any characters.
pub fn key(provider: Provider, reference: &str) -> String {
    let digest = hex::encode(Sha256::digest(reference.as_bytes()));
    format!("{provider}.{}", &digest[..32])
}

impl ProviderRefs {
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<ProviderRefs, String> {
        let kv = match js.get_key_value(REFS_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: REFS_BUCKET.to_string(),
                    history: 1,
                    num_replicas: replicas,
                    storage: jetstream::stream::StorageType::File,
                    description: "paystate: provider references to order ids".into(),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?,
        };
        Ok(ProviderRefs { kv })
    }

    pub async fn remember(
        &self,
        provider: Provider,
        reference: &str,
        order: &OrderId,
    ) -> Result<(), String> {
        self.kv
            .put(
                key(provider, reference),
                order.to_string().into_bytes().into(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub async fn lookup(
        &self,
        provider: Provider,
        reference: &str,
    ) -> Result<Option<OrderId>, String> {
        match self.kv.get(key(provider, reference)).await {
            Ok(Some(bytes)) => Ok(std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| OrderId::parse(s).ok())),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}
