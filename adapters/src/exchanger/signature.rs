//! Exchanger IPN signature:
//! `sha256(orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp:ipnSecret)` over
//! the values exactly as received (decimal strings are not re-formatted). We produce
//! lowercase hex and compare ignoring case; the name of the field that carries it is not
//! public (see `exchanger::transformers::IPN_SIGNATURE_FIELDS`).

use crate::crypto::{ct_eq_hex, sha256};

pub use crate::crypto::SignatureError;

/// The signed fields of one IPN, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpnFields<'a> {
    pub order_id: &'a str,
    pub new_status: &'a str,
    pub in_amount: &'a str,
    pub out_amount: &'a str,
    pub xml_from: &'a str,
    pub xml_to: &'a str,
    pub timestamp: &'a str,
}

impl IpnFields<'_> {
    /// Lowercase hex SHA-256 of the colon-joined fields and the secret.
    pub fn sign(&self, secret: &str) -> String {
        hex::encode(self.digest(secret))
    }

    /// True when `received` matches (constant time, hex case ignored).
    pub fn verify(&self, secret: &str, received: &str) -> bool {
        ct_eq_hex(received, &self.digest(secret))
    }

    fn digest(&self, secret: &str) -> [u8; 32] {
        let message = [
            self.order_id,
            self.new_status,
            self.in_amount,
            self.out_amount,
            self.xml_from,
            self.xml_to,
            self.timestamp,
            secret,
        ]
        .join(":");
        sha256(message.as_bytes())
    }
}

/// The IPN signature, arguments in the documented field order.
#[allow(clippy::too_many_arguments)] // Why: mirrors the documented message, field by field.
pub fn ipn_signature(
    order_id: &str,
    new_status: &str,
    in_amount: &str,
    out_amount: &str,
    xml_from: &str,
    xml_to: &str,
    timestamp: &str,
    secret: &str,
) -> String {
    IpnFields {
        order_id,
        new_status,
        in_amount,
        out_amount,
        xml_from,
        xml_to,
        timestamp,
    }
    .sign(secret)
}

/// True when `received` is the IPN signature of these fields (hex case ignored).
#[allow(clippy::too_many_arguments)] // Why: mirrors the documented message, field by field.
pub fn verify_ipn(
    order_id: &str,
    new_status: &str,
    in_amount: &str,
    out_amount: &str,
    xml_from: &str,
    xml_to: &str,
    timestamp: &str,
    secret: &str,
    received: &str,
) -> bool {
    IpnFields {
        order_id,
        new_status,
        in_amount,
        out_amount,
        xml_from,
        xml_to,
        timestamp,
    }
    .verify(secret, received)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "73ace053c47b49541f8597ef95c5fdad58e5aa0669be887b8c9dee10dd89fe2c";
    const ID: &str = "65a1f0c2e4b0a1b2c3d4e5f6";

    #[test]
    fn providers_md_vector() {
        let sig = ipn_signature(
            ID,
            "done",
            "100",
            "0.00153",
            "CARDUAH",
            "BTC",
            "1717171717",
            "ipn-secret-1",
        );
        assert_eq!(sig, SIG);
        assert!(verify_ipn(
            ID,
            "done",
            "100",
            "0.00153",
            "CARDUAH",
            "BTC",
            "1717171717",
            "ipn-secret-1",
            SIG
        ));
        assert!(verify_ipn(
            ID,
            "done",
            "100",
            "0.00153",
            "CARDUAH",
            "BTC",
            "1717171717",
            "ipn-secret-1",
            &SIG.to_uppercase()
        ));
    }

    #[test]
    fn tampering_fails() {
        let ok = |f: IpnFields<'_>| f.verify("ipn-secret-1", SIG);
        let base = IpnFields {
            order_id: ID,
            new_status: "done",
            in_amount: "100",
            out_amount: "0.00153",
            xml_from: "CARDUAH",
            xml_to: "BTC",
            timestamp: "1717171717",
        };
        assert!(ok(base));
        assert!(!ok(IpnFields {
            new_status: "returned",
            ..base
        }));
        assert!(
            !ok(IpnFields {
                in_amount: "100.00",
                ..base
            }),
            "amounts are signed as received"
        );
        assert!(!ok(IpnFields {
            timestamp: "1717171718",
            ..base
        }));
        assert!(!ok(IpnFields {
            order_id: "65a1f0c2e4b0a1b2c3d4e5f7",
            ..base
        }));
        assert!(!base.verify("ipn-secret-2", SIG));
        assert!(!base.verify("ipn-secret-1", ""));
    }
}
