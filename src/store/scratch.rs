//! A scratch key book on disk: keys met during one piece of work (the rows of a file
//! being imported) with the line each was first met on, in a temporary SQLite file of
//! its own, whatever the ledger's backend. It serves work whose keys would not fit in
//! memory (ten million invoice numbers). The file has no name once open: nothing is
//! left on disk when the book is dropped or the process ends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection};

use super::{Result, StoreError};

/// Keys and the line each was first met on.
pub struct ScratchKeys {
    conn: Option<SqliteConnection>,
    path: PathBuf,
}

impl ScratchKeys {
    /// Creates an empty book in the system's temporary directory.
    ///
    /// # Errors
    /// The file cannot be created.
    pub async fn create() -> Result<ScratchKeys> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "relance-keys-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let cannot = |e: sqlx::Error| {
            StoreError::Scratch(format!(
                "cannot create a scratch file in {} for the keys of a large file: {e} (set TMPDIR to another folder)",
                path.parent().map_or_else(String::new, |p| p.display().to_string())
            ))
        };
        // `new()`, not a URL: options parsed from `sqlite::memory:` keep their in-memory
        // flag whatever file name they are given, and the keys would stay in memory.
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            // Scratch: nothing to recover after a crash, no journal, no sync.
            .journal_mode(SqliteJournalMode::Off)
            .synchronous(SqliteSynchronous::Off)
            .pragma("cache_size", "-4096")
            .pragma("temp_store", "file")
            .disable_statement_logging()
            .connect()
            .await
            .map_err(cannot)?;
        sqlx::query(
            "CREATE TABLE keys (key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID",
        )
        .execute(&mut conn)
        .await?;
        // The connection keeps the file open; unlinked now, it leaves nothing behind
        // however the process ends (a killed import included). It has no journal and no
        // other connection, so nothing needs its name again. (Where an open file cannot
        // be unlinked, it goes when the book is dropped.)
        let _ = std::fs::remove_file(&path);
        Ok(ScratchKeys {
            conn: Some(conn),
            path,
        })
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("open until dropped")
    }

    /// The keys of `keys` already in the book, each with the line it was first met on.
    ///
    /// # Errors
    /// The file cannot be read.
    pub async fn lines_of(&mut self, keys: &[&str]) -> Result<Vec<(String, u64)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::to_string(keys).map_err(|e| StoreError::Scratch(e.to_string()))?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT k.key, k.line FROM json_each(?1) j JOIN keys k ON k.key = j.value",
        )
        .bind(json)
        .fetch_all(self.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(k, l)| (k, u64::try_from(l).unwrap_or_default()))
            .collect())
    }

    /// Adds keys with their lines; a key already in the book keeps its first line.
    ///
    /// # Errors
    /// The file cannot be written.
    pub async fn add(&mut self, entries: &[(&str, u64)]) -> Result<()> {
        for chunk in entries.chunks(10_000) {
            let json =
                serde_json::to_string(chunk).map_err(|e| StoreError::Scratch(e.to_string()))?;
            sqlx::query(
                "INSERT OR IGNORE INTO keys (key, line) \
                 SELECT value ->> 0, value ->> 1 FROM json_each(?1)",
            )
            .bind(json)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Drop for ScratchKeys {
    fn drop(&mut self) {
        // The connection closes (its worker thread ends) before the file goes.
        if let Some(conn) = self.conn.take() {
            drop(conn);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scratch_file_leaves_no_name_on_disk_and_still_answers() {
        let mut book = ScratchKeys::create().await.unwrap();
        assert!(!book.path.exists(), "{} still on disk", book.path.display());
        // The keys are in that file, not in memory: the process holds it open, unlinked.
        #[cfg(target_os = "linux")]
        {
            let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect();
            let name = book.path.display().to_string();
            assert!(
                open.iter()
                    .any(|p| p.starts_with(&name) && p.ends_with("(deleted)")),
                "{name} is not held open: {open:?}"
            );
        }
        book.add(&[("F1", 2), ("F2", 3)]).await.unwrap();
        book.add(&[("F1", 9)]).await.unwrap();
        let mut found = book.lines_of(&["F1", "F3"]).await.unwrap();
        found.sort();
        assert_eq!(found, vec![("F1".to_string(), 2)]);
    }
}
