//! SQLite: the embedded default. One file, WAL journal, one writer at a time.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use sqlx::{Sqlite, SqlitePool};

use super::sql::ledger_sql;
use super::sql_actions::actions_sql;
use super::{Backend, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    /// Readers, and the few single-statement writes.
    pool: SqlitePool,
    /// The one connection that runs write transactions. SQLite has one writer at a time
    /// anyway; giving it its own connection keeps that connection's page cache (64 MiB)
    /// valid from one transaction to the next, so a tick or an import that writes batch
    /// after batch into the same indexes does not read their pages again each time.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Claims the oldest due action (see `sql_actions.rs`).
    const CLAIM_SQL: &'static str = "UPDATE actions SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT id FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT 1) AND status IN ('planned', 'retrying') \
         RETURNING id, idempotency_key, customer_id, kind, step, template, options, currency, amount_minor, attempts, decided_on";
    /// Write transactions take the write lock up front: a deferred one that reads and
    /// then writes fails at once ("database is locked", the busy timeout does not
    /// apply) when another connection wrote in between.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const REFRESH_STATISTICS: &'static str = "PRAGMA optimize";
    const REFRESH_ACTION_STATISTICS: &'static str = "PRAGMA optimize";

    /// Opens (creating if needed) the database file the URL names.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore> {
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
            .connect_with(options.pragma("cache_size", "-8192"))
            .await?;
        Ok(SqliteStore { pool, writer })
    }

    /// The pool write transactions are taken from.
    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn close_writer(&self) {
        self.writer.close().await;
    }
}

ledger_sql!(
    store = SqliteStore,
    tx = SqliteTx,
    db = Sqlite,
    backend = Backend::Sqlite,
    distinct = "IS NOT"
);
actions_sql!(store = SqliteStore, db = Sqlite);

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
