//! Money: an exact decimal amount in an ISO 4217 currency.
//!
//! Amounts are `rust_decimal::Decimal` in the domain and integer minor units in storage.
//! Conversion to minor units refuses amounts with more decimals than the currency has,
//! so a value is never silently rounded on its way into the ledger.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Currencies relance knows the minor units of. Codes not listed here are rejected rather
/// than guessed, because a wrong exponent would scale every stored amount.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("DZD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("ZAR", 2),
];

impl Currency {
    /// The euro, the default currency of a French ledger.
    pub const EUR: Currency = Currency {
        code: *b"EUR",
        exponent: 2,
    };

    /// Looks up a currency by its ISO 4217 code (case-insensitive).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] when the code is not a known ISO 4217 currency.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let code_t = code.trim();
        // Called for every row read: compare without allocating.
        CURRENCIES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(code_t))
            .map(|(c, e)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *e,
                }
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.trim().to_string()))
    }

    pub fn code(&self) -> &str {
        // Codes come from the table above, which is ASCII.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of digits after the decimal point (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }

    /// Converts an amount to integer minor units.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when the amount has more decimals than the currency
    /// allows, [`MoneyError::Overflow`] when it does not fit in 64 bits.
    pub fn to_minor(&self, amount: Decimal) -> Result<i64, MoneyError> {
        let scaled = amount
            .checked_mul(Decimal::from(10i64.pow(self.exponent())))
            .ok_or(MoneyError::Overflow)?;
        if scaled.fract() != Decimal::ZERO {
            return Err(MoneyError::TooPrecise {
                amount,
                currency: *self,
            });
        }
        i64::try_from(scaled.trunc()).map_err(|_| MoneyError::Overflow)
    }

    /// Converts integer minor units back to a decimal amount.
    pub fn from_minor(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: currency.from_minor(minor),
            currency,
        }
    }

    pub fn zero(currency: Currency) -> Money {
        Money {
            amount: Decimal::ZERO,
            currency,
        }
    }

    /// # Errors
    /// See [`Currency::to_minor`].
    pub fn to_minor(&self) -> Result<i64, MoneyError> {
        self.currency.to_minor(self.amount)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut a = self.amount;
        a.rescale(self.currency.exponent());
        write!(f, "{} {}", a, self.currency)
    }
}

/// Parses an amount as written in accounting exports: decimal point or decimal comma,
/// optional thousands separators (space, no-break space, apostrophe, or the other mark).
///
/// `1234.56`, `1234,56`, `1 234,56`, `1,234.56` and `1.234,56` all give 1234.56.
/// A lone comma is a decimal comma (`12,5` is 12.5), as in French exports.
///
/// # Errors
/// [`MoneyError::InvalidAmount`] for anything that is not a plain decimal number.
pub fn parse_amount(text: &str) -> Result<Decimal, MoneyError> {
    let invalid = || MoneyError::InvalidAmount(text.to_string());
    let mut cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\''))
        .collect();
    if cleaned.is_empty() {
        return Err(invalid());
    }
    let last_comma = cleaned.rfind(',');
    let last_dot = cleaned.rfind('.');
    cleaned = match (last_comma, last_dot) {
        (Some(c), Some(d)) if c > d => cleaned.replace('.', "").replace(',', "."),
        (Some(_), Some(_)) => cleaned.replace(',', ""),
        (Some(_), None) => {
            if cleaned.matches(',').count() > 1 {
                return Err(invalid());
            }
            cleaned.replace(',', ".")
        }
        (None, Some(_)) if cleaned.matches('.').count() > 1 => return Err(invalid()),
        _ => cleaned,
    };
    let body = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    if body.is_empty()
        || body.starts_with('.')
        || body.ends_with('.')
        || !body.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return Err(invalid());
    }
    Decimal::from_str(&cleaned).map_err(|_| invalid())
}

/// The currency codes relance knows, for error messages.
fn known_currencies() -> String {
    CURRENCIES
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency '{0}' (expected an ISO 4217 code: {known})", known = known_currencies())]
    UnknownCurrency(String),
    #[error("invalid amount '{0}' (expected a number such as 1234.56 or 1 234,56)")]
    InvalidAmount(String),
    #[error("amount {amount} has more decimals than {currency} allows ({})", currency.exponent())]
    TooPrecise { amount: Decimal, currency: Currency },
    #[error("amount out of range")]
    Overflow,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_in_every_accounting_notation_parse_to_the_same_value() {
        for text in [
            "1234.56",
            "1234,56",
            "1 234,56",
            "1,234.56",
            "1.234,56",
            "1\u{a0}234,56",
            " 1234.56 ",
        ] {
            assert_eq!(parse_amount(text).unwrap(), d("1234.56"), "{text}");
        }
        assert_eq!(parse_amount("-12,5").unwrap(), d("-12.5"));
        assert_eq!(parse_amount("0").unwrap(), d("0"));
    }

    #[test]
    fn malformed_amounts_are_rejected() {
        for text in [
            "", "abc", "12,34,56", "1.2.3", "12e3", "1,", ".5", "--1", "€12",
        ] {
            assert!(parse_amount(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn minor_units_follow_the_currency_exponent() {
        let eur = Currency::parse("eur").unwrap();
        assert_eq!(eur.to_minor(d("1234.5")).unwrap(), 123450);
        assert_eq!(eur.from_minor(123450), d("1234.50"));
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(jpy.to_minor(d("1500")).unwrap(), 1500);
        assert!(matches!(
            jpy.to_minor(d("1500.5")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            eur.to_minor(d("0.001")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert_eq!(
            Currency::parse("KWD")
                .unwrap()
                .to_minor(d("1.234"))
                .unwrap(),
            1234
        );
    }

    #[test]
    fn unknown_currencies_are_rejected() {
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn money_displays_with_the_currency_scale() {
        assert_eq!(
            Money::from_minor(4000, Currency::EUR).to_string(),
            "40.00 EUR"
        );
    }
}
