//! `paystate bench --quick --json` runs end to end (its own nats-server, engines, a
//! `paystate run` process) and reports every row of the benchmark table with a number.
//! Sizes are cut further than `--quick` so a debug build stays well under a minute.

use std::process::Command;

/// Every row id `paystate bench` reports (see cli/src/cmd/bench/scenarios.rs).
const ROWS: [&str; 13] = [
    "raw_append",
    "engine_throughput",
    "raw_read",
    "audit",
    "projection_rebuild",
    "engine_latency_p50",
    "engine_latency_p99",
    "engine_latency_p999",
    "hot_orders",
    "core_decide_evolve",
    "memory_peak",
    "raw_append_sync",
    "engine_throughput_sync",
];

// Not in the default suite: benchmarks are separate commands, and under a loaded 2-core
// machine this run was seen to stall (10+ minutes). Run it with
// `cargo test -p paystate --test bench_smoke -- --ignored`.
#[test]
#[ignore = "benchmark smoke run; cargo test -p paystate --test bench_smoke -- --ignored"]
fn quick_bench_reports_every_row() {
    let out = Command::new(env!("CARGO_BIN_EXE_paystate"))
        .args(["bench", "--quick", "--json", "--orders", "300"])
        .args(["--memory-orders", "2000", "--clients", "64"])
        .output()
        .expect("the paystate binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "paystate bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
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
