//! One bad rule line must never stop dunning: a date overflow, a calendar function asked
//! for thousands of years, or a loop around one, fails for the customer whose path runs
//! it, and every other customer and segment is dunned. Through the binary.

use crate::helpers::{workspace_with_rules_and, Workspace};

/// The other segment's rule: one email per customer with an overdue invoice.
const PLAIN: &str = "email(\"reminder\", customer.dunnable.overdue(1))\n";

/// A rule that runs `line` for customer C2 only, then emails every overdue customer.
fn planted(line: &str) -> String {
    format!("if customer.id == \"C2\" {{\n    let x = {line};\n}}\n{PLAIN}")
}

/// Two segments: `smb` (C1, C2, C3) with `rule`, `key` (K1) with a plain rule.
fn portfolio(rule: &str, extra: &str) -> Workspace {
    let w = workspace_with_rules_and(&[("smb", rule), ("key", PLAIN)], extra);
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for (i, c) in ["C1", "C2", "C3", "K1"].iter().enumerate() {
        let segment = if c.starts_with('K') { "key" } else { "smb" };
        customers.push_str(&format!("{c},Client {c},{segment},{c}@client.example\n"));
        invoices.push_str(&format!("F{i},{c},2026-01-01,2026-01-31,1{i}0.00\n"));
    }
    w.import_ledger(&customers, &invoices);
    w
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each planted line, and the start of the error the customer's decision carries.
const PLANTED: &[(&str, &str)] = &[
    (
        "today.add_days(999999999)",
        "rules/smb.rhai:2:19: add_days(2026-03-02, 999999999): the result is outside the calendar (years 1 to 9999)",
    ),
    (
        "today + 999999999",
        "rules/smb.rhai:2:19: 2026-03-02 + 999999999 days: the result is outside the calendar",
    ),
    (
        "today - 999999999",
        "rules/smb.rhai:2:19: 2026-03-02 - 999999999 days: the result is outside the calendar",
    ),
    (
        "today.add_business_days(-100000000)",
        "rules/smb.rhai:2:19: add_business_days(2026-03-02, -100000000): the result is outside the calendar",
    ),
    (
        "add_business_days(today, 100000000)",
        "rules/smb.rhai:2:13: add_business_days(2026-03-02, 100000000): the result is outside the calendar",
    ),
    (
        "date(1, 1, 1).add_days(-1)",
        "rules/smb.rhai:2:",
    ),
    (
        "business_days_between(date(1900, 1, 1), date(1899, 12, 31) + 5000000)",
        "rules/smb.rhai:2:",
    ),
    (
        "{ let n = 0; for i in 0..100000 { n += business_days_between(date(1, 1, 1), date(9999, 12, 31)); } n }",
        "rules/smb.rhai:2:",
    ),
    (
        "{ let d = today; for i in 0..100000 { d = d.add_business_days(2000000); } d }",
        "rules/smb.rhai:2:",
    ),
];

#[test]
fn a_rule_line_that_overflows_a_date_fails_for_its_customer_only_in_simulate_and_tick() {
    for (line, error) in PLANTED {
        let w = portfolio(&planted(line), "");
        let started = std::time::Instant::now();
        let run = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{line}: simulate took {:?}",
            started.elapsed()
        );
        // Rule errors are input rejected: exit 4, never a panic (101) or a silent 0.
        run.expect_code(4);
        let all = json_lines(&run.stdout);
        let of = |c: &str| {
            all.iter()
                .filter(|d| d["customer"] == c)
                .collect::<Vec<_>>()
        };
        for c in ["C1", "C3", "K1"] {
            assert_eq!(of(c).len(), 1, "{line}: {c}\n{}", run.stdout);
            assert_eq!(of(c)[0]["status"], "planned", "{line}: {c}");
        }
        let c2 = of("C2");
        assert_eq!(c2.len(), 1, "{line}\n{}", run.stdout);
        assert_eq!(c2[0]["status"], "error", "{line}");
        let detail = c2[0]["detail"].as_str().unwrap();
        assert!(detail.starts_with(error), "{line}: {detail}");
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("internal error"),
            "{line}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("simulated 4 customers") && run.stderr.contains("1 errors"),
            "{line}: {}",
            run.stderr
        );

        let tick = w.relance(&["tick", "--as-of", "2026-03-02"]);
        tick.expect_code(4);
        assert!(
            tick.stdout
                .contains("smb: 3 customers, 2 new planned actions, 0 already planned, 0 already done, 0 blocked, 1 errors"),
            "{line}: {}",
            tick.stdout
        );
        assert!(
            tick.stdout
                .contains("key: 1 customers, 1 new planned actions"),
            "{line}: {}",
            tick.stdout
        );
        let errors = w.relance(&["actions", "list", "--status", "error", "--format", "json"]);
        errors.expect_code(0);
        assert!(errors.stdout.contains("C2"), "{line}: {}", errors.stdout);
    }
}

#[test]
fn rules_check_survives_a_rule_line_that_overflows_a_date() {
    // `rules check` renders templates with the rules' sample decisions: it used to
    // panic (exit 101) on such a line.
    let w = portfolio(
        "let x = today.add_days(999999999);\nemail(\"reminder\", customer.dunnable.overdue(1))\n",
        "",
    );
    let run = w.relance(&["rules", "check"]);
    assert_ne!(run.code, 101, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Polls `/metrics` until it contains `want`; returns the whole page.
async fn metrics_once(s: &impl crate::helpers::Service, token: &str, want: &str) -> String {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let m = client
            .get(format!("{}/metrics", s.base()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains(want) {
            return m;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no {want} in /metrics:\n{m}\n{}",
            s.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_goes_on_dunning_other_customers_and_counts_the_rule_error_in_metrics() {
    let w = portfolio(&planted("today + 999999999"), "");
    let token = w.token("monitoring", "read");
    let served = w.launch();
    // Both segments' ticks have run once every customer (3 smb, 1 key) is counted.
    let metrics = metrics_once(&served, &token, "relance_customers_evaluated_total 4").await;
    let (client, base) = (reqwest::Client::new(), served.base.clone());
    // The API's dry run gives the customer's error decision, with its file:line:col.
    let dry: serde_json::Value = client
        .get(format!("{base}/v1/customers/C2/dry-run?as_of=2026-03-02"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["decisions"][0]["status"], "error", "{dry}");
    assert!(
        dry["decisions"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("rules/smb.rhai:2:19: 2026-03-02 + 999999999 days"),
        "{dry}"
    );
    let log = served.stop();
    assert!(metrics.contains("relance_rule_errors_total 1"), "{metrics}");
    assert!(
        metrics.contains("relance_customers_evaluated_total 4"),
        "{metrics}"
    );
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("tick done with rule errors")
            && l.contains("segment=smb")
            && l.contains("errors=1")),
        "{log}"
    );
    let list = w.relance(&["actions", "list", "--format", "json"]);
    for c in ["C1", "C3", "K1"] {
        assert!(
            list.stdout.contains(&format!("\"{c}\"")),
            "{c}: {}",
            list.stdout
        );
    }
}

/// `relance tick` with a fault injected while customer `customer` is evaluated.
fn tick_with_fault(w: &Workspace, customer: &str) -> crate::helpers::Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["--config", w.path("relance.yaml").to_str().unwrap()])
        .args(["tick", "--as-of", "2026-03-02"])
        .current_dir(w.dir.path())
        .env("RELANCE_FAILPOINT", format!("evaluate-panic:{customer}"))
        .output()
        .unwrap();
    crate::helpers::Run::from(out)
}

/// The tick records: (segment, status, customers, planned, errors, detail).
async fn ticks(w: &Workspace) -> Vec<(String, String, i64, i64, i64, Option<String>)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", w.path("ledger.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as(
        "SELECT segment, status, customers, planned, errors, detail FROM ticks ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_customer_that_cannot_be_evaluated_fails_the_tick_with_the_reason_and_the_others_are_dunned(
) {
    let w = portfolio(PLAIN, "");
    let run = tick_with_fault(&w, "C2");
    // Not a silent "done": exit 1, the reason on stderr, no panic message.
    run.expect_code(1);
    assert!(
        run.stderr.contains("error: tick failed: 1 of 4 customers read were not evaluated; C2: internal error: fault injected for C2"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("smb: 2 customers, 2 new planned actions"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("key: 1 customers, 1 new planned actions"),
        "{}",
        run.stdout
    );
    let ticks = ticks(&w).await;
    assert_eq!(ticks.len(), 2, "{ticks:?}");
    for t in &ticks {
        assert_eq!(t.1, "failed", "{ticks:?}");
        assert!(
            t.5.as_deref().unwrap_or("").contains("C2: internal error"),
            "{ticks:?}"
        );
    }
    // The next tick without the fault evaluates everyone, and plans nothing twice.
    let again = w.relance(&["tick", "--as-of", "2026-03-02"]);
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("smb: 3 customers, 1 new planned actions, 0 already planned, 2 already done"),
        "{}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_a_tick_that_cannot_account_for_a_customer_as_an_error_and_counts_it() {
    let w = portfolio(PLAIN, "");
    let token = w.token("monitoring", "read");
    let served = w.serve(&[("RELANCE_FAILPOINT", "evaluate-panic:C3")]);
    let metrics = metrics_once(
        &served,
        &token,
        "relance_ticks_total{segment=\"smb\",status=\"failed\"} 1",
    )
    .await;
    let log = served.stop();
    assert!(
        metrics.contains("relance_ticks_total{segment=\"key\",status=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("tick failed")
            && l.contains("C3: internal error")),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_tick_left_running_by_a_stopped_instance_is_marked_abandoned() {
    let w = portfolio(PLAIN, "");
    let url =
        relance::config::DatabaseUrl::new(format!("sqlite://{}", w.path("ledger.db").display()));
    let store = relance::store::open(&url, 1).await.unwrap();
    let when = chrono::Utc::now() - chrono::Duration::hours(1);
    let as_of = when.date_naive();
    let left = store
        .start_tick("smb", when, "schedule", as_of, "gone-host:4242", when)
        .await
        .unwrap();
    let manual = store
        .start_tick("key", when, "manual", as_of, "gone-host:4243", when)
        .await
        .unwrap();
    store.close().await;
    let served = w.launch();
    let started = std::time::Instant::now();
    while !served.log().contains("tick done segment=smb") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{}",
            served.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = served.stop();
    let all = ticks(&w).await;
    assert_eq!(all[left as usize - 1].1, "failed", "{all:?}");
    assert!(
        all[left as usize - 1]
            .5
            .as_deref()
            .unwrap_or("")
            .starts_with("abandoned"),
        "{all:?}"
    );
    // A tick run by hand is not the scheduler's: it is left alone.
    assert_eq!(all[manual as usize - 1].1, "running", "{all:?}");
    assert!(log.contains("marked failed (abandoned)"));
}

#[test]
fn serve_refuses_zero_dispatch_workers() {
    let w = portfolio(PLAIN, "");
    let run = w.relance(&["serve", "--workers", "0"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--workers"), "{}", run.stderr);
}
