//! `paystate review list | resolve`: orders flagged for review (`needs_review`), and an
//! operator's resolution of one (the `resolve_review` command, recorded in the log with who
//! decided and why; the order then takes commands again).

use crate::cmd::common;
use crate::settings::Settings;
use paystate_events::{Command as Cmd, CommandEnvelope, CommandId, Outcome};
use paystate_projection::{list, OrderFilter, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Orders flagged for review, from the projection, with their last discrepancy.
    List(ListArgs),
    /// Resolve an order's review: clears `needs_review` so it takes commands again.
    Resolve(ResolveArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Most orders shown.
    #[arg(long, default_value_t = LIST_LIMIT_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=LIST_LIMIT_MAX as u64))]
    limit: u64,
    /// Machine output (the same JSON as GET /orders).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ResolveArgs {
    order_id: String,
    /// Who decides (recorded in the log).
    #[arg(long)]
    operator: String,
    /// Why the order may move again (recorded in the log).
    #[arg(long)]
    reason: String,
    /// Command id (the idempotency key); a fresh one when absent. Give the same id to retry.
    #[arg(long)]
    command_id: Option<String>,
}

pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List(a) => list_flagged(settings, a).await,
        Command::Resolve(a) => resolve(settings, a).await,
    }
}

async fn list_flagged(settings: Settings, a: ListArgs) -> anyhow::Result<ExitCode> {
    let filter = OrderFilter {
        needs_review: Some(true),
        ..OrderFilter::default()
    };
    let h = common::open(&settings).await?;
    let page = list(&h.projection, &filter, a.limit as usize).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<10} {:<10} {:>5}  last discrepancy",
        "order", "state", "provider", "disc"
    );
    for v in &page.orders {
        let last = v
            .discrepancies
            .last()
            .map(|d| format!("{}: {}", d.code, d.detail))
            .unwrap_or_default();
        println!(
            "{:<40} {:<10} {:<10} {:>5}  {}",
            v.order_id,
            v.status.as_str(),
            v.provider.as_str(),
            v.discrepancies.len(),
            last.chars().take(120).collect::<String>()
        );
    }
    println!(
        "{} orders flagged for review{}",
        page.orders.len(),
        if page.truncated {
            " (more: raise --limit)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn resolve(settings: Settings, a: ResolveArgs) -> anyhow::Result<ExitCode> {
    let order_id = common::order_id(&a.order_id)?;
    let id = a
        .command_id
        .unwrap_or_else(|| format!("review-{}", uuid::Uuid::new_v4().simple()));
    let command_id = CommandId::parse(id)
        .map_err(|e| anyhow::anyhow!("--command-id is not a command id: {e}"))?;
    let env = CommandEnvelope {
        command_id,
        order_id,
        issued_at: chrono::Utc::now(),
        command: Cmd::ResolveReview {
            operator: a.operator,
            reason: a.reason,
        },
    };
    let client = paystate_service::Client::new(
        settings
            .connect_as(paystate::permissions::Role::Operator)
            .await?,
    );
    let outcome = client.send(&env, settings.wait()).await?;
    match &outcome {
        Outcome::Accepted {
            order_id,
            commit,
            state,
            duplicate,
            ..
        } => println!(
            "resolved: order {order_id} is {} and takes commands again (commit {commit}{})",
            state.status,
            if *duplicate { ", a retry" } else { "" }
        ),
        Outcome::Rejected { code, message, .. } => println!("refused: {code}: {message}"),
    }
    Ok(match outcome {
        Outcome::Accepted { .. } => ExitCode::SUCCESS,
        Outcome::Rejected { .. } => ExitCode::from(1),
    })
}
