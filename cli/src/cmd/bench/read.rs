//! Row 5, reading the log back: the raw ordered-consumer read (the read yardstick), the
//! audit and the projection rebuild, over the log the engine scenario just wrote. The
//! measurement itself is `paystate bench-read`'s ([`crate::cmd::bench_read::measure`]).

use crate::cmd::bench_fill::Filled;
use crate::cmd::bench_read::{measure, Row};
use paystate_journal::{Journal, LogSettings};

/// Events per commit in the benchmark lifecycle (each of its commands yields one event).
const EVENTS_PER_COMMIT: u64 = 1;

/// Raw read, audit and rebuild rows over the whole log as it is now, measured as the read
/// commands run: on a runtime of their own scheduled as theirs ([`crate::runtime::reading`];
/// the bench's own runtime is the serving one), with their own connection.
pub async fn rows(url: &str, server_pid: Option<u32>, orders: u64) -> anyhow::Result<Vec<Row>> {
    let url = url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-read".into())
        .spawn(move || {
            let rows = crate::runtime::reading()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(rows_here(&url, server_pid, orders)));
            let _ = tx.send(rows);
        })?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the read rows' thread ended without an answer"))?
}

async fn rows_here(url: &str, server_pid: Option<u32>, orders: u64) -> anyhow::Result<Vec<Row>> {
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
