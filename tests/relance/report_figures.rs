//! The worked example of docs/reports.md: the ledger of `examples/reports/`, imported
//! through the binary, and every figure the document computes by hand, asserted exactly
//! on SQLite and on PostgreSQL; the same figures over HTTP; CSV in French; charts.

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::{
    postgres_admin_url, say_postgres_skipped, workspace_with_rules_and, TestDb, Workspace,
};

fn example(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/reports")
        .join(file)
        .display()
        .to_string()
}

/// A workspace with the smb segment and the coface-fr insurer (90 days), its ledger
/// at `db_url` fed with the example files in the order docs/reports.md gives.
fn example_workspace(db_url: &str) -> Workspace {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    for kind in [
        "customers",
        "invoices",
        "payments",
        "history",
        "disputes",
        "promises",
    ] {
        w.relance(&[
            "--database-url",
            db_url,
            "import",
            kind,
            &example(&format!("{kind}.csv")),
        ])
        .expect_code(0);
    }
    w
}

fn report(w: &Workspace, db_url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--database-url", db_url, "report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let run = w.relance(&all);
    run.expect_code(0);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", run.stdout));
    if let Err(e) = validate(&doc) {
        panic!("{args:?}: the report breaks docs/schemas/reports.v1.json:\n{e}\n{doc:#}");
    }
    doc
}

/// Validates a report against the shipped JSON Schema with the `jsonschema` package.
pub(crate) fn validate(document: &Value) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(root.join("tests/peers/validate_schema.py"))
        .arg(root.join("docs/schemas/reports.v1.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (pip install jsonschema)");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        document.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_report_schema_refuses_a_float_amount_and_an_unknown_field() {
    let good = serde_json::json!({
        "report": "risk", "as_of": "2026-11-30", "over_limit_customers": 0,
        "over_cover_customers": 0, "customers": [], "concentration": [],
    });
    validate(&good).unwrap();
    let mut float = good.clone();
    float["concentration"] = serde_json::json!([{
        "currency": "EUR", "overdue": 12.5, "customers_overdue": 1,
        "top_10_overdue": "12.50", "top_10_share": "100.0", "top_10": [],
    }]);
    assert!(validate(&float).is_err());
    let mut extra = good;
    extra["surprise"] = serde_json::json!(1);
    assert!(validate(&extra).is_err());
}

const PERIOD: [&str; 4] = ["--from", "2026-09-01", "--to", "2026-11-30"];

fn check_worked_example(w: &Workspace, db: &str) {
    // Aged balance as of 30 November 2026.
    let aging = report(w, db, &["aging", "--as-of", "2026-11-30"]);
    let total = &aging["totals"][0];
    assert_eq!(total["currency"], "EUR");
    assert_eq!(total["customers"], 2);
    assert_eq!(total["open_invoices"], 5);
    assert_eq!(total["open"], "9000.00");
    assert_eq!(total["overdue"], "4500.00");
    let buckets: Vec<(&str, &str)> = total["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["label"].as_str().unwrap(), b["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        buckets,
        [
            ("not_due", "4500.00"),
            ("1-30", "2500.00"),
            ("31-60", "2000.00"),
            ("61-90", "0.00"),
            ("91-120", "0.00"),
            ("over_120", "0.00"),
        ]
    );
    assert_eq!(total["disputed"], "1000.00");
    assert_eq!(total["promised"], "1500.00");
    assert_eq!(total["paused"], "0.00");
    assert_eq!(total["handed_over"], "0.00");
    let customers: Vec<(&str, &str, i64)> = aging["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["customer"].as_str().unwrap(),
                c["overdue"].as_str().unwrap(),
                c["oldest_overdue_days"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        customers,
        [("ALPHA", "3000.00", 46), ("BETA", "1500.00", 30)]
    );

    // DSO and CEI, September to November.
    let mut args = vec!["dso"];
    args.extend_from_slice(&PERIOD);
    let dso = report(w, db, &args);
    assert_eq!(dso["report"], "dso");
    let months = dso["currencies"][0]["months"].as_array().unwrap();
    let row = |m: &Value, k: &str| m[k].as_str().unwrap_or("null").to_string();
    let got: Vec<Vec<String>> = months
        .iter()
        .map(|m| {
            [
                "month",
                "opening_receivables",
                "sales",
                "closing_receivables",
                "closing_current",
                "dso_count_back",
                "best_dso_count_back",
                "add_count_back",
                "dso_simple",
                "best_dso_simple",
                "add_simple",
                "cei",
            ]
            .iter()
            .map(|k| row(m, k))
            .collect()
        })
        .collect();
    let want: Vec<Vec<&str>> = vec![
        vec![
            "2026-09", "3000.00", "6000.00", "6000.00", "6000.00", "30.0", "30.0", "0.0", "30.0",
            "30.0", "0.0", "100.0",
        ],
        vec![
            "2026-10", "6000.00", "3500.00", "5500.00", "3500.00", "41.0", "31.0", "10.0", "48.7",
            "31.0", "17.7", "66.7",
        ],
        vec![
            "2026-11", "5500.00", "4500.00", "9000.00", "4500.00", "66.0", "30.0", "36.0", "60.0",
            "30.0", "30.0", "18.2",
        ],
    ];
    assert_eq!(got, want);
    let mut args = vec!["cei"];
    args.extend_from_slice(&PERIOD);
    let cei = report(w, db, &args);
    assert_eq!(cei["report"], "cei");
    assert_eq!(cei["currencies"], dso["currencies"]);

    // What each step earned.
    let mut args = vec!["effectiveness"];
    args.extend_from_slice(&PERIOD);
    let eff = report(w, db, &args);
    let steps = eff["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{eff:#}");
    let r1 = &steps[0];
    assert_eq!(r1["step"], "reminder_1");
    assert_eq!(r1["segment"], "smb");
    assert_eq!(r1["actions"], 5);
    assert_eq!(r1["invoices_named"], 5);
    assert_eq!(r1["amount_named"], "12500.00");
    assert_eq!(r1["paid_within_7_days"], "0.0");
    assert_eq!(r1["paid_within_14_days"], "0.0");
    assert_eq!(r1["paid_within_30_days"], "40.0");
    assert_eq!(r1["collected"], "8000.00");
    assert_eq!(r1["median_days_to_payment"], "17.0");
    assert_eq!(r1["disputes_after"], 1);
    assert_eq!(r1["contacts_per_1000"], "0.63");
    let r2 = &steps[1];
    assert_eq!(r2["step"], "reminder_2");
    assert_eq!(r2["actions"], 1);
    assert_eq!(r2["amount_named"], "2000.00");
    assert_eq!(r2["collected"], "0.00");
    assert_eq!(r2["median_days_to_payment"], Value::Null);
    assert_eq!(r2["contacts_per_1000"], Value::Null);

    // Risk.
    let risk = report(w, db, &["risk", "--as-of", "2026-11-30"]);
    assert_eq!(risk["over_limit_customers"], 0);
    assert_eq!(risk["over_cover_customers"], 1);
    let alpha = &risk["customers"][0];
    assert_eq!(alpha["customer"], "ALPHA");
    assert_eq!(alpha["exposure"], "4500.00");
    assert_eq!(alpha["over_cover"], "500.00");
    assert_eq!(alpha["over_limit"], Value::Null);
    assert_eq!(alpha["oldest_overdue_days"], 46);
    assert_eq!(alpha["declaration_deadline"], "2027-01-13");
    assert_eq!(alpha["deadline_days_left"], 44);
    let conc = &risk["concentration"][0];
    assert_eq!(conc["overdue"], "4500.00");
    assert_eq!(conc["top_10_share"], "100.0");
    assert_eq!(conc["top_10"][0]["share"], "66.7");
    assert_eq!(conc["top_10"][1]["share"], "33.3");

    // Collectors: the customers assigned to each, and their overdue.
    let mut args = vec!["collectors"];
    args.extend_from_slice(&PERIOD);
    let col = report(w, db, &args);
    let rows: Vec<(&str, u64, &str)> = col["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["collector"].as_str().unwrap(),
                r["customers"].as_u64().unwrap(),
                r["overdue"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("alice", 1, "3000.00"), ("bruno", 1, "1500.00")]);

    // Filters: one segment that has nobody, one collector.
    let alice = report(
        w,
        db,
        &["aging", "--as-of", "2026-11-30", "--collector", "alice"],
    );
    assert_eq!(alice["totals"][0]["open"], "4500.00");
    let usd = report(
        w,
        db,
        &["aging", "--as-of", "2026-11-30", "--currency", "usd"],
    );
    assert_eq!(usd["totals"], serde_json::json!([]));

    // As of today, the aged balance's totals are the ledger's.
    let today = report(w, db, &["aging"]);
    let ledger = w.relance(&["--database-url", db, "ledger", "--format", "json"]);
    ledger.expect_code(0);
    let ledger: Value = serde_json::from_str(&ledger.stdout).unwrap();
    let eur = &ledger["by_currency"][0];
    assert_eq!(today["totals"][0]["open"], eur["open"]);
    assert_eq!(today["totals"][0]["overdue"], eur["overdue"]);
    assert_eq!(today["totals"][0]["open_invoices"], eur["open_invoices"]);
}

#[test]
fn worked_example_figures_on_sqlite() {
    let w0 = Workspace::new();
    let db = format!("sqlite://{}", w0.path("ledger.db").display());
    let w = example_workspace(&db);
    check_worked_example(&w, &db);

    // French CSV: semicolons and decimal commas.
    let mut args = vec![
        "--database-url",
        &db,
        "report",
        "cei",
        "--format",
        "csv",
        "--locale",
        "fr",
    ];
    args.extend_from_slice(&PERIOD);
    let csv = w.relance(&args);
    csv.expect_code(0);
    assert_eq!(
        csv.stdout,
        "month;currency;opening;sales;closing;closing_current;cei_percent\n\
         2026-09;EUR;3000,00;6000,00;6000,00;6000,00;100,0\n\
         2026-10;EUR;6000,00;3500,00;5500,00;3500,00;66,7\n\
         2026-11;EUR;5500,00;4500,00;9000,00;4500,00;18,2\n"
    );
    let mut args = vec![
        "--database-url",
        &db,
        "report",
        "cei",
        "--format",
        "csv",
        "--locale",
        "en",
    ];
    args.extend_from_slice(&PERIOD);
    let en = w.relance(&args);
    assert!(
        en.stdout
            .contains("2026-10,EUR,6000.00,3500.00,5500.00,3500.00,66.7\n"),
        "{}",
        en.stdout
    );

    // Charts: SVG with the buckets' labels, PNG by its signature.
    let svg = w.relance(&[
        "--database-url",
        &db,
        "report",
        "aging",
        "--as-of",
        "2026-11-30",
        "--format",
        "svg",
        "--locale",
        "en",
    ]);
    svg.expect_code(0);
    assert!(
        svg.stdout.starts_with("<svg"),
        "{}",
        &svg.stdout[..100.min(svg.stdout.len())]
    );
    assert!(svg.stdout.contains("Aged balance as of 30 Nov 2026 (EUR)"));
    assert!(svg.stdout.contains("31-60 d"));
    let png = w.path("dso.png");
    let mut args = vec![
        "--database-url",
        &db,
        "report",
        "dso",
        "--format",
        "png",
        "--out",
    ];
    let png_arg = png.display().to_string();
    args.push(&png_arg);
    args.extend_from_slice(&PERIOD);
    w.relance(&args).expect_code(0);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // A report without a chart says so.
    let none = w.relance(&["--database-url", &db, "report", "risk", "--format", "svg"]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr.contains("the risk report has no chart"),
        "{}",
        none.stderr
    );
}

#[tokio::test]
async fn worked_example_figures_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("worked_example_figures_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    let w = example_workspace(&db.url);
    check_worked_example(&w, &db.url);
    db.cleanup().await;
}

#[tokio::test]
async fn reports_over_http_give_the_command_line_figures() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    let db = format!("sqlite://{}", w.path("ledger.db").display());
    for kind in [
        "customers",
        "invoices",
        "payments",
        "history",
        "disputes",
        "promises",
    ] {
        w.relance(&["import", kind, &example(&format!("{kind}.csv"))])
            .expect_code(0);
    }
    let cli = report(
        &w,
        &db,
        &[
            "effectiveness",
            "--from",
            "2026-09-01",
            "--to",
            "2026-11-30",
        ],
    );
    let token = w.token("reports", "read");
    let service = w.launch();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let token = token.clone();
        let url = format!("{}{path}", service.base);
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let resp = get("/v1/reports/effectiveness?from=2026-09-01&to=2026-11-30".into()).await;
    assert_eq!(resp.status(), 200);
    let api: Value = resp.json().await.unwrap();
    assert_eq!(api, cli);

    let resp =
        get("/v1/reports/aging?as_of=2026-11-30&format=csv&table=totals&locale=fr".into()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let body = resp.text().await.unwrap();
    assert!(
        body.starts_with("currency;customers;invoices;open;not_due"),
        "{body}"
    );
    assert!(
        body.contains("EUR;2;5;9000,00;4500,00;2500,00;2000,00"),
        "{body}"
    );

    let resp = get("/v1/reports/cei?from=2026-09-01&to=2026-11-30&format=svg".into()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");

    // Bad input: 4xx with a JSON body naming the field.
    for (path, status, field) in [
        ("/v1/reports/nonsense", 404, None),
        ("/v1/reports/aging?as_of=2026-13-01", 422, Some("as_of")),
        ("/v1/reports/aging?from=2026-01-01", 422, Some("from")),
        (
            "/v1/reports/dso?from=2026-11-01&to=2026-01-01",
            422,
            Some("from"),
        ),
        ("/v1/reports/aging?segment=nope", 422, Some("segment")),
        ("/v1/reports/aging?currency=EURO", 422, Some("currency")),
        ("/v1/reports/aging?format=pdf", 422, Some("format")),
        ("/v1/reports/risk?format=png", 422, Some("format")),
        ("/v1/reports/aging?top=0", 422, Some("top")),
    ] {
        let resp = get(path.to_string()).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let body: Value = resp.json().await.unwrap();
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{path}: {body}");
        }
    }
    let anonymous = client
        .get(format!("{}/v1/reports/aging", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let _ = service.stop();
}

/// A dispute resolved since, and a pause lifted since, still count on the days they
/// were on (the reports once saw only what is on today). The invoices are in CHF, apart
/// from the worked example's.
fn check_past_holds(w: &Workspace, db: &str) {
    let run = |args: &[&str]| {
        let mut all = vec!["--database-url", db];
        all.extend_from_slice(args);
        w.relance(&all).expect_code(0);
    };
    w.write(
        "hold-customers.csv",
        "external_id,name,segment,currency\nH1,Hold SARL,smb,CHF\n",
    );
    w.write(
        "hold-invoices.csv",
        "number,customer,issue_date,due_date,amount,currency\nH-1,H1,2026-01-01,2026-01-31,1000.00,CHF\nH-2,H1,2026-01-01,2026-01-31,500.00,CHF\n",
    );
    w.write(
        "hold-disputes.csv",
        "invoice,reason,opened_on\nH-1,price,2026-02-10\n",
    );
    run(&["import", "customers", "hold-customers.csv"]);
    run(&["import", "invoices", "hold-invoices.csv"]);
    run(&["import", "disputes", "hold-disputes.csv"]);
    let held = |as_of: &str| {
        let mut args = vec!["aging", "--currency", "CHF"];
        if !as_of.is_empty() {
            args.extend_from_slice(&["--as-of", as_of]);
        }
        let r = report(w, db, &args);
        let t = &r["totals"][0];
        assert_eq!(t["currency"], "CHF", "{r}");
        (
            t["disputed"].as_str().unwrap().to_string(),
            t["paused"].as_str().unwrap().to_string(),
        )
    };
    let h = |d: &str, p: &str| (d.to_string(), p.to_string());
    assert_eq!(held("2026-03-01"), h("1000.00", "0.00"));
    run(&["dispute", "resolve", "H-1"]);
    run(&[
        "pause",
        "--invoice",
        "H-2",
        "--reason",
        "credit note coming",
    ]);
    assert_eq!(
        held(""),
        h("0.00", "500.00"),
        "resolved today, paused today"
    );
    run(&["unpause", "--invoice", "H-2"]);
    assert_eq!(held(""), h("0.00", "0.00"), "lifted today");
    // Resolved today: still disputed on 1 March, not on 9 February (before it was
    // opened).
    assert_eq!(
        held("2026-03-01"),
        h("1000.00", "0.00"),
        "a resolved dispute vanished from the past"
    );
    assert_eq!(held("2026-02-09"), h("0.00", "0.00"));
}

#[test]
fn past_disputes_and_pauses_lifted_since_count_on_their_days_on_sqlite() {
    let w0 = Workspace::new();
    let db = format!("sqlite://{}", w0.path("ledger.db").display());
    let w = example_workspace(&db);
    check_past_holds(&w, &db);
}

#[tokio::test]
async fn past_disputes_and_pauses_lifted_since_count_on_their_days_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped(
            "past_disputes_and_pauses_lifted_since_count_on_their_days_on_postgres",
        );
    };
    let db = TestDb::postgres(&admin).await;
    let w = example_workspace(&db.url);
    check_past_holds(&w, &db.url);
    db.cleanup().await;
}

#[test]
fn the_monthly_report_is_one_pdf_with_the_worked_example_figures() {
    let w0 = Workspace::new();
    let db = format!("sqlite://{}", w0.path("ledger.db").display());
    let w = example_workspace(&db);
    let pdf = w.path("rapport.pdf");
    w.relance(&[
        "--database-url",
        &db,
        "report",
        "monthly",
        "--as-of",
        "2026-11-30",
        "--format",
        "pdf",
        "--out",
        pdf.to_str().unwrap(),
    ])
    .expect_code(0);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"), "not a PDF");
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    let text = String::from_utf8_lossy(&out.stdout).replace('\u{a0}', " ");
    assert!(text.contains("Balance âgée"), "{text}");
    // The worked example's open total as of 30 November, in French.
    assert!(text.contains("9 000,00"), "{text}");
    // Standard output takes it too, when it is not a terminal.
    let run = w.relance(&[
        "--database-url",
        &db,
        "report",
        "monthly",
        "--as-of",
        "2026-11-30",
        "--locale",
        "en",
    ]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("%PDF"));
    let run = w.relance(&["report", "monthly", "--format", "csv"]);
    run.expect_code(2);
}
