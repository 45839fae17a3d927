//! Fault injection: rules set at run time, each consumed a bounded number of times.
//!
//! Request faults act around a provider operation: `Delay`, `ServerError` and `EchoRequest`
//! before the provider acts (a 5xx or an echoed validation error means it did not act), `DropResponse` and `WithholdResponse` after
//! it acted. Callback faults act on the provider's outgoing callbacks.

use paystate_events::Provider;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// At most this many rules are kept per sandbox; adding more evicts the oldest.
pub const FAULT_RULES_MAX: usize = 256;
/// A rule applies at most this many times.
pub const FAULT_TIMES_MAX: u32 = 10_000;
/// Delays and withheld responses last at most this long (real milliseconds).
pub const FAULT_DELAY_MS_MAX: u64 = 120_000;

/// Provider operations a request fault can target (see README for each provider's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Plural `POST /api/auth/v1/token`.
    Token,
    /// Create an order, payment link, checkout URL/token, deposit request or exchange order.
    Create,
    /// Plural `POST /orders/{id}/payments`.
    CreatePayment,
    /// Read an order or transaction (status polling).
    Status,
    Capture,
    Cancel,
    Refund,
    /// Flitt `/api/reverse/order_id`.
    Reverse,
    /// Paykassma `POST /api/v1/possible-transaction`.
    Activate,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `ms` later (before acting).
    Delay { ms: u64 },
    /// Answer with this 5xx status without acting.
    ServerError { status: u16 },
    /// Act, then close the connection without an answer.
    DropResponse,
    /// Act, then hold the answer for `ms` (longer than the client's timeout).
    WithholdResponse { ms: u64 },
    /// Do not act; answer with the provider's validation error quoting the whole request
    /// back (method, path and query, headers, body: credentials included). See `echo`.
    EchoRequest,
    /// Send the next callback twice.
    DuplicateCallback,
    /// Hold the next callback back and send it after the one that follows it.
    ReorderCallbacks,
    /// Spoil the signature of the next callback attempt.
    BadSignatureCallback,
    /// Never send the next callback.
    DropCallback,
    /// The receiver's answer to the next callback attempt is lost on the way back (the
    /// receiver did process it), so the provider takes it as unanswered and resends: what a
    /// receiver crash between acting and answering looks like from the provider's side.
    LoseCallbackAck,
}

impl FaultKind {
    fn is_request_fault(self) -> bool {
        matches!(
            self,
            FaultKind::Delay { .. }
                | FaultKind::ServerError { .. }
                | FaultKind::DropResponse
                | FaultKind::WithholdResponse { .. }
                | FaultKind::EchoRequest
        )
    }
}

/// One fault rule of one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    pub kind: FaultKind,
    /// Only this operation (request faults); `None` = any.
    #[serde(default)]
    pub op: Option<Op>,
    /// Only this order key (the provider's order id); `None` = any.
    #[serde(default)]
    pub order: Option<String>,
    /// How many times the rule applies before it is spent.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// A rule that applies once to any operation and order.
    pub fn once(kind: FaultKind) -> FaultRule {
        FaultRule {
            kind,
            op: None,
            order: None,
            times: 1,
        }
    }
    pub fn on_op(mut self, op: Op) -> FaultRule {
        self.op = Some(op);
        self
    }
    pub fn on_order(mut self, order: impl Into<String>) -> FaultRule {
        self.order = Some(order.into());
        self
    }
    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = times;
        self
    }
}

/// The request faults that apply to one operation, taken (consumed) together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestFaults {
    pub delay_ms: u64,
    pub server_error: Option<u16>,
    pub drop_response: bool,
    pub withhold_ms: Option<u64>,
    pub echo_request: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FaultStore {
    rules: Mutex<Vec<(Provider, FaultRule)>>,
}

impl FaultStore {
    pub(crate) fn add(&self, provider: Provider, mut rule: FaultRule) {
        rule.times = rule.times.clamp(1, FAULT_TIMES_MAX);
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if rules.len() >= FAULT_RULES_MAX {
            rules.remove(0);
        }
        rules.push((provider, rule));
    }

    pub(crate) fn clear(&self, provider: Provider) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, _)| *p != provider);
    }

    pub(crate) fn list(&self, provider: Provider) -> Vec<FaultRule> {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .iter()
            .filter(|(p, _)| *p == provider)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Consumes every request fault that matches `op` on `order`.
    pub(crate) fn take_request(
        &self,
        provider: Provider,
        op: Op,
        order: Option<&str>,
    ) -> RequestFaults {
        let mut out = RequestFaults::default();
        for kind in self.take_matching(
            provider,
            Some(op),
            order,
            false,
            FaultKind::is_request_fault,
        ) {
            match kind {
                FaultKind::Delay { ms } => out.delay_ms = out.delay_ms.saturating_add(ms),
                FaultKind::ServerError { status } => out.server_error = Some(status),
                FaultKind::DropResponse => out.drop_response = true,
                FaultKind::WithholdResponse { ms } => out.withhold_ms = Some(ms),
                FaultKind::EchoRequest => out.echo_request = true,
                _ => {}
            }
        }
        out.delay_ms = out.delay_ms.min(FAULT_DELAY_MS_MAX);
        out.withhold_ms = out.withhold_ms.map(|ms| ms.min(FAULT_DELAY_MS_MAX));
        out
    }

    /// Consumes one application of a callback fault of exactly `kind` for `order`.
    pub(crate) fn take_callback(&self, provider: Provider, order: &str, kind: FaultKind) -> bool {
        !self
            .take_matching(provider, None, Some(order), true, |k| k == kind)
            .is_empty()
    }

    fn take_matching(
        &self,
        provider: Provider,
        op: Option<Op>,
        order: Option<&str>,
        first_only: bool,
        wanted: impl Fn(FaultKind) -> bool,
    ) -> Vec<FaultKind> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = Vec::new();
        for (p, rule) in rules.iter_mut() {
            let op_ok = rule.op.is_none() || op.is_none() || rule.op == op;
            let order_ok = rule.order.is_none() || rule.order.as_deref() == order;
            if *p == provider && wanted(rule.kind) && op_ok && order_ok && rule.times > 0 {
                rule.times -= 1;
                taken.push(rule.kind);
                if first_only {
                    break;
                }
            }
        }
        rules.retain(|(_, r)| r.times > 0);
        taken
    }
}
