//! Exact decimal arithmetic for exchange amounts (no floats): parse, multiply, print.

/// At most this many significant digits on either side of a multiplication.
const DIGITS_MAX: usize = 18;

/// A non-negative decimal `digits × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    digits: u128,
    scale: u32,
}

impl Decimal {
    /// Parses `123`, `0.5`, `12.340`; refuses signs, exponents and more than 18 digits.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let all = format!("{int}{frac}");
        if int.is_empty() || all.len() > DIGITS_MAX || !all.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Decimal {
            digits: all.parse().ok()?,
            scale: frac.len() as u32,
        })
    }

    pub(crate) fn is_zero(self) -> bool {
        self.digits == 0
    }

    pub(crate) fn mul(self, other: Decimal) -> Decimal {
        Decimal {
            digits: self.digits * other.digits,
            scale: self.scale + other.scale,
        }
    }

    /// Plain notation without trailing fractional zeros (`0.00153`, `100`).
    pub(crate) fn to_text(self) -> String {
        let s = format!("{:0>width$}", self.digits, width = self.scale as usize + 1);
        let (int, frac) = s.split_at(s.len() - self.scale as usize);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn multiplies_exactly() {
        let out = |a: &str, b: &str| {
            Decimal::parse(a)
                .unwrap()
                .mul(Decimal::parse(b).unwrap())
                .to_text()
        };
        assert_eq!(out("100", "0.0000153"), "0.00153");
        assert_eq!(out("2.50", "4"), "10");
        assert_eq!(out("0.1", "0.1"), "0.01");
        assert!(
            Decimal::parse("-1").is_none()
                && Decimal::parse("1e5").is_none()
                && Decimal::parse(".5").is_none()
        );
    }
}
