//! Reports over the ledger: invoices approaching their credit insurer's declaration
//! deadline without having been handed over.

use chrono::NaiveDate;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::Config;
use crate::domain::ActionKind;
use crate::store::{AccountFilter, Store, StoreError};

/// An overdue insured invoice not handed over to its insurer yet.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineRow {
    /// Days from `as_of` to the deadline; negative once it has passed.
    pub days_left: i64,
    pub deadline: NaiveDate,
    pub customer: String,
    pub customer_name: String,
    pub invoice: String,
    pub due_date: NaiveDate,
    pub open_amount: Decimal,
    pub currency: String,
    pub insurer: String,
    pub policy_number: Option<String>,
    /// A disputed invoice may still have to be declared: the insurer's policy says.
    pub disputed: bool,
}

/// Overdue invoices of insured customers whose declaration deadline falls within
/// `within` days of `as_of` (or has passed), not handed over yet, soonest first.
///
/// # Errors
/// A database error.
pub async fn insurer_deadlines(
    store: &dyn Store,
    config: &Config,
    as_of: NaiveDate,
    within: i64,
) -> Result<Vec<DeadlineRow>, StoreError> {
    let mut rows = Vec::new();
    let filter = AccountFilter::default();
    let mut stream = store.accounts(&filter, 500);
    while let Some(batch) = stream.next().await {
        for account in batch? {
            let c = &account.customer;
            if !c.insurance.insured {
                continue;
            }
            let Some((key, insurer)) = c
                .insurance
                .policy
                .as_ref()
                .and_then(|p| config.insurers.get_key_value(p))
            else {
                continue;
            };
            for open in &account.invoices {
                let inv = &open.invoice;
                if inv.days_overdue(as_of) <= 0 {
                    continue;
                }
                let handed_over = account.history.iter().any(|h| {
                    h.kind == ActionKind::InsurerHandover
                        && h.invoice == inv.number
                        && !["failed", "dead", "cancelled"].contains(&h.status.as_str())
                });
                if handed_over {
                    continue;
                }
                let deadline =
                    inv.due_date + chrono::Duration::days(insurer.declaration_deadline_days);
                let days_left = (deadline - as_of).num_days();
                if days_left > within {
                    continue;
                }
                rows.push(DeadlineRow {
                    days_left,
                    deadline,
                    customer: c.external_id.clone(),
                    customer_name: c.name.clone(),
                    invoice: inv.number.clone(),
                    due_date: inv.due_date,
                    open_amount: inv.open_amount,
                    currency: inv.currency.code().to_string(),
                    insurer: key.clone(),
                    policy_number: insurer.policy_number.clone(),
                    disputed: inv.dispute.is_some(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        (a.days_left, &a.customer, &a.invoice).cmp(&(b.days_left, &b.customer, &b.invoice))
    });
    Ok(rows)
}
