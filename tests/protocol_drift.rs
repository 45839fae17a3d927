//! Everything `paystate schemas` generates must match what is committed: the JSON Schemas in
//! schemas/ and docs/protocol.md (whose transition table is computed by the pure core). Run
//! `paystate schemas` (or `cargo run -p paystate -- schemas`) and commit the result.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn docs_protocol_md_matches_the_code() {
    let path = root().join(paystate::protocol::PROTOCOL_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = paystate::protocol::render();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or(committed.lines().count().min(fresh.lines().count()), |n| n);
        panic!(
            "docs/protocol.md drifted from the code at line {}: run `paystate schemas` and commit \
             the result\ncommitted: {:?}\ngenerated: {:?}",
            first + 1,
            committed.lines().nth(first),
            fresh.lines().nth(first)
        );
    }
}

#[test]
fn the_transition_table_covers_every_state_and_every_command_and_signal_kind() {
    use paystate_events::{Command, Provider, Status};
    let doc = paystate::protocol::render();
    for status in Status::ALL {
        assert!(
            doc.contains(&format!("#### {}\n", status.as_str())),
            "a section for {status}"
        );
    }
    let inputs = paystate::protocol::transitions::inputs(Provider::Plural);
    for name in Command::NAMES {
        assert!(
            inputs.iter().any(|i| i.command_type == name),
            "{name} is in the table"
        );
    }
    for kind in [
        "accepted",
        "authorized",
        "captured",
        "failed",
        "cancelled",
        "refunded",
        "settled",
        "unrecognised",
        "outcome_unknown",
        "needs_review",
        "probed",
    ] {
        assert!(
            inputs.iter().any(|i| i.body["signal"]["status"] == kind),
            "signal {kind} is in the table"
        );
    }
}

#[test]
fn every_generated_schema_is_committed() {
    for (name, schema) in paystate::answers::all_schemas() {
        let path = root().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            paystate_events::schemas::render(&schema),
            "{name} drifted: run `paystate schemas`"
        );
    }
}

#[test]
fn every_answer_the_reference_lists_has_a_generated_schema() {
    let names: Vec<&str> = paystate::answers::all_schemas()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for (name, _) in paystate::answers::ANSWERS {
        assert!(names.contains(&name), "{name} is generated");
    }
}
