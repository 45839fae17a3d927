//! [`Secret`]: a credential that will not print, shared by every crate that holds one
//! (provider API keys, passwords, webhook tokens, signing keys; NATS passwords, tokens and
//! seeds).
//!
//! `Debug` and `Display` print `***`, there is no `Serialize` (a secret cannot end up in an
//! event, an outcome or a settings dump by accident), and the value is reached only through
//! [`Secret::expose`], so every place that uses the raw value is easy to find.

use serde::Deserialize;
use std::fmt;

/// A credential. Deserializes from a plain string (configuration files, environment).
#[derive(Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The raw value, for signing or for the one header or field that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s: Secret = serde_json::from_str("\"hunter2\"").expect("a JSON string");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s} {s:#?}"), "*** *** ***");
        #[derive(Debug)]
        #[allow(dead_code)] // Why: only Debug output is under test.
        struct Holder {
            key: Secret,
        }
        assert!(!format!("{:?}", Holder { key: s }).contains("hunter2"));
    }
}
