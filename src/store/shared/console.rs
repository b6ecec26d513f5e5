//! What the console reads beyond the ledger's own queries: the customer list, searched,
//! filtered and sorted by overdue. Shared by both backends like `actions.rs`.

// Rows are read as tuples, next to their SQL.
#![allow(clippy::type_complexity)]

use super::{Db, StoreImpl};
use crate::store::users::{CustomerQuery, CustomerRow};

#[async_trait::async_trait]
impl crate::store::ConsoleStore for StoreImpl {
    async fn search_customers(&self, q: &CustomerQuery) -> crate::store::Result<Vec<CustomerRow>> {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT c.external_id, c.name, c.segment, c.collector, c.currency, \
             CAST(COALESCE(SUM(CASE WHEN i.status = 'open' THEN i.open_minor ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN i.status = 'open' AND i.due_date < ",
        );
        qb.push_bind(q.today);
        qb.push(" THEN i.open_minor ELSE 0 END), 0) AS BIGINT) AS overdue, MIN(CASE WHEN i.status = 'open' AND i.open_minor > 0 AND i.due_date < ");
        qb.push_bind(q.today);
        qb.push(
            " THEN i.due_date END) AS oldest, \
             CAST(CASE WHEN c.pause_reason IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN c.insured THEN 1 ELSE 0 END AS BIGINT) \
             FROM customers c LEFT JOIN invoices i ON i.customer_id = c.id WHERE 1 = 1",
        );
        if let Some(t) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let like = format!("%{}%", t.to_lowercase().replace(['\\', '%', '_'], ""));
            qb.push(" AND (c.external_id = ")
                .push_bind(t.to_string())
                .push(" OR c.siren = ")
                .push_bind(t.replace(' ', ""))
                .push(" OR LOWER(c.name) LIKE ")
                .push_bind(like)
                .push(" OR EXISTS (SELECT 1 FROM invoices x WHERE x.customer_id = c.id AND x.number = ")
                .push_bind(t.to_string())
                .push("))");
        }
        if let Some(s) = &q.segment {
            qb.push(" AND c.segment = ").push_bind(s.clone());
        }
        if let Some(s) = &q.collector {
            qb.push(" AND c.collector = ").push_bind(s.clone());
        }
        if q.paused {
            qb.push(" AND c.pause_reason IS NOT NULL");
        }
        if q.insured {
            qb.push(" AND c.insured");
        }
        if q.disputed {
            qb.push(" AND EXISTS (SELECT 1 FROM invoices d WHERE d.customer_id = c.id AND d.status = 'open' AND d.dispute_reason IS NOT NULL)");
        }
        if q.promised {
            qb.push(" AND EXISTS (SELECT 1 FROM promises p WHERE p.customer_id = c.id AND p.status = 'pending')");
        }
        qb.push(" GROUP BY c.id, c.external_id, c.name, c.segment, c.collector, c.currency, c.pause_reason, c.insured");
        let mut having = " HAVING ";
        if let Some(d) = q.min_days {
            qb.push(having)
                .push("MIN(CASE WHEN i.status = 'open' AND i.open_minor > 0 AND i.due_date < ")
                .push_bind(q.today)
                .push(" THEN i.due_date END) <= ")
                .push_bind(q.today - chrono::Duration::days(d));
            having = " AND ";
        }
        if let Some(d) = q.max_days {
            qb.push(having)
                .push("MIN(CASE WHEN i.status = 'open' AND i.open_minor > 0 AND i.due_date < ")
                .push_bind(q.today)
                .push(" THEN i.due_date END) >= ")
                .push_bind(q.today - chrono::Duration::days(d));
        }
        qb.push(" ORDER BY overdue DESC, c.external_id LIMIT ")
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
            })
            .collect())
    }
}
