//! PostgreSQL: the production backend, shared by several relance instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions;
use sqlx::{PgPool, Postgres};

use super::sql::ledger_sql;
use super::sql_actions::actions_sql;
use super::{Backend, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl PostgresStore {
    /// Claims the oldest due action (see `sql_actions.rs`).
    const CLAIM_SQL: &'static str = "UPDATE actions SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT id FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND status IN ('planned', 'retrying') \
         RETURNING id, idempotency_key, customer_id, kind, step, template, options, currency, amount_minor, attempts, decided_on";
    /// PostgreSQL locks rows as it goes: a plain BEGIN.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const REFRESH_ACTION_STATISTICS: &'static str = "ANALYZE actions, facts_snapshots";
    const REFRESH_STATISTICS: &'static str =
        "ANALYZE customers, invoices, payments, allocations, promises";

    /// Connects to the server the URL names.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the connection.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PostgresStore> {
        // Short, index-driven statements: JIT compilation only adds latency to them.
        let options = PgConnectOptions::from_str(url)?
            .application_name("relance")
            .options([("jit", "off")])
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        Ok(PostgresStore { pool, options })
    }

    /// The pool write transactions are taken from: PostgreSQL has concurrent writers,
    /// so the one pool.
    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    #[allow(clippy::unused_async)]
    async fn close_writer(&self) {}
}

ledger_sql!(
    store = PostgresStore,
    tx = PostgresTx,
    db = Postgres,
    backend = Backend::Postgres,
    distinct = "IS DISTINCT FROM"
);
actions_sql!(store = PostgresStore, db = Postgres);

/// Key of the advisory lock the scheduling instance holds ("relance" in ASCII).
const SCHEDULER_LOCK: i64 = 0x0072_656c_616e_6365;

/// The scheduler role, held by a session advisory lock on a connection of its own.
struct AdvisoryLock {
    conn: sqlx::PgConnection,
}

#[async_trait::async_trait]
impl super::Leadership for AdvisoryLock {
    async fn still_held(&mut self) -> bool {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = ($1 & 4294967295)::oid AND granted)")
            .bind(SCHEDULER_LOCK)
            .fetch_one(&mut self.conn)
            .await
            .unwrap_or(false)
    }
}

impl PostgresStore {
    pub(crate) async fn try_lead_impl(&self) -> Result<Option<Box<dyn super::Leadership>>> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&self.options).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCHEDULER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Box::new(AdvisoryLock { conn })))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}
