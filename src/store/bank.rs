//! What the bank statement import reads and records: the open invoices and customers a
//! credit is matched against, and each credit with how it was matched.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// An open invoice, as a bank credit is matched against it.
#[derive(Debug, Clone)]
pub struct OpenInvoice {
    pub number: String,
    pub customer: String,
    pub currency: String,
    pub open_amount: Decimal,
}

/// A customer's names, as a debtor's name is matched against them.
#[derive(Debug, Clone)]
pub struct CustomerName {
    pub external_id: String,
    pub name: String,
    pub legal_name: Option<String>,
}

/// A credit of an imported statement and how it was matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankCreditRow {
    pub key: String,
    pub file_name: String,
    pub value_date: NaiveDate,
    pub currency: String,
    pub amount: Decimal,
    pub debtor_name: Option<String>,
    pub debtor_iban: Option<String>,
    /// The structured creditor reference.
    pub reference: Option<String>,
    pub remittance: String,
    /// `reference`, `invoice_number`, `amount_and_debtor`; `None`: not matched.
    pub matched_by: Option<String>,
    pub customer: Option<String>,
    pub invoice: Option<String>,
    /// The ledger payment it became.
    pub payment_id: Option<String>,
    pub imported_at: DateTime<Utc>,
}
