//! One unit of provider work: an event that asks for a provider call.

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
    /// The order already moved past this work (a redelivery after the work was done).
    AlreadyResolved,
    /// Nothing reached the provider, or configuration must be fixed: try again later.
    RetryLater(String),
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
/// commit) for `order`.
pub async fn perform(
    env: &Env<'_>,
    order: &OrderId,
    seq: u64,
    index: usize,
    event: &Event,
) -> Done {
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
    let (op, refund_id) = operation(event);
    let result = match event {
        Event::TransferConfirmationSubmitted {
            confirmation_id,
            reference,
            attachment,
        } => match activation(env, &state, confirmation_id, reference, attachment).await {
            Ok(a) => env.adapters.paykassma_activate(&state, &a).await,
            Err(done) => return done,
        },
        _ => call(env.adapters, &state, event).await,
    };
    let prefix = format!("w.{seq}.{index}");
    let signals = match result {
        Ok(reported) => reported_signals(env, &state, &prefix, reported).await,
        Err(AdapterError::OutcomeUnknown { detail, .. }) => {
            // Record that we do not know, then ask the provider instead of resending.
            let mut out = vec![signal(
                &state,
                &prefix,
                None,
                "call:unknown".into(),
                SignalKind::OutcomeUnknown {
                    operation: op,
                    detail,
                },
            )];
            if let Ok(status) = env.adapters.status(&state).await {
                out.extend(reported_signals(env, &state, &format!("{prefix}.s"), status).await);
            }
            out
        }
        Err(e) if e.is_retryable() => return Done::RetryLater(e.to_string()),
        Err(e @ (AdapterError::Unauthorized { .. } | AdapterError::Config(_))) => {
            return Done::RetryLater(e.to_string())
        }
        Err(e) => {
            let kind = e
                .signal(refund_id.as_deref())
                .unwrap_or_else(|| failed(op, &e, refund_id.as_deref()));
            vec![signal(&state, &prefix, None, "call:refused".into(), kind)]
        }
    };
    let count = signals.len();
    match publish_all(env.client, &signals).await {
        Ok(()) => Done::Reported { signals: count },
        Err(e) => Done::RetryLater(format!("could not submit signals: {e}")),
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
