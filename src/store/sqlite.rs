//! SQLite: the embedded default. One file, WAL journal, one writer at a time.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use sqlx::{Sqlite, SqlitePool};

use chrono::{DateTime, Utc};

use super::actions::{invoice_numbers_json, NewAction};
use super::{Backend, Result};
use crate::ffi::sqlite::{self as sqlite_raw, Value};
use crate::store::sql::{action_insert_columns, claimed_action_columns, ACTION_INSERT_WIDTH};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Rows per statement when a tick inserts actions and facts snapshots: a statement's
/// fixed cost (opening the table and its indexes, ending the statement) is shared by
/// that many rows.
const ACTIONS_PER_STATEMENT: usize = 64;

pub struct SqliteStore {
    /// Readers, and the few single-statement writes.
    pool: SqlitePool,
    /// The one connection that runs write transactions. SQLite has one writer at a time
    /// anyway; giving it its own connection keeps that connection's page cache (64 MiB)
    /// valid from one transaction to the next, so a tick or an import that writes batch
    /// after batch into the same indexes does not read their pages again each time.
    writer: SqlitePool,
    /// What every connection is opened with (migrations use it too).
    options: SqliteConnectOptions,
}

/// The write connection's page cache (KiB, as SQLite's negative `cache_size`): 64 MiB
/// for imports, which write batch after batch into the same indexes; 32 MiB while a
/// tick writes, as fast for it (measured) and 35 MB less at its peak.
const WRITER_CACHE: &str = "-65536";
const WRITER_CACHE_TICK: &str = "-32768";

impl SqliteStore {
    /// Claims the oldest due action (see `shared/actions.rs`), through the queue's own
    /// index: with the index by status, SQLite sorted every planned action by id for
    /// each claim (30 ms with 400,000 planned).
    const CLAIM_SQL: &'static str = concat!(
        "UPDATE actions SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM actions INDEXED BY actions_queue WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT $4) AND status IN ('planned', 'retrying') \
         RETURNING ",
        claimed_action_columns!()
    );
    /// Write transactions take the write lock up front: a deferred one that reads and
    /// then writes fails at once ("database is locked", the busy timeout does not
    /// apply) when another connection wrote in between.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Claiming a report delivery: one writer, nothing to skip.
    /// The allocations of payments `p`, by payment.
    const ALLOCATIONS_OF_PAYMENTS: &'static str = "JOIN allocations a ON a.payment_id = p.id";
    const SKIP_LOCKED: &'static str = "";
    const REFRESH_STATISTICS: &'static str = "PRAGMA optimize";
    const REFRESH_ACTION_STATISTICS: &'static str = "PRAGMA optimize";
    /// A list of ids as one parameter: a JSON array (see [`Self::id_list`]).
    const IN_IDS: &'static str = "IN (SELECT value FROM json_each($1))";

    /// The parameter [`Self::IN_IDS`] reads.
    fn id_list(ids: &[i64]) -> String {
        use std::fmt::Write;
        let mut json = String::with_capacity(ids.len() * 8 + 2);
        json.push('[');
        for (i, id) in ids.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(json, "{sep}{id}");
        }
        json.push(']');
        json
    }

    /// Opens (creating if needed) the database file the URL names.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore> {
        crate::ffi::sqlite::configure();
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            // A batch of invoices dirties a page of each index by customer per few rows:
            // with the default checkpoint every 1,000 WAL pages (4 MiB), nearly every
            // commit copies the WAL back into the database and syncs it. Every 10,000
            // pages, a page rewritten by several commits is copied once; the WAL file is
            // truncated back to 64 MiB after a checkpoint.
            .pragma("wal_autocheckpoint", "10000")
            .pragma("journal_size_limit", "67108864")
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        // A write transaction touches many pages: with a small page cache SQLite spills
        // dirty pages to the WAL mid-transaction, several times slower. Reads need no
        // more than a small cache (the OS caches the file), so only the writer has the
        // large one.
        // No ping of a connection before each use (sqlx's default, made for network
        // connections that may have dropped): a file's connection does not drop, and
        // each ping is a round trip to the connection's thread, which waits to be
        // scheduled on a busy machine (a few milliseconds per write transaction).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("cache_size", WRITER_CACHE))
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("cache_size", "-8192"))
            .await?;
        Ok(SqliteStore {
            pool,
            writer,
            options,
        })
    }

    /// Runs the pending migrations on a connection of their own with foreign keys off:
    /// SQLite changes a table's constraints by rebuilding it, which dropping the old
    /// table would refuse while other tables reference it (the setting cannot change
    /// inside the migration's transaction). A migration that rebuilds a table checks
    /// the references itself before it commits.
    async fn apply_migrations(&self) -> Result<()> {
        use sqlx::Connection;
        let mut conn = self.options.clone().foreign_keys(false).connect().await?;
        let result = MIGRATOR.run_direct(&mut conn).await;
        let _ = conn.close().await;
        result?;
        Ok(())
    }

    /// The pool write transactions are taken from.
    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// See `Store::size_write_cache_for_tick`.
    pub(crate) async fn size_write_cache_for_tick_impl(&self, tick: bool) -> Result<()> {
        let size = if tick {
            WRITER_CACHE_TICK
        } else {
            WRITER_CACHE
        };
        sqlx::query(&format!("PRAGMA cache_size = {size}"))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn close_writer(&self) {
        self.writer.close().await;
    }

    /// Records a batch of decisions (see the shared `record_actions_sql`): looks up
    /// their customers, inserts the actions, their facts snapshots and the steps they
    /// applied, then the events of the new blocked or failed ones and of the duplicates.
    /// The whole transaction, `BEGIN` to `COMMIT`, runs in one hand-over of the
    /// connection to this thread: each use of sqlx, or each hand-over, waits for another
    /// thread to be scheduled, and a first tick's writer, which sets the tick's pace,
    /// spent more time waiting so (about 5 ms each, several per transaction) than
    /// looking up its customers.
    async fn record_new_actions(
        pool: &SqlitePool,
        batch: &[NewAction],
        now: DateTime<Utc>,
    ) -> Result<super::actions::RecordCounts> {
        use super::actions::{
            customers_named, decision_events, new_snapshots, new_steps, record_counts, unrecorded,
            with_customer_ids,
        };
        let customers =
            serde_json::to_string(&customers_named(batch)).unwrap_or_else(|_| "[]".into());
        let mut conn = pool.acquire().await?;
        sqlite_raw::in_write_transaction(&mut conn, |db| {
            let mut customer_ids = HashMap::new();
            db.query(
                "SELECT external_id, id FROM customers WHERE external_id IN (SELECT value FROM json_each(?))",
                &[customers.as_str().into()],
                |r| {
                    customer_ids.insert(r.text(0), r.int(1));
                    Ok::<_, super::StoreError>(())
                },
            )?;
            let rows = with_customer_ids(batch, &customer_ids);
            let ids: HashMap<String, i64> = Self::insert_actions(db, &rows, now)?
                .into_iter()
                .map(|(id, key)| (key, id))
                .collect();
            Self::insert_snapshots(db, &new_snapshots(&rows, &ids))?;
            Self::upsert_steps_on(db, &new_steps(&rows, &ids))?;
            let unrecorded = unrecorded(&rows, &ids);
            let mut existing = HashMap::new();
            if !unrecorded.is_empty() {
                let pairs: Vec<(i64, &str)> = unrecorded.iter().map(|(k, c)| (*c, *k)).collect();
                let pairs = serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into());
                db.query(
                    "SELECT a.idempotency_key, a.id FROM json_each(?) AS u \
                     JOIN actions a ON a.customer_id = u.value ->> 0 AND a.idempotency_key = u.value ->> 1",
                    &[pairs.as_str().into()],
                    |r| {
                        existing.insert(r.text(0), r.int(1));
                        Ok::<_, super::StoreError>(())
                    },
                )?;
            }
            Self::insert_events(db, &decision_events(&rows, &ids, &existing), now)?;
            Ok(record_counts(&ids, &unrecorded))
        })
        .await
    }

    /// Writes events of a batch's decisions (action id, status, detail) at `now`.
    fn insert_events(
        db: &sqlite_raw::Handle,
        events: &[(i64, &str, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        let values: Vec<Value<'_>> = events
            .iter()
            .flat_map(|(id, status, detail)| {
                [
                    (*id).into(),
                    now.as_str().into(),
                    (*status).into(),
                    0i64.into(),
                    (*detail).into(),
                ]
            })
            .collect();
        db.insert_rows(
            "INSERT INTO action_events (action_id, at, status, attempt, detail)",
            5,
            "",
            ACTIONS_PER_STATEMENT,
            &values,
            |_| (),
        )?;
        Ok(())
    }

    /// Inserts a tick's new actions through SQLite's own interface (see `ffi::sqlite`),
    /// [`ACTIONS_PER_STATEMENT`] rows per statement; returns the id and key of each one
    /// recorded (a key already recorded for its customer is left out).
    fn insert_actions(
        db: &sqlite_raw::Handle,
        rows: &[(&NewAction, i64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>> {
        const HEAD: &str = concat!("INSERT INTO actions (", action_insert_columns!(), ")");
        const TAIL: &str =
            "ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING id, idempotency_key";
        const WIDTH: usize = ACTION_INSERT_WIDTH;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // The texts sqlx would store for these types (dates as `%F`, times as RFC 3339).
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        let texts: Vec<(String, String)> = rows
            .iter()
            .map(|(a, _)| {
                (
                    invoice_numbers_json(&a.invoices),
                    crate::store::rows::iso_date_text(a.decided_on),
                )
            })
            .collect();
        let mut values: Vec<Value<'_>> = Vec::with_capacity(rows.len() * WIDTH);
        for ((a, cid), (invoices, decided_on)) in rows.iter().zip(&texts) {
            values.extend([
                a.key.as_str().into(),
                (*cid).into(),
                a.segment.as_str().into(),
                a.kind.as_str().into(),
                a.step.as_str().into(),
                a.template.as_deref().into(),
                a.options.as_str().into(),
                a.currency.as_str().into(),
                a.amount_minor.into(),
                a.rule_file.as_str().into(),
                a.rule_hash.as_str().into(),
                // The facts themselves are stored once in facts_snapshots.
                "".into(),
                (&*a.facts_sha256).into(),
                invoices.as_str().into(),
                decided_on.as_str().into(),
                a.status.as_str().into(),
                a.detail.as_deref().into(),
                now.as_str().into(),
                now.as_str().into(),
                a.variant.as_deref().into(),
            ]);
        }
        let mut recorded = Vec::with_capacity(rows.len());
        db.insert_rows(HEAD, WIDTH, TAIL, ACTIONS_PER_STATEMENT, &values, |r| {
            recorded.push((r.int(0), r.text(1)));
        })?;
        Ok(recorded)
    }

    /// Writes rows of `invoice_steps` (see [`super::steps`]), appending to the ones there.
    async fn upsert_steps(
        conn: &mut sqlx::SqliteConnection,
        rows: &[super::steps::StepRow],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // A few rows (one past action imported, one customer's state folded again):
        // through sqlx, whose statement is prepared once per connection. SQLite's own
        // interface pays off for a batch, not for a row: each use hands the runtime's
        // worker over to another thread.
        if rows.len() <= 8 {
            let sql = format!(
                "{} VALUES ($1, $2, $3, $4, $5, $6) {}",
                super::steps::UPSERT_HEAD,
                super::steps::UPSERT_TAIL
            );
            for r in rows {
                sqlx::query(&sql)
                    .bind(r.customer_id)
                    .bind(&r.invoice)
                    .bind(&r.step)
                    .bind(&r.kind)
                    .bind(r.first_action)
                    .bind(&r.applied)
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(());
        }
        sqlite_raw::with_handle(conn, |db| Self::upsert_steps_on(db, rows)).await
    }

    /// Writes rows of `invoice_steps` through SQLite's own interface.
    fn upsert_steps_on(db: &sqlite_raw::Handle, rows: &[super::steps::StepRow]) -> Result<()> {
        let values: Vec<Value<'_>> = rows
            .iter()
            .flat_map(|r| {
                [
                    r.customer_id.into(),
                    r.invoice.as_str().into(),
                    r.step.as_str().into(),
                    r.kind.as_str().into(),
                    r.first_action.into(),
                    r.applied.as_str().into(),
                ]
            })
            .collect();
        db.insert_rows(
            super::steps::UPSERT_HEAD,
            6,
            super::steps::UPSERT_TAIL,
            ACTIONS_PER_STATEMENT,
            &values,
            |_| (),
        )?;
        Ok(())
    }

    /// Stores facts snapshots (customer id, SHA-256, JSON) not stored yet.
    fn insert_snapshots(db: &sqlite_raw::Handle, snapshots: &[(i64, &str, &str)]) -> Result<()> {
        let values: Vec<Value<'_>> = snapshots
            .iter()
            .flat_map(|(cid, sha, json)| [(*cid).into(), (*sha).into(), (*json).into()])
            .collect();
        db.insert_rows(
            "INSERT INTO facts_snapshots (customer_id, sha256, snapshot)",
            3,
            "ON CONFLICT (customer_id, sha256) DO NOTHING",
            ACTIONS_PER_STATEMENT,
            &values,
            |_| (),
        )?;
        Ok(())
    }
}

/// Reading a tick's accounts through SQLite's own interface (see `ffi::sqlite`): sqlx
/// copies every value of every row on its connection's worker thread, sends each row
/// to the reading task and frees the copies there; here each batch's statements run on
/// one pooled connection in the reading task, and values are decoded from SQLite's own
/// buffers. The rows and the statements are the ones the shared reader uses.
mod read {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::super::{Result, StoreError};
    use crate::ffi::sqlite::{Row, Value};
    use crate::store::accounts::{BatchRows, PromiseTuple};
    use crate::store::rows::{CustomerRow, CustomerRowWithId, OpenInvoiceRow};

    fn corrupt(what: &str, value: &str) -> StoreError {
        StoreError::Corrupt(format!("{what}: '{value}' is not what relance stores"))
    }

    /// A date as sqlx stores it (`YYYY-MM-DD`).
    fn date(text: &str) -> Result<NaiveDate> {
        match crate::store::rows::iso_date(text) {
            Some(d) => Ok(d),
            None => NaiveDate::parse_from_str(text, "%F").map_err(|_| corrupt("date", text)),
        }
    }

    /// A time as sqlx stores or reads it (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` in UTC).
    fn time(text: &str) -> Result<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.with_timezone(&Utc));
        }
        for format in ["%F %T%.f%:z", "%F %T%.f%#z"] {
            if let Ok(t) = DateTime::parse_from_str(text, format) {
                return Ok(t.with_timezone(&Utc));
            }
        }
        for format in ["%F %T%.f", "%FT%T%.f"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
                return Ok(t.and_utc());
            }
        }
        Err(corrupt("time", text))
    }

    fn opt(r: &Row<'_>, c: i32) -> Result<Option<String>> {
        Ok(r.opt_str(c)?.map(str::to_string))
    }

    fn open_invoice(r: &Row<'_>) -> Result<OpenInvoiceRow> {
        Ok((
            r.int(0),
            r.int(1),
            r.str(2)?.to_string(),
            date(r.str(3)?)?,
            date(r.str(4)?)?,
            r.str(5)?.to_string(),
            r.int(6),
            r.int(7),
            r.int(8),
            opt(r, 9)?,
            r.opt_str(10)?.map(time).transpose()?,
            opt(r, 11)?,
            r.opt_str(12)?.map(date).transpose()?,
            opt(r, 13)?,
        ))
    }

    fn customer(r: &Row<'_>) -> Result<CustomerRowWithId> {
        Ok(CustomerRowWithId {
            id: r.int(0),
            row: CustomerRow {
                external_id: r.str(1)?.to_string(),
                name: r.str(2)?.to_string(),
                legal_name: opt(r, 3)?,
                siren: opt(r, 4)?,
                siret: opt(r, 5)?,
                vat_number: opt(r, 6)?,
                country: r.str(7)?.to_string(),
                segment: r.str(8)?.to_string(),
                locale: r.str(9)?.to_string(),
                emails: r.str(10)?.to_string(),
                phones: r.str(11)?.to_string(),
                address_line1: opt(r, 12)?,
                address_line2: opt(r, 13)?,
                postal_code: opt(r, 14)?,
                city: opt(r, 15)?,
                address_country: opt(r, 16)?,
                currency: r.str(17)?.to_string(),
                credit_limit_minor: r.opt_int(18),
                insured: r.int(19) != 0,
                insurer_policy: opt(r, 20)?,
                insurer_buyer_ref: opt(r, 21)?,
                cover_minor: r.opt_int(22),
                collector: opt(r, 23)?,
                tags: r.str(24)?.to_string(),
                pause_reason: opt(r, 25)?,
                paused_until: r.opt_str(26)?.map(date).transpose()?,
            },
        })
    }

    fn ids_json(ids: &[i64]) -> String {
        super::SqliteStore::id_list(ids)
    }

    /// The open invoices of the next batch after customer `after` (see the shared
    /// reader's `load_account_batch`: the same statement and the same rule for the last
    /// customer of a batch), and the rows that complete them into accounts.
    pub(super) fn batch(
        db: &crate::ffi::sqlite::Handle,
        segments: Option<&str>,
        after: Option<i64>,
        batch: i64,
    ) -> Result<(Vec<OpenInvoiceRow>, BatchRows)> {
        const INVOICES_PER_CUSTOMER: i64 = 10;
        let select = |after: Option<i64>, only: Option<i64>, limit: Option<i64>| {
            let mut sql = format!(
                "SELECT {} FROM invoices WHERE status = 'open' AND open_minor > 0",
                crate::store::rows::OPEN_INVOICE_COLUMNS
            );
            let mut values: Vec<Value<'_>> = Vec::new();
            if let Some(after) = after {
                sql.push_str(" AND customer_id > ?");
                values.push(after.into());
            }
            if let Some(only) = only {
                sql.push_str(" AND customer_id = ?");
                values.push(only.into());
            }
            if let Some(segments) = segments {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM customers c WHERE c.id = invoices.customer_id",
                );
                if let Some(after) = after {
                    sql.push_str(" AND c.id > ?");
                    values.push(after.into());
                }
                sql.push_str(" AND c.segment IN (SELECT value FROM json_each(?)))");
                values.push(segments.into());
            }
            sql.push_str(" ORDER BY customer_id, due_date, number");
            if let Some(limit) = limit {
                sql.push_str(" LIMIT ?");
                values.push(limit.into());
            }
            let mut rows = Vec::new();
            db.query(&sql, &values, |r| {
                rows.push(open_invoice(r)?);
                Ok::<_, StoreError>(())
            })?;
            Ok::<_, StoreError>(rows)
        };
        let limit = batch.saturating_mul(INVOICES_PER_CUSTOMER);
        let mut invoices = select(after, None, Some(limit))?;
        let Some(last) = invoices.last().map(|r| r.0) else {
            return Ok((Vec::new(), BatchRows::default()));
        };
        if invoices.len() as i64 == limit {
            if invoices.first().map(|r| r.0) == Some(last) {
                invoices = select(None, Some(last), None)?;
            } else {
                while invoices.last().map(|r| r.0) == Some(last) {
                    invoices.pop();
                }
            }
        }
        let mut ids: Vec<i64> = invoices.iter().map(|r| r.0).collect();
        ids.dedup();
        let ids = ids_json(&ids);
        let ids = Value::Text(&ids);
        let mut b = BatchRows::default();
        db.query(
            &format!(
                "SELECT id, {} FROM customers WHERE id IN (SELECT value FROM json_each(?))",
                crate::store::sql::CUSTOMER_COLUMNS
            ),
            std::slice::from_ref(&ids),
            |r| {
                b.customers.push(customer(r)?);
                Ok::<_, StoreError>(())
            },
        )?;
        let partly: Vec<i64> = invoices.iter().filter(|r| r.8 > 0).map(|r| r.1).collect();
        if !partly.is_empty() {
            let partly = ids_json(&partly);
            db.query(
                "SELECT a.invoice_id, p.date, a.amount_minor FROM allocations a JOIN payments p ON p.id = a.payment_id \
                 WHERE a.invoice_id IN (SELECT value FROM json_each(?))",
                &[Value::Text(&partly)],
                |r| {
                    b.paid.push((r.int(0), date(r.str(1)?)?, r.int(2)));
                    Ok::<_, StoreError>(())
                },
            )?;
        }
        db.query(
            "SELECT customer_id, currency, CAST(SUM(unapplied_minor) AS BIGINT) FROM payments \
             WHERE unapplied_minor > 0 AND customer_id IN (SELECT value FROM json_each(?)) GROUP BY customer_id, currency",
            std::slice::from_ref(&ids),
            |r| {
                b.credit.push((r.int(0), r.str(1)?.to_string(), r.int(2)));
                Ok::<_, StoreError>(())
            },
        )?;
        db.query(
            "SELECT customer_id, invoice, kind, step, first_action, applied FROM invoice_steps \
             WHERE customer_id IN (SELECT value FROM json_each(?))",
            std::slice::from_ref(&ids),
            |r| {
                b.steps.push((
                    r.int(0),
                    r.str(1)?.to_string(),
                    r.str(2)?.to_string(),
                    r.str(3)?.to_string(),
                    r.int(4),
                    r.str(5)?.to_string(),
                ));
                Ok::<_, StoreError>(())
            },
        )?;
        db.query(
            "SELECT p.customer_id, p.id, p.promised_date, p.currency, p.amount_minor, p.status, p.note, p.created_at FROM promises p \
             WHERE p.status IN ('pending', 'broken') AND p.customer_id IN (SELECT value FROM json_each(?)) ORDER BY p.customer_id, p.id",
            std::slice::from_ref(&ids),
            |r| {
                let p: PromiseTuple = (
                    r.int(0),
                    r.int(1),
                    date(r.str(2)?)?,
                    r.str(3)?.to_string(),
                    r.int(4),
                    r.str(5)?.to_string(),
                    opt(r, 6)?,
                    time(r.str(7)?)?,
                );
                b.promises.push(p);
                Ok::<_, StoreError>(())
            },
        )?;
        if !b.promises.is_empty() {
            let pids: Vec<i64> = b.promises.iter().map(|p| p.1).collect();
            let pids = ids_json(&pids);
            db.query(
                "SELECT pi.promise_id, i.number FROM promise_invoices pi JOIN invoices i ON i.id = pi.invoice_id \
                 WHERE pi.promise_id IN (SELECT value FROM json_each(?))",
                &[Value::Text(&pids)],
                |r| {
                    b.links.push((r.int(0), r.str(1)?.to_string()));
                    Ok::<_, StoreError>(())
                },
            )?;
        }
        Ok((invoices, b))
    }

    /// Every open invoice, decoded and dropped: (invoices, customers).
    pub(super) fn scan(db: &crate::ffi::sqlite::Handle) -> Result<(u64, u64)> {
        let sql = format!(
            "SELECT {} FROM invoices WHERE status = 'open' AND open_minor > 0 ORDER BY customer_id, due_date, number",
            crate::store::rows::OPEN_INVOICE_COLUMNS
        );
        let (mut invoices, mut customers, mut last) = (0u64, 0u64, None);
        db.query(&sql, &[], |r| {
            let row = open_invoice(r)?;
            invoices += 1;
            if last != Some(row.0) {
                customers += 1;
                last = Some(row.0);
            }
            Ok::<_, StoreError>(())
        })?;
        Ok((invoices, customers))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn dates_and_times_read_as_sqlx_writes_them() {
            assert_eq!(super::date("2026-11-02").unwrap().to_string(), "2026-11-02");
            assert!(super::date("2026-13-02").is_err());
            assert!(super::date("20261102").is_err());
            let t = super::time("2026-11-02T08:30:00.25+00:00").unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-02T08:30:00.250+00:00");
            let t = super::time("2026-11-02 08:30:00").unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-02T08:30:00+00:00");
            assert!(super::time("yesterday").is_err());
        }
    }
}

impl SqliteStore {
    /// Reads every open invoice in the order ticks read them, decoding each row as the
    /// tick's reader does and keeping nothing: the read floor of the benchmarks, with
    /// the tick's driver (SQLite's own interface).
    pub(crate) async fn scan_open_invoices_impl(&self) -> Result<(u64, u64)> {
        let mut conn = self.pool.acquire().await?;
        sqlite_raw::with_handle(&mut conn, read::scan).await
    }

    /// Loads the accounts of the next batch (see the shared `load_account_batch`):
    /// through SQLite's own interface, except for one customer asked for by its id.
    async fn load_batch(
        pool: SqlitePool,
        filter: std::sync::Arc<super::AccountFilter>,
        probe: bool,
        after: Option<i64>,
        batch: i64,
    ) -> Result<(crate::store::accounts::ReadBatch, Option<i64>)> {
        if filter.customer.is_some() {
            return Self::load_account_batch(pool, filter, probe, after, batch).await;
        }
        let segments = filter
            .segments
            .as_ref()
            .filter(|_| probe)
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        let mut conn = pool.acquire().await?;
        let (invoices, rows) = sqlite_raw::with_handle(&mut conn, |db| {
            read::batch(db, segments.as_deref(), after, batch)
        })
        .await?;
        drop(conn);
        let last = invoices.last().map(|r| r.0);
        let invoices = invoices
            .into_iter()
            .map(crate::store::rows::open_invoice)
            .collect::<Result<Vec<_>>>()?;
        Ok((crate::store::accounts::ReadBatch { invoices, rows }, last))
    }
}

// The statements both backends share, compiled for this one.
type Db = Sqlite;
type StoreImpl = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
/// How this backend says "is distinct from" (NULL-safe).
const DISTINCT: &str = "IS NOT";
#[path = "shared/actions.rs"]
mod actions;
#[path = "shared/bank.rs"]
mod bank;
#[path = "shared/console.rs"]
mod console;
#[path = "shared/idempotency.rs"]
mod idempotency;
#[path = "shared/ledger.rs"]
mod ledger;
#[path = "shared/report_deliveries.rs"]
mod report_deliveries;
#[path = "shared/reports.rs"]
mod reports;
#[path = "shared/retention.rs"]
mod retention;
#[path = "shared/users.rs"]
mod users;

/// SQLite serves one instance: it always leads.
struct SoleInstance;

#[async_trait::async_trait]
impl super::Leadership for SoleInstance {
    async fn still_held(&mut self) -> bool {
        true
    }
}

impl SqliteStore {
    pub(crate) async fn try_lead_impl(&self) -> Result<Option<Box<dyn super::Leadership>>> {
        Ok(Some(Box::new(SoleInstance)))
    }
}
