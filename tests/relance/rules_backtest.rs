//! `relance rules backtest`: the live script replayed over a month the service ran
//! (ticks driven across the dates with `tick --as-of`, payments arriving between them)
//! finds exactly what the action log holds; a changed script shows its difference.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::helpers::{repo, workspace_with_rules_and, Workspace};

const FROM: &str = "2026-03-02";
const TO: &str = "2026-03-31";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The shipped smb rules; 24 customers with invoices falling due over February and
/// March (some large enough for a call, some with a mobile for SMS, one disputed), and
/// payments dated through March, each imported the day after its date, before that
/// day's tick, as a bank statement would be.
fn month_of_ticks() -> Workspace {
    let shipped = std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap();
    let w = workspace_with_rules_and(&[("smb", &shipped)], "");
    let mut customers = String::from("external_id,name,segment,emails,phones\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    let mut payments: Vec<(NaiveDate, String)> = Vec::new();
    for i in 1..=24i64 {
        let c = format!("C{i:02}");
        let phone = if i % 3 == 0 { "+33612345678" } else { "" };
        customers.push_str(&format!("{c},Client {c},smb,{c}@client.example,{phone}\n"));
        for k in 0..3i64 {
            let due = d("2026-01-20") + Duration::days(i * 2 + k * 17);
            let amount = 300 + 150 * ((i + k) % 7) + if i % 5 == 0 { 1500 } else { 0 };
            let number = format!("F{i:02}{k}");
            invoices.push_str(&format!(
                "{number},{c},{},{due},{amount}.00\n",
                due - Duration::days(30)
            ));
            // Every other invoice is paid, some days after its due date.
            if (i + k) % 2 == 0 {
                let paid = due + Duration::days(5 + (i % 11) * 3);
                payments.push((
                    paid,
                    format!("P{number},{c},{paid},{amount}.00,payment,,{number}\n"),
                ));
            }
        }
    }
    w.import_ledger(&customers, &invoices);
    w.write(
        "disputes.csv",
        "invoice,reason,opened_on\nF070,price,2026-02-25\n",
    );
    w.relance(&["import", "disputes", "disputes.csv"])
        .expect_code(0);
    let header = "id,customer,date,amount,kind,currency,reference\n";
    let import_until =
        |w: &Workspace, day: NaiveDate, done: &mut usize, payments: &[(NaiveDate, String)]| {
            let batch: Vec<&String> = payments
                .iter()
                .filter(|(p, _)| *p < day)
                .map(|(_, row)| row)
                .skip(*done)
                .collect();
            if batch.is_empty() {
                return;
            }
            *done += batch.len();
            let mut csv = header.to_string();
            for row in batch {
                csv.push_str(row);
            }
            w.write("payments.csv", csv);
            w.relance(&["import", "payments", "payments.csv"])
                .expect_code(0);
        };
    payments.sort();
    let mut done = 0;
    let mut day = d(FROM);
    while day <= d(TO) {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            import_until(&w, day, &mut done, &payments);
            w.relance(&["tick", "--as-of", &day.to_string()])
                .expect_code(0);
            w.relance(&["dispatch"]).expect_code(0);
        }
        day += Duration::days(1);
    }
    w
}

#[test]
fn replaying_the_live_script_over_the_month_it_ran_finds_the_action_log() {
    let w = month_of_ticks();
    let run = w.relance(&[
        "rules",
        "backtest",
        "--segment",
        "smb",
        "--script",
        "live",
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let b: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        b["ticks"].as_array().unwrap().len(),
        22,
        "business days of March"
    );
    assert!(b["live"]["actions"].as_u64().unwrap() > 30, "{b}");
    for s in b["steps"].as_array().unwrap() {
        assert_eq!(s["replay"], s["live"], "{s}\n{b:#}");
    }
    for field in [
        "actions",
        "contacts",
        "customers_contacted",
        "formal_notices",
        "insurer_handovers",
        "wasted_contacts",
        "amounts",
    ] {
        assert_eq!(b["replay"][field], b["live"][field], "{field}\n{b:#}");
    }
    assert_eq!(b["errors"], 0);

    // A script that waits for 60 days before the formal notice sends fewer of them.
    let shipped = std::fs::read_to_string(w.path("rules/smb.rhai")).unwrap();
    w.write(
        "later.rhai",
        shipped.replace(
            "formal_notice(open.overdue(45)",
            "formal_notice(open.overdue(60)",
        ),
    );
    let run = w.relance(&[
        "rules",
        "backtest",
        "--segment",
        "smb",
        "--script",
        "later.rhai",
        "--from",
        FROM,
        "--to",
        TO,
    ]);
    run.expect_code(0);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("formal notices"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (replay, live): (i64, i64) = (cols[2].parse().unwrap(), cols[3].parse().unwrap());
    assert!(replay < live, "{}", run.stdout);
    assert!(run.stdout.contains("nothing was written or sent"));

    let run = w.relance(&[
        "rules",
        "backtest",
        "--segment",
        "smb",
        "--script",
        "live",
        "--from",
        TO,
        "--to",
        FROM,
    ]);
    run.expect_code(2);
}
