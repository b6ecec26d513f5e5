//! Rule evaluation benchmark: the shipped rules over a generated portfolio (100,000
//! customers and 1,000,000 invoices by default, seed 42), as `relance simulate` runs
//! them, against the floor of merely reading the same open invoices with the same driver.
//!
//! ```sh
//! cargo bench --bench simulate
//! RELANCE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench simulate
//! BENCH_CUSTOMERS=10000 BENCH_INVOICES=100000 cargo bench --bench simulate
//! ```
//! Targets: the whole evaluation (load + rules) within 3x the read; rule evaluation at
//! most 10 µs per customer on one core.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use futures_util::StreamExt;
use relance::config::{Config, DatabaseUrl, Source, EMBEDDED_DEFAULT};
use relance::scheduler::pipeline;
use relance::scripting::{Evaluator, Limits, RuleRegistry};
use relance::store::{self, AccountFilter, Store};

const AS_OF: &str = "2026-11-02";

// The allocator the `relance` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak resident memory of this process so far, in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Figures {
    read: Duration,
    full: Duration,
    full_one_worker: Duration,
    per_customer_us: f64,
    customers: u64,
    invoices: u64,
    decisions: u64,
}

async fn measure(store: Arc<dyn Store>, config: Arc<Config>) -> Figures {
    let today = relance::domain::parse_date(AS_OF).unwrap();
    // The floor: the same open invoices, same driver, same order (read once first, so
    // that both measurements find the file in the page cache).
    store.scan_open_invoices().await.unwrap();
    let t = Instant::now();
    let (invoices, customers) = store.scan_open_invoices().await.unwrap();
    let read = t.elapsed();

    let engine =
        relance::scripting::engine::build(Arc::new(config.calendar.clone()), &Limits::default());
    let (registry, errors) = RuleRegistry::load(&config, engine);
    assert!(errors.is_empty(), "the shipped rules compile");
    let rules = registry.current();
    let cfg = config.clone();
    let make: Arc<dyn Fn() -> Evaluator + Send + Sync> =
        Arc::new(move || Evaluator::new(&cfg, Limits::default()));

    let run_full = |workers: usize| {
        let (store, rules, make) = (store.clone(), rules.clone(), make.clone());
        async move {
            let mut decisions = 0u64;
            let t = Instant::now();
            let opts = pipeline::PipelineOptions {
                workers,
                batch: 500,
                today,
            };
            let stats = pipeline::run(
                store,
                AccountFilter::default(),
                rules,
                make,
                opts,
                |outcomes| {
                    decisions += outcomes
                        .iter()
                        .map(|o| o.decisions.len() as u64)
                        .sum::<u64>();
                    std::future::ready(Ok(()))
                },
            )
            .await
            .unwrap();
            (t.elapsed(), stats, decisions)
        }
    };
    let (full, stats, decisions) = run_full(2).await;
    assert_eq!(
        (stats.invoices, stats.customers),
        (invoices, customers),
        "the pipeline read what the scan read"
    );
    let (full_one_worker, _, _) = run_full(1).await;

    // Rule evaluation alone (facts + script + decisions) on one core, accounts in memory.
    let sample = 20_000usize;
    let mut accounts = Vec::with_capacity(sample);
    let filter = AccountFilter::default();
    let mut stream = store.accounts(&filter, 500);
    while let Some(batch) = stream.next().await {
        accounts.extend(batch.unwrap());
        if accounts.len() >= sample {
            break;
        }
    }
    drop(stream);
    let evaluator = Evaluator::new(&config, Limits::default());
    let n = accounts.len();
    let t = Instant::now();
    for a in accounts {
        std::hint::black_box(evaluator.evaluate(&rules, a, today));
    }
    let per_customer_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    Figures {
        read,
        full,
        full_one_worker,
        per_customer_us,
        customers,
        invoices,
        decisions,
    }
}

fn report(backend: &str, f: &Figures) {
    let ratio = f.full.as_secs_f64() / f.read.as_secs_f64();
    println!(
        "\n{backend}: {} customers with {} open invoices, {} decisions",
        f.customers, f.invoices, f.decisions
    );
    println!(
        "  read open invoices (floor)        {:>8.2} s",
        f.read.as_secs_f64()
    );
    println!(
        "  simulate, 2 workers (load+rules)  {:>8.2} s   {ratio:.2}x the read (target <= 3x: {})",
        f.full.as_secs_f64(),
        if ratio <= 3.0 { "met" } else { "MISSED" }
    );
    println!(
        "  simulate, 1 worker                {:>8.2} s   ({:.2}x from the second worker)",
        f.full_one_worker.as_secs_f64(),
        f.full_one_worker.as_secs_f64() / f.full.as_secs_f64()
    );
    println!(
        "  rule evaluation per customer      {:>8.2} µs  on one core (target <= 10 µs: {})",
        f.per_customer_us,
        if f.per_customer_us <= 10.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn main() {
    let customers = common::env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = common::env_u32("BENCH_INVOICES", 1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = common::bench_dir();
    let data = common::portfolio(customers, invoices, AS_OF);
    // The shipped configuration and rules, as `relance simulate` in a checkout uses them.
    let config_path = root.join("relance.yaml");
    let mut config = Config::from_yaml(Source::File(config_path), EMBEDDED_DEFAULT, &|_| None)
        .expect("embedded default");
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("relance simulate benchmark: shipped rules, {customers} customers, {invoices} invoices, as of {AS_OF}");

    let db = target.join(format!("simulate-{customers}-{invoices}.db"));
    let url = format!("sqlite://{}", db.display());
    if !target
        .join(format!("simulate-{customers}-{invoices}.ready"))
        .exists()
    {
        let _ = std::fs::remove_file(&db);
        eprintln!("importing into {}", db.display());
        common::import(&data, &url);
        std::fs::write(
            target.join(format!("simulate-{customers}-{invoices}.ready")),
            "",
        )
        .unwrap();
    }
    config.database.url = DatabaseUrl::new(url.clone());
    let config = Arc::new(config);
    let figures = rt.block_on(async {
        let s = store::open(&config.database.url, 8).await.unwrap();
        s.migrate().await.unwrap();
        let f = measure(s.clone(), config.clone()).await;
        s.close().await;
        f
    });
    report("SQLite", &figures);

    if let Some(admin) = std::env::var("RELANCE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let name = format!("relance_bench_sim_{}", std::process::id());
        let pg_url = common::create_pg_database(&admin, &name);
        eprintln!("importing into PostgreSQL");
        common::import(&data, &pg_url);
        let mut pg_config = (*config).clone();
        pg_config.database.url = DatabaseUrl::new(pg_url);
        let pg_config = Arc::new(pg_config);
        let figures = rt.block_on(async {
            let s = store::open(&pg_config.database.url, 8).await.unwrap();
            let f = measure(s.clone(), pg_config.clone()).await;
            s.close().await;
            f
        });
        report("PostgreSQL", &figures);
        common::drop_pg_database(&admin, &name);
    } else {
        println!("\nPostgreSQL: skipped (set RELANCE_BENCH_POSTGRES_URL to run it)");
    }
    println!(
        "\npeak memory of the benchmark process: {:.0} MB",
        peak_rss_mb()
    );
}
