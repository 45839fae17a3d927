//! Submitting provider signals as commands.

use paystate_events::{
    Command, CommandEnvelope, CommandId, OrderId, Provider, ProviderSignal, SignalKind, Timestamp,
};
use paystate_service::{Client, ClientError};
use sha2::{Digest, Sha256};

/// A signal command whose id is `<prefix>.<hash of the report and its time>`: resubmitting
/// the same command (a publish retried) is applied once by id; a second call to the provider
/// after a crash is a new report with its own id, which the engine records as a duplicate
/// fact without a second effect.
pub fn signal_command(
    order: &OrderId,
    prefix: &str,
    provider: Provider,
    provider_ref: Option<String>,
    evidence_ref: String,
    observed_at: Timestamp,
    kind: SignalKind,
) -> CommandEnvelope {
    let mut meaning = serde_json::to_vec(&kind).unwrap_or_default();
    meaning.extend_from_slice(observed_at.to_rfc3339().as_bytes());
    let digest = hex::encode(Sha256::digest(&meaning));
    let id = format!("{prefix}.{}", &digest[..20]);
    // Why: prefixes are built from ids and numbers of the safe alphabet; a hash fallback keeps
    // the command valid if a prefix ever is not.
    let command_id = CommandId::parse(id).unwrap_or_else(|_| {
        CommandId::parse(format!("h.{}", &digest[..40]))
            .unwrap_or_else(|_| unreachable!("hex is a valid id"))
    });
    CommandEnvelope {
        command_id,
        order_id: order.clone(),
        issued_at: observed_at,
        command: Command::ProviderSignal {
            signal: ProviderSignal {
                provider,
                provider_ref,
                evidence_ref,
                observed_at,
                kind,
            },
        },
    }
}

/// Publishes each command durably (the engine applies them in order for the order).
pub async fn publish_all(client: &Client, commands: &[CommandEnvelope]) -> Result<(), ClientError> {
    for c in commands {
        client.publish(c).await?;
    }
    Ok(())
}
