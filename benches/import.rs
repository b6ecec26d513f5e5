//! Import benchmark: a generated portfolio (100,000 customers, 1,000,000 invoices by
//! default, seed 42) imported from CSV by the real `relance` binary. Each phase runs in
//! its own process so its wall time and peak memory (max RSS) are its own.
//!
//! ```sh
//! cargo bench --bench import
//! BENCH_CUSTOMERS=10000 BENCH_INVOICES=100000 cargo bench --bench import
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench import
//! ```
//! Target (SQLite): the invoices phase under 30 s and 300 MB. Then, on ledgers of their
//! own: the sample's payments as a bank statement (camt.053) matched against the
//! imported invoices (target: 100,000 credits under 30 s and 300 MB), and the whole
//! portfolio as a FEC.

mod common;

use std::path::Path;

use common::{env_u32, Measured};

fn report(backend: &str, phases: &[(&str, Measured)], invoices: u32) {
    println!("\n{backend}:");
    println!(
        "  {:<26} {:>10} {:>12} {:>14}",
        "phase", "wall (s)", "peak RSS MB", "rows/s"
    );
    for (label, p) in phases {
        let rows: f64 = p
            .stdout
            .split(" rows read")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        println!(
            "  {:<26} {:>10.2} {:>12.1} {:>14.0}",
            label,
            p.wall.as_secs_f64(),
            p.max_rss_kb as f64 / 1024.0,
            rows / p.wall.as_secs_f64()
        );
    }
    if let Some((_, inv)) = phases.iter().find(|(l, _)| *l == "invoices") {
        let ok = inv.wall.as_secs_f64() < 30.0 && inv.max_rss_kb < 300 * 1024;
        println!(
            "  {invoices} invoices: {:.1} s, {:.0} MB peak (target < 30 s, < 300 MB: {})",
            inv.wall.as_secs_f64(),
            inv.max_rss_kb as f64 / 1024.0,
            if ok { "met" } else { "MISSED" }
        );
    }
}

fn phases(dir: &Path, data: &Path, db_args: &[&str]) -> Vec<(&'static str, Measured)> {
    let file = |k: &str| data.join(format!("{k}.csv")).display().to_string();
    let mut out = Vec::new();
    for (label, kind) in [
        ("customers", "customers"),
        ("invoices", "invoices"),
        ("payments (allocation)", "payments"),
        ("invoices again (no-op)", "invoices"),
    ] {
        let f = file(kind);
        let mut args: Vec<&str> = db_args.to_vec();
        args.extend(["import", kind, f.as_str()]);
        let p = common::run_in(dir, &args);
        eprintln!("  {}", p.stdout);
        out.push((label, p));
    }
    out
}

/// The bank statement and the FEC, each on a ledger of its own (SQLite).
fn statements(dir: &Path, data: &Path, customers: u32, invoices: u32) {
    let camt = data.join("camt053-2026-11-02.xml");
    let fec = data.join("FEC20261102.txt");
    if !camt.exists() || !fec.exists() {
        // The same seed writes the same portfolio, with its statement and FEC.
        let d = data.display().to_string();
        common::run_in(
            dir,
            &[
                "sample",
                "--customers",
                &customers.to_string(),
                "--invoices",
                &invoices.to_string(),
                "--seed",
                "42",
                "--as-of",
                "2026-11-02",
                "--out",
                &d,
                "--camt",
                "--fec",
            ],
        );
    }
    let file = |k: &str| data.join(format!("{k}.csv")).display().to_string();
    std::fs::write(
        dir.join("bank.yaml"),
        "database:\n  url: sqlite://bank.db\ncompany:\n  name: Bench SAS\n",
    )
    .expect("config");
    for kind in ["customers", "invoices"] {
        let f = file(kind);
        common::run_in(dir, &["--config", "bank.yaml", "import", kind, &f]);
    }
    let c = camt.display().to_string();
    let p = common::run_in(
        dir,
        &[
            "--config",
            "bank.yaml",
            "import",
            "camt",
            &c,
            "--max-errors",
            "0",
        ],
    );
    let credits: f64 = p
        .stdout
        .split(" credits,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    eprintln!(
        "  {}",
        p.stdout.lines().take(6).collect::<Vec<_>>().join("\n  ")
    );
    println!("\nBank statement (camt.053, SQLite, on the imported invoices):");
    println!(
        "  {credits:.0} credits: {:.1} s, {:.0} MB peak, {:.0} credits/s (target 100,000 under 30 s and 300 MB: {})",
        p.wall.as_secs_f64(),
        p.max_rss_kb as f64 / 1024.0,
        credits / p.wall.as_secs_f64(),
        if p.wall.as_secs_f64() * 100_000.0 / credits.max(1.0) < 30.0 && p.max_rss_kb < 300 * 1024 {
            "met"
        } else {
            "MISSED"
        }
    );
    std::fs::write(
        dir.join("fec.yaml"),
        "database:\n  url: sqlite://fec.db\ncompany:\n  name: Bench SAS\nsegments:\n  smb: { rules: r.rhai, schedule: \"0 0 9 * * Mon-Fri\" }\n",
    )
    .expect("config");
    std::fs::write(dir.join("r.rhai"), "[]").expect("rules");
    let f = fec.display().to_string();
    let p = common::run_in(
        dir,
        &[
            "--config",
            "fec.yaml",
            "import",
            "fec",
            &f,
            "--segment",
            "smb",
        ],
    );
    let lines: f64 = p
        .stdout
        .split(" lines read")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    println!("\nFEC (SQLite, into an empty ledger):");
    println!(
        "  {lines:.0} lines: {:.1} s, {:.0} MB peak, {:.0} lines/s",
        p.wall.as_secs_f64(),
        p.max_rss_kb as f64 / 1024.0,
        lines / p.wall.as_secs_f64()
    );
}

fn main() {
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let data = common::portfolio(customers, invoices, "2026-11-02");
    println!(
        "relance import benchmark: {customers} customers, {invoices} invoices ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let work = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        work.path().join("relance.yaml"),
        "database:\n  url: sqlite://bench.db\ncompany:\n  name: Bench SAS\n",
    )
    .expect("config");
    let sqlite = phases(work.path(), &data, &["--config", "relance.yaml"]);
    report("SQLite", &sqlite, invoices);
    statements(work.path(), &data, customers, invoices);

    match std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(admin) => {
            let name = format!("relance_bench_{}", std::process::id());
            let db = common::create_pg_database(&admin, &name);
            let pg = phases(
                work.path(),
                &data,
                &["--config", "relance.yaml", "--database-url", &db],
            );
            report("PostgreSQL", &pg, invoices);
            common::drop_pg_database(&admin, &name);
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}
