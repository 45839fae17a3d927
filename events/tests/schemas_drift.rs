//! The committed schemas/ must match the Rust types. Regenerate with `paystate schemas`.

use std::path::Path;

#[test]
fn committed_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    for (name, schema) in paystate_events::schemas::all() {
        let path = dir.join(name);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: run `paystate schemas`", path.display()));
        assert_eq!(
            committed,
            paystate_events::schemas::render(&schema),
            "{name} drifted from the Rust types: run `paystate schemas` and commit the result"
        );
    }
}
