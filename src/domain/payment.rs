//! Payments and credit notes, and their allocation to invoices (lettrage).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Payment,
    CreditNote,
}

impl PaymentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentKind::Payment => "payment",
            PaymentKind::CreditNote => "credit_note",
        }
    }
}

impl fmt::Display for PaymentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .as_str()
        {
            "payment" | "reglement" | "règlement" => Ok(PaymentKind::Payment),
            "credit_note" | "credit" | "avoir" => Ok(PaymentKind::CreditNote),
            other => Err(format!(
                "invalid kind '{other}' (expected payment or credit_note)"
            )),
        }
    }
}

/// A payment or credit note received from a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The ERP's or bank's identifier: re-importing it is a no-op.
    pub external_id: String,
    pub customer: String,
    pub kind: PaymentKind,
    pub date: NaiveDate,
    pub currency: Currency,
    pub amount: Decimal,
    /// Free text from the bank statement or the credit note, searched for invoice numbers.
    pub reference: Option<String>,
}

impl Payment {
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.external_id.trim().is_empty() {
            return Err(("id", "payment id is empty".into()));
        }
        if self.amount <= Decimal::ZERO {
            return Err(("amount", format!("amount {} must be positive", self.amount)));
        }
        Ok(())
    }
}

/// An open invoice a payment may be allocated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenItem {
    pub invoice_id: i64,
    pub number: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub open_minor: i64,
    pub disputed: bool,
}

/// Where a payment went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    /// (invoice id, amount in minor units), in allocation order.
    pub lines: Vec<(i64, i64)>,
    /// What is left as unapplied credit on the customer.
    pub unapplied_minor: i64,
    /// Whether the reference named at least one open invoice.
    pub by_reference: bool,
}

/// Finds the invoice numbers a payment reference names, in the order they appear.
/// A number matches as a whole token, case-insensitively: `F-12` does not match `F-123`.
fn referenced<'a>(reference: &str, open: &'a [OpenItem]) -> Vec<&'a OpenItem> {
    let hay = reference.to_lowercase();
    let is_token_char = |c: char| c.is_alphanumeric();
    let mut hits: Vec<(usize, &OpenItem)> = Vec::new();
    for item in open {
        let needle = item.number.to_lowercase();
        if needle.is_empty() {
            continue;
        }
        let mut from = 0;
        while let Some(pos) = hay[from..].find(&needle) {
            let start = from + pos;
            let end = start + needle.len();
            let before_ok = hay[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_token_char(c));
            let after_ok = hay[end..].chars().next().is_none_or(|c| !is_token_char(c));
            if before_ok && after_ok {
                hits.push((start, item));
                break;
            }
            from = start + needle.chars().next().map_or(1, char::len_utf8);
        }
    }
    hits.sort_by_key(|(pos, _)| *pos);
    hits.into_iter().map(|(_, i)| i).collect()
}

/// Allocates a payment of `amount_minor` to open invoices.
///
/// When the reference names open invoices, the payment goes to those, in the order the
/// reference names them, and any remainder becomes unapplied credit (the customer said
/// what it was paying). Otherwise it goes oldest due date first (then issue date, then
/// number); disputed invoices come last, since a customer rarely pays what it disputes.
pub fn allocate(amount_minor: i64, reference: Option<&str>, open: &[OpenItem]) -> Allocation {
    let named = reference.map(|r| referenced(r, open)).unwrap_or_default();
    let by_reference = !named.is_empty();
    let order: Vec<&OpenItem> = if by_reference {
        named
    } else {
        let mut all: Vec<&OpenItem> = open.iter().collect();
        all.sort_by(|a, b| {
            (a.disputed, a.due_date, a.issue_date, &a.number).cmp(&(
                b.disputed,
                b.due_date,
                b.issue_date,
                &b.number,
            ))
        });
        all
    };
    let mut left = amount_minor;
    let mut lines = Vec::new();
    for item in order {
        if left == 0 {
            break;
        }
        let take = left.min(item.open_minor);
        if take > 0 {
            lines.push((item.invoice_id, take));
            left -= take;
        }
    }
    Allocation {
        lines,
        unapplied_minor: left,
        by_reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, number: &str, due: &str, open: i64) -> OpenItem {
        let due = NaiveDate::parse_from_str(due, "%Y-%m-%d").unwrap();
        OpenItem {
            invoice_id: id,
            number: number.into(),
            issue_date: due,
            due_date: due,
            open_minor: open,
            disputed: false,
        }
    }

    fn ledger() -> Vec<OpenItem> {
        vec![
            item(1, "F-100", "2026-03-01", 10_000),
            item(2, "F-101", "2026-01-15", 5_000),
            item(3, "F-1010", "2026-02-01", 7_000),
        ]
    }

    #[test]
    fn without_reference_oldest_due_first() {
        let a = allocate(12_000, None, &ledger());
        assert_eq!(a.lines, vec![(2, 5_000), (3, 7_000)]);
        assert_eq!(a.unapplied_minor, 0);
        assert!(!a.by_reference);
    }

    #[test]
    fn partial_payment_leaves_the_invoice_partly_open() {
        let a = allocate(3_000, Some("virement client"), &ledger());
        assert_eq!(a.lines, vec![(2, 3_000)]);
    }

    #[test]
    fn overpayment_leaves_unapplied_credit() {
        let a = allocate(25_000, None, &ledger());
        assert_eq!(a.lines, vec![(2, 5_000), (3, 7_000), (1, 10_000)]);
        assert_eq!(a.unapplied_minor, 3_000);
    }

    #[test]
    fn a_reference_naming_two_invoices_pays_those_in_its_order() {
        let a = allocate(16_000, Some("VIR SEPA FACT F-1010 ET F-100"), &ledger());
        assert_eq!(a.lines, vec![(3, 7_000), (1, 9_000)]);
        assert!(a.by_reference);
        assert_eq!(a.unapplied_minor, 0);
    }

    #[test]
    fn a_number_matches_only_as_a_whole_token() {
        // "F-1010" contains "F-101" but must not pay it.
        let a = allocate(7_000, Some("payment f-1010"), &ledger());
        assert_eq!(a.lines, vec![(3, 7_000)]);
    }

    #[test]
    fn reference_remainder_is_unapplied_not_spread() {
        let a = allocate(8_000, Some("F-101"), &ledger());
        assert_eq!(a.lines, vec![(2, 5_000)]);
        assert_eq!(a.unapplied_minor, 3_000);
    }

    #[test]
    fn disputed_invoices_are_paid_last_without_reference() {
        let mut l = ledger();
        l[1].disputed = true;
        let a = allocate(8_000, None, &l);
        assert_eq!(a.lines, vec![(3, 7_000), (1, 1_000)]);
    }
}
