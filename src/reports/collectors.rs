//! Collectors: per collector, the portfolio assigned to them, their call tasks, the
//! promises their calls obtained and whether they were kept, and what was paid after
//! their calls.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::effectiveness::{last_before, payments};
use super::{money, Cell, ReportError, ReportQuery, Table};
use crate::domain::ActionKind;
use crate::store::reports::{ReportAccount, ReportAction, ReportNeeds};
use crate::store::Store;

/// What a task's assignee is called when it has none.
pub const UNASSIGNED: &str = "(unassigned)";

/// One collector's figures, in one currency (the customers').
#[derive(Debug, Clone, Serialize)]
pub struct CollectorRow {
    pub collector: String,
    pub currency: String,
    /// Customers assigned to the collector.
    pub customers: u64,
    /// Their overdue as of the report's date.
    pub overdue: Decimal,
    /// Call tasks open on the report's date.
    pub open_tasks: u64,
    /// Call tasks completed in the period, and how.
    pub completed_tasks: u64,
    pub reached: u64,
    pub no_answer: u64,
    pub wrong_number: u64,
    pub disputes: u64,
    /// Promises recorded as the outcome of the collector's calls in the period.
    pub promises_obtained: u64,
    pub promises_kept: u64,
    pub promises_broken: u64,
    pub promised_amount: Decimal,
    /// Payments attributed to the collector's call tasks of the period (each payment to
    /// the last action before it that named the invoice).
    pub collected_after_calls: Decimal,
}

/// The collectors report.
#[derive(Debug, Clone, Serialize)]
pub struct Collectors {
    pub report: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub collectors: Vec<CollectorRow>,
}

#[derive(Debug, Default)]
struct Sums {
    customers: u64,
    overdue: i64,
    open: u64,
    completed: u64,
    outcomes: [u64; 4],
    promises: u64,
    kept: u64,
    broken: u64,
    promised: i64,
    collected: i64,
}

fn account(a: &ReportAccount, query: &ReportQuery, sums: &mut BTreeMap<(String, String), Sums>) {
    let day = query.as_of;
    let in_period = |d: NaiveDate| d >= query.from && d <= query.to;
    let currency = a.customer.currency.clone();
    let name = |n: &Option<String>| n.clone().unwrap_or_else(|| UNASSIGNED.to_string());
    if let Some(c) = &a.customer.collector {
        let s = sums.entry((c.clone(), currency.clone())).or_default();
        s.customers += 1;
        s.overdue += a
            .invoices
            .iter()
            .filter(|i| i.currency == currency && i.due_date < day)
            .map(|i| query.open_minor(i))
            .sum::<i64>();
    }
    let mut assignee_of: HashMap<i64, String> = HashMap::new();
    for t in &a.tasks {
        let who = name(&t.assignee);
        assignee_of.insert(t.id, who.clone());
        let s = sums.entry((who, currency.clone())).or_default();
        let open_then = t.created_on <= day && t.completed_on.is_none_or(|c| c > day);
        s.open += u64::from(open_then);
        if let Some(c) = t.completed_on.filter(|c| in_period(*c) && *c <= day) {
            let _ = c;
            s.completed += 1;
            match t.outcome.as_deref() {
                Some("reached") => s.outcomes[0] += 1,
                Some("no-answer") => s.outcomes[1] += 1,
                Some("wrong-number") => s.outcomes[2] += 1,
                Some("dispute") => s.outcomes[3] += 1,
                _ => {}
            }
        }
    }
    for p in &a.promises {
        let Some(who) = p.call_task.and_then(|t| assignee_of.get(&t)) else {
            continue;
        };
        if !in_period(p.created_on) || p.created_on > day {
            continue;
        }
        let s = sums.entry((who.clone(), p.currency.clone())).or_default();
        s.promises += 1;
        s.promised += p.amount_minor;
        let settled_by_then = p.resolved_on.is_none_or(|r| r <= day);
        if settled_by_then {
            match p.status.as_str() {
                "kept" => s.kept += 1,
                "broken" => s.broken += 1,
                _ => {}
            }
        }
    }
    let mut sent: Vec<&ReportAction> = a
        .actions
        .iter()
        .filter(|x| x.status == "sent" && x.sent_on <= day)
        .collect();
    sent.sort_by_key(|x| (x.sent_on, x.id));
    for (invoice, d, amount) in payments(a, day) {
        let Some(x) = last_before(&sent, invoice, d) else {
            continue;
        };
        if x.kind != ActionKind::CallTask || !in_period(x.sent_on) {
            continue;
        }
        let cur = a
            .invoices
            .iter()
            .find(|i| i.number == invoice)
            .map_or_else(|| currency.clone(), |i| i.currency.clone());
        sums.entry((name(&x.assignee), cur)).or_default().collected += amount;
    }
}

/// Collectors' figures over the query's period.
///
/// # Errors
/// The store's.
pub async fn collectors(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Collectors, ReportError> {
    let needs = ReportNeeds {
        timezone: config.timezone,
        actions: true,
        tasks: true,
        promises: true,
        ..ReportNeeds::default()
    };
    let mut sums: BTreeMap<(String, String), Sums> = BTreeMap::new();
    super::for_each_account(store, query, needs, |a| account(a, query, &mut sums)).await?;
    let collectors = sums
        .into_iter()
        .filter(|((who, _), _)| query.filter.collector.as_ref().is_none_or(|c| c == who))
        .map(|((collector, currency), s)| CollectorRow {
            customers: s.customers,
            overdue: money(&currency, s.overdue),
            open_tasks: s.open,
            completed_tasks: s.completed,
            reached: s.outcomes[0],
            no_answer: s.outcomes[1],
            wrong_number: s.outcomes[2],
            disputes: s.outcomes[3],
            promises_obtained: s.promises,
            promises_kept: s.kept,
            promises_broken: s.broken,
            promised_amount: money(&currency, s.promised),
            collected_after_calls: money(&currency, s.collected),
            collector,
            currency,
        })
        .collect();
    Ok(Collectors {
        report: "collectors",
        from: query.from,
        to: query.to,
        as_of: query.as_of,
        collectors,
    })
}

impl Collectors {
    pub fn tables(&self) -> Vec<Table> {
        let columns = [
            "collector",
            "currency",
            "customers",
            "overdue",
            "open_tasks",
            "completed",
            "reached",
            "no_answer",
            "wrong_number",
            "disputes",
            "promises",
            "kept",
            "broken",
            "promised",
            "collected_after_calls",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        vec![Table {
            key: "collectors",
            title: format!(
                "Collectors: call tasks completed {} to {}, open and overdue as of {}",
                self.from, self.to, self.as_of
            ),
            columns,
            rows: self
                .collectors
                .iter()
                .map(|r| {
                    vec![
                        Cell::text(&r.collector),
                        Cell::text(&r.currency),
                        Cell::Int(r.customers as i64),
                        Cell::Amount(r.overdue),
                        Cell::Int(r.open_tasks as i64),
                        Cell::Int(r.completed_tasks as i64),
                        Cell::Int(r.reached as i64),
                        Cell::Int(r.no_answer as i64),
                        Cell::Int(r.wrong_number as i64),
                        Cell::Int(r.disputes as i64),
                        Cell::Int(r.promises_obtained as i64),
                        Cell::Int(r.promises_kept as i64),
                        Cell::Int(r.promises_broken as i64),
                        Cell::Amount(r.promised_amount),
                        Cell::Amount(r.collected_after_calls),
                    ]
                })
                .collect(),
        }]
    }
}
