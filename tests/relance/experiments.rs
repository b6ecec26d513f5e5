//! Champion / challenger: variants of a segment share its customers by weight, each
//! action records the variant that decided it, and the experiment report finds the
//! difference a sample history was built with (and none between identical variants).

use serde_json::Value;

use crate::helpers::{
    postgres_admin_url, repo, say_postgres_skipped, TestDb, Workspace, MINIMAL_CONFIG,
};

/// The configuration's head: the minimal one, and the insurer the sample's customers
/// name.
fn head() -> String {
    format!(
        "{MINIMAL_CONFIG}insurers:\n  coface-fr:\n    name: Coface\n    declaration_deadline_days: 90\n"
    )
}

/// A workspace with the shipped rules (and the fast smb ladder) whose smb segment is
/// configured as `smb` (YAML under `segments.smb`).
fn experiment_workspace(smb: &str) -> Workspace {
    let w = Workspace::new();
    std::fs::create_dir_all(w.path("rules")).unwrap();
    for f in [
        "smb.rhai",
        "smb_fast.rhai",
        "key_accounts.rhai",
        "public_sector.rhai",
    ] {
        std::fs::copy(repo().join("rules").join(f), w.path(&format!("rules/{f}"))).unwrap();
    }
    let head = head();
    w.write(
        "relance.yaml",
        format!(
            "{head}segments:
  smb:
    schedule: \"0 0 9 * * Mon-Fri\"
{smb}
  key_accounts:
    rules: rules/key_accounts.rhai
    schedule: \"0 0 9 * * Mon-Fri\"
  public_sector:
    rules: rules/public_sector.rhai
    schedule: \"0 0 9 * * Mon-Fri\"
"
        ),
    );
    w
}

/// A year of sample history (2,000 customers, 12,000 invoices) imported, then the
/// experiment report over it as JSON.
fn experiment_over_sample(w: &Workspace) -> Value {
    w.relance(&[
        "sample",
        "--customers",
        "2000",
        "--invoices",
        "12000",
        "--history-days",
        "365",
        "--as-of",
        "2026-11-30",
        "--out",
        "data",
    ])
    .expect_code(0);
    for kind in [
        "customers",
        "invoices",
        "history",
        "disputes",
        "promises",
        "payments",
    ] {
        w.relance(&["import", kind, &format!("data/{kind}.csv")])
            .expect_code(0);
    }
    let run = w.relance(&[
        "report",
        "experiment",
        "--segment",
        "smb",
        "--from",
        "2026-01-01",
        "--to",
        "2026-11-30",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

fn comparison<'a>(report: &'a Value, figure: &str) -> &'a Value {
    report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["figure"] == figure)
        .unwrap()
}

fn number(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_experiment_report_finds_the_faster_ladder_of_the_sample() {
    let w = experiment_workspace(
        "    variants:
      champion: { rules: rules/smb.rhai, weight: 50 }
      fast: { rules: rules/smb_fast.rhai, weight: 50 }",
    );
    let r = experiment_over_sample(&w);
    if let Err(e) = crate::report_figures::validate(&r) {
        panic!("the experiment report breaks docs/schemas/reports.v1.json:\n{e}\n{r:#}");
    }
    assert_eq!(r["champion"], "champion");
    let arms = r["variants"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    let customers: Vec<u64> = arms
        .iter()
        .map(|a| a["customers"].as_u64().unwrap())
        .collect();
    // About half the smb customers each (70 % of 2,000 are smb).
    for n in &customers {
        assert!((550..=850).contains(n), "{customers:?}");
    }
    // The sample's late payers answer the first reminders: the fast ladder sends them
    // at 1 and 8 days rather than 3 and 15, so more is paid within 14 days.
    let c = comparison(&r, "paid_within_14_days");
    assert_eq!(c["variant"], "fast");
    assert_eq!(c["significant"], true, "{c}");
    assert!(number(&c["ci_low"]) > 0.0, "{c}");
    let verdict = r["verdict"][0].as_str().unwrap();
    assert!(verdict.contains("paid within 14 days +"), "{verdict}");
    // Each figure's interval holds its value.
    for a in arms {
        let e = &a["paid_within_14_days"];
        assert!(number(&e["ci_low"]) <= number(&e["value"]));
        assert!(number(&e["value"]) <= number(&e["ci_high"]));
    }
    // The API gives the same figures; a segment without variants is a 422 on `segment`.
    let token = w.token("reports", "read");
    let service = w.launch();
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{}{path}", service.base))
            .bearer_auth(&token)
            .send()
    };
    let resp = get("/v1/reports/experiment?segment=smb&from=2026-01-01&to=2026-11-30")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let api: Value = resp.json().await.unwrap();
    assert_eq!(api, r);
    let resp = get("/v1/reports/experiment?segment=key_accounts")
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "segment", "{body}");
    let resp = get("/v1/reports/experiment").await.unwrap();
    assert_eq!(resp.status(), 422);

    // A diff of a segment with variants compares with the named variant's script.
    let admin = w.token("diff", "admin");
    let fast = std::fs::read_to_string(w.path("rules/smb_fast.rhai")).unwrap();
    let post = |body: Value| {
        client
            .post(format!("{}/v1/rules/diff", service.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let resp = post(serde_json::json!({"segment": "smb", "script": fast}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "variant", "{body}");
    let resp = post(serde_json::json!({"segment": "smb", "script": fast, "variant": "fast", "as_of": "2026-11-30"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The same script as the running fast variant: no change.
    assert_eq!(body["customers_affected"], 0, "{body}");
    assert_eq!(body["segments"][0]["old"]["label"], "live:fast", "{body}");
    assert_eq!(
        body["segments"][0]["old"]["file"], "rules/smb_fast.rhai",
        "{body}"
    );
}

#[test]
fn rules_diff_names_the_variant_of_a_segment_with_variants() {
    let w = experiment_workspace(
        "    variants:
      champion: { rules: rules/smb.rhai, weight: 80 }
      fast: { rules: rules/smb_fast.rhai, weight: 20 }",
    );
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for i in 1..=20 {
        customers.push_str(&format!("C{i:03},Client {i},smb,c{i}@client.example\n"));
        invoices.push_str(&format!("F{i:03},C{i:03},2026-02-01,2026-03-02,500.00\n"));
    }
    w.import_ledger(&customers, &invoices);
    let run = w.relance(&["rules", "diff", "--segment", "smb", "--to", "live"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("name the variant after a colon")
            && run.stderr.contains("champion, fast"),
        "{}",
        run.stderr
    );
    // Two days late: the fast ladder reminds every customer, the champion none.
    let run = w.relance(&[
        "rules",
        "diff",
        "--segment",
        "smb",
        "--from",
        "live:champion",
        "--to",
        "live:fast",
        "--as-of",
        "2026-03-04",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let d: Value = serde_json::from_str(&run.stdout).unwrap();
    let text = d.to_string();
    assert!(text.contains("reminder_1"), "{d:#}");
    assert!(text.contains("live:fast"), "{d:#}");
}

#[test]
fn the_experiment_report_finds_no_difference_between_identical_variants() {
    let w = experiment_workspace(
        "    experiment: smb-a-a
    variants:
      a: { rules: rules/smb.rhai, weight: 50 }
      b: { rules: rules/smb.rhai, weight: 50 }",
    );
    let r = experiment_over_sample(&w);
    assert_eq!(r["experiment"], "smb-a-a");
    for c in r["comparisons"].as_array().unwrap() {
        assert_eq!(c["significant"], false, "{c}");
    }
    let verdict = r["verdict"][0].as_str().unwrap();
    assert!(
        verdict.starts_with("no significant difference between b and a"),
        "{verdict}"
    );
}

#[test]
fn each_action_records_the_variant_whose_script_decided_it_on_sqlite() {
    variants_are_recorded(None);
}

#[tokio::test]
async fn each_action_records_the_variant_whose_script_decided_it_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped(
            "each_action_records_the_variant_whose_script_decided_it_on_postgres",
        );
    };
    let db = TestDb::postgres(&admin).await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || variants_are_recorded(Some(&url)))
        .await
        .unwrap();
    db.cleanup().await;
}

/// Runs `relance ARGS` in `w`, on the ledger at `db` when given.
fn run_on(w: &Workspace, db: Option<&str>, args: &[&str]) -> crate::helpers::Run {
    let mut all: Vec<&str> = Vec::new();
    if let Some(url) = db {
        all.extend(["--database-url", url]);
    }
    all.extend_from_slice(args);
    w.relance(&all)
}

fn variants_are_recorded(db: Option<&str>) {
    let w = experiment_workspace(
        "    variants:
      champion: { rules: rules/smb.rhai, weight: 50 }
      fast: { rules: rules/smb_fast.rhai, weight: 50 }",
    );
    // 60 customers, each with one invoice two days late on 2026-03-04: only the fast
    // ladder reminds that early (1 to 7 days late; the champion waits until 3).
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for i in 1..=60 {
        customers.push_str(&format!("C{i:03},Client {i},smb,c{i}@client.example\n"));
        invoices.push_str(&format!("F{i:03},C{i:03},2026-02-01,2026-03-02,500.00\n"));
    }
    w.write("customers.csv", customers);
    w.write("invoices.csv", invoices);
    run_on(&w, db, &["import", "customers", "customers.csv"]).expect_code(0);
    run_on(&w, db, &["import", "invoices", "invoices.csv"]).expect_code(0);
    run_on(&w, db, &["tick", "--as-of", "2026-03-04"]).expect_code(0);
    let run = run_on(
        &w,
        db,
        &["actions", "list", "--format", "json", "--limit", "500"],
    );
    run.expect_code(0);
    let actions: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (mut fast, mut champion) = (0, 0);
    for i in 1..=60 {
        let id = format!("C{i:03}");
        let explain = run_on(
            &w,
            db,
            &["explain", &id, "--as-of", "2026-03-04", "--format", "json"],
        );
        explain.expect_code(0);
        let e: Value = serde_json::from_str(&explain.stdout).unwrap();
        let variant = e["variant"].as_str().unwrap().to_string();
        let mine: Vec<&Value> = actions.iter().filter(|a| a["customer"] == id).collect();
        if variant == "fast" {
            fast += 1;
            assert_eq!(mine.len(), 1, "{id}: {mine:?}");
            assert_eq!(mine[0]["step"], "reminder_1");
            assert_eq!(mine[0]["variant"], "fast");
            assert!(mine[0]["rule_file"]
                .as_str()
                .unwrap()
                .ends_with("smb_fast.rhai"));
        } else {
            champion += 1;
            assert_eq!(variant, "champion");
            assert!(mine.is_empty(), "{id}: {mine:?}");
        }
    }
    assert!(
        fast >= 15 && champion >= 15,
        "{fast} fast, {champion} champion"
    );
    // The effectiveness report keeps the variants apart.
    let run = run_on(
        &w,
        db,
        &[
            "report",
            "effectiveness",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--format",
            "csv",
        ],
    );
    run.expect_code(0);
    assert!(
        run.stdout.lines().next().unwrap().contains("variant"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_segment_with_both_rules_and_variants_or_only_zero_weights_is_refused() {
    let w = experiment_workspace(
        "    rules: rules/smb.rhai
    variants:
      fast: { rules: rules/smb_fast.rhai, weight: 20 }",
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("segments.smb: give either rules (one script) or variants"),
        "{}",
        run.stderr
    );
    let w = experiment_workspace(
        "    variants:
      champion: { rules: rules/smb.rhai, weight: 0 }
      fast: { rules: rules/smb_fast.rhai, weight: 0 }",
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(run.stderr.contains("every weight is 0"), "{}", run.stderr);
    // A segment without variants has no experiment to report on: a usage error.
    let w = experiment_workspace("    rules: rules/smb.rhai");
    let run = w.relance(&["report", "experiment", "--segment", "smb"]);
    run.expect_code(2);
    assert!(run.stderr.contains("has no variants"), "{}", run.stderr);
}
