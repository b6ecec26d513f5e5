//! `relance rules diff` and `POST /v1/rules/diff`: two versions of a script compared on
//! the real ledger, the customers whose actions change found exactly (the expected sets
//! computed here from the ledger's own dates, not by relance), versions from files, git
//! revisions and the live script, and clear errors for versions that cannot be read or
//! do not compile.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate};

use crate::helpers::{repo, Workspace};

const AS_OF: &str = "2026-06-30";

/// The shipped smb rules, on a ledger where customer `Dnn` has one invoice of 100 € `nn`
/// days past due (1 to 70) and customer `Pnn` two: one `nn` days past due (30 to 44) and
/// one 50 days past due. Nobody is insured, no balance reaches a call.
fn ledger_as_of(as_of: NaiveDate) -> (Workspace, Vec<(String, Vec<i64>)>) {
    let shipped = std::fs::read_to_string(repo().join("rules/smb.rhai")).unwrap();
    let w = crate::helpers::workspace_with_rules_and(&[("smb", &shipped)], "");
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    let mut ledger = Vec::new();
    let mut n = 0;
    let mut invoice = |customer: &str, days: i64, invoices: &mut String| {
        n += 1;
        let due = as_of - Duration::days(days);
        let issued = due - Duration::days(30);
        invoices.push_str(&format!("F{n:04},{customer},{issued},{due},100.00\n"));
    };
    for d in 1..=70 {
        let c = format!("D{d:02}");
        customers.push_str(&format!("{c},Client {c},smb,{c}@client.example\n"));
        invoice(&c, d, &mut invoices);
        ledger.push((c, vec![d]));
    }
    for d in (30..=44).step_by(2) {
        let c = format!("P{d:02}");
        customers.push_str(&format!("{c},Client {c},smb,{c}@client.example\n"));
        invoice(&c, d, &mut invoices);
        invoice(&c, 50, &mut invoices);
        ledger.push((c, vec![d, 50]));
    }
    w.import_ledger(&customers, &invoices);
    (w, ledger)
}

fn ledger() -> (Workspace, Vec<(String, Vec<i64>)>) {
    ledger_as_of(NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").unwrap())
}

fn customers_of(diff: &serde_json::Value, change: &str) -> BTreeSet<String> {
    diff["examples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change"] == change && e["kind"] == "formal_notice")
        .map(|e| e["customer"].as_str().unwrap().to_string())
        .collect()
}

fn step<'a>(diff: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    diff["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {diff}"))
}

#[test]
fn diff_of_the_formal_notice_threshold_lists_exactly_the_customers_whose_notice_appears_or_changes()
{
    let (w, ledger) = ledger();
    let shipped = std::fs::read_to_string(w.path("rules/smb.rhai")).unwrap();
    assert!(shipped.contains("formal_notice(open.overdue(45)"));
    w.write(
        "smb_30.rhai",
        shipped.replace(
            "formal_notice(open.overdue(45)",
            "formal_notice(open.overdue(30)",
        ),
    );
    // Expected, from the ledger's dates: a notice names the invoices 45 days past due or
    // more today, 30 or more with the new threshold.
    let names = |threshold: i64, days: &[i64]| -> Vec<i64> {
        days.iter().copied().filter(|d| *d >= threshold).collect()
    };
    let mut appears = BTreeSet::new();
    let mut changes = BTreeSet::new();
    let mut same = 0;
    for (c, days) in &ledger {
        let (old, new) = (names(45, days), names(30, days));
        match (old.is_empty(), new.is_empty()) {
            (true, false) => {
                appears.insert(c.clone());
            }
            (false, false) if old != new => {
                changes.insert(c.clone());
            }
            (false, false) => same += 1,
            _ => {}
        }
    }
    assert_eq!(appears.len(), 15, "D30 to D44");
    assert_eq!(changes.len(), 8, "P30 to P44");

    let run = w.relance(&[
        "rules",
        "diff",
        "--segment",
        "smb",
        "--to",
        "smb_30.rhai",
        "--as-of",
        AS_OF,
        "--examples",
        "100",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(customers_of(&d, "only_new"), appears);
    assert_eq!(customers_of(&d, "changed"), changes);
    assert!(customers_of(&d, "only_old").is_empty());
    let notice = step(&d, "formal_notice");
    assert_eq!(notice["only_new"]["actions"], appears.len());
    assert_eq!(notice["changed"]["actions"], changes.len());
    assert_eq!(notice["only_old"]["actions"], 0);
    assert_eq!(notice["unchanged"], same);
    // Each new notice names one invoice of 100 €.
    assert_eq!(
        notice["only_new"]["amounts"],
        serde_json::json!([{"currency": "EUR", "amount": format!("{}.00", 100 * appears.len())}])
    );
    assert_eq!(d["customers"], ledger.len());
    assert_eq!(d["customers_affected"], appears.len() + changes.len());
    // The first line says it.
    assert_eq!(
        d["headline"][0],
        format!(
            "{} formal notices more than today ({} → {})",
            appears.len(),
            same + changes.len(),
            same + changes.len() + appears.len()
        )
    );
    // Why: the constructor's call named other invoices.
    let d33 = d["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["customer"] == "D33")
        .unwrap();
    assert_eq!(d33["new"]["invoices"], serde_json::json!(["F0033"]));
    assert!(d33["old"].is_null());
    assert!(
        d33["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["version"] == "new" && r["source"].as_str().unwrap().contains("overdue(30)")),
        "{d33}"
    );

    // The other way round, the same customers lose their notice.
    let run = w.relance(&[
        "rules",
        "diff",
        "--segment",
        "smb",
        "--from",
        "smb_30.rhai",
        "--to",
        "live",
        "--as-of",
        AS_OF,
        "--examples",
        "100",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let back: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(customers_of(&back, "only_old"), appears);
    assert_eq!(
        back["headline"][0],
        format!(
            "{} formal notices fewer than today ({} → {})",
            appears.len(),
            same + changes.len() + appears.len(),
            same + changes.len()
        )
    );

    // For people: the summary first, then the customers with their reasons.
    let run = w.relance(&[
        "rules",
        "diff",
        "--segment",
        "smb",
        "--to",
        "smb_30.rhai",
        "--as-of",
        AS_OF,
    ]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("smb: live (rules/smb.rhai"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[1].trim(), d["headline"][0].as_str().unwrap());
    assert!(
        run.stdout.contains("Only in the new version (first 5):"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("nothing was written or sent"),
        "{}",
        run.stdout
    );

    // The same script: no change.
    let run = w.relance(&[
        "rules",
        "diff",
        "--segment",
        "smb",
        "--to",
        "rules/smb.rhai",
        "--as-of",
        AS_OF,
    ]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!(
            "no change: both versions plan the same actions for all {} customers",
            ledger.len()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn diff_reads_versions_from_git_revisions_and_refuses_what_it_cannot_read_or_compile() {
    let (w, _) = ledger();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(w.path("rules"))
            .args(["-c", "user.name=t", "-c", "user.email=t@test.example"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "smb.rhai"]);
    git(&["commit", "-qm", "shipped rules"]);
    let shipped = std::fs::read_to_string(w.path("rules/smb.rhai")).unwrap();
    w.write(
        "rules/smb.rhai",
        shipped.replace(
            "formal_notice(open.overdue(45)",
            "formal_notice(open.overdue(60)",
        ),
    );
    // Without --segment, every segment: here smb, as committed against as it stands.
    let run = w.relance(&[
        "rules", "diff", "--from", "git:HEAD", "--to", "live", "--as-of", AS_OF, "--format", "json",
    ]);
    run.expect_code(0);
    let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(d["segments"][0]["old"]["label"], "git:HEAD");
    assert_eq!(d["segments"][0]["new"]["label"], "live");
    // D45 to D59 lose their notice, and so do P30 to P44 (their oldest invoice is 50
    // days past due).
    assert_eq!(step(&d, "formal_notice")["only_old"]["actions"], 15 + 8);

    let run = w.relance(&["rules", "diff", "--from", "git:no-such-rev", "--to", "live"]);
    run.expect_code(2);
    assert!(run.stderr.contains("git:no-such-rev"), "{}", run.stderr);
    let run = w.relance(&["rules", "diff", "--segment", "smb", "--to", "missing.rhai"]);
    run.expect_code(2);
    assert!(run.stderr.contains("missing.rhai"), "{}", run.stderr);
    let run = w.relance(&["rules", "diff", "--segment", "nope", "--to", "live"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("unknown segment 'nope' (the configuration has"),
        "{}",
        run.stderr
    );

    w.write(
        "broken.rhai",
        "[\n  email(\"reminder_1\", customer.dunable.overdue(1))\n]\n",
    );
    let run = w.relance(&["rules", "diff", "--segment", "smb", "--to", "broken.rhai"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("new version of smb (broken.rhai)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("broken.rhai:2"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[tokio::test]
async fn the_api_diff_compares_the_running_script_with_the_one_posted_as_the_command_does() {
    // The service ticks as soon as it starts (as of today): the ledger's invoices fall
    // due in the future, and the diff looks at that future, so what the tick did today
    // does not blur it.
    let as_of = chrono::Utc::now().date_naive() + Duration::days(120);
    let (w, _) = ledger_as_of(as_of);
    let as_of = as_of.to_string();
    let shipped = std::fs::read_to_string(w.path("rules/smb.rhai")).unwrap();
    let proposed = shipped.replace(
        "formal_notice(open.overdue(45)",
        "formal_notice(open.overdue(30)",
    );
    w.write("smb_30.rhai", &proposed);
    let admin = w.token("ops", "admin");
    let reader = w.token("viewer", "read");
    let service = w.launch();
    service.wait_for_line(&["tick done", "segment=smb"]);
    let client = reqwest::Client::new();
    let post = |token: &str, body: serde_json::Value| {
        client
            .post(format!("{}/v1/rules/diff", service.base))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = post(
        &admin,
        serde_json::json!({"segment": "smb", "script": proposed, "as_of": as_of, "examples": 100}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let api: serde_json::Value = r.json().await.unwrap();
    let cli: serde_json::Value = serde_json::from_str(
        &w.relance(&[
            "rules",
            "diff",
            "--segment",
            "smb",
            "--to",
            "smb_30.rhai",
            "--as-of",
            &as_of,
            "--examples",
            "100",
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    for field in [
        "headline",
        "kinds",
        "steps",
        "customers",
        "customers_affected",
    ] {
        assert_eq!(api[field], cli[field], "{field}");
    }
    assert_eq!(
        customers_of(&api, "only_new"),
        customers_of(&cli, "only_new")
    );
    assert_eq!(customers_of(&api, "only_new").len(), 15, "{api}");
    assert_eq!(api["segments"][0]["old"]["label"], "live");
    assert_eq!(
        api["segments"][0]["old"]["hash"],
        cli["segments"][0]["old"]["hash"]
    );

    let r = post(
        &reader,
        serde_json::json!({"segment": "smb", "script": proposed}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "the diff needs the admin scope");
    let r = post(
        &admin,
        serde_json::json!({"segment": "smb", "script": "[ email(\"x\", customer.nope) ]"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["field"], "script", "{e}");
    let r = post(
        &admin,
        serde_json::json!({"segment": "vip", "script": proposed}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["field"], "segment", "{e}");
    let r = post(&admin, serde_json::json!({"segment": "smb"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    service.stop();
}

#[test]
fn the_live_version_under_the_embedded_default_is_the_shipped_script_when_no_file_is_there() {
    // An empty directory: no relance.yaml, no rules/ (the binary alone).
    let dir = tempfile::tempdir().unwrap();
    let run = crate::helpers::relance_in(dir.path(), &["rules", "diff", "--to", "live"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("smb: live (rules/smb.rhai"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no change"), "{}", run.stdout);
}
