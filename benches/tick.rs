//! Tick benchmark: ticks (load, rules, writing the planned actions) as the `relance`
//! binary runs them, against floors measured in the same run:
//!
//! - the **read floor**: the same open invoices read with the same driver, rows decoded,
//!   nothing else;
//! - the **write floor**: the rows a first tick wrote (actions, facts snapshots, steps
//!   applied) written again by the fastest bulk path into empty tables with the same
//!   indexes: `COPY … FROM STDIN (FORMAT binary)` on PostgreSQL, one
//!   `INSERT … SELECT` from the tables themselves on SQLite.
//!
//! Phases, on the generated portfolio (100,000 customers, 1,000,000 invoices, seed 42,
//! as of 2026-11-02):
//!
//! 1. the first tick on a ledger with no action yet (target: 1.5x read + write floor);
//! 2. the daily tick: the next day's, and the one after `BENCH_DAYS` (30) days of daily
//!    ticks, the planned actions of each day marked sent in between as the outbox would
//!    (target: 2.5x the read floor, whatever the length of the history);
//! 3. a year: the reports benchmark's ledger (a year of invoices and payments and the
//!    1.9 million actions of its history, imported), its first tick, then the next day's.
//!
//! ```sh
//! cargo bench --bench tick
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench tick
//! BENCH_ONLY=postgres BENCH_PHASES=first,daily RELANCE_BENCH_POSTGRES_URL=… cargo bench --bench tick
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{env_u32, Measured};
use relance::config::DatabaseUrl;

// The allocator the `relance` binary runs with: the floor reads as the binary would.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AS_OF: &str = "2026-11-02";

/// The tables a tick writes, and the columns copied (all but generated ids).
const WRITTEN: [&str; 3] = ["actions", "facts_snapshots", "invoice_steps"];

fn read_floor(url: &str) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = relance::store::open(&DatabaseUrl::new(url), 4)
            .await
            .unwrap();
        store.scan_open_invoices().await.unwrap();
        let t = Instant::now();
        store.scan_open_invoices().await.unwrap();
        let d = t.elapsed();
        store.close().await;
        d
    })
}

/// The same read through sqlx, the driver every other read of relance uses (and the
/// tick's before it read through SQLite's own interface): for comparison.
fn sqlx_floor(url: &str) -> Duration {
    use futures_util::StreamExt;
    use sqlx::Connection;
    type Row = (
        i64,
        i64,
        String,
        chrono::NaiveDate,
        chrono::NaiveDate,
        String,
        i64,
        i64,
        i64,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<String>,
        Option<chrono::NaiveDate>,
        Option<String>,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sql = "SELECT customer_id, id, number, issue_date, due_date, currency, amount_minor, open_minor, allocated_minor, \
                   dispute_reason, disputed_at, pause_reason, paused_until, einvoice_status FROM invoices \
                   WHERE status = 'open' AND open_minor > 0 ORDER BY customer_id, due_date, number";
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut best = Duration::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            let mut rows = sqlx::query_as::<_, Row>(sql).fetch(&mut c);
            let mut n = 0u64;
            while let Some(r) = rows.next().await {
                r.unwrap();
                n += 1;
            }
            assert!(n > 0);
            best = best.min(t.elapsed());
        }
        best
    })
}

/// The write floor on SQLite: the tick's rows inserted again, by one `INSERT … SELECT`
/// per table in one transaction, into empty tables with the same indexes.
fn sqlite_write_floor(url: &str) -> (Duration, u64) {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("PRAGMA cache_size = -65536")
            .execute(&mut c)
            .await
            .unwrap();
        let mut rows = 0u64;
        for table in WRITTEN {
            let copy = format!("floor_{table}");
            sqlx::query(&format!("DROP TABLE IF EXISTS {copy}"))
                .execute(&mut c)
                .await
                .unwrap();
            let schema: Vec<(String, String)> = sqlx::query_as(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type DESC",
            )
            .bind(table)
            .fetch_all(&mut c)
            .await
            .unwrap();
            for (kind, sql) in schema {
                let sql = if kind == "table" {
                    sql.replacen(&format!("\"{table}\""), &copy, 1)
                        .replacen(&format!("TABLE {table} "), &format!("TABLE {copy} "), 1)
                } else {
                    sql.replacen(" INDEX ", " INDEX floor_", 1)
                        .replacen(&format!(" ON {table} "), &format!(" ON {copy} "), 1)
                        .replacen(&format!(" ON \"{table}\" "), &format!(" ON {copy} "), 1)
                };
                sqlx::query(&sql).execute(&mut c).await.unwrap();
            }
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get(0);
            rows += n as u64;
        }
        let t = Instant::now();
        let mut tx = c.begin().await.unwrap();
        for table in WRITTEN {
            sqlx::query(&format!("INSERT INTO floor_{table} SELECT * FROM {table}"))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let d = t.elapsed();
        for table in WRITTEN {
            sqlx::query(&format!("DROP TABLE floor_{table}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
        (d, rows)
    })
}

/// The write floor on PostgreSQL: the tick's rows, read out in COPY's binary format
/// beforehand, written by `COPY … FROM STDIN (FORMAT binary)` into empty tables with the
/// same indexes and foreign key, in one transaction.
fn postgres_write_floor(url: &str) -> (Duration, u64) {
    use futures_util::StreamExt;
    use sqlx::Connection;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let mut data: Vec<(String, Vec<u8>)> = Vec::new();
        let mut rows = 0u64;
        for table in WRITTEN {
            let copy = format!("floor_{table}");
            sqlx::query(&format!("DROP TABLE IF EXISTS {copy}"))
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(&format!(
                "CREATE TABLE {copy} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            ))
            .execute(&mut c)
            .await
            .unwrap();
            if table != "invoice_steps" {
                sqlx::query(&format!(
                    "ALTER TABLE {copy} ADD FOREIGN KEY (customer_id) REFERENCES customers (id)"
                ))
                .execute(&mut c)
                .await
                .unwrap();
            }
            let mut bytes = Vec::new();
            let mut out = c
                .copy_out_raw(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
                .await
                .unwrap();
            while let Some(chunk) = out.next().await {
                bytes.extend_from_slice(&chunk.unwrap());
            }
            drop(out);
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut c)
                .await
                .unwrap();
            rows += n as u64;
            data.push((copy, bytes));
        }
        let t = Instant::now();
        let mut tx = c.begin().await.unwrap();
        for (copy, bytes) in &data {
            let mut copy_in = tx
                .copy_in_raw(&format!("COPY {copy} FROM STDIN (FORMAT binary)"))
                .await
                .unwrap();
            for chunk in bytes.chunks(1 << 20) {
                copy_in.send(chunk).await.unwrap();
            }
            copy_in.finish().await.unwrap();
        }
        tx.commit().await.unwrap();
        let d = t.elapsed();
        for (copy, _) in &data {
            sqlx::query(&format!("DROP TABLE {copy}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
        (d, rows)
    })
}

/// What the outbox does to a day's planned actions, in one statement: they were sent.
fn mark_sent(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = relance::store::open(&DatabaseUrl::new(url), 1)
            .await
            .unwrap();
        store.close().await;
        use sqlx::Connection;
        let sql = "UPDATE actions SET status = 'sent' WHERE status = 'planned'";
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
            sqlx::query("VACUUM ANALYZE actions")
                .execute(&mut c)
                .await
                .unwrap();
        }
    });
}

/// Reads the whole file, so that its pages are in the page cache.
fn warm(path: &Path) {
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut std::io::sink()).unwrap();
}

/// A working copy of a SQLite ledger, on disk before anything is timed: otherwise the
/// kernel writes the copy back while the tick runs, and the tick pays for the copy.
fn sqlite_copy(pristine: &Path, name: &str) -> (PathBuf, String) {
    let work = common::bench_dir().join(name);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(pristine, &work).unwrap();
    std::fs::File::open(&work)
        .and_then(|f| f.sync_all())
        .unwrap();
    let url = format!("sqlite://{}", work.display());
    (work, url)
}

fn day(offset: i64) -> String {
    let d: chrono::NaiveDate = AS_OF.parse().unwrap();
    (d + chrono::Duration::days(offset)).to_string()
}

fn tick(root: &Path, url: &str, as_of: &str, file: Option<&Path>) -> Measured {
    if let Some(f) = file {
        // Timed from a warm page cache (a machine that reclaims idle memory may have
        // written the copy's pages out again by the time they are read).
        warm(f);
    }
    common::run_in(root, &["--database-url", url, "tick", "--as-of", as_of])
}

fn mb(m: &Measured) -> f64 {
    m.max_rss_kb as f64 / 1024.0
}

fn planned(m: &Measured) -> String {
    m.stdout
        .lines()
        .filter_map(|l| {
            l.split_once(" new planned actions")
                .map(|(n, _)| n.rsplit(' ').next().unwrap_or(n).to_string())
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn line(what: &str, m: &Measured, against: Duration, target: f64, floor_name: &str) {
    let ratio = m.wall.as_secs_f64() / against.as_secs_f64();
    println!(
        "  {what:<34} {:>7.2} s  {ratio:>5.2}x {floor_name} (target < {target}x: {}), peak RSS {:.0} MB ({}), planned {}",
        m.wall.as_secs_f64(),
        if ratio < target { "met" } else { "MISSED" },
        mb(m),
        if mb(m) < 300.0 { "met" } else { "MISSED" },
        planned(m),
    );
}

/// A ledger to tick: its URL, and its file on SQLite.
type Ledger = (String, Option<PathBuf>);

struct Backend<'a> {
    name: &'a str,
    /// A fresh ledger of the portfolio: its URL, and its file on SQLite.
    fresh: Box<dyn Fn(&str) -> Ledger + 'a>,
    write_floor: fn(&str) -> (Duration, u64),
    /// The ledger with a year of history, if available.
    year: Option<Ledger>,
}

fn run(backend: &Backend, root: &Path, phases: &[String], days: u32) {
    println!("\n{}:", backend.name);
    let (url, file) = (backend.fresh)("tick-run");
    if let Some(f) = &file {
        warm(f);
    }
    let read = read_floor(&url);
    println!(
        "  read open invoices (floor)         {:>7.2} s",
        read.as_secs_f64()
    );
    if url.starts_with("sqlite:") {
        println!(
            "  the same read through sqlx         {:>7.2} s (for comparison)",
            sqlx_floor(&url).as_secs_f64()
        );
    }
    let first = tick(root, &url, AS_OF, file.as_deref());
    let (write, rows) = (backend.write_floor)(&url);
    println!(
        "  write floor ({rows} rows)         {:>7.2} s   read + write {:.2} s",
        write.as_secs_f64(),
        (read + write).as_secs_f64()
    );
    line("first tick", &first, read + write, 1.5, "read+write");
    if phases.iter().any(|p| p == "daily") {
        mark_sent(&url);
        let next = tick(root, &url, &day(1), file.as_deref());
        line("daily tick after 1 day", &next, read, 2.5, "read");
        let mut last = None;
        for d in 2..=days {
            mark_sent(&url);
            let m = tick(root, &url, &day(i64::from(d)), file.as_deref());
            if d == days {
                last = Some(m);
            } else {
                eprintln!(
                    "  day {d}: {:.2} s, planned {}",
                    m.wall.as_secs_f64(),
                    planned(&m)
                );
            }
        }
        if let Some(m) = last {
            line(
                &format!("daily tick after {days} days"),
                &m,
                read,
                2.5,
                "read",
            );
        }
    }
    if let Some((url, file)) = backend
        .year
        .as_ref()
        .filter(|_| phases.iter().any(|p| p == "year"))
    {
        if let Some(f) = file {
            warm(f);
        }
        let read = read_floor(url);
        println!(
            "  a year of history: read floor      {:>7.2} s",
            read.as_secs_f64()
        );
        let first = tick(root, url, AS_OF, file.as_deref());
        line("year: first tick", &first, read, 2.5, "read");
        mark_sent(url);
        let next = tick(root, url, &day(1), file.as_deref());
        line("year: daily tick after 365 days", &next, read, 2.5, "read");
    }
}

/// The reports benchmark's ledger with a year of history (generated and imported on
/// first use: several minutes).
fn year_sqlite(customers: u32, invoices: u32) -> PathBuf {
    let db = common::bench_dir().join(format!("reports-{customers}-{invoices}.db"));
    if !db.exists() {
        let data = common::history(customers, invoices, AS_OF);
        let partial = common::bench_dir().join("reports-import.db");
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", partial.display()));
        }
        eprintln!("importing a year of history into {}", partial.display());
        common::import_history(&data, &format!("sqlite://{}", partial.display()));
        std::fs::rename(&partial, &db).unwrap();
    }
    db
}

fn main() {
    relance::ffi::sqlite::configure();
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let days = env_u32("BENCH_DAYS", 30).max(2);
    let phases: Vec<String> = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "first,daily,year".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = common::portfolio(customers, invoices, AS_OF);
    println!("relance tick benchmark: shipped rules, {customers} customers, {invoices} invoices, as of {AS_OF}, phases {}", phases.join(","));

    if only != "postgres" {
        let pristine = common::bench_dir().join(format!("tick-{customers}-{invoices}.db"));
        if !pristine.exists() {
            common::import(&data, &format!("sqlite://{}", pristine.display()));
        }
        let year = phases.iter().any(|p| p == "year").then(|| {
            let db = year_sqlite(customers, invoices);
            let (work, url) = sqlite_copy(&db, "tick-year.db");
            (url, Some(work))
        });
        let backend = Backend {
            name: "SQLite",
            fresh: Box::new(|name| {
                let (work, url) = sqlite_copy(&pristine, &format!("{name}.db"));
                (url, Some(work))
            }),
            write_floor: sqlite_write_floor,
            year,
        };
        run(&backend, &root, &phases, days);
    }

    match std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty() && only != "sqlite")
    {
        Some(admin) => {
            let name = format!("relance_bench_tick_{}", std::process::id());
            let admin2 = admin.clone();
            let year = phases.iter().any(|p| p == "year").then(|| {
                // The reports benchmark's database, kept between runs; a copy is ticked.
                let kept = format!("relance_bench_reports_{customers}_{invoices}");
                let ready = common::bench_dir().join(format!("{kept}.imported"));
                if !ready.exists() {
                    common::drop_pg_database(&admin, &kept);
                    let url = common::create_pg_database(&admin, &kept);
                    common::import_history(&common::history(customers, invoices, AS_OF), &url);
                    std::fs::write(&ready, b"").unwrap();
                }
                let copy = format!("relance_bench_tick_year_{}", std::process::id());
                common::drop_pg_database(&admin, &copy);
                common::pg_admin(&admin, &format!("CREATE DATABASE {copy} TEMPLATE {kept}"));
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                (format!("{base}/{copy}"), None)
            });
            let backend = Backend {
                name: "PostgreSQL",
                fresh: Box::new(move |_| {
                    common::drop_pg_database(&admin2, &name);
                    let pg = common::create_pg_database(&admin2, &name);
                    common::import(&data, &pg);
                    (pg, None)
                }),
                write_floor: postgres_write_floor,
                year,
            };
            run(&backend, &root, &phases, days);
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let _ = base;
            common::drop_pg_database(
                &admin,
                &format!("relance_bench_tick_{}", std::process::id()),
            );
            common::drop_pg_database(
                &admin,
                &format!("relance_bench_tick_year_{}", std::process::id()),
            );
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}
