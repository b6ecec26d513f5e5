//! Helpers shared by the benchmarks: the generated portfolio, running the `relance`
//! binary as a measured child process, and throw-away PostgreSQL databases.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one run of the binary took.
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size of that process, in KB.
    pub max_rss_kb: i64,
    pub stdout: String,
}

pub fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the binary in `dir` and measures this one child with `wait4`.
// The child is reaped by `wait4`, which `Child::wait` cannot do while giving its rusage.
#[allow(clippy::zombie_processes)]
pub fn run_in(dir: &Path, args: &[&str]) -> Measured {
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
    assert!(
        rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "relance {args:?} failed (status {status})"
    );
    Measured {
        wall: start.elapsed(),
        max_rss_kb: usage.ru_maxrss,
        stdout: reader.join().unwrap_or_default().trim().to_string(),
    }
}

/// `target/bench-data`, created if needed.
pub fn bench_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench data folder");
    dir
}

/// The generated portfolio (seed 42, as of `as_of`), generated on first use.
pub fn portfolio(customers: u32, invoices: u32, as_of: &str) -> PathBuf {
    let dir = bench_dir();
    let data = dir.join(format!("portfolio-{customers}-{invoices}-seed42"));
    if !data.join("payments.csv").exists() {
        eprintln!(
            "generating {customers} customers and {invoices} invoices into {}",
            data.display()
        );
        let d = data.display().to_string();
        run_in(
            &dir,
            &[
                "sample",
                "--customers",
                &customers.to_string(),
                "--invoices",
                &invoices.to_string(),
                "--seed",
                "42",
                "--as-of",
                as_of,
                "--out",
                &d,
            ],
        );
    }
    data
}

/// Imports the portfolio's three files into the database `url`.
pub fn import(data: &Path, url: &str) {
    for k in ["customers", "invoices", "payments"] {
        let f = data.join(format!("{k}.csv")).display().to_string();
        run_in(&bench_dir(), &["--database-url", url, "import", k, &f]);
    }
}

/// A new PostgreSQL database next to the one `admin` names; returns its URL.
pub fn create_pg_database(admin: &str, name: &str) -> String {
    pg_admin(admin, &format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

pub fn drop_pg_database(admin: &str, name: &str) {
    pg_admin(
        admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn pg_admin(admin: &str, sql: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sql).execute(&mut c).await.expect(sql);
    });
}
