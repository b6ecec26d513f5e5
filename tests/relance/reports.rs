//! `relance report deadlines`: insured invoices nearing their declaration deadline.

use crate::helpers::workspace_with_rules_and;

#[test]
fn deadlines_list_insured_invoices_not_handed_over_soonest_first() {
    // The insurer in the test configuration (coface-fr) must hear of an overdue within
    // 90 days of the due date; the rule hands over invoices 90 days late.
    let w = workspace_with_rules_and(
        &[("smb", "insurer_handover(customer.dunnable.overdue(90))")],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails,insured,insurer_policy\n\
         C1,Un SARL,smb,a@un.example,true,coface-fr\n\
         C2,Deux SA,smb,b@deux.example,false,\n",
        "number,customer,issue_date,due_date,amount\n\
         A1,C1,2026-01-01,2026-01-31,1000.00\n\
         A2,C1,2026-01-01,2026-01-20,400.00\n\
         A3,C1,2026-01-01,2026-02-20,250.00\n\
         A4,C1,2026-03-01,2026-05-30,90.00\n\
         B1,C2,2026-01-01,2026-01-31,700.00\n",
    );
    // A2 is 90 days late on 2026-04-20: handed over.
    w.relance(&["tick", "--as-of", "2026-04-20"]).expect_code(0);

    let run = w.relance(&[
        "report",
        "deadlines",
        "--as-of",
        "2026-04-20",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let rows: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, i64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["invoice"].as_str().unwrap(),
                r["days_left"].as_i64().unwrap(),
                r["deadline"].as_str().unwrap(),
            )
        })
        .collect();
    // A2 handed over, A4 not overdue, B1 not insured; A3's deadline is beyond 30 days.
    assert_eq!(got, [("A1", 11, "2026-05-01")]);
    assert_eq!(rows[0]["insurer"], "coface-fr");
    assert_eq!(rows[0]["open_amount"], "1000.00");

    let wide = w.relance(&[
        "report",
        "deadlines",
        "--as-of",
        "2026-04-20",
        "--within",
        "60",
    ]);
    wide.expect_code(0);
    let lines: Vec<&str> = wide.stdout.lines().collect();
    assert!(lines[0].starts_with("DAYS LEFT"), "{}", wide.stdout);
    assert!(
        lines[1].contains("A1") && lines[2].contains("A3"),
        "{}",
        wide.stdout
    );
    assert!(lines[2].trim_start().starts_with("31"), "{}", wide.stdout);

    // Past the deadline the days left are negative.
    let late = w.relance(&[
        "report",
        "deadlines",
        "--as-of",
        "2026-05-04",
        "--format",
        "json",
    ]);
    assert!(late.stdout.contains("\"days_left\":-3"), "{}", late.stdout);
}
