//! `paystate attach ORDER FILE --reference KEY1`: a Paykassma customer's transfer confirmation
//! in one step. The file (the transfer's screenshot) is uploaded through the gateway's private
//! API (`POST /attachments`, a `write` key: the same door a merchant's service uses, so no
//! operator needs NATS rights on the object store), checked against its local SHA-256, and
//! `confirm_transfer` naming it is sent over NATS as a client command; the outcome is printed
//! as `paystate send` prints it (exit 1 if rejected; 2 if the upload or the send failed).

use crate::settings::Settings;
use anyhow::{bail, Context};
use paystate_events::command::Attachment;
use paystate_events::{Command, CommandEnvelope, CommandId, OrderId, Outcome};
use paystate_service::attachments::ATTACHMENT_BYTES_MAX;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The order (a Paykassma order waiting for the customer's transfer).
    order: String,
    /// The file to attach (e.g. the transfer's screenshot); at most 10 MiB.
    file: PathBuf,
    /// The customer's 12-digit transaction number (Paykassma `key1`).
    #[arg(long)]
    reference: String,
    /// API key with `write` scope for the private listener (`paystate apikey new --scope
    /// write`). Never printed.
    #[arg(long, env = "PAYSTATE_API_KEY", hide_env_values = true)]
    key: String,
    /// Base URL of the private listener (default: `http://` + the `http_private` setting).
    #[arg(long, env = "PAYSTATE_API_URL")]
    api: Option<String>,
    /// The file's content type (default: from its extension).
    #[arg(long)]
    content_type: Option<String>,
    /// The command id (default `confirm.<first 16 hex digits of the file's SHA-256>`, so
    /// running the same attach again is answered as a duplicate).
    #[arg(long)]
    command_id: Option<String>,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let order = OrderId::parse(args.order.clone())
        .map_err(|e| anyhow::anyhow!("order id {:?}: {e}", args.order))?;
    let bytes = read_bounded(&args.file)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let file_name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file needs a UTF-8 name")?
        .to_string();
    let content_type = args
        .content_type
        .clone()
        .unwrap_or_else(|| content_type_of(&file_name).to_string());
    let api = args
        .api
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.http_private));
    let attachment = upload(&api, &args.key, &file_name, &content_type, bytes, &settings).await?;
    if attachment.sha256 != sha256 {
        bail!("the gateway stored a file whose SHA-256 differs from {file_name}'s; nothing sent");
    }
    eprintln!(
        "stored {} ({} bytes, sha256 {})",
        attachment.file_name, attachment.size, attachment.sha256
    );
    let command_id = match &args.command_id {
        Some(id) => id.clone(),
        None => format!("confirm.{}", &sha256[..16]),
    };
    let cmd = CommandEnvelope {
        command_id: CommandId::parse(command_id.clone())
            .map_err(|e| anyhow::anyhow!("command id {command_id:?}: {e}"))?,
        order_id: order,
        issued_at: chrono::Utc::now(),
        command: Command::ConfirmTransfer {
            reference: args.reference.clone(),
            attachment,
        },
    };
    let client = paystate_service::Client::new(
        settings
            .connect_as(paystate::permissions::Role::Client)
            .await?,
    );
    let outcome = client.send(&cmd, settings.wait()).await?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(match outcome {
        Outcome::Accepted { .. } => ExitCode::SUCCESS,
        Outcome::Rejected { .. } => ExitCode::from(1),
    })
}

/// The file's bytes, refused before reading if it is larger than an attachment may be.
fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len == 0 {
        bail!("{} is empty", path.display());
    }
    if len > ATTACHMENT_BYTES_MAX as u64 {
        bail!(
            "{} is {len} bytes; attachments are limited to {ATTACHMENT_BYTES_MAX}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `POST /attachments?name=...` with the raw file; the stored attachment.
async fn upload(
    api: &str,
    key: &str,
    file_name: &str,
    content_type: &str,
    bytes: Vec<u8>,
    settings: &Settings,
) -> anyhow::Result<Attachment> {
    let url = format!("{}/attachments", api.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .timeout(settings.wait())
        .build()?
        .post(&url)
        .query(&[("name", file_name)])
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("upload to {url} failed"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        // The gateway's error bodies are `{"error": {"code", "message"}}`; never the key.
        bail!("upload refused ({status}): {}", excerpt(&body));
    }
    serde_json::from_str(&body)
        .with_context(|| format!("unexpected upload answer: {}", excerpt(&body)))
}

fn excerpt(s: &str) -> String {
    s.chars().take(300).collect()
}

/// The content type of common screenshot and document formats, by extension.
fn content_type_of(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::content_type_of;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type_of("receipt.PNG"), "image/png");
        assert_eq!(content_type_of("a.jpeg"), "image/jpeg");
        assert_eq!(content_type_of("noext"), "application/octet-stream");
    }
}
