//! Statutory late-payment interest and the fixed recovery indemnity.
//!
//! French law (Code de commerce L441-10) by default, configurable: a reference rate by
//! period (the ECB rate in force on 1 January for January–June and on 1 July for
//! July–December) plus a margin, as simple interest per day on the amount actually
//! outstanding each day, from the day after the due date to the date of computation
//! included. A partial payment reduces accrual from its date; interest already accrued
//! stays due. Days count on a 365-day basis. The sum is exact and rounded to the cent
//! once, at the end, per invoice.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::ids::{CountryCode, Locale};
use super::money::Currency;

/// Late-payment terms: the rate table, the margin and the fixed indemnity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatePayment {
    pub currency: Currency,
    pub fixed_indemnity: Decimal,
    pub margin_points: Decimal,
    /// (first day, reference rate in percent), sorted by date.
    pub reference_rates: Vec<(NaiveDate, Decimal)>,
    /// The reference rate's name on letters, by locale (default: the ECB rate).
    pub reference_label: BTreeMap<Locale, String>,
    /// The law the claim rests on, as cited on letters, by locale (default: the French
    /// Commercial Code).
    pub legal_basis: BTreeMap<Locale, String>,
}

/// Late-payment terms by jurisdiction: the default terms (French law unless configured
/// otherwise) and the terms of the customers of given countries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jurisdictions {
    pub default: LatePayment,
    pub by_country: BTreeMap<CountryCode, LatePayment>,
}

impl Jurisdictions {
    /// Terms that apply the same way to every customer.
    pub fn single(terms: LatePayment) -> Jurisdictions {
        Jurisdictions {
            default: terms,
            by_country: BTreeMap::new(),
        }
    }

    /// The terms for a customer established in `country`.
    pub fn for_country(&self, country: CountryCode) -> &LatePayment {
        self.by_country.get(&country).unwrap_or(&self.default)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterestError {
    #[error("no late-payment reference rate covers {0}: add it to late_payment.reference_rates")]
    NoRate(NaiveDate),
}

impl LatePayment {
    /// The law cited on letters in `locale`.
    pub fn legal_basis(&self, locale: Locale) -> &str {
        match self.legal_basis.get(&locale) {
            Some(text) => text,
            None => match locale {
                Locale::Fr => "articles L441-10 et D441-5 du Code de commerce",
                Locale::En => "French Commercial Code, articles L441-10 and D441-5",
            },
        }
    }

    /// The reference rate's name in `locale`, as printed on letters.
    pub fn reference_label(&self, locale: Locale) -> &str {
        match self.reference_label.get(&locale) {
            Some(label) => label,
            None => match locale {
                Locale::Fr => "taux de la BCE",
                Locale::En => "ECB rate",
            },
        }
    }

    /// The annual rate in percent on `date` (reference rate of the period + margin).
    pub fn rate_on(&self, date: NaiveDate) -> Option<Decimal> {
        self.reference_rates
            .iter()
            .rev()
            .find(|(from, _)| *from <= date)
            .map(|(_, r)| *r + self.margin_points)
    }

    /// Interest due on `as_of` for an invoice of `principal` (outstanding right after the
    /// due date, before any of the listed payments) reduced by `payments` (date, amount).
    ///
    /// # Errors
    /// [`InterestError::NoRate`] when a day of the period has no reference rate.
    pub fn interest(
        &self,
        principal: Decimal,
        due_date: NaiveDate,
        payments: &[(NaiveDate, Decimal)],
        as_of: NaiveDate,
        currency: Currency,
    ) -> Result<Decimal, InterestError> {
        let first = due_date + Duration::days(1);
        if as_of < first || principal <= Decimal::ZERO {
            return Ok(Decimal::ZERO);
        }
        // Day boundaries where the outstanding amount or the rate changes.
        let mut cuts: Vec<NaiveDate> = payments
            .iter()
            .map(|(d, _)| *d)
            .filter(|d| *d > first && *d <= as_of)
            .collect();
        cuts.extend(
            self.reference_rates
                .iter()
                .map(|(d, _)| *d)
                .filter(|d| *d > first && *d <= as_of),
        );
        cuts.push(first);
        cuts.sort();
        cuts.dedup();
        let end = as_of + Duration::days(1);
        let mut total = Decimal::ZERO;
        for (i, start) in cuts.iter().enumerate() {
            let stop = cuts.get(i + 1).copied().unwrap_or(end);
            let days = Decimal::from((stop - *start).num_days());
            let paid: Decimal = payments
                .iter()
                .filter(|(d, _)| d <= start)
                .map(|(_, a)| *a)
                .sum();
            let outstanding = (principal - paid).max(Decimal::ZERO);
            let rate = self.rate_on(*start).ok_or(InterestError::NoRate(*start))?;
            total += outstanding * rate * days / Decimal::from(36_500);
        }
        Ok(total
            .round_dp_with_strategy(currency.exponent(), RoundingStrategy::MidpointAwayFromZero))
    }

    /// The fixed recovery indemnity for an invoice on `as_of`: due once the invoice is late.
    pub fn indemnity(&self, due_date: NaiveDate, as_of: NaiveDate) -> Decimal {
        if as_of > due_date {
            self.fixed_indemnity
        } else {
            Decimal::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn french() -> LatePayment {
        LatePayment {
            currency: Currency::EUR,
            fixed_indemnity: dec("40"),
            margin_points: dec("10"),
            reference_rates: vec![
                (d("2025-01-01"), dec("3.15")),
                (d("2025-07-01"), dec("2.15")),
                (d("2026-01-01"), dec("2.15")),
            ],
            reference_label: BTreeMap::new(),
            legal_basis: BTreeMap::new(),
        }
    }

    #[test]
    fn thirty_days_on_ten_thousand_euros() {
        // 10,000 × 12.15 % × 30 / 365 = 99.863… → 99.86 (1 Feb to 2 Mar 2026: 30 days).
        let i = french()
            .interest(
                dec("10000.00"),
                d("2026-01-31"),
                &[],
                d("2026-03-02"),
                Currency::EUR,
            )
            .unwrap();
        assert_eq!(i, dec("99.86"));
    }

    #[test]
    fn a_period_spanning_two_half_years_uses_each_rate() {
        // 16–30 June 2025: 15 days at 13.15 %; 1–15 July: 15 days at 12.15 %.
        // 10,000 × (13.15 × 15 + 12.15 × 15) / 36,500 = 103.9726… → 103.97.
        let i = french()
            .interest(
                dec("10000.00"),
                d("2025-06-15"),
                &[],
                d("2025-07-15"),
                Currency::EUR,
            )
            .unwrap();
        assert_eq!(i, dec("103.97"));
    }

    #[test]
    fn a_partial_payment_reduces_accrual_from_its_date() {
        // 1–14 Feb: 14 days on 10,000; 15 Feb – 2 Mar: 16 days on 6,000.
        // (140,000 + 96,000) × 12.15 / 36,500 = 78.5589… → 78.56.
        let i = french()
            .interest(
                dec("10000.00"),
                d("2026-01-31"),
                &[(d("2026-02-15"), dec("4000.00"))],
                d("2026-03-02"),
                Currency::EUR,
            )
            .unwrap();
        assert_eq!(i, dec("78.56"));
    }

    #[test]
    fn interest_already_accrued_stays_due_after_full_payment() {
        // Paid in full on 11 Feb: 10 days on 10,000 = 33.287… → 33.29, then nothing more.
        let terms = french();
        let paid = [(d("2026-02-11"), dec("10000.00"))];
        assert_eq!(
            terms
                .interest(
                    dec("10000.00"),
                    d("2026-01-31"),
                    &paid,
                    d("2026-03-02"),
                    Currency::EUR
                )
                .unwrap(),
            dec("33.29")
        );
        assert_eq!(
            terms
                .interest(
                    dec("10000.00"),
                    d("2026-01-31"),
                    &paid,
                    d("2026-12-31"),
                    Currency::EUR
                )
                .unwrap(),
            dec("33.29")
        );
    }

    #[test]
    fn nothing_is_due_on_or_before_the_due_date() {
        let t = french();
        assert_eq!(
            t.interest(
                dec("500"),
                d("2026-01-31"),
                &[],
                d("2026-01-31"),
                Currency::EUR
            )
            .unwrap(),
            Decimal::ZERO
        );
        assert_eq!(t.indemnity(d("2026-01-31"), d("2026-01-31")), Decimal::ZERO);
        assert_eq!(t.indemnity(d("2026-01-31"), d("2026-02-01")), dec("40"));
    }

    #[test]
    fn a_day_without_a_rate_is_an_error() {
        let e = french()
            .interest(
                dec("500"),
                d("2024-12-01"),
                &[],
                d("2025-01-10"),
                Currency::EUR,
            )
            .unwrap_err();
        assert_eq!(e, InterestError::NoRate(d("2024-12-02")));
    }
}
