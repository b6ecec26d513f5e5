//! Scheduled report deliveries, shared by both backends like `actions.rs` (compiled
//! once for each). Claiming differs as it does for actions: PostgreSQL skips rows other
//! instances hold ([`StoreImpl::SKIP_LOCKED`]); SQLite has one writer.

// Rows are read as tuples, next to their SQL.
#![allow(clippy::type_complexity)]

use chrono::{DateTime, Utc};

use super::StoreImpl;
use crate::store::report_deliveries::{ReportDelivery, ReportOutcome};

const COLUMNS: &str = "id, report, period, recipient, slot, status, attempts, next_attempt_at, idempotency_key, document_sha256, last_error, planned_at, sent_at";

type Row = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    String,
    i64,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn delivery(r: Row) -> ReportDelivery {
    ReportDelivery {
        id: r.0,
        report: r.1,
        period: r.2,
        recipient: r.3,
        slot: r.4,
        status: r.5,
        attempts: r.6,
        next_attempt_at: r.7,
        key: r.8,
        document_sha256: r.9,
        last_error: r.10,
        planned_at: r.11,
        sent_at: r.12,
    }
}

#[async_trait::async_trait]
impl crate::store::ReportDeliveryStore for StoreImpl {
    async fn plan_report_deliveries(
        &self,
        report: &str,
        period: &str,
        slot: DateTime<Utc>,
        recipients: &[(String, String)],
        now: DateTime<Utc>,
    ) -> crate::store::Result<u64> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let mut planned = 0;
        for (recipient, key) in recipients {
            planned += sqlx::query(
                "INSERT INTO report_deliveries (report, period, recipient, slot, status, attempts, next_attempt_at, idempotency_key, planned_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'planned', 0, $5, $6, $5, $5) \
                 ON CONFLICT (report, period, recipient) DO NOTHING",
            )
            .bind(report)
            .bind(period)
            .bind(recipient)
            .bind(slot)
            .bind(now)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(planned)
    }

    async fn claim_report_delivery(
        &self,
        owner: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> crate::store::Result<Option<ReportDelivery>> {
        let due = "((status IN ('planned', 'retrying') AND next_attempt_at <= $3) OR (status = 'sending' AND lease_until < $3))";
        let sql = format!(
            "UPDATE report_deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id = (SELECT id FROM report_deliveries WHERE {due} ORDER BY id LIMIT 1{skip}) AND {due} \
             RETURNING {COLUMNS}",
            skip = Self::SKIP_LOCKED,
        );
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(delivery))
    }

    async fn finish_report_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &ReportOutcome,
        now: DateTime<Utc>,
    ) -> crate::store::Result<bool> {
        let held = "WHERE id = $1 AND status = 'sending' AND lease_owner = $2";
        let (sql, text, at) = match outcome {
            ReportOutcome::Sent { document_sha256 } => (
                format!("UPDATE report_deliveries SET status = 'sent', sent_at = $3, updated_at = $3, document_sha256 = $4, last_error = NULL, lease_owner = NULL, lease_until = NULL {held}"),
                document_sha256,
                now,
            ),
            ReportOutcome::Retry { error, at } => (
                format!("UPDATE report_deliveries SET status = 'retrying', next_attempt_at = $5, updated_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL {held}"),
                error,
                *at,
            ),
            ReportOutcome::Dead { error } => (
                format!("UPDATE report_deliveries SET status = 'dead', updated_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL {held}"),
                error,
                now,
            ),
        };
        let mut q = sqlx::query(&sql)
            .bind(id)
            .bind(owner)
            .bind(now)
            .bind(text.as_str());
        if matches!(outcome, ReportOutcome::Retry { .. }) {
            q = q.bind(at);
        }
        let done = q.execute(self.write_pool()).await?.rows_affected();
        Ok(done == 1)
    }

    async fn report_deliveries(&self, limit: i64) -> crate::store::Result<Vec<ReportDelivery>> {
        let sql = format!("SELECT {COLUMNS} FROM report_deliveries ORDER BY id DESC LIMIT $1");
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(delivery).collect())
    }
}
