//! `relance explain` and `GET /v1/customers/{id}/explain`: why an action was taken,
//! and why one was not: the condition, its line, and the values it compared.

use crate::helpers::workspace_with_rules_and;

const RULE: &str = r#"let open = customer.dunnable;
let balance = open.overdue(1).total();
print(`balance ${balance}`);
[
    email("reminder_1", open.overdue(1)),
    if balance >= 2000 {
        formal_notice(open.overdue(30), #{ deadline_days: 8 })
    },
    call_task("call", open.overdue(60)),
]
"#;

fn workspace() -> crate::helpers::Workspace {
    let w = workspace_with_rules_and(&[("smb", RULE)], "");
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,c1@un.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-20,1000.00\nF2,C1,2026-01-01,2026-02-10,500.00\nF3,C1,2026-01-01,2026-03-20,700.00\n",
    );
    w
}

#[test]
fn explain_names_the_condition_that_kept_the_formal_notice_from_firing() {
    let w = workspace();
    let run = w.relance(&["explain", "C1", "--as-of", "2026-03-02"]);
    run.expect_code(0);
    let out = &run.stdout;
    // The facts, every property.
    assert!(out.contains("overdue_total             1500.00"), "{out}");
    assert!(out.contains("has_mobile"), "{out}");
    assert!(out.contains("days_to_insurer_deadline"), "{out}");
    // The condition, its line, the values compared, the outcome.
    assert!(
        out.contains("line   6: if balance >= 2000 {\n            1500.00 >= 2000 -> false"),
        "{out}"
    );
    // What was built, and what named no invoice.
    assert!(
        out.contains("line   5: email            names F1, F2"),
        "{out}"
    );
    assert!(
        out.contains("line   9: call_task        names no invoice: dropped"),
        "{out}"
    );
    assert!(out.contains("reminder_1       F1, F2"), "{out}");
    assert!(out.contains("planned"), "{out}");
    assert!(out.contains("print: balance 1500"), "{out}");

    // Over the threshold a week later: the condition holds, the notice is built.
    w.write(
        "more.csv",
        "number,customer,issue_date,due_date,amount\nF4,C1,2026-01-01,2026-01-25,800.00\n",
    );
    w.relance(&["import", "invoices", "more.csv"])
        .expect_code(0);
    let json = w.relance(&["explain", "C1", "--as-of", "2026-03-02", "--format", "json"]);
    json.expect_code(0);
    let x: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let cond = &x["conditions"][0];
    assert_eq!(cond["line"], 6, "{x}");
    assert_eq!(cond["evaluated"], "2300.00 >= 2000", "{x}");
    assert_eq!(cond["outcome"], true, "{x}");
    let notice = x["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["constructor"] == "formal_notice")
        .unwrap();
    assert_eq!(notice["invoices"], serde_json::json!(["F1", "F4"]), "{x}");
    assert!(
        x["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "formal_notice" && d["status"] == "planned"),
        "{x}"
    );
}

#[test]
fn explain_refuses_an_unknown_customer() {
    let w = workspace();
    let run = w.relance(&["explain", "C9"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("no customer with external id 'C9'"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_explains_a_customer_as_the_command_line_does() {
    let w = workspace();
    let token = w.token("reader", "read");
    let service = w.launch();
    // The service's first tick plans actions: compare once it is done.
    service.wait_for_line(&["tick done", "segment=smb"]);
    let client = reqwest::Client::new();
    let r = client
        .get(format!(
            "{}/v1/customers/C1/explain?as_of=2026-03-02",
            service.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let api: serde_json::Value = r.json().await.unwrap();
    let cli = w.relance(&["explain", "C1", "--as-of", "2026-03-02", "--format", "json"]);
    let cli: serde_json::Value = serde_json::from_str(&cli.stdout).unwrap();
    assert_eq!(api, cli);
    assert_eq!(api["conditions"][0]["evaluated"], "1500.00 >= 2000");
    // The reminder the tick planned is already done.
    assert_eq!(api["decisions"][0]["status"], "already-done", "{api}");
    let missing = client
        .get(format!("{}/v1/customers/C9/explain", service.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    service.stop();
}

/// Regression: `actions show` lacked facts the rule read (`has_mobile`,
/// `days_to_insurer_deadline`), so "why was this sent?" could not be answered for a
/// rule testing them.
#[test]
fn actions_show_lists_the_channel_and_deadline_facts_the_rule_read() {
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "if customer.has_mobile { sms(\"sms_reminder\", customer.dunnable.overdue(1)) }",
        )],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,phones,insurer_policy\nC1,Un,smb,+33612345678,coface-fr\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,10.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let show = w.relance(&["actions", "show", "1"]);
    show.expect_code(0);
    assert!(
        show.stdout.contains("\"has_mobile\":true"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("\"has_email\":false"),
        "{}",
        show.stdout
    );
    // Covered by coface-fr, 90 days after the due date: 60 days left on 2 March.
    assert!(
        show.stdout.contains("\"days_to_insurer_deadline\":60"),
        "{}",
        show.stdout
    );
}

#[test]
fn explain_says_when_a_planned_action_would_wait_for_the_contact_budget() {
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        "dispatch:\n  contact_budget: { max_contacts: 1, per_days: 7 }\n",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un,smb,c1@un.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,10.00\n",
    );
    let today = chrono::Utc::now().date_naive().to_string();
    w.relance(&["tick", "--as-of", &today]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    // A new late invoice: its reminder is planned, and the budget is spent.
    w.write(
        "more.csv",
        "number,customer,issue_date,due_date,amount\nF2,C1,2026-01-01,2026-02-10,20.00\n",
    );
    w.relance(&["import", "invoices", "more.csv"])
        .expect_code(0);
    let run = w.relance(&["explain", "C1"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("email reminder_1: would wait until ")
            && run
                .stdout
                .contains("(contact budget reached: 1 contacts in the last 7 days)"),
        "{}",
        run.stdout
    );
}
