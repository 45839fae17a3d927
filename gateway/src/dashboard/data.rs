//! What the dashboard pages read, besides the projection: an order's timeline from the log
//! (the audit's own [`paystate_audit::timeline`]), the stored raw callback behind each
//! provider report, and provider health from the callbacks stream.

use crate::callbacks::{CALLBACKS_PREFIX, CALLBACKS_STREAM};
use async_nats::jetstream;
use base64::Engine as _;
use paystate_audit::timeline::{Cause, Entry};
use paystate_events::{OrderId, Provider, Timestamp};
use paystate_journal::read::to_chrono;
use paystate_journal::Journal;
use std::collections::BTreeMap;

/// Most raw callbacks fetched for one order page (the newest reports' evidence first).
pub const EVIDENCE_PER_PAGE_MAX: usize = 64;
/// Most bytes of a raw callback body shown.
pub const EVIDENCE_BODY_SHOWN_MAX: usize = 4096;
/// Most commits shown on one order page (an order with more shows its newest).
pub const TIMELINE_ENTRIES_MAX: usize = 500;

/// A stored raw callback, as the gateway kept it (credential headers already redacted).
#[derive(Debug, Clone)]
pub struct RawCallback {
    pub seq: u64,
    pub received_at: String,
    pub headers: Vec<(String, String)>,
    pub query: String,
    /// The body as text (lossy UTF-8), cut at [`EVIDENCE_BODY_SHOWN_MAX`] bytes.
    pub body: String,
    pub truncated: bool,
}

/// Evidence behind a provider report: the raw callback, or what the reference says.
#[derive(Debug, Clone)]
pub enum Evidence {
    Callback(RawCallback),
    /// A provider API answer (`call:`) or a reconciler probe (`probe:`): the reference names
    /// the idempotent call; responses are not stored beyond the signal itself.
    Call {
        reference: String,
    },
    /// The reference could not be followed (gone from the stream, or unreadable).
    Missing {
        reference: String,
        why: String,
    },
}

/// An order's timeline entries (oldest first, at most [`TIMELINE_ENTRIES_MAX`]) with the
/// evidence of each provider report, by sequence.
pub struct OrderHistory {
    pub entries: Vec<Entry>,
    /// Commits left out at the start (only the newest are shown).
    pub omitted: usize,
    pub evidence: BTreeMap<u64, Vec<Evidence>>,
}

/// Reads the order's log and follows each provider report's evidence reference.
pub async fn history(
    journal: &Journal,
    js: &jetstream::Context,
    order: &OrderId,
) -> Result<OrderHistory, String> {
    let commits = journal
        .read_order(order)
        .await
        .map_err(|e| format!("reading the log: {e}"))?;
    let mut entries = paystate_audit::timeline::timeline(&commits);
    let omitted = entries.len().saturating_sub(TIMELINE_ENTRIES_MAX);
    entries.drain(..omitted);
    let callbacks = js.get_stream(CALLBACKS_STREAM).await.ok();
    let mut evidence = BTreeMap::new();
    let mut fetched = 0usize;
    for e in entries.iter().rev() {
        let Cause::Provider { evidence_ref, .. } = &e.cause else {
            continue;
        };
        let mut found = Vec::new();
        for part in evidence_ref.split('+') {
            found.push(
                match part.strip_prefix("callbacks:").map(str::parse::<u64>) {
                    Some(Ok(seq)) if fetched < EVIDENCE_PER_PAGE_MAX => {
                        fetched += 1;
                        raw_callback(callbacks.as_ref(), seq)
                            .await
                            .unwrap_or_else(|why| Evidence::Missing {
                                reference: part.to_string(),
                                why,
                            })
                    }
                    Some(Ok(_)) => Evidence::Missing {
                        reference: part.to_string(),
                        why: format!("not fetched: more than {EVIDENCE_PER_PAGE_MAX} on this page"),
                    },
                    _ => Evidence::Call {
                        reference: part.to_string(),
                    },
                },
            );
        }
        evidence.insert(e.sequence, found);
    }
    Ok(OrderHistory {
        entries,
        omitted,
        evidence,
    })
}

async fn raw_callback(
    stream: Option<&jetstream::stream::Stream>,
    seq: u64,
) -> Result<Evidence, String> {
    let stream = stream.ok_or("the callbacks stream is not readable here")?;
    let msg = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| format!("callbacks:{seq}: {e}"))?;
    #[derive(serde::Deserialize)]
    struct Stored {
        received_at: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        query: String,
        #[serde(default)]
        body_b64: String,
    }
    let stored: Stored = serde_json::from_slice(&msg.payload)
        .map_err(|e| format!("callbacks:{seq} is not a stored callback: {e}"))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(stored.body_b64.as_bytes())
        .map_err(|e| format!("callbacks:{seq}: body is not base64: {e}"))?;
    let truncated = body.len() > EVIDENCE_BODY_SHOWN_MAX;
    let shown = &body[..body.len().min(EVIDENCE_BODY_SHOWN_MAX)];
    Ok(Evidence::Callback(RawCallback {
        seq,
        received_at: stored.received_at,
        headers: stored.headers,
        query: stored.query,
        body: String::from_utf8_lossy(shown).into_owned(),
        truncated,
    }))
}

/// What the callbacks stream says about one provider.
#[derive(Debug, Clone)]
pub struct ProviderHealth {
    pub provider: Provider,
    /// When the last raw callback was stored.
    pub last_callback: Option<Timestamp>,
    /// The last verdict (`applied`, `rejected`, `duplicate`, ...) and when.
    pub last_verdict: Option<(String, Timestamp)>,
    /// This process's counters for the provider (`None`: no metrics recorder installed).
    pub counts: Option<ProviderCounts>,
}

/// One provider's counters in this process's metrics: callbacks by verdict (the gateway),
/// provider calls and their errors (whatever calls the provider in this process: workers,
/// reconciler, the gateway's status confirmations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderCounts {
    pub callbacks: f64,
    pub callbacks_rejected: f64,
    pub calls: f64,
    pub call_errors: f64,
}

impl ProviderCounts {
    /// `part / whole` as a percentage, when there is a whole.
    pub fn rate(part: f64, whole: f64) -> Option<f64> {
        (whole > 0.0).then(|| 100.0 * part / whole)
    }
}

/// Sums the per-provider counters out of Prometheus text (as `telemetry::render` gives it).
pub fn provider_counts(text: &str) -> BTreeMap<String, ProviderCounts> {
    use paystate_events::metric_names::{
        CALLBACKS_TOTAL, PROVIDER_ERRORS_TOTAL, PROVIDER_REQUEST_DURATION_SECONDS,
    };
    let calls = format!("{PROVIDER_REQUEST_DURATION_SECONDS}_count");
    let mut out: BTreeMap<String, ProviderCounts> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let Some(provider) = label(labels, "provider") else {
            continue;
        };
        let c = out.entry(provider.to_string()).or_default();
        if name == CALLBACKS_TOTAL {
            c.callbacks += value;
            if label(labels, "verdict") == Some("rejected") {
                c.callbacks_rejected += value;
            }
        } else if name == calls {
            c.calls += value;
        } else if name == PROVIDER_ERRORS_TOTAL {
            c.call_errors += value;
        }
    }
    out
}

/// The value of label `name` in `a="x",b="y"}` (values here never hold quotes).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    rest.find('"').map(|end| &rest[..end])
}

/// Per provider: the last callback and the last verdict (one direct read each), and this
/// process's counters from `metrics` (Prometheus text, when a recorder is installed).
pub async fn provider_health(
    js: &jetstream::Context,
    metrics: Option<&str>,
) -> Result<Vec<ProviderHealth>, String> {
    let counts = metrics.map(provider_counts);
    let stream = js
        .get_stream(CALLBACKS_STREAM)
        .await
        .map_err(|e| format!("callbacks stream: {e}"))?;
    let mut out = Vec::with_capacity(Provider::ALL.len());
    for provider in Provider::ALL {
        let last = |kind: &'static str| {
            let stream = stream.clone();
            async move {
                stream
                    .get_last_raw_message_by_subject(&format!(
                        "{CALLBACKS_PREFIX}.{provider}.{kind}"
                    ))
                    .await
                    .ok()
            }
        };
        let last_callback = last("raw").await.map(|m| to_chrono(m.time));
        let last_verdict = last("verdict").await.and_then(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
            let verdict = v.get("verdict")?.as_str()?.to_string();
            Some((verdict, to_chrono(m.time)))
        });
        out.push(ProviderHealth {
            provider,
            last_callback,
            last_verdict,
            counts: counts
                .as_ref()
                .map(|c| c.get(provider.as_str()).cloned().unwrap_or_default()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_counters_are_summed_from_prometheus_text() {
        let text = "\
# HELP paystate_callbacks_total Provider callbacks received.
# TYPE paystate_callbacks_total counter
paystate_callbacks_total{provider=\"flitt\",verdict=\"applied\"} 3
paystate_callbacks_total{provider=\"flitt\",verdict=\"rejected\"} 1
paystate_callbacks_total{provider=\"plexy\",verdict=\"duplicate\"} 2
paystate_provider_request_duration_seconds_bucket{provider=\"flitt\",operation=\"capture\",le=\"0.1\"} 4
paystate_provider_request_duration_seconds_count{provider=\"flitt\",operation=\"capture\"} 4
paystate_provider_request_duration_seconds_count{provider=\"flitt\",operation=\"status\"} 6
paystate_provider_errors_total{provider=\"flitt\",operation=\"status\",kind=\"timeout\"} 2
paystate_commands_total{type=\"capture\",outcome=\"accepted\",code=\"\"} 9
";
        let c = provider_counts(text);
        let flitt = &c["flitt"];
        assert_eq!(
            (
                flitt.callbacks,
                flitt.callbacks_rejected,
                flitt.calls,
                flitt.call_errors
            ),
            (4.0, 1.0, 10.0, 2.0)
        );
        assert_eq!(c["plexy"].callbacks, 2.0);
        assert_eq!(ProviderCounts::rate(1.0, 4.0), Some(25.0));
        assert_eq!(ProviderCounts::rate(1.0, 0.0), None);
        assert_eq!(c.len(), 2, "series without a provider are not counted");
    }
}
