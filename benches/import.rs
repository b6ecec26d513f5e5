//! Import benchmark: a generated portfolio (100,000 customers, 1,000,000 invoices by
//! default, seed 42) imported from CSV by the real `relance` binary. Each phase runs in
//! its own process so its wall time and peak memory (max RSS) are its own.
//!
//! ```sh
//! cargo bench --bench import
//! BENCH_CUSTOMERS=10000 BENCH_INVOICES=100000 cargo bench --bench import
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench import
//! ```
//! Target (SQLite): the invoices phase under 30 s and 300 MB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Phase {
    label: String,
    wall: Duration,
    max_rss_kb: i64,
    output: String,
}

/// Runs the binary and measures this one child with `wait4`.
// The child is reaped by `wait4` (which `Child::wait` cannot do while also giving its rusage).
#[allow(clippy::zombie_processes)]
fn run(label: &str, dir: &Path, args: &[&str]) -> Phase {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
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
    let wall = start.elapsed();
    assert!(
        rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{label} failed (status {status})"
    );
    Phase {
        label: label.to_string(),
        wall,
        max_rss_kb: usage.ru_maxrss,
        output: reader.join().unwrap_or_default().trim().to_string(),
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(backend: &str, phases: &[Phase], invoices: u32) {
    println!("\n{backend}:");
    println!(
        "  {:<26} {:>10} {:>12} {:>14}",
        "phase", "wall (s)", "peak RSS MB", "rows/s"
    );
    for p in phases {
        let rows: f64 = p
            .output
            .split(" rows read")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        println!(
            "  {:<26} {:>10.2} {:>12.1} {:>14.0}",
            p.label,
            p.wall.as_secs_f64(),
            p.max_rss_kb as f64 / 1024.0,
            rows / p.wall.as_secs_f64()
        );
    }
    if let Some(inv) = phases.iter().find(|p| p.label == "invoices") {
        let ok = inv.wall.as_secs_f64() < 30.0 && inv.max_rss_kb < 300 * 1024;
        println!(
            "  {invoices} invoices: {:.1} s, {:.0} MB peak (target < 30 s, < 300 MB: {})",
            inv.wall.as_secs_f64(),
            inv.max_rss_kb as f64 / 1024.0,
            if ok { "met" } else { "MISSED" }
        );
    }
}

fn phases(dir: &Path, data: &Path, db_args: &[&str]) -> Vec<Phase> {
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
        let p = run(label, dir, &args);
        eprintln!("  {}", p.output);
        out.push(p);
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    let data = target.join(format!("portfolio-{customers}-{invoices}-seed42"));
    if !data.join("payments.csv").exists() {
        eprintln!(
            "generating {customers} customers and {invoices} invoices into {}",
            data.display()
        );
        let d = data.display().to_string();
        let (c, i) = (customers.to_string(), invoices.to_string());
        run(
            "generate",
            &target_dir(&target),
            &[
                "sample",
                "--customers",
                &c,
                "--invoices",
                &i,
                "--seed",
                "42",
                "--as-of",
                "2026-11-02",
                "--out",
                &d,
            ],
        );
    }
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

    let pg = std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    match pg {
        Some(url) => {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let name = format!("relance_bench_{}", std::process::id());
            rt.block_on(admin(&url, &format!("CREATE DATABASE {name}")));
            let base = url
                .rsplit_once('/')
                .map_or(url.as_str(), |(b, _)| b)
                .to_string();
            let db = format!("{base}/{name}");
            let pg = phases(
                work.path(),
                &data,
                &["--config", "relance.yaml", "--database-url", &db],
            );
            report("PostgreSQL", &pg, invoices);
            rt.block_on(admin(
                &url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ));
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}

fn target_dir(t: &Path) -> PathBuf {
    std::fs::create_dir_all(t).expect("bench data dir");
    t.to_path_buf()
}

async fn admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sql).execute(&mut c).await.expect(sql);
}
