//! Invoices (receivables) and their state.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::customer::Pause;
use super::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Paid,
    Cancelled,
    WrittenOff,
}

impl InvoiceStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Cancelled => "cancelled",
            InvoiceStatus::WrittenOff => "written_off",
        }
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .as_str()
        {
            "open" | "ouverte" => Ok(InvoiceStatus::Open),
            "paid" | "payee" | "payée" => Ok(InvoiceStatus::Paid),
            "cancelled" | "canceled" | "annulee" | "annulée" => Ok(InvoiceStatus::Cancelled),
            "written_off" | "writtenoff" => Ok(InvoiceStatus::WrittenOff),
            other => Err(format!(
                "invalid status '{other}' (expected open, paid, cancelled or written_off)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub reason: String,
    pub opened_at: DateTime<Utc>,
}

/// An invoice as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub number: String,
    pub customer: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: Currency,
    /// Amount including tax.
    pub amount: Decimal,
    /// What is still to be paid.
    pub open_amount: Decimal,
    pub status: InvoiceStatus,
    pub dispute: Option<Dispute>,
    pub pause: Option<Pause>,
}

impl Invoice {
    /// Days past the due date on `date` (negative before it).
    pub fn days_overdue(&self, date: NaiveDate) -> i64 {
        (date - self.due_date).num_days()
    }
}

/// An invoice as an import or the API supplies it: the ERP's fields only. Dunning state
/// (disputes, pauses) is never overwritten by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    pub number: String,
    pub customer: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: Currency,
    pub amount: Decimal,
    /// The ERP's open amount when it does its own matching; `None` lets relance derive
    /// it from the payments it allocated.
    pub open_amount: Option<Decimal>,
    /// `None` derives open/paid from the open amount.
    pub status: Option<InvoiceStatus>,
}

/// A customer's balance as of a day: what its open invoices still owe, the part past
/// due, and how many invoices are open.
pub fn open_balance(invoices: &[Invoice], today: NaiveDate) -> (Decimal, Decimal, usize) {
    let open = invoices.iter().filter(|i| i.status == InvoiceStatus::Open);
    let (mut total, mut overdue, mut count) = (Decimal::ZERO, Decimal::ZERO, 0);
    for i in open {
        total += i.open_amount;
        if i.due_date < today {
            overdue += i.open_amount;
        }
        count += 1;
    }
    (total, overdue, count)
}

impl InvoiceRecord {
    /// Checks the record's internal consistency.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.number.trim().is_empty() {
            return Err(("number", "invoice number is empty".into()));
        }
        if self.amount < Decimal::ZERO {
            return Err((
                "amount",
                format!(
                    "amount {} is negative (import credit notes as payments of kind credit_note)",
                    self.amount
                ),
            ));
        }
        if self.due_date < self.issue_date {
            return Err((
                "due_date",
                format!(
                    "due date {} is before the issue date {}",
                    self.due_date, self.issue_date
                ),
            ));
        }
        if let Some(open) = self.open_amount {
            if open < Decimal::ZERO || open > self.amount {
                return Err((
                    "open_amount",
                    format!(
                        "open amount {open} is not between 0 and the amount {}",
                        self.amount
                    ),
                ));
            }
        }
        Ok(())
    }
}
