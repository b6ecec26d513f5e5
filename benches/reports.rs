//! Reports benchmark: each report over the generated portfolio with a year of history
//! (100,000 customers, 1,000,000 invoices by default, seed 42, `relance sample
//! --history-days 365`: a year of invoices, payments, disputes, promises and the action
//! log of the shipped ladder), as the `relance` binary runs it, against the floor of
//! reading the rows it needs with the same driver and statements (the store's batches of
//! customers, read and dropped); one streaming statement per table is shown for reference.
//!
//! ```sh
//! cargo bench --bench reports
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench reports
//! BENCH_ONLY=postgres RELANCE_BENCH_POSTGRES_URL=… cargo bench --bench reports   # one backend
//! ```
//! Targets: each report under 3x its floor, peak RSS under 300 MB.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{env_u32, Measured};
use futures_util::StreamExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AS_OF: &str = "2026-11-02";

/// The rows every report reads: customers, their invoices, and the payments allocated
/// to them.
const LEDGER_ROWS: [&str; 3] = [
    "SELECT id, external_id, name, segment, collector, currency, credit_limit_minor, insured, insurer_policy, \
     cover_minor, pause_reason, paused_until FROM customers",
    "SELECT customer_id, id, number, issue_date, due_date, currency, amount_minor, open_minor, status, updated_at, \
     disputed_at, pause_reason, paused_until FROM invoices",
    "SELECT a.invoice_id, p.date, a.amount_minor, p.kind FROM allocations a JOIN payments p ON p.id = a.payment_id",
];

/// And those the effectiveness and collectors reports read besides: the actions sent.
const ACTION_ROWS: &str =
    "SELECT customer_id, id, kind, step, segment, rule_hash, status, decided_on, updated_at, \
     invoice_numbers, currency, amount_minor FROM actions WHERE status = 'sent'";

type CustomerRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    bool,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<chrono::NaiveDate>,
);
type InvoiceRow = (
    i64,
    i64,
    String,
    chrono::NaiveDate,
    chrono::NaiveDate,
    String,
    i64,
    i64,
    String,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
    Option<chrono::NaiveDate>,
);
type AllocationRow = (i64, chrono::NaiveDate, i64, String);
type ActionRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    chrono::NaiveDate,
    chrono::DateTime<chrono::Utc>,
    String,
    String,
    i64,
);

/// Reads (and decodes) every row of the statements, returns the time and row count.
macro_rules! scan {
    ($pool:expr, $with_actions:expr) => {{
        let pool = $pool;
        let t = Instant::now();
        let mut n = 0u64;
        let mut rows = sqlx::query_as::<_, CustomerRow>(LEDGER_ROWS[0]).fetch(&pool);
        while let Some(r) = rows.next().await {
            std::hint::black_box(r.unwrap());
            n += 1;
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, InvoiceRow>(LEDGER_ROWS[1]).fetch(&pool);
        while let Some(r) = rows.next().await {
            std::hint::black_box(r.unwrap());
            n += 1;
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, AllocationRow>(LEDGER_ROWS[2]).fetch(&pool);
        while let Some(r) = rows.next().await {
            std::hint::black_box(r.unwrap());
            n += 1;
        }
        drop(rows);
        if $with_actions {
            let mut rows = sqlx::query_as::<_, ActionRow>(ACTION_ROWS).fetch(&pool);
            while let Some(r) = rows.next().await {
                std::hint::black_box(r.unwrap());
                n += 1;
            }
        }
        (t.elapsed(), n)
    }};
}

/// The floor: the rows read twice (the first warms the caches), the second timed.
fn floor(url: &str, with_actions: bool) -> (Duration, u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            let _ = scan!(pool.clone(), with_actions);
            scan!(pool, with_actions)
        } else {
            let path = url.trim_start_matches("sqlite://");
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .unwrap();
            let _ = scan!(pool.clone(), with_actions);
            scan!(pool, with_actions)
        }
    })
}

const REPORTS: [(&str, &[&str], bool); 6] = [
    ("aging", &["--as-of", AS_OF], false),
    ("dso", &["--to", AS_OF], false),
    ("cei", &["--to", AS_OF], false),
    ("risk", &["--as-of", AS_OF], false),
    ("effectiveness", &["--to", AS_OF], true),
    ("collectors", &["--to", AS_OF], true),
];
// (The third field: whether the report reads the action log.)

/// The rows a report needs, read through the store's own statements (the batches of
/// customers the reports read) and dropped: the floor under each report.
fn store_floor(url: &str, needs: relance::store::reports::ReportNeeds) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // As many connections as the binary opens by default (database.max_connections).
        let store = relance::store::open(&relance::config::DatabaseUrl::new(url), 8)
            .await
            .unwrap();
        let filter = relance::store::reports::ReportFilter::default();
        let mut best = Duration::MAX;
        // Twice: the first warms the caches.
        for _ in 0..2 {
            let t = Instant::now();
            let mut stream = store.report_accounts(&filter, needs, 500);
            while let Some(batch) = stream.next().await {
                std::hint::black_box(batch.unwrap());
            }
            drop(stream);
            best = best.min(t.elapsed());
        }
        store.close().await;
        best
    })
}

fn needs(name: &str) -> relance::store::reports::ReportNeeds {
    let mut n = relance::store::reports::ReportNeeds::default();
    match name {
        "aging" => {
            n.promises = true;
            n.handovers = true;
        }
        "risk" => n.handovers = true,
        "effectiveness" => n.actions = true,
        "collectors" => {
            n.actions = true;
            n.tasks = true;
            n.promises = true;
        }
        _ => {}
    }
    n
}

fn run_all(backend: &str, url: &str, root: &Path) {
    let (ledger_floor, ledger_rows) = floor(url, false);
    let (action_floor, action_rows) = floor(url, true);
    println!("\n{backend}:");
    println!(
        "  one streaming statement per table, every row decoded (reference):\n  ledger rows                {:>8.2} s  ({ledger_rows} rows)",
        ledger_floor.as_secs_f64()
    );
    println!(
        "  ledger and sent actions    {:>8.2} s  ({action_rows} rows)",
        action_floor.as_secs_f64()
    );
    for (name, args, _) in REPORTS {
        let floor = store_floor(url, needs(name));
        let mut all = vec!["--database-url", url, "report", name, "--format", "json"];
        all.extend_from_slice(args);
        let m: Measured = common::run_in(root, &all);
        let ratio = m.wall.as_secs_f64() / floor.as_secs_f64();
        let mb = m.max_rss_kb as f64 / 1024.0;
        println!(
            "  {name:<14} {:>8.2} s   its rows read through the store {:>6.2} s: {ratio:.2}x (target < 3x: {}), peak RSS {mb:.0} MB (target < 300 MB: {})",
            m.wall.as_secs_f64(),
            floor.as_secs_f64(),
            if ratio < 3.0 { "met" } else { "MISSED" },
            if mb < 300.0 { "met" } else { "MISSED" }
        );
    }
}

fn main() {
    // SQLite's memory functions as the binary sets them, before any connection of
    // this process (the reference read below opens its own): otherwise SQLite keeps the
    // system allocator and its memory statistics, a global lock on every allocation.
    relance::ffi::sqlite::configure();
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = common::history(customers, invoices, AS_OF);
    println!("relance reports benchmark: {customers} customers, {invoices} invoices, a year of history up to {AS_OF}");
    // BENCH_ONLY=postgres (or sqlite) runs one backend.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let db = common::bench_dir().join(format!("reports-{customers}-{invoices}.db"));
    if only == "postgres" {
        println!("\nSQLite: skipped (BENCH_ONLY=postgres)");
    } else if !db.exists() {
        let partial = common::bench_dir().join("reports-import.db");
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", partial.display()));
        }
        eprintln!("importing into {}", partial.display());
        common::import_history(&data, &format!("sqlite://{}", partial.display()));
        std::fs::rename(&partial, &db).unwrap();
    }
    // Reports read: they run on the ledger as imported.
    if only != "postgres" {
        run_all("SQLite", &format!("sqlite://{}", db.display()), &root);
    }

    match std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty() && only != "sqlite")
    {
        Some(admin) => {
            let name = format!("relance_bench_reports_{customers}_{invoices}");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let pg = format!("{base}/{name}");
            // Kept between runs: importing a year of history takes a while.
            let ready = common::bench_dir().join(format!("{name}.imported"));
            if !ready.exists() {
                common::drop_pg_database(&admin, &name);
                common::create_pg_database(&admin, &name);
                common::import_history(&data, &pg);
                std::fs::write(&ready, b"").unwrap();
            }
            run_all("PostgreSQL", &pg, &root);
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}
