//! Rule scripts checked before they run: names the rule API does not know (with the
//! nearest one), option values, numbers compared with quoted text, and scripts that
//! fail on sample customers, in `rules check`, `rules test` and reloads of `serve`.

use crate::helpers::{repo, workspace_with_rules_and};

/// The shipped SMB rule with `from` replaced by `to`.
fn shipped_smb_with(from: &str, to: &str) -> String {
    let source = std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap();
    assert!(source.contains(from), "{from}");
    source.replacen(from, to, 1)
}

#[test]
fn rules_check_fails_on_each_typo_naming_the_line_and_the_nearest_name() {
    let cases = [
        (
            "customer.days_to_insurer_deadline",
            "customer.days_to_insurer_dedline",
            "rules/smb.rhai:21:25: 'days_to_insurer_dedline' is not a property of the rule API (did you mean 'days_to_insurer_deadline'?)",
        ),
        (
            "email(\"reminder_1\"",
            "emial(\"reminder_1\"",
            "rules/smb.rhai:25:5: 'emial' is not a function of the rule API (did you mean 'email'?)",
        ),
        (
            "open.overdue_between(3, 14)",
            "open.overdue_betwen(3, 14)",
            "rules/smb.rhai:25:30: 'overdue_betwen' is not a function of the rule API (did you mean 'overdue_between'?)",
        ),
        (
            "priority: priority",
            "priorty: priority",
            "rules/smb.rhai:30:53: call_task: 'priorty' is not an option of call_task (did you mean 'priority'?)",
        ),
        (
            "priority: \"high\", due_in_days: 1",
            "priority: \"very high\", due_in_days: 1",
            "rules/smb.rhai:33:98: call_task: option 'priority' must be \"low\", \"normal\", \"high\" or \"urgent\"",
        ),
        (
            "balance >= 2000",
            "balance >= \"2000\"",
            "rules/smb.rhai:28:16: compares balance (a number, an amount or a date) with the text \"2000\": such a comparison is always false; write 2000 without quotes",
        ),
    ];
    for (from, to, want) in cases {
        let w = workspace_with_rules_and(&[("smb", &shipped_smb_with(from, to))], "");
        let run = w.relance(&["rules", "check"]);
        assert_eq!(run.code, 4, "{to}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(want), "{to}: {}", run.stderr);
        // The line and a caret under the place.
        assert!(run.stderr.contains(" | "), "{}", run.stderr);
        assert!(
            run.stderr.contains("1 script with errors"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    }
}

#[test]
fn rules_check_runs_each_script_on_sample_customers_and_names_the_one_it_fails_for() {
    // Compiles, uses only known names, and fails on any customer with no history.
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "let first = customer.history[0];\nemail(\"reminder_1\", customer.dunnable.overdue(1))",
        )],
        "",
    );
    let run = w.relance(&["rules", "check"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("rules/smb.rhai:1:30: Array index 0 out of bounds"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the script fails for sample customer C")
            && run.stderr.contains("the facts it saw: {\"today\""),
        "{}",
        run.stderr
    );
    // Its templates are not rendered with a script that failed: no cascade of errors.
    assert_eq!(
        run.stderr.matches("Array index").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn rules_check_tries_a_script_on_the_real_customers_of_its_segment() {
    // Fails only for a customer named as no sample customer is.
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "if customer.name == \"Zeta Réelle SARL\" { throw \"this one breaks\"; }\nemail(\"reminder_1\", customer.dunnable.overdue(1))",
        )],
        "",
    );
    w.relance(&["rules", "check"]).expect_code(0);
    w.import_ledger(
        "external_id,name,segment,emails\nZ1,Zeta Réelle SARL,smb,z@zeta.example\n",
        "number,customer,issue_date,due_date,amount\nZF1,Z1,2026-01-01,2026-01-31,10.00\n",
    );
    let run = w.relance(&["rules", "check"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("this one breaks")
            && run.stderr.contains("the script fails for customer Z1"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_shipped_rules_pass_the_checks() {
    let w = workspace_with_rules_and(
        &[
            (
                "smb",
                &std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap(),
            ),
            (
                "key_accounts",
                &std::fs::read_to_string(repo().join("rules/key_accounts.rhai")).unwrap(),
            ),
            (
                "public_sector",
                &std::fs::read_to_string(repo().join("rules/public_sector.rhai")).unwrap(),
            ),
        ],
        "",
    );
    let run = w.relance(&["rules", "check"]);
    run.expect_code(0);
    assert!(run.stdout.contains("ran for "), "{}", run.stdout);
}

#[test]
fn rules_test_reports_a_script_that_does_not_compile_once() {
    let w = workspace_with_rules_and(&[("smb", "email(\"reminder_1\", customer.dunnable")], "");
    w.write(
        "rules/smb.test.yaml",
        "cases:\n  - name: one\n    today: 2026-03-02\n    invoices:\n      - { number: F1, due: 2026-02-25, amount: 10.00 }\n    expect: []\n  - name: two\n    today: 2026-03-02\n    invoices:\n      - { number: F1, due: 2026-02-25, amount: 10.00 }\n    expect: []\n",
    );
    let run = w.relance(&["rules", "test"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr.matches("rules/smb.rhai:1:").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout.matches("FAIL").count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("not run: rules/smb.rhai has errors"),
        "{}",
        run.stdout
    );
}

#[test]
fn serve_refuses_a_reload_with_a_typo_or_that_fails_on_sample_customers() {
    let good = "email(\"reminder_1\", customer.dunnable.overdue(1))";
    let w = workspace_with_rules_and(&[("smb", good)], "");
    let service = w.launch();
    service.wait_for_line(&["is tried on these customers before it is swapped in"]);

    w.write(
        "rules/smb.rhai",
        "email(\"reminder_1\", customer.dunnable.overdue_betwen(1, 5))",
    );
    let line = service.wait_for_line(&["rule script rejected", "overdue_betwen"]);
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("did you mean 'overdue_between'"), "{line}");

    w.write(
        "rules/smb.rhai",
        "let first = customer.history[0];\nemail(\"reminder_1\", customer.dunnable.overdue(1))",
    );
    let line = service.wait_for_line(&["rule script rejected", "Array index 0"]);
    assert!(
        line.contains("the previous version keeps running"),
        "{line}"
    );

    let log = service.stop();
    assert!(!log.contains("rule script reloaded"), "{log}");
}

/// Regression: an option set to a fact the customer does not have
/// (`assignee: customer.collector` for a customer without a collector) failed the rule
/// for that customer. An option set to `()` is an option not given.
#[test]
fn an_option_set_to_a_missing_fact_is_an_option_not_given() {
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "call_task(\"call\", customer.dunnable.overdue(1), #{ assignee: customer.collector, priority: \"high\" })",
        )],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,phones,collector\nC1,Un,smb,+33612345678,\nC2,Deux,smb,+33612345679,claire\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,10.00\nF2,C2,2026-01-01,2026-01-31,10.00\n",
    );
    let run = w.relance(&["simulate", "--as-of", "2026-03-02", "--format", "json"]);
    run.expect_code(0);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for l in &lines {
        assert_eq!(l["status"], "planned", "{l}");
    }
    let c2 = lines.iter().find(|l| l["customer"] == "C2").unwrap();
    assert_eq!(c2["options"]["assignee"], "claire", "{c2}");
    let c1 = lines.iter().find(|l| l["customer"] == "C1").unwrap();
    assert!(c1["options"].get("assignee").is_none(), "{c1}");
}

/// `customer.overdue_total` counts disputed invoices; `customer.dunnable
/// .overdue_total()` only those dunning may act on.
#[test]
fn dunnable_totals_leave_out_disputed_invoices() {
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "let open = customer.dunnable;\nif open.overdue_total() >= 1000 { call_task(\"large balance\", open.overdue(1)) }",
        )],
        "",
    );
    w.write(
        "rules/smb.test.yaml",
        "cases:\n  - name: a large disputed invoice does not count\n    today: 2026-03-02\n    invoices:\n      - { number: F1, due: 2026-02-20, amount: 800.00 }\n      - { number: F2, due: 2026-02-10, amount: 2500.00, disputed: \"wrong quantity\" }\n      - { number: F3, due: 2026-03-20, amount: 900.00 }\n    expect: []\n  - name: undisputed, it does\n    today: 2026-03-02\n    invoices:\n      - { number: F1, due: 2026-02-20, amount: 800.00 }\n      - { number: F2, due: 2026-02-10, amount: 2500.00 }\n    expect:\n      - { kind: call_task, invoices: [F1, F2] }\n",
    );
    let run = w.relance(&["rules", "test"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2 passed, 0 failed"), "{}", run.stdout);
}
