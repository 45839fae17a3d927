//! Shared plumbing for provider flows: what an operation reports ([`Reported`]), sending one
//! request through the executor with uniform error classification ([`send`]), and wire amount
//! conversion helpers.

use crate::error::{AdapterError, Op};
use crate::executor::{CallError, CallOutcome, Executor};
use crate::http::{HttpRequest, HttpResponse, Replay};
use paystate_events::{Amount, Currency, Money, Provider, SignalKind};
use std::time::Duration;

/// What one provider operation reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The provider's reference for the payment (the engine remembers the first one).
    pub provider_ref: Option<String>,
    /// The canonical meaning, in order (may be empty: e.g. a refund still processing).
    pub signals: Vec<SignalKind>,
    /// The idempotency key or reference of the call, for the signal's evidence
    /// (`call:<call_ref>`).
    pub call_ref: String,
}

/// Everything a flow needs to make calls for one provider.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub provider: Provider,
    pub executor: &'a Executor,
    pub timeout: Duration,
}

/// Sends `req` and classifies the result. Returns the response for 2xx and for 4xx other than
/// 401/403/429 (providers read their own error bodies); everything else is an error:
/// not sent or 429 → `Retryable`; unknown, or 5xx on a write that is not replay-safe →
/// `OutcomeUnknown`; 5xx on a replay-safe request (retries used up) → `Retryable`;
/// 401/403 → `Unauthorized`; unbuildable request → `Config`-like `InvalidInput`.
/// Every call is timed and its errors counted (`paystate_provider_request_duration_seconds`,
/// `paystate_provider_errors_total`, by provider and operation).
pub async fn send(ctx: Ctx<'_>, op: Op, req: &HttpRequest) -> Result<HttpResponse, AdapterError> {
    let started = std::time::Instant::now();
    let result = send_classified(ctx, op, req).await;
    observe(ctx.provider, op, started, &result);
    result
}

fn observe(
    provider: Provider,
    op: Op,
    started: std::time::Instant,
    result: &Result<HttpResponse, AdapterError>,
) {
    use paystate_events::metric_names as m;
    let (p, o) = (provider.as_str(), op.as_str());
    metrics::histogram!(m::PROVIDER_REQUEST_DURATION_SECONDS, "provider" => p, "operation" => o)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics::counter!(m::PROVIDER_ERRORS_TOTAL, "provider" => p, "operation" => o, "kind" => error_kind(e))
            .increment(1);
    }
}

/// The `kind` label of a provider error: the variant, as a fixed word.
fn error_kind(e: &AdapterError) -> &'static str {
    match e {
        AdapterError::Retryable { .. } => "retryable",
        AdapterError::OutcomeUnknown { .. } => "outcome_unknown",
        AdapterError::Rejected { .. } => "rejected",
        AdapterError::NotFound { .. } => "not_found",
        AdapterError::Unauthorized { .. } => "unauthorized",
        AdapterError::Config(_) => "config",
        AdapterError::Unsupported { .. } => "unsupported",
        AdapterError::InvalidInput { .. } => "invalid_input",
    }
}

async fn send_classified(
    ctx: Ctx<'_>,
    op: Op,
    req: &HttpRequest,
) -> Result<HttpResponse, AdapterError> {
    let provider = ctx.provider;
    let outcome = ctx.executor.execute(req, ctx.timeout).await;
    match outcome {
        Err(CallError::NotSent { detail, .. }) => Err(AdapterError::Retryable {
            provider,
            op,
            detail,
        }),
        Err(CallError::Invalid(detail)) => Err(AdapterError::InvalidInput {
            provider,
            op,
            detail,
        }),
        Ok(CallOutcome::Unknown { detail }) => Err(AdapterError::OutcomeUnknown {
            provider,
            op,
            detail,
        }),
        Ok(CallOutcome::Response(r)) => classify_status(provider, op, req.replay, r),
    }
}

fn classify_status(
    provider: Provider,
    op: Op,
    replay: Replay,
    r: HttpResponse,
) -> Result<HttpResponse, AdapterError> {
    match r.status {
        401 | 403 => Err(AdapterError::Unauthorized {
            provider,
            op,
            status: r.status,
        }),
        429 => Err(AdapterError::Retryable {
            provider,
            op,
            detail: "rate limited (429)".to_string(),
        }),
        500..=599 => {
            let detail = format!("HTTP {}: {}", r.status, r.body_excerpt());
            match (replay, op.operation()) {
                (Replay::Unsafe, Some(_)) => Err(AdapterError::OutcomeUnknown {
                    provider,
                    op,
                    detail,
                }),
                _ => Err(AdapterError::Retryable {
                    provider,
                    op,
                    detail,
                }),
            }
        }
        _ => Ok(r),
    }
}

/// A 2xx body that does not parse: for a write we cannot tell what happened.
pub fn unreadable(
    provider: Provider,
    op: Op,
    r: &HttpResponse,
    e: impl std::fmt::Display,
) -> AdapterError {
    let detail = format!(
        "unreadable response (HTTP {}): {e}: {}",
        r.status,
        r.body_excerpt()
    );
    match op.operation() {
        Some(_) => AdapterError::OutcomeUnknown {
            provider,
            op,
            detail,
        },
        None => AdapterError::Retryable {
            provider,
            op,
            detail,
        },
    }
}

/// Integer minor units in a currency code, as providers send them (number or digit string).
pub fn minor_money(minor: u64, currency: &str) -> Result<Money, String> {
    let currency = Currency::parse(currency).map_err(|e| e.to_string())?;
    let amount = Amount::new(minor).map_err(|e| e.to_string())?;
    Ok(Money::new(amount, currency))
}

/// A JSON amount that is a count of minor units: a non-negative integer or a digit string.
pub fn json_minor(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A JSON amount in major units (decimal string or number), converted exactly.
pub fn json_decimal_money(v: &serde_json::Value, currency: Currency) -> Result<Money, String> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(format!("amount {other} is not a decimal")),
    };
    Money::from_decimal(&text, currency).map_err(|e| e.to_string())
}

/// A JSON scalar as text (ids that come as numbers or strings).
pub fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_amounts_convert_exactly() {
        let usd = Currency::parse("USD").expect("USD");
        assert_eq!(
            json_decimal_money(&json!("12.50"), usd).map(|m| m.minor_units.get()),
            Ok(1250)
        );
        assert_eq!(
            json_decimal_money(&json!(12.5), usd).map(|m| m.minor_units.get()),
            Ok(1250)
        );
        assert!(json_decimal_money(&json!("12.505"), usd).is_err());
        assert!(json_decimal_money(&json!(true), usd).is_err());
        assert_eq!(json_minor(&json!(12500)), Some(12500));
        assert_eq!(json_minor(&json!("12500")), Some(12500));
        assert_eq!(json_minor(&json!("12.5")), None);
        assert_eq!(json_minor(&json!(-1)), None);
        assert!(minor_money(0, "USD").is_err());
        assert!(minor_money(5, "XXY").is_err());
        assert_eq!(json_text(&json!(1409)), Some("1409".into()));
    }
}
