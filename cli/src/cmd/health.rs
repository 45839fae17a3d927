//! `paystate health`: asks a running process's operations listener (`metrics_listen`) whether
//! it is ready (`/readyz`, default) or alive (`--url .../healthz`); exit 0 on 200, 1
//! otherwise. For container health checks in images without curl (docker-compose.yml).
//!
//! A plain HTTP/1.0 GET over TCP, bounded by [`PROBE_TIMEOUT`]: the listener is local and
//! unauthenticated, so nothing more is needed.

use anyhow::{bail, Context};
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whole probe: connect, ask, read the answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most answer bytes read (the status line and a short JSON body).
const ANSWER_BYTES_MAX: u64 = 4096;

#[derive(clap::Args)]
pub struct Args {
    /// `http://host:port/path` of the operations listener to ask.
    #[arg(long, default_value = "http://127.0.0.1:9464/readyz")]
    url: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    Ok(match report(&args.url).await {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// Asks `url` and prints what it said; true on 200 (also used by `check --ready-url`).
pub async fn report(url: &str) -> bool {
    match ask(url).await {
        Ok((true, body)) => {
            println!("ready: {url}: {body}");
            true
        }
        Ok((false, answer)) => {
            eprintln!("not ready: {url}: {answer}");
            false
        }
        Err(e) => {
            eprintln!("not ready: {e:#}");
            false
        }
    }
}

/// (200?, the body; or the status line and body).
async fn ask(url: &str) -> anyhow::Result<(bool, String)> {
    let (host, path) = split_url(url)?;
    let answer = tokio::time::timeout(PROBE_TIMEOUT, get(host, path))
        .await
        .with_context(|| format!("{url} did not answer within {PROBE_TIMEOUT:?}"))??;
    let status_line = answer.lines().next().unwrap_or_default();
    let ok = status_line.split_whitespace().nth(1) == Some("200");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(match ok {
        true => (true, body.to_string()),
        false => (false, format!("{status_line}: {body}")),
    })
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url must be http://host:port/path (got {url:?})");
    };
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

async fn get(host: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("cannot connect to {host}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut bytes = Vec::new();
    stream
        .take(ANSWER_BYTES_MAX)
        .read_to_end(&mut bytes)
        .await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9464/readyz").unwrap(),
            ("127.0.0.1:9464", "/readyz")
        );
        assert_eq!(split_url("http://h:1").unwrap(), ("h:1", "/"));
        assert!(split_url("https://h:1/readyz").is_err());
    }
}
