//! `paystate dev` as a user runs it: the real binary, its own nats-server on a free port, a
//! fresh data directory.
//!
//! - A stop signal while dev is still starting (its nats-server up, the parts and the demo
//!   not done) stops dev *and* the nats-server it started: nothing is left listening, and the
//!   server was waited for (no zombie), also when the signal lands while the server starts.
//! - A nats-server already listening where dev looks, which does not serve JetStream to dev's
//!   credentials (what an earlier dev killed with SIGKILL leaves behind), is named as such at
//!   once, not met with a JetStream timeout from deep inside the first part.

use paystate_broker::{child_named, free_port, process_state, NatsServer, Probe, ServerOptions};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Bound on each wait for the process (a debug build on a busy 2-core machine).
const WAIT: Duration = Duration::from_secs(60);

fn dev(data_dir: &std::path::Path, nats_port: u16) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"));
    cmd.args(["dev", "--exit-after-demo"])
        .env("PAYSTATE_DATA_DIR", data_dir)
        .env("PAYSTATE_NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
        // Distinct addresses (dev refuses one listener for both); taken ones fall back to free.
        .env("PAYSTATE_HTTP", format!("127.0.0.1:{}", port()))
        .env("PAYSTATE_HTTP_PRIVATE", format!("127.0.0.1:{}", port()))
        .env("PAYSTATE_METRICS_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn port() -> u16 {
    free_port().expect("a free port")
}

/// Whether something accepts connections on the loopback `port`.
async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_stop_signal_while_dev_starts_stops_the_nats_server_it_started() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = port();
    let mut child = dev(dir.path(), port)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("paystate binary runs");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    // Given dev has started its nats-server and is starting the parts ...
    let started = Instant::now();
    loop {
        let line = tokio::time::timeout(WAIT.saturating_sub(started.elapsed()), lines.next_line())
            .await
            .expect("dev starts its nats-server in time")
            .expect("stdout readable")
            .expect("dev is still running");
        if line.starts_with("nats: started nats-server") {
            break;
        }
    }
    assert!(listening(port).await, "dev's nats-server listens on {port}");
    let pid = child.id().expect("dev runs").to_string();
    let server = child_named(&pid, "nats-server").expect("dev's nats-server is its child");
    // ... when it gets SIGTERM before it serves ...
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM sent");
    let mut rest = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("dev stops in time")
    {
        rest.push(line);
    }
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("dev exits in time")
        .expect("exit status");
    // ... then it stops as interrupted, says so, and leaves no nats-server behind.
    assert_eq!(
        status.code(),
        Some(130),
        "output after the signal: {rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with("terminate while starting")),
        "dev says why it stopped: {rest:?}"
    );
    let deadline = Instant::now() + WAIT;
    while listening(port).await {
        assert!(
            Instant::now() < deadline,
            "the nats-server dev started still listens on {port} after dev exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Waited for, not only killed: a killed child nobody waits for stays behind as a zombie
    // where the machine's first process does not reap orphans (as on these machines).
    assert_eq!(
        process_state(&server),
        None,
        "dev's nats-server (pid {server}) was left behind after dev exited"
    );
}

#[tokio::test]
async fn a_stop_signal_while_dev_starts_its_nats_server_leaves_no_zombie() {
    // Given dev starting its nats-server (the signal lands at a spread of moments around the
    // server's spawn and readiness wait) ...
    let mut servers_seen = 0;
    for delay_ms in [30u64, 50, 70, 90, 110, 150, 400, 1000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = dev(dir.path(), port())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("paystate binary runs");
        let pid = child.id().expect("dev runs").to_string();
        // Every nats-server dev spawns, watched from the first moment until dev has been
        // waited for (a zombie's parent is no longer dev once dev has exited).
        let (watched, exited) = (pid.clone(), Arc::new(AtomicBool::new(false)));
        let done = exited.clone();
        let watcher = tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(Ordering::Acquire) {
                seen.extend(child_named(&watched, "nats-server"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        });
        // ... when it gets SIGTERM ...
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("dev exits in time")
            .expect("exit status");
        exited.store(true, Ordering::Release);
        let seen = watcher.await.expect("watcher ran");
        servers_seen += seen.len();
        // ... then every nats-server it started was stopped and waited for.
        for server in seen {
            assert_eq!(
                process_state(&server),
                None,
                "SIGTERM {delay_ms} ms after dev started: its nats-server (pid {server}) was left behind"
            );
        }
    }
    assert!(
        servers_seen > 0,
        "no signal landed after dev spawned its nats-server: the test proved nothing"
    );
}

#[tokio::test]
async fn dev_names_a_server_that_does_not_serve_it_jetstream() {
    // Given a nats-server on dev's port whose credential-less user may not use JetStream
    // (the shape of one an earlier dev left: only that run knew the roles' passwords) ...
    // (The readiness probe connects as a second user that may.)
    let foreign = NatsServer::start(ServerOptions {
        extra_config: "authorization {\n  users = [\n    { user: left, password: behind, \
                       permissions: { publish: { deny: [\"$JS.API.>\"] } } }\n    \
                       { user: probe, password: probe }\n  ]\n}\nno_auth_user: left\n"
            .into(),
        probe: Probe {
            user_password: Some(("probe".into(), "probe".into())),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("nats-server starts (scripts/install-nats.sh)");
    let dir = tempfile::tempdir().expect("temp dir");
    // ... when dev runs against it ...
    let out = tokio::time::timeout(WAIT, dev(dir.path(), foreign.port()).output())
        .await
        .expect("dev gives up in time")
        .expect("paystate binary runs");
    // ... then it fails, naming the server and the way out, not a JetStream timeout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("does not serve JetStream to this run's engine credentials"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("pkill -f 'nats-server -c "),
        "stderr: {stderr}"
    );
    assert!(
        !stdout.contains("timeline read back"),
        "no sample order ran: {stdout}"
    );
}
