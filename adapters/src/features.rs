//! What each provider supports, as data (for the README and for callers that want to refuse
//! early). The facade returns `AdapterError::Unsupported` for every `false` here.

use paystate_events::Provider;

/// Operations a provider may support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    StartPayment,
    ManualCapture,
    PartialCapture,
    Cancel,
    Refund,
    PartialRefund,
    StatusQuery,
    Callbacks,
}

impl Feature {
    pub const ALL: [Feature; 8] = [
        Feature::StartPayment,
        Feature::ManualCapture,
        Feature::PartialCapture,
        Feature::Cancel,
        Feature::Refund,
        Feature::PartialRefund,
        Feature::StatusQuery,
        Feature::Callbacks,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::StartPayment => "start_payment",
            Feature::ManualCapture => "manual_capture",
            Feature::PartialCapture => "partial_capture",
            Feature::Cancel => "cancel",
            Feature::Refund => "refund",
            Feature::PartialRefund => "partial_refund",
            Feature::StatusQuery => "status_query",
            Feature::Callbacks => "callbacks",
        }
    }
}

/// Provider × feature, in [`Feature::ALL`] order.
pub const FEATURES: [(Provider, [bool; 8]); 5] = [
    //                      start  manual partial cancel refund p.ref status callbacks
    (
        Provider::Plexy,
        [true, true, true, true, true, true, true, true],
    ),
    (
        Provider::Paykassma,
        [true, false, false, false, false, false, false, true],
    ),
    (
        Provider::Plural,
        [true, true, true, true, true, true, true, true],
    ),
    (
        Provider::Exchanger,
        [true, false, false, false, false, false, true, true],
    ),
    (
        Provider::Flitt,
        [true, true, true, true, true, true, true, true],
    ),
];

/// Whether `provider` supports `feature`.
pub fn supports(provider: Provider, feature: Feature) -> bool {
    let Some((_, row)) = FEATURES.iter().find(|(p, _)| *p == provider) else {
        return false;
    };
    let Some(i) = Feature::ALL.iter().position(|f| *f == feature) else {
        return false;
    };
    row[i]
}

/// The table as Markdown, for the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| provider |");
    for f in Feature::ALL {
        out.push_str(&format!(" {} |", f.as_str()));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Feature::ALL.len()));
    for (p, row) in FEATURES {
        out.push_str(&format!("\n| {p} |"));
        for yes in row {
            out.push_str(if yes { " yes |" } else { " no |" });
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_a_row() {
        for p in Provider::ALL {
            assert!(FEATURES.iter().any(|(q, _)| *q == p), "{p}");
            assert!(supports(p, Feature::StartPayment) && supports(p, Feature::Callbacks));
        }
        assert!(!supports(Provider::Paykassma, Feature::Refund));
        assert!(supports(Provider::Exchanger, Feature::StatusQuery));
        assert!(markdown_table().contains("| paykassma | yes | no |"));
    }
}
