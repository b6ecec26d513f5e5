//! A batch of accounts put together from the rows read for it: what both backends'
//! account readers share once their statements have run.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

/// A promise as read with a batch: customer id, id, date, currency, amount, status,
/// note, recorded at.
pub(crate) type PromiseTuple = (
    i64,
    i64,
    NaiveDate,
    String,
    i64,
    String,
    Option<String>,
    DateTime<Utc>,
);

/// What is read for a batch of open invoices besides the invoices themselves.
#[derive(Default)]
pub(crate) struct BatchRows {
    /// The batch's customers.
    pub customers: Vec<crate::store::rows::CustomerRowWithId>,
    /// Payments on the partly paid invoices: invoice id, date, amount (minor units).
    pub paid: Vec<(i64, NaiveDate, i64)>,
    /// Unapplied credit: customer id, currency, amount.
    pub credit: Vec<(i64, String, i64)>,
    /// The steps applied to the open invoices: customer id, invoice, kind, step, first
    /// action, days.
    pub steps: Vec<(i64, String, String, String, i64, String)>,
    pub promises: Vec<PromiseTuple>,
    /// The invoices each promise names: promise id, invoice number.
    pub links: Vec<(i64, String)>,
}

/// A batch as read, before [`assemble`] puts it together into accounts: its open
/// invoices (customer id, invoice id, amount allocated, invoice; in customer order) and
/// the rows that complete them. Reading the next batch need not wait for this one's
/// assembly.
#[derive(Default)]
pub(crate) struct ReadBatch {
    pub invoices: Vec<(i64, i64, i64, crate::domain::OpenInvoice)>,
    pub rows: BatchRows,
}

/// The accounts of a batch: its open invoices (customer id, invoice id, amount
/// allocated, invoice; in customer order) completed with `b`. Customers outside
/// `segments` (when given) are left out.
///
/// # Errors
/// A row the store could not have written (a corrupt database).
pub(crate) fn assemble(
    segments: Option<&[String]>,
    rows: Vec<(i64, i64, i64, crate::domain::OpenInvoice)>,
    b: BatchRows,
) -> crate::store::Result<Vec<crate::domain::Account>> {
    let customers_count = b.customers.len();
    // Customers of the segments asked for only (see `accounts`).
    let mut customers: HashMap<i64, crate::domain::Customer> = b
        .customers
        .into_iter()
        .filter(|c| segments.is_none_or(|s| s.contains(&c.row.segment)))
        .map(|c| Ok((c.id, crate::domain::Customer::try_from(c.row)?)))
        .collect::<crate::store::Result<_>>()?;
    let mut paid: HashMap<i64, Vec<(chrono::NaiveDate, i64)>> = HashMap::new();
    for (inv, date, amt) in b.paid {
        paid.entry(inv).or_default().push((date, amt));
    }
    let mut promise_invoices: HashMap<i64, Vec<String>> = HashMap::new();
    for (pid, number) in b.links {
        promise_invoices.entry(pid).or_default().push(number);
    }

    let mut accounts: Vec<crate::domain::Account> = Vec::with_capacity(customers_count);
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(customers_count);
    for (cid, invoice_id, _, mut open) in rows {
        let Some(pos) = index.get(&cid).copied().or_else(|| {
            let customer = customers.remove(&cid)?;
            accounts.push(crate::domain::Account {
                customer,
                invoices: Vec::new(),
                unapplied_credit: rust_decimal::Decimal::ZERO,
                history: Vec::new(),
                promises: Vec::new(),
            });
            index.insert(cid, accounts.len() - 1);
            Some(accounts.len() - 1)
        }) else {
            continue;
        };
        let cur = open.invoice.currency;
        open.invoice.customer = accounts[pos].customer.external_id.clone();
        if let Some(mut list) = paid.remove(&invoice_id) {
            list.sort();
            open.payments = list
                .into_iter()
                .map(|(d, m)| (d, cur.from_minor(m)))
                .collect();
        }
        accounts[pos].invoices.push(open);
    }
    for (cid, cur, minor) in b.credit {
        if let Some(&pos) = index.get(&cid) {
            let a = &mut accounts[pos];
            if a.customer.currency.code() == cur {
                a.unapplied_credit = a.customer.currency.from_minor(minor);
            }
        }
    }
    // Each application of a step, in the order of the log: by day, then by the
    // action that first applied the step. A step row's invoice is looked for among its
    // customer's open invoices (a handful).
    let mut applied: Vec<(usize, chrono::NaiveDate, i64, crate::domain::StepRecord)> =
        Vec::with_capacity(b.steps.len());
    for (cid, invoice, kind, step, first_action, days) in &b.steps {
        let Some(&pos) = index.get(cid) else {
            continue;
        };
        if !accounts[pos]
            .invoices
            .iter()
            .any(|o| o.invoice.number == *invoice)
        {
            continue;
        }
        let kind: crate::domain::ActionKind =
            kind.parse().map_err(crate::store::StoreError::Corrupt)?;
        for (date, lapsed) in
            crate::store::steps::parse_applied(days).map_err(crate::store::StoreError::Corrupt)?
        {
            let status = if lapsed { "failed" } else { "applied" };
            applied.push((
                pos,
                date,
                *first_action,
                crate::domain::StepRecord {
                    invoice: invoice.clone(),
                    kind,
                    step: step.clone(),
                    date,
                    status: status.to_string(),
                },
            ));
        }
    }
    applied.sort_by_key(|a| (a.0, a.1, a.2));
    for (pos, _, _, record) in applied {
        accounts[pos].history.push(record);
    }
    for (cid, id, promised_date, cur, amount, status, note, created_at) in b.promises {
        if let Some(&pos) = index.get(&cid) {
            let row = crate::store::rows::PromiseRow {
                id,
                customer: accounts[pos].customer.external_id.clone(),
                promised_date,
                currency: cur,
                amount_minor: amount,
                status,
                note,
                created_at,
            };
            accounts[pos]
                .promises
                .push(row.into_promise(promise_invoices.remove(&id).unwrap_or_default())?);
        }
    }
    Ok(accounts)
}
