//! The ledger's SQL, shared by both backends: compiled once as a module of
//! `sqlite.rs` and once of `postgres.rs` (`#[path]`), each giving the names it uses —
//! the backend's store (`StoreImpl`), its transaction type (`Tx`), its driver
//! (`Db`), `BACKEND`, and how it writes "is distinct from" (`DISTINCT`). SQLite and
//! PostgreSQL so run the same statements by construction; placeholders are `$N`, which
//! both drivers bind by number.

// Rows are read as tuples, one per statement, next to their SQL.
#![allow(clippy::type_complexity)]

use super::{Db, StoreImpl, BACKEND, DISTINCT};

/// Keys per `IN (…)` list of [`select_in`].
const KEYS_PER_LIST: usize = 1000;

/// Runs `head` (a query ending in `IN (`), the list of `keys` and `tail`, for each
/// [`KEYS_PER_LIST`] keys, and collects the rows. `persistent`: whether the statement is
/// kept prepared on the connection (not worth it for a text that changes with the
/// number of keys of a one-off batch).
async fn select_in<K, T>(
    conn: &mut <Db as sqlx::Database>::Connection,
    head: &str,
    keys: &[K],
    tail: &str,
    persistent: bool,
) -> crate::store::Result<Vec<T>>
where
    K: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db> + Clone + Send + 'static,
    T: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
{
    let mut out = Vec::new();
    for chunk in keys.chunks(KEYS_PER_LIST) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(head);
        let mut sep = qb.separated(", ");
        for k in chunk {
            sep.push_bind(k.clone());
        }
        qb.push(")");
        qb.push(tail);
        out.extend(
            qb.build_query_as::<T>()
                .persistent(persistent)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(out)
}

/// A ledger transaction on this backend.
pub struct Tx {
    tx: sqlx::Transaction<'static, Db>,
}

impl Tx {
    async fn reverse_allocations(
        &mut self,
        payment_id: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT invoice_id, amount_minor FROM allocations WHERE payment_id = $1",
        )
        .bind(payment_id)
        .fetch_all(&mut *self.tx)
        .await?;
        for (invoice_id, amount) in rows {
            sqlx::query(
                "UPDATE invoices SET allocated_minor = allocated_minor - $1, open_minor = open_minor + $1, \
                 status = CASE WHEN status = 'paid' THEN 'open' ELSE status END, updated_at = $2 WHERE id = $3",
            )
            .bind(amount)
            .bind(now)
            .bind(invoice_id)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("DELETE FROM allocations WHERE payment_id = $1")
            .bind(payment_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Sets (or clears, with `None`) a collector's state: a reason and a date.
    async fn set_reason<T>(
        &mut self,
        sql: &str,
        reason: Option<String>,
        date: Option<T>,
        what: &'static str,
        key: &str,
    ) -> crate::store::Result<()>
    where
        T: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'static,
    {
        let n = sqlx::query(sql)
            .bind(reason)
            .bind(date)
            .bind(chrono::Utc::now())
            .bind(key)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(crate::store::StoreError::NotFound {
                what,
                key: key.to_string(),
            });
        }
        Ok(())
    }

    /// Keeps the history of disputes and pauses (`holds`): the one of this kind still
    /// on for the customer or invoice ends `now`, and `open` (reason, start, last day)
    /// begins — unless it is the one already on (a re-import of the same dispute).
    async fn record_hold(
        &mut self,
        of: HoldOf<'_>,
        kind: &str,
        open: Option<(
            &str,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::NaiveDate>,
        )>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let ids: Option<(i64, Option<i64>)> = match of {
            HoldOf::Customer(key) => {
                sqlx::query_as(
                    "SELECT id, CAST(NULL AS BIGINT) FROM customers WHERE external_id = $1",
                )
                .bind(key)
                .fetch_optional(&mut *self.tx)
                .await?
            }
            HoldOf::Invoice(number) => {
                sqlx::query_as("SELECT customer_id, id FROM invoices WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *self.tx)
                    .await?
            }
        };
        let Some((customer_id, invoice_id)) = ids else {
            return Ok(());
        };
        let invoice_key = invoice_id.unwrap_or(0);
        let current: Option<(i64, String, chrono::DateTime<chrono::Utc>, Option<chrono::NaiveDate>)> =
            sqlx::query_as(
                "SELECT id, reason, started_at, until FROM holds WHERE customer_id = $1 AND COALESCE(invoice_id, 0) = $2 \
                 AND kind = $3 AND ended_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .bind(customer_id)
            .bind(invoice_key)
            .bind(kind)
            .fetch_optional(&mut *self.tx)
            .await?;
        if let (Some(c), Some((reason, started, until))) = (&current, open) {
            let same_start = kind == "pause" || c.2 == started;
            if c.1 == reason && c.3 == until && same_start {
                return Ok(());
            }
        }
        if current.is_some() {
            sqlx::query(
                "UPDATE holds SET ended_at = $1 WHERE customer_id = $2 AND COALESCE(invoice_id, 0) = $3 \
                 AND kind = $4 AND ended_at IS NULL",
            )
            .bind(now)
            .bind(customer_id)
            .bind(invoice_key)
            .bind(kind)
            .execute(&mut *self.tx)
            .await?;
        }
        if let Some((reason, started, until)) = open {
            sqlx::query(
                "INSERT INTO holds (customer_id, invoice_id, kind, reason, started_at, until) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(customer_id)
            .bind(invoice_id)
            .bind(kind)
            .bind(reason)
            .bind(started)
            .bind(until)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    async fn count_existing(
        &mut self,
        table: &str,
        key: &str,
        keys: &[&str],
    ) -> crate::store::Result<u64> {
        let mut qb =
            sqlx::QueryBuilder::<Db>::new(format!("SELECT COUNT(*) FROM {table} WHERE {key} IN ("));
        let mut sep = qb.separated(", ");
        for k in keys {
            sep.push_bind(k.to_string());
        }
        qb.push(")");
        let n: i64 = qb.build_query_scalar().fetch_one(&mut *self.tx).await?;
        Ok(n as u64)
    }
}

#[async_trait::async_trait]
impl crate::store::LedgerTx for Tx {
    async fn upsert_customers(
        &mut self,
        batch: &[crate::domain::Customer],
    ) -> crate::store::Result<crate::store::UpsertCounts> {
        use crate::store::rows::CustomerBinds;
        use crate::store::sql::{customer_upsert_column_names, customer_upsert_columns};
        let mut counts = crate::store::UpsertCounts::default();
        let now = chrono::Utc::now();
        for chunk in batch.chunks(crate::store::sql::BATCH_ROWS) {
            let keys: Vec<&str> = chunk.iter().map(|c| c.external_id.as_str()).collect();
            let existing = self
                .count_existing("customers", "external_id", &keys)
                .await?;
            let binds = chunk
                .iter()
                .map(CustomerBinds::from_customer)
                .collect::<crate::store::Result<Vec<_>>>()?;
            let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
                "INSERT INTO customers (",
                customer_upsert_columns!(),
                ", created_at, updated_at) "
            ));
            qb.push_values(binds, |mut b, c| {
                b.push_bind(c.external_id)
                    .push_bind(c.name)
                    .push_bind(c.legal_name)
                    .push_bind(c.siren)
                    .push_bind(c.siret)
                    .push_bind(c.vat_number)
                    .push_bind(c.country)
                    .push_bind(c.segment)
                    .push_bind(c.locale)
                    .push_bind(c.emails)
                    .push_bind(c.phones)
                    .push_bind(c.address_line1)
                    .push_bind(c.address_line2)
                    .push_bind(c.postal_code)
                    .push_bind(c.city)
                    .push_bind(c.address_country)
                    .push_bind(c.currency)
                    .push_bind(c.credit_limit_minor)
                    .push_bind(c.insured)
                    .push_bind(c.insurer_policy)
                    .push_bind(c.insurer_buyer_ref)
                    .push_bind(c.cover_minor)
                    .push_bind(c.collector)
                    .push_bind(c.tags)
                    .push_bind(now)
                    .push_bind(now);
            });
            // Every column but the key.
            let data = || customer_upsert_column_names().skip(1);
            let set: Vec<String> = data().map(|c| format!("{c} = excluded.{c}")).collect();
            let old: Vec<String> = data().map(|c| format!("customers.{c}")).collect();
            let new: Vec<String> = data().map(|c| format!("excluded.{c}")).collect();
            qb.push(format!(
                " ON CONFLICT (external_id) DO UPDATE SET {}, updated_at = excluded.updated_at WHERE ({}) {} ({})",
                set.join(", "),
                old.join(", "),
                DISTINCT,
                new.join(", ")
            ));
            let affected = qb.build().execute(&mut *self.tx).await?.rows_affected();
            counts += crate::store::UpsertCounts::of_batch(chunk.len(), existing, affected);
        }
        Ok(counts)
    }

    async fn customer_ids(
        &mut self,
        external_ids: &[&str],
    ) -> crate::store::Result<std::collections::HashMap<String, i64>> {
        let keys: Vec<String> = external_ids.iter().map(|k| k.to_string()).collect();
        let rows: Vec<(String, i64)> = select_in(
            &mut self.tx,
            "SELECT external_id, id FROM customers WHERE external_id IN (",
            &keys,
            "",
            true,
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn upsert_invoices(
        &mut self,
        batch: &[(i64, crate::domain::InvoiceRecord)],
    ) -> crate::store::Result<crate::store::UpsertCounts> {
        let mut counts = crate::store::UpsertCounts::default();
        let now = chrono::Utc::now();
        let invalid = |n: &str, e: crate::domain::MoneyError| {
            crate::store::StoreError::Invalid(format!("invoice {n}: {e}"))
        };
        for chunk in batch.chunks(crate::store::sql::BATCH_ROWS) {
            let keys: Vec<&str> = chunk.iter().map(|(_, r)| r.number.as_str()).collect();
            let existing = self.count_existing("invoices", "number", &keys).await?;
            let mut rows = Vec::with_capacity(chunk.len());
            for (customer_id, r) in chunk {
                let amount = r
                    .currency
                    .to_minor(r.amount)
                    .map_err(|e| invalid(&r.number, e))?;
                let erp_open = r
                    .open_amount
                    .map(|o| r.currency.to_minor(o))
                    .transpose()
                    .map_err(|e| invalid(&r.number, e))?;
                let open = erp_open.unwrap_or(amount);
                let status = r
                    .status
                    .map_or(if open > 0 { "open" } else { "paid" }, |s| s.as_str());
                rows.push((
                    *customer_id,
                    r,
                    amount,
                    erp_open,
                    open,
                    r.status.map(|s| s.as_str()),
                    status,
                ));
            }
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO invoices (number, customer_id, issue_date, due_date, currency, amount_minor, erp_open_minor, erp_status, open_minor, status, created_at, updated_at) ",
            );
            qb.push_values(
                rows,
                |mut b, (cid, r, amount, erp_open, open, erp_status, status)| {
                    b.push_bind(r.number.clone())
                        .push_bind(cid)
                        .push_bind(crate::store::rows::SqlDate(r.issue_date))
                        .push_bind(crate::store::rows::SqlDate(r.due_date))
                        .push_bind(r.currency.code().to_string())
                        .push_bind(amount)
                        .push_bind(erp_open)
                        .push_bind(erp_status)
                        .push_bind(open)
                        .push_bind(status)
                        .push_bind(now)
                        .push_bind(now);
                },
            );
            qb.push(concat!(
                " ON CONFLICT (number) DO UPDATE SET customer_id = excluded.customer_id, issue_date = excluded.issue_date, ",
                "due_date = excluded.due_date, currency = excluded.currency, amount_minor = excluded.amount_minor, ",
                "erp_open_minor = excluded.erp_open_minor, erp_status = excluded.erp_status, ",
                "open_minor = COALESCE(excluded.erp_open_minor, CASE WHEN excluded.amount_minor - invoices.allocated_minor < 0 THEN 0 ELSE excluded.amount_minor - invoices.allocated_minor END), ",
                "status = CASE WHEN excluded.erp_status IS NOT NULL THEN excluded.erp_status ",
                "WHEN invoices.status IN ('cancelled', 'written_off') THEN invoices.status ",
                "WHEN COALESCE(excluded.erp_open_minor, excluded.amount_minor - invoices.allocated_minor) <= 0 THEN 'paid' ELSE 'open' END, ",
                "updated_at = excluded.updated_at ",
                "WHERE (invoices.customer_id, invoices.issue_date, invoices.due_date, invoices.currency, invoices.amount_minor, invoices.erp_open_minor, invoices.erp_status) ",
            ));
            qb.push(DISTINCT);
            qb.push(" (excluded.customer_id, excluded.issue_date, excluded.due_date, excluded.currency, excluded.amount_minor, excluded.erp_open_minor, excluded.erp_status)");
            let affected = qb.build().execute(&mut *self.tx).await?.rows_affected();
            counts += crate::store::UpsertCounts::of_batch(chunk.len(), existing, affected);
        }
        Ok(counts)
    }

    async fn invoice_customers(
        &mut self,
        numbers: &[&str],
    ) -> crate::store::Result<std::collections::HashMap<String, String>> {
        let keys: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
        let rows: Vec<(String, String)> = select_in(
            &mut self.tx,
            "SELECT invoices.number, customers.external_id FROM invoices JOIN customers ON customers.id = invoices.customer_id WHERE invoices.number IN (",
            &keys,
            "",
            true,
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn invoice_disputes(
        &mut self,
        numbers: &[&str],
    ) -> crate::store::Result<std::collections::HashMap<String, Option<String>>> {
        let keys: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
        let rows: Vec<(String, Option<String>)> = select_in(
            &mut self.tx,
            "SELECT number, dispute_reason FROM invoices WHERE number IN (",
            &keys,
            "",
            true,
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn promise_recorded(
        &mut self,
        p: &crate::store::NewPromise,
    ) -> crate::store::Result<bool> {
        let Some(customer_id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
                .bind(&p.customer)
                .fetch_optional(&mut *self.tx)
                .await?
        else {
            return Ok(false);
        };
        let candidates: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, currency, amount_minor FROM promises WHERE customer_id = $1 AND promised_date = $2",
        )
        .bind(customer_id)
        .bind(p.promised_date)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut wanted: Vec<&str> = p.invoices.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        for (id, cur, minor) in candidates {
            let cur = crate::store::rows::currency(&cur)?;
            if cur.from_minor(minor) != p.amount {
                continue;
            }
            let mut linked: Vec<String> = sqlx::query_scalar(
                "SELECT i.number FROM promise_invoices pi JOIN invoices i ON i.id = pi.invoice_id WHERE pi.promise_id = $1",
            )
            .bind(id)
            .fetch_all(&mut *self.tx)
            .await?;
            linked.sort_unstable();
            // A promise on every open invoice is linked to those it covered then.
            if wanted.is_empty() || linked == wanted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn release_invoice_allocations(
        &mut self,
        number: &str,
    ) -> crate::store::Result<(u64, i64)> {
        let now = chrono::Utc::now();
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT allocations.invoice_id, allocations.payment_id, allocations.amount_minor FROM allocations \
             JOIN invoices ON invoices.id = allocations.invoice_id WHERE invoices.number = $1",
        )
        .bind(number)
        .fetch_all(&mut *self.tx)
        .await?;
        let Some(&(invoice_id, _, _)) = rows.first() else {
            return Ok((0, 0));
        };
        let mut total = 0i64;
        for (_, payment_id, amount) in &rows {
            total += amount;
            sqlx::query("UPDATE payments SET unapplied_minor = unapplied_minor + $1, updated_at = $2 WHERE id = $3")
                .bind(amount)
                .bind(now)
                .bind(payment_id)
                .execute(&mut *self.tx)
                .await?;
        }
        sqlx::query(
            "UPDATE invoices SET allocated_minor = allocated_minor - $1, open_minor = open_minor + $1, \
             status = CASE WHEN status = 'paid' THEN 'open' ELSE status END, updated_at = $2 WHERE id = $3",
        )
        .bind(total)
        .bind(now)
        .bind(invoice_id)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM allocations WHERE invoice_id = $1")
            .bind(invoice_id)
            .execute(&mut *self.tx)
            .await?;
        Ok((rows.len() as u64, total))
    }

    async fn record_payments(
        &mut self,
        batch: &[(i64, crate::domain::Payment)],
    ) -> crate::store::Result<Vec<crate::store::PaymentOutcome>> {
        use crate::store::{PaymentOutcome, PaymentStatus, StoreError};
        use std::collections::{HashMap, HashSet};
        let now = chrono::Utc::now();
        let mut amounts = Vec::with_capacity(batch.len());
        let mut ids = HashSet::new();
        for (_, p) in batch {
            amounts.push(
                p.currency
                    .to_minor(p.amount)
                    .map_err(|e| StoreError::Invalid(format!("payment {}: {e}", p.external_id)))?,
            );
            if !ids.insert(p.external_id.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "payment {} appears twice in one batch",
                    p.external_id
                )));
            }
        }

        // What is already known of these payments.
        type Existing = (
            i64,
            String,
            i64,
            String,
            chrono::NaiveDate,
            String,
            i64,
            Option<String>,
        );
        let mut existing: HashMap<String, Existing> = HashMap::new();
        let keys: Vec<String> = batch.iter().map(|(_, p)| p.external_id.clone()).collect();
        let rows: Vec<Existing> = select_in(
            &mut self.tx,
            "SELECT id, external_id, customer_id, kind, date, currency, amount_minor, reference FROM payments WHERE external_id IN (",
            &keys,
            "",
            true,
        )
        .await?;
        existing.extend(rows.into_iter().map(|r| (r.1.clone(), r)));

        // Unchanged payments are left alone; changed ones have their allocations undone.
        let mut status = Vec::with_capacity(batch.len());
        let mut payment_ids: Vec<Option<i64>> = Vec::with_capacity(batch.len());
        for ((cid, p), amount) in batch.iter().zip(&amounts) {
            match existing.get(&p.external_id) {
                Some((id, _, ecid, kind, date, cur, amt, reference))
                    if ecid == cid
                        && kind == p.kind.as_str()
                        && *date == p.date
                        && cur == p.currency.code()
                        && amt == amount
                        && *reference == p.reference =>
                {
                    status.push(PaymentStatus::Unchanged);
                    payment_ids.push(Some(*id));
                }
                Some((id, ..)) => {
                    self.reverse_allocations(*id, now).await?;
                    status.push(PaymentStatus::Updated);
                    payment_ids.push(Some(*id));
                }
                None => {
                    status.push(PaymentStatus::Inserted);
                    payment_ids.push(None);
                }
            }
        }

        // Open invoices of the customers that have something to allocate.
        let customers: Vec<i64> = {
            let mut seen = HashSet::new();
            batch
                .iter()
                .zip(&status)
                .filter(|(_, s)| **s != PaymentStatus::Unchanged)
                .map(|((c, _), _)| *c)
                .filter(|c| seen.insert(*c))
                .collect()
        };
        type Open = (
            i64,
            i64,
            String,
            String,
            chrono::NaiveDate,
            chrono::NaiveDate,
            i64,
            Option<String>,
        );
        let mut open_by_customer: HashMap<(i64, String), Vec<crate::domain::OpenItem>> =
            HashMap::new();
        let rows: Vec<Open> = select_in(
            &mut self.tx,
            "SELECT id, customer_id, currency, number, issue_date, due_date, open_minor, dispute_reason FROM invoices \
             WHERE status = 'open' AND open_minor > 0 AND customer_id IN (",
            &customers,
            "",
            true,
        )
        .await?;
        for (invoice_id, cid, cur, number, issue_date, due_date, open_minor, dispute) in rows {
            open_by_customer
                .entry((cid, cur))
                .or_default()
                .push(crate::domain::OpenItem {
                    invoice_id,
                    number,
                    issue_date,
                    due_date,
                    open_minor,
                    disputed: dispute.is_some(),
                });
        }

        // Allocate in batch order; later payments see what earlier ones settled.
        let mut plans: Vec<Option<crate::domain::Allocation>> = Vec::with_capacity(batch.len());
        let mut numbers: HashMap<i64, String> = HashMap::new();
        let mut per_invoice: HashMap<i64, i64> = HashMap::new();
        for (((cid, p), amount), st) in batch.iter().zip(&amounts).zip(&status) {
            if *st == PaymentStatus::Unchanged {
                plans.push(None);
                continue;
            }
            let items = open_by_customer
                .entry((*cid, p.currency.code().to_string()))
                .or_default();
            let alloc = crate::domain::allocate(*amount, p.reference.as_deref(), items);
            for (invoice_id, part) in &alloc.lines {
                if let Some(item) = items.iter_mut().find(|i| i.invoice_id == *invoice_id) {
                    item.open_minor -= part;
                    numbers.insert(*invoice_id, item.number.clone());
                }
                *per_invoice.entry(*invoice_id).or_default() += part;
            }
            items.retain(|i| i.open_minor > 0);
            plans.push(Some(alloc));
        }
        let unapplied_of = |i: usize| plans[i].as_ref().map_or(amounts[i], |a| a.unapplied_minor);

        // New payments, with their unapplied remainder.
        let new_rows: Vec<usize> = (0..batch.len())
            .filter(|i| status[*i] == PaymentStatus::Inserted)
            .collect();
        for chunk in new_rows.chunks(crate::store::sql::BATCH_ROWS) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO payments (external_id, customer_id, kind, date, currency, amount_minor, unapplied_minor, reference, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, i| {
                let (cid, p) = &batch[*i];
                b.push_bind(p.external_id.clone())
                    .push_bind(*cid)
                    .push_bind(p.kind.as_str())
                    .push_bind(crate::store::rows::SqlDate(p.date))
                    .push_bind(p.currency.code().to_string())
                    .push_bind(amounts[*i])
                    .push_bind(unapplied_of(*i))
                    .push_bind(p.reference.clone())
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(" RETURNING id, external_id");
            let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
            let by_key: HashMap<String, i64> = rows.into_iter().map(|(id, k)| (k, id)).collect();
            for i in chunk {
                payment_ids[*i] = by_key.get(&batch[*i].1.external_id).copied();
            }
        }
        for i in (0..batch.len()).filter(|i| status[*i] == PaymentStatus::Updated) {
            let (cid, p) = &batch[i];
            sqlx::query(
                "UPDATE payments SET customer_id = $1, kind = $2, date = $3, currency = $4, amount_minor = $5, unapplied_minor = $6, reference = $7, updated_at = $8 WHERE id = $9",
            )
            .bind(*cid)
            .bind(p.kind.as_str())
            .bind(p.date)
            .bind(p.currency.code())
            .bind(amounts[i])
            .bind(unapplied_of(i))
            .bind(&p.reference)
            .bind(now)
            .bind(payment_ids[i])
            .execute(&mut *self.tx)
            .await?;
        }

        // Allocation rows, then the invoices they settle (one row per invoice).
        let lines: Vec<(i64, i64, i64)> = plans
            .iter()
            .zip(&payment_ids)
            .filter_map(|(plan, pid)| Some((plan.as_ref()?, (*pid)?)))
            .flat_map(|(plan, pid)| plan.lines.iter().map(move |(inv, amt)| (pid, *inv, *amt)))
            .collect();
        for chunk in lines.chunks(crate::store::sql::BATCH_ROWS) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO allocations (payment_id, invoice_id, amount_minor, created_at) ",
            );
            qb.push_values(chunk, |mut b, (pid, inv, amt)| {
                b.push_bind(*pid)
                    .push_bind(*inv)
                    .push_bind(*amt)
                    .push_bind(now);
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        let settled: Vec<(i64, i64)> = per_invoice.into_iter().collect();
        for chunk in settled.chunks(crate::store::sql::BATCH_ROWS) {
            // Driven by `id IN (...)`: an UPDATE ... FROM (VALUES ...) join lets
            // SQLite 3.46 choose a full scan of the invoices.
            let sql = crate::store::sql::settle_invoices_sql(chunk.len());
            let mut q = sqlx::query(&sql).bind(now);
            for (inv, amt) in chunk {
                q = q.bind(*inv).bind(*amt);
            }
            q.execute(&mut *self.tx).await?;
        }

        // Outcomes; unchanged payments report the allocations they already had.
        let unchanged: Vec<i64> = (0..batch.len())
            .filter(|i| plans[*i].is_none())
            .filter_map(|i| payment_ids[i])
            .collect();
        let mut previous: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        let rows: Vec<(i64, String, i64)> = select_in(
            &mut self.tx,
            "SELECT a.payment_id, i.number, a.amount_minor FROM allocations a JOIN invoices i ON i.id = a.invoice_id WHERE a.payment_id IN (",
            &unchanged,
            " ORDER BY a.id",
            true,
        )
        .await?;
        for (pid, number, amt) in rows {
            previous.entry(pid).or_default().push((number, amt));
        }
        let mut unapplied_before: HashMap<i64, i64> = HashMap::new();
        let rows: Vec<(i64, i64)> = select_in(
            &mut self.tx,
            "SELECT id, unapplied_minor FROM payments WHERE id IN (",
            &unchanged,
            "",
            true,
        )
        .await?;
        unapplied_before.extend(rows);
        let mut out = Vec::with_capacity(batch.len());
        for (i, (_, p)) in batch.iter().enumerate() {
            let cur = p.currency;
            out.push(match &plans[i] {
                Some(plan) => PaymentOutcome {
                    status: status[i],
                    allocations: plan
                        .lines
                        .iter()
                        .map(|(inv, amt)| {
                            (
                                numbers.get(inv).cloned().unwrap_or_default(),
                                cur.from_minor(*amt),
                            )
                        })
                        .collect(),
                    unapplied: cur.from_minor(plan.unapplied_minor),
                    by_reference: plan.by_reference,
                },
                None => {
                    let id = payment_ids[i].unwrap_or_default();
                    PaymentOutcome {
                        status: status[i],
                        allocations: previous
                            .remove(&id)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(n, a)| (n, cur.from_minor(a)))
                            .collect(),
                        unapplied: cur
                            .from_minor(unapplied_before.get(&id).copied().unwrap_or_default()),
                        by_reference: false,
                    }
                }
            });
        }
        Ok(out)
    }

    async fn set_customer_pause(
        &mut self,
        customer: &str,
        pause: Option<&crate::domain::Pause>,
    ) -> crate::store::Result<()> {
        let sql = "UPDATE customers SET pause_reason = $1, paused_until = $2, updated_at = $3 WHERE external_id = $4";
        self.set_reason(
            sql,
            pause.map(|p| p.reason.clone()),
            pause.and_then(|p| p.until),
            "customer",
            customer,
        )
        .await?;
        let now = chrono::Utc::now();
        self.record_hold(
            HoldOf::Customer(customer),
            "pause",
            pause.map(|p| (p.reason.as_str(), now, p.until)),
            now,
        )
        .await
    }

    async fn set_invoice_pause(
        &mut self,
        number: &str,
        pause: Option<&crate::domain::Pause>,
    ) -> crate::store::Result<()> {
        let sql = "UPDATE invoices SET pause_reason = $1, paused_until = $2, updated_at = $3 WHERE number = $4";
        self.set_reason(
            sql,
            pause.map(|p| p.reason.clone()),
            pause.and_then(|p| p.until),
            "invoice",
            number,
        )
        .await?;
        let now = chrono::Utc::now();
        self.record_hold(
            HoldOf::Invoice(number),
            "pause",
            pause.map(|p| (p.reason.as_str(), now, p.until)),
            now,
        )
        .await
    }

    async fn complete_call_task(
        &mut self,
        id: i64,
        outcome: crate::store::call_tasks::CallOutcome,
        note: Option<&str>,
        by: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM call_tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        match status.as_deref() {
            None => {
                return Err(crate::store::StoreError::NotFound {
                    what: "call task",
                    key: id.to_string(),
                })
            }
            Some("open") => {}
            Some(s) => {
                return Err(crate::store::StoreError::Invalid(format!(
                    "call task {id} is already {s}"
                )))
            }
        }
        sqlx::query("UPDATE call_tasks SET status = 'done', outcome = $1, note = $2, completed_by = $3, completed_at = $4 WHERE id = $5 AND status = 'open'")
            .bind(outcome.as_str())
            .bind(note)
            .bind(by)
            .bind(now)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn set_invoice_dispute(
        &mut self,
        number: &str,
        dispute: Option<&crate::domain::Dispute>,
    ) -> crate::store::Result<()> {
        let sql = "UPDATE invoices SET dispute_reason = $1, disputed_at = $2, updated_at = $3 WHERE number = $4";
        self.set_reason(
            sql,
            dispute.map(|d| d.reason.clone()),
            dispute.map(|d| d.opened_at),
            "invoice",
            number,
        )
        .await?;
        self.record_hold(
            HoldOf::Invoice(number),
            "dispute",
            dispute.map(|d| (d.reason.as_str(), d.opened_at, None)),
            chrono::Utc::now(),
        )
        .await
    }

    async fn record_einvoice_status(
        &mut self,
        number: &str,
        code: u16,
        status: &str,
        date: chrono::NaiveDate,
        reason: Option<&str>,
        amount_minor: Option<i64>,
        source: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "INSERT INTO einvoice_statuses (invoice, code, status, status_date, reason, amount_minor, source, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(number)
        .bind(i64::from(code))
        .bind(status)
        .bind(date)
        .bind(reason)
        .bind(amount_minor)
        .bind(source)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE invoices SET einvoice_status = $1, updated_at = $2 WHERE number = $3")
            .bind(status)
            .bind(now)
            .bind(number)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn cancel_invoice(
        &mut self,
        number: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "UPDATE invoices SET erp_status = 'cancelled', status = 'cancelled', updated_at = $1 WHERE number = $2",
        )
        .bind(now)
        .bind(number)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn add_promise(
        &mut self,
        p: &crate::store::NewPromise,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        let customer: Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
                .bind(&p.customer)
                .fetch_optional(&mut *self.tx)
                .await?;
        let customer_id = customer.ok_or_else(|| crate::store::StoreError::NotFound {
            what: "customer",
            key: p.customer.clone(),
        })?;
        let open: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, number, currency, open_minor FROM invoices WHERE customer_id = $1 AND status = 'open' AND open_minor > 0 ORDER BY due_date, number",
        )
        .bind(customer_id)
        .fetch_all(&mut *self.tx)
        .await?;
        let chosen: Vec<&(i64, String, String, i64)> = if p.invoices.is_empty() {
            open.iter().collect()
        } else {
            let mut v = Vec::new();
            for n in &p.invoices {
                match open.iter().find(|(_, num, _, _)| num == n) {
                    Some(row) => v.push(row),
                    None => {
                        return Err(crate::store::StoreError::Invalid(format!(
                            "invoice {n} is not an open invoice of customer {}",
                            p.customer
                        )))
                    }
                }
            }
            v
        };
        if chosen.is_empty() {
            return Err(crate::store::StoreError::Invalid(format!(
                "customer {} has no open invoice to promise",
                p.customer
            )));
        }
        let cur_code = chosen[0].2.clone();
        if chosen.iter().any(|r| r.2 != cur_code) {
            return Err(crate::store::StoreError::Invalid(
                "a promise covers invoices of one currency".into(),
            ));
        }
        let cur = crate::store::rows::currency(&cur_code)?;
        let amount = cur
            .to_minor(p.amount)
            .map_err(|e| crate::store::StoreError::Invalid(e.to_string()))?;
        if amount <= 0 {
            return Err(crate::store::StoreError::Invalid(
                "the promised amount must be positive".into(),
            ));
        }
        let open_total: i64 = chosen.iter().map(|r| r.3).sum();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO promises (customer_id, promised_date, currency, amount_minor, open_at_promise_minor, status, note, created_at, call_task_id) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8) RETURNING id",
        )
        .bind(customer_id)
        .bind(p.promised_date)
        .bind(&cur_code)
        .bind(amount)
        .bind(open_total)
        .bind(&p.note)
        .bind(now)
        .bind(p.call_task)
        .fetch_one(&mut *self.tx)
        .await?;
        for row in chosen {
            sqlx::query("INSERT INTO promise_invoices (promise_id, invoice_id) VALUES ($1, $2)")
                .bind(id)
                .bind(row.0)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(id)
    }

    async fn record_past_action(
        &mut self,
        a: &crate::store::PastAction,
    ) -> crate::store::Result<bool> {
        let mut invoices = a.invoices.clone();
        invoices.sort();
        invoices.dedup();
        let named: Vec<(String, i64, String, String)> = if invoices.is_empty() {
            Vec::new()
        } else {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT currency, amount_minor, status, number FROM invoices WHERE customer_id = ",
            );
            qb.push_bind(a.customer_id);
            qb.push(" AND number IN (");
            let mut sep = qb.separated(", ");
            for n in &invoices {
                sep.push_bind(n.clone());
            }
            qb.push(")");
            qb.build_query_as()
                .persistent(false)
                .fetch_all(&mut *self.tx)
                .await?
        };
        if named.len() != invoices.len() {
            return Err(crate::store::StoreError::Invalid(
                "an invoice named is not one of the customer's".into(),
            ));
        }
        let currency = match named.first() {
            Some((c, ..)) => c.clone(),
            None => {
                sqlx::query_scalar("SELECT currency FROM customers WHERE id = $1")
                    .bind(a.customer_id)
                    .fetch_one(&mut *self.tx)
                    .await?
            }
        };
        if named.iter().any(|(c, ..)| *c != currency) {
            return Err(crate::store::StoreError::Invalid(
                "an action names invoices of one currency".into(),
            ));
        }
        let amount_minor = match a.amount {
            Some(amount) => crate::store::rows::currency(&currency)?
                .to_minor(amount)
                .map_err(|e| crate::store::StoreError::Invalid(e.to_string()))?,
            None => named.iter().map(|(_, m, ..)| m).sum(),
        };
        let day = a.sent_at.date_naive();
        let key = format!(
            "hist-{}",
            &crate::digest::sha256_hex(
                format!(
                    "{}|{}|{}|{}|{day}",
                    a.customer_id,
                    a.kind.as_str(),
                    a.step,
                    invoices.join(",")
                )
                .as_bytes()
            )[..32]
        );
        let facts = serde_json::json!({ "imported_from": a.source }).to_string();
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO actions (idempotency_key, customer_id, segment, kind, step, options, currency, amount_minor, \
             rule_file, rule_hash, facts, decided_on, status, attempts, created_at, updated_at, invoice_numbers, variant) \
             SELECT $1, id, segment, $2, $3, '{}', $4, $5, $6, 'imported', $7, $8, 'sent', 1, $9, $9, $10, $12 FROM customers WHERE id = $11 \
             ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(&key)
        .bind(a.kind.as_str())
        .bind(&a.step)
        .bind(&currency)
        .bind(amount_minor)
        .bind(&a.source)
        .bind(&facts)
        .bind(day)
        .bind(a.sent_at)
        .bind(crate::store::actions::invoice_numbers_json(&invoices))
        .bind(a.customer_id)
        .bind(&a.variant)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(id) = id else { return Ok(false) };
        sqlx::query("INSERT INTO action_events (action_id, at, status, attempt, detail) VALUES ($1, $2, 'sent', 1, $3)")
            .bind(id)
            .bind(a.sent_at)
            .bind(format!("imported from {}", a.source))
            .execute(&mut *self.tx)
            .await?;
        StoreImpl::record_contact(&mut self.tx, a.customer_id, a.sent_at, a.kind.as_str(), id)
            .await?;
        // The state is the open invoices' (a closed one's steps come back from the log
        // if it reopens).
        let open: Vec<String> = named
            .iter()
            .filter(|n| n.2 == "open")
            .map(|n| n.3.clone())
            .collect();
        let steps = crate::store::steps::fold([crate::store::steps::StepSource {
            id,
            customer_id: a.customer_id,
            invoices: &open,
            kind: a.kind.as_str(),
            step: &a.step,
            day,
            status: "sent",
        }]);
        StoreImpl::upsert_steps(&mut self.tx, &steps).await?;
        Ok(true)
    }

    async fn refresh_promises(
        &mut self,
        today: chrono::NaiveDate,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<u64> {
        let pending: Vec<(i64, chrono::NaiveDate, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT p.id, p.promised_date, p.currency, p.amount_minor, p.open_at_promise_minor, \
             COALESCE(CAST(SUM(i.open_minor) AS BIGINT), 0) \
             FROM promises p LEFT JOIN promise_invoices pi ON pi.promise_id = p.id \
             LEFT JOIN invoices i ON i.id = pi.invoice_id AND i.status = 'open' \
             WHERE p.status = 'pending' GROUP BY p.id, p.promised_date, p.currency, p.amount_minor, p.open_at_promise_minor",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut changed = 0;
        for (id, date, cur, amount, open_then, open_now) in pending {
            let cur = crate::store::rows::currency(&cur)?;
            let status = crate::domain::promise_status(
                date,
                cur.from_minor(amount),
                cur.from_minor((open_then - open_now).max(0)),
                cur.from_minor(open_now),
                today,
            );
            if status != crate::domain::PromiseStatus::Pending {
                sqlx::query("UPDATE promises SET status = $1, resolved_at = $2 WHERE id = $3 AND status = 'pending'")
                    .bind(status.as_str())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn record_import(
        &mut self,
        r: &crate::store::ImportRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "INSERT INTO imports (kind, file_name, sha256, rows_read, rows_written, rows_rejected, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.kind)
        .bind(&r.file_name)
        .bind(&r.sha256)
        .bind(r.rows_read as i64)
        .bind(r.rows_written as i64)
        .bind(r.rows_rejected as i64)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> crate::store::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> crate::store::Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Payments as the API and the command line show them: each with its allocations
/// (`(payment id, invoice number, amount in minor units)` rows, in allocation order)
/// and what is unapplied.
fn payment_views(
    rows: Vec<crate::store::rows::PaymentRow>,
    allocations: &[(i64, String, i64)],
) -> crate::store::Result<Vec<(i64, crate::store::PaymentView)>> {
    let mut by_payment: std::collections::HashMap<i64, Vec<(String, i64)>> =
        std::collections::HashMap::new();
    for (payment, invoice, minor) in allocations {
        by_payment
            .entry(*payment)
            .or_default()
            .push((invoice.clone(), *minor));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (id, payment, unapplied) = r.into_payment()?;
        let cur = payment.currency;
        let allocations = by_payment
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|(invoice, minor)| (invoice, cur.from_minor(minor)))
            .collect();
        out.push((
            id,
            crate::store::PaymentView {
                payment,
                allocations,
                unapplied: cur.from_minor(unapplied),
            },
        ));
    }
    Ok(out)
}

impl StoreImpl {
    /// Applies this backend's pending migrations (its `MIGRATOR`).
    async fn run_migrations(&self) -> crate::store::Result<usize> {
        let applied = |pool: &sqlx::Pool<Db>| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await
                    .map_or(0, |n| n as usize)
            }
        };
        let before = applied(&self.pool).await;
        self.apply_migrations().await?;
        Ok(applied(&self.pool).await - before)
    }

    /// The accounts of about the next `batch` customers with open invoices after
    /// customer id `after`, and the last customer id read (`None` when there are no
    /// more). One statement reads a range of the covering index, limited in rows;
    /// the last customer it reached is left for the next batch unless it is the only
    /// one, whose invoices are then read to the end.
    pub(crate) async fn load_account_batch(
        pool: sqlx::Pool<Db>,
        filter: std::sync::Arc<crate::store::AccountFilter>,
        probe_segments: bool,
        after: Option<i64>,
        batch: i64,
    ) -> crate::store::Result<(crate::store::accounts::ReadBatch, Option<i64>)> {
        const INVOICES_PER_CUSTOMER: i64 = 10;
        let select = |after: Option<i64>, only: Option<i64>, limit: Option<i64>| {
            let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                "SELECT {} FROM invoices WHERE status = 'open' AND open_minor > 0",
                crate::store::rows::OPEN_INVOICE_COLUMNS
            ));
            if let Some(after) = after {
                qb.push(" AND customer_id > ");
                qb.push_bind(after);
            }
            if let Some(only) = only {
                qb.push(" AND customer_id = ");
                qb.push_bind(only);
            }
            // A correlated test rather than `IN (SELECT ...)`: the index range on
            // invoices drives the statement, customers are probed by primary key.
            // The range is repeated on customers: PostgreSQL may merge-join them,
            // and would otherwise scan them from the first one for every batch.
            if let Some(segments) = filter.segments.as_ref().filter(|_| probe_segments) {
                qb.push(" AND EXISTS (SELECT 1 FROM customers c WHERE c.id = invoices.customer_id");
                if let Some(after) = after {
                    qb.push(" AND c.id > ");
                    qb.push_bind(after);
                }
                qb.push(" AND c.segment IN (");
                let mut sep = qb.separated(", ");
                for s in segments {
                    sep.push_bind(s.clone());
                }
                qb.push("))");
            }
            qb.push(" ORDER BY customer_id, due_date, number");
            if let Some(limit) = limit {
                qb.push(" LIMIT ");
                qb.push_bind(limit);
            }
            qb
        };
        // One customer asked for by its external id: its id is looked up first, and
        // its open invoices read by the index on the customer (a test of each open
        // invoice's customer would read the whole portfolio's).
        let rows: Vec<crate::store::rows::OpenInvoiceRow> = if let Some(external) = &filter.customer
        {
            if after.is_some() {
                return Ok((crate::store::accounts::ReadBatch::default(), None));
            }
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
                    .bind(external)
                    .fetch_optional(&pool)
                    .await?;
            let Some(id) = id else {
                return Ok((crate::store::accounts::ReadBatch::default(), None));
            };
            select(None, Some(id), None)
                .build_query_as()
                .fetch_all(&pool)
                .await?
        } else {
            let limit = batch.saturating_mul(INVOICES_PER_CUSTOMER);
            let mut rows: Vec<crate::store::rows::OpenInvoiceRow> =
                select(after, None, Some(limit))
                    .build_query_as()
                    .fetch_all(&pool)
                    .await?;
            let Some(last) = rows.last().map(|r| r.0) else {
                return Ok((crate::store::accounts::ReadBatch::default(), None));
            };
            if rows.len() as i64 == limit {
                if rows.first().map(|r| r.0) == Some(last) {
                    // One customer fills the batch: read all of its invoices.
                    rows = select(None, Some(last), None)
                        .build_query_as()
                        .fetch_all(&pool)
                        .await?;
                } else {
                    // The last customer may have more invoices: it starts the next batch.
                    while rows.last().map(|r| r.0) == Some(last) {
                        rows.pop();
                    }
                }
            }
            rows
        };
        let last = rows.last().map(|r| r.0);
        let rows = rows
            .into_iter()
            .map(crate::store::rows::open_invoice)
            .collect::<crate::store::Result<Vec<_>>>()?;
        let completing = Self::batch_rows(pool, &rows).await?;
        Ok((
            crate::store::accounts::ReadBatch {
                invoices: rows,
                rows: completing,
            },
            last,
        ))
    }

    /// What completes a batch of open invoices into accounts: customers, payments on
    /// the invoices, unapplied credit, steps applied and promises, one query each.
    /// Its queries run concurrently, each on its own connection.
    async fn batch_rows(
        pool: sqlx::Pool<Db>,
        rows: &[(i64, i64, i64, crate::domain::OpenInvoice)],
    ) -> crate::store::Result<crate::store::accounts::BatchRows> {
        type E = crate::store::StoreError;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        ids.dedup();
        // Each statement takes its list of ids as one parameter (see `IN_IDS`): its
        // text is the same for every batch, so it is prepared once per connection.
        let in_ids = Self::IN_IDS;
        let pool = &pool;
        let ids_param = Self::id_list(&ids);
        let ids_ref = &ids_param;

        let customers_q = async move {
            let sql = format!(
                "SELECT id, {} FROM customers WHERE id {in_ids}",
                crate::store::sql::CUSTOMER_COLUMNS
            );
            let rows: Vec<crate::store::rows::CustomerRowWithId> =
                sqlx::query_as(&sql).bind(ids_ref).fetch_all(pool).await?;
            Ok::<_, E>(rows)
        };
        // Payments that reduced the (partly paid) open invoices, with their dates.
        let partly: Vec<i64> = rows.iter().filter(|r| r.2 > 0).map(|r| r.1).collect();
        let paid_q = async {
            if partly.is_empty() {
                return Ok::<_, E>(Vec::new());
            }
            let sql = format!("SELECT a.invoice_id, p.date, a.amount_minor FROM allocations a JOIN payments p ON p.id = a.payment_id WHERE a.invoice_id {in_ids}");
            let list: Vec<(i64, chrono::NaiveDate, i64)> = sqlx::query_as(&sql)
                .bind(Self::id_list(&partly))
                .fetch_all(pool)
                .await?;
            Ok(list)
        };
        let credit_q = async move {
            let sql = format!(
                "SELECT customer_id, currency, CAST(SUM(unapplied_minor) AS BIGINT) FROM payments WHERE unapplied_minor > 0 AND customer_id {in_ids} \
                 GROUP BY customer_id, currency"
            );
            let rows: Vec<(i64, String, i64)> =
                sqlx::query_as(&sql).bind(ids_ref).fetch_all(pool).await?;
            Ok::<_, E>(rows)
        };
        // The steps applied to the batch's open invoices: the dunning state kept as
        // actions are recorded (closed invoices' steps, however many, are not kept).
        let history_q = async move {
            let sql = format!(
                "SELECT customer_id, invoice, kind, step, first_action, applied FROM invoice_steps WHERE customer_id {in_ids}"
            );
            let rows: Vec<(i64, String, String, String, i64, String)> =
                sqlx::query_as(&sql).bind(ids_ref).fetch_all(pool).await?;
            Ok::<_, E>(rows)
        };
        use crate::store::accounts::PromiseTuple;
        let promises_q = async move {
            let sql = format!(
                "SELECT p.customer_id, p.id, p.promised_date, p.currency, p.amount_minor, p.status, p.note, p.created_at FROM promises p \
                 WHERE p.status IN ('pending', 'broken') AND p.customer_id {in_ids} ORDER BY p.customer_id, p.id"
            );
            let promises: Vec<PromiseTuple> =
                sqlx::query_as(&sql).bind(ids_ref).fetch_all(pool).await?;
            let mut links: Vec<(i64, String)> = Vec::new();
            if !promises.is_empty() {
                let pids: Vec<i64> = promises.iter().map(|p| p.1).collect();
                let sql = format!("SELECT pi.promise_id, i.number FROM promise_invoices pi JOIN invoices i ON i.id = pi.invoice_id WHERE pi.promise_id {in_ids}");
                links = sqlx::query_as(&sql)
                    .bind(Self::id_list(&pids))
                    .fetch_all(pool)
                    .await?;
            }
            Ok::<_, E>((promises, links))
        };
        let (customers, paid, credit, steps, (promises, links)) =
            tokio::try_join!(customers_q, paid_q, credit_q, history_q, promises_q)?;
        Ok(crate::store::accounts::BatchRows {
            customers,
            paid,
            credit,
            steps,
            promises,
            links,
        })
    }
}

#[async_trait::async_trait]
impl crate::store::Store for StoreImpl {
    fn backend(&self) -> crate::store::Backend {
        BACKEND
    }

    async fn migrate(&self) -> crate::store::Result<usize> {
        self.run_migrations().await
    }

    async fn try_lead(&self) -> crate::store::Result<Option<Box<dyn crate::store::Leadership>>> {
        self.try_lead_impl().await
    }

    async fn size_write_cache_for_tick(&self, tick: bool) -> crate::store::Result<()> {
        self.size_write_cache_for_tick_impl(tick).await
    }

    async fn refresh_action_statistics(&self) -> crate::store::Result<()> {
        sqlx::query(Self::REFRESH_ACTION_STATISTICS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn refresh_statistics(&self) -> crate::store::Result<()> {
        sqlx::query(Self::REFRESH_STATISTICS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn migrations_applied(&self) -> crate::store::Result<(usize, usize)> {
        self.migrations_applied_sql().await
    }

    async fn close(&self) {
        self.close_writer().await;
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl crate::store::LedgerStore for StoreImpl {
    async fn begin(&self) -> crate::store::Result<Box<dyn crate::store::LedgerTx>> {
        let tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        Ok(Box::new(Tx { tx }))
    }

    async fn customer(
        &self,
        external_id: &str,
    ) -> crate::store::Result<Option<crate::domain::Customer>> {
        let sql = format!(
            "SELECT {} FROM customers WHERE external_id = $1",
            crate::store::sql::CUSTOMER_COLUMNS
        );
        let row: Option<crate::store::rows::CustomerRow> = sqlx::query_as(&sql)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(crate::domain::Customer::try_from).transpose()
    }

    async fn list_customers(
        &self,
        q: &crate::store::CustomerQuery,
    ) -> crate::store::Result<Vec<crate::store::Listed<crate::domain::Customer>>> {
        use sqlx::{FromRow as _, Row as _};
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {}, id AS list_id, updated_at AS list_updated FROM customers WHERE 1 = 1",
            crate::store::sql::CUSTOMER_COLUMNS
        ));
        if let Some(v) = &q.segment {
            qb.push(" AND segment = ").push_bind(v.clone());
        }
        if let Some(v) = &q.collector {
            qb.push(" AND collector = ").push_bind(v.clone());
        }
        if let Some(v) = q.updated_since {
            qb.push(" AND updated_at >= ").push_bind(v);
        }
        if let Some(v) = q.after_id {
            qb.push(" AND id > ").push_bind(v);
        }
        qb.push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(crate::store::Listed {
                id: r.try_get("list_id")?,
                updated_at: r.try_get("list_updated")?,
                item: crate::domain::Customer::try_from(
                    crate::store::rows::CustomerRow::from_row(r)?,
                )?,
            });
        }
        Ok(out)
    }

    async fn list_invoices(
        &self,
        q: &crate::store::InvoiceQuery,
    ) -> crate::store::Result<Vec<crate::store::Listed<crate::domain::Invoice>>> {
        use sqlx::{FromRow as _, Row as _};
        let select = crate::store::rows::INVOICE_SELECT.replacen(
            "SELECT ",
            "SELECT i.id AS list_id, i.updated_at AS list_updated, ",
            1,
        );
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!("{select} WHERE 1 = 1"));
        if let Some(v) = &q.customer {
            qb.push(" AND c.external_id = ").push_bind(v.clone());
        }
        if let Some(v) = q.status {
            qb.push(" AND i.status = ").push_bind(v.as_str());
        }
        if let Some(v) = q.due_from {
            qb.push(" AND i.due_date >= ").push_bind(v);
        }
        if let Some(v) = q.due_to {
            qb.push(" AND i.due_date <= ").push_bind(v);
        }
        if let Some(v) = q.issued_from {
            qb.push(" AND i.issue_date >= ").push_bind(v);
        }
        if let Some(v) = q.issued_to {
            qb.push(" AND i.issue_date <= ").push_bind(v);
        }
        if let Some(v) = q.updated_since {
            qb.push(" AND i.updated_at >= ").push_bind(v);
        }
        if let Some(v) = q.after_id {
            qb.push(" AND i.id > ").push_bind(v);
        }
        qb.push(" ORDER BY i.id LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(crate::store::Listed {
                id: r.try_get("list_id")?,
                updated_at: r.try_get("list_updated")?,
                item: crate::domain::Invoice::try_from(crate::store::rows::InvoiceRow::from_row(
                    r,
                )?)?,
            });
        }
        Ok(out)
    }

    async fn list_payments(
        &self,
        q: &crate::store::PaymentQuery,
    ) -> crate::store::Result<Vec<crate::store::Listed<crate::store::PaymentView>>> {
        use sqlx::{FromRow as _, Row as _};
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT p.id, p.external_id, c.external_id AS customer, p.kind, p.date, p.currency, p.amount_minor, p.unapplied_minor, p.reference, p.updated_at AS list_updated \
             FROM payments p JOIN customers c ON c.id = p.customer_id WHERE 1 = 1",
        );
        if let Some(v) = &q.id {
            qb.push(" AND p.external_id = ").push_bind(v.clone());
        }
        if let Some(v) = &q.customer {
            qb.push(" AND c.external_id = ").push_bind(v.clone());
        }
        if let Some(v) = q.from {
            qb.push(" AND p.date >= ").push_bind(v);
        }
        if let Some(v) = q.to {
            qb.push(" AND p.date <= ").push_bind(v);
        }
        if let Some(v) = q.updated_since {
            qb.push(" AND p.updated_at >= ").push_bind(v);
        }
        if let Some(v) = q.after_id {
            qb.push(" AND p.id > ").push_bind(v);
        }
        qb.push(" ORDER BY p.id LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut page = Vec::with_capacity(rows.len());
        let mut updated = Vec::with_capacity(rows.len());
        for r in &rows {
            updated.push(r.try_get::<chrono::DateTime<chrono::Utc>, _>("list_updated")?);
            page.push(crate::store::rows::PaymentRow::from_row(r)?);
        }
        // The page's allocations, in one statement taking the page's ids.
        let ids: Vec<i64> = page.iter().map(|p| p.id).collect();
        let allocations: Vec<(i64, String, i64)> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(&format!(
                "SELECT a.payment_id, i.number, a.amount_minor FROM allocations a JOIN invoices i ON i.id = a.invoice_id \
                 WHERE a.payment_id {} ORDER BY a.id",
                Self::IN_IDS
            ))
            .bind(Self::id_list(&ids))
            .fetch_all(&self.pool)
            .await?
        };
        Ok(payment_views(page, &allocations)?
            .into_iter()
            .zip(updated)
            .map(|((id, item), updated_at)| crate::store::Listed {
                id,
                item,
                updated_at,
            })
            .collect())
    }

    async fn customers(
        &self,
        segment: Option<&str>,
        limit: u32,
        after: Option<&str>,
    ) -> crate::store::Result<Vec<crate::domain::Customer>> {
        let sql = format!(
            "SELECT {} FROM customers WHERE ($1 IS NULL OR segment = $1) AND ($2 IS NULL OR external_id > $2) ORDER BY external_id LIMIT $3",
            crate::store::sql::CUSTOMER_COLUMNS
        );
        let rows: Vec<crate::store::rows::CustomerRow> = sqlx::query_as(&sql)
            .bind(segment)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(crate::domain::Customer::try_from)
            .collect()
    }

    async fn invoices_of(
        &self,
        customer: &str,
    ) -> crate::store::Result<Vec<crate::domain::Invoice>> {
        // Two index range scans: open invoices (invoices_open_by_customer) and the
        // others (invoices_closed_by_customer); each condition matches its partial index.
        let select = crate::store::rows::INVOICE_SELECT;
        let sql = format!(
            "{select} WHERE c.external_id = $1 AND i.status = 'open' \
             UNION ALL {select} WHERE c.external_id = $1 AND i.status <> 'open' ORDER BY 4, 1"
        );
        let rows: Vec<crate::store::rows::InvoiceRow> = sqlx::query_as(&sql)
            .bind(customer)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(crate::domain::Invoice::try_from)
            .collect()
    }

    async fn invoice(&self, number: &str) -> crate::store::Result<Option<crate::domain::Invoice>> {
        let sql = format!("{} WHERE i.number = $1", crate::store::rows::INVOICE_SELECT);
        let row: Option<crate::store::rows::InvoiceRow> = sqlx::query_as(&sql)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(crate::domain::Invoice::try_from).transpose()
    }

    async fn payments_of(
        &self,
        customer: &str,
    ) -> crate::store::Result<Vec<crate::store::PaymentView>> {
        let rows: Vec<crate::store::rows::PaymentRow> = sqlx::query_as(
            "SELECT p.id, p.external_id, c.external_id AS customer, p.kind, p.date, p.currency, p.amount_minor, p.unapplied_minor, p.reference \
             FROM payments p JOIN customers c ON c.id = p.customer_id WHERE c.external_id = $1 ORDER BY p.date, p.id",
        )
        .bind(customer)
        .fetch_all(&self.pool)
        .await?;
        let allocs: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT a.payment_id, i.number, a.amount_minor FROM allocations a JOIN invoices i ON i.id = a.invoice_id \
             JOIN payments p ON p.id = a.payment_id JOIN customers c ON c.id = p.customer_id WHERE c.external_id = $1 ORDER BY a.id",
        )
        .bind(customer)
        .fetch_all(&self.pool)
        .await?;
        Ok(payment_views(rows, &allocs)?
            .into_iter()
            .map(|(_, view)| view)
            .collect())
    }

    async fn promises_of(
        &self,
        customer: &str,
    ) -> crate::store::Result<Vec<crate::domain::PromiseToPay>> {
        let rows: Vec<crate::store::rows::PromiseRow> = sqlx::query_as(
            "SELECT p.id, c.external_id AS customer, p.promised_date, p.currency, p.amount_minor, p.status, p.note, p.created_at \
             FROM promises p JOIN customers c ON c.id = p.customer_id WHERE c.external_id = $1 ORDER BY p.created_at, p.id",
        )
        .bind(customer)
        .fetch_all(&self.pool)
        .await?;
        let links: Vec<(i64, String)> = sqlx::query_as(
            "SELECT pi.promise_id, i.number FROM promise_invoices pi JOIN invoices i ON i.id = pi.invoice_id \
             JOIN promises p ON p.id = pi.promise_id JOIN customers c ON c.id = p.customer_id WHERE c.external_id = $1 ORDER BY i.due_date, i.number",
        )
        .bind(customer)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let numbers = links
                    .iter()
                    .filter(|l| l.0 == r.id)
                    .map(|l| l.1.clone())
                    .collect();
                r.into_promise(numbers)
            })
            .collect()
    }

    fn accounts<'a>(
        &'a self,
        filter: &'a crate::store::AccountFilter,
        batch: usize,
    ) -> crate::store::AccountStream<'a> {
        // Batches of customers in id order, each read by short statements (keyset
        // pagination) rather than one statement over the whole portfolio: no
        // snapshot is held for the length of a tick, so SQLite's WAL can be
        // checkpointed while the tick writes. The next batch is read while the
        // caller works on the current one.
        Box::pin(async_stream::try_stream! {
            let filter = std::sync::Arc::new(filter.clone());
            // Testing each invoice's customer for its segment is a lookup per
            // invoice; when no customer is outside the segments asked for (a tick of
            // every segment), the statement leaves the test out. The customers read
            // with each batch are still checked (see `assemble_accounts`), so one
            // moved to another segment meanwhile is left out all the same.
            // (One customer asked for by its id is read whatever the cost of the test.)
            let mut probe = filter.segments.is_some();
            if let Some(segments) = filter.segments.as_ref().filter(|s| !s.is_empty() && filter.customer.is_none()) {
                let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT EXISTS (SELECT 1 FROM customers WHERE segment NOT IN (");
                let mut sep = qb.separated(", ");
                for s in segments {
                    sep.push_bind(s.clone());
                }
                qb.push("))");
                probe = qb.build_query_scalar().persistent(false).fetch_one(&self.pool).await?;
            }
            let load = |after: Option<i64>| {
                tokio::spawn(Self::load_batch(self.pool.clone(), filter.clone(), probe, after, batch.max(1) as i64))
            };
            // A batch read is put together into accounts by a task of its own, while
            // the next batch is read: reading and assembling run side by side.
            let assemble = |read: crate::store::accounts::ReadBatch| {
                let filter = filter.clone();
                tokio::spawn(async move {
                    crate::store::accounts::assemble(filter.segments.as_deref(), read.invoices, read.rows)
                })
            };
            let stopped = |e: tokio::task::JoinError| crate::store::StoreError::Invalid(format!("account reader: {e}"));
            let mut next = load(None);
            let mut assembling = None;
            loop {
                let (read, last) = next.await.map_err(stopped)??;
                let Some(last) = last else { break };
                next = load(Some(last));
                if let Some(previous) = assembling.replace(assemble(read)) {
                    yield previous.await.map_err(stopped)??;
                }
            }
            if let Some(previous) = assembling {
                yield previous.await.map_err(stopped)??;
            }
        })
    }

    async fn segments_with_open_invoices(
        &self,
        except: &[String],
    ) -> crate::store::Result<Vec<(String, i64)>> {
        let mut qb =
            sqlx::QueryBuilder::<Db>::new("SELECT c.segment, COUNT(*) FROM customers c WHERE ");
        if !except.is_empty() {
            qb.push("c.segment NOT IN (");
            let mut sep = qb.separated(", ");
            for s in except {
                sep.push_bind(s.clone());
            }
            qb.push(") AND ");
        }
        qb.push(
            "EXISTS (SELECT 1 FROM invoices i WHERE i.customer_id = c.id AND i.status = 'open' AND i.open_minor > 0) \
             GROUP BY c.segment ORDER BY c.segment",
        );
        let rows: Vec<(String, i64)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    async fn scan_open_invoices(&self) -> crate::store::Result<(u64, u64)> {
        self.scan_open_invoices_impl().await
    }

    async fn summary(
        &self,
        today: chrono::NaiveDate,
    ) -> crate::store::Result<crate::store::LedgerSummary> {
        let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
        let customers: i64 = sqlx::query_scalar(&count("customers"))
            .fetch_one(&self.pool)
            .await?;
        let invoices: i64 = sqlx::query_scalar(&count("invoices"))
            .fetch_one(&self.pool)
            .await?;
        let payments: i64 = sqlx::query_scalar(&count("payments"))
            .fetch_one(&self.pool)
            .await?;
        // Pending as of `today`: a promise whose date has passed by then is no longer
        // pending, whether or not a tick has marked it yet (reads never write).
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM promises WHERE status = 'pending' AND promised_date >= $1",
        )
        .bind(today)
        .fetch_one(&self.pool)
        .await?;
        let open: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT currency, COUNT(*), CAST(SUM(open_minor) AS BIGINT), CAST(SUM(CASE WHEN due_date < $1 THEN open_minor ELSE 0 END) AS BIGINT) \
             FROM invoices WHERE status = 'open' AND open_minor > 0 GROUP BY currency ORDER BY currency",
        )
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let credit: Vec<(String, i64)> = sqlx::query_as(
            "SELECT currency, CAST(SUM(unapplied_minor) AS BIGINT) FROM payments WHERE unapplied_minor > 0 GROUP BY currency ORDER BY currency",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by: std::collections::BTreeMap<String, crate::store::CurrencyTotals> =
            std::collections::BTreeMap::new();
        for (code, n, o, od) in open {
            let cur = crate::store::rows::currency(&code)?;
            let t = by
                .entry(code.clone())
                .or_insert_with(|| crate::store::CurrencyTotals::zero(cur));
            t.open_invoices = n as u64;
            t.open = cur.from_minor(o);
            t.overdue = cur.from_minor(od);
        }
        for (code, c) in credit {
            let cur = crate::store::rows::currency(&code)?;
            let t = by
                .entry(code.clone())
                .or_insert_with(|| crate::store::CurrencyTotals::zero(cur));
            t.unapplied_credit = cur.from_minor(c);
        }
        Ok(crate::store::LedgerSummary {
            customers: customers as u64,
            invoices: invoices as u64,
            payments: payments as u64,
            pending_promises: pending as u64,
            by_currency: by.into_values().collect(),
        })
    }
}

#[async_trait::async_trait]
impl crate::store::ActionLog for StoreImpl {
    async fn record_actions(
        &self,
        batch: &[crate::store::NewAction],
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::RecordCounts> {
        self.record_actions_sql(batch, now).await
    }

    async fn action_message(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<crate::store::actions::ClaimedAction>> {
        self.action_message_sql(id).await
    }

    async fn claim_actions(
        &self,
        owner: &str,
        lease_until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> crate::store::Result<Vec<crate::store::ClaimedAction>> {
        self.claim_actions_sql(owner, lease_until, now, limit).await
    }

    async fn complete_action(
        &self,
        action_id: i64,
        owner: &str,
        completion: &crate::store::Completion,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        self.complete_action_sql(action_id, owner, completion, now)
            .await
    }

    async fn extend_lease(
        &self,
        action_id: i64,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        self.extend_lease_sql(action_id, owner, until).await
    }

    async fn mark_transmitting(
        &self,
        action_id: i64,
        attempt: i64,
        part: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.mark_transmitting_sql(action_id, attempt, part, now)
            .await
    }

    async fn reclaim_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        hold: &[crate::domain::ActionKind],
    ) -> crate::store::Result<Vec<(i64, crate::store::ActionStatus)>> {
        self.reclaim_expired_sql(now, hold).await
    }

    async fn retry_action(
        &self,
        id: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.set_action_status_sql(
            id,
            &["dead", "failed", "blocked", "held", "cancelled", "retrying"],
            "planned",
            "requeued by an operator",
            now,
        )
        .await
    }

    async fn cancel_action(
        &self,
        id: i64,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.set_action_status_sql(
            id,
            &["planned", "retrying", "held", "dead"],
            "cancelled",
            reason,
            now,
        )
        .await
    }

    async fn list_actions(
        &self,
        filter: &crate::store::ActionFilter,
    ) -> crate::store::Result<Vec<crate::store::ActionRow>> {
        self.list_actions_sql(filter).await
    }

    async fn recent_contacts(
        &self,
        customer: &str,
        kinds: &[crate::domain::ActionKind],
        since: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<Vec<chrono::DateTime<chrono::Utc>>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        // The contacts kept by customer and time: the window's only.
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT k.at FROM contacts k WHERE k.customer_id = (SELECT id FROM customers WHERE external_id = ",
        );
        qb.push_bind(customer.to_string())
            .push(") AND k.at >= ")
            .push_bind(since)
            .push(" AND k.kind IN (");
        let mut sep = qb.separated(", ");
        for k in kinds {
            sep.push_bind(k.as_str());
        }
        qb.push(") ORDER BY k.at");
        let times: Vec<(chrono::DateTime<chrono::Utc>,)> =
            qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(times.into_iter().map(|t| t.0).collect())
    }

    async fn action_counts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::actions::ActionCounts> {
        self.action_counts_sql(now).await
    }

    async fn action(&self, id: i64) -> crate::store::Result<Option<crate::store::ActionDetail>> {
        self.action_detail_sql(id).await
    }
}

#[async_trait::async_trait]
impl crate::store::CallTaskStore for StoreImpl {
    async fn create_call_task(
        &self,
        task: &crate::store::call_tasks::NewCallTask,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        self.create_call_task_sql(task, now).await
    }

    async fn call_tasks(
        &self,
        filter: &crate::store::call_tasks::TaskFilter,
    ) -> crate::store::Result<Vec<crate::store::call_tasks::CallTask>> {
        self.call_tasks_sql(filter, None).await
    }

    async fn call_task(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<crate::store::call_tasks::CallTask>> {
        Ok(self
            .call_tasks_sql(
                &crate::store::call_tasks::TaskFilter {
                    limit: 1,
                    ..Default::default()
                },
                Some(id),
            )
            .await?
            .pop())
    }
}

#[async_trait::async_trait]
impl crate::store::DocumentStore for StoreImpl {
    async fn save_document(
        &self,
        doc: &crate::store::documents::NewDocument,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::documents::StoredDocument> {
        self.save_document_sql(doc, now).await
    }

    async fn documents(
        &self,
        action_id: i64,
    ) -> crate::store::Result<Vec<crate::store::documents::StoredDocument>> {
        self.documents_sql(action_id).await
    }

    async fn customer_documents(
        &self,
        customer: &str,
        limit: u32,
    ) -> crate::store::Result<Vec<crate::store::documents::StoredDocument>> {
        self.customer_documents_sql(customer, limit).await
    }

    async fn document_content(&self, id: i64) -> crate::store::Result<Option<Vec<u8>>> {
        self.document_content_sql(id).await
    }

    async fn record_delivered_part(
        &self,
        action_id: i64,
        part: &str,
        provider_ref: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.record_delivered_part_sql(action_id, part, provider_ref, now)
            .await
    }

    async fn delivered_parts(
        &self,
        action_id: i64,
    ) -> crate::store::Result<Vec<crate::store::documents::DeliveredPart>> {
        self.delivered_parts_sql(action_id).await
    }

    async fn endpoint_states(
        &self,
    ) -> crate::store::Result<Vec<crate::store::documents::EndpointState>> {
        self.endpoint_states_sql().await
    }

    async fn set_endpoint_state(
        &self,
        insurer: &str,
        disabled: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.set_endpoint_state_sql(insurer, disabled, now).await
    }
}

#[async_trait::async_trait]
impl crate::store::TokenStore for StoreImpl {
    async fn create_token(
        &self,
        name: &str,
        scopes: &[&str],
        sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        self.create_token_sql(name, scopes, sha256, now).await
    }

    async fn tokens(&self) -> crate::store::Result<Vec<crate::store::tokens::ApiToken>> {
        self.tokens_sql().await
    }

    async fn token_by_hash(
        &self,
        sha256: &str,
    ) -> crate::store::Result<Option<crate::store::tokens::ApiToken>> {
        self.token_by_hash_sql(sha256).await
    }

    async fn revoke_token(
        &self,
        id: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        self.revoke_token_sql(id, now).await
    }
}

#[async_trait::async_trait]
impl crate::store::TickStore for StoreImpl {
    async fn start_tick(
        &self,
        segment: &str,
        scheduled_for: chrono::DateTime<chrono::Utc>,
        trigger: &str,
        as_of: chrono::NaiveDate,
        instance: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        self.start_tick_sql(segment, scheduled_for, trigger, as_of, instance, now)
            .await
    }

    async fn finish_tick(
        &self,
        id: i64,
        status: &str,
        customers: i64,
        planned: i64,
        blocked: i64,
        errors: i64,
        detail: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        self.finish_tick_sql(id, status, customers, planned, blocked, errors, detail, now)
            .await
    }

    async fn last_tick(
        &self,
        segment: &str,
    ) -> crate::store::Result<Option<crate::store::TickRecord>> {
        self.last_tick_sql(segment).await
    }

    async fn abandon_ticks(
        &self,
        instance: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<u64> {
        let n = sqlx::query(
            "UPDATE ticks SET status = 'failed', detail = 'abandoned: the instance running it stopped before it finished (a new scheduler took over)', finished_at = $1 \
             WHERE status = 'running' AND trigger <> 'manual' AND instance <> $2",
        )
        .bind(now)
        .bind(instance)
        .execute(self.write_pool())
        .await?
        .rows_affected();
        Ok(n)
    }
}

/// Whose dispute or pause a hold is.
#[derive(Clone, Copy)]
enum HoldOf<'a> {
    /// A customer's pause, by external id.
    Customer(&'a str),
    /// An invoice's dispute or pause, by number.
    Invoice(&'a str),
}
