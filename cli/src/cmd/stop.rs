//! Stopping the long-running commands (`run`, `dev`, `sandbox`, `project run`) once they
//! serve: on Ctrl-C (SIGINT), SIGTERM (`kill`, `docker stop`, systemd) or SIGHUP (the
//! terminal closed), each finishes the work in hand and stops what it started. Only Ctrl-C
//! did before: any other signal ended the process on the spot, so `paystate run` did not
//! drain, and `paystate dev` left its nats-server running without a parent (the next
//! `paystate dev` then found a server it had no credentials for and failed on its first
//! JetStream request).

use tokio::signal::unix::{signal, SignalKind};

/// Waits for the first stop signal; its name.
pub async fn stop_signal() -> anyhow::Result<&'static str> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "interrupt",
        _ = terminate.recv() => "terminate",
        _ = hangup.recv() => "hangup",
    })
}
