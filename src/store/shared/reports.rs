//! What the reports read, shared by both backends like `ledger.rs` (compiled once for
//! each): batches of customers in id order (keyset pagination, short statements, as
//! a tick reads), each completed by one statement per kind of row.

// Rows are read as tuples, one per statement, next to their SQL.
#![allow(clippy::type_complexity)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Db, StoreImpl};
use crate::store::reports::{
    Hold, ReportAccount, ReportAction, ReportCustomer, ReportFilter, ReportInvoice, ReportNeeds,
    ReportPromise, ReportStream, ReportTask, Settlement,
};
use crate::store::StoreError;

type HoldTuple = (
    i64,
    Option<i64>,
    String,
    String,
    DateTime<Utc>,
    Option<NaiveDate>,
    Option<DateTime<Utc>>,
);

type CustomerTuple = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    bool,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<NaiveDate>,
);

type InvoiceTuple = (
    i64,
    i64,
    String,
    NaiveDate,
    NaiveDate,
    String,
    i64,
    i64,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<NaiveDate>,
);

type ActionTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    NaiveDate,
    DateTime<Utc>,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

type PromiseTuple = (
    i64,
    i64,
    NaiveDate,
    String,
    i64,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<i64>,
);

/// A pause as stored: `Some(until)` when a reason is set.
fn paused(reason: Option<String>, until: Option<NaiveDate>) -> Option<Option<NaiveDate>> {
    reason.map(|_| until)
}

impl StoreImpl {
    /// One batch: up to `batch` customers after id `after`, completed; and the last
    /// customer id read (`None` when there are no more).
    async fn load_report_batch(
        pool: sqlx::Pool<Db>,
        filter: Arc<ReportFilter>,
        needs: ReportNeeds,
        after: i64,
        batch: i64,
    ) -> crate::store::Result<(Vec<ReportAccount>, Option<i64>)> {
        type E = StoreError;
        let tz = needs.timezone;
        let day = move |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, external_id, name, segment, collector, currency, credit_limit_minor, insured, \
             insurer_policy, cover_minor, pause_reason, paused_until FROM customers WHERE id > ",
        );
        qb.push_bind(after);
        if let Some(s) = &filter.segment {
            qb.push(" AND segment = ");
            qb.push_bind(s.clone());
        }
        if let Some(c) = &filter.collector {
            qb.push(" AND collector = ");
            qb.push_bind(c.clone());
        }
        if let Some(c) = &filter.customer {
            qb.push(" AND external_id = ");
            qb.push_bind(c.clone());
        }
        qb.push(" ORDER BY id LIMIT ");
        qb.push_bind(batch);
        let customers: Vec<CustomerTuple> = qb.build_query_as().fetch_all(&pool).await?;
        let Some(last) = customers.last().map(|c| c.0) else {
            return Ok((Vec::new(), None));
        };
        // The batch's customers are a range of ids: each statement reads that range of
        // its index by customer (an `IN` list of ids is planned as a full scan by
        // SQLite when it cannot tell how long the list is). Rows of customers in the
        // range that the filter left out are skipped below.
        let range = "BETWEEN $1 AND $2";
        let (first, last_id) = (customers[0].0, last);
        let pool = &pool;
        let currency = filter.currency.clone();

        // Open and closed invoices are indexed by customer apart (two partial
        // indexes): one statement each, so that each reads its index's range.
        let invoices_q = async {
            let mut all: Vec<InvoiceTuple> = Vec::new();
            for status in ["status = 'open'", "status <> 'open'"] {
                let mut sql = format!(
                    "SELECT customer_id, id, number, issue_date, due_date, currency, amount_minor, open_minor, status, \
                     updated_at, disputed_at, pause_reason, paused_until FROM invoices WHERE customer_id {range} AND {status}"
                );
                if currency.is_some() {
                    sql.push_str(" AND currency = $3");
                }
                let mut q = sqlx::query_as::<_, InvoiceTuple>(&sql)
                    .bind(first)
                    .bind(last_id);
                if let Some(c) = &currency {
                    q = q.bind(c.clone());
                }
                all.extend(q.fetch_all(pool).await?);
            }
            all.sort_by(|a, b| (a.0, a.4, &a.2).cmp(&(b.0, b.4, &b.2)));
            Ok::<_, E>(all)
        };
        let settlements_q = async {
            // Through the customers' payments (by customer), then their allocations
            // (by payment): a payment is allocated to its own customer's invoices.
            let sql = format!(
                "SELECT a.invoice_id, p.date, a.amount_minor, p.kind FROM payments p {} \
                 WHERE p.customer_id {range}",
                Self::ALLOCATIONS_OF_PAYMENTS
            );
            let rows: Vec<(i64, NaiveDate, i64, String)> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok::<_, E>(rows)
        };
        let actions_q = async {
            let which = match (needs.actions, needs.handovers) {
                _ if needs.decided => "1 = 1",
                (false, false) => return Ok::<_, E>(Vec::new()),
                // `|| ''`: the status is tested on the rows the range by customer
                // gives, not used to pick them (nearly every action is sent).
                (true, false) => "a.status || '' = 'sent'",
                (false, true) => {
                    "a.kind = 'insurer_handover' AND a.status || '' NOT IN ('failed', 'dead', 'cancelled', 'blocked', 'error')"
                }
                (true, true) => {
                    "(a.status || '' = 'sent' OR (a.kind = 'insurer_handover' AND a.status NOT IN ('failed', 'dead', 'cancelled', 'blocked', 'error')))"
                }
            };
            let sql = format!(
                "SELECT a.customer_id, a.id, a.kind, a.step, a.segment, a.rule_hash, a.status, a.decided_on, a.updated_at, \
                 a.invoice_numbers, a.currency, a.amount_minor, t.assignee, a.variant FROM actions a \
                 LEFT JOIN call_tasks t ON t.action_id = a.id WHERE a.customer_id {range} AND {which} \
                 ORDER BY a.customer_id, a.id"
            );
            let rows: Vec<ActionTuple> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok(rows)
        };
        let tasks_q = async {
            if !needs.tasks {
                return Ok::<_, E>(Vec::new());
            }
            let sql = format!(
                "SELECT customer_id, id, assignee, status, outcome, created_at, completed_at FROM call_tasks \
                 WHERE customer_id {range} ORDER BY customer_id, id"
            );
            let rows: Vec<(
                i64,
                i64,
                Option<String>,
                String,
                Option<String>,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
            )> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok(rows)
        };
        let promises_q = async {
            if !needs.promises {
                return Ok::<_, E>((Vec::new(), Vec::new()));
            }
            let sql = format!(
                "SELECT customer_id, id, promised_date, currency, amount_minor, status, created_at, resolved_at, call_task_id \
                 FROM promises WHERE customer_id {range} ORDER BY customer_id, id"
            );
            let promises: Vec<PromiseTuple> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            let sql = format!(
                "SELECT pi.promise_id, i.number FROM promises p JOIN promise_invoices pi ON pi.promise_id = p.id \
                 JOIN invoices i ON i.id = pi.invoice_id WHERE p.customer_id {range} ORDER BY pi.promise_id, i.number"
            );
            let numbers: Vec<(i64, String)> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok((promises, numbers))
        };
        let holds_q = async {
            let sql = format!(
                "SELECT customer_id, invoice_id, kind, reason, started_at, until, ended_at FROM holds \
                 WHERE customer_id {range} ORDER BY customer_id, id"
            );
            let rows: Vec<HoldTuple> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok::<_, E>(rows)
        };
        let details_q = async {
            if !needs.details {
                return Ok::<_, E>(Vec::new());
            }
            let sql = format!(
                "SELECT id, {} FROM customers WHERE id {range} ORDER BY id",
                crate::store::sql::CUSTOMER_COLUMNS
            );
            let rows: Vec<crate::store::rows::CustomerRowWithId> = sqlx::query_as(&sql)
                .bind(first)
                .bind(last_id)
                .fetch_all(pool)
                .await?;
            Ok(rows)
        };
        let (invoices, settlements, actions, tasks, (promises, promise_numbers), holds, details) =
            futures_util::try_join!(
                invoices_q,
                settlements_q,
                actions_q,
                tasks_q,
                promises_q,
                holds_q,
                details_q
            )?;
        let mut invoice_holds: HashMap<i64, Vec<Hold>> = HashMap::new();
        let mut customer_holds: HashMap<i64, Vec<Hold>> = HashMap::new();
        for (customer, invoice, kind, reason, started, until, ended) in holds {
            let h = Hold {
                dispute: kind == "dispute",
                reason,
                from: day(started),
                until,
                ended: ended.map(day),
            };
            match invoice {
                Some(i) => invoice_holds.entry(i).or_default().push(h),
                None => customer_holds.entry(customer).or_default().push(h),
            }
        }

        let mut settled: HashMap<i64, Vec<Settlement>> = HashMap::new();
        for (invoice, date, amount_minor, kind) in settlements {
            settled.entry(invoice).or_default().push(Settlement {
                date,
                amount_minor,
                credit_note: kind == "credit_note",
            });
        }
        let mut numbers: HashMap<i64, Vec<String>> = HashMap::new();
        for (promise, number) in promise_numbers {
            numbers.entry(promise).or_default().push(number);
        }
        let mut accounts: Vec<ReportAccount> = Vec::with_capacity(customers.len());
        let mut index: HashMap<i64, usize> = HashMap::with_capacity(customers.len());
        for c in customers {
            index.insert(c.0, accounts.len());
            accounts.push(ReportAccount {
                customer: ReportCustomer {
                    external_id: c.1,
                    name: c.2,
                    segment: c.3,
                    collector: c.4,
                    currency: c.5,
                    credit_limit_minor: c.6,
                    insured: c.7,
                    insurer_policy: c.8,
                    cover_minor: c.9,
                    paused: paused(c.10, c.11),
                    holds: customer_holds.remove(&c.0).unwrap_or_default(),
                },
                invoices: Vec::new(),
                actions: Vec::new(),
                tasks: Vec::new(),
                promises: Vec::new(),
                details: None,
            });
        }
        for d in details {
            let Some(&i) = index.get(&d.id) else { continue };
            accounts[i].details = Some(crate::domain::Customer::try_from(d.row)?);
        }
        for r in invoices {
            let Some(&i) = index.get(&r.0) else { continue };
            let mut settlements = settled.remove(&r.1).unwrap_or_default();
            settlements.sort();
            accounts[i].invoices.push(ReportInvoice {
                number: r.2,
                issue_date: r.3,
                due_date: r.4,
                currency: r.5,
                amount_minor: r.6,
                open_minor: r.7,
                status: r.8,
                settlements,
                updated_on: day(r.9),
                disputed_on: r.10.map(day),
                paused: paused(r.11, r.12),
                holds: invoice_holds.remove(&r.1).unwrap_or_default(),
            });
        }
        for r in actions {
            let Some(&i) = index.get(&r.0) else { continue };
            if currency.as_ref().is_some_and(|c| *c != r.10) {
                continue;
            }
            let kind = r
                .2
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("action {}: kind '{}': {e}", r.1, r.2)))?;
            accounts[i].actions.push(ReportAction {
                id: r.1,
                kind,
                step: r.3,
                segment: r.4,
                rule_hash: r.5,
                status: r.6,
                decided_on: r.7,
                sent_on: day(r.8),
                invoices: serde_json::from_str(&r.9).map_err(|e| {
                    StoreError::Corrupt(format!("action {} invoice numbers: {e}", r.1))
                })?,
                currency: r.10,
                amount_minor: r.11,
                assignee: r.12,
                variant: r.13,
            });
        }
        for r in tasks {
            let Some(&i) = index.get(&r.0) else { continue };
            accounts[i].tasks.push(ReportTask {
                id: r.1,
                assignee: r.2,
                status: r.3,
                outcome: r.4,
                created_on: day(r.5),
                completed_on: r.6.map(day),
            });
        }
        for r in promises {
            let Some(&i) = index.get(&r.0) else { continue };
            if currency.as_ref().is_some_and(|c| *c != r.3) {
                continue;
            }
            accounts[i].promises.push(ReportPromise {
                id: r.1,
                promised_date: r.2,
                currency: r.3,
                amount_minor: r.4,
                status: r.5,
                created_on: day(r.6),
                resolved_on: r.7.map(day),
                invoices: numbers.remove(&r.1).unwrap_or_default(),
                call_task: r.8,
            });
        }
        Ok((accounts, Some(last)))
    }
}

impl crate::store::ReportStore for StoreImpl {
    fn report_accounts<'a>(
        &'a self,
        filter: &'a ReportFilter,
        needs: ReportNeeds,
        batch: usize,
    ) -> ReportStream<'a> {
        // The next batch is read while the caller works on the current one.
        Box::pin(async_stream::try_stream! {
            let filter = Arc::new(filter.clone());
            let load = |after: i64| {
                tokio::spawn(Self::load_report_batch(self.pool.clone(), filter.clone(), needs, after, batch.max(1) as i64))
            };
            let mut next = load(i64::MIN);
            loop {
                let (accounts, last) = next
                    .await
                    .map_err(|e| StoreError::Invalid(format!("report reader: {e}")))??;
                let Some(last) = last else { break };
                next = load(last);
                yield accounts;
            }
        })
    }
}
