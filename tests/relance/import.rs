//! CSV imports through the binary.

use crate::helpers::{postgres_admin_url, repo, say_postgres_skipped, TestDb, Workspace};

fn copy_samples(w: &Workspace) {
    for f in ["customers.csv", "invoices.csv", "payments.csv"] {
        std::fs::copy(repo().join("examples/data").join(f), w.path(f)).expect("copy sample");
    }
}

fn import_samples(w: &Workspace, extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["customers", "invoices", "payments"] {
        let file = format!("{kind}.csv");
        let mut args = vec!["import", kind, file.as_str()];
        args.extend_from_slice(extra);
        out.push(w.relance(&args).expect_code(0).stdout.clone());
    }
    out
}

fn snapshot(w: &Workspace, extra: &[&str]) -> String {
    let mut args = vec!["ledger", "--as-of", "2026-11-02", "--format", "json"];
    args.extend_from_slice(extra);
    let mut s = w.relance(&args).expect_code(0).stdout.clone();
    for id in ["C0000001", "C0000003", "C0000017"] {
        let mut args = vec!["customer", id, "--format", "json"];
        args.extend_from_slice(extra);
        let out = w.relance(&args).expect_code(0).stdout.clone();
        s.push_str(&out);
    }
    s
}

#[test]
fn importing_the_sample_files_twice_yields_the_same_ledger() {
    let w = Workspace::new();
    copy_samples(&w);
    let first = import_samples(&w, &[]);
    assert!(first[0].contains("30 rows read, 30 new"), "{}", first[0]);
    let before = snapshot(&w, &[]);
    let second = import_samples(&w, &[]);
    assert!(
        second[0].contains("0 new, 0 updated, 30 unchanged"),
        "{}",
        second[0]
    );
    assert!(
        second[1].contains("0 new, 0 updated, 120 unchanged"),
        "{}",
        second[1]
    );
    assert!(
        second[2].contains("0 new, 0 updated, 16 unchanged"),
        "{}",
        second[2]
    );
    assert_eq!(before, snapshot(&w, &[]));
}

#[tokio::test]
async fn importing_the_sample_files_twice_on_postgres_yields_the_same_ledger() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped(
            "importing_the_sample_files_twice_on_postgres_yields_the_same_ledger",
        );
    };
    let db = TestDb::postgres(&admin).await;
    let w = Workspace::new();
    copy_samples(&w);
    let url = db.url.clone();
    let extra = ["--database-url", url.as_str()];
    import_samples(&w, &extra);
    let before = snapshot(&w, &extra);
    let second = import_samples(&w, &extra);
    assert!(second[1].contains("120 unchanged"), "{}", second[1]);
    assert_eq!(before, snapshot(&w, &extra));
    // The same files give the same ledger on SQLite.
    let sqlite = Workspace::new();
    copy_samples(&sqlite);
    import_samples(&sqlite, &[]);
    assert_eq!(before, snapshot(&sqlite, &[]));
    db.cleanup().await;
}

fn thousand_invoices(bad_row: Option<usize>) -> String {
    let mut s = String::from("number;customer;issue_date;due_date;amount\n");
    for i in 1..=1000 {
        let due = if Some(i) == bad_row {
            "31/02/2026".to_string()
        } else {
            "31/03/2026".to_string()
        };
        s.push_str(&format!(
            "F{i:05};C1;01/03/2026;{due};{},{:02}\n",
            100 + i,
            i % 100
        ));
    }
    s
}

#[test]
fn one_bad_row_among_a_thousand_rejects_the_file_and_names_the_row() {
    let w = Workspace::new();
    w.write(
        "customers.csv",
        "external_id,name,segment\nC1,Client Un,smb\n",
    );
    w.relance(&["import", "customers", "customers.csv"])
        .expect_code(0);
    w.write("invoices.csv", thousand_invoices(Some(537)));

    let run = w.relance(&["import", "invoices", "invoices.csv"]);
    run.expect_code(4);
    // Row 537 is on line 538: the header is line 1.
    assert!(
        run.stderr
            .contains("invoices.csv:538: column 'due_date': invalid date '31/02/2026'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("rejected, nothing written: 1 of 1000 rows are invalid"),
        "{}",
        run.stdout
    );
    let ledger = w
        .relance(&["ledger", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    assert!(ledger.contains("\"invoices\": 0"), "{ledger}");

    let run = w.relance(&["import", "invoices", "invoices.csv", "--skip-invalid"]);
    run.expect_code(4);
    assert!(
        run.stdout
            .contains("1000 rows read, 999 new, 0 updated, 0 unchanged, 1 rejected"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("invoices.csv:538"), "{}", run.stderr);
    let ledger = w
        .relance(&["ledger", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    assert!(ledger.contains("\"invoices\": 999"), "{ledger}");
}

#[test]
fn latin9_tabs_decimal_commas_and_french_dates_are_read() {
    let w = Workspace::new();
    let text = "external_id\tname\tsegment\tcredit_limit\temails\tphones\tinsured\n\
                C1\tSociété Générale des Forges\tkey_accounts\t1 234 567,89\ta@b.fr|c@d.fr\t+33 6 12 34 56 78\toui\n";
    let (bytes, _, _) = encoding_rs::ISO_8859_15.encode(text);
    w.write("customers.csv", bytes.as_ref());
    let run = w.relance(&["import", "customers", "customers.csv"]);
    run.expect_code(0);
    let out = w
        .relance(&["customer", "C1", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["customer"]["name"], "Société Générale des Forges");
    assert_eq!(v["customer"]["credit_limit"], "1234567.89");
    assert_eq!(
        v["customer"]["emails"],
        serde_json::json!(["a@b.fr", "c@d.fr"])
    );
    assert_eq!(v["customer"]["phones"], serde_json::json!(["+33612345678"]));
    assert_eq!(v["customer"]["insurance"]["insured"], true);

    w.write("invoices.csv", "number,customer,issue_date,due_date,amount,currency\nF1,C1,2026-03-01,15/04/2026,\"1.234,50\",eur\n");
    w.relance(&["import", "invoices", "invoices.csv"])
        .expect_code(0);
    let out = w
        .relance(&["customer", "C1", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["invoices"][0]["amount"], "1234.50");
    assert_eq!(v["invoices"][0]["due_date"], "2026-04-15");
}

#[test]
fn every_bad_row_is_reported_with_its_reason() {
    let w = Workspace::new();
    w.write(
        "customers.csv",
        "external_id;name;segment\nC1;Un;smb\nC2;Deux;smb\n",
    );
    w.relance(&["import", "customers", "customers.csv"])
        .expect_code(0);
    w.write(
        "invoices.csv",
        "number;customer;issue_date;due_date;amount;currency\n\
         F1;C1;2026-03-01;2026-03-31;100;EUR\n\
         F2;C9;2026-03-01;2026-03-31;100;EUR\n\
         F1;C2;2026-03-01;2026-03-31;100;EUR\n\
         F3;C1;2026-03-01;2026-02-01;100;EUR\n\
         F4;C1;2026-03-01;2026-03-31;12.345;EUR\n\
         F5;C1;2026-03-01;2026-03-31;100;EURO\n\
         F6;C1;2026-03-01;2026-03-31;abc;EUR\n\
         F7;C1;2026-03-01;2026-03-31\n",
    );
    let run = w.relance(&["import", "invoices", "invoices.csv"]);
    run.expect_code(4);
    for expected in [
        "invoices.csv:3: column 'customer': unknown customer 'C9'",
        "invoices.csv:4: column 'number': 'F1' appears twice in the file (first on line 2)",
        "invoices.csv:5: column 'due_date': due date 2026-02-01 is before the issue date 2026-03-01",
        "invoices.csv:6: column 'amount': amount 12.345 has more decimals than EUR allows (2)",
        "invoices.csv:7: column 'currency': unknown currency 'EURO'",
        "invoices.csv:8: column 'amount': invalid amount 'abc'",
        "invoices.csv:9: 4 fields where the header has 6",
    ] {
        assert!(run.stderr.contains(expected), "missing «{expected}» in\n{}", run.stderr);
    }
    assert!(
        run.stdout.contains("7 of 8 rows are invalid"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_file_without_a_required_column_is_refused() {
    let w = Workspace::new();
    w.write("customers.csv", "external_id,nom,segment\nC1,Un,smb\n");
    let run = w.relance(&["import", "customers", "customers.csv"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("customers.csv:1: missing required column(s): name"),
        "{}",
        run.stderr
    );
    let missing = w.relance(&["import", "customers", "nope.csv"]);
    missing.expect_code(4);
    assert!(
        missing.stderr.contains("cannot read nope.csv"),
        "{}",
        missing.stderr
    );
}

#[test]
fn payments_allocate_through_the_command_line() {
    let w = Workspace::new();
    w.write("customers.csv", "external_id,name,segment\nC1,Un,smb\n");
    w.write(
        "invoices.csv",
        "number,customer,issue_date,due_date,amount\nF-10,C1,2026-01-01,2026-01-31,100.00\nF-11,C1,2026-02-01,2026-02-28,200.00\nF-12,C1,2026-03-01,2026-03-31,300.00\n",
    );
    w.write(
        "payments.csv",
        "id,customer,date,amount,reference,kind\nP1,C1,2026-03-05,50.00,VIR SEPA,payment\nP2,C1,2026-03-06,450.00,Factures F-12 F-11,payment\nP3,C1,2026-03-07,80.00,,credit_note\n",
    );
    for k in ["customers", "invoices"] {
        w.relance(&["import", k, &format!("{k}.csv")])
            .expect_code(0);
    }
    let run = w.relance(&["import", "payments", "payments.csv"]);
    run.expect_code(0);
    assert!(run.stdout.contains("3 rows read, 3 new"), "{}", run.stdout);
    let out = w
        .relance(&["customer", "C1", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let open: Vec<&str> = v["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["open_amount"].as_str().unwrap())
        .collect();
    // P1 50 → F-10 (oldest); P2 450 → F-12 300 then F-11 150; P3 80 → F-10 50, F-11 30.
    assert_eq!(open, ["0.00", "20.00", "0.00"]);
    assert_eq!(v["payments"][2]["unapplied"], "0.00");
    let out = w
        .relance(&["ledger", "--format", "json", "--as-of", "2026-03-10"])
        .expect_code(0)
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by_currency"][0]["open"], "20.00");
    assert_eq!(v["by_currency"][0]["overdue"], "20.00");

    // An overpayment settles the rest and leaves unapplied credit on the customer.
    w.write(
        "more.csv",
        "id,customer,date,amount\nP4,C1,2026-03-08,100.00\n",
    );
    let run = w.relance(&["import", "payments", "more.csv"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("1 new") && run.stdout.contains("1 payment(s) left unapplied credit"),
        "{}",
        run.stdout
    );
    let out = w
        .relance(&["ledger", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by_currency"][0]["unapplied_credit"], "80.00");
    assert_eq!(v["by_currency"][0]["open_invoices"], 0);
}

/// The ledger's import history, oldest first: (kind, file name or description).
pub(crate) async fn import_history(w: &Workspace, database_url: &str) -> Vec<(String, String)> {
    use sqlx::Connection;
    let sql = "SELECT kind, file_name FROM imports ORDER BY id";
    if database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let url = format!("sqlite://{}", w.path(path).display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

async fn moving_an_invoice_by_import(database_url: Option<&str>) {
    let w = Workspace::new();
    let mut extra: Vec<&str> = Vec::new();
    if let Some(url) = database_url {
        extra.extend(["--database-url", url]);
    }
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&extra);
        w.relance(&all)
    };
    let customer_json = |id: &str| -> serde_json::Value {
        let r = run(&["customer", id, "--format", "json"]);
        r.expect_code(0);
        serde_json::from_str(&r.stdout).unwrap()
    };
    w.write(
        "customers.csv",
        "external_id;name;segment\nC0000001;Un;smb\nC0000002;Deux;smb\n",
    );
    w.write(
        "invoices.csv",
        "number;customer;issue_date;due_date;amount\nF00000063;C0000001;2026-09-01;2026-10-01;10.00\nF00000064;C0000001;2026-09-01;2026-10-01;100.00\n",
    );
    w.write(
        "payments.csv",
        "id;customer;date;amount;reference\nP1;C0000001;2026-10-05;60.00;F00000064\n",
    );
    for kind in ["customers", "invoices", "payments"] {
        run(&["import", kind, &format!("{kind}.csv")]).expect_code(0);
    }
    // The ERP now says F00000064 is C0000002's: refused, file, line and column named.
    w.write(
        "moved.csv",
        "number;customer;issue_date;due_date;amount\nF00000065;C0000002;2026-09-01;2026-10-01;5.00\nF00000064;C0000002;2026-09-01;2026-10-01;100.00\n",
    );
    let refused = run(&["import", "invoices", "moved.csv"]);
    refused.expect_code(4);
    assert!(
        refused.stderr.contains(
            "moved.csv:3: column 'customer': invoice 'F00000064' belongs to customer 'C0000001', not 'C0000002'"
        ) && refused.stderr.contains("--allow-customer-change"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stdout.contains("rejected, nothing written"),
        "{}",
        refused.stdout
    );
    let c1 = customer_json("C0000001");
    assert_eq!(c1["invoices"].as_array().unwrap().len(), 2, "{c1}");
    assert_eq!(customer_json("C0000002")["invoices"], serde_json::json!([]));
    assert_eq!(c1["payments"][0]["unapplied"], "0.00", "{c1}");

    // Asked for: the invoice moves and C0000001's payment gets its 60.00 back.
    let moved = run(&[
        "import",
        "invoices",
        "moved.csv",
        "--allow-customer-change",
        "--format",
        "json",
    ]);
    moved.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&moved.stdout).unwrap();
    assert_eq!(
        report["customer_changes"],
        serde_json::json!([{"line": 3, "invoice": "F00000064", "from": "C0000001", "to": "C0000002", "released_allocations": 1, "released_amount": "60.00"}]),
        "{report}"
    );
    assert_eq!(
        report["written"],
        serde_json::json!({"inserted": 1, "updated": 1, "unchanged": 0})
    );
    let c1 = customer_json("C0000001");
    let numbers: Vec<&str> = c1["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["F00000063"], "{c1}");
    assert_eq!(c1["payments"][0]["unapplied"], "60.00", "{c1}");
    assert_eq!(
        c1["payments"][0]["allocations"],
        serde_json::json!([]),
        "{c1}"
    );
    let c2 = customer_json("C0000002");
    let f64 = c2["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "F00000064")
        .unwrap()
        .clone();
    assert_eq!(f64["open_amount"], "100.00", "{c2}");
    assert_eq!(f64["status"], "open", "{c2}");
    let text = run(&["import", "invoices", "moved.csv", "--allow-customer-change"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("0 new, 0 updated, 2 unchanged"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("moved from"), "{}", text.stdout);

    let url = database_url.unwrap_or("sqlite://ledger.db");
    let history = import_history(&w, url).await;
    let changes: Vec<&String> = history
        .iter()
        .filter(|(kind, _)| kind == "invoice_customer_change")
        .map(|(_, what)| what)
        .collect();
    assert_eq!(
        changes,
        ["moved.csv: invoice F00000064 moved from customer C0000001 to C0000002; 1 payment allocation(s) released (60.00)"],
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimporting_an_invoice_with_another_customer_is_refused_unless_the_move_is_asked_for() {
    moving_an_invoice_by_import(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimporting_an_invoice_with_another_customer_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("reimporting_an_invoice_with_another_customer_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    moving_an_invoice_by_import(Some(&db.url)).await;
    db.cleanup().await;
}

#[test]
fn identifiers_with_control_characters_huge_lengths_or_unassigned_countries_are_refused() {
    let w = Workspace::new();
    let mut csv = String::from("external_id;name;segment;country;city;tags\n");
    csv.push_str("C1;Un;smb;FR;Paris;a|b\n"); // 2
    csv.push_str("C\u{0}2;Deux;smb;DE;;\n"); // 3
    csv.push_str("C3;Trois\u{1b}[2J;smb;GB;;\n"); // 4
    csv.push_str(&format!("{};Quatre;smb;;;\n", "C".repeat(100 * 1024))); // 5
    csv.push_str("C5;Cinq;smb;ZZ;;\n"); // 6
    csv.push_str("C6;Six;smb;XX;;\n"); // 7
    csv.push_str(&format!("C7;{};smb;;;\n", "n".repeat(201))); // 8
    csv.push_str("C8;Huit;smb;;\"Lyon\nINFO forged\";\n"); // 9-10
    csv.push_str("C9;Neuf;smb;gb;;ok|t\u{7}\n"); // 11
    w.write("customers.csv", csv);
    let run = w.relance(&["import", "customers", "customers.csv"]);
    run.expect_code(4);
    for expected in [
        "customers.csv:3: column 'external_id': contains the control character U+0000",
        "customers.csv:4: column 'name': contains the control character U+001B",
        "customers.csv:5: column 'external_id': is 102400 characters long; at most 64 are allowed",
        "customers.csv:6: column 'country': 'ZZ' is not an assigned ISO 3166-1 alpha-2 country code",
        "customers.csv:7: column 'country': 'XX' is not an assigned ISO 3166-1 alpha-2 country code",
        "customers.csv:8: column 'name': is 201 characters long; at most 200 are allowed",
        "customers.csv:9: column 'city': contains the control character U+000A",
        "customers.csv:11: column 'tags': contains the control character U+0007",
    ] {
        assert!(run.stderr.contains(expected), "missing «{expected}» in\n{}", run.stderr);
    }
    assert!(
        run.stdout.contains("8 of 9 rows are invalid"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("INFO forged")),
        "{}",
        run.stderr
    );
    let ledger = w
        .relance(&["ledger", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    assert!(ledger.contains("\"customers\": 0"), "{ledger}");

    // Invoices and payments: numbers, ids, references.
    w.write(
        "customers.csv",
        "external_id;name;segment;country\nC1;Un;smb;FR\nC2;Deux;smb;de\n",
    );
    w.relance(&["import", "customers", "customers.csv"])
        .expect_code(0);
    w.write(
        "invoices.csv",
        format!(
            "number;customer;issue_date;due_date;amount\nF\u{1b}1;C1;2026-03-01;2026-03-31;1\n{};C1;2026-03-01;2026-03-31;1\nF3;C1;2026-03-01;2026-03-31;1\n",
            "F".repeat(65)
        ),
    );
    let run = w.relance(&["import", "invoices", "invoices.csv"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("invoices.csv:2: column 'number': contains the control character U+001B"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("invoices.csv:3: column 'number': is 65 characters long; at most 64"),
        "{}",
        run.stderr
    );
    w.write(
        "payments.csv",
        format!("id;customer;date;amount;reference\nP1;C1;2026-03-05;1;VIR\u{0}F3\nP2;C1;2026-03-05;1;{}\n", "r".repeat(2001)),
    );
    let run = w.relance(&["import", "payments", "payments.csv"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("payments.csv:2: column 'reference': contains the control character U+0000"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("payments.csv:3: column 'reference': is 2001 characters long; at most 2000"),
        "{}",
        run.stderr
    );
    // A header with a control character rejects the file.
    w.write(
        "headers.csv",
        "external_id;name;segment;\"note\nWARN forged\"\nC3;Trois;smb;x\n",
    );
    let run = w.relance(&["import", "customers", "headers.csv"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("header: column 4: contains the control character U+000A"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("warn")),
        "{}",
        run.stderr
    );
}

/// Files written on Windows end their lines with CRLF; the reader counted each CRLF's
/// `\n` in the next record, so errors named the line before the bad one.
#[test]
fn crlf_line_endings_name_the_right_line_in_errors() {
    let w = crate::helpers::workspace_with_rules_and(&[("smb", "[]")], "");
    w.write("customers.csv", "external_id;name;segment\r\nC1;Un;smb\r\n");
    w.relance(&["import", "customers", "customers.csv"])
        .expect_code(0);
    w.write(
        "invoices.csv",
        "number;customer;issue_date;due_date;amount\r\nF1;C1;2026-01-01;2026-01-31;10\r\nF2;C1;2026-01-01;2025-01-31;10\r\n\r\nF3;C1;2026-01-01;2026-01-31;1.001\r\n",
    );
    let run = w.relance(&["import", "invoices", "invoices.csv"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("invoices.csv:3: column 'due_date'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("invoices.csv:5: column 'amount'"),
        "{}",
        run.stderr
    );
}
