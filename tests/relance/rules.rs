//! Rule scripts through the binary: `rules check`, `rules test` and `simulate`.

use crate::helpers::{
    postgres_admin_url, relance_in, repo, say_postgres_skipped, TestDb, Workspace,
};

fn workspace_with_rules(rules: &[(&str, &str)]) -> Workspace {
    crate::helpers::workspace_with_rules_and(rules, "")
}

#[test]
fn the_shipped_rules_pass_their_tests() {
    let run = relance_in(&repo(), &["rules", "test"]);
    run.expect_code(0);
    assert!(run.stdout.contains(" passed, 0 failed"), "{}", run.stdout);
    let check = relance_in(&repo(), &["rules", "check"]);
    check.expect_code(0);
    assert!(
        check
            .stdout
            .contains("rules/smb.rhai: OK (segment smb, sha256 "),
        "{}",
        check.stdout
    );
}

#[test]
fn every_construct_of_the_rule_api_behaves_as_documented() {
    let fixtures = repo().join("tests/fixtures/rules");
    let w = workspace_with_rules(&[(
        "api",
        &std::fs::read_to_string(fixtures.join("api.rhai")).unwrap(),
    )]);
    std::fs::copy(
        fixtures.join("api.test.yaml"),
        w.path("rules/api.test.yaml"),
    )
    .unwrap();
    let run = w.relance(&["rules", "test"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("rule tests: 1 passed, 0 failed"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_failing_rule_test_shows_expected_and_got() {
    let w = workspace_with_rules(&[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")]);
    w.write(
        "rules/smb.test.yaml",
        "cases:\n  - name: wrong expectation\n    today: 2026-03-02\n    invoices:\n      - { number: F1, due: 2026-02-20, amount: 10 }\n    expect:\n      - { kind: sms, step: reminder_1, invoices: [F1] }\n",
    );
    let run = w.relance(&["rules", "test"]);
    run.expect_code(4);
    for expected in [
        "FAIL  rules/smb.test.yaml:2: wrong expectation",
        "    expected:\n      sms reminder_1 [F1] planned",
        "    got:\n      email reminder_1 [F1] planned template=reminder_1",
        "    - missing:    sms reminder_1 [F1] planned",
        "    + unexpected: email reminder_1 [F1] planned",
        "rule tests: 0 passed, 1 failed",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing «{expected}» in\n{}",
            run.stdout
        );
    }
}

#[test]
fn rules_check_reports_each_broken_script_like_a_compiler() {
    let w = workspace_with_rules(&[
        ("good", "[]"),
        (
            "syntax",
            "let open = customer.dunnable;\nlet x = email(\"reminder_1\", open;\n",
        ),
        ("unknown", "let late = custmer.dunnable;\nlate\n"),
    ]);
    let run = w.relance(&["rules", "check"]);
    run.expect_code(4);
    assert!(run.stdout.contains("rules/good.rhai: OK"), "{}", run.stdout);
    assert!(run.stderr.contains("rules/syntax.rhai:2:33: Expecting ',' to separate the arguments to function call 'email'"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "2 | let x = email(\"reminder_1\", open;\n  |                                 ^"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("rules/unknown.rhai:1:12: Undefined variable: custmer\n1 | let late = custmer.dunnable;\n  |            ^"), "{}", run.stderr);
    assert!(
        run.stderr.contains("2 scripts with errors"),
        "{}",
        run.stderr
    );
}

const LEDGER_CUSTOMERS: &str = "external_id;name;segment;phones\nC-LOOP;Loop;looping;+33612345678\nC-DIV;Div;dividing;+33612345678\nC-OK;Ok;ladder;+33612345678\nC-PAUSED;Paused;ladder;+33612345678\nC-ORPHAN;Orphan;unknown_segment;+33612345678\n";

const LEDGER_INVOICES: &str = "number;customer;issue_date;due_date;amount\n\
    L-1;C-LOOP;2026-01-01;2026-01-31;100\n\
    D-1;C-DIV;2026-01-01;2026-01-31;100\n\
    K-1;C-OK;2026-01-01;2026-02-20;100.00\n\
    K-2;C-OK;2026-01-01;2026-02-21;250.50\n\
    K-3;C-OK;2026-01-01;2026-02-22;40.00\n\
    K-4;C-OK;2026-01-01;2026-02-23;60.00\n\
    K-5;C-OK;2026-01-01;2026-02-24;70.00\n\
    P-1;C-PAUSED;2026-01-01;2026-02-20;80.00\n\
    O-1;C-ORPHAN;2026-01-01;2026-02-20;90.00\n";

const LADDER: &str = "// names every late invoice, so the engine's blocking shows\n\
    let late = customer.invoices.overdue(1);\n\
    [email(\"reminder_1\", late), call_task(\"call\", late, #{ priority: \"high\" })]\n";

/// A small ledger, its facts set through the library on the given database, then
/// `simulate --format json` through the binary.
async fn simulate_small_ledger(w: &Workspace, db_url: &str) -> Vec<serde_json::Value> {
    let url_args = ["--database-url", db_url];
    w.write("customers.csv", LEDGER_CUSTOMERS);
    w.write("invoices.csv", LEDGER_INVOICES);
    // C-ORPHAN's segment was configured when it was imported, and removed since.
    w.with_segment_for_a_while("unknown_segment", || {
        for k in ["customers", "invoices"] {
            let file = format!("{k}.csv");
            let mut args = url_args.to_vec();
            args.extend(["import", k, file.as_str()]);
            w.relance(&args).expect_code(0);
        }
    });
    // Collectors' facts: a dispute, a paused invoice, a promise, a paused customer,
    // and a step already applied.
    let store = relance::store::open(&relance::config::DatabaseUrl::new(db_url), 2)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let at = chrono::Utc::now();
    tx.set_invoice_dispute(
        "K-2",
        Some(&relance::domain::Dispute {
            reason: "price".into(),
            opened_at: at,
        }),
    )
    .await
    .unwrap();
    tx.set_invoice_pause(
        "K-3",
        Some(&relance::domain::Pause {
            reason: "credit note coming".into(),
            until: None,
        }),
    )
    .await
    .unwrap();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    tx.add_promise(
        &relance::store::NewPromise {
            customer: "C-OK".into(),
            promised_date: d("2026-03-10"),
            amount: "60".parse().unwrap(),
            invoices: vec!["K-4".into()],
            note: None,
            call_task: None,
        },
        at,
    )
    .await
    .unwrap();
    tx.set_customer_pause(
        "C-PAUSED",
        Some(&relance::domain::Pause {
            reason: "insolvency proceedings".into(),
            until: Some(d("2026-12-31")),
        }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    insert_history(db_url, "C-OK", "K-5", "reminder_1", "2026-02-28").await;
    store.close().await;

    let mut args = url_args.to_vec();
    args.extend(["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    let run = w.relance(&args);
    // Two segments' rules fail (a loop, a division by zero): exit 4, as for any run
    // whose rules failed for some customers.
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("simulated 5 customers with 9 open invoices as of 2026-03-02"),
        "{}",
        run.stderr
    );
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A step already applied: an action row naming its invoice and the invoice's step in
/// the dunning state, as the daemon records them.
async fn insert_history(url: &str, customer: &str, invoice: &str, step: &str, date: &str) {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let now = chrono::Utc::now();
    let insert = "INSERT INTO actions (idempotency_key, customer_id, segment, kind, step, template, options, currency, amount_minor, rule_file, rule_hash, facts, decided_on, status, created_at, updated_at) \
         SELECT $1, id, segment, 'email', $2, $2, '{}', 'EUR', 0, 'rules/ladder.rhai', 'x', '{}', $3, 'sent', $4, $4 FROM customers WHERE external_id = $5";
    let link = "UPDATE actions SET invoice_numbers = $2 WHERE idempotency_key = $1";
    // The dunning state the daemon keeps with each action it records.
    let state =
        "INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied) \
         SELECT customer_id, $2, step, kind, id, $3 FROM actions WHERE idempotency_key = $1";
    let key = format!("test:{customer}:{step}:{invoice}");
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool;
            sqlx::query(insert)
                .bind(&key)
                .bind(step)
                .bind(day)
                .bind(now)
                .bind(customer)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(link)
                .bind(&key)
                .bind(serde_json::json!([invoice]).to_string())
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(state)
                .bind(&key)
                .bind(invoice)
                .bind(date)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }};
    }
    if url.starts_with("postgres") {
        run!(sqlx::PgPool::connect(url).await.unwrap());
    } else {
        run!(sqlx::SqlitePool::connect(url).await.unwrap());
    }
}

fn rows<'a>(all: &'a [serde_json::Value], customer: &str) -> Vec<&'a serde_json::Value> {
    all.iter().filter(|r| r["customer"] == customer).collect()
}

fn check_small_ledger(all: &[serde_json::Value]) {
    // An endless loop and a division by zero are errors for those customers only.
    let looping = rows(all, "C-LOOP");
    assert_eq!(looping.len(), 1, "{looping:?}");
    assert_eq!(looping[0]["status"], "error");
    let detail = looping[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("rules/looping.rhai:2:"), "{detail}");
    assert!(detail.contains("(an endless loop?)"), "{detail}");
    let div = rows(all, "C-DIV");
    assert_eq!(div[0]["status"], "error");
    assert!(
        div[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("rules/dividing.rhai:2:12: Division by zero: 10 / 0"),
        "{}",
        div[0]["detail"]
    );
    assert_eq!(div[0]["rule_file"], "rules/dividing.rhai");

    let orphan = rows(all, "C-ORPHAN");
    assert_eq!(orphan[0]["status"], "error");
    assert!(orphan[0]["detail"]
        .as_str()
        .unwrap()
        .contains("segment 'unknown_segment' has no rule script"));

    let paused = rows(all, "C-PAUSED");
    assert!(
        paused.iter().all(|r| r["status"] == "blocked"),
        "{paused:?}"
    );
    assert_eq!(
        paused[0]["detail"],
        "P-1: customer paused until 2026-12-31: insolvency proceedings"
    );

    let ok = rows(all, "C-OK");
    let find = |kind: &str, status: &str| {
        ok.iter()
            .find(|r| r["kind"] == kind && r["status"] == status)
            .unwrap_or_else(|| panic!("no {kind} {status} in {ok:?}"))
    };
    let planned = find("email", "planned");
    assert_eq!(planned["invoices"], serde_json::json!(["K-1"]));
    assert_eq!(planned["amount"], "100.00");
    assert_eq!(planned["currency"], "EUR");
    assert_eq!(planned["step"], "reminder_1");
    assert_eq!(planned["template"], "reminder_1");
    assert_eq!(planned["segment"], "ladder");
    assert_eq!(planned["rule_file"], "rules/ladder.rhai");
    assert_eq!(planned["rule_hash"].as_str().unwrap().len(), 64);
    let blocked = find("email", "blocked");
    assert_eq!(
        blocked["invoices"],
        serde_json::json!(["K-2", "K-3", "K-4"])
    );
    assert_eq!(
        blocked["detail"],
        "K-2: disputed: price; K-3: paused: credit note coming; K-4: promise to pay by 2026-03-10"
    );
    // K-5 had the step already (from the action log): left out, and said so.
    assert_eq!(
        planned["detail"],
        "left out, already done: K-5: done on 2026-02-28 | left out, blocked: K-2: disputed: price; K-3: paused: credit note coming; K-4: promise to pay by 2026-03-10"
    );
    let call = find("call_task", "planned");
    assert_eq!(call["invoices"], serde_json::json!(["K-1", "K-5"]));
    assert_eq!(call["options"]["priority"], "high");
    assert_eq!(call["options"]["reason"], "call");
}

fn small_ledger_workspace() -> Workspace {
    workspace_with_rules(&[
        ("looping", "let n = 0;\nloop { n += 1; }\n"),
        (
            "dividing",
            "let n = customer.invoices.len() - 1;\nlet x = 10 / n;\n[]\n",
        ),
        ("ladder", LADDER),
    ])
}

#[tokio::test]
async fn simulate_reports_what_would_happen_on_sqlite() {
    let w = small_ledger_workspace();
    let url = format!("sqlite://{}", w.path("ledger.db").display());
    let all = simulate_small_ledger(&w, &url).await;
    check_small_ledger(&all);

    // Filters, and the table for people.
    let run = w.relance(&[
        "simulate",
        "--as-of",
        "2026-03-02",
        "--customer",
        "C-OK",
        "--status",
        "planned",
    ]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CUSTOMER     KIND             STEP"),
        "{}",
        run.stdout
    );
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[1].starts_with("C-OK         email            reminder_1       K-1"),
        "{}",
        run.stdout
    );
    let run = w.relance(&[
        "simulate",
        "--as-of",
        "2026-03-02",
        "--segment",
        "looping",
        "--format",
        "json",
    ]);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    // Nothing was written: simulating again gives the same.
    assert_eq!(simulate_json(&w, &[]), simulate_json(&w, &[]));
}

fn simulate_json(w: &Workspace, extra: &[&str]) -> String {
    let mut args = vec!["simulate", "--as-of", "2026-03-02", "--format", "json"];
    args.extend_from_slice(extra);
    w.relance(&args).expect_code(4).stdout.clone()
}

#[tokio::test]
async fn simulate_reports_what_would_happen_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("simulate_reports_what_would_happen_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    let w = small_ledger_workspace();
    let all = simulate_small_ledger(&w, &db.url).await;
    check_small_ledger(&all);
    db.cleanup().await;
}

#[test]
fn the_shipped_rules_simulate_the_sample_portfolio() {
    let w = Workspace::new();
    for f in ["customers.csv", "invoices.csv", "payments.csv"] {
        std::fs::copy(repo().join("examples/data").join(f), w.path(f)).unwrap();
    }
    // The repository's embedded default, with this workspace's database.
    let url = format!("sqlite://{}", w.path("ledger.db").display());
    for k in ["customers", "invoices", "payments"] {
        let file = w.path(&format!("{k}.csv")).display().to_string();
        relance_in(&repo(), &["--database-url", &url, "import", k, &file]).expect_code(0);
    }
    let run = relance_in(
        &repo(),
        &[
            "--database-url",
            &url,
            "simulate",
            "--as-of",
            "2026-11-02",
            "--format",
            "json",
        ],
    );
    run.expect_code(0);
    let all: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(all.iter().all(|r| r["status"] != "error"), "{}", run.stdout);
    for kind in [
        "email",
        "sms",
        "call_task",
        "formal_notice",
        "insurer_handover",
    ] {
        assert!(
            all.iter()
                .any(|r| r["kind"] == kind && r["status"] == "planned"),
            "no planned {kind}"
        );
    }
}

#[test]
fn a_script_that_no_longer_compiles_is_rejected_and_the_previous_version_keeps_running() {
    let w = workspace_with_rules(&[("smb", "email(\"v1\", customer.invoices)")]);
    let config = relance::config::Config::load(Some(&w.path("relance.yaml"))).unwrap();
    let engine = relance::scripting::engine::build(
        std::sync::Arc::new(config.calendar.clone()),
        &relance::scripting::Limits::default(),
    );
    let (registry, errors) = relance::scripting::RuleRegistry::load(&config, engine);
    assert!(errors.is_empty());
    let v1 = registry.current().get("smb").unwrap().hash.clone();

    w.write("rules/smb.rhai", "email(\"v2\", customer.invoices");
    let report = registry.reload();
    assert!(report.reloaded.is_empty());
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0]
            .diagnostic
            .short()
            .starts_with("rules/smb.rhai:1:"),
        "{}",
        report.rejected[0].diagnostic.short()
    );
    assert_eq!(
        registry.current().get("smb").unwrap().hash,
        v1,
        "the previous version keeps running"
    );

    w.write("rules/smb.rhai", "email(\"v3\", customer.invoices)");
    let report = registry.reload();
    assert_eq!(report.reloaded, vec!["smb".to_string()]);
    let v3 = registry.current().get("smb").unwrap().clone();
    assert_ne!(v3.hash, v1);
    assert_eq!(
        v3.hash,
        relance::digest::sha256_hex(b"email(\"v3\", customer.invoices)")
    );
    assert!(
        registry.reload().reloaded.is_empty(),
        "an unchanged file is not recompiled"
    );
}
