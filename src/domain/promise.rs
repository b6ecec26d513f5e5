//! Promises to pay (promesses de règlement).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseStatus {
    /// Made, date not reached, not yet paid.
    Pending,
    /// The promised amount was paid (by the date or later).
    Kept,
    /// The date passed without the promised amount being paid.
    Broken,
    /// Withdrawn by a collector.
    Cancelled,
}

impl PromiseStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PromiseStatus::Pending => "pending",
            PromiseStatus::Kept => "kept",
            PromiseStatus::Broken => "broken",
            PromiseStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for PromiseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromiseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(PromiseStatus::Pending),
            "kept" => Ok(PromiseStatus::Kept),
            "broken" => Ok(PromiseStatus::Broken),
            "cancelled" => Ok(PromiseStatus::Cancelled),
            other => Err(format!("invalid promise status '{other}'")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseToPay {
    pub id: i64,
    pub customer: String,
    pub promised_date: NaiveDate,
    pub amount: Decimal,
    pub currency: Currency,
    /// Invoice numbers the promise covers (all open invoices of the customer when empty).
    pub invoices: Vec<String>,
    pub status: PromiseStatus,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a promise becomes, given how much of its invoices has been paid since it was made.
pub fn promise_status(
    promised_date: NaiveDate,
    amount: Decimal,
    paid_since: Decimal,
    open_now: Decimal,
    today: NaiveDate,
) -> PromiseStatus {
    if paid_since >= amount || open_now <= Decimal::ZERO {
        PromiseStatus::Kept
    } else if today > promised_date {
        PromiseStatus::Broken
    } else {
        PromiseStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promise_lifecycle() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let amt = Decimal::new(50_000, 2);
        assert_eq!(
            promise_status(d("2026-05-10"), amt, Decimal::ZERO, amt, d("2026-05-10")),
            PromiseStatus::Pending
        );
        assert_eq!(
            promise_status(d("2026-05-10"), amt, Decimal::ZERO, amt, d("2026-05-11")),
            PromiseStatus::Broken
        );
        assert_eq!(
            promise_status(d("2026-05-10"), amt, amt, Decimal::ZERO, d("2026-05-11")),
            PromiseStatus::Kept
        );
        assert_eq!(
            promise_status(
                d("2026-05-10"),
                amt,
                Decimal::new(100, 0),
                amt,
                d("2026-05-11")
            ),
            PromiseStatus::Broken
        );
    }
}
