//! Where an audit's and a rebuild's CPU goes per commit, in memory (no broker): reads a
//! `paystate export` file and times each step over its commits.
//!
//! `cargo run --release -p paystate-audit --example observe_cost -- log.jsonl [observe]`
//! (`observe`: only the whole audit check, five times: for A/B timing of a change to the
//! check, the best of the five being the steadiest figure on a shared machine).

use async_nats::HeaderMap;
use paystate_audit::Auditor;
use paystate_events::{CommitHash, Timestamp};
use paystate_journal::RawEntry;
use std::collections::HashMap;
use std::time::Instant;

/// The allocator the `paystate` binary runs on, so the figures here are the audit's there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Line {
    sequence: u64,
    subject: String,
    headers: HashMap<String, Vec<String>>,
    body: Box<serde_json::value::RawValue>,
}

fn main() -> anyhow_free::Result {
    let path = std::env::args().nth(1).ok_or("usage: observe_cost FILE")?;
    let text = std::fs::read_to_string(path)?;
    let mut entries = Vec::new();
    for line in text.lines() {
        let l: Line = serde_json::from_str(line)?;
        let mut headers = HeaderMap::new();
        for (k, vs) in &l.headers {
            for v in vs {
                headers.append(k.as_str(), v.as_str());
            }
        }
        entries.push(RawEntry {
            sequence: l.sequence,
            subject: l.subject.into(),
            time: Timestamp::default(),
            headers: Some(headers),
            payload: bytes::Bytes::from(l.body.get().as_bytes().to_vec()),
        });
    }
    let n = entries.len() as f64;
    let time = |name: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        println!(
            "{name:<28} {:>7.2} us/commit",
            t.elapsed().as_secs_f64() * 1e6 / n
        );
    };
    if std::env::args().nth(2).as_deref() == Some("observe") {
        for _ in 0..5 {
            time("audit observe (all)", &mut || {
                let mut a = Auditor::new("s", u64::MAX);
                for e in &entries {
                    a.observe(e);
                }
                assert!(a.report.findings.is_empty());
            });
        }
        return Ok(());
    }
    let commits: Vec<_> = entries
        .iter()
        .filter_map(|e| paystate_journal::scan::decode_commit(&e.payload).ok())
        .collect();
    for _ in 0..2 {
        time("decode", &mut || {
            for e in &entries {
                std::hint::black_box(paystate_journal::scan::decode_commit(&e.payload).ok());
            }
        });
        let mut fast_refused = 0;
        time("decode (one pass only)", &mut || {
            fast_refused = 0;
            for e in &entries {
                let text = std::str::from_utf8(&e.payload).unwrap_or("");
                let c = paystate_events::fast_decode::decode_commit(text);
                fast_refused += usize::from(c.is_err());
                std::hint::black_box(c.ok());
            }
        });
        println!(
            "  one pass refused {fast_refused} of {} (serde decodes those)",
            entries.len()
        );
        time("decode (serde from_str)", &mut || {
            for e in &entries {
                let text = std::str::from_utf8(&e.payload).unwrap_or("");
                std::hint::black_box(serde_json::from_str::<paystate_events::Commit>(text).ok());
            }
        });
        time("decode (from_slice)", &mut || {
            for e in &entries {
                std::hint::black_box(
                    serde_json::from_slice::<paystate_events::Commit>(&e.payload).ok(),
                );
            }
        });
        time("hash", &mut || {
            for e in &entries {
                std::hint::black_box(CommitHash::of(&e.payload));
            }
        });
        time("header hash", &mut || {
            for e in &entries {
                std::hint::black_box(e.header_hash());
            }
        });
        time("header hash (HeaderMap::get)", &mut || {
            for e in &entries {
                std::hint::black_box(
                    e.headers
                        .as_ref()
                        .and_then(|h| h.get(paystate_events::subjects::HASH_HEADER))
                        .map(|v| v.as_str()),
                );
            }
        });
        time("events encode", &mut || {
            for c in &commits {
                std::hint::black_box(serde_json::to_vec(&c.events).ok());
            }
        });
        time("command encode", &mut || {
            for c in &commits {
                std::hint::black_box(serde_json::to_vec(&c.command).ok());
            }
        });
        time("fingerprint", &mut || {
            for c in &commits {
                std::hint::black_box(c.command.fingerprint());
            }
        });
        time("audit observe (all)", &mut || {
            let mut a = Auditor::new("s", u64::MAX);
            for e in &entries {
                a.observe(e);
            }
            assert!(
                a.report.findings.is_empty(),
                "{:?}",
                a.report.findings.first()
            );
        });
        time("rebuild fold (full state)", &mut || {
            let mut slots: HashMap<String, Option<_>> = HashMap::new();
            for (e, c) in entries.iter().zip(&commits) {
                let hash = CommitHash::of(&e.payload).0;
                let slot = slots.entry(c.order_id.to_string()).or_default();
                paystate_projection::rebuild_fold::apply_full(slot, e.sequence, c, &hash);
            }
        });
        time("rebuild fold (view, old)", &mut || {
            let mut slots: HashMap<String, Option<_>> = HashMap::new();
            for e in &entries {
                let Ok(stored) = e.decode() else { continue };
                let slot = slots.entry(stored.commit.order_id.to_string()).or_default();
                paystate_projection::record::apply(slot, &stored, true);
            }
        });
        let mut full: HashMap<String, Option<_>> = HashMap::new();
        let mut old: HashMap<String, Option<_>> = HashMap::new();
        for e in &entries {
            let Ok(stored) = e.decode() else { continue };
            let key = stored.commit.order_id.to_string();
            paystate_projection::rebuild_fold::apply_full(
                full.entry(key.clone()).or_default(),
                e.sequence,
                &stored.commit,
                &stored.hash,
            );
            paystate_projection::record::apply(old.entry(key).or_default(), &stored, true);
        }
        let same = full
            .iter()
            .all(|(k, f)| f.as_ref().map(|f| f.record()) == old.get(k).cloned().flatten());
        println!("records identical: {same} ({} orders)", full.len());
    }
    Ok(())
}

mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
