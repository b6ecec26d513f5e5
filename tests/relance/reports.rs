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

#[test]
fn handed_over_invoices_leave_the_dunning_ladder() {
    let rule = "let open = customer.dunnable; [\
        email(\"reminder_1\", open.overdue(1), #{ repeat_after_days: 7 }),\
        insurer_handover(open.overdue(60)),\
    ]";
    let w = workspace_with_rules_and(&[("smb", rule)], "");
    w.import_ledger(
        "external_id,name,segment,emails,insured,insurer_policy\nC1,Un SARL,smb,a@un.example,true,coface-fr\n",
        "number,customer,issue_date,due_date,amount\nH1,C1,2026-01-01,2026-01-31,1000.00\nH2,C1,2026-02-01,2026-03-20,300.00\n",
    );
    // 2026-04-01: one reminder for H1 (60 days late) and H2 (12 days), and H1's handover.
    let first = w.relance(&["tick", "--as-of", "2026-04-01"]);
    assert!(
        first.stdout.contains("2 new planned actions"),
        "{}",
        first.stdout
    );
    // A week later the reminder repeats for H2 only: H1 is the insurer's now.
    let later = w.relance(&["tick", "--as-of", "2026-04-09"]);
    assert!(
        later.stdout.contains("1 new planned actions"),
        "{}",
        later.stdout
    );
    let actions: Vec<serde_json::Value> = w
        .relance(&["actions", "list", "--format", "json"])
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<String> = actions
        .iter()
        .map(|a| format!("{} {}", a["step"].as_str().unwrap(), a["invoices"]))
        .collect();
    assert_eq!(
        steps,
        [
            "reminder_1 [\"H1\",\"H2\"]",
            "insurer_handover [\"H1\"]",
            "reminder_1 [\"H2\"]"
        ]
    );
    // The facts behind the last reminder say why H1 was left out.
    let shown: serde_json::Value = serde_json::from_str(
        &w.relance(&["actions", "show", "3", "--format", "json"])
            .stdout,
    )
    .unwrap();
    let h1 = shown["facts"]["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "H1")
        .unwrap()
        .clone();
    assert_eq!(
        h1["blocked"],
        "handed over to the credit insurer on 2026-04-01"
    );
    // And the deadlines report no longer lists it.
    let report = w.relance(&[
        "report",
        "deadlines",
        "--as-of",
        "2026-04-09",
        "--format",
        "json",
    ]);
    assert!(!report.stdout.contains("\"H1\""), "{}", report.stdout);
}
