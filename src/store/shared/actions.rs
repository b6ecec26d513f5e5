//! The action log's SQL, shared by both backends like `ledger.rs` (compiled once for
//! each). Two things differ. Claiming: PostgreSQL skips rows other instances hold (`FOR UPDATE SKIP LOCKED`);
//! SQLite has one writer, so a conditional update is enough. And recording a tick's
//! decisions (`record_new_actions` in each backend's file): PostgreSQL writes the rows
//! by binary `COPY`; SQLite runs the whole transaction on its own interface
//! (`ffi::sqlite`), many rows to a statement prepared once per batch.

// Rows are read as tuples, one per statement, next to their SQL.
#![allow(clippy::type_complexity)]

/// An action's row as claiming it returns it (`claimed_action_columns!`).
type ClaimedRow = (
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    chrono::NaiveDate,
    String,
);

use super::{Db, StoreImpl, MIGRATOR};

impl StoreImpl {
    async fn event(
        conn: &mut <Db as sqlx::Database>::Connection,
        action_id: i64,
        status: &str,
        attempt: i64,
        detail: Option<&str>,
        provider_ref: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query("INSERT INTO action_events (action_id, at, status, attempt, detail, provider_ref) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(action_id)
            .bind(now)
            .bind(status)
            .bind(attempt)
            .bind(detail)
            .bind(provider_ref)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The invoice numbers an action covers.
    fn parse_numbers(json: &str) -> crate::store::Result<Vec<String>> {
        serde_json::from_str(json).map_err(|e| {
            crate::store::StoreError::Corrupt(format!("action invoice numbers '{json}': {e}"))
        })
    }

    /// `v1, v2, ...)` — an empty list matches nothing.
    fn push_list(qb: &mut sqlx::QueryBuilder<'_, Db>, values: &[String]) {
        if values.is_empty() {
            qb.push("NULL)");
            return;
        }
        let mut sep = qb.separated(", ");
        for v in values {
            sep.push_bind(v.clone());
        }
        qb.push(")");
    }

    pub(crate) async fn save_document_sql(
        &self,
        d: &crate::store::documents::NewDocument,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::documents::StoredDocument> {
        sqlx::query(
            "INSERT INTO documents (action_id, kind, reference, file_name, sha256, size, location, content, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (action_id, kind) DO NOTHING",
        )
        .bind(d.action_id)
        .bind(&d.kind)
        .bind(&d.reference)
        .bind(&d.file_name)
        .bind(&d.sha256)
        .bind(d.size)
        .bind(&d.location)
        .bind(&d.content)
        .bind(d.metadata.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        let mut docs = self.documents_sql(d.action_id).await?;
        docs.retain(|x| x.kind == d.kind);
        docs.pop()
            .ok_or_else(|| crate::store::StoreError::NotFound {
                what: "document",
                key: format!("{}/{}", d.action_id, d.kind),
            })
    }

    pub(crate) async fn documents_sql(
        &self,
        action_id: i64,
    ) -> crate::store::Result<Vec<crate::store::documents::StoredDocument>> {
        self.documents_where(|qb| {
            qb.push("action_id = ")
                .push_bind(action_id)
                .push(" ORDER BY id");
        })
        .await
    }

    /// The documents archived with a customer's actions, newest first.
    pub(crate) async fn customer_documents_sql(
        &self,
        customer: &str,
        limit: u32,
    ) -> crate::store::Result<Vec<crate::store::documents::StoredDocument>> {
        let customer = customer.to_string();
        self.documents_where(move |qb| {
            qb.push("action_id IN (SELECT a.id FROM actions a JOIN customers c ON c.id = a.customer_id WHERE c.external_id = ")
                .push_bind(customer)
                .push(") ORDER BY id DESC LIMIT ")
                .push_bind(i64::from(limit.max(1)));
        })
        .await
    }

    /// The documents matching the condition `condition` pushes (what follows `WHERE`).
    async fn documents_where(
        &self,
        condition: impl FnOnce(&mut sqlx::QueryBuilder<'static, Db>),
    ) -> crate::store::Result<Vec<crate::store::documents::StoredDocument>> {
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            String,
            i64,
            Option<String>,
            String,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        );
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, action_id, kind, reference, file_name, sha256, size, location, metadata, created_at, pruned_at FROM documents WHERE ",
        );
        condition(&mut qb);
        let rows: Vec<Row> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    action_id,
                    kind,
                    reference,
                    file_name,
                    sha256,
                    size,
                    location,
                    metadata,
                    created_at,
                    pruned_at,
                )| crate::store::documents::StoredDocument {
                    id,
                    action_id,
                    kind,
                    reference,
                    file_name,
                    sha256,
                    size,
                    location,
                    metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
                    created_at,
                    pruned_at,
                },
            )
            .collect())
    }

    pub(crate) async fn document_content_sql(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<Vec<u8>>> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT content FROM documents WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    pub(crate) async fn record_delivered_part_sql(
        &self,
        action_id: i64,
        part: &str,
        provider_ref: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query("INSERT INTO action_deliveries (action_id, part, provider_ref, at) VALUES ($1, $2, $3, $4) ON CONFLICT (action_id, part) DO NOTHING")
            .bind(action_id)
            .bind(part)
            .bind(provider_ref)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn delivered_parts_sql(
        &self,
        action_id: i64,
    ) -> crate::store::Result<Vec<crate::store::documents::DeliveredPart>> {
        let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT part, provider_ref, at FROM action_deliveries WHERE action_id = $1 ORDER BY at, part")
                .bind(action_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(
                |(part, provider_ref, at)| crate::store::documents::DeliveredPart {
                    part,
                    provider_ref,
                    at,
                },
            )
            .collect())
    }

    pub(crate) async fn endpoint_states_sql(
        &self,
    ) -> crate::store::Result<Vec<crate::store::documents::EndpointState>> {
        let rows: Vec<(String, Option<chrono::DateTime<chrono::Utc>>, Option<String>, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT insurer, disabled_at, reason, updated_at FROM insurer_endpoints ORDER BY insurer").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(insurer, disabled_at, reason, updated_at)| {
                crate::store::documents::EndpointState {
                    insurer,
                    disabled_at,
                    reason,
                    updated_at,
                }
            })
            .collect())
    }

    pub(crate) async fn create_token_sql(
        &self,
        name: &str,
        scopes: &[&str],
        sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        let id: i64 = sqlx::query_scalar("INSERT INTO api_tokens (name, sha256, scopes, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(name)
            .bind(sha256)
            .bind(scopes.join(","))
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    fn token_from_row(
        row: (
            i64,
            String,
            String,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        ),
    ) -> crate::store::Result<crate::store::tokens::ApiToken> {
        let (id, name, scopes, created_at, revoked_at) = row;
        Ok(crate::store::tokens::ApiToken {
            id,
            name,
            scopes: scopes
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            created_at,
            revoked_at,
        })
    }

    pub(crate) async fn tokens_sql(
        &self,
    ) -> crate::store::Result<Vec<crate::store::tokens::ApiToken>> {
        let rows: Vec<(
            i64,
            String,
            String,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        )> = sqlx::query_as(
            "SELECT id, name, scopes, created_at, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Self::token_from_row).collect()
    }

    pub(crate) async fn token_by_hash_sql(
        &self,
        sha256: &str,
    ) -> crate::store::Result<Option<crate::store::tokens::ApiToken>> {
        let row: Option<(i64, String, String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> =
            sqlx::query_as("SELECT id, name, scopes, created_at, revoked_at FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL").bind(sha256).fetch_optional(&self.pool).await?;
        row.map(Self::token_from_row).transpose()
    }

    pub(crate) async fn revoke_token_sql(
        &self,
        id: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn action_counts_sql(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::actions::ActionCounts> {
        let by_kind_status: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, status, COUNT(*) FROM actions GROUP BY kind, status ORDER BY kind, status").fetch_all(&self.pool).await?;
        let due: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $1)")
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(crate::store::actions::ActionCounts {
            by_kind_status,
            due,
        })
    }

    pub(crate) async fn migrations_applied_sql(&self) -> crate::store::Result<(usize, usize)> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok((applied as usize, MIGRATOR.iter().count()))
    }

    pub(crate) async fn set_endpoint_state_sql(
        &self,
        insurer: &str,
        disabled: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let disabled_at = disabled.map(|_| now);
        sqlx::query(
            "INSERT INTO insurer_endpoints (insurer, disabled_at, reason, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (insurer) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason, updated_at = excluded.updated_at",
        )
        .bind(insurer)
        .bind(disabled_at)
        .bind(disabled)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn create_call_task_sql(
        &self,
        t: &crate::store::call_tasks::NewCallTask,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let customer_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
                .bind(&t.customer)
                .fetch_optional(&mut *tx)
                .await?;
        let customer_id = customer_id.ok_or_else(|| crate::store::StoreError::NotFound {
            what: "customer",
            key: t.customer.clone(),
        })?;
        sqlx::query(
            "INSERT INTO call_tasks (action_id, customer_id, invoice_numbers, reason, priority, assignee, due_on, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8) ON CONFLICT (action_id) DO NOTHING",
        )
        .bind(t.action_id)
        .bind(customer_id)
        .bind(serde_json::to_string(&t.invoices).unwrap_or_else(|_| "[]".into()))
        .bind(&t.reason)
        .bind(&t.priority)
        .bind(&t.assignee)
        .bind(t.due_on)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM call_tasks WHERE action_id = $1")
            .bind(t.action_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn call_tasks_sql(
        &self,
        f: &crate::store::call_tasks::TaskFilter,
        id: Option<i64>,
    ) -> crate::store::Result<Vec<crate::store::call_tasks::CallTask>> {
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            chrono::NaiveDate,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<chrono::DateTime<chrono::Utc>>,
            chrono::DateTime<chrono::Utc>,
        );
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT t.id, t.action_id, c.external_id, c.name, t.invoice_numbers, t.reason, t.priority, t.assignee, t.due_on, t.status, t.outcome, t.note, t.completed_by, t.completed_at, t.created_at \
             FROM call_tasks t JOIN customers c ON c.id = t.customer_id WHERE 1 = 1",
        );
        if let Some(id) = id {
            qb.push(" AND t.id = ").push_bind(id);
        }
        if let Some(a) = &f.assignee {
            qb.push(" AND t.assignee = ").push_bind(a.clone());
        }
        if let Some(s) = &f.status {
            qb.push(" AND t.status = ").push_bind(s.clone());
        }
        if let Some(d) = f.due_by {
            qb.push(" AND t.due_on <= ").push_bind(d);
        }
        if let Some(c) = &f.customer {
            qb.push(" AND c.external_id = ").push_bind(c.clone());
        }
        if let Some(after) = &f.after {
            // After (status, due_on, id) in the order below: status descending.
            qb.push(" AND (t.status < ")
                .push_bind(after.status.clone())
                .push(" OR (t.status = ")
                .push_bind(after.status.clone())
                .push(" AND (t.due_on > ")
                .push_bind(after.due_on)
                .push(" OR (t.due_on = ")
                .push_bind(after.due_on)
                .push(" AND t.id > ")
                .push_bind(after.id)
                .push("))))");
        }
        qb.push(" ORDER BY t.status DESC, t.due_on, t.id LIMIT ")
            .push_bind(i64::from(f.limit.max(1)));
        let rows: Vec<Row> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                Ok(crate::store::call_tasks::CallTask {
                    id: r.0,
                    action_id: r.1,
                    customer: r.2,
                    customer_name: r.3,
                    invoices: Self::parse_numbers(&r.4)?,
                    reason: r.5,
                    priority: r.6,
                    assignee: r.7,
                    due_on: r.8,
                    status: r.9,
                    outcome: r.10,
                    note: r.11,
                    completed_by: r.12,
                    completed_at: r.13,
                    created_at: r.14,
                })
            })
            .collect()
    }

    /// A message delivered to a customer, counted by the contact budget.
    pub(crate) async fn record_contact(
        conn: &mut <Db as sqlx::Database>::Connection,
        customer_id: i64,
        at: chrono::DateTime<chrono::Utc>,
        kind: &str,
        action_id: i64,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "INSERT INTO contacts (customer_id, at, kind, action_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(customer_id)
        .bind(at)
        .bind(kind)
        .bind(action_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Folds a customer's steps applied to its open invoices again from its whole log:
    /// after an action stopped being an application of its step (cancelled, blocked)
    /// or a live one (failed, dead), or became one again (retried).
    pub(crate) async fn rebuild_steps(
        conn: &mut <Db as sqlx::Database>::Connection,
        customer_id: i64,
    ) -> crate::store::Result<()> {
        let log: Vec<(i64, String, String, String, chrono::NaiveDate, String)> = sqlx::query_as(
            "SELECT id, invoice_numbers, kind, step, decided_on, status FROM actions WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(&mut *conn)
        .await?;
        // The customer's open invoices: the state is theirs only.
        let open: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT number FROM invoices WHERE customer_id = $1 AND status = 'open'",
        )
        .bind(customer_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let numbers = log
            .iter()
            .map(|r| {
                Self::parse_numbers(&r.1)
                    .map(|n| n.into_iter().filter(|i| open.contains(i)).collect())
            })
            .collect::<crate::store::Result<Vec<Vec<String>>>>()?;
        sqlx::query("DELETE FROM invoice_steps WHERE customer_id = $1")
            .bind(customer_id)
            .execute(&mut *conn)
            .await?;
        let rows = crate::store::steps::fold(log.iter().zip(&numbers).map(|(r, n)| {
            crate::store::steps::StepSource {
                id: r.0,
                customer_id,
                invoices: n,
                kind: &r.2,
                step: &r.3,
                day: r.4,
                status: &r.5,
            }
        }));
        Self::upsert_steps(conn, &rows).await
    }

    /// Records a batch of decisions in one write transaction: its actions, their facts
    /// snapshots and the steps they applied, and what the log says of each beyond its
    /// row (`store::actions::decision_events`). Each backend writes it its own fastest
    /// way (`record_new_actions` in its file).
    pub(crate) async fn record_actions_sql(
        &self,
        batch: &[crate::store::actions::NewAction],
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<crate::store::actions::RecordCounts> {
        if batch.is_empty() {
            return Ok(crate::store::actions::RecordCounts::default());
        }
        Self::record_new_actions(self.write_pool(), batch, now).await
    }

    /// Claims up to `limit` actions due, oldest first, with a lease until
    /// `lease_until`: each is marked `sending` (an event says by whom) and returned with
    /// what its message is made of, read in the same transaction.
    pub(crate) async fn claim_actions_sql(
        &self,
        owner: &str,
        lease_until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> crate::store::Result<Vec<crate::store::actions::ClaimedAction>> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let mut rows: Vec<ClaimedRow> = sqlx::query_as(Self::CLAIM_SQL)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(i64::try_from(limit.max(1)).unwrap_or(1))
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        rows.sort_by_key(|r| r.0);
        let detail = format!("claimed by {owner}");
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO action_events (action_id, at, status, attempt, detail, provider_ref) ",
        );
        qb.push_values(&rows, |mut b, r| {
            b.push_bind(r.0)
                .push_bind(now)
                .push_bind("sending")
                .push_bind(r.9)
                .push_bind(detail.clone())
                .push_bind(None::<String>);
        });
        qb.build().persistent(false).execute(&mut *tx).await?;
        let claimed = Self::claimed_from_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// What actions' messages are made of (their customer, invoices and options), from
    /// their rows: what claiming them gives, and what `relance preview` renders. Read
    /// for all of them at once: their customers, their invoices as they stand, and the
    /// messages already sent to those customers.
    async fn claimed_from_rows(
        conn: &mut <Db as sqlx::Database>::Connection,
        rows: Vec<ClaimedRow>,
    ) -> crate::store::Result<Vec<crate::store::actions::ClaimedAction>> {
        use std::collections::HashMap;
        let mut customer_ids: Vec<i64> = rows.iter().map(|r| r.2).collect();
        customer_ids.sort_unstable();
        customer_ids.dedup();
        let numbers: Vec<Vec<String>> = rows
            .iter()
            .map(|r| Self::parse_numbers(&r.11))
            .collect::<crate::store::Result<_>>()?;

        let sql = format!(
            "SELECT id, {} FROM customers WHERE id {}",
            crate::store::sql::CUSTOMER_COLUMNS,
            Self::IN_IDS
        );
        let customers: Vec<crate::store::rows::CustomerRowWithId> = sqlx::query_as(&sql)
            .bind(Self::id_list(&customer_ids))
            .fetch_all(&mut *conn)
            .await?;
        let customers: HashMap<i64, crate::domain::Customer> = customers
            .into_iter()
            .map(|c| Ok((c.id, crate::domain::Customer::try_from(c.row)?)))
            .collect::<crate::store::Result<_>>()?;

        // The invoices as they stand now, and the promises to pay pending on them: what
        // the outbox checks before it delivers (`outbox::stale_reason`).
        let mut all: Vec<String> = numbers.iter().flatten().cloned().collect();
        all.sort_unstable();
        all.dedup();
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
            "{} WHERE i.number IN (",
            crate::store::rows::CLAIMED_INVOICE_SELECT
        ));
        Self::push_list(&mut qb, &all);
        qb.push(" ORDER BY i.due_date, i.number");
        let invoice_rows: Vec<crate::store::rows::ClaimedInvoiceRow> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        let invoices: Vec<(crate::domain::Invoice, Option<chrono::NaiveDate>)> = invoice_rows
            .into_iter()
            .map(|r| {
                Ok((
                    crate::domain::Invoice::try_from(r.invoice)?,
                    r.promised_until,
                ))
            })
            .collect::<crate::store::Result<_>>()?;

        // Messages already sent to these customers, and the invoices each named: read
        // only for messages, which may speak of an earlier one.
        let is_message = |kind: &str| matches!(kind, "email" | "sms" | "formal_notice");
        let mut writing_to: Vec<i64> = rows
            .iter()
            .filter(|r| is_message(&r.3))
            .map(|r| r.2)
            .collect();
        writing_to.sort_unstable();
        writing_to.dedup();
        let earlier: Vec<(i64, i64, String)> = if writing_to.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT customer_id, id, invoice_numbers FROM actions WHERE customer_id {} \
                 AND status = 'sent' AND kind IN ('email', 'sms', 'formal_notice')",
                Self::IN_IDS
            );
            sqlx::query_as(&sql)
                .bind(Self::id_list(&writing_to))
                .fetch_all(&mut *conn)
                .await?
        };
        let earlier: Vec<(i64, i64, Vec<String>)> = earlier
            .into_iter()
            .map(|(c, id, json)| {
                (
                    c,
                    id,
                    serde_json::from_str::<Vec<String>>(&json).unwrap_or_default(),
                )
            })
            .collect();

        let mut claimed = Vec::with_capacity(rows.len());
        for (row, numbers) in rows.into_iter().zip(numbers) {
            let (
                id,
                key,
                customer_id,
                kind,
                step,
                template,
                options,
                currency,
                amount_minor,
                attempt,
                decided_on,
                _,
            ) = row;
            let customer = match customers.get(&customer_id) {
                Some(c) => c.clone(),
                None => {
                    return Err(crate::store::StoreError::Corrupt(format!(
                        "action {id}: customer {customer_id} not found"
                    )))
                }
            };
            let mut promised = Vec::new();
            let mut mine = Vec::with_capacity(numbers.len());
            for (invoice, promised_until) in
                invoices.iter().filter(|(i, _)| numbers.contains(&i.number))
            {
                if let Some(d) = promised_until {
                    promised.push((invoice.number.clone(), *d));
                }
                mine.push(invoice.clone());
            }
            let reminded_before = is_message(&kind)
                && earlier.iter().any(|(c, e, named)| {
                    *c == customer_id && *e != id && named.iter().any(|n| numbers.contains(n))
                });
            let cur = crate::store::rows::currency(&currency)?;
            claimed.push(crate::store::actions::ClaimedAction {
                id,
                key,
                customer,
                kind: kind.parse().map_err(crate::store::StoreError::Corrupt)?,
                step,
                template,
                options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
                invoices: mine,
                promised,
                currency,
                amount: cur.from_minor(amount_minor),
                attempt,
                decided_on,
                reminded_before,
                portal_url: None,
            });
        }
        Ok(claimed)
    }

    /// An action's message as [`Self::claim_actions_sql`] gives it, without claiming it.
    pub(crate) async fn action_message_sql(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<crate::store::actions::ClaimedAction>> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<ClaimedRow> = sqlx::query_as(concat!(
            "SELECT ",
            crate::store::sql::claimed_action_columns!(),
            " FROM actions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Self::claimed_from_rows(&mut conn, vec![row])
                .await?
                .into_iter()
                .next()),
        }
    }

    pub(crate) async fn complete_action_sql(
        &self,
        action_id: i64,
        owner: &str,
        completion: &crate::store::actions::Completion,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        use crate::store::actions::Completion as C;
        let (status, next, provider_ref, error): (
            &str,
            Option<chrono::DateTime<chrono::Utc>>,
            Option<&str>,
            Option<&str>,
        ) = match completion {
            C::Sent { provider_ref } => ("sent", None, Some(provider_ref), None),
            C::Retry { at, error } => ("retrying", Some(*at), None, Some(error)),
            C::Dead { error } => ("dead", None, None, Some(error)),
            C::Failed { error } => ("failed", None, None, Some(error)),
            C::Blocked { reason } => ("blocked", None, None, Some(reason)),
            C::Cancelled { reason } => ("cancelled", None, None, Some(reason)),
            C::Deferred { until, reason } => ("planned", Some(*until), None, Some(reason)),
        };
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        // Deferring is not an attempt: give it back.
        let undo = i64::from(matches!(
            completion,
            C::Deferred { .. } | C::Cancelled { .. }
        ));
        let updated: Option<(i64, i64, String)> = sqlx::query_as(
            "UPDATE actions SET status = $1, next_attempt_at = $2, provider_ref = COALESCE($3, provider_ref), last_error = $4, \
             lease_owner = NULL, lease_until = NULL, attempts = attempts - $5, updated_at = $6 \
             WHERE id = $7 AND status = 'sending' AND lease_owner = $8 RETURNING attempts, customer_id, kind",
        )
        .bind(status)
        .bind(next)
        .bind(provider_ref)
        .bind(error)
        .bind(undo)
        .bind(now)
        .bind(action_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt, customer_id, kind)) = updated else {
            // The lease expired and another worker took the action over.
            tx.rollback().await?;
            return Ok(false);
        };
        // The dunning state: a message delivered is a contact; an action sending was
        // an application of its step, which one cancelled, blocked, failed or dead is
        // not (or no longer a live one).
        if status == "sent" {
            Self::record_contact(&mut tx, customer_id, now, &kind, action_id).await?;
        }
        if crate::store::steps::Applied::of(status) != crate::store::steps::Applied::Live {
            Self::rebuild_steps(&mut tx, customer_id).await?;
        }
        let detail = match completion {
            C::Retry { at, error } => Some(format!("{error}; next attempt at {}", at.to_rfc3339())),
            C::Deferred { until, reason } => {
                Some(format!("{reason}; not before {}", until.to_rfc3339()))
            }
            C::Dead { error }
            | C::Failed { error }
            | C::Blocked { reason: error }
            | C::Cancelled { reason: error } => Some(error.clone()),
            C::Sent { .. } => None,
        };
        Self::event(
            &mut tx,
            action_id,
            status,
            attempt + undo,
            detail.as_deref(),
            provider_ref,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn extend_lease_sql(
        &self,
        action_id: i64,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<bool> {
        let n = sqlx::query("UPDATE actions SET lease_until = $1 WHERE id = $2 AND status = 'sending' AND lease_owner = $3")
            .bind(until)
            .bind(action_id)
            .bind(owner)
            .execute(self.write_pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub(crate) async fn mark_transmitting_sql(
        &self,
        action_id: i64,
        attempt: i64,
        part: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let mut conn = self.write_pool().acquire().await?;
        Self::event(
            &mut conn,
            action_id,
            "transmitting",
            attempt,
            Some(part),
            None,
            now,
        )
        .await
    }

    pub(crate) async fn reclaim_expired_sql(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        hold: &[crate::domain::ActionKind],
    ) -> crate::store::Result<Vec<(i64, crate::store::actions::ActionStatus)>> {
        // Whether the interrupted attempt was marked as leaving for the network.
        let expired: Vec<(i64, String, i64, bool)> = sqlx::query_as(
            "SELECT a.id, a.kind, a.attempts, EXISTS (SELECT 1 FROM action_events e WHERE e.action_id = a.id AND e.status = 'transmitting' AND e.attempt = a.attempts) \
             FROM actions a WHERE a.status = 'sending' AND a.lease_until < $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (id, kind, attempts, transmitting) in expired {
            let held = hold.iter().any(|k| k.as_str() == kind);
            let (status, detail) = if held && transmitting {
                ("held", "the send was interrupted (lease expired) after its request was written to the network: it may have reached the peer; held for an operator (`relance actions held`): `relance actions retry` resends it with the same message id")
            } else if held {
                ("retrying", "the send was interrupted (lease expired) before any request was written to the network: it never left, sending it again")
            } else {
                (
                    "retrying",
                    "the send was interrupted (lease expired); resending with the same message id",
                )
            };
            let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
            let n = sqlx::query(
                "UPDATE actions SET status = $1, next_attempt_at = $2, lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE id = $3 AND status = 'sending' AND lease_until < $2",
            )
            .bind(status)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                Self::event(&mut tx, id, status, attempts, Some(detail), None, now).await?;
                out.push((
                    id,
                    status.parse().map_err(crate::store::StoreError::Corrupt)?,
                ));
            }
            tx.commit().await?;
        }
        Ok(out)
    }

    pub(crate) async fn set_action_status_sql(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        detail: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<()> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let current: Option<(String, i64, i64, String)> =
            sqlx::query_as("SELECT status, attempts, customer_id, kind FROM actions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, attempts, customer_id, kind)) = current else {
            return Err(crate::store::StoreError::NotFound {
                what: "action",
                key: id.to_string(),
            });
        };
        if !from.contains(&status.as_str()) {
            return Err(crate::store::StoreError::Invalid(format!(
                "action {id} is {status}; only an action that is {} can be set to {to}",
                from.join(" or ")
            )));
        }
        sqlx::query(
            "UPDATE actions SET status = $1, next_attempt_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if to == "sent" {
            Self::record_contact(&mut tx, customer_id, now, &kind, id).await?;
        }
        use crate::store::steps::Applied;
        if Applied::of(&status) != Applied::of(to) {
            Self::rebuild_steps(&mut tx, customer_id).await?;
        }
        Self::event(&mut tx, id, to, attempts, Some(detail), None, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn list_actions_sql(
        &self,
        f: &crate::store::actions::ActionFilter,
    ) -> crate::store::Result<Vec<crate::store::actions::ActionRow>> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            String,
            String,
            String,
            chrono::NaiveDate,
        );
        type Row2 = (
            Option<chrono::DateTime<chrono::Utc>>,
            Option<String>,
            Option<String>,
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
        );
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT a.id, a.idempotency_key, c.external_id, a.segment, a.kind, a.step, a.template, a.status, a.attempts, a.amount_minor, a.currency, a.rule_file, a.rule_hash, a.decided_on, \
             a.next_attempt_at, a.provider_ref, a.last_error, a.created_at, a.updated_at, a.invoice_numbers, a.variant FROM actions a JOIN customers c ON c.id = a.customer_id WHERE 1 = 1",
        );
        if let Some(c) = &f.customer {
            qb.push(" AND c.external_id = ").push_bind(c.clone());
        }
        if let Some(s) = f.status {
            qb.push(" AND a.status = ").push_bind(s.as_str());
        }
        if let Some(k) = f.kind {
            qb.push(" AND a.kind = ").push_bind(k.as_str());
        }
        if let Some(t) = f.since {
            qb.push(" AND a.created_at >= ").push_bind(t);
        }
        if let Some(t) = f.until {
            qb.push(" AND a.created_at < ").push_bind(t);
        }
        if let Some(a) = f.after_id {
            qb.push(" AND a.id > ").push_bind(a);
        }
        qb.push(" ORDER BY a.id LIMIT ")
            .push_bind(i64::from(f.limit.max(1)));
        use sqlx::Row as _;
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let base: Row = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
                r.try_get(8)?,
                r.try_get(9)?,
                r.try_get(10)?,
                r.try_get(11)?,
                r.try_get(12)?,
                r.try_get(13)?,
            );
            let more: Row2 = (
                r.try_get(14)?,
                r.try_get(15)?,
                r.try_get(16)?,
                r.try_get(17)?,
                r.try_get(18)?,
            );
            let numbers: String = r.try_get(19)?;
            let variant: Option<String> = r.try_get(20)?;
            let cur = crate::store::rows::currency(&base.10)?;
            out.push(crate::store::actions::ActionRow {
                id: base.0,
                key: base.1,
                customer: base.2,
                segment: base.3,
                kind: base.4.parse().map_err(crate::store::StoreError::Corrupt)?,
                step: base.5,
                template: base.6,
                status: base.7.parse().map_err(crate::store::StoreError::Corrupt)?,
                attempts: base.8,
                amount: cur.from_minor(base.9),
                currency: base.10,
                invoices: Self::parse_numbers(&numbers)?,
                rule_file: base.11,
                rule_hash: base.12,
                variant,
                decided_on: base.13,
                next_attempt_at: more.0,
                provider_ref: more.1,
                last_error: more.2,
                created_at: more.3,
                updated_at: more.4,
            });
        }
        Ok(out)
    }

    pub(crate) async fn action_detail_sql(
        &self,
        id: i64,
    ) -> crate::store::Result<Option<crate::store::actions::ActionDetail>> {
        let filter = crate::store::actions::ActionFilter {
            after_id: Some(id - 1),
            limit: 1,
            ..Default::default()
        };
        let Some(row) = self
            .list_actions_sql(&filter)
            .await?
            .into_iter()
            .find(|a| a.id == id)
        else {
            return Ok(None);
        };
        let (options, facts): (String, String) = sqlx::query_as("SELECT a.options, COALESCE(f.snapshot, a.facts) FROM actions a LEFT JOIN facts_snapshots f ON f.customer_id = a.customer_id AND f.sha256 = a.facts_sha256 WHERE a.id = $1").bind(id).fetch_one(&self.pool).await?;
        let events: Vec<(chrono::DateTime<chrono::Utc>, String, i64, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT at, status, attempt, detail, provider_ref FROM action_events WHERE action_id = $1 ORDER BY id").bind(id).fetch_all(&self.pool).await?;
        let mut events: Vec<crate::store::actions::ActionEvent> = events
            .into_iter()
            .map(
                |(at, status, attempt, detail, provider_ref)| crate::store::actions::ActionEvent {
                    at,
                    status,
                    attempt,
                    detail,
                    provider_ref,
                },
            )
            .collect();
        // The decision itself: planned actions have no event row for it.
        if !events
            .first()
            .is_some_and(|e| ["planned", "blocked", "error"].contains(&e.status.as_str()))
        {
            events.insert(
                0,
                crate::store::actions::ActionEvent {
                    at: row.created_at,
                    status: "planned".into(),
                    attempt: 0,
                    detail: None,
                    provider_ref: None,
                },
            );
        }
        Ok(Some(crate::store::actions::ActionDetail {
            row,
            options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
            facts: serde_json::from_str(&facts).unwrap_or(serde_json::Value::Null),
            events,
        }))
    }

    pub(crate) async fn start_tick_sql(
        &self,
        segment: &str,
        scheduled_for: chrono::DateTime<chrono::Utc>,
        trigger: &str,
        as_of: chrono::NaiveDate,
        instance: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ticks (segment, scheduled_for, trigger, as_of, instance, status, started_at) VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING id",
        )
        .bind(segment)
        .bind(scheduled_for)
        .bind(trigger)
        .bind(as_of)
        .bind(instance)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_tick_sql(
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
        sqlx::query("UPDATE ticks SET status = $1, customers = $2, planned = $3, blocked = $4, errors = $5, detail = $6, finished_at = $7 WHERE id = $8")
            .bind(status)
            .bind(customers)
            .bind(planned)
            .bind(blocked)
            .bind(errors)
            .bind(detail)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn last_tick_sql(
        &self,
        segment: &str,
    ) -> crate::store::Result<Option<crate::store::actions::TickRecord>> {
        type Row = (
            i64,
            String,
            chrono::DateTime<chrono::Utc>,
            String,
            chrono::NaiveDate,
            String,
            i64,
            i64,
            i64,
            i64,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, segment, scheduled_for, trigger, as_of, status, customers, planned, blocked, errors, started_at, finished_at FROM ticks \
             WHERE segment = $1 AND status = 'done' ORDER BY scheduled_for DESC, id DESC LIMIT 1",
        )
        .bind(segment)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| crate::store::actions::TickRecord {
            id: r.0,
            segment: r.1,
            scheduled_for: r.2,
            trigger: r.3,
            as_of: r.4,
            status: r.5,
            customers: r.6,
            planned: r.7,
            blocked: r.8,
            errors: r.9,
            started_at: r.10,
            finished_at: r.11,
        }))
    }
}
