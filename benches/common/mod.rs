//! Helpers shared by the benchmarks: the generated portfolio, running the `relance`
//! binary as a measured child process, and throw-away PostgreSQL databases.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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

/// Runs the binary in `dir` and measures this one child: its wall time and its peak
/// resident set size (see [`PeakRss`]).
pub fn run_in(dir: &Path, args: &[&str]) -> Measured {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn relance");
    let peak = PeakRss::watch(child.id() as libc::pid_t);
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let status = child.wait().expect("wait for relance");
    let wall = start.elapsed();
    let max_rss_kb = peak.finish();
    assert!(status.success(), "relance {args:?} failed ({status})");
    Measured {
        wall,
        max_rss_kb,
        stdout: reader.join().unwrap_or_default().trim().to_string(),
    }
}

/// The peak resident set size of a child process, read from `/proc/PID/status`
/// (`VmHWM`) every 10 ms while it runs. Not `wait4`'s `ru_maxrss`: a child started by
/// `vfork` (as `Command` does) inherits the peak of the benchmark process itself at
/// `exec`, so a benchmark that had held a few hundred megabytes (a write floor's
/// `COPY` data) would report them for every child it starts afterwards.
pub struct PeakRss {
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<i64>,
}

impl PeakRss {
    pub fn watch(pid: libc::pid_t) -> PeakRss {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut peak = 0i64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    // Only once the child runs relance (before `exec` it shares the
                    // benchmark's memory).
                    let ours = text
                        .lines()
                        .any(|l| l.starts_with("Name:") && l.contains("relance"));
                    if ours {
                        if let Some(kb) = text
                            .lines()
                            .find_map(|l| l.strip_prefix("VmHWM:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                        {
                            peak = peak.max(kb);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        PeakRss { done, thread }
    }

    /// The highest peak read, in KB.
    pub fn finish(self) -> i64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
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
    generated("portfolio", customers, invoices, as_of, &[])
}

/// `relance sample` into `target/bench-data/{name}-{customers}-{invoices}-seed42`, unless
/// it is there already; `extra` are further arguments of the command.
fn generated(name: &str, customers: u32, invoices: u32, as_of: &str, extra: &[&str]) -> PathBuf {
    let dir = bench_dir();
    let data = dir.join(format!("{name}-{customers}-{invoices}-seed42"));
    if !data.join("payments.csv").exists() {
        eprintln!(
            "generating {customers} customers and {invoices} invoices ({name}) into {}",
            data.display()
        );
        let (c, i, d) = (
            customers.to_string(),
            invoices.to_string(),
            data.display().to_string(),
        );
        let mut args = vec![
            "sample",
            "--customers",
            &c,
            "--invoices",
            &i,
            "--seed",
            "42",
            "--as-of",
            as_of,
            "--out",
            &d,
        ];
        args.extend_from_slice(extra);
        run_in(&dir, &args);
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

pub fn pg_admin(admin: &str, sql: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sql).execute(&mut c).await.expect(sql);
    });
}

/// The portfolio with a year of history, generated on first use.
pub fn history(customers: u32, invoices: u32, as_of: &str) -> PathBuf {
    generated(
        "history",
        customers,
        invoices,
        as_of,
        &["--history-days", "365"],
    )
}

/// Imports the files of a history (`history`) in their order.
pub fn import_history(data: &Path, url: &str) {
    for k in [
        "customers",
        "invoices",
        "history",
        "disputes",
        "promises",
        "payments",
    ] {
        let f = data.join(format!("{k}.csv")).display().to_string();
        let t = Instant::now();
        run_in(&bench_dir(), &["--database-url", url, "import", k, &f]);
        eprintln!("  imported {k} in {:.1} s", t.elapsed().as_secs_f64());
    }
}

/// An SMTP server on loopback that accepts every message (PIPELINING, 8BITMIME) and
/// counts it; returns its port and the counter. Runs on the caller's runtime.
pub async fn smtp_sink() -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut lines = BufReader::new(r);
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            c.fetch_add(1, Ordering::Relaxed);
                            let _ = w.write_all(b"250 2.0.0 queued\r\n").await;
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"502 5.5.2 not implemented\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, count)
}

/// An HTTP/1.1 server on loopback that answers every request `200` with a JSON body
/// carrying the references relance's HTTP channels read (`/id`, `/reference`,
/// `/sid`), keeping connections open; returns its port and the request counter. Runs on
/// the caller's runtime.
pub async fn http_receiver() -> (u16, Arc<AtomicU64>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut reader = BufReader::new(r);
                let mut line = String::new();
                loop {
                    // Request line and headers.
                    let mut length = 0usize;
                    let mut first = true;
                    loop {
                        line.clear();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let n = c.fetch_add(1, Ordering::Relaxed) + 1;
                    let json = format!(
                        "{{\"id\":\"m{n}\",\"sid\":\"SM{n}\",\"reference\":\"R{n}\",\"messageId\":\"{n}\"}}"
                    );
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, count)
}
