//! What operators install next to relance: the Prometheus alert rules and the Grafana
//! dashboard (examples/), checked by `tests/peers/check_alerts.py` (promtool when
//! installed) against a live scrape of a service that has ticked, delivered and
//! answered requests: every metric they name is one the service exposes.

use chrono::{Duration, Utc};

use crate::helpers::{repo, Workspace, MINIMAL_CONFIG};

const RULE: &str = r#"
let open = customer.dunnable;
[ email("reminder_1", open.overdue_between(1, 29), #{ step: "first_reminder" }) ]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_and_the_dashboard_name_only_metrics_the_service_exposes() {
    let yaml_available = std::process::Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !yaml_available {
        eprintln!("SKIPPED the alert rules' check: PyYAML is needed (.ci/run installs it)");
        return;
    }
    // A segment with two variants (the experiment's series), an insurer (its
    // endpoint's), customers with an invoice ten days late (an email each).
    let w = Workspace::new();
    std::fs::create_dir_all(w.path("rules")).unwrap();
    w.write("rules/smb.rhai", RULE);
    w.write(
        "relance.yaml",
        format!(
            "{MINIMAL_CONFIG}insurers:\n  coface-fr:\n    name: Coface\n    declaration_deadline_days: 90\nsegments:\n  smb:\n    schedule: \"0 0 9 * * Mon-Fri\"\n    variants:\n      champion: {{ rules: rules/smb.rhai, weight: 50 }}\n      fast: {{ rules: rules/smb.rhai, weight: 50 }}\n"
        ),
    );
    let due = Utc::now().date_naive() - Duration::days(10);
    let mut customers = String::from("external_id,name,segment,emails\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for i in 1..=6 {
        customers.push_str(&format!("C{i},Client {i},smb,c{i}@client.example\n"));
        invoices.push_str(&format!(
            "F{i},C{i},{},{due},100.00\n",
            due - Duration::days(30)
        ));
    }
    w.import_ledger(&customers, &invoices);
    // Planned now; the running service's dispatcher delivers them (to the outbox
    // folder: no SMTP server is configured).
    w.relance(&["tick"]).expect_code(0);
    let token = w.token("prometheus", "read");
    let service = w.launch();
    let client = reqwest::Client::new();
    // Wait for a delivery to be counted and a request to have been timed.
    let started = std::time::Instant::now();
    let text = loop {
        let text = client
            .get(format!("{}/metrics", service.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("relance_deliveries_total{")
            && text.contains("relance_http_requests_total{")
        {
            break text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no delivery counted:\n{text}\n{}",
            service.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let file = w.write("scrape.txt", &text);
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/peers/check_alerts.py"))
        .arg(&file)
        .current_dir(repo())
        .output()
        .unwrap();
    service.stop();
    assert!(
        out.status.success(),
        "{}{}\n--- scrape\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
