//! What each provider supports: the adapters' view of the one table in
//! [`paystate_events::capabilities`], which the engine's rules read too. The facade refuses
//! every operation whose capability is missing there (`AdapterError::Unsupported`), before
//! any call; the README's table is [`markdown_table`] (a test keeps them equal).

use paystate_events::Provider;

pub use paystate_events::capabilities::{capabilities, supports, Capability, CAPABILITIES};

/// The name this module used before the table moved to `paystate-events`.
pub type Feature = Capability;

/// The table as Markdown, for the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| provider |");
    for c in Capability::ALL {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Capability::ALL.len()));
    for p in Provider::ALL {
        out.push_str(&format!("\n| {p} |"));
        for c in Capability::ALL {
            out.push_str(if supports(p, c) { " yes |" } else { " no |" });
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_the_table() {
        assert!(markdown_table().contains("| paykassma | yes | no |"));
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "adapters/README.md: replace the table with\n{}",
            markdown_table()
        );
    }
}
