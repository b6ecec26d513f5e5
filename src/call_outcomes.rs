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
            if amount <= Decimal::ZERO {
                return Err(StoreError::Invalid(
                    "a promise needs the amount the customer promised (the task names no open invoice)".into(),
                ));
            }
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

/// A call a user schedules by hand (the console's "create a call task", or a callback
/// date given with a call's outcome).
#[derive(Debug, Clone)]
pub struct ScheduledCall {
    pub customer: String,
    pub reason: String,
    /// low, normal, high or urgent.
    pub priority: String,
    /// Default: the customer's collector.
    pub assignee: Option<String>,
    pub due_on: NaiveDate,
    /// Who asked for it (a user name).
    pub by: String,
    /// `manual`, `callback` for a call back agreed on an earlier call, `portal` for
    /// what a customer asked on its portal page.
    pub step: &'static str,
    /// The invoices the call is about; `None`: the customer's overdue invoices that are
    /// neither disputed nor paused.
    pub invoices: Option<Vec<String>>,
}

/// The steps of the calls people ask for (see [`schedule`]): users, and customers on
/// the portal.
pub const STEPS_BY_HAND: [&str; 3] = ["manual", "callback", "portal"];

/// Whether an action of this step is a call a user scheduled: the outbox makes it
/// without checking whether its invoices were paid, promised or disputed since.
pub fn scheduled_by_hand(step: &str) -> bool {
    STEPS_BY_HAND.contains(&step)
}

/// The priorities a call task takes.
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

/// Records a call a user asks for as a `call_task` action in the action log (step
/// `manual` or `callback`, the user named in its detail), which the outbox turns into
/// the collector's task as it does the rules' calls (and announces to the configured
/// webhook), even if its invoices are promised or disputed meanwhile. The task covers
/// the customer's overdue invoices that are neither disputed nor paused, so that a
/// promise obtained on the call applies to them; a customer paused as a whole gets a
/// task on no invoice. Asking twice the same day for the same
/// call records it once. Returns the action's id.
///
/// # Errors
/// `NotFound` for an unknown customer; `Invalid` for an empty or long reason, an
/// unknown priority, a date in the past.
pub async fn schedule(
    store: &Arc<dyn Store>,
    call: &ScheduledCall,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    use crate::domain::{ActionKind, InvoiceStatus};
    use crate::store::actions::{ActionFilter, ActionStatus, NewAction};
    let reason = call.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(StoreError::Invalid(
            "reason: from 1 to 500 characters".into(),
        ));
    }
    if !PRIORITIES.contains(&call.priority.as_str()) {
        return Err(StoreError::Invalid(format!(
            "priority: '{}' is not one of {}",
            call.priority,
            PRIORITIES.join(", ")
        )));
    }
    if call.due_on < today {
        return Err(StoreError::Invalid(format!(
            "due date: {} is in the past",
            call.due_on
        )));
    }
    let customer = store
        .customer(&call.customer)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "customer",
            key: call.customer.clone(),
        })?;
    let paused = customer.pause.as_ref().is_some_and(|p| p.active_on(today));
    let invoices: Vec<_> = match &call.invoices {
        Some(numbers) => store
            .invoices_of(&call.customer)
            .await?
            .into_iter()
            .filter(|i| numbers.contains(&i.number))
            .collect(),
        None if paused => Vec::new(),
        None => store
            .invoices_of(&call.customer)
            .await?
            .into_iter()
            .filter(|i| {
                i.status == InvoiceStatus::Open
                    && i.open_amount > Decimal::ZERO
                    && i.due_date < today
                    && i.dispute.is_none()
                    && !i.pause.as_ref().is_some_and(|p| p.active_on(today))
            })
            .collect(),
    };
    let amount: Decimal = invoices.iter().map(|i| i.open_amount).sum();
    let amount_minor = customer
        .currency
        .to_minor(amount)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let options = serde_json::json!({
        "reason": reason,
        "priority": call.priority,
        "assignee": call.assignee.clone().or_else(|| customer.collector.clone()),
        "due_in_days": (call.due_on - today).num_days(),
    });
    let key = format!(
        "{}:{}",
        call.step,
        &crate::digest::sha256_hex(
            format!(
                "{}\n{reason}\n{}\n{}\n{}\n{today}",
                call.customer, call.priority, call.due_on, call.by
            )
            .as_bytes()
        )[..24]
    );
    let facts = "{}";
    store
        .record_actions(
            &[NewAction {
                key: key.clone(),
                customer: call.customer.clone(),
                segment: customer.segment.clone(),
                kind: ActionKind::CallTask,
                step: call.step.to_string(),
                template: None,
                options: options.to_string(),
                currency: customer.currency.to_string(),
                amount_minor,
                rule_file: call.step.to_string(),
                rule_hash: String::new(),
                variant: None,
                facts: Arc::from(facts),
                facts_sha256: Arc::from(crate::digest::sha256_hex(facts.as_bytes())),
                decided_on: today,
                status: ActionStatus::Planned,
                detail: Some(format!("asked for by {}", call.by)),
                invoices: invoices.iter().map(|i| i.number.clone()).collect(),
            }],
            now,
        )
        .await?;
    let recorded = store
        .list_actions(&ActionFilter {
            customer: Some(call.customer.clone()),
            kind: Some(ActionKind::CallTask),
            // Recorded now, or earlier the same day when asked for twice.
            since: Some(now - chrono::Duration::hours(36)),
            limit: 1000,
            ..Default::default()
        })
        .await?;
    recorded
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.id)
        .ok_or_else(|| StoreError::Invalid(format!("the call task {key} was not recorded")))
}
