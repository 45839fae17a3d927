//! Provider references → order ids, in a KV bucket: callbacks that name only the provider's
//! reference (a transaction id, a payment link id) are routed to the right order.
//! Written by adapter workers when a provider answers, read by the gateway.

use async_nats::jetstream::{self, kv};
use paystate_events::{OrderId, Provider};
use sha2::{Digest, Sha256};

/// Bucket of provider references.
pub const REFS_BUCKET: &str = "paystate_refs";

/// Why the references bucket could not be used. [`RefsError::is_transient`]: trying again
/// later can help.
#[derive(Debug, thiserror::Error)]
pub enum RefsError {
    /// The broker did not answer in time.
    #[error("provider references: timed out")]
    TimedOut,
    /// The bucket could not be opened or created (missing and not creatable, refused).
    #[error("provider references bucket unavailable: {0}")]
    Unavailable(String),
    /// The broker failed the request or refused the write.
    #[error("provider references: {0}")]
    Broker(String),
}

impl RefsError {
    /// Whether trying again later can help (a timeout or broker trouble; not a bucket that
    /// cannot be opened).
    pub fn is_transient(&self) -> bool {
        matches!(self, RefsError::TimedOut | RefsError::Broker(_))
    }
}

/// For callers that report errors as text.
impl From<RefsError> for String {
    fn from(e: RefsError) -> String {
        e.to_string()
    }
}

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
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<ProviderRefs, RefsError> {
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
                .map_err(|e| RefsError::Unavailable(e.to_string()))?,
        };
        Ok(ProviderRefs { kv })
    }

    pub async fn remember(
        &self,
        provider: Provider,
        reference: &str,
        order: &OrderId,
    ) -> Result<(), RefsError> {
        self.kv
            .put(
                key(provider, reference),
                order.to_string().into_bytes().into(),
            )
            .await
            .map(|_| ())
            .map_err(|e| RefsError::Broker(e.to_string()))
    }

    pub async fn lookup(
        &self,
        provider: Provider,
        reference: &str,
    ) -> Result<Option<OrderId>, RefsError> {
        use async_nats::jetstream::kv::EntryErrorKind;
        match self.kv.get(key(provider, reference)).await {
            Ok(Some(bytes)) => Ok(std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| OrderId::parse(s).ok())),
            // "Not indexed" is an answer, never an error.
            Ok(None) => Ok(None),
            Err(e) if e.kind() == EntryErrorKind::TimedOut => Err(RefsError::TimedOut),
            Err(e) => Err(RefsError::Broker(e.to_string())),
        }
    }
}
