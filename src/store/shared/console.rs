//! What the console reads beyond the ledger's own queries: the customer list, searched,
//! filtered and sorted by overdue. Shared by both backends like `actions.rs`.

// Rows are read as tuples, next to their SQL.
#![allow(clippy::type_complexity)]

use super::{Db, StoreImpl};
use crate::store::users::{CustomerQuery, CustomerRow, IndexedCustomer};

#[async_trait::async_trait]
impl crate::store::ConsoleStore for StoreImpl {
    async fn search_customers(&self, q: &CustomerQuery) -> crate::store::Result<Vec<CustomerRow>> {
        // The customers the filters keep (`m`), then the open invoices of those only,
        // read through the index of open invoices by customer (`a`): a search reads a
        // few customers' invoices, the whole list reads the open invoices once (never
        // the closed ones).
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "WITH m AS (SELECT c.id, c.external_id, c.name, c.segment, c.collector, c.currency, \
             CAST(CASE WHEN c.pause_reason IS NULL THEN 0 ELSE 1 END AS BIGINT) AS paused, \
             CAST(CASE WHEN c.insured THEN 1 ELSE 0 END AS BIGINT) AS insured \
             FROM customers c WHERE 1 = 1",
        );
        let mut narrowed = false;
        if let Some(t) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let like = format!("%{}%", t.to_lowercase().replace(['\\', '%', '_'], ""));
            // Invoice numbers are unique: the one invoice names its customer.
            qb.push(" AND (c.external_id = ")
                .push_bind(t.to_string())
                .push(" OR c.siren = ")
                .push_bind(t.replace(' ', ""))
                .push(" OR LOWER(c.name) LIKE ")
                .push_bind(like)
                .push(" OR c.id = (SELECT x.customer_id FROM invoices x WHERE x.number = ")
                .push_bind(t.to_string())
                .push("))");
            narrowed = true;
        }
        if let Some(s) = &q.segment {
            qb.push(" AND c.segment = ").push_bind(s.clone());
            narrowed = true;
        }
        if let Some(s) = &q.collector {
            qb.push(" AND c.collector = ").push_bind(s.clone());
            narrowed = true;
        }
        if q.paused {
            qb.push(" AND c.pause_reason IS NOT NULL");
            narrowed = true;
        }
        if q.insured {
            qb.push(" AND c.insured");
            narrowed = true;
        }
        if q.disputed {
            qb.push(" AND EXISTS (SELECT 1 FROM invoices d WHERE d.customer_id = c.id AND d.status = 'open' AND d.dispute_reason IS NOT NULL)");
            narrowed = true;
        }
        if q.promised {
            qb.push(" AND EXISTS (SELECT 1 FROM promises p WHERE p.customer_id = c.id AND p.status = 'pending')");
            narrowed = true;
        }
        qb.push(
            "), a AS (SELECT customer_id, SUM(open_minor) AS open_minor, \
             SUM(CASE WHEN due_date < ",
        );
        qb.push_bind(q.today);
        qb.push(
            " THEN open_minor ELSE 0 END) AS overdue, MIN(CASE WHEN open_minor > 0 AND due_date < ",
        );
        qb.push_bind(q.today);
        qb.push(" THEN due_date END) AS oldest, MAX(CASE WHEN dispute_reason IS NOT NULL THEN 1 ELSE 0 END) AS disputed FROM invoices WHERE status = 'open'");
        if narrowed {
            qb.push(" AND customer_id IN (SELECT id FROM m)");
        }
        qb.push(
            " GROUP BY customer_id) \
             SELECT m.external_id, m.name, m.segment, m.collector, m.currency, \
             CAST(COALESCE(a.open_minor, 0) AS BIGINT), CAST(COALESCE(a.overdue, 0) AS BIGINT), \
             a.oldest, m.paused, m.insured, CAST(COALESCE(a.disputed, 0) AS BIGINT), \
             CAST(CASE WHEN p.customer_id IS NULL THEN 0 ELSE 1 END AS BIGINT) \
             FROM m LEFT JOIN a ON a.customer_id = m.id \
             LEFT JOIN (SELECT DISTINCT customer_id FROM promises WHERE status = 'pending') p ON p.customer_id = m.id \
             WHERE 1 = 1",
        );
        if let Some(d) = q.min_days {
            qb.push(" AND a.oldest <= ")
                .push_bind(q.today - chrono::Duration::days(d));
        }
        if let Some(d) = q.max_days {
            qb.push(" AND a.oldest >= ")
                .push_bind(q.today - chrono::Duration::days(d));
        }
        qb.push(" ORDER BY COALESCE(a.overdue, 0) DESC, m.external_id LIMIT ")
            .push_bind(i64::from(q.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        let rows: Vec<(
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            Option<chrono::NaiveDate>,
            i64,
            i64,
            i64,
            i64,
        )> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| CustomerRow {
                external_id: r.0,
                name: r.1,
                segment: r.2,
                collector: r.3,
                currency: r.4,
                open_minor: r.5,
                overdue_minor: r.6,
                oldest_due: r.7,
                paused: r.8 != 0,
                insured: r.9 != 0,
                disputed: r.10 != 0,
                promised: r.11 != 0,
            })
            .collect())
    }

    async fn customer_index(
        &self,
        today: chrono::NaiveDate,
    ) -> crate::store::Result<Vec<IndexedCustomer>> {
        let rows: Vec<(
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            Option<chrono::NaiveDate>,
            i64,
            i64,
            Option<String>,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT c.external_id, c.name, c.segment, c.collector, c.currency, \
             CAST(COALESCE(a.open_minor, 0) AS BIGINT), CAST(COALESCE(a.overdue, 0) AS BIGINT), a.oldest, \
             CAST(CASE WHEN c.pause_reason IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN c.insured THEN 1 ELSE 0 END AS BIGINT), c.siren, \
             CAST(COALESCE(a.disputed, 0) AS BIGINT), \
             CAST(CASE WHEN p.customer_id IS NULL THEN 0 ELSE 1 END AS BIGINT) \
             FROM customers c \
             LEFT JOIN (SELECT customer_id, SUM(open_minor) AS open_minor, \
                 SUM(CASE WHEN due_date < $1 THEN open_minor ELSE 0 END) AS overdue, \
                 MIN(CASE WHEN open_minor > 0 AND due_date < $2 THEN due_date END) AS oldest, \
                 MAX(CASE WHEN dispute_reason IS NOT NULL THEN 1 ELSE 0 END) AS disputed \
                 FROM invoices WHERE status = 'open' GROUP BY customer_id) a ON a.customer_id = c.id \
             LEFT JOIN (SELECT DISTINCT customer_id FROM promises WHERE status = 'pending') p ON p.customer_id = c.id",
        )
        .bind(today)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| IndexedCustomer {
                row: CustomerRow {
                    external_id: r.0,
                    name: r.1,
                    segment: r.2,
                    collector: r.3,
                    currency: r.4,
                    open_minor: r.5,
                    overdue_minor: r.6,
                    oldest_due: r.7,
                    paused: r.8 != 0,
                    insured: r.9 != 0,
                    disputed: r.11 != 0,
                    promised: r.12 != 0,
                },
                siren: r.10,
            })
            .collect())
    }
}
