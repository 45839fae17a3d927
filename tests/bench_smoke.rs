//! `paystate bench --quick --json` runs end to end (its own nats-server, engines, a
//! `paystate run` process) and reports every row of the benchmark table with a number.
//! Sizes are cut further than `--quick` so a debug build stays well under a minute.

use paystate_broker::{child_named, process_state};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest the smoke run may take (about 20 s in a debug build on an idle 2-core machine; a
/// bench whose commands go unanswered gives up by itself within about a minute).
const RUN_TIME_MAX: Duration = Duration::from_secs(240);
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Every row id `paystate bench` reports (see cli/src/cmd/bench/scenarios.rs).
const ROWS: [&str; 24] = [
    "raw_append",
    "bare_request_path",
    "bare_request_path_batched",
    "bare_request_path_batched_work",
    "bare_request_path_micro_batched",
    "engine_throughput",
    "engine_throughput_queue",
    "engine_throughput_queue_ff",
    "raw_read",
    "audit",
    "projection_rebuild",
    "cache_miss_load_one_by_one",
    "cache_miss_load_batched",
    "cache_miss_load",
    "bare_latency_p99",
    "engine_latency_p50",
    "engine_latency_p99",
    "engine_latency_p999",
    "hot_orders",
    "hot_orders_queue",
    "core_decide_evolve",
    "memory_peak",
    "raw_append_sync",
    "engine_throughput_sync",
];

// Not in the default suite: benchmarks are separate commands, and under a loaded 2-core
// machine this run was seen to stall (10+ minutes). Run it with
// `cargo test -p paystate --test bench_smoke -- --ignored`. (The stall seen: the memory row's
// `paystate run` exited when port 8080 was taken and every client waited out its retries; the
// bench now gives it a free port, stops when a command goes unanswered, and this test kills
// the run after `RUN_TIME_MAX`.)
#[test]
#[ignore = "benchmark smoke run; cargo test -p paystate --test bench_smoke -- --ignored"]
fn quick_bench_reports_every_row() {
    let (status, stdout, stderr) = run_bounded(&[
        "bench",
        "--quick",
        "--json",
        "--orders",
        "300",
        "--memory-orders",
        "2000",
        "--clients",
        "64",
    ]);
    assert!(status.success(), "paystate bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&stdout).expect("stdout is the JSON report");
    let rows = report["rows"].as_array().expect("rows");
    for id in ROWS {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} missing; table:\n{stderr}"));
        let value = row["value"].as_f64().unwrap_or(f64::NAN);
        assert!(
            value.is_finite() && value > 0.0,
            "row {id} has no measurement: {row}"
        );
    }
    assert!(rows
        .iter()
        .all(|r| r["id"] != "engine_throughput" || r["ratio"].is_number()));
}

/// `paystate bench --json`'s report matches its schema (schemas/cli_bench.schema.json). Only
/// the pure-core row runs (a few hundred milliseconds), so this one is in the default suite.
#[test]
fn bench_json_report_matches_its_schema() {
    let skip = "raw,engine,read,cache_miss,latency,contention,memory,durability";
    let (status, stdout, stderr) = run_bounded(&["bench", "--quick", "--json", "--skip", skip]);
    assert!(status.success(), "paystate bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&stdout).expect("stdout is the JSON report");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/cli_bench.schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the bench schema exists"))
            .expect("the bench schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the bench schema is a schema");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match: {errors:?}\n{report}"
    );
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only the core row ran: {report}");
    assert_eq!(rows[0]["id"], "core_decide_evolve");
    // Not vacuous: a row missing its id is refused.
    let mut broken = report.clone();
    broken["rows"][0]
        .as_object_mut()
        .expect("row object")
        .remove("id");
    assert!(!validator.is_valid(&broken), "the schema requires a row id");
}

/// `paystate bench-read` fills a fresh server both ways (the pure core appending, and the real
/// engine fed commands as clients and signal reporters publish them) and measures the three
/// read steps over a log that audits clean. Small sizes: a few seconds in a debug build. (The
/// engine way once stalled for good: it published provider signals on the client plane, which
/// the engine refuses, and then waited 30 minutes for commits that could never come.)
#[test]
fn bench_read_fills_through_the_core_and_through_the_engine() {
    for via in ["core", "engine"] {
        let (status, stdout, stderr) = run_bounded(&[
            "bench-read",
            "--via",
            via,
            "--events",
            "3000",
            "--orders-in-flight",
            "100",
            "--json",
        ]);
        assert!(status.success(), "bench-read --via {via} failed: {stderr}");
        let stdout = String::from_utf8_lossy(&stdout);
        let (start, end) = (stdout.find("\n{"), stdout.rfind("\n}"));
        let (Some(start), Some(end)) = (start, end) else {
            panic!("no JSON report in stdout:\n{stdout}");
        };
        let report: serde_json::Value =
            serde_json::from_str(&stdout[start + 1..end + 2]).expect("the JSON report");
        assert_eq!(report["filled"]["events"], 3000, "{report}");
        let steps: Vec<&str> = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["step"].as_str())
            .collect();
        assert_eq!(
            steps,
            ["raw ordered read", "audit", "projection rebuild"],
            "{report}"
        );
        assert!(
            stderr.contains("rebuilt projection equals the fold: 400 records compared"),
            "via {via}: {stderr}"
        );
    }
}

/// A benchmark stopped by a signal (`kill`, a CI job's timeout, a closed terminal) stops the
/// nats-server it started and waits for it: before, SIGTERM ended `paystate bench-read` on the
/// spot and its server ran on without a parent.
#[test]
fn a_stopped_benchmark_leaves_no_nats_server_behind() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let err_path = dir.path().join("stderr");
    // Given bench-read filling its own server with more events than it will get to ...
    let mut child = Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(["bench-read", "--events", "5000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("the paystate binary runs");
    let pid = child.id().to_string();
    let started = Instant::now();
    let server = loop {
        let filling = std::fs::read_to_string(&err_path)
            .unwrap_or_default()
            .contains("filling");
        if let (true, Some(server)) = (filling, child_named(&pid, "nats-server")) {
            break server;
        }
        assert!(
            child.try_wait().expect("wait for paystate").is_none(),
            "bench-read ended before filling: {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
        assert!(
            started.elapsed() < RUN_TIME_MAX,
            "bench-read never started filling"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // ... when it gets SIGTERM ...
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.expect("kill runs").success(), "SIGTERM sent");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for paystate") {
            break status;
        }
        assert!(started.elapsed() < RUN_TIME_MAX, "bench-read did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    // ... then it says so, exits as interrupted, and its nats-server is gone (not a zombie).
    let left = process_state(&server);
    if left.is_some() {
        let _ = Command::new("kill").args(["-KILL", &server]).status();
    }
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("terminate: stopped"), "stderr: {stderr}");
    assert_eq!(
        left, None,
        "bench-read's nats-server (pid {server}) was left behind"
    );
}

/// Runs `paystate ARGS`, killing it after [`RUN_TIME_MAX`]: (status, stdout, stderr).
fn run_bounded(args: &[&str]) -> (ExitStatus, Vec<u8>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("the paystate binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for paystate") {
            break status;
        }
        if started.elapsed() > RUN_TIME_MAX {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!("paystate bench ran over {RUN_TIME_MAX:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(POLL_EVERY);
    };
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status, stdout, stderr)
}
