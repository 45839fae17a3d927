//! Money: integer minor units with an ISO 4217 currency. No floats anywhere.
//!
//! Providers that send decimals (strings or numbers) are converted here, exactly, with the
//! currency's exponent: `"12.50" USD` is 1250 minor units; `"12.505" USD` is an error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest amount accepted in minor units (10^15), defined in [`crate::limits`].
pub use crate::limits::AMOUNT_MINOR_MAX;

/// Why a money value was refused. Messages start with the stable rejection code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("invalid_amount: amount must be a positive integer number of minor units")]
    NotPositive,
    #[error("amount_overflow: amount exceeds the maximum of {AMOUNT_MINOR_MAX} minor units")]
    Overflow,
    #[error("unknown_currency: {0:?} is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("invalid_amount: {0:?} is not a decimal amount")]
    BadDecimal(String),
    #[error(
        "invalid_amount: {value:?} has more decimal places than {currency} allows ({exponent})"
    )]
    TooPrecise {
        value: String,
        currency: String,
        exponent: u16,
    },
}

/// An ISO 4217 currency with a defined minor-unit exponent (funds codes and metals such as
/// XAU, which have none, are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 alphabetic code of a currency with minor units"})
    }
}

/// The place of an upper-case three-letter code among all 26^3 of them.
fn code_slot(code: &str) -> Option<usize> {
    match code.as_bytes() {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => {
            let n = |x: u8| usize::from(x - b'A');
            Some((n(a) * 26 + n(b)) * 26 + n(c))
        }
        _ => None,
    }
}

/// Every currency iso_currency knows, at its code's [`code_slot`]. Why not `from_code` alone:
/// it compares the code with each of its ~180 codes in turn (1 % of an audit's samples, and
/// in every amount a command or commit carries); this is one index. Filled from the numeric
/// codes (each currency has one); a test checks every three-letter code against `from_code`.
static BY_CODE: std::sync::LazyLock<Vec<Option<iso_currency::Currency>>> =
    std::sync::LazyLock::new(|| {
        let mut table = vec![None; 26 * 26 * 26];
        for numeric in 0..=999 {
            let Some(c) = iso_currency::Currency::from_numeric(numeric) else {
                continue;
            };
            if let Some(slot) = code_slot(c.code()) {
                table[slot] = Some(c);
            }
        }
        table
    });

/// [`iso_currency::Currency::from_code`]: from [`BY_CODE`] for an upper-case three-letter code
/// (an unknown one is not compared with every code again), from `from_code` for anything else.
fn currency_of(code: &str) -> Option<iso_currency::Currency> {
    match code_slot(code) {
        Some(slot) => BY_CODE.get(slot).copied().flatten(),
        None => iso_currency::Currency::from_code(code),
    }
}

impl Currency {
    /// Parses an upper-case ISO 4217 alphabetic code.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        match currency_of(code) {
            Some(c) if c.exponent().is_some() => Ok(Currency(c)),
            _ => Err(MoneyError::UnknownCurrency(code.to_string())),
        }
    }
    pub fn code(self) -> &'static str {
        self.0.code()
    }
    /// Number of decimal places of the minor unit (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u16 {
        // Why: `parse` only admits currencies whose exponent is defined.
        self.0.exponent().unwrap_or(0)
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Currency::parse(&s).map_err(|e| e.to_string())
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_string()
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A non-negative count of minor units: totals such as captured or refunded (may be zero).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct MinorUnits(pub u64);

impl MinorUnits {
    pub const ZERO: MinorUnits = MinorUnits(0);
    pub fn saturating_sub(self, other: MinorUnits) -> MinorUnits {
        MinorUnits(self.0.saturating_sub(other.0))
    }
    /// Sum of two totals; amounts are bounded by [`AMOUNT_MINOR_MAX`] so this cannot wrap in
    /// practice, and saturates rather than wraps if it ever would.
    pub fn plus(self, other: MinorUnits) -> MinorUnits {
        MinorUnits(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for MinorUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A positive amount of minor units, at most [`AMOUNT_MINOR_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Number", into = "u64")]
pub struct Amount(u64);

impl JsonSchema for Amount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": AMOUNT_MINOR_MAX,
            "description": "positive integer number of minor units"})
    }
}

impl Amount {
    pub fn new(minor: u64) -> Result<Amount, MoneyError> {
        match minor {
            0 => Err(MoneyError::NotPositive),
            m if m > AMOUNT_MINOR_MAX => Err(MoneyError::Overflow),
            m => Ok(Amount(m)),
        }
    }
    pub fn get(self) -> u64 {
        self.0
    }
    pub fn units(self) -> MinorUnits {
        MinorUnits(self.0)
    }
}

impl TryFrom<serde_json::Number> for Amount {
    type Error = String;
    fn try_from(n: serde_json::Number) -> Result<Self, String> {
        if let Some(u) = n.as_u64() {
            return Amount::new(u).map_err(|e| e.to_string());
        }
        if n.as_i64().is_some() {
            return Err(MoneyError::NotPositive.to_string());
        }
        // A fraction is never a count of minor units; a huge whole number (which JSON parsers
        // hand over as a float) is an overflow.
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f > AMOUNT_MINOR_MAX as f64 => {
                Err(MoneyError::Overflow.to_string())
            }
            _ => Err(MoneyError::NotPositive.to_string()),
        }
    }
}
impl From<Amount> for u64 {
    fn from(a: Amount) -> u64 {
        a.0
    }
}
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An amount in a currency, as it travels in commands, signals and events:
/// `{"minor_units": 1250, "currency": "USD"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    pub minor_units: Amount,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor_units: Amount, currency: Currency) -> Money {
        Money {
            minor_units,
            currency,
        }
    }

    /// Converts a provider's decimal string ("12.50", "100", "0.5") exactly into minor units.
    /// Refuses signs, exponents, more places than the currency has, zero and overflow.
    pub fn from_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let minor = decimal_to_minor(text, currency.exponent())?;
        Ok(Money::new(Amount::new(minor)?, currency))
    }

    /// The amount as a decimal string with exactly the currency's places ("12.50").
    pub fn to_decimal(&self) -> String {
        minor_to_decimal(self.minor_units.get(), self.currency.exponent())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

/// Exact decimal → minor units for a given exponent. Trailing zeros beyond the exponent are
/// accepted ("12.500" USD = 1250); significant digits beyond it are refused.
pub fn decimal_to_minor(text: &str, exponent: u16) -> Result<u64, MoneyError> {
    let bad = || MoneyError::BadDecimal(text.to_string());
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit())
        || (text.contains('.') && frac_part.is_empty())
    {
        return Err(bad());
    }
    let exp = exponent as usize;
    let significant = frac_part.trim_end_matches('0');
    if significant.len() > exp {
        return Err(MoneyError::TooPrecise {
            value: text.to_string(),
            currency: String::new(),
            exponent,
        });
    }
    let mut digits = String::with_capacity(int_part.len() + exp);
    digits.push_str(int_part);
    digits.push_str(significant);
    digits.extend(std::iter::repeat_n('0', exp - significant.len()));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() > 19 {
        return Err(MoneyError::Overflow);
    }
    digits.parse::<u64>().map_err(|_| MoneyError::Overflow)
}

/// Minor units → decimal string with exactly `exponent` places.
pub fn minor_to_decimal(minor: u64, exponent: u16) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(exponent as u32);
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_code_index_answers_as_from_code_for_every_three_letter_code() {
        let letters = b'A'..=b'Z';
        let mut known = 0;
        for a in letters.clone() {
            for b in letters.clone() {
                for c in letters.clone() {
                    let code = String::from_utf8(vec![a, b, c]).unwrap_or_default();
                    let indexed = code_slot(&code).and_then(|s| BY_CODE[s]);
                    assert_eq!(indexed, iso_currency::Currency::from_code(&code), "{code}");
                    known += usize::from(indexed.is_some());
                }
            }
        }
        assert!(known > 150, "only {known} currencies indexed");
        for odd in ["", "US", "usd", "USDX", "ÜSD", "U D", "US\u{0}"] {
            assert_eq!(code_slot(odd), None, "{odd:?}");
            assert_eq!(currency_of(odd), iso_currency::Currency::from_code(odd));
        }
    }

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn currencies_know_their_exponent() {
        assert_eq!(usd().exponent(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XXY").is_err());
    }

    #[test]
    fn decimals_convert_exactly() {
        assert_eq!(
            Money::from_decimal("12.50", usd())
                .unwrap()
                .minor_units
                .get(),
            1250
        );
        assert_eq!(
            Money::from_decimal("12.5", usd())
                .unwrap()
                .minor_units
                .get(),
            1250
        );
        assert_eq!(
            Money::from_decimal("100", usd()).unwrap().minor_units.get(),
            10000
        );
        assert_eq!(
            Money::from_decimal("0.01", usd())
                .unwrap()
                .minor_units
                .get(),
            1
        );
        assert_eq!(
            Money::from_decimal("12.500", usd())
                .unwrap()
                .minor_units
                .get(),
            1250
        );
        assert!(matches!(
            Money::from_decimal("12.505", usd()),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(Money::from_decimal("-1", usd()).is_err());
        assert!(Money::from_decimal("1e3", usd()).is_err());
        assert!(Money::from_decimal("1.", usd()).is_err());
        assert!(Money::from_decimal(".5", usd()).is_err());
        assert_eq!(
            Money::from_decimal("0.00", usd()),
            Err(MoneyError::NotPositive)
        );
        assert_eq!(
            Money::from_decimal("99999999999999999999", usd()),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_decimal("0.00153", Currency::parse("KWD").unwrap()).ok(),
            None
        );
    }

    #[test]
    fn amounts_refuse_zero_negative_float_and_overflow() {
        assert!(serde_json::from_str::<Amount>("1").is_ok());
        for bad in [
            "0",
            "-5",
            "1.5",
            "1e3",
            "18446744073709551616",
            "1000000000000001",
        ] {
            assert!(serde_json::from_str::<Amount>(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<Amount>("0").unwrap_err().to_string();
        assert!(e.starts_with("invalid_amount"), "{e}");
        let e = serde_json::from_str::<Amount>("1000000000000001")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("amount_overflow"), "{e}");
    }

    proptest! {
        #[test]
        fn decimal_round_trip(minor in 1u64..AMOUNT_MINOR_MAX, exp in 0u16..4) {
            let text = minor_to_decimal(minor, exp);
            prop_assert_eq!(decimal_to_minor(&text, exp).unwrap(), minor);
        }
    }
}
