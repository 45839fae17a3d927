//! `paystate orders list`: orders from the projection, filtered.

use crate::cmd::common;
use crate::settings::Settings;
use paystate_events::{Provider, Status};
use paystate_projection::{list, OrderFilter, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Orders matching every given filter, from the projection.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// created, pending, authorized, captured, done, cancelled, returned or failed.
    #[arg(long, value_parser = parse_status)]
    state: Option<Status>,
    /// plexy, paykassma, plural, exchanger or flitt.
    #[arg(long, value_parser = parse_provider)]
    provider: Option<Provider>,
    /// Created before this RFC 3339 time.
    #[arg(long)]
    created_before: Option<String>,
    /// Created at or after this RFC 3339 time.
    #[arg(long)]
    created_after: Option<String>,
    /// Only orders with (true) or without (false) discrepancies.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    has_discrepancy: Option<bool>,
    /// Most orders shown.
    #[arg(long, default_value_t = LIST_LIMIT_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=LIST_LIMIT_MAX as u64))]
    limit: u64,
    /// Machine output (the same JSON as GET /orders).
    #[arg(long)]
    json: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s)
        .ok_or_else(|| format!("not a state; one of {:?}", Status::ALL.map(|s| s.as_str())))
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    Provider::parse(s).ok_or_else(|| {
        format!(
            "not a provider; one of {:?}",
            Provider::ALL.map(|p| p.as_str())
        )
    })
}

pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::List(a) = cmd;
    let filter = OrderFilter {
        status: a.state,
        provider: a.provider,
        created_before: a
            .created_before
            .as_deref()
            .map(common::instant)
            .transpose()?,
        created_after: a
            .created_after
            .as_deref()
            .map(common::instant)
            .transpose()?,
        has_discrepancy: a.has_discrepancy,
        ..OrderFilter::default()
    };
    let h = common::open(&settings).await?;
    let page = list(&h.projection, &filter, a.limit as usize).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<10} {:<10} {:>14} {:>14} {:>14} {:>5}  created",
        "order", "state", "provider", "amount", "captured", "refunded", "disc"
    );
    for v in &page.orders {
        println!(
            "{:<40} {:<10} {:<10} {:>10} {} {:>14} {:>14} {:>5}  {}",
            v.order_id,
            v.status.as_str(),
            v.provider.as_str(),
            v.amount.decimal,
            v.currency,
            v.captured.decimal,
            v.refunded.decimal,
            v.discrepancies.len(),
            v.created_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    let more = if page.truncated {
        " (more match: raise --limit or narrow the filters)"
    } else {
        ""
    };
    println!(
        "{} orders shown of {} scanned (generation {}){more}",
        page.orders.len(),
        page.scanned,
        page.generation
    );
    Ok(ExitCode::SUCCESS)
}
