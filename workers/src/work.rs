//! One unit of provider work: an event that asks for a provider call.
//!
//! A provider's answer, once worked out into signal commands, is held by the worker
//! ([`HeldAnswers`]) until its commit is acknowledged: if submitting the commands fails, the
//! next attempt re-sends those very commands (same ids) and never calls the provider again.
//! Their ids hash the report and its time, so working the answer out again would make new
//! ids, and calling again would be a second effect at a provider without an idempotency key.
//! What the in-memory hold does not cover (a worker dying between the call and the
//! submission) is in [`crate::held`].

use crate::held::HeldAnswers;
use crate::submit::{publish_all, signal_command};
use paystate_adapters::error::AdapterError;
use paystate_adapters::flow::Reported;
use paystate_adapters::Adapters;
use paystate_events::{CommandEnvelope, Event, Operation, OrderId, OrderState, SignalKind, Status};
use paystate_journal::Journal;
use paystate_service::refs::ProviderRefs;
use paystate_service::Client;

/// What became of a work item.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// The provider answered (or refused, or its outcome is recorded as unknown): signals
    /// submitted; acknowledge.
    Reported { signals: usize },
    /// An answer held from an earlier attempt (whose submission failed) was submitted now;
    /// the provider was not called again. Acknowledge.
    Resent { signals: usize },
    /// The order already moved past this work (a redelivery after the work was done).
    AlreadyResolved,
    /// Nothing reached the provider, or configuration must be fixed: try again later.
    RetryLater(String),
    /// The provider's answer is known and held as `signals` commands, but submitting them
    /// failed (broker hiccup, leader election): try again later, re-sending the held commands
    /// without calling the provider.
    Unsubmitted { signals: usize, reason: String },
    /// Cannot be done until a person acts (e.g. the attachment it needs is missing or does
    /// not match): trying again cannot help, so it is set aside at once.
    Permanent(String),
}

/// Shared handles a work item needs.
pub struct Env<'a> {
    pub adapters: &'a Adapters,
    pub attachments: &'a async_nats::jetstream::object_store::ObjectStore,
    pub journal: &'a Journal,
    pub client: &'a Client,
    pub refs: &'a ProviderRefs,
}

/// Performs the provider work `event` (found at stream sequence `seq`, event `index` of its
/// commit) for `order`. An answer `answers` holds from an earlier attempt is re-sent as it
/// is; a new answer is held there before it is submitted.
pub async fn perform(
    env: &Env<'_>,
    answers: &mut HeldAnswers,
    order: &OrderId,
    seq: u64,
    index: usize,
    event: &Event,
) -> Done {
    if let Some(commands) = answers.get(order.as_str(), seq, index, event) {
        tracing::info!(%order, seq, index, "re-sending a provider answer held from an earlier attempt");
        return match submit(env.client, commands).await {
            Done::Reported { signals } => Done::Resent { signals },
            other => other,
        };
    }
    let state = match env.journal.load(order).await {
        Ok(loaded) => match loaded.state {
            Some(s) => s,
            None => return Done::RetryLater(format!("order {order} not readable yet")),
        },
        Err(e) => return Done::RetryLater(e.to_string()),
    };
    if !still_pending(&state, event) {
        return Done::AlreadyResolved;
    }
    let signals = match ask(env, &state, &format!("w.{seq}.{index}"), event).await {
        Ok(signals) => signals,
        Err(done) => return done,
    };
    // Held before the first submission: from here on the provider is never asked again for
    // this event (while this worker holds the commit).
    answers.hold(order.as_str(), seq, index, event, signals.clone());
    submit(env.client, &signals).await
}

/// Submits an answer's commands; `Unsubmitted` if the broker did not take them all (the
/// ones it took are applied once when sent again: same ids).
async fn submit(client: &Client, commands: &[CommandEnvelope]) -> Done {
    match publish_all(client, commands).await {
        Ok(()) => Done::Reported {
            signals: commands.len(),
        },
        Err(e) => Done::Unsubmitted {
            signals: commands.len(),
            reason: format!("could not submit signals: {e}"),
        },
    }
}

/// Calls the provider for `event` and works its answer (or refusal, or unknown outcome) out
/// into signal commands with ids under `prefix`; `Err` when nothing is to be submitted.
async fn ask(
    env: &Env<'_>,
    state: &OrderState,
    prefix: &str,
    event: &Event,
) -> Result<Vec<CommandEnvelope>, Done> {
    let (op, refund_id) = operation(event);
    let result = match event {
        Event::TransferConfirmationSubmitted {
            confirmation_id,
            reference,
            attachment,
        } => {
            let a = activation(env, state, confirmation_id, reference, attachment).await?;
            env.adapters.paykassma_activate(state, &a).await
        }
        _ => call(env.adapters, state, event).await,
    };
    match result {
        Ok(reported) => Ok(reported_signals(env, state, prefix, reported).await),
        Err(AdapterError::OutcomeUnknown { detail, .. }) => {
            // Record that we do not know, then ask the provider instead of resending.
            let mut out = vec![signal(
                state,
                prefix,
                None,
                "call:unknown".into(),
                SignalKind::OutcomeUnknown {
                    operation: op,
                    detail,
                },
            )];
            if let Ok(status) = env.adapters.status(state).await {
                out.extend(reported_signals(env, state, &format!("{prefix}.s"), status).await);
            }
            Ok(out)
        }
        Err(e) if e.is_retryable() => Err(Done::RetryLater(e.to_string())),
        Err(e @ (AdapterError::Unauthorized { .. } | AdapterError::Config(_))) => {
            Err(Done::RetryLater(e.to_string()))
        }
        Err(e) => {
            let kind = e
                .signal(refund_id.as_deref())
                .unwrap_or_else(|| failed(op, &e, refund_id.as_deref()));
            Ok(vec![signal(
                state,
                prefix,
                None,
                "call:refused".into(),
                kind,
            )])
        }
    }
}

/// Whether the order still waits for this work (redeliveries after success are skipped).
fn still_pending(s: &OrderState, event: &Event) -> bool {
    match event {
        Event::PaymentRequested { .. } => {
            s.status == Status::Pending && s.provider_ref.is_none() && s.customer_action.is_none()
        }
        Event::CaptureRequested { capture_id, .. } => s
            .capture_pending
            .as_ref()
            .is_some_and(|(id, _)| id == capture_id),
        Event::CancelRequested { .. } => s.cancel_pending,
        Event::RefundRequested { refund_id, .. } => s.refunds_pending.contains_key(refund_id),
        // Pending until the provider credits the transfer (or refuses the confirmation).
        Event::TransferConfirmationSubmitted { .. } => s.status == Status::Pending,
        _ => false,
    }
}

fn operation(event: &Event) -> (Operation, Option<String>) {
    match event {
        Event::CaptureRequested { .. } => (Operation::Capture, None),
        Event::CancelRequested { .. } => (Operation::Cancel, None),
        Event::RefundRequested { refund_id, .. } => (Operation::Refund, Some(refund_id.clone())),
        _ => (Operation::Payment, None),
    }
}

async fn call(
    adapters: &Adapters,
    state: &OrderState,
    event: &Event,
) -> Result<Reported, AdapterError> {
    match event {
        Event::PaymentRequested { initiation } => adapters.start_payment(state, initiation).await,
        Event::CaptureRequested { capture_id, amount } => {
            adapters.capture(state, capture_id, *amount).await
        }
        Event::CancelRequested { .. } => adapters.cancel(state).await,
        Event::RefundRequested { refund_id, amount } => {
            adapters.refund(state, refund_id, *amount).await
        }
        other => Err(AdapterError::InvalidInput {
            provider: state.provider,
            op: paystate_adapters::error::Op::Status,
            detail: format!("{} is not provider work", other.name()),
        }),
    }
}

/// The Paykassma activation for a transfer confirmation: the screenshot from the attachment
/// store, the payer label the payment was started with (from the order's log).
async fn activation(
    env: &Env<'_>,
    state: &OrderState,
    confirmation_id: &str,
    reference: &str,
    attachment: &paystate_events::command::Attachment,
) -> Result<paystate_adapters::paykassma::transformers::Activation, Done> {
    let bytes = match paystate_service::attachments::fetch(env.attachments, attachment).await {
        Ok(b) => b,
        // "Missing" is not "timed out": only the latter is worth another try.
        Err(e) if e.is_transient() => return Err(Done::RetryLater(e.to_string())),
        Err(e) => return Err(Done::Permanent(e.to_string())),
    };
    let commits = env
        .journal
        .read_order(&state.order_id)
        .await
        .map_err(|e| Done::RetryLater(e.to_string()))?;
    let initiation = commits
        .iter()
        .flat_map(|c| c.commit.events.iter())
        .find_map(|e| match e {
            Event::PaymentRequested { initiation } => Some(initiation.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let label = initiation
        .params
        .get("label")
        .cloned()
        .or(initiation.customer_id)
        .unwrap_or_else(|| state.order_id.to_string());
    Ok(paystate_adapters::paykassma::transformers::Activation {
        activation_id: confirmation_id.to_string(),
        key1: reference.to_string(),
        label,
        screenshot: paystate_adapters::paykassma::transformers::Screenshot {
            file_name: attachment.file_name.clone(),
            content_type: attachment.content_type.clone(),
            bytes: bytes.into(),
        },
    })
}

/// A refusal that carries no provider signal of its own (unsupported, invalid input, not
/// found) still ends the waiting operation as failed, so the order does not hang.
fn failed(operation: Operation, e: &AdapterError, refund_id: Option<&str>) -> SignalKind {
    let code = match e {
        AdapterError::Unsupported { .. } => "unsupported",
        AdapterError::InvalidInput { .. } => "invalid_input",
        AdapterError::NotFound { .. } => "not_found",
        _ => "provider_error",
    };
    SignalKind::Failed {
        operation,
        code: code.into(),
        message: e.to_string(),
        refund_id: refund_id.map(str::to_string),
    }
}

async fn reported_signals(
    env: &Env<'_>,
    state: &OrderState,
    prefix: &str,
    reported: Reported,
) -> Vec<CommandEnvelope> {
    if let Some(r) = &reported.provider_ref {
        if let Err(e) = env.refs.remember(state.provider, r, &state.order_id).await {
            tracing::warn!(order = %state.order_id, error = %e, "could not index the provider reference");
        }
    }
    let evidence = format!("call:{}", reported.call_ref);
    reported
        .signals
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            signal(
                state,
                &format!("{prefix}.{i}"),
                reported.provider_ref.clone(),
                evidence.clone(),
                kind,
            )
        })
        .collect()
}

fn signal(
    state: &OrderState,
    prefix: &str,
    provider_ref: Option<String>,
    evidence_ref: String,
    kind: SignalKind,
) -> CommandEnvelope {
    signal_command(
        &state.order_id,
        prefix,
        state.provider,
        provider_ref,
        evidence_ref,
        chrono::Utc::now(),
        kind,
    )
}
