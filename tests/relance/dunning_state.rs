//! The dunning state kept beside the action log (the steps applied to each open invoice,
//! the contacts of each customer): maintained as actions are recorded, delivered,
//! cancelled and retried and as invoices close and reopen, it must always be what
//! folding the whole log gives, and the rules must decide from it what they decided
//! from the log.

use crate::helpers::{postgres_admin_url, say_postgres_skipped, workspace_with_rules_and, TestDb};

/// A ladder with a repeated step, so that days accumulate on one row.
const RULE: &str = r#"
let open = customer.dunnable;
[
    email("reminder_1", open.overdue(1), #{ step: "weekly", repeat_after_days: 7 }),
    call_task("call", open.overdue(30)),
]
"#;

/// The state as the migration folds it from the log, and as it is stored.
async fn stored_and_folded(url: &str) -> [Vec<Vec<Option<String>>>; 4] {
    let folded_steps = if url.starts_with("postgres") {
        "SELECT i.number, a.step, CAST(i.customer_id AS TEXT), (array_agg(a.kind ORDER BY a.id))[1], CAST(MIN(a.id) AS TEXT), \
         string_agg(CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || to_char(a.decided_on, 'YYYY-MM-DD'), ' ' ORDER BY a.id) \
         FROM invoices i JOIN actions a ON a.customer_id = i.customer_id \
         CROSS JOIN LATERAL jsonb_array_elements_text(a.invoice_numbers::jsonb) AS j (invoice) \
         WHERE i.status = 'open' AND j.invoice = i.number AND a.status NOT IN ('cancelled', 'blocked', 'duplicate') \
         GROUP BY i.customer_id, i.number, a.step ORDER BY 1, 2"
    } else {
        "SELECT i.number, a.step, CAST(i.customer_id AS TEXT), a.kind, CAST(MIN(a.id) AS TEXT), \
         group_concat(CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || a.decided_on, ' ' ORDER BY a.id) \
         FROM invoices i JOIN actions a ON a.customer_id = i.customer_id JOIN json_each(a.invoice_numbers) j ON j.value = i.number \
         WHERE i.status = 'open' AND a.status NOT IN ('cancelled', 'blocked', 'duplicate') \
         GROUP BY i.customer_id, i.number, a.step ORDER BY 1, 2"
    };
    let stored_steps = "SELECT invoice, step, CAST(customer_id AS TEXT), kind, CAST(first_action AS TEXT), applied FROM invoice_steps ORDER BY 1, 2";
    let folded_contacts = "SELECT CAST(a.customer_id AS TEXT), a.kind, CAST(a.id AS TEXT) FROM action_events e JOIN actions a ON a.id = e.action_id WHERE e.status = 'sent' ORDER BY a.id";
    let stored_contacts = "SELECT CAST(k.customer_id AS TEXT), k.kind, CAST(k.action_id AS TEXT) FROM contacts k ORDER BY k.action_id";
    let mut out: [Vec<Vec<Option<String>>>; 4] = Default::default();
    for (i, sql) in [stored_steps, folded_steps, stored_contacts, folded_contacts]
        .iter()
        .enumerate()
    {
        out[i] = crate::store_story::raw_sql(url, &[sql]).await.unwrap();
    }
    out
}

async fn state_story(url: &str) {
    let w = workspace_with_rules_and(&[("smb", RULE)], "");
    let db = ["--database-url", url];
    let run = |args: &[&str]| {
        let all: Vec<&str> = db.iter().chain(args).copied().collect();
        w.relance(&all).expect_code(0).stdout.clone()
    };
    w.write(
        "customers.csv",
        "external_id,name,emails,segment\nC1,Un SARL,a@un.example,smb\nC2,Deux SAS,b@deux.example,smb\nC3,Trois SA,c@trois.example,smb\n",
    );
    w.write(
        "invoices.csv",
        "number,customer,issue_date,due_date,amount,open_amount,currency\n\
         F-1,C1,2026-09-01,2026-10-01,100.00,100.00,EUR\n\
         F-2,C1,2026-10-01,2026-10-25,200.00,200.00,EUR\n\
         F-3,C2,2026-09-15,2026-10-20,300.00,300.00,EUR\n\
         F-4,C3,2026-10-01,2026-10-30,400.00,400.00,EUR\n",
    );
    run(&["import", "customers", "customers.csv"]);
    run(&["import", "invoices", "invoices.csv"]);

    // Day after day: ticks, every message delivered (to the outbox folder).
    for day in ["2026-11-02", "2026-11-03", "2026-11-09"] {
        run(&["tick", "--as-of", day]);
        run(&["dispatch"]);
    }
    let [stored, folded, contacts, sent] = stored_and_folded(url).await;
    assert!(!stored.is_empty());
    assert_eq!(stored, folded, "the steps kept are the log's");
    assert_eq!(contacts, sent, "the contacts kept are the log's deliveries");
    // The weekly step was applied twice to F-1 (2026-11-02, then 7 days later).
    let weekly: Vec<&Vec<Option<String>>> = stored
        .iter()
        .filter(|r| r[0].as_deref() == Some("F-1") && r[1].as_deref() == Some("weekly"))
        .collect();
    assert_eq!(
        weekly.first().and_then(|r| r[5].as_deref()),
        Some("2026-11-02 2026-11-09"),
        "{stored:?}"
    );

    // An invoice that closes takes its steps with it; reopened, it finds them again.
    let has = |rows: &Vec<Vec<Option<String>>>, invoice: &str| {
        rows.iter().any(|r| r[0].as_deref() == Some(invoice))
    };
    assert!(has(&stored, "F-2"), "{stored:?}");
    w.write(
        "paid.csv",
        "number,customer,issue_date,due_date,amount,currency,status\nF-2,C1,2026-10-01,2026-10-25,200.00,EUR,paid\n",
    );
    run(&["import", "invoices", "paid.csv"]);
    let [stored, folded, ..] = stored_and_folded(url).await;
    assert!(
        !has(&stored, "F-2"),
        "a paid invoice keeps no state: {stored:?}"
    );
    assert_eq!(stored, folded, "after an invoice closed");
    w.write(
        "reopened.csv",
        "number,customer,issue_date,due_date,amount,currency,status\nF-2,C1,2026-10-01,2026-10-25,200.00,EUR,open\n",
    );
    run(&["import", "invoices", "reopened.csv"]);
    let [reopened, folded, ..] = stored_and_folded(url).await;
    assert!(has(&reopened, "F-2"), "{reopened:?}");
    assert_eq!(reopened, folded, "after it reopened");

    // A planned action cancelled stops being an application of its step: the state is
    // folded again, and the next tick decides the step again (a duplicate of the
    // cancelled decision, never a second message).
    run(&["tick", "--as-of", "2026-11-16"]);
    // One JSON object per line.
    let listed = run(&["actions", "list", "--status", "planned", "--format", "json"]);
    let ids: Vec<i64> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let planned = &listed;
    assert!(ids.len() >= 2, "{planned}");
    for id in &ids[..2] {
        run(&[
            "actions",
            "cancel",
            &id.to_string(),
            "--reason",
            "paid by phone",
        ]);
    }
    let [stored, folded, contacts, sent] = stored_and_folded(url).await;
    assert_eq!(stored, folded, "after cancellations");
    assert_eq!(contacts, sent);
    let again = run(&["tick", "--as-of", "2026-11-16"]);
    assert!(again.contains("0 new planned actions"), "{again}");

    // The rules read the state: what `explain` shows of F-1 is its two weekly steps.
    let explained = run(&["explain", "C1", "--as-of", "2026-11-17", "--format", "json"]);
    assert!(explained.contains("weekly"), "{explained}");
    run(&["dispatch"]);
    let [stored, folded, contacts, sent] = stored_and_folded(url).await;
    assert_eq!(stored, folded, "at the end");
    assert_eq!(contacts, sent);
}

#[tokio::test]
async fn the_dunning_state_kept_is_always_the_fold_of_the_action_log() {
    let db = TestDb::sqlite();
    state_story(&db.url).await;
    match postgres_admin_url() {
        Some(admin) => {
            let db = TestDb::postgres(&admin).await;
            state_story(&db.url).await;
            db.cleanup().await;
        }
        None => say_postgres_skipped("the_dunning_state_kept_is_always_the_fold_of_the_action_log"),
    }
}
