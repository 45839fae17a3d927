//! JSON Schemas of every wire type, generated from the Rust types. `paystate schemas` writes
//! them into `schemas/`; a test fails when the committed files drift from the types.

use crate::{CommandEnvelope, Commit, Event, OrderState, Outcome, ProviderSignal};

/// (file name, schema) for every published type.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: schemars::JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
    }
    vec![
        ("command.schema.json", one::<CommandEnvelope>()),
        ("outcome.schema.json", one::<Outcome>()),
        ("event.schema.json", one::<Event>()),
        ("commit.schema.json", one::<Commit>()),
        ("provider_signal.schema.json", one::<ProviderSignal>()),
        ("order_state.schema.json", one::<OrderState>()),
    ]
}

/// The text written for a schema (pretty, newline-terminated).
pub fn render(schema: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}
