//! `paystate show <order_id>`: the order's commits, events and state, from the log.

use crate::settings::Settings;
use anyhow::bail;
use paystate_events::OrderId;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    order_id: String,
    /// Machine output: the commits and the folded state as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    let order = match OrderId::parse(args.order_id.clone()) {
        Ok(o) => o,
        Err(e) => bail!("invalid order id {:?}: {e}", args.order_id),
    };
    let js = async_nats::jetstream::new(
        settings
            .connect_as(paystate::permissions::Role::Operator)
            .await?,
    );
    let journal = paystate_journal::Journal::existing(js, &settings.log().events_stream).await?;
    let commits = match journal.read_order(&order).await {
        Ok(c) => c,
        Err(paystate_journal::ReadError::Corrupt {
            sequence, detail, ..
        }) => {
            eprintln!(
                "order {order} is unreadable: the message at stream sequence {sequence} of {} on \
                 paystate.events.{order} is not a valid paystate commit ({detail}).\n\
                 The engine refuses this order's commands with order_unreadable until an operator \
                 repairs the log; docs/security.md (\"Repairing an unreadable order\") says how.",
                settings.log().events_stream
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    if commits.is_empty() {
        eprintln!("order {order} not found");
        return Ok(ExitCode::from(1));
    }
    if args.json {
        let state = paystate_journal::read::fold(&order, &commits)?;
        let commits = commits
            .iter()
            .map(|c| paystate::answers::ShownCommit {
                sequence: c.sequence,
                time: c.time,
                hash: c.hash.clone(),
                commit: c.commit.clone(),
            })
            .collect();
        let out = paystate::answers::ShowOutput { commits, state };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("order {order}");
        print!("{}", crate::timeline::render(&commits));
    }
    Ok(ExitCode::SUCCESS)
}
