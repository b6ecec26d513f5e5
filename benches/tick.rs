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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use relance::config::DatabaseUrl;

const AS_OF: &str = "2026-11-02";

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the binary, measuring this one child: (wall time, peak RSS in KB, stdout).
// The child is reaped by `wait4`, which `Child::wait` cannot do while giving its rusage.
#[allow(clippy::zombie_processes)]
fn run(args: &[&str]) -> (Duration, i64, String) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn relance");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert!(
        rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "relance {args:?} failed"
    );
    (
        start.elapsed(),
        usage.ru_maxrss,
        reader.join().unwrap_or_default(),
    )
}

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

fn report(backend: &str, read: Duration, tick: (Duration, i64, String)) {
    let ratio = tick.0.as_secs_f64() / read.as_secs_f64();
    let mb = tick.1 as f64 / 1024.0;
    println!("\n{backend}:");
    println!(
        "  read open invoices (floor)   {:>8.2} s",
        read.as_secs_f64()
    );
    println!(
        "  full tick (load+rules+write) {:>8.2} s   {ratio:.2}x the read (target < 4x: {}), peak RSS {mb:.0} MB (target < 300 MB: {})",
        tick.0.as_secs_f64(),
        if ratio < 4.0 { "met" } else { "MISSED" },
        if mb < 300.0 { "met" } else { "MISSED" }
    );
    for line in tick.2.lines() {
        println!("    {line}");
    }
}

fn import(data: &Path, url: &str) {
    for k in ["customers", "invoices", "payments"] {
        let f = data.join(format!("{k}.csv")).display().to_string();
        run(&["--database-url", url, "import", k, &f]);
    }
}

fn main() {
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("bench-data");
    std::fs::create_dir_all(&target).unwrap();
    let data = target.join(format!("portfolio-{customers}-{invoices}-seed42"));
    if !data.join("payments.csv").exists() {
        let d = data.display().to_string();
        run(&[
            "sample",
            "--customers",
            &customers.to_string(),
            "--invoices",
            &invoices.to_string(),
            "--seed",
            "42",
            "--as-of",
            AS_OF,
            "--out",
            &d,
        ]);
    }
    println!("relance tick benchmark: shipped rules, {customers} customers, {invoices} invoices, as of {AS_OF}");
    // The shipped configuration and rules (the embedded default, from the checkout).
    let pristine = target.join(format!("tick-{customers}-{invoices}.db"));
    if !pristine.exists() {
        import(&data, &format!("sqlite://{}", pristine.display()));
    }
    let work = target.join("tick-run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(&pristine, &work).unwrap();
    let url = format!("sqlite://{}", work.display());
    let read = floor(&url);
    std::env::set_current_dir(&root).unwrap();
    let tick = run(&["--database-url", &url, "tick", "--as-of", AS_OF]);
    report("SQLite", read, tick);

    if let Some(admin) = std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let name = format!("relance_bench_tick_{}", std::process::id());
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_string();
        let pg = format!("{base}/{name}");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let admin_sql = |sql: String| {
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
                let _ = sqlx::query(&sql).execute(&mut c).await;
            })
        };
        admin_sql(format!("CREATE DATABASE {name}"));
        import(&data, &pg);
        let read = floor(&pg);
        let tick = run(&["--database-url", &pg, "tick", "--as-of", AS_OF]);
        report("PostgreSQL", read, tick);
        admin_sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    } else {
        println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)");
    }
}
