//! The web console in a real browser: Debian's headless chromium driven through
//! chromedriver (tests/peers/console_browser.py) against `relance serve` on loopback.
//! A collector signs in, records a promise from its call queue, sees the customer's
//! page change, and the promise blocks the next reminder; a viewer sees no form; a form
//! without its token is refused; the dashboard's aged balance is the report's.

use chrono::{Duration, Utc};
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
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser scenario failed:\n{}\n--- service log\n{}",
        String::from_utf8_lossy(&out.stderr),
        served.log.lock().unwrap()
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
    assert_eq!(seen["post_without_token"], 403, "{seen}");
    assert_eq!(seen["viewer_forms"], 0, "{seen}");
    assert_eq!(seen["viewer_post"], 403, "{seen}");
    assert_eq!(seen["search_rows"], 1, "{seen}");
    assert_eq!(seen["dashboard_has_chart"], true, "{seen}");

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
