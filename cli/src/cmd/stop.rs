//! Stopping the long-running commands (`run`, `dev`, `sandbox`, `project run`): on Ctrl-C
//! (SIGINT), SIGTERM (`kill`, `docker stop`, systemd) or SIGHUP (the terminal closed), each
//! finishes the work in hand and stops what it started. Only Ctrl-C did before: any other
//! signal ended the process on the spot, so `paystate run` did not drain, and `paystate dev`
//! left its nats-server running without a parent (the next `paystate dev` then found a
//! server it had no credentials for and failed on its first JetStream request).
//!
//! [`Stop::listen`] takes the signals over at once (from then on none of them ends the
//! process by itself), so a command that starts several parts can listen from its first line
//! and race its start-up against [`Stop::signal`].

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The stop signals, taken over from the default action (which ends the process).
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Stop {
    /// Takes the stop signals over; any that arrives from now on is seen by [`Stop::signal`].
    pub fn listen() -> anyhow::Result<Stop> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the first stop signal (or returns one that already came); its name.
    pub async fn signal(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupt",
            _ = self.terminate.recv() => "terminate",
            _ = self.hangup.recv() => "hangup",
        }
    }
}

/// Waits for the first stop signal; its name.
pub async fn stop_signal() -> anyhow::Result<&'static str> {
    Ok(Stop::listen()?.signal().await)
}
