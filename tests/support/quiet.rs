//! Waiting for the system, not the clock: before a test asserts that something did *not*
//! happen ("did not refund again", "no new probe"), it waits until everything paystate
//! does through NATS has settled, instead of sleeping a fixed time and hoping.
//!
//! Quiet means, seen twice in a row [`QUIET_CONFIRM`] apart with nothing new in between:
//! the command queue is empty, and every consumer of every stream (engine, workers, every
//! projector generation, redrive consumers, the reconciler's and gateway's followers) has
//! nothing pending and nothing unacknowledged (a message being worked on, a held retry);
//! ephemeral consumers count while someone pulls from them.
//! The projection's lag is its consumer's pending plus unacknowledged commits, so it is 0
//! too. What happens outside NATS (a sandbox's own timers, the reconciler's schedule) is the
//! test's to wait for.

use async_nats::jetstream;
use futures::TryStreamExt;
use paystate_events::subjects::COMMANDS_STREAM;
use std::time::{Duration, Instant};

/// Pause between the two snapshots that must both be quiet.
pub const QUIET_CONFIRM: Duration = Duration::from_millis(150);
/// Pause between polls while not quiet.
const POLL: Duration = Duration::from_millis(25);

/// One snapshot: what is still moving (empty when quiet), and a fingerprint of every
/// stream's last sequence (so two quiet snapshots with something new between them differ).
pub async fn busy(js: &jetstream::Context) -> Result<(Vec<String>, Vec<(String, u64)>), String> {
    let mut busy = Vec::new();
    let mut heads = Vec::new();
    let infos: Vec<jetstream::stream::Info> = js
        .streams()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    for info in infos {
        let name = info.config.name.clone();
        heads.push((name.clone(), info.state.last_sequence));
        if name == COMMANDS_STREAM && info.state.messages > 0 {
            busy.push(format!("{name}: {} commands queued", info.state.messages));
        }
        let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
        let consumers: Vec<jetstream::consumer::Info> = match stream.consumers().try_collect().await
        {
            Ok(c) => c,
            // Why: a consumer deleted between listing and reading (a finished scan) is not busy.
            Err(_) => continue,
        };
        for c in consumers {
            // An ephemeral consumer nobody pulls from any more (a scan that stopped early,
            // waiting for the server to drop it) is not work in progress.
            let abandoned = c.config.durable_name.is_none() && c.num_waiting == 0;
            if c.num_ack_pending > 0 || (c.num_pending > 0 && !abandoned) {
                busy.push(format!(
                    "{name}/{}: {} pending, {} unacknowledged",
                    c.name, c.num_pending, c.num_ack_pending
                ));
            }
        }
    }
    heads.sort();
    Ok((busy, heads))
}

/// Waits until the system is quiet (see the module doc); panics with what is still moving
/// after `timeout`.
pub async fn wait_quiet_for(js: &jetstream::Context, timeout: Duration) {
    let started = Instant::now();
    loop {
        let still = match busy(js).await {
            Ok((now_busy, heads)) if now_busy.is_empty() => {
                tokio::time::sleep(QUIET_CONFIRM).await;
                match busy(js).await {
                    Ok((again, heads_again)) if again.is_empty() && heads_again == heads => return,
                    Ok((again, _)) if again.is_empty() => vec!["new messages meanwhile".into()],
                    Ok((again, _)) => again,
                    Err(e) => vec![e],
                }
            }
            Ok((now_busy, _)) => now_busy,
            Err(e) => vec![e],
        };
        assert!(
            started.elapsed() < timeout,
            "the system did not become quiet within {timeout:?}; still moving: {still:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_quiet_for`] with the tests' usual bound.
pub async fn wait_quiet(js: &jetstream::Context) {
    wait_quiet_for(js, super::WAIT).await
}

/// [`wait_quiet`] on a test server.
pub async fn wait_quiet_on(nats: &super::TestNats) {
    wait_quiet(&jetstream::new(nats.connect().await)).await
}
