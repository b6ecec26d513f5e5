//! PostgreSQL: the production backend, shared by several relance instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions;
use sqlx::{PgPool, Postgres};

use chrono::{DateTime, NaiveDate, Utc};

use super::actions::{invoice_numbers_json, NewAction};
use super::{Backend, Result};
use crate::store::sql::{action_insert_columns, claimed_action_columns};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl PostgresStore {
    /// Claims the oldest due action (see `shared/actions.rs`).
    const CLAIM_SQL: &'static str = concat!(
        "UPDATE actions SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT id FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND status IN ('planned', 'retrying') \
         RETURNING ",
        claimed_action_columns!()
    );
    /// PostgreSQL locks rows as it goes: a plain BEGIN.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Claiming a report delivery skips rows other instances are claiming.
    /// The allocations of payments `p`, looked up by payment for each one: as a plain
    /// join PostgreSQL scans the whole allocations table for a batch's few thousand
    /// payments (95 ms a batch of 500 customers, against 10 ms); `OFFSET 0` keeps the
    /// subquery from being turned back into that join.
    const ALLOCATIONS_OF_PAYMENTS: &'static str = "CROSS JOIN LATERAL (SELECT x.invoice_id, x.amount_minor FROM allocations x WHERE x.payment_id = p.id OFFSET 0) a";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const REFRESH_ACTION_STATISTICS: &'static str = "ANALYZE actions (customer_id, status)";
    /// After an import that changed rows. VACUUM as well as ANALYZE: it marks the pages
    /// all-visible, so a tick's reads of the covering index of open invoices stay
    /// index-only (right after a bulk load every row would also be fetched from the
    /// table, and the first reader would rewrite every page to set its hint bits).
    const REFRESH_STATISTICS: &'static str =
        "VACUUM (ANALYZE) customers, invoices, payments, allocations, promises";
    /// A list of ids as one parameter: an array (see [`Self::id_list`]).
    const IN_IDS: &'static str = "= ANY($1)";

    /// The parameter [`Self::IN_IDS`] reads.
    fn id_list(ids: &[i64]) -> Vec<i64> {
        ids.to_vec()
    }

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

    /// Runs the pending migrations, each in its transaction (sqlx takes an advisory lock
    /// so that instances starting together apply them once).
    async fn apply_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Inserts a tick's new actions in one statement, its columns bound as arrays: the
    /// statement is prepared once and its plan reused, however many rows it carries.
    /// Returns the id and key of each one recorded (a key already recorded for its
    /// customer is left out).
    async fn insert_actions(
        conn: &mut sqlx::PgConnection,
        rows: &[(&NewAction, i64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>> {
        const SQL: &str = concat!(
            "INSERT INTO actions (",
            action_insert_columns!(),
            ") \
             SELECT k, c, seg, kind, step, tpl, opt, cur, amt, rf, rh, '', fs, inv, d, st, err, $17, $17, vr \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::date[], $15::text[], $16::text[], $18::text[]) \
             AS u (k, c, seg, kind, step, tpl, opt, cur, amt, rf, rh, fs, inv, d, st, err, vr) \
             ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING id, idempotency_key"
        );
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let text = |f: &dyn Fn(&NewAction) -> String| {
            rows.iter().map(|(a, _)| f(a)).collect::<Vec<String>>()
        };
        let recorded: Vec<(i64, String)> = sqlx::query_as(SQL)
            .bind(text(&|a| a.key.clone()))
            .bind(rows.iter().map(|(_, cid)| *cid).collect::<Vec<i64>>())
            .bind(text(&|a| a.segment.clone()))
            .bind(text(&|a| a.kind.as_str().to_string()))
            .bind(text(&|a| a.step.clone()))
            .bind(
                rows.iter()
                    .map(|(a, _)| a.template.clone())
                    .collect::<Vec<Option<String>>>(),
            )
            .bind(text(&|a| a.options.clone()))
            .bind(text(&|a| a.currency.clone()))
            .bind(
                rows.iter()
                    .map(|(a, _)| a.amount_minor)
                    .collect::<Vec<i64>>(),
            )
            .bind(text(&|a| a.rule_file.clone()))
            .bind(text(&|a| a.rule_hash.clone()))
            .bind(text(&|a| a.facts_sha256.to_string()))
            .bind(text(&|a| invoice_numbers_json(&a.invoices)))
            .bind(
                rows.iter()
                    .map(|(a, _)| a.decided_on)
                    .collect::<Vec<NaiveDate>>(),
            )
            .bind(text(&|a| a.status.as_str().to_string()))
            .bind(
                rows.iter()
                    .map(|(a, _)| a.detail.clone())
                    .collect::<Vec<Option<String>>>(),
            )
            .bind(now)
            .bind(
                rows.iter()
                    .map(|(a, _)| a.variant.clone())
                    .collect::<Vec<Option<String>>>(),
            )
            .fetch_all(&mut *conn)
            .await?;
        Ok(recorded)
    }

    /// Stores facts snapshots (customer id, SHA-256, JSON) not stored yet, in one
    /// statement.
    async fn insert_snapshots(
        conn: &mut sqlx::PgConnection,
        snapshots: &[(i64, &str, &str)],
    ) -> Result<()> {
        if snapshots.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO facts_snapshots (customer_id, sha256, snapshot) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[]) \
             ON CONFLICT (customer_id, sha256) DO NOTHING",
        )
        .bind(snapshots.iter().map(|s| s.0).collect::<Vec<i64>>())
        .bind(snapshots.iter().map(|s| s.1.to_string()).collect::<Vec<String>>())
        .bind(snapshots.iter().map(|s| s.2.to_string()).collect::<Vec<String>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

// The statements both backends share, compiled for this one.
type Db = Postgres;
type StoreImpl = PostgresStore;
const BACKEND: Backend = Backend::Postgres;
/// How this backend says "is distinct from" (NULL-safe).
const DISTINCT: &str = "IS DISTINCT FROM";
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
