//! SQLite's C interface: the library's process-wide options ([`configure`]), and bulk
//! inserts and reads on a connection sqlx holds.
//!
//! A tick writes hundreds of thousands of action rows. Through sqlx each value is copied
//! into an owned argument, sent to the connection's worker thread and copied again by
//! SQLite, every inserted row comes back as owned values, and a multi-row statement is
//! parsed again whenever its row count changes. Here a statement is prepared once per
//! batch and its text values are bound without a copy (`SQLITE_STATIC`: they outlive
//! the step that reads them), in the transaction the caller holds open on the same
//! connection.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

/// An error SQLite reported, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SqliteError(pub String);

type Result<T> = std::result::Result<T, SqliteError>;

/// One prepared statement, finalized when dropped.
pub struct Statement {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
}

/// A value to bind.
pub enum Value<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// A row a statement returned, valid while the statement stays on it.
pub struct Row<'s> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _statement: std::marker::PhantomData<&'s Statement>,
}

impl Row<'_> {
    pub fn int(&self, column: c_int) -> i64 {
        // SAFETY: the statement is on a row; SQLite converts any value to an integer.
        unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), column) }
    }

    /// Whether the column's value is NULL.
    pub fn is_null(&self, column: c_int) -> bool {
        // SAFETY: the statement is on a row.
        unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), column) == ffi::SQLITE_NULL }
    }

    pub fn opt_int(&self, column: c_int) -> Option<i64> {
        (!self.is_null(column)).then(|| self.int(column))
    }

    /// The column's text, borrowed until the statement moves to its next row (the
    /// caller's closure returns first); invalid UTF-8 is an error.
    pub fn str(&self, column: c_int) -> Result<&str> {
        // SAFETY: the statement is on a row; the text pointer and its length stay valid
        // until the next step or reset, which cannot happen while `self` is borrowed.
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.stmt.as_ptr(), column);
            let n =
                usize::try_from(ffi::sqlite3_column_bytes(self.stmt.as_ptr(), column)).unwrap_or(0);
            if p.is_null() {
                return Ok("");
            }
            std::slice::from_raw_parts(p, n)
        };
        std::str::from_utf8(bytes).map_err(|e| SqliteError(format!("column {column}: {e}")))
    }

    pub fn opt_str(&self, column: c_int) -> Result<Option<&str>> {
        if self.is_null(column) {
            Ok(None)
        } else {
            self.str(column).map(Some)
        }
    }

    pub fn text(&self, column: c_int) -> String {
        // SAFETY: the statement is on a row; the text pointer and its length stay valid
        // until the next step or reset, and are copied at once.
        unsafe {
            let p = ffi::sqlite3_column_text(self.stmt.as_ptr(), column);
            let n =
                usize::try_from(ffi::sqlite3_column_bytes(self.stmt.as_ptr(), column)).unwrap_or(0);
            if p.is_null() {
                return String::new();
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned()
        }
    }
}

fn error(db: NonNull<ffi::sqlite3>, code: c_int, what: &str) -> SqliteError {
    // SAFETY: the handle is open; sqlite3_errmsg returns a NUL-terminated string owned
    // by SQLite, valid until the next call on this connection (copied at once).
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
        .to_string_lossy()
        .into_owned();
    SqliteError(format!("database error ({what}, code {code}): {message}"))
}

impl Statement {
    /// Prepares `sql` on the connection `db` (a [`Handle`]'s: open, and used by this
    /// thread only while the handle lives).
    fn prepare(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<Statement> {
        let mut stmt = std::ptr::null_mut();
        let len =
            c_int::try_from(sql.len()).map_err(|_| SqliteError("statement too long".into()))?;
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the statement pointer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &raw mut stmt,
                std::ptr::null_mut(),
            )
        };
        match NonNull::new(stmt) {
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(Statement { db, stmt }),
            _ => Err(error(db, rc, "prepare")),
        }
    }

    /// Binds `values` to the parameters 1, 2, … Text values are bound without a copy:
    /// the statement must be reset (which forgets them) before they go away.
    fn bind(&mut self, values: &[Value<'_>]) -> Result<()> {
        for (i, v) in values.iter().enumerate() {
            let n = c_int::try_from(i + 1).unwrap_or(c_int::MAX);
            // SAFETY: the statement is live; text pointers are valid for their length
            // until the caller resets the statement (SQLITE_STATIC), which every caller
            // below does before its borrowed values go away.
            let rc = unsafe {
                match v {
                    Value::Int(x) => ffi::sqlite3_bind_int64(self.stmt.as_ptr(), n, *x),
                    Value::Null => ffi::sqlite3_bind_null(self.stmt.as_ptr(), n),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        self.stmt.as_ptr(),
                        n,
                        s.as_ptr().cast::<c_char>(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(error(self.db, rc, "bind"));
            }
        }
        Ok(())
    }

    /// Binds `values`, runs the statement to completion and resets it, calling `row`
    /// with each row it returns.
    fn run(&mut self, values: &[Value<'_>], mut row: impl FnMut(&Row<'_>)) -> Result<()> {
        self.try_run(values, |r| {
            row(r);
            Ok(())
        })
    }

    /// As [`Self::run`], stopping at the first error `row` returns.
    fn try_run<E: From<SqliteError>>(
        &mut self,
        values: &[Value<'_>],
        mut row: impl FnMut(&Row<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let result = self.bind(values).map_err(E::from).and_then(|()| loop {
            // SAFETY: the statement is live and fully bound.
            match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
                ffi::SQLITE_ROW => row(&Row {
                    stmt: self.stmt,
                    _statement: std::marker::PhantomData,
                })?,
                ffi::SQLITE_DONE => break Ok(()),
                rc => break Err(error(self.db, rc, "step").into()),
            }
        });
        self.reset();
        result
    }

    fn reset(&mut self) {
        // SAFETY: the statement is live. The borrowed text pointers are forgotten here.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared by `prepare` and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// A connection sqlx holds, locked for direct use by the current thread.
pub struct Handle {
    db: NonNull<ffi::sqlite3>,
}

impl Handle {
    /// Inserts rows of `width` values each (`values` holds them one row after the
    /// other), `per_statement` rows to a statement `{head} VALUES (?, …), … {tail}`.
    /// The statement for a full chunk is prepared once; only a shorter last chunk gets
    /// one of its own. `row` receives each row the statements return (`RETURNING`).
    pub fn insert_rows(
        &self,
        head: &str,
        width: usize,
        tail: &str,
        per_statement: usize,
        values: &[Value<'_>],
        mut row: impl FnMut(&Row<'_>),
    ) -> Result<()> {
        let statement = |rows: usize| -> Result<Statement> {
            let one = format!("({})", vec!["?"; width].join(", "));
            let sql = format!("{head} VALUES {} {tail}", vec![one; rows].join(", "));
            Statement::prepare(self.db, &sql)
        };
        let mut prepared: Option<(usize, Statement)> = None;
        for chunk in values.chunks(width.max(1) * per_statement.max(1)) {
            let rows = chunk.len() / width.max(1);
            if prepared.as_ref().is_none_or(|(n, _)| *n != rows) {
                prepared = Some((rows, statement(rows)?));
            }
            if let Some((_, insert)) = prepared.as_mut() {
                insert.run(chunk, &mut row)?;
            }
        }
        Ok(())
    }
}

impl Handle {
    /// Runs the query `sql` with `values` bound to its parameters in order, calling
    /// `row` with each row (its values borrowed until the next row); stops at the first
    /// error `row` returns.
    pub fn query<E: From<SqliteError>>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        row: impl FnMut(&Row<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut statement = Statement::prepare(self.db, sql)?;
        statement.try_run(values, row)
    }
}

impl Handle {
    /// Runs `sql`, a statement with no parameter whose rows, if any, are not read.
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.query::<SqliteError>(sql, &[], |_| Ok(()))
    }
}

/// Runs `work` on the raw handle of `conn` (which the caller holds in a transaction of
/// sqlx's, or which [`in_write_transaction`] runs in one of its own). On tokio's multi-threaded runtime the work runs in place of the current worker (its
/// other tasks move to another one), as it blocks for the length of a batch.
pub async fn with_handle<T, E: From<sqlx::Error>>(
    conn: &mut sqlx::SqliteConnection,
    work: impl FnOnce(&Handle) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let mut locked = conn.lock_handle().await?;
    // Valid while `locked` lives: sqlx's worker does not touch the connection meanwhile.
    let handle = Handle {
        db: locked.as_raw_handle(),
    };
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(|| work(&handle))
    } else {
        work(&handle)
    }
}

/// Runs `work` in a write transaction (`BEGIN IMMEDIATE` … `COMMIT`) on the raw handle
/// of `conn`, which holds no transaction, all in one hand-over of the connection (see
/// [`with_handle`]). When `work` fails or panics, or the commit fails, the transaction is
/// rolled back, so the connection goes back to its pool with none open.
pub async fn in_write_transaction<T, E: From<sqlx::Error> + From<SqliteError>>(
    conn: &mut sqlx::SqliteConnection,
    work: impl FnOnce(&Handle) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    /// Rolls the transaction back unless it was committed.
    struct Open<'h>(&'h Handle, bool);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            if self.1 {
                let _ = self.0.execute("ROLLBACK");
            }
        }
    }
    with_handle(conn, |db| {
        db.execute("BEGIN IMMEDIATE")?;
        let mut open = Open(db, true);
        let value = work(db)?;
        db.execute("COMMIT")?;
        open.1 = false;
        Ok(value)
    })
    .await
}

/// Sets SQLite's process-wide options, once, before the first connection.
///
/// - Memory statistics off: SQLite updates them under one process-wide mutex on every
///   allocation, so the connections, each on its own thread (a tick reads on several
///   while it writes on another), queue on that mutex for every value they copy.
///   relance never reads those statistics.
/// - Allocations from mimalloc, the allocator of the rest of the process, rather than
///   the C library's: sqlx copies every value of every row it reads, and SQLite's
///   allocations were a seventh of a tick's processor time.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let methods = libsqlite3_sys::sqlite3_mem_methods {
            xMalloc: Some(memory::malloc),
            xFree: Some(memory::free),
            xRealloc: Some(memory::realloc),
            xSize: Some(memory::size),
            xRoundup: Some(memory::roundup),
            xInit: Some(memory::init),
            xShutdown: Some(memory::shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: called before any connection of this process exists (every SQLite
        // connection is opened after this), so no other thread is inside SQLite;
        // SQLite copies `methods` before returning. Should the library be initialised
        // already, SQLite refuses with SQLITE_MISUSE and nothing changes.
        unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MALLOC,
                &raw const methods,
            );
        }
    });
}

/// SQLite's memory routines on mimalloc (`sqlite3_mem_methods`).
mod memory {
    use std::ffi::{c_int, c_void};

    use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    fn int(n: usize) -> c_int {
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }

    pub(super) unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size may be asked of mimalloc; it returns null when it cannot.
        unsafe { mi_malloc(bytes(n)) }
    }

    pub(super) unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc` or `realloc` gave it (or null).
        unsafe { mi_free(p) }
    }

    pub(super) unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as `free`; SQLite never asks for zero bytes here.
        unsafe { mi_realloc(p, bytes(n)) }
    }

    pub(super) unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as `free`.
        int(unsafe { mi_usable_size(p) })
    }

    pub(super) unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure computation.
        int(unsafe { mi_good_size(bytes(n)) })
    }

    pub(super) unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        libsqlite3_sys::SQLITE_OK
    }

    pub(super) unsafe extern "C" fn shutdown(_: *mut c_void) {}
}

#[cfg(test)]
mod tests {
    use super::{in_write_transaction, SqliteError};
    use sqlx::Connection;

    #[derive(Debug)]
    struct Failed(String);
    impl From<sqlx::Error> for Failed {
        fn from(e: sqlx::Error) -> Self {
            Failed(e.to_string())
        }
    }
    impl From<SqliteError> for Failed {
        fn from(e: SqliteError) -> Self {
            Failed(e.0)
        }
    }

    async fn count(conn: &mut sqlx::SqliteConnection) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_transaction_that_fails_leaves_nothing_and_no_transaction_open() {
        super::configure();
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        // A row written, then a failure: the row is rolled back.
        let failed = in_write_transaction(&mut conn, |db| {
            db.execute("INSERT INTO t VALUES (1)")?;
            db.execute("INSERT INTO t VALUES (1)")?;
            Ok::<_, Failed>(())
        })
        .await;
        let error = failed.expect_err("a second row with the same key fails").0;
        assert!(error.contains("UNIQUE"), "{error}");
        assert_eq!(count(&mut conn).await, 0);
        // A panic in the work rolls back too.
        let panicked = std::panic::AssertUnwindSafe(in_write_transaction(&mut conn, |db| {
            db.execute("INSERT INTO t VALUES (2)")?;
            if db.execute("SELECT 1").is_ok() {
                panic!("work panicked");
            }
            Ok::<_, Failed>(())
        }));
        let caught = futures_util::FutureExt::catch_unwind(panicked).await;
        assert!(caught.is_err());
        assert_eq!(count(&mut conn).await, 0);
        // No transaction was left open: sqlx begins one, and a committed write stays.
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        in_write_transaction(&mut conn, |db| {
            db.execute("INSERT INTO t VALUES (4)")?;
            Ok::<_, Failed>(())
        })
        .await
        .unwrap();
        assert_eq!(count(&mut conn).await, 2);
    }
}
