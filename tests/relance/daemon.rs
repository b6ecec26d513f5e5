//! The action log and delivery through the binary: ticks are idempotent, each action is
//! delivered once, facts that changed cancel an action, interrupted sends and failing
//! transports recover.

use crate::helpers::{workspace_with_rules_and, Workspace};

const RULE: &str = "email(\"reminder_1\", customer.dunnable.overdue(1))";

fn ledger(extra_config: &str) -> Workspace {
    let w = workspace_with_rules_and(&[("smb", RULE)], extra_config);
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un,smb,a@un.example\nC2,Deux,smb,b@deux.example\nC3,Trois,smb,c@trois.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,100.00\nF2,C1,2026-01-01,2026-02-10,50.00\nF3,C2,2026-01-01,2026-02-15,70.00\nF4,C3,2026-01-01,2026-04-30,10.00\n",
    );
    w
}

fn outbox_files(w: &Workspace, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path("outbox").join(kind))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn statuses(w: &Workspace) -> Vec<String> {
    let out = w
        .relance(&["actions", "list", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    out.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_tick_run_twice_plans_once_and_each_action_is_delivered_once() {
    let w = ledger("");
    let first = w.relance(&["tick", "--as-of", "2026-03-02"]);
    first.expect_code(0);
    assert!(
        first
            .stdout
            .contains("smb: 3 customers, 2 new planned actions, 0 already planned, 0 already done"),
        "{}",
        first.stdout
    );
    let second = w.relance(&["tick", "--as-of", "2026-03-02"]);
    assert!(
        second
            .stdout
            .contains("smb: 3 customers, 0 new planned actions, 0 already planned, 2 already done"),
        "{}",
        second.stdout
    );
    assert_eq!(statuses(&w), ["planned", "planned"]);

    let run = w.relance(&["dispatch"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": sent ("))
            .count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(outbox_files(&w, "email").len(), 2);
    w.relance(&["dispatch"])
        .expect_code(0)
        .stdout
        .contains("nothing to send")
        .then_some(())
        .expect("queue drained");
    assert_eq!(statuses(&w), ["sent", "sent"]);

    // The delivered message names the customer's invoices and carries the idempotency key.
    let body: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.path("outbox/email").join(&outbox_files(&w, "email")[0]))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["customer"]["id"], "C1");
    assert_eq!(body["invoices"].as_array().unwrap().len(), 2);
    assert!(body["message_id"].as_str().unwrap().starts_with("planned:"));

    // Why was it sent? The rule, its hash and the facts are in the log.
    let show = w
        .relance(&["actions", "show", "1", "--format", "json"])
        .expect_code(0)
        .stdout
        .clone();
    let d: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(d["rule_file"], "rules/smb.rhai");
    assert_eq!(d["rule_hash"].as_str().unwrap().len(), 64);
    assert_eq!(d["facts"]["overdue_total"], "150.00");
    let events: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["planned", "sending", "sent"]);
}

#[test]
fn a_payment_recorded_between_decision_and_dispatch_cancels_the_action() {
    let w = ledger("");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w.write(
        "payments.csv",
        "id,customer,date,amount,reference\nP1,C2,2026-03-02,70.00,F3\n",
    );
    w.relance(&["import", "payments", "payments.csv"])
        .expect_code(0);
    let run = w.relance(&["dispatch"]);
    assert!(
        run.stdout.contains("cancelled (invoice F3 is paid)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        outbox_files(&w, "email").len(),
        1,
        "only C1's reminder went out"
    );
    let rows = w
        .relance(&[
            "actions",
            "list",
            "--status",
            "cancelled",
            "--format",
            "json",
        ])
        .expect_code(0)
        .stdout
        .clone();
    let row: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(row["customer"], "C2");
    assert_eq!(row["last_error"], "invoice F3 is paid");
}

#[test]
fn a_dispute_or_a_promise_recorded_between_decision_and_dispatch_cancels_the_action() {
    let w = ledger("");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w.relance(&["dispute", "open", "F2", "--reason", "goods returned"])
        .expect_code(0);
    // Dispatch runs today: a promise not yet due holds the reminder back.
    let due = (chrono::Utc::now().date_naive() + chrono::Duration::days(20)).to_string();
    w.relance(&[
        "promise",
        "add",
        "--customer",
        "C2",
        "--date",
        &due,
        "--amount",
        "70",
        "--invoice",
        "F3",
    ])
    .expect_code(0);
    let run = w.relance(&["dispatch"]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("cancelled (invoice F2 disputed: goods returned)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "cancelled (invoice F3 promised to be paid by {due})"
        )),
        "{}",
        run.stdout
    );
    assert!(outbox_files(&w, "email").is_empty());
    assert_eq!(statuses(&w), ["cancelled", "cancelled"]);
}

#[test]
fn a_process_that_dies_after_claiming_is_recovered_by_lease_expiry_and_sends_once() {
    let w = ledger("dispatch:\n  lease_seconds: 1\n  backoff_base_seconds: 0\n");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    // Crash injection: the process aborts right after claiming, holding the lease.
    let crashed = w
        .dispatch_with_failpoint("dispatch-after-claim")
        .wait()
        .unwrap();
    assert!(!crashed.success());
    assert_eq!(statuses(&w), ["sending", "planned"]);
    assert!(outbox_files(&w, "email").is_empty());

    std::thread::sleep(std::time::Duration::from_millis(1500));
    let run = w.relance(&["dispatch"]);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": sent ("))
            .count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(
        outbox_files(&w, "email").len(),
        2,
        "each action delivered exactly once"
    );
    let d: serde_json::Value = serde_json::from_str(
        &w.relance(&["actions", "show", "1", "--format", "json"])
            .stdout,
    )
    .unwrap();
    let events: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["planned", "sending", "retrying", "sending", "sent"]
    );
    assert_eq!(d["attempts"], 2);
}

#[test]
fn a_transport_failing_three_times_then_succeeding_delivers_once() {
    let w = ledger("dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\n");
    // The outbox folder cannot be created while a file stands in its way.
    w.write("outbox", "not a folder");
    w.relance(&["tick", "--as-of", "2026-03-02", "--segment", "smb"])
        .expect_code(0);
    for attempt in 1..=3 {
        let run = w.relance(&["dispatch", "--once"]);
        assert!(
            run.stdout.contains("will retry (cannot write"),
            "attempt {attempt}: {}",
            run.stdout
        );
    }
    std::fs::remove_file(w.path("outbox")).unwrap();
    let run = w.relance(&["dispatch"]);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": sent ("))
            .count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(outbox_files(&w, "email").len(), 2);
    let d: serde_json::Value = serde_json::from_str(
        &w.relance(&["actions", "show", "1", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["status"], "sent");
}

#[test]
fn attempts_exhausted_dead_letter_and_an_operator_can_requeue() {
    let w = ledger("dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 2\n");
    w.write("outbox", "not a folder");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    assert_eq!(statuses(&w), ["dead", "dead"]);
    std::fs::remove_file(w.path("outbox")).unwrap();
    w.relance(&["actions", "retry", "1"]).expect_code(0);
    w.relance(&["actions", "cancel", "2", "--reason", "paid by cheque"])
        .expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    assert_eq!(statuses(&w), ["sent", "cancelled"]);
    let again = w.relance(&["actions", "cancel", "1"]);
    again.expect_code(4);
    assert!(
        again.stderr.contains("action 1 is sent"),
        "{}",
        again.stderr
    );
}

/// Starts the service in-process, waits until `ready`, stops it; returns its log.
fn serve_until(w: &Workspace, ready: impl FnMut() -> bool) -> String {
    let service = w.launch();
    let mut ready = ready;
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for the service; its log:\n{}",
            service.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    service.stop()
}

#[test]
fn serve_ticks_delivers_and_stops_cleanly_and_a_restart_sends_nothing_twice() {
    let w = ledger("");
    // Served as of today, when all three customers are late: three reminders.
    let log = serve_until(&w, || outbox_files(&w, "email").len() == 3);
    assert!(
        log.contains("first start for this segment: ticking now"),
        "{log}"
    );
    assert!(
        log.contains("shutting down: no new work is claimed") && log.contains("stopped"),
        "{log}"
    );
    let log = serve_until(&w, || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        true
    });
    assert!(!log.contains("ticking now"), "{log}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(outbox_files(&w, "email").len(), 3);
    assert_eq!(statuses(&w), ["sent", "sent", "sent"]);
}

#[tokio::test]
async fn two_instances_on_postgres_deliver_each_action_once_with_one_scheduler_and_take_over() {
    let Some(admin) = crate::helpers::postgres_admin_url() else {
        return crate::helpers::say_postgres_skipped(
            "two_instances_on_postgres_deliver_each_action_once_with_one_scheduler_and_take_over",
        );
    };
    let db = crate::helpers::TestDb::postgres(&admin).await;
    // Ticks every two seconds, so that both instances keep deciding while they dispatch.
    let w = workspace_with_rules_and(&[("smb", RULE)], "");
    let config = std::fs::read_to_string(w.path("relance.yaml"))
        .unwrap()
        .replace("\"0 0 9 * * Mon-Fri\"", "\"*/2 * * * * *\"");
    w.write("relance.yaml", config);
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for i in 1..=40 {
        customers.push_str(&format!("C{i},Client {i},smb,c{i}@client.example\n"));
        invoices.push_str(&format!("F{i},C{i},2026-01-01,2026-01-31,{i}.00\n"));
    }
    w.write("customers.csv", customers);
    w.write("invoices.csv", invoices);
    let url = db.url.clone();
    for k in ["customers", "invoices"] {
        w.relance(&["--database-url", &url, "import", k, &format!("{k}.csv")])
            .expect_code(0);
    }
    let start = |name: &str| {
        let log = std::fs::File::create(w.path(name)).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
            .args([
                "--config",
                w.path("relance.yaml").to_str().unwrap(),
                "--database-url",
                &url,
                "serve",
                "--grace",
                "5",
            ])
            .current_dir(w.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let leads = |name: &str| {
        std::fs::read_to_string(w.path(name))
            .unwrap_or_default()
            .matches("this instance schedules the ticks")
            .count()
    };
    let mut a = start("a.log");
    let mut b = start("b.log");

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let sent = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(DISTINCT action_id) FROM action_events WHERE status = 'sent'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sent().await < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all delivered: {}",
            sent().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Let both keep ticking and dispatching a little: nothing new may appear.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let actions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM actions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        actions, 40,
        "one action per customer, however many ticks and instances"
    );
    let twice: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT action_id FROM action_events WHERE status = 'sent' GROUP BY action_id HAVING COUNT(*) > 1) x")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(twice, 0, "an action was sent twice");
    assert_eq!(outbox_files(&w, "email").len(), 40);
    let senders: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT detail) FROM action_events WHERE status = 'sending'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(senders >= 1);
    assert_eq!(
        leads("a.log") + leads("b.log"),
        1,
        "exactly one instance schedules"
    );

    // Kill the leader without warning: the other takes over within seconds.
    let (leader, other_log) = if leads("a.log") == 1 {
        (&mut a, "b.log")
    } else {
        (&mut b, "a.log")
    };
    leader.kill().unwrap();
    let _ = leader.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while leads(other_log) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no takeover:\n{}",
            std::fs::read_to_string(w.path(other_log)).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let survivor = if other_log == "a.log" { &mut a } else { &mut b };
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(survivor.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(survivor.wait().unwrap().code(), Some(0));
    // Both are reaped (a second wait returns the status already collected).
    let _ = (a.wait(), b.wait());
    pool.close().await;
    db.cleanup().await;
}

#[test]
fn the_contact_budget_defers_what_goes_over_it() {
    let w = workspace_with_rules_and(
        &[("smb", "let late = customer.dunnable.overdue(1); [email(\"reminder_1\", late), sms(\"sms_reminder\", late)]")],
        "dispatch:\n  contact_budget: { max_contacts: 1, per_days: 7 }\n",
    );
    w.import_ledger(
        "external_id,name,segment,emails,phones\nC1,Un,smb,a@un.example,+33612345678\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,100.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let run = w.relance(&["dispatch"]);
    assert!(run.stdout.contains("action 1: sent"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("action 2: deferred (contact budget reached: 1 contacts in the last 7 days)"),
        "{}",
        run.stdout
    );
    let rows = w
        .relance(&["actions", "list", "--format", "json"])
        .stdout
        .clone();
    let second: serde_json::Value = serde_json::from_str(rows.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["status"], "planned");
    assert_eq!(second["attempts"], 0, "a deferral is not an attempt");
    assert!(second["next_attempt_at"].is_string());
    assert!(
        w.relance(&["dispatch"]).stdout.contains("nothing to send"),
        "deferred until the budget allows it"
    );
}

#[test]
fn bad_delivery_hours_are_configuration_errors() {
    let w = workspace_with_rules_and(&[("smb", RULE)], "dispatch:\n  quiet_hours:\n    sms: { from: \"19:00\", to: \"09:00\" }\n    fax: { from: \"09:00\", to: \"10:00\" }\n");
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("dispatch.quiet_hours.sms: 'from' must be before 'to'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("dispatch.quiet_hours.fax: 'fax' is not an action kind"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_tick_reports_customers_whose_segment_has_no_script() {
    let w = ledger("");
    w.write("more.csv", "external_id,name,segment\nC9,Neuf,export\n");
    w.write(
        "more-invoices.csv",
        "number,customer,issue_date,due_date,amount\nF9,C9,2026-01-01,2026-01-31,10\n",
    );
    // The segment was configured when its customer was imported, and removed since.
    w.with_segment_for_a_while("export", || {
        w.relance(&["import", "customers", "more.csv"])
            .expect_code(0);
        w.relance(&["import", "invoices", "more-invoices.csv"])
            .expect_code(0);
    });
    let run = w.relance(&["tick", "--as-of", "2026-03-02"]);
    run.expect_code(0);
    assert!(run.stderr.contains("warning: 1 customer(s) with open invoices in segment 'export', which has no rule script: not evaluated"), "{}", run.stderr);
}

#[test]
fn a_rate_limit_defers_what_exceeds_it() {
    let w = ledger("dispatch:\n  rate_limits: { email: 2 }\n");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    // C3's invoice is late by then too: three reminders, two allowed this minute.
    let run = w.relance(&["tick", "--as-of", "2026-06-02"]);
    run.expect_code(0);
    let run = w.relance(&["dispatch"]);
    assert_eq!(run.stdout.matches(": sent (").count(), 2, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("deferred (rate limit: 2 email per minute)"),
        "{}",
        run.stdout
    );
    assert_eq!(outbox_files(&w, "email").len(), 2);
}

#[test]
fn serve_reloads_rule_scripts_and_keeps_the_previous_one_when_a_new_one_does_not_compile() {
    let w = ledger("");
    let log_path = w.path("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args([
            "--config",
            w.path("relance.yaml").to_str().unwrap(),
            "serve",
            "--grace",
            "5",
        ])
        .current_dir(w.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let wait = |what: &str, child: &mut std::process::Child| {
        let start = std::time::Instant::now();
        while !log().contains(what) {
            if start.elapsed() > std::time::Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no «{what}» in the log:\n{}", log());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait("relance is running", &mut child);
    w.write("rules/smb.rhai", "email(\"reminder_1\", customer.dunnable");
    wait(
        "rule script rejected: it does not compile; the previous version keeps running",
        &mut child,
    );
    w.write(
        "rules/smb.rhai",
        "email(\"reminder_2\", customer.dunnable.overdue(1))",
    );
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    wait("SIGHUP: reloading rule scripts", &mut child);
    wait("rule script reloaded", &mut child);
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0), "{}", log());
}

/// Regression: on SQLite a deferred transaction that read and then wrote failed at once
/// with "database is locked" when another connection had written in between (a tick
/// racing the dispatch workers). Write transactions now begin IMMEDIATE.
#[test]
fn ticks_and_dispatch_writing_at_once_do_not_fail_with_database_is_locked() {
    let w = ledger("dispatch:\n  backoff_base_seconds: 0\n");
    let serve = w.launch();
    let mut failures = Vec::new();
    for day in [
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
        "2026-03-30",
        "2026-04-06",
    ] {
        let run = w.relance(&["tick", "--as-of", day]);
        if run.code != 0 || run.stderr.contains("locked") {
            failures.push(format!("{day}: {}", run.stderr));
        }
        w.relance(&["dispatch"]);
    }
    let log = serve.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(!log.contains("database is locked"), "{log}");
}

/// `GET path` with a bearer token over plain HTTP/1.1; returns the response body.
fn http_get(addr: &str, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

/// Regression: a rule file deleted, not UTF-8 or emptied while the service ran was
/// silently ignored (or, empty, accepted: the segment then did nothing). Each is refused
/// with an ERROR line naming the file and why, counted in
/// `relance_rule_reload_failures_total` and flagged by `relance_rule_script_stale`, and
/// the previous version keeps running.
#[test]
fn hot_reload_refuses_deleted_non_utf8_and_empty_rule_files_loudly() {
    let w = ledger("");
    let token = w
        .relance(&["tokens", "create", "--name", "scraper", "--scope", "read"])
        .expect_code(0)
        .stdout
        .trim()
        .to_string();
    let service = w.launch();
    let addr = service.base.trim_start_matches("http://").to_string();
    let wait = |what: &[&str]| service.wait_for_line(what);
    wait(&["relance is running"]);
    let running = w.relance(&["actions", "list"]).code;
    assert_eq!(running, 0);

    // Deleted.
    std::fs::remove_file(w.path("rules/smb.rhai")).unwrap();
    let line = wait(&["rule script rejected", "does not exist"]);
    assert!(line.contains("ERROR") || line.contains("WARN"), "{line}");
    assert!(line.contains("rules/smb.rhai"), "{line}");
    assert!(
        line.contains("the previous version keeps running"),
        "{line}"
    );

    // Not UTF-8.
    w.write(
        "rules/smb.rhai",
        b"email(\"reminder_1\", \xff\xfe customer.dunnable)",
    );
    let line = wait(&["rule script rejected", "not valid UTF-8"]);
    assert!(line.contains("rules/smb.rhai"), "{line}");

    // Empty: only whitespace and comments.
    w.write(
        "rules/smb.rhai",
        "// emptied by mistake\n\n   /* nothing */\n",
    );
    let line = wait(&["rule script rejected", "empty"]);
    assert!(line.contains("rules/smb.rhai"), "{line}");

    let metrics = http_get(&addr, "/metrics", &token);
    assert!(
        metrics.contains("relance_rule_reload_failures_total{segment=\"smb\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relance_rule_script_stale{segment=\"smb\"} 1"),
        "{metrics}"
    );

    // The version that was running is still the one in force: restoring it clears the flag.
    w.write("rules/smb.rhai", RULE);
    wait(&["rule file matches the running version again"]);
    let metrics = http_get(&addr, "/metrics", &token);
    assert!(
        metrics.contains("relance_rule_script_stale{segment=\"smb\"} 0"),
        "{metrics}"
    );
    let log = service.stop();
    assert!(
        !log.contains("rule script reloaded"),
        "nothing else was ever swapped in:\n{log}"
    );
}

/// Regression: `relance rules check` accepted an empty script (or one with only
/// comments), whose segment then decided nothing.
#[test]
fn rules_check_fails_on_an_empty_rule_script() {
    let w = workspace_with_rules_and(&[("smb", "  \n// to do\n/* later */\n")], "");
    let run = w.relance(&["rules", "check"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("rules/smb.rhai") && run.stderr.contains("empty"),
        "{}",
        run.stderr
    );
    w.write("rules/smb.rhai", "");
    w.relance(&["rules", "check"]).expect_code(4);
    w.write("rules/smb.rhai", RULE);
    w.relance(&["rules", "check"]).expect_code(0);
}
