//! Dispatch benchmark: the actions a first tick planned over the generated portfolio
//! (100,000 customers, 1,000,000 invoices, seed 42, as of 2026-11-02: about 407,000
//! actions) delivered by `relance serve` with the outbox's whole bookkeeping (claim and
//! lease, stale check, events, completion), to peers on loopback: emails to an SMTP
//! server, SMS, call-task notifications, registered letters and insurer handovers to an
//! HTTP receiver (signed webhooks). Formal notices are rendered to PDF, archived, sent
//! by email and by registered mail.
//!
//! ```sh
//! cargo bench --bench dispatch                       # SQLite, one instance
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench dispatch
//! BENCH_WORKERS=8 BENCH_SECONDS=300 cargo bench --bench dispatch
//! ```
//! On PostgreSQL two instances share the queue. Target: at least 1,000 actions/s end to
//! end. A run stops when the queue is empty or after `BENCH_SECONDS` (default 1,800).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::env_u32;

const AS_OF: &str = "2026-11-02";

/// The configuration `relance serve` runs with: the shipped one (company, rules,
/// templates), every channel pointed at the peers, no quiet hours, no contact budget,
/// and schedules that do not fall during the run.
fn config(root: &Path, dir: &Path, url: &str, smtp: u16, http: u16) -> PathBuf {
    let text = std::fs::read_to_string(root.join("examples/relance.yaml")).unwrap();
    let mut c: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let yaml = |s: &str| -> serde_yaml::Value { serde_yaml::from_str(s).unwrap() };
    c["database"] = yaml(&format!("{{ url: \"{url}\", max_connections: 8 }}"));
    if let Some(segments) = c["segments"].as_mapping_mut() {
        for (_, s) in segments.iter_mut() {
            let rules = s["rules"].as_str().unwrap().to_string();
            s["rules"] = root.join(rules).display().to_string().into();
            s["schedule"] = "0 0 3 1 1 *".into();
        }
    }
    c["dispatch"] = yaml("{ lease_seconds: 120, max_attempts: 8 }");
    let receiver = format!("http://127.0.0.1:{http}");
    c["channels"] = yaml(&format!(
        r#"
outbox_dir: "{outbox}"
templates_dir: "{templates}"
email:
  smtp: {{ host: 127.0.0.1, port: {smtp}, security: plain, timeout_seconds: 30, pool_size: 8 }}
  from: "Ateliers Durand <recouvrement@ateliers-durand.example>"
sms:
  provider: http
  http: {{ url: "{receiver}/sms", id_pointer: /id, body: '{{"to": "{{{{ to }}}}", "text": "{{{{ text }}}}"}}' }}
call_tasks:
  notify: {{ url: "{receiver}/tasks", secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw] }}
formal_notice:
  registered_mail: {{ url: "{receiver}/letters", tracking_pointer: /id }}
"#,
        outbox = dir.join("outbox").display(),
        templates = root.join("templates").display(),
    ));
    if let Some(insurers) = c["insurers"].as_mapping_mut() {
        for (_, i) in insurers.iter_mut() {
            i["endpoint"] = yaml(&format!(
                "{{ url: \"{receiver}/insurer\", secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw] }}"
            ));
        }
    }
    if let Some(m) = c.as_mapping_mut() {
        m.remove("reports");
        m.remove("retention");
    }
    let path = dir.join("dispatch.yaml");
    std::fs::write(&path, serde_yaml::to_string(&c).unwrap()).unwrap();
    path
}

fn serve(config: &Path, workers: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_relance"))
        .args([
            "--config",
            &config.display().to_string(),
            "serve",
            "--workers",
            &workers.to_string(),
        ])
        .env("RELANCE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start relance serve")
}

fn stop(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// Actions still to deliver, and what the delivered ones became, by kind and status.
async fn queue(url: &str) -> (i64, Vec<(String, String, i64)>) {
    use sqlx::Connection;
    let left = "SELECT COUNT(*) FROM actions WHERE status IN ('planned', 'retrying', 'sending')";
    let done = "SELECT kind, status, COUNT(*) FROM actions WHERE status NOT IN ('planned', 'retrying', 'sending') GROUP BY kind, status ORDER BY kind, status";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(left).fetch_one(&mut c).await.unwrap();
        (n, sqlx::query_as(done).fetch_all(&mut c).await.unwrap())
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(left).fetch_one(&mut c).await.unwrap();
        (n, sqlx::query_as(done).fetch_all(&mut c).await.unwrap())
    }
}

fn run(
    backend: &str,
    url: &str,
    root: &Path,
    instances: u32,
    workers: u32,
    limit: Duration,
    rt: &tokio::runtime::Runtime,
) {
    let dir = common::bench_dir().join(format!("dispatch-{}", backend.to_lowercase()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ((smtp, mails), (http, requests)) =
        rt.block_on(async { (common::smtp_sink().await, common::http_receiver().await) });
    let config = config(root, &dir, url, smtp, http);
    let (total, _) = rt.block_on(queue(url));
    println!(
        "\n{backend}: {total} actions to deliver, {instances} instance(s) of {workers} dispatch workers"
    );
    let start = Instant::now();
    let servers: Vec<Child> = (0..instances).map(|_| serve(&config, workers)).collect();
    let mut last = (start, total);
    let mut rates = Vec::new();
    let left = loop {
        std::thread::sleep(Duration::from_secs(5));
        let (left, _) = rt.block_on(queue(url));
        let now = Instant::now();
        let rate = (last.1 - left) as f64 / (now - last.0).as_secs_f64();
        rates.push(rate);
        eprintln!(
            "  {:>6.0} s  {left:>7} left  {rate:>7.0} actions/s",
            start.elapsed().as_secs_f64()
        );
        last = (now, left);
        if left == 0 || start.elapsed() > limit {
            break left;
        }
    };
    let wall = start.elapsed();
    for s in servers {
        stop(s);
    }
    let (_, done) = rt.block_on(queue(url));
    let delivered = total - left;
    // Sustained: the median of the 5-second windows (start-up and the tail excluded).
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let overall = delivered as f64 / wall.as_secs_f64();
    println!(
        "  {delivered} delivered in {:.1} s: {overall:.0} actions/s overall, {median:.0} actions/s sustained (median of 5 s windows; target >= 1,000: {})",
        wall.as_secs_f64(),
        if median >= 1000.0 { "met" } else { "MISSED" }
    );
    if left > 0 {
        println!(
            "  stopped after {:.0} s with {left} left: draining all would take about {:.0} s at the sustained rate",
            wall.as_secs_f64(),
            wall.as_secs_f64() + left as f64 / median.max(1.0)
        );
    } else {
        println!("  the queue drained in {:.1} s", wall.as_secs_f64());
    }
    println!(
        "  peers: {} emails accepted, {} HTTP requests answered",
        mails.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed)
    );
    for (kind, status, n) in done {
        println!("    {kind:<17} {status:<10} {n:>8}");
    }
}

/// The portfolio after its first tick, kept between runs (the tick is the tick
/// benchmark's); a working copy of it for SQLite.
fn ticked_sqlite(root: &Path, customers: u32, invoices: u32) -> PathBuf {
    let ticked = common::bench_dir().join(format!("dispatch-{customers}-{invoices}.db"));
    if !ticked.exists() {
        let data = common::portfolio(customers, invoices, AS_OF);
        let partial = common::bench_dir().join("dispatch-import.db");
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", partial.display()));
        }
        let url = format!("sqlite://{}", partial.display());
        common::import(&data, &url);
        common::run_in(root, &["--database-url", &url, "tick", "--as-of", AS_OF]);
        std::fs::rename(&partial, &ticked).unwrap();
    }
    let work = common::bench_dir().join("dispatch-run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(&ticked, &work).unwrap();
    work
}

fn main() {
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let workers = env_u32("BENCH_WORKERS", 8);
    let limit = Duration::from_secs(u64::from(env_u32("BENCH_SECONDS", 1800)));
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("relance dispatch benchmark: the first tick of {customers} customers, {invoices} invoices (as of {AS_OF}), peers on loopback");
    if only != "postgres" {
        let work = ticked_sqlite(&root, customers, invoices);
        run(
            "SQLite",
            &format!("sqlite://{}", work.display()),
            &root,
            1,
            workers,
            limit,
            &rt,
        );
    }
    match std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty() && only != "sqlite")
    {
        Some(admin) => {
            let name = format!("relance_bench_dispatch_{}", std::process::id());
            let pg = common::create_pg_database(&admin, &name);
            common::import(&common::portfolio(customers, invoices, AS_OF), &pg);
            common::run_in(&root, &["--database-url", &pg, "tick", "--as-of", AS_OF]);
            run("PostgreSQL", &pg, &root, 2, workers, limit, &rt);
            common::drop_pg_database(&admin, &name);
        }
        None => println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)"),
    }
}
