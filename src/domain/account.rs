//! One customer's account as the rules see it: the customer, its open invoices with
//! the payments that reduced them, unapplied credit, the dunning history and promises.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Customer, Invoice, PromiseToPay};

/// What a rule can decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Email,
    Sms,
    CallTask,
    FormalNotice,
    InsurerHandover,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        ActionKind::Email,
        ActionKind::Sms,
        ActionKind::CallTask,
        ActionKind::FormalNotice,
        ActionKind::InsurerHandover,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ActionKind::Email => "email",
            ActionKind::Sms => "sms",
            ActionKind::CallTask => "call_task",
            ActionKind::FormalNotice => "formal_notice",
            ActionKind::InsurerHandover => "insurer_handover",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown action kind '{s}' (expected email, sms, call_task, formal_notice or insurer_handover)"))
    }
}

/// An open invoice with the payments allocated to it (date, amount), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInvoice {
    pub invoice: Invoice,
    #[serde(default)]
    pub payments: Vec<(NaiveDate, Decimal)>,
    /// The last e-invoicing lifecycle status the platform reported (`deposited`,
    /// `approved`, `suspended`…), if any.
    #[serde(default)]
    pub einvoice_status: Option<String>,
}

impl OpenInvoice {
    /// What was outstanding before the listed payments: the base of late interest.
    pub fn principal(&self) -> Decimal {
        self.invoice.open_amount + self.payments.iter().map(|(_, a)| *a).sum::<Decimal>()
    }
}

/// A step already applied to an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub invoice: String,
    pub kind: ActionKind,
    pub step: String,
    /// The day the step was decided.
    pub date: NaiveDate,
    /// The action's status (planned, sent, failed...).
    #[serde(default = "default_status")]
    pub status: String,
}

fn default_status() -> String {
    "sent".into()
}

/// Everything the rules see of one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub customer: Customer,
    /// Open invoices, by due date.
    pub invoices: Vec<OpenInvoice>,
    /// Unapplied credit in the customer's currency.
    pub unapplied_credit: Decimal,
    /// Steps applied to the open invoices, oldest first.
    pub history: Vec<StepRecord>,
    /// Pending and broken promises, oldest first.
    pub promises: Vec<PromiseToPay>,
}
