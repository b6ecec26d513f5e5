//! SQLite: the embedded default. One file, WAL journal, one writer at a time.

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

impl SqliteStore {
    /// Claims the oldest due action (see `shared/actions.rs`).
    const CLAIM_SQL: &'static str = concat!(
        "UPDATE actions SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT id FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT 1) AND status IN ('planned', 'retrying') \
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-65536"))
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
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

    async fn close_writer(&self) {
        self.writer.close().await;
    }

    /// Inserts a tick's new actions through SQLite's own interface (see `ffi::sqlite`),
    /// [`ACTIONS_PER_STATEMENT`] rows per statement; returns the id and key of each one
    /// recorded (a key already recorded for its customer is left out).
    async fn insert_actions(
        conn: &mut sqlx::SqliteConnection,
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
                    a.decided_on.format("%F").to_string(),
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
        sqlite_raw::with_handle(conn, |db| {
            let mut recorded = Vec::with_capacity(rows.len());
            db.insert_rows(HEAD, WIDTH, TAIL, ACTIONS_PER_STATEMENT, &values, |r| {
                recorded.push((r.int(0), r.text(1)));
            })?;
            Ok(recorded)
        })
        .await
    }

    /// Stores facts snapshots (customer id, SHA-256, JSON) not stored yet.
    async fn insert_snapshots(
        conn: &mut sqlx::SqliteConnection,
        snapshots: &[(i64, &str, &str)],
    ) -> Result<()> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let values: Vec<Value<'_>> = snapshots
            .iter()
            .flat_map(|(cid, sha, json)| [(*cid).into(), (*sha).into(), (*json).into()])
            .collect();
        sqlite_raw::with_handle(conn, |db| {
            db.insert_rows(
                "INSERT INTO facts_snapshots (customer_id, sha256, snapshot)",
                3,
                "ON CONFLICT (customer_id, sha256) DO NOTHING",
                ACTIONS_PER_STATEMENT,
                &values,
                |_| (),
            )?;
            Ok::<_, super::StoreError>(())
        })
        .await
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
