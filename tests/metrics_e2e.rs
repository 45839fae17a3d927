//! Metrics and health of a real `paystate run` process (engine, projector, gateway) against a
//! real nats-server: a scripted workload, then `/metrics` must count exactly what it did
//! (accepted commands by type, rejections by code, the duplicate, the unparseable one), on
//! both the operations listener (no key) and the private listener (admin key only);
//! `/healthz` answers while the process lives; `/readyz` is 200 while NATS is up and 503 once
//! the server is stopped, and 503 at once for a process started while NATS is down.

mod support;

use paystate_events::{CommandEnvelope, Outcome};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Pause between polls of an HTTP answer (never a fixed wait for the system).
const POLL: Duration = Duration::from_millis(100);

/// A `paystate run` process and the URLs it printed (`private` empty without the gateway).
struct Process {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    private: String,
    ops: String,
    /// Its log lines (JSON), the first [`LOG_LINES_MAX`].
    logs: Arc<Mutex<Vec<String>>>,
}

/// Log lines kept per process (the workload logs a few hundred at debug).
const LOG_LINES_MAX: usize = 20_000;

/// Starts `paystate run --roles <roles>` with the test keys, every listener on a free
/// loopback port, and reads the URLs from its start-up lines.
async fn start_process(nats_url: &str, roles: &str) -> Process {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("paystate.toml");
    let mut toml = String::new();
    for k in &test_keys().configs {
        toml.push_str(&format!(
            "[[gateway.api_keys]]\nname = \"{}\"\nsha256 = \"{}\"\nscope = \"{}\"\n",
            k.name, k.sha256, k.scope
        ));
    }
    std::fs::write(&config, toml).expect("settings file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paystate"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--roles", roles])
        .args(["--http", "127.0.0.1:0", "--http-private", "127.0.0.1:0"])
        .env("PAYSTATE_NATS_URL", nats_url)
        .env("PAYSTATE_PROTECT_LOG", "false")
        .env("PAYSTATE_METRICS_LISTEN", "127.0.0.1:0")
        .env("PAYSTATE_LOG_FORMAT", "json")
        .env("PAYSTATE_LOG", "warn,paystate_service=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("paystate binary runs");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let (mut private, mut ops) = (None, None);
    let started = Instant::now();
    let gateway = roles.contains("gateway");
    while (gateway && private.is_none()) || ops.is_none() {
        let line = tokio::time::timeout(WAIT.saturating_sub(started.elapsed()), lines.next_line())
            .await
            .expect("the process prints its listeners in time")
            .expect("stderr readable")
            .expect("the process is still running");
        if let Some(rest) = line.strip_prefix("gateway: ") {
            if rest.contains("/orders,") {
                private = rest.split("/orders").next().map(str::to_string);
            }
        }
        if let Some(rest) = line.strip_prefix("operations: ") {
            ops = rest.split("/metrics").next().map(str::to_string);
        }
    }
    // Keep draining stderr so the process never blocks on a full pipe.
    let logs = Arc::new(Mutex::new(Vec::new()));
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut kept = kept.lock().expect("log lines");
            if kept.len() < LOG_LINES_MAX {
                kept.push(line);
            }
        }
    });
    Process {
        _child: child,
        _dir: dir,
        private: private.unwrap_or_default(),
        ops: ops.expect("operations URL"),
        logs,
    }
}

async fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    match req.send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Samples of the Prometheus text: `name{sorted labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        out.insert(normalize(series), value);
    }
    out
}

/// `name{b="2",a="1"}` → `name{a="1",b="2"}` (labels sorted, so lookups ignore their order).
fn normalize(series: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else {
        return series.to_string();
    };
    let mut labels: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

fn commands(kind: &str, outcome: &str, code: &str) -> String {
    normalize(&format!(
        "paystate_commands_total{{type=\"{kind}\",outcome=\"{outcome}\",code=\"{code}\"}}"
    ))
}

/// Polls `url` (with `key`) until `ok` holds for its samples; panics with the last text after
/// `WAIT`.
async fn wait_for_metrics(
    url: &str,
    key: Option<&str>,
    what: &str,
    ok: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let (status, text) = get(url, key).await;
        assert_eq!(status, 200, "{url}: {text}");
        let s = samples(&text);
        if ok(&s) {
            return s;
        }
        assert!(started.elapsed() < WAIT, "{what} never held:\n{text}");
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_for_status(url: &str, status: u16) -> String {
    let started = Instant::now();
    loop {
        let (got, body) = get(url, None).await;
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < WAIT,
            "{url} never answered {status}: {got} {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the process's JSON log lines until one satisfies `ok`.
async fn wait_for_log(p: &Process, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let found = p
            .logs
            .lock()
            .expect("log lines")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| ok(v));
        if let Some(v) = found {
            return v;
        }
        assert!(started.elapsed() < WAIT, "no such log line");
        tokio::time::sleep(POLL).await;
    }
}

async fn send(client: &paystate_service::Client, cmd: &CommandEnvelope) -> Outcome {
    client.send(cmd, WAIT).await.expect("an outcome")
}

fn is_accepted(o: &Outcome, duplicate: bool) -> bool {
    matches!(o, Outcome::Accepted { duplicate: d, .. } if *d == duplicate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_workload_and_health_follows_nats() {
    let mut nats = TestNats::start().await;
    let p = start_process(&nats.url(), "engine,projector,gateway").await;
    wait_for_status(&format!("{}/readyz", p.ops), 200).await;
    let client = nats.client().await;

    // The workload: 3 creates, 2 starts, 1 capture on an order not authorized (rejected,
    // invalid_transition), 1 create sent again (duplicate), 1 message that is not JSON.
    let orders = [order("m-a"), order("m-b"), order("m-c")];
    let mut creates = Vec::new();
    for o in &orders {
        let cmd = env(o, create(1_000));
        assert!(is_accepted(&send(&client, &cmd).await, false));
        creates.push(cmd);
    }
    for o in &orders[..2] {
        assert!(is_accepted(&send(&client, &env(o, start())).await, false));
    }
    match send(&client, &env(&orders[2], capture(None))).await {
        Outcome::Rejected { code, .. } => assert_eq!(code.as_str(), "invalid_transition"),
        other => panic!("capture of a created order: {other:?}"),
    }
    assert!(is_accepted(&send(&client, &creates[0]).await, true));
    let garbage = client
        .send_raw(orders[2].as_str(), b"not json".to_vec(), WAIT)
        .await
        .expect("an outcome");
    assert_eq!(
        garbage.rejection_code().map(|c| c.as_str()),
        Some("malformed_json")
    );

    let expected = [
        (commands("create_order", "accepted", "none"), 3.0),
        (commands("start_payment", "accepted", "none"), 2.0),
        (commands("capture", "rejected", "invalid_transition"), 1.0),
        (commands("create_order", "duplicate", "none"), 1.0),
        (commands("unknown", "rejected", "malformed_json"), 1.0),
    ];
    let counted = |s: &BTreeMap<String, f64>| {
        let total: f64 = s
            .iter()
            .filter(|(k, _)| k.starts_with("paystate_commands_total{"))
            .map(|(_, v)| v)
            .sum();
        total == 8.0 && expected.iter().all(|(k, v)| s.get(k) == Some(v))
    };
    let ops_metrics = format!("{}/metrics", p.ops);
    let s = wait_for_metrics(&ops_metrics, None, "the workload's counts", counted).await;
    let histogram_count = |kind: &str| {
        s.get(&normalize(&format!(
            "paystate_command_duration_seconds_count{{type=\"{kind}\"}}"
        )))
        .copied()
    };
    assert_eq!(histogram_count("create_order"), Some(4.0));
    assert_eq!(histogram_count("start_payment"), Some(2.0));
    assert_eq!(histogram_count("capture"), Some(1.0));

    // The projection sampler: orders by state, and no lag once it caught up.
    let gauge = |s: &BTreeMap<String, f64>, state: &str| {
        s.get(&format!("paystate_orders{{state=\"{state}\"}}"))
            .copied()
    };
    wait_for_metrics(&ops_metrics, None, "orders by state", |s| {
        gauge(s, "created") == Some(1.0)
            && gauge(s, "pending") == Some(2.0)
            && s.get("paystate_projection_lag_messages") == Some(&0.0)
    })
    .await;

    // The private listener serves the same registry, to an admin key only.
    let private_metrics = format!("{}/metrics", p.private);
    let keys = test_keys();
    wait_for_metrics(
        &private_metrics,
        Some(&keys.admin),
        "the counts on the private listener",
        counted,
    )
    .await;
    assert_eq!(get(&private_metrics, None).await.0, 401);
    assert_eq!(get(&private_metrics, Some(&keys.read)).await.0, 403);
    assert_eq!(get(&private_metrics, Some(&keys.write)).await.0, 403);

    // A process without the gateway has its own operations listener: a second projector
    // (no engine) is ready, samples the same projection, and has answered no commands.
    let projector = start_process(&nats.url(), "projector").await;
    let projector_metrics = format!("{}/metrics", projector.ops);
    wait_for_status(&format!("{}/readyz", projector.ops), 200).await;
    let s = wait_for_metrics(&projector_metrics, None, "the projector's gauges", |s| {
        gauge(s, "created") == Some(1.0) && gauge(s, "pending") == Some(2.0)
    })
    .await;
    assert!(
        !s.keys().any(|k| k.starts_with("paystate_commands_total")),
        "a projector answers no commands: {s:?}"
    );

    // Tracing: the engine's answer to a command is logged (JSON) inside the command's span,
    // which names its order, command id, type and provider.
    let first = &creates[0];
    let answered = wait_for_log(&p, |v| {
        v["fields"]["message"] == "answered" && v["span"]["command_id"] == first.command_id.as_str()
    })
    .await;
    assert_eq!(answered["span"]["name"], "command", "{answered}");
    assert_eq!(
        answered["span"]["order_id"],
        first.order_id.as_str(),
        "{answered}"
    );
    assert_eq!(answered["span"]["command"], "create_order", "{answered}");
    assert_eq!(
        answered["span"]["provider"],
        PROVIDER.as_str(),
        "{answered}"
    );
    assert_eq!(answered["fields"]["outcome"], "accepted", "{answered}");

    // Health: alive and ready; then NATS goes away: still alive, no longer ready.
    assert_eq!(get(&format!("{}/healthz", p.ops), None).await.0, 200);
    assert_eq!(get(&format!("{}/readyz", p.ops), None).await.0, 200);
    nats.server.kill().await;
    let body = wait_for_status(&format!("{}/readyz", p.ops), 503).await;
    assert!(body.contains("not_ready"), "{body}");
    assert_eq!(get(&format!("{}/healthz", p.ops), None).await.0, 200);

    // A process started while NATS is down serves at once: alive, not ready.
    let waiting = start_process(&nats.url(), "engine").await;
    assert_eq!(get(&format!("{}/healthz", waiting.ops), None).await.0, 200);
    let (status, body) = get(&format!("{}/readyz", waiting.ops), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected to NATS yet"), "{body}");
}
