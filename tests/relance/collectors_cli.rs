//! Disputes, pauses and promises to pay recorded from the command line, with the
//! checks of the HTTP API, and seen by the rules at once.

use crate::helpers::workspace_with_rules_and;

#[test]
fn a_collector_records_disputes_pauses_and_promises_from_the_command_line() {
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.invoices.overdue(1))")],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,c1@un.example\nC2,Deux SAS,smb,c2@deux.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,100.00\nF2,C1,2026-01-01,2026-02-10,50.00\nF3,C2,2026-01-01,2026-01-31,70.00\n",
    );
    let run = w.relance(&["dispute", "open", "F1", "--reason", "goods returned"]);
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), "invoice F1: disputed (goods returned)");
    w.relance(&["pause", "--invoice", "F2", "--reason", "credit note coming"])
        .expect_code(0);
    let run = w.relance(&[
        "promise",
        "add",
        "--customer",
        "C2",
        "--date",
        "2026-03-10",
        "--amount",
        "70",
    ]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("customer C2 pays 70.00 EUR by 2026-03-10"),
        "{}",
        run.stdout
    );

    let sim = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    assert!(
        sim.stdout.contains("F1: disputed: goods returned"),
        "{}",
        sim.stdout
    );
    assert!(
        sim.stdout.contains("F2: paused: credit note coming"),
        "{}",
        sim.stdout
    );
    assert!(
        sim.stdout.contains("F3: promise to pay by 2026-03-10"),
        "{}",
        sim.stdout
    );
    assert!(!sim.stdout.contains("\"planned\""), "{}", sim.stdout);

    // Lifted: dunned again.
    w.relance(&["dispute", "resolve", "F1"]).expect_code(0);
    w.relance(&["unpause", "--invoice", "F2"]).expect_code(0);
    let sim = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    assert!(sim.stdout.contains("\"planned\""), "{}", sim.stdout);

    // The API's checks, in the command line's words.
    for (args, want) in [
        (
            vec!["dispute", "open", "F9", "--reason", "x"],
            "invoice 'F9' not found",
        ),
        (
            vec!["dispute", "open", "F1", "--reason", " "],
            "--reason: must not be empty",
        ),
        (
            vec![
                "pause",
                "--customer",
                "C1",
                "--reason",
                "x",
                "--until",
                "2020-01-01",
            ],
            "--until: 2020-01-01 is in the past",
        ),
        (
            vec![
                "promise",
                "add",
                "--customer",
                "C1",
                "--date",
                "2026-03-10",
                "--amount",
                "5",
                "--invoice",
                "F3",
            ],
            "--invoice: invoice 'F3' is not C1's",
        ),
        (
            vec![
                "promise",
                "add",
                "--customer",
                "C9",
                "--date",
                "2026-03-10",
                "--amount",
                "5",
            ],
            "--customer: unknown customer 'C9'",
        ),
    ] {
        let run = w.relance(&args);
        assert_eq!(run.code, 4, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn disputes_and_promises_are_imported_from_csv_checked_and_never_twice() {
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.invoices.overdue(1))")],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,c1@un.example\nC2,Deux SAS,smb,c2@deux.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,100.00\nF2,C1,2026-01-01,2026-02-10,50.00\nF3,C2,2026-01-01,2026-01-31,70.00\n",
    );
    w.write("disputes.csv", "invoice,reason\nF1,goods returned\n");
    let run = w.relance(&["import", "disputes", "disputes.csv"]);
    run.expect_code(0);
    assert!(run.stdout.contains("1 updated"), "{}", run.stdout);
    w.write(
        "promises.csv",
        "customer,promised_date,amount,invoices,note\nC2,2026-03-10,70.00,F3,by transfer\n",
    );
    let run = w.relance(&["import", "promises", "promises.csv"]);
    run.expect_code(0);
    assert!(run.stdout.contains("1 new"), "{}", run.stdout);
    // Imported again: nothing changes, no promise twice.
    let again = w.relance(&["import", "promises", "promises.csv"]);
    assert!(
        again.stdout.contains("0 new, 0 updated, 1 unchanged"),
        "{}",
        again.stdout
    );
    let again = w.relance(&["import", "disputes", "disputes.csv"]);
    assert!(again.stdout.contains("1 unchanged"), "{}", again.stdout);
    let c2 = w.relance(&["customer", "C2", "--format", "json"]);
    let c2: serde_json::Value = serde_json::from_str(&c2.stdout).unwrap();
    assert_eq!(c2["promises"].as_array().unwrap().len(), 1, "{c2}");

    let sim = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    assert!(
        sim.stdout.contains("F1: disputed: goods returned"),
        "{}",
        sim.stdout
    );
    assert!(
        sim.stdout.contains("F3: promise to pay by 2026-03-10"),
        "{}",
        sim.stdout
    );

    // Bad rows: named by line and column, nothing written.
    w.write(
        "bad.csv",
        "customer,promised_date,amount,invoices\nC1,2026-03-10,10,F3\nC9,2026-03-10,10,\nC1,2026-03-10,-4,\n",
    );
    let bad = w.relance(&["import", "promises", "bad.csv"]);
    assert_eq!(bad.code, 4, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("bad.csv:2: column 'invoices': invoice 'F3' is not C1's"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .contains("bad.csv:3: column 'customer': unknown customer 'C9'"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .contains("bad.csv:4: column 'amount': must be positive"),
        "{}",
        bad.stderr
    );
    let c1 = w.relance(&["customer", "C1", "--format", "json"]);
    let c1: serde_json::Value = serde_json::from_str(&c1.stdout).unwrap();
    assert_eq!(c1["promises"].as_array().unwrap().len(), 0, "{c1}");
    // A dispute resolved by file.
    w.write(
        "resolved.csv",
        "invoice,reason,status\nF1,credit note issued,resolved\n",
    );
    w.relance(&["import", "disputes", "resolved.csv"])
        .expect_code(0);
    let sim = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    assert!(!sim.stdout.contains("F1: disputed"), "{}", sim.stdout);
}
