//! The web console in a real browser: Debian's headless chromium driven through
//! chromedriver (tests/peers/console_browser.py) against `relance serve` on loopback.
//! A collector signs in, records a promise from its call queue, sees the customer's
//! page change, and the promise blocks the next reminder; a viewer sees no form; a form
//! without its token is refused; the dashboard's aged balance is the report's.

use chrono::{Duration, Timelike, Utc};
use serde_json::Value;

use crate::helpers::{repo, workspace_with_rules_and, Workspace};

/// Whether the browser and its driver are installed (`.ci/run` installs them).
fn browser_available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && std::process::Command::new("python3")
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
}

fn add_user(w: &Workspace, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .arg("--config")
        .arg(w.path("relance.yaml"))
        .args(["users", "add", name, "--role", role, "--password-stdin"])
        .current_dir(w.path(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three customers of alice's and one of bruno's, each with an invoice of 3,000 forty
/// days late (a call task under the shipped smb rules), ticked and dispatched today.
fn morning() -> Workspace {
    let shipped = std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap();
    let w = workspace_with_rules_and(&[("smb", &shipped)], "");
    std::fs::copy(
        repo().join("rules/smb.test.yaml"),
        w.path("rules/smb.test.yaml"),
    )
    .unwrap();
    let today = Utc::now().date_naive();
    let due = today - Duration::days(40);
    let mut customers = String::from("external_id,name,segment,emails,phones,collector\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for (i, collector) in [(1, "alice"), (2, "alice"), (3, "alice"), (4, "bruno")] {
        customers.push_str(&format!(
            "C{i},Client {i},smb,c{i}@client.example,+3361234567{i},{collector}\n"
        ));
        invoices.push_str(&format!(
            "F{i},C{i},{},{due},3000.00\n",
            due - Duration::days(30)
        ));
    }
    w.import_ledger(&customers, &invoices);
    w.relance(&["tick"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    add_user(&w, "alice", "collector", "alice-password-1");
    add_user(&w, "vera", "viewer", "vera-password-1");
    add_user(&w, "claire", "credit_manager", "claire-password-1");
    w
}

/// The form token a console page carries.
fn form_token(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string()
}

#[test]
fn a_collectors_morning_in_a_real_browser() {
    if !browser_available() {
        eprintln!("SKIPPED a_collectors_morning_in_a_real_browser: chromium, chromedriver and selenium are needed (.ci/run installs them)");
        return;
    }
    let w = morning();
    let run = w.relance(&["tasks", "list", "--format", "json"]);
    run.expect_code(0);
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
    let served = w.serve(&[]);
    let promise_date = (Utc::now().date_naive() + Duration::days(10)).to_string();
    let shots = w.path("shots");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/peers/console_browser.py"))
        .arg(&served.base)
        .arg(&shots)
        .arg(&promise_date)
        .arg((Utc::now().date_naive() + Duration::days(1)).to_string())
        .arg("C4")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser scenario failed:\n{}\n--- service log\n{}",
        String::from_utf8_lossy(&out.stderr),
        served.log()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The browser asks for English (--lang=en-US): the console answers in English.
    assert_eq!(seen["wrong_password"], "Wrong name or password.");
    // alice's three customers have a call task each; bruno's is not in her queue.
    assert_eq!(seen["tasks"], 3, "{seen}");
    let customer = seen["customer"].as_str().unwrap().to_string();
    assert!(["C1", "C2", "C3"].contains(&customer.as_str()), "{seen}");
    assert!(
        seen["tel_links"][0]
            .as_str()
            .unwrap()
            .starts_with("tel:+336"),
        "{seen}"
    );
    // The promise is on the customer's page, and the change in the audit trail.
    assert!(
        seen["promises"].as_str().unwrap().contains("pending"),
        "{seen}"
    );
    let audit = seen["audit"].as_str().unwrap();
    assert!(
        audit.contains("alice") && audit.contains("task_completed"),
        "{seen}"
    );
    assert!(seen["timeline_rows"].as_u64().unwrap() >= 2, "{seen}");
    // A note, written as text: markup in it is shown, not interpreted.
    let notes = seen["notes"].as_str().unwrap();
    assert!(
        notes.contains("alice") && notes.contains("<b>by email</b>"),
        "{seen}"
    );
    assert_eq!(seen["bold_in_notes"], 0, "{seen}");
    assert_eq!(seen["post_without_token"], 403, "{seen}");
    // A call scheduled in the console is in the audit trail and, through the action log
    // and the outbox, in the collector's tasks.
    assert!(
        seen["call_audit"]
            .as_str()
            .unwrap()
            .contains("call task planned"),
        "{seen}"
    );
    assert_eq!(seen["scheduled_task"], true, "{seen}");
    let run = w.relance(&["actions", "list", "--format", "json"]);
    run.expect_code(0);
    assert!(run.stdout.contains("\"step\":\"manual\""), "{}", run.stdout);
    // The callback date given with the call's outcome planned the next call.
    assert!(
        run.stdout.contains("\"step\":\"callback\""),
        "{}",
        run.stdout
    );
    assert!(audit.contains("call back planned"), "{seen}");
    // alice sees bruno's customer but cannot act on it.
    assert_eq!(seen["others_forms"], 0, "{seen}");
    assert_eq!(seen["others_post"], 403, "{seen}");
    assert_eq!(seen["viewer_forms"], 0, "{seen}");
    assert_eq!(seen["viewer_post"], 403, "{seen}");
    assert_eq!(seen["search_rows"], 1, "{seen}");
    // The aged balance, DSO and CEI charts; no customer has a credit limit here.
    assert_eq!(seen["dashboard_charts"], 3, "{seen}");
    assert_eq!(seen["dashboard_over_limit"], "0", "{seen}");
    // An email's page shows its message as the templates render it; retrying and
    // cancelling are for admins.
    let message = seen["action_message"].as_str().unwrap();
    assert!(
        message.contains("F1")
            || message.contains("F2")
            || message.contains("F3")
            || message.contains("F4"),
        "{seen}"
    );
    assert_eq!(seen["manager_retry_forms"], 0, "{seen}");
    assert!(seen["report_tables"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["report_chart"], true, "{seen}");
    // The CSV download is the command's CSV of the same table.
    let link = seen["report_csv_links"][0].as_str().unwrap().to_string();
    assert!(link.contains("/reports/aging.csv?"), "{seen}");
    let run = w.relance(&["report", "aging", "--format", "csv", "--locale", "en"]);
    run.expect_code(0);
    assert_eq!(seen["report_csv"].as_str().unwrap(), run.stdout, "{seen}");
    // The shipped smb rule's tests pass; explain shows the promise's effect.
    let tests = seen["rule_tests"].as_str().unwrap();
    assert!(tests.contains("rules/smb.test.yaml"), "{seen}");
    let cases = std::fs::read_to_string(repo().join("rules/smb.test.yaml"))
        .unwrap()
        .matches("- name:")
        .count();
    assert!(
        tests.contains(&format!("rules/smb.test.yaml {cases}")),
        "{cases} cases: {seen}"
    );
    let explain = seen["explain"].as_str().unwrap();
    assert!(explain.contains("rules/smb.rhai"), "{seen}");
    assert!(explain.contains("no invoice: dropped"), "{seen}");

    // The dashboard's open total is the aging report's.
    let run = w.relance(&["report", "aging", "--format", "json"]);
    run.expect_code(0);
    let aging: Value = serde_json::from_str(&run.stdout).unwrap();
    let open: rust_decimal::Decimal = aging["totals"][0]["open"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let shown = relance::domain::format::money(
        open,
        &relance::domain::Currency::EUR,
        relance::domain::Locale::En,
    );
    assert_eq!(seen["dashboard_open"].as_str().unwrap(), shown, "{seen}");

    // The promise recorded in the browser blocks the next reminder (explain shows it).
    let run = w.relance(&["explain", &customer, "--format", "json"]);
    run.expect_code(0);
    let e: Value = serde_json::from_str(&run.stdout).unwrap();
    let decisions = e["decisions"].as_array().unwrap();
    assert!(
        decisions.iter().all(|d| d["status"] != "planned"),
        "a promised customer still gets a reminder: {e:#}"
    );
    assert_eq!(e["facts"]["dunnable"], serde_json::json!([]), "{e:#}");
    let invoice = &e["invoices"][0];
    assert_eq!(invoice["promised"], true, "{e:#}");
    assert_eq!(
        invoice["blocked_reason"],
        format!("promise to pay by {promise_date}"),
        "{e:#}"
    );
    for shot in [
        "console-tasks.png",
        "console-customer.png",
        "console-dashboard.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot}");
    }
    if let Ok(dir) = std::env::var("RELANCE_CONSOLE_SHOTS") {
        for entry in std::fs::read_dir(&shots).unwrap().flatten() {
            let _ = std::fs::copy(
                entry.path(),
                std::path::Path::new(&dir).join(entry.file_name()),
            );
        }
    }
    served.stop();
}

#[test]
fn users_are_added_listed_disabled_and_never_shown_their_password() {
    let w = Workspace::new();
    add_user(&w, "alice", "collector", "alice-password-1");
    let run = w.relance(&["users", "add", "bob", "--role", "boss"]);
    run.expect_code(2);
    assert!(run.stderr.contains("unknown role 'boss'"), "{}", run.stderr);
    // A generated password is printed once, on standard output.
    let run = w.relance(&["users", "add", "claire", "--role", "admin"]);
    run.expect_code(0);
    assert_eq!(run.stdout.trim().len(), 20, "{}", run.stdout);
    let run = w.relance(&["users", "add", "claire", "--role", "admin"]);
    run.expect_code(1);
    assert!(run.stderr.contains("exists already"), "{}", run.stderr);
    let run = w.relance(&["users", "list", "--format", "json"]);
    run.expect_code(0);
    assert!(!run.stdout.contains("argon2"), "{}", run.stdout);
    assert!(!run.stdout.contains("alice-password-1"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 2);
    w.relance(&["users", "disable", "alice"]).expect_code(0);
    let run = w.relance(&["users", "list"]);
    assert!(run.stdout.contains("disabled"), "{}", run.stdout);
    let run = w.relance(&["users", "disable", "nobody"]);
    run.expect_code(4);
    // The database holds the hash, never the password.
    let db = std::fs::read(w.path("ledger.db")).unwrap();
    let text = String::from_utf8_lossy(&db);
    assert!(text.contains("$argon2id$"));
    assert!(!text.contains("alice-password-1"));
}

/// The console's queries on a backend: the customer list's search, filters and order;
/// users, sessions (expired, ended, of a disabled user) and the audit trail.
async fn console_store_on(db: &crate::helpers::TestDb) {
    use relance::store::users::CustomerQuery;
    let w = Workspace::new();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    w.write(
        "customers.csv",
        "external_id,name,segment,siren,collector,insured\n\
         A1,Boulangerie Martin,smb,732829320,alice,yes\n\
         A2,Garage Dubois,smb,,alice,no\n\
         B1,Transports Petit,key_accounts,,bruno,no\n",
    );
    w.write(
        "invoices.csv",
        "number,customer,issue_date,due_date,amount\n\
         F1,A1,2026-04-01,2026-05-01,100.00\n\
         F2,A2,2026-01-01,2026-02-01,900.00\n\
         F3,B1,2026-06-01,2026-07-31,5000.00\n\
         F4,A2,2026-06-10,2026-06-20,50.00\n",
    );
    let mut config = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    config.push_str("segments:\n  smb:\n    rules: smb.rhai\n    schedule: \"0 0 9 * * *\"\n  key_accounts:\n    rules: smb.rhai\n    schedule: \"0 0 9 * * *\"\n");
    w.write("relance.yaml", config);
    w.write("smb.rhai", "[]");
    for kind in ["customers", "invoices"] {
        w.relance(&[
            "--database-url",
            &db.url,
            "import",
            kind,
            &format!("{kind}.csv"),
        ])
        .expect_code(0);
    }
    for args in [
        &["dispute", "open", "F3", "--reason", "damaged"][..],
        &["pause", "--customer", "A1", "--reason", "payment plan"],
        &[
            "promise",
            "add",
            "--customer",
            "A2",
            "--date",
            "2027-01-15",
            "--amount",
            "50.00",
        ],
    ] {
        let mut all = vec!["--database-url", db.url.as_str()];
        all.extend_from_slice(args);
        w.relance(&all).expect_code(0);
    }
    let store = db.open().await;
    // The console searches its in-memory index of the customers as the ledger's query
    // does: every query below is asked of both, with the same answer.
    let index =
        relance::console::CustomerIndex::new(store.customer_index(today).await.unwrap(), today);
    let search = |q: CustomerQuery| {
        let store = store.clone();
        let index = &index;
        async move {
            let rows = store.search_customers(&q).await.unwrap();
            let owner = match q.text.as_deref() {
                Some(t) => store.invoice(t).await.unwrap().map(|i| i.customer),
                None => None,
            };
            let from_index = index.search(&q, owner.as_deref());
            let key = |r: &Vec<relance::store::users::CustomerRow>| {
                r.iter()
                    .map(|c| {
                        (
                            c.external_id.clone(),
                            c.open_minor,
                            c.overdue_minor,
                            c.oldest_due,
                            c.paused,
                            c.insured,
                            c.disputed,
                            c.promised,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(key(&rows), key(&from_index), "{q:?}");
            rows
        }
    };
    let q = |f: &dyn Fn(&mut CustomerQuery)| {
        let mut q = CustomerQuery {
            today,
            limit: 50,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let ids = |rows: Vec<relance::store::users::CustomerRow>| {
        rows.into_iter().map(|r| r.external_id).collect::<Vec<_>>()
    };
    // Most overdue first; not-yet-due customers last.
    let all = search(q(&|_| {})).await;
    assert_eq!(all[0].external_id, "A2");
    assert_eq!(all[0].overdue_minor, 95_000);
    assert_eq!(
        all[0].oldest_due,
        chrono::NaiveDate::from_ymd_opt(2026, 2, 1)
    );
    assert_eq!(ids(all), ["A2", "A1", "B1"]);
    for (text, expected) in [
        ("garage", vec!["A2"]),
        ("732829320", vec!["A1"]),
        ("F3", vec!["B1"]),
        ("B1", vec!["B1"]),
        ("50%", vec![]),
    ] {
        let rows = search(q(&|q| q.text = Some(text.into()))).await;
        assert_eq!(ids(rows), expected, "{text}");
    }
    let insured = search(q(&|q| q.insured = true)).await;
    assert_eq!(ids(insured), ["A1"]);
    let mine = search(q(&|q| q.collector = Some("alice".into()))).await;
    assert_eq!(ids(mine), ["A2", "A1"]);
    // Oldest overdue 31 to 60 days: A1 (due 2026-05-01, 60 days); A2's is 149 days.
    let bucket = search(q(&|q| {
        q.min_days = Some(31);
        q.max_days = Some(60);
    }))
    .await;
    assert_eq!(ids(bucket), ["A1"]);
    let page2 = search(q(&|q| {
        q.limit = 2;
        q.offset = 2;
    }))
    .await;
    assert_eq!(ids(page2), ["B1"]);
    for (flag, expected) in [("disputed", "B1"), ("promised", "A2"), ("paused", "A1")] {
        let rows = search(q(&|q| match flag {
            "disputed" => q.disputed = true,
            "promised" => q.promised = true,
            _ => q.paused = true,
        }))
        .await;
        assert_eq!(ids(rows.clone()), [expected], "{flag}");
        // The list's state column says so.
        match flag {
            "disputed" => assert!(rows[0].disputed),
            "promised" => assert!(rows[0].promised),
            _ => assert!(rows[0].paused),
        }
    }

    // Users and sessions.
    let now = Utc::now();
    let id = store
        .create_user("alice", "Alice", "collector", "$argon2id$x", now)
        .await
        .unwrap();
    assert!(store
        .create_user("alice", "Alice", "collector", "$argon2id$y", now)
        .await
        .is_err());
    store
        .create_session("s1", id, "csrf1", now + Duration::hours(1), now)
        .await
        .unwrap();
    store
        .create_session("s2", id, "csrf2", now - Duration::seconds(1), now)
        .await
        .unwrap();
    let s = store.session("s1", now).await.unwrap().unwrap();
    assert_eq!(
        (s.user.username.as_str(), s.csrf.as_str()),
        ("alice", "csrf1")
    );
    assert!(store.session("s2", now).await.unwrap().is_none(), "expired");
    store.end_session("s1").await.unwrap();
    assert!(store.session("s1", now).await.unwrap().is_none(), "ended");
    store
        .create_session("s3", id, "csrf3", now + Duration::hours(1), now)
        .await
        .unwrap();
    assert!(store.set_user_disabled("alice", true, now).await.unwrap());
    assert!(
        store.session("s3", now).await.unwrap().is_none(),
        "disabled"
    );
    store
        .record_audit("claire", "pause", Some("A1"), "paused: holiday", now)
        .await
        .unwrap();
    let audit = store.audit_of("A1", 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "claire");
    store.add_note("A1", "alice", "first", now).await.unwrap();
    store.add_note("A1", "claire", "second", now).await.unwrap();
    let notes = store.notes_of("A1", 10).await.unwrap();
    assert_eq!(
        notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );
    // The debtor portal's visits: per customer, and on the action whose link was followed.
    assert_eq!(store.action_opened(42).await.unwrap(), None);
    store
        .record_portal_visit("A1", Some(42), now)
        .await
        .unwrap();
    store
        .record_portal_visit("A1", Some(42), now + Duration::minutes(5))
        .await
        .unwrap();
    store
        .record_portal_visit("A1", None, now + Duration::minutes(6))
        .await
        .unwrap();
    let (first, times) = store.action_opened(42).await.unwrap().unwrap();
    assert_eq!((first.timestamp(), times), (now.timestamp(), 2));
    let visits = store.portal_visits_of("A1", 10).await.unwrap();
    assert_eq!(
        visits.iter().map(|v| v.0).collect::<Vec<_>>(),
        [None, Some(42), Some(42)]
    );
    assert!(store.portal_visits_of("B1", 10).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn console_queries_on_sqlite() {
    let db = crate::helpers::TestDb::sqlite();
    console_store_on(&db).await;
}

#[tokio::test]
async fn console_queries_on_postgres() {
    let Some(admin) = crate::helpers::postgres_admin_url() else {
        return crate::helpers::say_postgres_skipped("console_queries_on_postgres");
    };
    let db = crate::helpers::TestDb::postgres(&admin).await;
    console_store_on(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_trusted_proxy_header_signs_in_known_users_only_and_the_customer_page_previews_the_next_message(
) {
    let shipped = std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap();
    // Emails are delivered only in an hour that is not now: a reminder the service
    // plans at start waits in the queue, and the page shows it either way. The hour is
    // on the other half of the day, so that the window never runs past midnight.
    let now = Utc::now().with_timezone(&chrono_tz::Europe::Paris).hour();
    let open = if now < 12 { 18 } else { 4 };
    let window = format!(
        "dispatch:\n  quiet_hours:\n    email: {{ from: \"{open:02}:00\", to: \"{:02}:00\", business_days_only: false }}\n",
        open + 1
    );
    let w = workspace_with_rules_and(
        &[("smb", &shipped)],
        &format!("auth:\n  trusted_header: X-Forwarded-User\n{window}"),
    );
    // Five days late: the rules would send the first reminder today.
    let due = Utc::now().date_naive() - Duration::days(5);
    w.import_ledger(
        "external_id,name,segment,collector,emails\nC1,Client 1,smb,alice,c1@client.example\n",
        &format!(
            "number,customer,issue_date,due_date,amount\nF1,C1,{},{due},100.00\n",
            due - Duration::days(30)
        ),
    );
    add_user(&w, "alice", "collector", "alice-password-1");
    let served = w.serve(&[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, user: Option<&str>| {
        let mut r = client.get(format!("{}{path}", served.base));
        if let Some(u) = user {
            r = r.header("X-Forwarded-User", u);
        }
        r.send()
    };
    let anonymous = get("/", None).await.unwrap();
    assert_eq!(anonymous.status(), 303);
    let unknown = get("/", Some("mallory")).await.unwrap();
    assert_eq!(unknown.status(), 403);
    let page = get("/customers/C1", Some("alice")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("alice"), "{html}");
    // The next message the rules would send, rendered: the first reminder naming F1.
    let next = html.split("id=\"next-message\"").nth(1).unwrap();
    let next = next.split("</section>").next().unwrap();
    if !(next.contains("reminder_1") && next.contains("F1")) {
        let log = w.relance(&["actions", "list"]).stdout;
        panic!(
            "{next}\n--- the action log\n{log}\n--- service\n{}",
            served.log()
        );
    }
    let token = form_token(&html);
    let post = |body: Vec<(&'static str, String)>| {
        client
            .post(format!("{}/customers/C1/notes", served.base))
            .header("X-Forwarded-User", "alice")
            .form(&body)
            .send()
    };
    let refused = post(vec![("text", "no token".into())]).await.unwrap();
    assert_eq!(refused.status(), 403);
    let done = post(vec![("text", "called, will pay".into()), ("csrf", token)])
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let html = get("/customers/C1", Some("alice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("called, will pay"), "{html}");

    // The account statement, as of today, read back by poppler.
    let statement = get("/customers/C1/statement.pdf", Some("alice"))
        .await
        .unwrap();
    assert_eq!(statement.status(), 200);
    assert_eq!(
        statement.headers()["content-type"],
        "application/pdf",
        "{:?}",
        statement.headers()
    );
    let pdf = w.path("statement.pdf");
    std::fs::write(&pdf, statement.bytes().await.unwrap()).unwrap();
    let text = crate::documents::pdf_text(&pdf);
    assert!(text.contains("F1") && text.contains("100,00"), "{text}");
    assert_eq!(
        get("/customers/NOPE/statement.pdf", Some("alice"))
            .await
            .unwrap()
            .status(),
        404
    );

    // Scheduling a call: a bad priority or a past date is refused with the reason; a
    // good one is a `call_task` action (step manual) the outbox makes alice's task.
    let token = form_token(&html);
    let tomorrow = (Utc::now().date_naive() + Duration::days(1)).to_string();
    let yesterday = (Utc::now().date_naive() - Duration::days(1)).to_string();
    // (due date, priority, status, what the answer says); the same call asked for twice
    // the same day is recorded once.
    for (due, priority, status, says) in [
        (&tomorrow, "whenever", 422, "priority"),
        (&yesterday, "normal", 422, "in the past"),
        (&tomorrow, "high", 303, ""),
        (&tomorrow, "high", 303, ""),
    ] {
        let answer = client
            .post(format!("{}/customers/C1/call", served.base))
            .header("X-Forwarded-User", "alice")
            .form(&[
                ("csrf", token.as_str()),
                ("reason", "ask for the PO"),
                ("due", due.as_str()),
                ("priority", priority),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{due} {priority}");
        assert!(answer.text().await.unwrap().contains(says), "{says}");
    }
    let run = w.relance(&["actions", "list", "--format", "json"]);
    run.expect_code(0);
    let actions: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let manual: Vec<&Value> = actions.iter().filter(|a| a["step"] == "manual").collect();
    assert_eq!(manual.len(), 1, "{actions:#?}");
    assert_eq!(manual[0]["kind"], "call_task");
    let mut listed = String::new();
    for _ in 0..60 {
        listed = w.relance(&["tasks", "list", "--format", "json"]).stdout;
        if listed.contains("ask for the PO") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let tasks: Value = serde_json::from_str(&listed).unwrap();
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["reason"] == "ask for the PO")
        .unwrap_or_else(|| panic!("no task made of the scheduled call: {tasks:#}"));
    assert_eq!(task["assignee"], "alice", "{task}");
    assert_eq!(task["priority"], "high", "{task}");
    // On the day asked for, or the next business day.
    assert!(
        task["due_on"].as_str().unwrap() >= tomorrow.as_str(),
        "{task}"
    );
    assert_eq!(task["invoices"], serde_json::json!(["F1"]), "{task}");
    served.stop();
}
