//! Row 5, reading the log back: the raw ordered-consumer read (the read yardstick), the
//! audit and the projection rebuild, over the log the engine scenario just wrote. The
//! measurement itself is `paystate bench-read`'s ([`crate::cmd::bench_read::measure`]).

use crate::cmd::bench_fill::Filled;
use crate::cmd::bench_read::{measure, Row};
use paystate_journal::{Journal, LogSettings};

/// Events per commit in the benchmark lifecycle (each of its commands yields one event).
const EVENTS_PER_COMMIT: u64 = 1;

/// Raw read, audit and rebuild rows over the whole log as it is now.
pub async fn rows(url: &str, server_pid: Option<u32>, orders: u64) -> anyhow::Result<Vec<Row>> {
    let nats = paystate_service::connect(url, "paystate-bench-read")
        .await
        .map_err(anyhow::Error::msg)?;
    let js = async_nats::jetstream::new(nats);
    let log = LogSettings::default();
    let journal = Journal::open(js.clone(), &log).await?;
    let commits = journal.stream().get_info().await?.state.messages;
    let filled = Filled {
        commits,
        events: commits * EVENTS_PER_COMMIT,
        orders,
    };
    Ok(measure(&journal, &js, &log, &filled, server_pid).await?.0)
}
