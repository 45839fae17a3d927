//! What each provider supports, as data. One table, read by the engine's rules (which
//! commands an order's provider can serve) and by the adapters (which operations to refuse
//! before any call, the README's table). Adding a provider adds one row here.

use crate::provider::Provider;
use std::fmt;

/// Something a provider may support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Start a payment (every provider).
    StartPayment,
    /// Authorize now, capture later.
    ManualCapture,
    /// Capture less than what was authorized.
    PartialCapture,
    /// Void an authorized (or not yet paid) payment.
    Cancel,
    Refund,
    /// Refund less than what was captured.
    PartialRefund,
    /// Ask the provider where a payment stands.
    StatusQuery,
    /// The provider calls us back.
    Callbacks,
    /// The customer pays by transfer and confirms it (`ConfirmTransfer`; sent to the provider
    /// as an activation).
    TransferConfirmation,
    /// The payment link can be cancelled, or its expiry moved, on its own.
    PaymentLinkUpdates,
}

impl Capability {
    pub const ALL: [Capability; 10] = [
        Capability::StartPayment,
        Capability::ManualCapture,
        Capability::PartialCapture,
        Capability::Cancel,
        Capability::Refund,
        Capability::PartialRefund,
        Capability::StatusQuery,
        Capability::Callbacks,
        Capability::TransferConfirmation,
        Capability::PaymentLinkUpdates,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::StartPayment => "start_payment",
            Capability::ManualCapture => "manual_capture",
            Capability::PartialCapture => "partial_capture",
            Capability::Cancel => "cancel",
            Capability::Refund => "refund",
            Capability::PartialRefund => "partial_refund",
            Capability::StatusQuery => "status_query",
            Capability::Callbacks => "callbacks",
            Capability::TransferConfirmation => "transfer_confirmation",
            Capability::PaymentLinkUpdates => "payment_link_updates",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use Capability::*;

/// The full card-payment set: authorize, capture (partly), cancel, refund (partly), query.
const CARD: [Capability; 8] = [
    StartPayment,
    ManualCapture,
    PartialCapture,
    Cancel,
    Refund,
    PartialRefund,
    StatusQuery,
    Callbacks,
];

/// Provider × what it supports, in [`Provider::ALL`] order.
pub const CAPABILITIES: [(Provider, &[Capability]); 5] = [
    (
        Provider::Plexy,
        &[
            StartPayment,
            ManualCapture,
            PartialCapture,
            Cancel,
            Refund,
            PartialRefund,
            StatusQuery,
            Callbacks,
            PaymentLinkUpdates,
        ],
    ),
    (
        Provider::Paykassma,
        &[StartPayment, Callbacks, TransferConfirmation],
    ),
    (Provider::Plural, &CARD),
    (Provider::Exchanger, &[StartPayment, StatusQuery, Callbacks]),
    (Provider::Flitt, &CARD),
];

/// What `provider` supports (empty for a provider without a row).
pub fn capabilities(provider: Provider) -> &'static [Capability] {
    CAPABILITIES
        .iter()
        .find(|(p, _)| *p == provider)
        .map_or(&[], |(_, caps)| *caps)
}

/// Whether `provider` supports `capability`.
pub fn supports(provider: Provider, capability: Capability) -> bool {
    capabilities(provider).contains(&capability)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_provider_in_order() {
        let rows: Vec<Provider> = CAPABILITIES.iter().map(|(p, _)| *p).collect();
        assert_eq!(rows, Provider::ALL.to_vec());
        for p in Provider::ALL {
            assert!(supports(p, StartPayment) && supports(p, Callbacks), "{p}");
        }
    }

    #[test]
    fn partial_implies_the_whole() {
        for p in Provider::ALL {
            assert!(
                !supports(p, PartialCapture) || supports(p, ManualCapture),
                "{p}"
            );
            assert!(!supports(p, PartialRefund) || supports(p, Refund), "{p}");
        }
    }

    #[test]
    fn what_the_providers_support() {
        assert!(supports(Provider::Paykassma, TransferConfirmation));
        assert!(!supports(Provider::Paykassma, Refund));
        assert!(supports(Provider::Exchanger, StatusQuery));
        assert!(!supports(Provider::Exchanger, Cancel));
        assert!(supports(Provider::Plexy, PaymentLinkUpdates));
        assert!(!supports(Provider::Flitt, PaymentLinkUpdates));
    }
}
