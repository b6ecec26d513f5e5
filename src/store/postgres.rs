//! PostgreSQL: the production backend, shared by several relance instances.

use std::collections::HashMap;
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
         WHERE id IN (SELECT id FROM actions WHERE status IN ('planned', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) AND status IN ('planned', 'retrying') \
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
    const REFRESH_ACTION_STATISTICS: &'static str =
        "ANALYZE actions (customer_id, status), invoice_steps (customer_id)";
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

    /// See `Store::size_write_cache_for_tick`: the server sizes its own caches.
    #[allow(clippy::unused_async)]
    pub(crate) async fn size_write_cache_for_tick_impl(&self, _tick: bool) -> Result<()> {
        Ok(())
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

    /// Records a batch of decisions (see the shared `record_actions_sql`) in one
    /// transaction: looks up their customers, inserts the actions (by `COPY`), their
    /// facts snapshots and the steps they applied, then the events of the new blocked or
    /// failed ones and of the duplicates.
    async fn record_new_actions(
        pool: &PgPool,
        batch: &[NewAction],
        now: DateTime<Utc>,
    ) -> Result<super::actions::RecordCounts> {
        use super::actions::{
            customers_named, decision_events, new_snapshots, new_steps, record_counts, unrecorded,
            with_customer_ids,
        };
        let mut tx = pool.begin_with(Self::BEGIN_WRITE).await?;
        let customers: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT external_id, id FROM customers WHERE external_id = ANY($1)",
        )
        .bind(customers_named(batch))
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let rows = with_customer_ids(batch, &customers);
        let ids: HashMap<String, i64> = Self::insert_actions(&mut tx, &rows, now)
            .await?
            .into_iter()
            .map(|(id, key)| (key, id))
            .collect();
        Self::insert_snapshots(&mut tx, &new_snapshots(&rows, &ids)).await?;
        Self::upsert_steps(&mut tx, &new_steps(&rows, &ids)).await?;
        let unrecorded = unrecorded(&rows, &ids);
        let existing: HashMap<String, i64> = if unrecorded.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(
                "SELECT a.idempotency_key, a.id FROM actions a \
                 JOIN UNNEST($1::int8[], $2::text[]) AS u (customer_id, idempotency_key) \
                 ON a.customer_id = u.customer_id AND a.idempotency_key = u.idempotency_key",
            )
            .bind(unrecorded.iter().map(|(_, c)| *c).collect::<Vec<i64>>())
            .bind(unrecorded.iter().map(|(k, _)| *k).collect::<Vec<&str>>())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
        };
        let events = decision_events(&rows, &ids, &existing);
        if !events.is_empty() {
            sqlx::query(
                "INSERT INTO action_events (action_id, at, status, attempt, detail) \
                 SELECT id, $2, status, 0, detail FROM UNNEST($1::int8[], $3::text[], $4::text[]) \
                 AS e (id, status, detail)",
            )
            .bind(events.iter().map(|e| e.0).collect::<Vec<i64>>())
            .bind(now)
            .bind(events.iter().map(|e| e.1).collect::<Vec<&str>>())
            .bind(events.iter().map(|e| e.2).collect::<Vec<Option<&str>>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(record_counts(&ids, &unrecorded))
    }

    /// Inserts a tick's new actions; returns the id and key of each one recorded (a key
    /// already recorded for its customer is left out). The keys already there are looked
    /// up first and the others written by `COPY` in binary format with ids taken from
    /// the table's sequence: the fastest way rows go into a table. Should another
    /// instance record one of the keys meanwhile, the copy fails as a whole (the unique
    /// index) and the batch is written by `INSERT … ON CONFLICT DO NOTHING` instead.
    async fn insert_actions(
        conn: &mut sqlx::PgConnection,
        rows: &[(&NewAction, i64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>> {
        use std::collections::HashSet;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let existing: Vec<(i64, String)> = sqlx::query_as(
            "SELECT customer_id, idempotency_key FROM actions \
             WHERE (customer_id, idempotency_key) IN (SELECT * FROM UNNEST($1::int8[], $2::text[]))",
        )
        .bind(rows.iter().map(|(_, cid)| *cid).collect::<Vec<i64>>())
        .bind(rows.iter().map(|(a, _)| a.key.clone()).collect::<Vec<String>>())
        .fetch_all(&mut *conn)
        .await?;
        let mut seen: HashSet<(i64, &str)> =
            existing.iter().map(|(c, k)| (*c, k.as_str())).collect();
        let fresh: Vec<&(&NewAction, i64)> = rows
            .iter()
            .filter(|(a, cid)| seen.insert((*cid, a.key.as_str())))
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('actions', 'id')) FROM generate_series(1, $1)",
        )
        .bind(fresh.len() as i64)
        .fetch_all(&mut *conn)
        .await?;
        ids.sort_unstable();
        let mut copy = copy::Binary::new();
        for ((a, cid), id) in fresh.iter().zip(&ids) {
            copy.row(21);
            copy.int8(*id);
            copy.text(&a.key);
            copy.int8(*cid);
            copy.text(&a.segment);
            copy.text(a.kind.as_str());
            copy.text(&a.step);
            copy.opt_text(a.template.as_deref());
            copy.text(&a.options);
            copy.text(&a.currency);
            copy.int8(a.amount_minor);
            copy.text(&a.rule_file);
            copy.text(&a.rule_hash);
            // The facts themselves are stored once in facts_snapshots.
            copy.text("");
            copy.text(&a.facts_sha256);
            copy.text(&invoice_numbers_json(&a.invoices));
            copy.date(a.decided_on);
            copy.text(a.status.as_str());
            copy.opt_text(a.detail.as_deref());
            copy.timestamptz(now);
            copy.timestamptz(now);
            copy.opt_text(a.variant.as_deref());
        }
        let sql = concat!(
            "COPY actions (id, ",
            action_insert_columns!(),
            ") FROM STDIN (FORMAT binary)"
        );
        if copy::copy_in(conn, sql, copy.finish()).await? {
            return Ok(fresh
                .iter()
                .zip(ids)
                .map(|((a, _), id)| (id, a.key.clone()))
                .collect());
        }
        Self::insert_actions_on_conflict(conn, rows, now).await
    }

    /// Inserts actions in one statement, its columns bound as arrays, leaving out the
    /// keys already recorded for their customer.
    async fn insert_actions_on_conflict(
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

    /// Stores facts snapshots (customer id, SHA-256, JSON) not stored yet: the ones
    /// stored are looked up, the others copied (as actions are).
    async fn insert_snapshots(
        conn: &mut sqlx::PgConnection,
        snapshots: &[(i64, &str, &str)],
    ) -> Result<()> {
        use std::collections::HashSet;
        if snapshots.is_empty() {
            return Ok(());
        }
        let customers: Vec<i64> = snapshots.iter().map(|s| s.0).collect();
        let shas: Vec<String> = snapshots.iter().map(|s| s.1.to_string()).collect();
        let existing: Vec<(i64, String)> = sqlx::query_as(
            "SELECT customer_id, sha256 FROM facts_snapshots \
             WHERE (customer_id, sha256) IN (SELECT * FROM UNNEST($1::int8[], $2::text[]))",
        )
        .bind(&customers)
        .bind(&shas)
        .fetch_all(&mut *conn)
        .await?;
        let mut seen: HashSet<(i64, &str)> =
            existing.iter().map(|(c, s)| (*c, s.as_str())).collect();
        let mut copy = copy::Binary::new();
        let mut any = false;
        for (cid, sha, json) in snapshots {
            if seen.insert((*cid, sha)) {
                any = true;
                copy.row(3);
                copy.int8(*cid);
                copy.text(sha);
                copy.text(json);
            }
        }
        if !any
            || copy::copy_in(
                conn,
                "COPY facts_snapshots (customer_id, sha256, snapshot) FROM STDIN (FORMAT binary)",
                copy.finish(),
            )
            .await?
        {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO facts_snapshots (customer_id, sha256, snapshot) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[]) \
             ON CONFLICT (customer_id, sha256) DO NOTHING",
        )
        .bind(customers)
        .bind(shas)
        .bind(snapshots.iter().map(|s| s.2.to_string()).collect::<Vec<String>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Writes rows of `invoice_steps` (see [`super::steps`]): the days of a row already
    /// there are appended by one `UPDATE`, the new rows copied (as actions are).
    async fn upsert_steps(
        conn: &mut sqlx::PgConnection,
        rows: &[super::steps::StepRow],
    ) -> Result<()> {
        use std::collections::HashSet;
        type Row = super::steps::StepRow;
        if rows.is_empty() {
            return Ok(());
        }
        let strings = |rows: &[&Row], f: &dyn Fn(&Row) -> &str| {
            rows.iter()
                .map(|r| f(r).to_string())
                .collect::<Vec<String>>()
        };
        let ints = |rows: &[&Row], f: &dyn Fn(&Row) -> i64| {
            rows.iter().map(|r| f(r)).collect::<Vec<i64>>()
        };
        let all: Vec<&Row> = rows.iter().collect();
        // A few rows (one past action imported, one customer's state folded again): one
        // statement rather than a look-up, a copy and its savepoint.
        if rows.len() <= 8 {
            return Self::upsert_step_rows(conn, &all).await;
        }
        let existing: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT customer_id, invoice, step FROM invoice_steps \
             WHERE (customer_id, invoice, step) IN (SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[]))",
        )
        .bind(ints(&all, &|r| r.customer_id))
        .bind(strings(&all, &|r| &r.invoice))
        .bind(strings(&all, &|r| &r.step))
        .fetch_all(&mut *conn)
        .await?;
        let there: HashSet<(i64, &str, &str)> = existing
            .iter()
            .map(|(c, i, s)| (*c, i.as_str(), s.as_str()))
            .collect();
        let (old, new): (Vec<&Row>, Vec<&Row>) = rows
            .iter()
            .partition(|r| there.contains(&(r.customer_id, r.invoice.as_str(), r.step.as_str())));
        if !old.is_empty() {
            sqlx::query(
                "UPDATE invoice_steps s SET applied = s.applied || ' ' || u.applied \
                 FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[]) AS u (customer_id, invoice, step, applied) \
                 WHERE s.customer_id = u.customer_id AND s.invoice = u.invoice AND s.step = u.step",
            )
            .bind(ints(&old, &|r| r.customer_id))
            .bind(strings(&old, &|r| &r.invoice))
            .bind(strings(&old, &|r| &r.step))
            .bind(strings(&old, &|r| &r.applied))
            .execute(&mut *conn)
            .await?;
        }
        if new.is_empty() {
            return Ok(());
        }
        let mut copy = copy::Binary::new();
        for r in &new {
            copy.row(6);
            copy.int8(r.customer_id);
            copy.text(&r.invoice);
            copy.text(&r.step);
            copy.text(&r.kind);
            copy.int8(r.first_action);
            copy.text(&r.applied);
        }
        if copy::copy_in(
            conn,
            "COPY invoice_steps (customer_id, invoice, step, kind, first_action, applied) FROM STDIN (FORMAT binary)",
            copy.finish(),
        )
        .await?
        {
            return Ok(());
        }
        Self::upsert_step_rows(conn, &new).await
    }

    /// Writes `rows` of `invoice_steps` by one `INSERT … ON CONFLICT`, their columns
    /// bound as arrays.
    async fn upsert_step_rows(
        conn: &mut sqlx::PgConnection,
        rows: &[&super::steps::StepRow],
    ) -> Result<()> {
        let upsert = format!(
            "{} SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[]) {}",
            super::steps::UPSERT_HEAD,
            super::steps::UPSERT_TAIL
        );
        let text = |f: &dyn Fn(&super::steps::StepRow) -> &str| {
            rows.iter()
                .map(|r| f(r).to_string())
                .collect::<Vec<String>>()
        };
        sqlx::query(&upsert)
            .bind(rows.iter().map(|r| r.customer_id).collect::<Vec<i64>>())
            .bind(text(&|r| &r.invoice))
            .bind(text(&|r| &r.step))
            .bind(text(&|r| &r.kind))
            .bind(rows.iter().map(|r| r.first_action).collect::<Vec<i64>>())
            .bind(text(&|r| &r.applied))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// `COPY … FROM STDIN` in PostgreSQL's binary format.
mod copy {
    use chrono::{DateTime, NaiveDate, Utc};

    /// Rows encoded in COPY's binary format: a header, each row as its field count
    /// then each field's length (-1 for NULL) and bytes, a trailer.
    pub(super) struct Binary {
        buf: Vec<u8>,
    }

    /// 2000-01-01, PostgreSQL's epoch for dates and times.
    fn epoch() -> NaiveDate {
        NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
    }

    impl Binary {
        pub(super) fn new() -> Binary {
            let mut buf = Vec::with_capacity(1 << 16);
            buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            buf.extend_from_slice(&0i32.to_be_bytes());
            buf.extend_from_slice(&0i32.to_be_bytes());
            Binary { buf }
        }

        pub(super) fn row(&mut self, fields: i16) {
            self.buf.extend_from_slice(&fields.to_be_bytes());
        }

        pub(super) fn text(&mut self, s: &str) {
            let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(s.as_bytes());
        }

        pub(super) fn opt_text(&mut self, s: Option<&str>) {
            match s {
                Some(s) => self.text(s),
                None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }

        pub(super) fn int8(&mut self, v: i64) {
            self.buf.extend_from_slice(&8i32.to_be_bytes());
            self.buf.extend_from_slice(&v.to_be_bytes());
        }

        pub(super) fn date(&mut self, d: NaiveDate) {
            let days = i32::try_from((d - epoch()).num_days()).unwrap_or(i32::MAX);
            self.buf.extend_from_slice(&4i32.to_be_bytes());
            self.buf.extend_from_slice(&days.to_be_bytes());
        }

        pub(super) fn timestamptz(&mut self, t: DateTime<Utc>) {
            let start = epoch().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            let micros = (t - start).num_microseconds().unwrap_or(i64::MAX);
            self.buf.extend_from_slice(&8i32.to_be_bytes());
            self.buf.extend_from_slice(&micros.to_be_bytes());
        }

        pub(super) fn finish(mut self) -> Vec<u8> {
            self.buf.extend_from_slice(&(-1i16).to_be_bytes());
            self.buf
        }
    }

    /// Runs `sql` (a `COPY … FROM STDIN (FORMAT binary)`) with `data` under a savepoint.
    /// `false` when a unique index refused a row: nothing was copied and the
    /// transaction goes on (the caller writes the rows another way).
    pub(super) async fn copy_in(
        conn: &mut sqlx::PgConnection,
        sql: &str,
        data: Vec<u8>,
    ) -> super::Result<bool> {
        use sqlx::Connection;
        let mut savepoint = conn.begin().await?;
        let copied = async {
            let mut copy = savepoint.copy_in_raw(sql).await?;
            copy.send(data).await?;
            copy.finish().await
        }
        .await;
        match copied {
            Ok(_) => {
                savepoint.commit().await?;
                Ok(true)
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                savepoint.rollback().await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl PostgresStore {
    /// Reads every open invoice in the order ticks read them, decoding each row and
    /// keeping nothing: the read floor of the benchmarks.
    pub(crate) async fn scan_open_invoices_impl(&self) -> Result<(u64, u64)> {
        use futures_util::StreamExt;
        let sql = format!(
            "SELECT {} FROM invoices WHERE status = 'open' AND open_minor > 0 ORDER BY customer_id, due_date, number",
            crate::store::rows::OPEN_INVOICE_COLUMNS
        );
        let mut rows =
            sqlx::query_as::<_, crate::store::rows::OpenInvoiceRow>(&sql).fetch(&self.pool);
        let (mut invoices, mut customers, mut last) = (0u64, 0u64, None);
        while let Some(row) = rows.next().await {
            let row = row?;
            invoices += 1;
            if last != Some(row.0) {
                customers += 1;
                last = Some(row.0);
            }
        }
        Ok((invoices, customers))
    }

    /// Loads the accounts of the next batch: the shared reader.
    async fn load_batch(
        pool: PgPool,
        filter: std::sync::Arc<super::AccountFilter>,
        probe: bool,
        after: Option<i64>,
        batch: i64,
    ) -> Result<(crate::store::accounts::ReadBatch, Option<i64>)> {
        Self::load_account_batch(pool, filter, probe, after, batch).await
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
