//! Read commands and GET requests never write: the database's content is the same,
//! row for row, before and after each (a dump of every table, hashed), on SQLite and
//! on PostgreSQL. Time-based state (a promise whose date passes) is judged as of the
//! date asked, and changed only by the tick.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::{
    postgres_admin_url, say_postgres_skipped, workspace_with_rules_and, Workspace,
};

const RULE: &str = r#"
let open = customer.dunnable;
[
    email("reminder_1", open.overdue(1)),
    if customer.broken_promise != () { call_task("broken promise", open.overdue(1), #{ step: "broken_promise" }) },
]
"#;

/// Every row of every table: `iterdump` for SQLite, `pg_dump --data-only` for
/// PostgreSQL.
fn content(w: &Workspace, url: &str) -> Dump {
    let out = if let Some(db) = url.strip_prefix("sqlite://") {
        let db = if db.starts_with('/') {
            db.to_string()
        } else {
            w.path(db).display().to_string()
        };
        std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\nc = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\nprint('\\n'.join(c.iterdump()))",
                &db,
            ])
            .output()
            .unwrap()
    } else {
        std::process::Command::new("sh")
            .args(["-c", &format!("pg_dump --data-only --no-owner '{url}'")])
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump brackets its output with a random token (`\restrict …`): not content.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect();
    Dump(lines.join("\n"))
}

/// A database's content; compared equal line for line, shown as the lines that differ.
#[derive(PartialEq, Eq)]
struct Dump(String);

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} lines", self.0.lines().count())
    }
}

#[track_caller]
fn assert_same(before: &Dump, after: &Dump, what: &str) {
    if before != after {
        let old: std::collections::BTreeSet<&str> = before.0.lines().collect();
        let new: std::collections::BTreeSet<&str> = after.0.lines().collect();
        let gone: Vec<&&str> = old.difference(&new).collect();
        let came: Vec<&&str> = new.difference(&old).collect();
        panic!("{what} wrote to the database:\n- {gone:?}\n+ {came:?}");
    }
}

async fn read_commands_and_gets_leave_the_database_unchanged(url: &str) {
    let w = workspace_with_rules_and(
        &[("smb", RULE)],
        &format!("portal:\n  public_url: https://pay.example.com\n  keys:\n    - {{ id: 1, secret: \"{}\" }}\n", crate::portal::KEY_1),
    );
    let cfg = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    w.write("relance.yaml", cfg.replace("sqlite://ledger.db", url));
    let today = Utc::now().date_naive();
    let in_3 = (today + Duration::days(3)).to_string();
    let in_7 = (today + Duration::days(7)).to_string();
    let ago = |d: i64| (today - Duration::days(d)).to_string();
    w.import_ledger(
        "external_id,name,segment,emails,phones\nC1,Un SARL,smb,c1@un.example,+33612345678\nC2,Deux SAS,smb,c2@deux.example,\n",
        &format!(
            "number,customer,issue_date,due_date,amount\nF1,C1,{},{},1000.00\nF2,C2,{},{},250.00\n",
            ago(60),
            ago(30),
            ago(40),
            ago(10)
        ),
    );
    // A promise due in three days, a dispute and a pause: the facts a read could alter.
    let collector = w.token("collector", "collect");
    let admin = w.token("admin", "admin");
    let service = w.launch();
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", service.base))
            .bearer_auth(&collector)
            .json(&body)
            .send()
    };
    let r = post(
        "/v1/promises",
        json!({"customer": "C1", "promised_date": in_3, "amount": "1000.00", "invoices": ["F1"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // The service's own first tick and deliveries, then quiet.
    service.wait_for_line(&["tick done", "segment=smb"]);
    let started = std::time::Instant::now();
    loop {
        let list = w.relance(&["actions", "list", "--format", "json"]).stdout;
        if !list.contains("\"planned\"") && !list.contains("\"sending\"") {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "{list}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let before = content(&w, url);

    // Every GET of the API, with the broadest token.
    let gets = [
        "/healthz".to_string(),
        "/readyz".to_string(),
        "/metrics".to_string(),
        "/v1/openapi.json".to_string(),
        "/v1/customers/C1".to_string(),
        "/v1/invoices/F1".to_string(),
        "/v1/tasks".to_string(),
        "/v1/actions".to_string(),
        "/v1/actions/1".to_string(),
        "/v1/actions/1/documents/statement".to_string(),
        format!("/v1/customers/C1/dry-run?as_of={in_7}"),
        "/v1/customers/C2/dry-run".to_string(),
        format!("/v1/customers/C1/explain?as_of={in_7}"),
    ];
    for path in &gets {
        let r = client
            .get(format!("{}{path}", service.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
        assert_same(&before, &content(&w, url), &format!("GET {path}"));
    }
    // A rule diff is a POST that reads only.
    let r = client
        .post(format!("{}/v1/rules/diff", service.base))
        .bearer_auth(&admin)
        .json(&json!({"segment": "smb", "script": RULE.replace("overdue(1)", "overdue(5)")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "POST /v1/rules/diff");
    assert_same(&before, &content(&w, url), "POST /v1/rules/diff");
    service.stop();
    assert_same(&before, &content(&w, url), "stopping the service");

    // Every read command, including as of a date after the promise.
    let reads: Vec<Vec<&str>> = vec![
        vec!["ledger"],
        vec!["ledger", "--as-of", &in_7],
        vec!["ledger", "--format", "json"],
        vec!["customer", "C1"],
        vec!["customer", "C1", "--as-of", &in_7],
        vec!["simulate"],
        vec!["simulate", "--as-of", &in_7, "--format", "json"],
        vec!["explain", "C1"],
        vec!["preview", "1"],
        vec!["preview", "--customer", "C1", "--template", "reminder_1"],
        vec!["explain", "C1", "--as-of", &in_7, "--format", "json"],
        vec!["actions", "list"],
        vec!["actions", "show", "1"],
        vec!["actions", "held"],
        vec!["tasks", "list"],
        vec!["report", "deadlines"],
        vec!["report", "aging"],
        vec!["report", "dso", "--format", "json"],
        vec!["report", "effectiveness"],
        vec!["report", "deliveries"],
        vec![
            "rules",
            "diff",
            "--segment",
            "smb",
            "--to",
            "rules/smb.rhai",
        ],
        vec![
            "rules", "diff", "--to", "live", "--as-of", &in_7, "--format", "json",
        ],
        vec!["insurers", "list"],
        vec!["tokens", "list"],
        vec!["users", "list"],
        vec!["rules", "check"],
        vec!["rules", "test"],
        vec!["config", "check"],
        vec!["portal", "link", "C1"],
        vec!["portal", "check", "https://pay.example.com/p/AQIDBA"],
    ];
    for args in &reads {
        let run = w.relance(args);
        assert!(
            run.code == 0 || run.code == 4,
            "{args:?}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(
            content(&w, url),
            before,
            "relance {args:?} wrote to the database"
        );
    }
    // As of a week later the promise is no longer pending, but only in what is shown.
    let later = w.relance(&["ledger", "--as-of", &in_7, "--format", "json"]);
    let later: serde_json::Value = serde_json::from_str(&later.stdout).unwrap();
    assert_eq!(later["pending_promises"], 0, "{later}");
    let now = w.relance(&["ledger", "--format", "json"]);
    let now: serde_json::Value = serde_json::from_str(&now.stdout).unwrap();
    assert_eq!(now["pending_promises"], 1, "{now}");
    // And today's simulation still respects the promise: no call about a broken one.
    let sim = w.relance(&["simulate", "--format", "json"]).stdout;
    assert!(!sim.contains("broken_promise"), "{sim}");
}

/// Regression: `relance ledger --as-of` a date after a pending promise marked the
/// promise broken in the database, and today's rules then called the customer about a
/// promise not yet due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_and_gets_never_write_on_sqlite() {
    read_commands_and_gets_leave_the_database_unchanged("sqlite://ledger.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_and_gets_never_write_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("read_commands_and_gets_never_write_on_postgres");
    };
    let db = crate::helpers::TestDb::postgres(&admin).await;
    read_commands_and_gets_leave_the_database_unchanged(&db.url).await;
    db.cleanup().await;
}
