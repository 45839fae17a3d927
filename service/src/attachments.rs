//! Files that commands refer to (e.g. the screenshot of a wallet transfer), in a JetStream
//! object store bucket. Commands carry only an [`Attachment`] (name, size, SHA-256), so they
//! stay small; the worker that needs the file reads it back and checks its hash.

use async_nats::jetstream::{self, object_store};
use paystate_events::command::Attachment;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Object store bucket of attachments.
pub const ATTACHMENTS_BUCKET: &str = "paystate_attachments";
/// Largest attachment accepted (defined in `paystate_events::limits`).
pub use paystate_events::limits::ATTACHMENT_BYTES_MAX;

/// Why an attachment could not be read back. [`FetchError::is_transient`]: trying again
/// later can help; the others need a person (a missing object stays missing).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No such object in the bucket.
    #[error("attachment {0} is not in the attachment store")]
    Missing(String),
    /// The command names a size over the limit.
    #[error("attachment {0} is larger than the limit ({ATTACHMENT_BYTES_MAX} bytes)")]
    TooLarge(String),
    /// The stored bytes are not the ones the command names.
    #[error("attachment {0} does not match its size or hash")]
    Mismatch(String),
    /// The broker did not answer in time.
    #[error("attachment {0}: timed out")]
    TimedOut(String),
    /// The broker failed the read.
    #[error("attachment {object}: {detail}")]
    Broker { object: String, detail: String },
}

impl FetchError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::TimedOut(_) | FetchError::Broker { .. })
    }
}

/// Opens (or creates) the bucket.
pub async fn open(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<object_store::ObjectStore, String> {
    match js.get_object_store(ATTACHMENTS_BUCKET).await {
        Ok(s) => Ok(s),
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: ATTACHMENTS_BUCKET.into(),
                description: Some("paystate: files commands refer to".into()),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Stores `bytes` under a name derived from their hash (storing the same file twice is one
/// object) and returns the attachment to put in a command.
pub async fn put(
    store: &object_store::ObjectStore,
    file_name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<Attachment, String> {
    if bytes.len() > ATTACHMENT_BYTES_MAX {
        return Err(format!(
            "attachment is {} bytes; the limit is {ATTACHMENT_BYTES_MAX}",
            bytes.len()
        ));
    }
    let sha256 = hex::encode(Sha256::digest(bytes));
    let object = format!("sha256-{sha256}");
    // Objects are named by their content: one already stored is this file. Writing it again
    // would purge the stored chunks (a stream purge, which no role but the admin may do).
    let stored = match store.info(object.as_str()).await {
        Ok(info) => !info.deleted && info.size == bytes.len(),
        Err(_) => false,
    };
    if !stored {
        let mut reader = bytes;
        store
            .put(object.as_str(), &mut reader)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Attachment {
        object,
        file_name: file_name.into(),
        content_type: content_type.into(),
        sha256,
        size: bytes.len() as u64,
    })
}

/// Reads an attachment back, refusing it if its size or hash differ from the command's.
pub async fn fetch(
    store: &object_store::ObjectStore,
    a: &Attachment,
) -> Result<Vec<u8>, FetchError> {
    use object_store::GetErrorKind;
    if a.size as usize > ATTACHMENT_BYTES_MAX {
        return Err(FetchError::TooLarge(a.object.clone()));
    }
    let mut object = match store.get(&a.object).await {
        Ok(o) => o,
        Err(e) => {
            return Err(match e.kind() {
                GetErrorKind::NotFound => FetchError::Missing(a.object.clone()),
                GetErrorKind::TimedOut => FetchError::TimedOut(a.object.clone()),
                _ => FetchError::Broker {
                    object: a.object.clone(),
                    detail: e.to_string(),
                },
            })
        }
    };
    let mut bytes = Vec::with_capacity(a.size as usize);
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| FetchError::Broker {
            object: a.object.clone(),
            detail: e.to_string(),
        })?;
    if bytes.len() as u64 != a.size || hex::encode(Sha256::digest(&bytes)) != a.sha256 {
        return Err(FetchError::Mismatch(a.object.clone()));
    }
    Ok(bytes)
}
