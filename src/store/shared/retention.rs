//! Pruning past retention, and erasing a customer's personal data.

use super::StoreImpl;
use crate::store::retention::{ErasureCounts, PruneCounts, PruneCutoffs};

/// Statuses after which an action's documents are no longer needed to send it.
const DONE: &str = "('sent', 'dead', 'cancelled', 'failed')";

/// The text put in place of erased free text.
const ERASED: &str = "[erased]";

#[async_trait::async_trait]
impl crate::store::RetentionStore for StoreImpl {
    async fn prune(&self, c: &PruneCutoffs, dry_run: bool) -> crate::store::Result<PruneCounts> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        // A snapshot goes once every action that points at it is older than the cutoff
        // (one never pointed at is left: its action may be on its way).
        let facts_snapshots = sqlx::query(
            "DELETE FROM facts_snapshots WHERE EXISTS (SELECT 1 FROM actions a WHERE a.customer_id = facts_snapshots.customer_id \
             AND a.facts_sha256 = facts_snapshots.sha256 AND a.created_at < $1) \
             AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.customer_id = facts_snapshots.customer_id \
             AND a.facts_sha256 = facts_snapshots.sha256 AND a.created_at >= $1)",
        )
        .bind(c.facts_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut out = PruneCounts {
            facts_snapshots,
            ..PruneCounts::default()
        };
        // Actions recorded before snapshots existed carry their facts inline.
        out.inline_facts =
            sqlx::query("UPDATE actions SET facts = '' WHERE created_at < $1 AND facts <> ''")
                .bind(c.facts_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        for (formal, before) in [(false, c.messages_before), (true, c.formal_notices_before)] {
            let kind = if formal {
                "= 'formal_notice'"
            } else {
                "<> 'formal_notice'"
            };
            let rows: Vec<(i64, Option<String>)> = sqlx::query_as(&format!(
                "SELECT id, location FROM documents WHERE pruned_at IS NULL AND kind {kind} AND created_at < $1 \
                 AND action_id IN (SELECT id FROM actions WHERE status IN {DONE})"
            ))
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
            for (id, location) in &rows {
                sqlx::query(
                    "UPDATE documents SET content = NULL, location = NULL, pruned_at = $1 WHERE id = $2",
                )
                .bind(c.now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                out.document_files.extend(location.clone());
            }
            if formal {
                out.formal_notices = rows.len() as u64;
            } else {
                out.documents = rows.len() as u64;
            }
        }
        out.idempotency_keys = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(c.now - chrono::Duration::hours(24))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        out.console_sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(c.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn erase_customer(
        &self,
        external_id: &str,
        actor: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<Option<ErasureCounts>> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let Some(id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let mut out = ErasureCounts::default();
        // Contact details go; the name, identifiers and amounts stay (accounting
        // records). Dunning stops for good; the portal links stop opening.
        sqlx::query(
            "UPDATE customers SET emails = '[]', phones = '[]', address_line1 = NULL, address_line2 = NULL, \
             postal_code = NULL, city = NULL, pause_reason = 'personal data erased on request', paused_until = NULL, \
             portal_generation = portal_generation + 1, erased_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        out.facts_snapshots = sqlx::query("DELETE FROM facts_snapshots WHERE customer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE actions SET facts = '' WHERE customer_id = $1 AND facts <> ''")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        out.notes = sqlx::query("UPDATE notes SET text = $1 WHERE customer = $2 AND text <> $1")
            .bind(ERASED)
            .bind(external_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        out.task_notes = sqlx::query(
            "UPDATE call_tasks SET note = NULL WHERE customer_id = $1 AND note IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        out.portal_visits = sqlx::query("DELETE FROM portal_visits WHERE customer = $1")
            .bind(external_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let documents: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.location FROM documents d JOIN actions a ON a.id = d.action_id \
             WHERE a.customer_id = $1 AND d.kind <> 'formal_notice' AND d.pruned_at IS NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for (doc, location) in &documents {
            sqlx::query(
                "UPDATE documents SET content = NULL, location = NULL, pruned_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            out.document_files.extend(location.clone());
        }
        out.documents = documents.len() as u64;
        out.action_ids =
            sqlx::query_scalar("SELECT id FROM actions WHERE customer_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, customer, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now)
        .bind(actor)
        .bind("personal_data_erased")
        .bind(external_id)
        .bind(serde_json::to_string(&out).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(out))
    }
}
