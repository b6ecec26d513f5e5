//! Console benchmark: each page's server time over the generated portfolio (100,000
//! customers, 1,000,000 invoices by default, seed 42), SQLite. The console's router is
//! called in process (`tower::ServiceExt::oneshot`), signed in as a credit manager, so
//! what is measured is the server's work: reading, rendering, answering.
//!
//! ```sh
//! cargo bench --bench console
//! BENCH_CUSTOMERS=10000 BENCH_INVOICES=100000 cargo bench --bench console
//! ```
//! Targets (issue): every page's p95 under 150 ms, the customer search under 100 ms.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env_u32;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AS_OF: &str = "2026-11-02";

#[tokio::main]
async fn main() {
    let customers = env_u32("BENCH_CUSTOMERS", 100_000);
    let invoices = env_u32("BENCH_INVOICES", 1_000_000);
    let repeat = env_u32("BENCH_REPEAT", 20) as usize;
    let data = common::portfolio(customers, invoices, AS_OF);
    let db = common::bench_dir().join(format!("console-{customers}-{invoices}.db"));
    if !db.exists() {
        let partial = common::bench_dir().join("console-import.db");
        let _ = std::fs::remove_file(&partial);
        eprintln!("importing into {}", partial.display());
        common::import(&data, &format!("sqlite://{}", partial.display()));
        std::fs::rename(&partial, &db).unwrap();
    }
    let url = format!("sqlite://{}", db.display());
    let mut config = relance::config::Config::load(None).expect("the embedded configuration");
    config.database.url = relance::config::DatabaseUrl::new(url.clone());
    let config = Arc::new(config);
    let store = relance::store::open(&config.database.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let engine = relance::scripting::engine::build(
        Arc::new(config.calendar.clone()),
        &relance::scripting::Limits::default(),
    );
    let (registry, _) = relance::scripting::RuleRegistry::load(&config, engine);
    let now = chrono::Utc::now();
    let user = match store.user_with_hash("bench").await.unwrap() {
        Some((u, _)) => u.id,
        None => store
            .create_user("bench", "Bench", "credit_manager", "$argon2id$none", now)
            .await
            .unwrap(),
    };
    let secret = relance::digest::random_token().unwrap();
    store
        .create_session(
            &relance::digest::sha256_hex(secret.as_bytes()),
            user,
            "csrf",
            now + chrono::Duration::hours(2),
            now,
        )
        .await
        .unwrap();
    let state =
        relance::console::ConsoleState::new(config.clone(), store.clone(), Arc::new(registry));
    // What a running service does at start: the dashboard and the reports computed in
    // the background. Timed, then the pages are measured as the users meet them.
    let warm = Instant::now();
    relance::console::warm_up(&state).await.unwrap();
    let warm = warm.elapsed();
    let router = relance::console::router(state);
    let a_customer = format!("C{:07}", customers / 2);
    let a_name = "Garage Martin";
    let pages: Vec<(&str, String)> = vec![
        ("dashboard", "/".into()),
        ("customers (first page)", "/customers".into()),
        (
            "customers, search by name",
            format!("/customers?q={}", a_name.replace(' ', "+")),
        ),
        (
            "customers, search by id",
            format!("/customers?q={a_customer}"),
        ),
        (
            "customers, search by invoice number",
            format!("/customers?q=F{:08}", invoices / 2),
        ),
        ("customers, disputed", "/customers?flag=disputed".into()),
        ("customers, aging 91-120", "/customers?bucket=91-120".into()),
        ("customer 360", format!("/customers/{a_customer}")),
        ("my tasks", "/tasks".into()),
        ("actions", "/actions".into()),
        ("rules", "/rules".into()),
        ("explain", format!("/rules/explain?customer={a_customer}")),
        ("report aging", "/reports/aging".into()),
    ];
    println!(
        "relance console benchmark: {customers} customers, {invoices} invoices, SQLite, {repeat} requests a page (fewer when one takes over 3 s)"
    );
    println!("| page | requests | p50 | p95 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (name, path) in pages {
        let mut times: Vec<Duration> = Vec::new();
        let started = Instant::now();
        while times.len() < repeat.max(1) {
            let req = axum::http::Request::get(&path)
                .header("cookie", format!("relance_session={secret}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = tower::ServiceExt::oneshot(router.clone(), req)
                .await
                .unwrap();
            let status = resp.status();
            let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
            let took = t.elapsed();
            assert!(status.is_success(), "{path}: {status}");
            times.push(took);
            if started.elapsed() > Duration::from_secs(3) && times.len() >= 3 {
                break;
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "| {name} | {} | {} | {} | {} |",
            times.len(),
            ms(at(0.5)),
            ms(at(0.95)),
            ms(*times.last().unwrap())
        );
    }
    println!(
        "\nThe dashboard's figures and each report's default page, computed in the background when the service starts: {:.1} s.",
        warm.as_secs_f64()
    );
    store.close().await;
}
