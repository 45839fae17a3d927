//! Connecting to NATS the way every paystate process does.

use async_nats::ServerAddr;

/// Connects (failing fast if no server answers) to one server or a comma-separated list of cluster members
/// (`nats://a:4222,nats://b:4222`), reconnecting forever: engines ride out broker restarts
/// and leader elections; servers discovered from the cluster are used for failover too.
pub async fn connect(urls: &str, name: &str) -> Result<async_nats::Client, String> {
    let addrs: Vec<ServerAddr> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .map_err(|e| format!("bad NATS URL {u:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err("no NATS URL given".to_string());
    }
    async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connect(addrs)
        .await
        .map_err(|e| format!("cannot connect to NATS at {urls}: {e}"))
}

/// Attempts at the first connection in [`connect_patiently`], one second apart.
pub const CONNECT_ATTEMPTS_MAX: u32 = 60;

/// [`connect`], retried while the broker is not up yet (containers starting together).
pub async fn connect_patiently(urls: &str, name: &str) -> Result<async_nats::Client, String> {
    let mut last = String::new();
    for _ in 0..CONNECT_ATTEMPTS_MAX {
        match connect(urls, name).await {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(format!(
        "{last} (gave up after {CONNECT_ATTEMPTS_MAX} attempts)"
    ))
}
