//! Ingestion benchmark: invoices per second through the HTTP API of the real
//! `relance serve` (JSON parsing, validation, one transaction per batch), in batches of
//! 1,000, on SQLite and, when `RELANCE_BENCH_POSTGRES_URL` is set, on PostgreSQL.
//! Bodies are serialised before the clock starts: what is measured is the server.
//!
//! ```sh
//! cargo bench --bench ingest
//! BENCH_INVOICES=500000 RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench ingest
//! ```
//! Target (SQLite, one client): at least 20,000 invoices/s.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use common::{env_u32, run_in};

const BATCH: u32 = 1000;
const CUSTOMERS: u32 = 1000;

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling the child we spawned.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Server {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args([
            "--config",
            "relance.yaml",
            "--log-level",
            "warn",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RELANCE_LOG", "warn,relance::cli=info")
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn relance serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.split("HTTP API listening on ").nth(1) {
                    break rest.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            _ => panic!("relance serve did not start"),
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

fn workspace(url: &str) -> std::path::PathBuf {
    let dir = common::bench_dir().join(format!("ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/smb.rhai"), "[]\n").unwrap();
    std::fs::write(
        dir.join("relance.yaml"),
        format!(
            "database:\n  url: \"{url}\"\ncompany:\n  name: Bench SAS\ntimezone: Europe/Paris\nlate_payment:\n  reference_rates:\n    - {{ from: 2026-07-01, rate: \"2.15\" }}\nsegments:\n  smb:\n    rules: rules/smb.rhai\n    schedule: \"0 0 9 1 1 *\"\napi:\n  max_batch_items: 5000\n"
        ),
    )
    .unwrap();
    dir
}

fn bodies(invoices: u32, salt: &str) -> Vec<Vec<u8>> {
    (0..invoices.div_ceil(BATCH))
        .map(|b| {
            let items: Vec<serde_json::Value> = (0..BATCH)
                .map(|i| b * BATCH + i)
                .filter(|n| *n < invoices)
                .map(|n| {
                    serde_json::json!({
                        "number": format!("{salt}-{n:08}"),
                        "customer": format!("C{:05}", n % CUSTOMERS),
                        "issue_date": "2026-10-01",
                        "due_date": "2026-10-31",
                        "amount": format!("{}.{:02}", 100 + n % 9000, n % 100),
                    })
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap()
        })
        .collect()
}

async fn post_all(client: &reqwest::Client, url: &str, token: &str, bodies: &[Vec<u8>]) {
    for b in bodies {
        let r = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .await
            .expect("request");
        let status = r.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            r.text().await.unwrap_or_default()
        );
    }
}

fn bench(label: &str, url: &str, invoices: u32) {
    let dir = workspace(url);
    let cfg = dir.join("relance.yaml").display().to_string();
    let token = run_in(
        &dir,
        &[
            "--config", &cfg, "tokens", "create", "--name", "bench", "--scope", "ingest",
        ],
    )
    .stdout;
    let server = start(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let customers: Vec<serde_json::Value> = (0..CUSTOMERS)
        .map(|n| serde_json::json!({ "external_id": format!("C{n:05}"), "name": format!("Client {n}"), "segment": "smb", "emails": [format!("c{n}@example.com")] }))
        .collect();
    let customers = vec![serde_json::to_vec(&serde_json::json!({ "items": customers })).unwrap()];
    rt.block_on(post_all(
        &client,
        &format!("{}/v1/customers/batch", server.base),
        &token,
        &customers,
    ));
    println!("\n{label}: {invoices} invoices in batches of {BATCH}");
    println!("  {:<34} {:>10} {:>14}", "run", "wall (s)", "invoices/s");
    let url = format!("{}/v1/invoices/batch", server.base);
    let mut first = 0.0;
    for (run, clients, salt) in [
        ("new invoices, 1 client", 1, "A"),
        ("same invoices again (unchanged)", 1, "A"),
        ("new invoices, 2 clients", 2, "B"),
    ] {
        let all = bodies(invoices, salt);
        let per = all.len().div_ceil(clients);
        let chunks: Vec<Vec<Vec<u8>>> = all.chunks(per.max(1)).map(<[Vec<u8>]>::to_vec).collect();
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = chunks
                .into_iter()
                .map(|c| {
                    let (client, url, token) = (client.clone(), url.clone(), token.clone());
                    tokio::spawn(async move { post_all(&client, &url, &token, &c).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let rate = f64::from(invoices) / secs;
        if first == 0.0 {
            first = rate;
        }
        println!("  {run:<34} {secs:>10.2} {rate:>14.0}");
    }
    if label == "SQLite" {
        println!(
            "  target: at least 20,000 invoices/s on SQLite with one client: {}",
            if first >= 20_000.0 { "met" } else { "MISSED" }
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let invoices = env_u32("BENCH_INVOICES", 200_000);
    let dir = common::bench_dir();
    let db = dir.join(format!("ingest-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    bench("SQLite", &format!("sqlite://{}", db.display()), invoices);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    if let Ok(admin) = std::env::var("RELANCE_BENCH_POSTGRES_URL") {
        let name = format!("relance_bench_ingest_{}", std::process::id());
        let url = common::create_pg_database(&admin, &name);
        bench("PostgreSQL", &url, invoices);
        common::drop_pg_database(&admin, &name);
    }
}
