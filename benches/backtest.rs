//! Backtest benchmark: `relance rules backtest` replaying the smb segment's live script
//! over the 90 days up to 2026-11-01, on the generated portfolio with a year of history
//! that the reports benchmark imports (100,000 customers, 1,000,000 invoices, seed 42).
//! Run `cargo bench --bench reports` first (it imports the ledger and keeps it).
//!
//! ```sh
//! cargo bench --bench backtest
//! BENCH_ONLY=postgres RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench backtest
//! ```
//! Targets: under 10 minutes, peak RSS under 500 MB.

mod common;

use std::path::{Path, PathBuf};

use common::env_u32;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FROM: &str = "2026-08-04";
const TO: &str = "2026-11-01";

fn run(backend: &str, url: &str, root: &Path) {
    let m = common::run_in(
        root,
        &[
            "--database-url",
            url,
            "rules",
            "backtest",
            "--segment",
            "smb",
            "--script",
            "live",
            "--from",
            FROM,
            "--to",
            TO,
            "--format",
            "json",
        ],
    );
    let b: serde_json::Value = serde_json::from_str(&m.stdout).unwrap_or_default();
    let secs = m.wall.as_secs_f64();
    let mb = m.max_rss_kb as f64 / 1024.0;
    let customers = b["customers"].as_u64().unwrap_or(0);
    let ticks = b["ticks"].as_array().map_or(0, Vec::len) as u64;
    println!(
        "{backend}: {customers} customers x {ticks} tick dates in {secs:.1} s ({:.0} evaluations/s; target < 600 s: {}), peak RSS {mb:.0} MB (target < 500 MB: {})",
        (customers * ticks) as f64 / secs,
        if secs < 600.0 { "met" } else { "MISSED" },
        if mb < 500.0 { "met" } else { "MISSED" }
    );
    println!(
        "  replayed {} actions ({} formal notices), the live log {} ({} formal notices)",
        b["replay"]["actions"],
        b["replay"]["formal_notices"],
        b["live"]["actions"],
        b["live"]["formal_notices"]
    );
}

fn main() {
    relance::ffi::sqlite::configure();
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    println!("relance backtest benchmark: smb, {FROM} to {TO}, {customers} customers, {invoices} invoices with a year of history");
    let db = common::bench_dir().join(format!("reports-{customers}-{invoices}.db"));
    if only != "postgres" {
        if db.exists() {
            run("SQLite", &format!("sqlite://{}", db.display()), &root);
        } else {
            println!(
                "SQLite: no ledger at {} (run cargo bench --bench reports first)",
                db.display()
            );
        }
    }
    if only != "sqlite" {
        if let Some(admin) = std::env::var("RELANCE_BENCH_POSTGRES_URL")
            .ok()
            .filter(|s| !s.is_empty())
        {
            let name = format!("relance_bench_reports_{customers}_{invoices}");
            if common::bench_dir()
                .join(format!("{name}.imported"))
                .exists()
            {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                run("PostgreSQL", &format!("{base}/{name}"), &root);
            } else {
                println!("PostgreSQL: no ledger {name} (run the reports benchmark with RELANCE_BENCH_POSTGRES_URL first)");
            }
        }
    }
}
