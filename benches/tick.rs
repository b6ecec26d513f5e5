//! Tick benchmark: a full tick (load, rules, writing planned actions) over the generated
//! portfolio (100,000 customers, 1,000,000 invoices by default, seed 42), as the
//! `relance` binary runs it, against the floor of reading the same open invoices with
//! the same driver. Each tick runs on a fresh copy of the ledger (no action yet).
//!
//! ```sh
//! cargo bench --bench tick
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench tick
//! ```
//! Targets: under 4x the read (the goal beyond it is 2x), peak RSS under 300 MB.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{env_u32, Measured};
use relance::config::DatabaseUrl;

// The allocator the `relance` binary runs with: the floor reads as the binary would.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AS_OF: &str = "2026-11-02";

fn floor(url: &str) -> Duration {
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

/// Reads the whole file, so that its pages are in the page cache.
fn warm(path: &std::path::Path) {
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut std::io::sink()).unwrap();
}

fn report(backend: &str, read: Duration, tick: Measured) {
    let ratio = tick.wall.as_secs_f64() / read.as_secs_f64();
    let mb = tick.max_rss_kb as f64 / 1024.0;
    println!("\n{backend}:");
    println!(
        "  read open invoices (floor)   {:>8.2} s",
        read.as_secs_f64()
    );
    println!(
        "  full tick (load+rules+write) {:>8.2} s   {ratio:.2}x the read (target < 4x: {}), peak RSS {mb:.0} MB (target < 300 MB: {})",
        tick.wall.as_secs_f64(),
        if ratio < 4.0 { "met" } else { "MISSED" },
        if mb < 300.0 { "met" } else { "MISSED" }
    );
    for line in tick.stdout.lines() {
        println!("    {line}");
    }
}

fn main() {
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = common::portfolio(customers, invoices, AS_OF);
    println!("relance tick benchmark: shipped rules, {customers} customers, {invoices} invoices, as of {AS_OF}");
    let pristine = common::bench_dir().join(format!("tick-{customers}-{invoices}.db"));
    if !pristine.exists() {
        common::import(&data, &format!("sqlite://{}", pristine.display()));
    }
    let work = common::bench_dir().join("tick-run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(&pristine, &work).unwrap();
    // On disk before anything is timed: otherwise the kernel writes the copy back while
    // the tick runs, and the tick pays for the copy.
    std::fs::File::open(&work)
        .and_then(|f| f.sync_all())
        .unwrap();
    let url = format!("sqlite://{}", work.display());
    // Both timed from a warm page cache (a machine that reclaims idle memory may have
    // written the copy's pages out again by the time they are read).
    warm(&work);
    let read = floor(&url);
    warm(&work);
    // The shipped configuration and rules: the embedded default, run from the checkout.
    let tick = common::run_in(&root, &["--database-url", &url, "tick", "--as-of", AS_OF]);
    report("SQLite", read, tick);

    match std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(admin) => {
            let name = format!("relance_bench_tick_{}", std::process::id());
            let pg = common::create_pg_database(&admin, &name);
            common::import(&data, &pg);
            let read = floor(&pg);
            let tick = common::run_in(&root, &["--database-url", &pg, "tick", "--as-of", AS_OF]);
            report("PostgreSQL", read, tick);
            common::drop_pg_database(&admin, &name);
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}
