//! Retention: `relance prune` removes facts snapshots and copies of messages past their
//! time and keeps the evidence (actions, statuses, SHA-256); `relance erase` removes a
//! customer's personal data and keeps its accounting records.

use serde_json::Value;

use crate::documents::{actions, notice_workspace, show};
use crate::helpers::Workspace;

const RULE: &str =
    "email(\"reminder_1\", customer.dunnable.overdue(1), #{ attachments: [\"statement\"] })";

/// Two customers, each sent a reminder with its account statement (to the outbox
/// folder: no SMTP server is configured).
fn dunned(database_url: &str) -> Workspace {
    let w = notice_workspace(
        database_url,
        RULE,
        "retention:\n  facts_days: 30\n  messages_days: 30\n",
    );
    w.write(
        "c2.csv",
        "external_id,name,segment,emails\nC2,Deux SARL,smb,deux@client.example\n",
    );
    w.write(
        "f2.csv",
        "number,customer,issue_date,due_date,amount\nF-C,C2,2026-11-20,2026-12-20,800.00\n",
    );
    w.relance(&["import", "customers", "c2.csv"]).expect_code(0);
    w.relance(&["import", "invoices", "f2.csv"]).expect_code(0);
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    w
}

fn outbox_emails(w: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path("outbox/email"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn json(w: &Workspace, args: &[&str]) -> Value {
    let run = w.relance(args);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn prune_removes_facts_and_copies_of_messages_past_their_time_and_keeps_the_evidence() {
    let w = dunned("sqlite://ledger.db");
    let sent = actions(&w, "email");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let id = sent[0]["id"].as_i64().unwrap();
    let before = show(&w, id);
    assert!(before["facts"].is_object(), "{before}");
    assert_eq!(before["documents"][0]["kind"], "statement", "{before}");
    assert_eq!(outbox_emails(&w).len(), 2);

    // Today nothing is past 30 days.
    let now = json(&w, &["prune", "--dry-run", "--format", "json"]);
    assert_eq!(now["facts_snapshots"], 0, "{now}");
    assert_eq!(now["documents"], 0, "{now}");
    assert_eq!(now["outbox_files"], 0, "{now}");

    // Sixty days on: counted by a dry run, which removes nothing.
    let later = (chrono::Utc::now().date_naive() + chrono::Duration::days(60)).to_string();
    let dry = json(
        &w,
        &["prune", "--dry-run", "--as-of", &later, "--format", "json"],
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["facts_snapshots"], 2, "{dry}");
    assert_eq!(dry["documents"], 2, "{dry}");
    assert_eq!(dry["formal_notices"], 0, "{dry}");
    // Each message and its attachment.
    assert_eq!(dry["outbox_files"], 4, "{dry}");
    assert!(show(&w, id)["facts"].is_object());
    assert_eq!(outbox_emails(&w).len(), 2);

    let done = json(&w, &["prune", "--as-of", &later, "--format", "json"]);
    assert_eq!(done["facts_snapshots"], 2, "{done}");
    assert_eq!(done["documents"], 2, "{done}");
    assert_eq!(done["outbox_files"], 4, "{done}");
    // The evidence stays: the action, its status and attempts, its documents' SHA-256.
    let after = show(&w, id);
    assert!(after["facts"].is_null(), "{after}");
    assert_eq!(after["status"], before["status"], "{after}");
    assert_eq!(after["events"], before["events"], "{after}");
    assert_eq!(
        after["documents"][0]["sha256"],
        before["documents"][0]["sha256"]
    );
    assert!(after["documents"][0]["pruned_at"].is_string(), "{after}");
    assert!(outbox_emails(&w).is_empty());
    let fetch = w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "-o",
        w.path("statement.pdf").to_str().unwrap(),
    ]);
    assert_ne!(fetch.code, 0);
    assert!(fetch.stderr.contains("was removed on"), "{}", fetch.stderr);
    let text = w.relance(&["actions", "show", &id.to_string()]);
    text.expect_code(0);
    assert!(!text.stdout.contains("panicked"));
    // Nothing left to remove.
    let again = json(&w, &["prune", "--as-of", &later, "--format", "json"]);
    assert_eq!(again["facts_snapshots"], 0, "{again}");
    assert_eq!(again["documents"], 0, "{again}");
}

#[test]
fn erasing_a_customer_keeps_its_accounting_records_and_stops_its_dunning() {
    let w = dunned("sqlite://ledger.db");
    let refused = w.relance(&["erase", "C1"]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let unknown = w.relance(&["erase", "C404", "--yes"]);
    unknown.expect_code(4);
    assert!(
        unknown
            .stderr
            .contains("no customer with external id 'C404'"),
        "{}",
        unknown.stderr
    );
    let c1_actions: Vec<i64> = actions(&w, "email")
        .iter()
        .filter(|a| a["customer"] == "C1")
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(c1_actions.len(), 1);

    let erased = json(
        &w,
        &[
            "erase",
            "C1",
            "--yes",
            "--by",
            "DPO request 7",
            "--format",
            "json",
        ],
    );
    assert_eq!(erased["customer"], "C1");
    assert_eq!(erased["documents"], 1, "{erased}");
    // The message and its attachment.
    assert_eq!(erased["outbox_files"], 2, "{erased}");

    let c1 = json(&w, &["customer", "C1", "--format", "json"]);
    let text = c1.to_string();
    assert!(!text.contains("compta@un.example"), "{text}");
    assert!(!text.contains("77 rue de la R"), "{text}");
    // The accounting records stay: name, invoices, payment.
    assert!(text.contains("Menuiserie Un"), "{text}");
    assert!(
        text.contains("F-A") && text.contains("F-B") && text.contains("P1"),
        "{text}"
    );
    assert!(text.contains("personal data erased on request"), "{text}");
    // C2's copy stays, C1's went.
    let files = outbox_emails(&w);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("-C2.eml"), "{files:?}");
    let detail = show(&w, c1_actions[0]);
    assert!(detail["facts"].is_null(), "{detail}");
    assert_eq!(detail["status"], "sent");

    // Dunning stops for good: a later tick plans nothing more for C1.
    w.relance(&["tick", "--as-of", "2027-02-20"]).expect_code(0);
    let c1_after = actions(&w, "email")
        .iter()
        .filter(|a| a["customer"] == "C1")
        .count();
    assert_eq!(c1_after, 1);
}

#[tokio::test]
async fn prune_and_erase_on_postgres() {
    let Some(admin) = crate::helpers::postgres_admin_url() else {
        return crate::helpers::say_postgres_skipped("prune_and_erase_on_postgres");
    };
    let db = crate::helpers::TestDb::postgres(&admin).await;
    let w = dunned(&db.url);
    let later = (chrono::Utc::now().date_naive() + chrono::Duration::days(60)).to_string();
    let done = json(&w, &["prune", "--as-of", &later, "--format", "json"]);
    assert_eq!(done["facts_snapshots"], 2, "{done}");
    assert_eq!(done["documents"], 2, "{done}");
    let erased = json(&w, &["erase", "C2", "--yes", "--format", "json"]);
    assert_eq!(erased["customer"], "C2");
    let c2 = json(&w, &["customer", "C2", "--format", "json"]).to_string();
    assert!(!c2.contains("deux@client.example"), "{c2}");
    db.cleanup().await;
}
