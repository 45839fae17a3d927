//! The independent verifier of docs/protocol.md (docs/verify_log.py, Python standard library
//! only) against a real export of a real nats-server: it agrees with `paystate audit` on a
//! clean log (both OK), and both refuse an export with one byte of an event flipped, and
//! separately one with a `prev_hash` changed (audit: the tampered lines loaded into a fresh
//! server as they are, around `paystate import`, which refuses them itself).

mod support;

use paystate_events::Command;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/verify_log.py");

/// Runs the verifier on `file`: (exit code, output).
fn verify(file: &Path) -> (i32, String) {
    let out = std::process::Command::new("python3")
        .arg(VERIFIER)
        .arg(file)
        .output()
        .expect("python3 runs (the README's set-up installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Exit code of `paystate audit` (no projection) on the server at `url`.
async fn audit(url: &str) -> (i32, String) {
    let (code, out, err) = paystate_cli(url, &["audit", "--no-projection", "--quiet"]).await;
    (code, format!("{out}{err}"))
}

/// Loads export lines into the (fresh) server's log as they are: body and headers.
async fn load_raw(nats: &TestNats, text: &str) {
    let _journal = nats.journal().await;
    let js = async_nats::jetstream::new(nats.connect().await);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let body = raw_body(line);
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in v["headers"].as_object().into_iter().flatten() {
            if name.starts_with("Nats-Expected") {
                continue;
            }
            for value in values.as_array().into_iter().flatten() {
                headers.append(name.as_str(), value.as_str().unwrap_or_default());
            }
        }
        let subject = v["subject"].as_str().expect("subject").to_string();
        js.publish_with_headers(subject, headers, body.into_bytes().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
}

/// The `body` member of an export line, verbatim (it is the line's last member).
fn raw_body(line: &str) -> String {
    let start = line.find(",\"body\":").expect("a body") + ",\"body\":".len();
    line[start..line.len() - 1].to_string()
}

/// Changes one byte of the first line containing `after`: the character just past the first
/// `needle` after it (a digit or hex digit), to another digit or hex digit.
fn flip(text: &str, after: &str, needle: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let line = lines
        .iter_mut()
        .find(|l| l.contains(after))
        .unwrap_or_else(|| panic!("a line with {after}"));
    let from = line.find(after).expect("after") + after.len();
    let at = from + line[from..].find(needle).expect("needle") + needle.len();
    let old = line.as_bytes()[at];
    let new = match old {
        b'9' => b'8',
        b'f' => b'e',
        other => other + 1,
    };
    line.replace_range(at..at + 1, &char::from(new).to_string());
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_verifier_agrees_with_the_audit_on_a_real_export() {
    let a = TestNats::start().await;
    let _engine = a.engine().await;
    let client = a.client().await;
    for i in 0..3 {
        let o = order(&format!("verify{i}"));
        // Non-ASCII text and metadata: the verifier re-encodes the command as paystate does.
        let create = Command::CreateOrder {
            merchant_reference: format!("shop-ø-\"{i}\"-日本"),
            amount: paystate_events::command::money(10_000, "USD").expect("amount"),
            provider: PROVIDER,
            capture_mode: paystate_events::CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: BTreeMap::from([("z".into(), "last".into()), ("a".into(), "é\n".into())]),
        };
        for cmd in [
            create,
            start(),
            authorized(),
            capture(Some(6_000)),
            captured(6_000),
        ] {
            accept(&client, env(&o, cmd)).await;
        }
        accept(&client, env(&o, refund(Some(1_000)))).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    let (code, _, err) = paystate_cli(&a.url(), &["export", "--out", file_arg, "--quiet"]).await;
    assert_eq!(code, 0, "export: {err}");

    let (code, out) = verify(&file);
    assert_eq!(code, 0, "the verifier accepts the real export: {out}");
    assert!(out.contains("ok: 3 orders"), "{out}");
    let (code, out) = audit(&a.url()).await;
    assert_eq!(code, 0, "the audit agrees: {out}");

    let text = std::fs::read_to_string(&file).expect("export");
    let event_flipped = flip(&text, "\"type\":\"payment_captured\"", "\"minor_units\":");
    let prev_flipped = flip(&text, "\"commit\":3,", "\"prev_hash\":\"");
    for (name, tampered) in [("event", event_flipped), ("prev_hash", prev_flipped)] {
        assert_ne!(tampered, text);
        let bad = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&bad, &tampered).expect("write");
        let (code, out) = verify(&bad);
        assert_eq!(code, 1, "the verifier refuses the {name} flip: {out}");
        let b = TestNats::start().await;
        load_raw(&b, &tampered).await;
        let (code, out) = audit(&b.url()).await;
        assert_eq!(code, 1, "the audit refuses the {name} flip too: {out}");
        let (code, _, err) = paystate_cli(
            &b.url(),
            &["import", bad.to_str().expect("utf-8"), "--verify-only"],
        )
        .await;
        assert_eq!(code, 1, "and so does import's own check: {err}");
    }
}
