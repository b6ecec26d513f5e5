//! What the console reads beyond the ledger's own queries: the customer list, searched,
//! filtered and sorted by overdue, and the index of every customer it searches in
//! memory. Shared by both backends like `actions.rs`.

use super::{Db, StoreImpl};
use crate::store::users::{CustomerQuery, CustomerRow, IndexedCustomer};

/// A customer of the list, as both statements below read it (`a` the customer's open
/// balances, `p` its pending promises, the customer's own columns unqualified).
const LIST_COLUMNS: &str = "CAST(COALESCE(a.open_minor, 0) AS BIGINT) AS open_minor, \
     CAST(COALESCE(a.overdue, 0) AS BIGINT) AS overdue_minor, a.oldest AS oldest, \
     CAST(CASE WHEN pause_reason IS NULL THEN 0 ELSE 1 END AS BIGINT) AS is_paused, \
     CAST(CASE WHEN insured THEN 1 ELSE 0 END AS BIGINT) AS is_insured, \
     CAST(COALESCE(a.disputed, 0) AS BIGINT) AS disputed, \
     CAST(CASE WHEN p.customer_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS promised";

/// The customers with a pending promise.
const PROMISED: &str = "(SELECT DISTINCT customer_id FROM promises WHERE status = 'pending')";

#[derive(sqlx::FromRow)]
struct ListRow {
    external_id: String,
    name: String,
    segment: String,
    collector: Option<String>,
    currency: String,
    open_minor: i64,
    overdue_minor: i64,
    oldest: Option<chrono::NaiveDate>,
    is_paused: i64,
    is_insured: i64,
    disputed: i64,
    promised: i64,
}

impl From<ListRow> for CustomerRow {
    fn from(r: ListRow) -> CustomerRow {
        CustomerRow {
            external_id: r.external_id,
            name: r.name,
            segment: r.segment,
            collector: r.collector,
            currency: r.currency,
            open_minor: r.open_minor,
            overdue_minor: r.overdue_minor,
            oldest_due: r.oldest,
            paused: r.is_paused != 0,
            insured: r.is_insured != 0,
            disputed: r.disputed != 0,
            promised: r.promised != 0,
        }
    }
}

#[derive(sqlx::FromRow)]
struct IndexRow {
    #[sqlx(flatten)]
    row: ListRow,
    siren: Option<String>,
}

/// Each customer's open balances as of `today` (`customer_id`, `open_minor`, `overdue`,
/// the oldest overdue due date `oldest`, `disputed`), from the open invoices only; the
/// caller may narrow the invoices (`AND ...`) before `GROUP BY customer_id` closes it.
fn push_open_balances(qb: &mut sqlx::QueryBuilder<'_, Db>, today: chrono::NaiveDate) {
    qb.push(
        "SELECT customer_id, SUM(open_minor) AS open_minor, \
         SUM(CASE WHEN due_date < ",
    );
    qb.push_bind(today);
    qb.push(
        " THEN open_minor ELSE 0 END) AS overdue, MIN(CASE WHEN open_minor > 0 AND due_date < ",
    );
    qb.push_bind(today);
    qb.push(
        " THEN due_date END) AS oldest, \
         MAX(CASE WHEN dispute_reason IS NOT NULL THEN 1 ELSE 0 END) AS disputed \
         FROM invoices WHERE status = 'open'",
    );
}

#[async_trait::async_trait]
impl crate::store::ConsoleStore for StoreImpl {
    async fn search_customers(&self, q: &CustomerQuery) -> crate::store::Result<Vec<CustomerRow>> {
        // The customers the filters keep (`m`), then the open invoices of those only,
        // read through the index of open invoices by customer (`a`): a search reads a
        // few customers' invoices, the whole list reads the open invoices once (never
        // the closed ones).
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "WITH m AS (SELECT c.id, c.external_id, c.name, c.segment, c.collector, c.currency, \
             c.pause_reason, c.insured FROM customers c WHERE 1 = 1",
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
        qb.push("), a AS (");
        push_open_balances(&mut qb, q.today);
        if narrowed {
            qb.push(" AND customer_id IN (SELECT id FROM m)");
        }
        qb.push(format!(
            " GROUP BY customer_id) \
             SELECT m.external_id, m.name, m.segment, m.collector, m.currency, {LIST_COLUMNS} \
             FROM m LEFT JOIN a ON a.customer_id = m.id \
             LEFT JOIN {PROMISED} p ON p.customer_id = m.id WHERE 1 = 1",
        ));
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
        let rows: Vec<ListRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(CustomerRow::from).collect())
    }

    async fn customer_index(
        &self,
        today: chrono::NaiveDate,
    ) -> crate::store::Result<Vec<IndexedCustomer>> {
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT c.external_id, c.name, c.segment, c.collector, c.currency, {LIST_COLUMNS}, c.siren \
             FROM customers c LEFT JOIN ("
        ));
        push_open_balances(&mut qb, today);
        qb.push(format!(
            " GROUP BY customer_id) a ON a.customer_id = c.id \
             LEFT JOIN {PROMISED} p ON p.customer_id = c.id"
        ));
        let rows: Vec<IndexRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| IndexedCustomer {
                row: CustomerRow::from(r.row),
                siren: r.siren,
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl crate::store::PortalStore for StoreImpl {
    async fn portal_generation(
        &self,
        external_id: &str,
    ) -> crate::store::Result<Option<(i64, u32)>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, CAST(portal_generation AS BIGINT) FROM customers WHERE external_id = $1",
        )
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, g)| (id, u32::try_from(g).unwrap_or(u32::MAX))))
    }

    async fn portal_customer(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<(crate::domain::Customer, u32)>> {
        let generation: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(portal_generation AS BIGINT) FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(generation) = generation else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM customers WHERE id = $1",
            crate::store::sql::CUSTOMER_COLUMNS
        );
        let row: Option<crate::store::rows::CustomerRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            crate::domain::Customer::try_from(row)?,
            u32::try_from(generation).unwrap_or(u32::MAX),
        )))
    }

    async fn revoke_portal_links(
        &self,
        external_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<Option<u32>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE customers SET portal_generation = portal_generation + 1, updated_at = $2 \
             WHERE external_id = $1 RETURNING CAST(portal_generation AS BIGINT)",
        )
        .bind(external_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(g,)| u32::try_from(g).unwrap_or(u32::MAX)))
    }

    async fn record_portal_visit(
        &self,
        customer: &str,
        action: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query("INSERT INTO portal_visits (customer, action_id, at) VALUES ($1, $2, $3)")
            .bind(customer)
            .bind(action)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn portal_visits_of(
        &self,
        customer: &str,
        limit: u32,
    ) -> crate::store::Result<Vec<(Option<i64>, chrono::DateTime<chrono::Utc>)>> {
        Ok(sqlx::query_as(
            "SELECT action_id, at FROM portal_visits WHERE customer = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(customer)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn action_opened(
        &self,
        action: i64,
    ) -> crate::store::Result<Option<(chrono::DateTime<chrono::Utc>, i64)>> {
        let first: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "SELECT at FROM portal_visits WHERE action_id = $1 ORDER BY id LIMIT 1",
        )
        .bind(action)
        .fetch_optional(&self.pool)
        .await?;
        let Some(first) = first else { return Ok(None) };
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM portal_visits WHERE action_id = $1")
                .bind(action)
                .fetch_one(&self.pool)
                .await?;
        Ok(Some((first, count)))
    }
}
