//! `paystate quarantine ORDER_ID SEQUENCE --operator ID --reason TEXT`: records an operator's
//! decision that the message at SEQUENCE of the order's log is not a commit and is to be
//! skipped by every reader (the log denies deletes, so nothing is removed). Refuses anything
//! that decodes as a commit: quarantine repairs foreign messages, it never hides history.

use crate::settings::Settings;
use anyhow::{bail, Context};
use paystate_events::subjects::events_subject;
use paystate_events::OrderId;
use paystate_journal::quarantine::{self, QuarantineEntry, QUARANTINE_TEXT_LEN_MAX};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    order_id: String,
    /// The stream sequence of the unreadable message (`paystate show` and `paystate audit`
    /// name it).
    sequence: u64,
    /// Who decides (recorded with the decision).
    #[arg(long)]
    operator: String,
    /// Why (recorded with the decision).
    #[arg(long)]
    reason: String,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let order = OrderId::parse(args.order_id.clone())
        .map_err(|e| anyhow::anyhow!("invalid order id {:?}: {e}", args.order_id))?;
    for (name, text) in [("operator", &args.operator), ("reason", &args.reason)] {
        if text.trim().is_empty() || text.len() > QUARANTINE_TEXT_LEN_MAX {
            bail!("--{name} must be 1..={QUARANTINE_TEXT_LEN_MAX} characters");
        }
    }
    let h = crate::cmd::common::open(&settings).await?;
    let msg = h
        .journal
        .stream()
        .get_raw_message(args.sequence)
        .await
        .with_context(|| format!("no message at sequence {} of the log", args.sequence))?;
    if msg.subject.as_str() != events_subject(&order) {
        bail!(
            "sequence {} belongs to {}, not to order {order}",
            args.sequence,
            msg.subject
        );
    }
    if paystate_journal::read::decode_stored(&order, msg).is_ok() {
        bail!(
            "sequence {} of order {order} is a valid commit: quarantine only sets aside messages that are not commits",
            args.sequence
        );
    }
    let kv = quarantine::ensure(h.journal.context(), settings.replicas)
        .await
        .map_err(anyhow::Error::msg)?;
    let entry = QuarantineEntry {
        operator: args.operator,
        reason: args.reason,
        at: chrono::Utc::now(),
    };
    kv.put(
        quarantine::key(&order, args.sequence),
        serde_json::to_vec(&entry)?.into(),
    )
    .await
    .context("recording the decision")?;
    println!(
        "order {order}: message at sequence {} quarantined by {}; readers skip it and the audit lists it as a warning",
        args.sequence, entry.operator
    );
    Ok(ExitCode::SUCCESS)
}
