//! `paystate order show <id>`: one order from the projection.

use crate::cmd::common;
use crate::settings::Settings;
use paystate_projection::OrderView;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// State, amounts, provider references and discrepancies of one order, from the projection.
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    order_id: String,
    /// Machine output (the same JSON as GET /orders/{id}).
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Show(args) = cmd;
    let order = common::order_id(&args.order_id)?;
    let h = common::open(&settings).await?;
    let Some(record) = h.projection.get(&order).await? else {
        eprintln!("order {order} not found in the projection");
        return Ok(ExitCode::from(1));
    };
    let view = OrderView::from(&record);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human form of an order view.
pub fn render(v: &OrderView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let c = v.currency;
    let _ = writeln!(
        out,
        "order {}  ({} via {}, {:?} capture, ref {})",
        v.order_id, v.status, v.provider, v.capture_mode, v.merchant_reference
    );
    let _ = writeln!(out, "  amount      {} {c}", v.amount.decimal);
    let _ = writeln!(out, "  authorized  {} {c}", v.authorized.decimal);
    let _ = writeln!(out, "  captured    {} {c}", v.captured.decimal);
    let _ = writeln!(out, "  refunded    {} {c}", v.refunded.decimal);
    for (id, a) in &v.refunds_pending {
        let _ = writeln!(out, "  refund pending   {id}: {} {c}", a.decimal);
    }
    let refs = if v.provider_refs.is_empty() {
        "-".to_string()
    } else {
        v.provider_refs.join(", ")
    };
    let _ = writeln!(out, "  provider refs  {refs}");
    if let Some((code, message)) = &v.failure {
        let _ = writeln!(out, "  failure     {code}: {message}");
    }
    let _ = writeln!(
        out,
        "  discrepancies  {}{}",
        v.discrepancies.len(),
        if v.needs_review {
            " (needs review: `paystate review resolve ORDER --operator ID --reason TEXT`)"
        } else {
            ""
        }
    );
    for d in &v.discrepancies {
        let _ = writeln!(
            out,
            "    commit {}: {} ({} reported; evidence {}): {}",
            d.commit, d.code, d.signal, d.evidence_ref, d.detail
        );
    }
    let _ = writeln!(
        out,
        "  created {}  updated {}  commits {}  last seq {}",
        v.created_at.to_rfc3339(),
        v.updated_at.to_rfc3339(),
        v.commits,
        v.last_sequence
    );
    if let Some(p) = &v.projection_problem {
        let _ = writeln!(out, "  PROJECTION PROBLEM {p} (run `paystate audit`)");
    }
    out
}
