//! Completing a call task: its outcome changes the ledger in the same transaction. A
//! promise pauses dunning of its invoices until its date (and becomes broken, visible to
//! the rules, if they are still unpaid after it); a dispute marks the invoices disputed;
//! no-answer, reached and wrong-number change nothing but stay in the history.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::domain::Dispute;
use crate::store::call_tasks::{CallOutcome, CallTask};
use crate::store::{NewPromise, Store, StoreError};

/// What the collector reports.
#[derive(Debug, Clone)]
pub struct TaskCompletion {
    pub outcome: CallOutcome,
    pub note: Option<String>,
    /// Who completed it (a user name, a token's name).
    pub by: String,
    /// For a promise: the date, the amount (default: what the invoices still owe) and
    /// the invoices (default: the task's).
    pub promise_date: Option<NaiveDate>,
    pub amount: Option<Decimal>,
    pub invoices: Vec<String>,
    /// For a dispute: the customer's reason (default: the note).
    pub dispute_reason: Option<String>,
}

/// Completes task `id`, applying its outcome to the ledger.
///
/// # Errors
/// `NotFound` for an unknown task, `Invalid` for a task already done or an outcome
/// missing what it needs (a promise without a date, invoices not on the task).
pub async fn complete(
    store: &Arc<dyn Store>,
    id: i64,
    c: &TaskCompletion,
    now: DateTime<Utc>,
) -> Result<CallTask, StoreError> {
    let task = store
        .call_task(id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "call task",
            key: id.to_string(),
        })?;
    if task.status != "open" {
        return Err(StoreError::Invalid(format!(
            "call task {id} is already {}",
            task.status
        )));
    }
    let invoices = if c.invoices.is_empty() {
        task.invoices.clone()
    } else {
        for n in &c.invoices {
            if !task.invoices.contains(n) {
                return Err(StoreError::Invalid(format!(
                    "invoice {n} is not one of task {id}'s invoices ({})",
                    task.invoices.join(", ")
                )));
            }
        }
        c.invoices.clone()
    };
    let mut tx = store.begin().await?;
    match c.outcome {
        CallOutcome::Promise => {
            let date = c.promise_date.ok_or_else(|| {
                StoreError::Invalid("a promise needs the date the customer promised to pay".into())
            })?;
            let amount = match c.amount {
                Some(a) => a,
                None => {
                    let mut total = Decimal::ZERO;
                    for n in &invoices {
                        if let Some(i) = store.invoice(n).await? {
                            total += i.open_amount;
                        }
                    }
                    total
                }
            };
            tx.add_promise(
                &NewPromise {
                    customer: task.customer.clone(),
                    promised_date: date,
                    amount,
                    invoices: invoices.clone(),
                    note: c.note.clone().or_else(|| Some(format!("call task {id}"))),
                    call_task: Some(id),
                },
                now,
            )
            .await?;
        }
        CallOutcome::Dispute => {
            let reason = c
                .dispute_reason
                .clone()
                .or_else(|| c.note.clone())
                .unwrap_or_else(|| format!("disputed on the phone (call task {id})"));
            for n in &invoices {
                tx.set_invoice_dispute(
                    n,
                    Some(&Dispute {
                        reason: reason.clone(),
                        opened_at: now,
                    }),
                )
                .await?;
            }
        }
        CallOutcome::Reached | CallOutcome::NoAnswer | CallOutcome::WrongNumber => {}
    }
    tx.complete_call_task(id, c.outcome, c.note.as_deref(), &c.by, now)
        .await?;
    tx.commit().await?;
    store
        .call_task(id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "call task",
            key: id.to_string(),
        })
}
