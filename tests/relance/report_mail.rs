//! The monthly report emailed to the credit managers (`reports.monthly`): planned once
//! per month and recipient by the scheduler (or `relance report send`), sent through a
//! real SMTP server (aiosmtpd) with the PDF attached, retried, recorded, and never sent
//! twice — whatever the number of slots, restarts or instances.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Datelike;

use crate::channels::SmtpSink;
use crate::helpers::{
    postgres_admin_url, say_postgres_skipped, workspace_with_rules_and, Workspace,
};

/// The month before today's (in Paris, the workspaces' time zone), as `YYYY-MM`, and its
/// French name.
fn last_month() -> (String, String) {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let last = today.with_day(1).unwrap().pred_opt().unwrap();
    const FR: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    (
        format!("{:04}-{:02}", last.year(), last.month()),
        format!("{} {}", FR[last.month0() as usize], last.year()),
    )
}

/// A workspace whose rules do nothing (only the report is mailed), a small ledger, and
/// `reports.monthly` to two credit managers on `schedule`.
fn report_workspace(smtp_port: Option<u16>, schedule: &str) -> Workspace {
    let mut extra = format!(
        "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 3\nreports:\n  monthly:\n    schedule: \"{schedule}\"\n    recipients: [dcf@test.example, \"Credit Manager <credit@test.example>\"]\n"
    );
    if let Some(port) = smtp_port {
        extra.push_str(&format!(
            "channels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {port}, security: plain, timeout_seconds: 5 }}\n    from: \"Test SAS <relance@test.example>\"\n    bcc: archive@test.example\n"
        ));
    }
    let w = workspace_with_rules_and(&[("smb", "[]")], &extra);
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,compta@un.example\nC2,Deux SAS,smb,ap@deux.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-05,2026-02-04,1234.56\nF2,C2,2026-06-01,2026-07-01,800.00\n",
    );
    w
}

/// The PDF attached to an `.eml` file, as Python's email parser (not ours) reads it,
/// turned into text by poppler's `pdftotext`.
fn attached_pdf_text(eml: &Path) -> String {
    let pdf = eml.with_extension("pdf");
    let status = Command::new("python3")
        .args([
            "-c",
            "import email,sys\nm=email.message_from_binary_file(open(sys.argv[1],'rb'))\nparts=[p for p in m.walk() if p.get_content_type()=='application/pdf']\nassert len(parts)==1, len(parts)\nopen(sys.argv[2],'wb').write(parts[0].get_payload(decode=True))",
        ])
        .arg(eml)
        .arg(&pdf)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "no single PDF attached to {}",
        eml.display()
    );
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).replace('\u{a0}', " ")
}

fn deliveries(w: &Workspace) -> Vec<serde_json::Value> {
    w.relance(&["report", "deliveries", "--format", "json"])
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_monthly_report_is_emailed_once_per_recipient_on_its_schedule_retried_and_recorded() {
    let mail = tempfile::tempdir().unwrap();
    // The server refuses the first message (451): that recipient's delivery is retried.
    let sink = SmtpSink::start(mail.path(), &["--fail-first", "1"]);
    // A slot every second: the same month is planned again and again.
    let w = report_workspace(Some(sink.port), "* * * * * *");
    let service = w.launch();
    wait_until("two reports accepted", || sink.messages().len() >= 2);
    // More slots fire; nothing more may be sent.
    std::thread::sleep(Duration::from_secs(3));
    let log = service.stop();
    let got = sink.messages();
    assert_eq!(got.len(), 2, "one message per recipient:\n{log}");

    let (period, month) = last_month();
    let mut to: Vec<&str> = got.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        ["Credit Manager <credit@test.example>", "dcf@test.example"]
    );
    for m in &got {
        assert_eq!(
            m["rcpt_tos"].as_array().unwrap().len(),
            1,
            "a report goes to its recipient only, not to the customers' archive bcc: {m}"
        );
        let subject = m["subject"].as_str().unwrap();
        assert!(
            subject.contains(&month) && subject.contains("Test SAS"),
            "{subject}"
        );
        assert!(m["from"].as_str().unwrap().contains("relance@test.example"));
        let id = m["message_id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("<report-monthly-{period}-")),
            "{id}"
        );
        let files = m["attachments"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{m}");
        assert_eq!(files[0]["content_type"], "application/pdf");
        assert_eq!(
            files[0]["filename"],
            format!("rapport-poste-clients-{period}.pdf")
        );
    }
    assert_ne!(got[0]["message_id"], got[1]["message_id"]);

    // The report in the attachment, read by an independent extractor.
    let text = attached_pdf_text(&mail.path().join("001.eml"));
    assert!(text.contains("Test SAS"), "{text}");
    assert!(
        text.contains("Balance âgée") || text.contains("balance âgée"),
        "{text}"
    );

    // The record: both sent, one after a retry, with the SHA-256 of the PDF they carried.
    let rows = deliveries(&w);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut attempts: Vec<i64> = rows
        .iter()
        .map(|r| r["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, [1, 2], "{rows:?}");
    for r in &rows {
        assert_eq!(r["status"], "sent", "{r}");
        assert_eq!(r["period"], period);
        assert!(r["sent_at"].is_string());
        let sha = r["document_sha256"].as_str().unwrap();
        assert!(
            got.iter().any(|m| m["attachments"][0]["sha256"] == sha),
            "the recorded digest is the attachment's: {r}"
        );
    }
    assert!(log.contains("report sent"), "{log}");
    assert!(log.contains("report not sent; retrying"), "{log}");

    // A restart catches up the latest slot: already sent, nothing goes out again.
    let service = w.launch();
    std::thread::sleep(Duration::from_secs(2));
    service.stop();
    assert_eq!(sink.messages().len(), 2, "a restart sent the report again");
}

#[test]
fn report_send_emails_the_month_once_and_says_so_the_second_time() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let w = report_workspace(Some(sink.port), "0 0 7 1 * *");
    let run = w.relance(&["report", "deliveries"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("no report emailed yet"),
        "{}",
        run.stdout
    );

    let run = w.relance(&["report", "send", "--period", "2026-10"]);
    run.expect_code(0);
    assert_eq!(sink.messages().len(), 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("2026-10 to dcf@test.example: sent"),
        "{}",
        run.stdout
    );
    let text = attached_pdf_text(&mail.path().join("002.eml"));
    assert!(
        text.contains("octobre 2026") || text.contains("oct. 26"),
        "{text}"
    );

    let run = w.relance(&["report", "send", "--period", "2026-10", "--format", "json"]);
    run.expect_code(0);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["planned"], 0, "{out}");
    assert_eq!(out["steps"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(sink.messages().len(), 2, "sent twice");
    let run = w.relance(&["report", "send", "--period", "2026-10"]);
    assert!(
        run.stdout
            .contains("2 recipient(s) already had this report"),
        "{}",
        run.stdout
    );

    let run = w.relance(&["report", "deliveries"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("2026-10") && run.stdout.contains("sent"),
        "{}",
        run.stdout
    );

    let run = w.relance(&["report", "send", "--period", "2026-13"]);
    run.expect_code(2);
    assert!(run.stderr.contains("YYYY-MM"), "{}", run.stderr);
}

#[test]
fn report_send_without_smtp_writes_the_message_to_the_outbox_folder() {
    let w = report_workspace(None, "0 0 7 1 * *");
    w.relance(&["report", "send", "--period", "2026-09"])
        .expect_code(0);
    let dir = w.path("outbox/reports");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let text = attached_pdf_text(&files[0]);
    assert!(text.contains("Test SAS"), "{text}");
    let rows = deliveries(&w);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
}

#[test]
fn report_send_without_a_monthly_report_configured_is_a_configuration_error() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    let run = w.relance(&["report", "send"]);
    run.expect_code(3);
    assert!(run.stderr.contains("reports.monthly"), "{}", run.stderr);
}

#[test]
fn an_unreachable_smtp_server_leaves_the_report_to_be_retried_and_the_command_fails() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = report_workspace(Some(port), "0 0 7 1 * *");
    let config = std::fs::read_to_string(w.path("relance.yaml"))
        .unwrap()
        .replace("backoff_base_seconds: 0", "backoff_base_seconds: 600");
    w.write("relance.yaml", config);
    let run = w.relance(&["report", "send", "--period", "2026-08"]);
    run.expect_code(1);
    assert!(run.stdout.contains("will retry"), "{}", run.stdout);
    let rows = deliveries(&w);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["status"], "retrying", "{r}");
        assert!(r["last_error"].as_str().unwrap().contains("SMTP"), "{r}");
    }
}

#[tokio::test]
async fn two_instances_on_postgres_send_the_monthly_report_once_per_recipient() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped(
            "two_instances_on_postgres_send_the_monthly_report_once_per_recipient",
        );
    };
    let db = crate::helpers::TestDb::postgres(&admin).await;
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let w = report_workspace(Some(sink.port), "* * * * * *");
    let url = db.url.clone();
    for k in ["customers", "invoices"] {
        w.relance(&["--database-url", &url, "import", k, &format!("{k}.csv")])
            .expect_code(0);
    }
    let start = |name: &'static str| {
        let url = url.clone();
        w.launch_with(move |config, opts| {
            config.database.url = relance::config::DatabaseUrl::new(url);
            opts.instance = name.to_string();
        })
    };
    let (a, b) = (start("instance-a"), start("instance-b"));
    let waited = tokio::task::spawn_blocking({
        let dir = mail.path().to_path_buf();
        move || {
            wait_until("two reports accepted", || {
                std::fs::read_dir(&dir)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                            .count()
                    })
                    .unwrap_or(0)
                    >= 2
            })
        }
    });
    waited.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (log_a, log_b) = (a.stop(), b.stop());
    assert_eq!(
        sink.messages().len(),
        2,
        "one message per recipient with two instances:\n{log_a}\n{log_b}"
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT recipient, status, attempts::BIGINT FROM report_deliveries ORDER BY recipient",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "sent" && r.2 == 1), "{rows:?}");
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_interrupted_report_send_is_claimed_again_with_the_same_key_and_the_old_holder_cannot_record(
) {
    use relance::store::report_deliveries::ReportOutcome;
    let mut dbs = vec![crate::helpers::TestDb::sqlite()];
    match postgres_admin_url() {
        Some(admin) => dbs.push(crate::helpers::TestDb::postgres(&admin).await),
        None => say_postgres_skipped(
            "an_interrupted_report_send_is_claimed_again_with_the_same_key_and_the_old_holder_cannot_record",
        ),
    }
    for db in dbs {
        let store = db.open().await;
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let slot = t("2026-12-01T06:00:00Z");
        let who = vec![
            (
                "a@test.example".to_string(),
                "report-monthly-2026-11-a".to_string(),
            ),
            (
                "b@test.example".to_string(),
                "report-monthly-2026-11-b".to_string(),
            ),
        ];
        assert_eq!(
            store
                .plan_report_deliveries("monthly", "2026-11", slot, &who, slot)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .plan_report_deliveries("monthly", "2026-11", slot, &who, slot)
                .await
                .unwrap(),
            0,
            "planned twice"
        );
        // Worker A claims the first and dies holding it (lease until 06:15).
        let first = store
            .claim_report_delivery("A", t("2026-12-01T06:15:00Z"), t("2026-12-01T06:00:01Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.key, "report-monthly-2026-11-a");
        // Before the lease expires B gets the other one, not A's.
        let second = store
            .claim_report_delivery("B", t("2026-12-01T06:20:00Z"), t("2026-12-01T06:05:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.key, "report-monthly-2026-11-b");
        assert!(store
            .finish_report_delivery(
                second.id,
                "B",
                &ReportOutcome::Sent {
                    document_sha256: "ab".into()
                },
                t("2026-12-01T06:05:01Z")
            )
            .await
            .unwrap());
        assert!(store
            .claim_report_delivery("B", t("2026-12-01T06:30:00Z"), t("2026-12-01T06:10:00Z"))
            .await
            .unwrap()
            .is_none());
        // After it expires, B claims A's again: same key (same Message-ID), second attempt.
        let again = store
            .claim_report_delivery("B", t("2026-12-01T06:40:00Z"), t("2026-12-01T06:16:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.id, again.key.as_str(), again.attempts),
            (first.id, "report-monthly-2026-11-a", 2)
        );
        // A, back from the dead, cannot record over B's claim.
        assert!(!store
            .finish_report_delivery(
                first.id,
                "A",
                &ReportOutcome::Dead {
                    error: "late".into()
                },
                t("2026-12-01T06:17:00Z")
            )
            .await
            .unwrap());
        assert!(store
            .finish_report_delivery(
                again.id,
                "B",
                &ReportOutcome::Retry {
                    error: "451".into(),
                    at: t("2026-12-01T07:00:00Z")
                },
                t("2026-12-01T06:17:00Z")
            )
            .await
            .unwrap());
        // Not due before its retry time.
        assert!(store
            .claim_report_delivery("B", t("2026-12-01T07:30:00Z"), t("2026-12-01T06:59:00Z"))
            .await
            .unwrap()
            .is_none());
        let listed = store.report_deliveries(10).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].status, "sent");
        assert_eq!(listed[1].status, "retrying");
        assert_eq!(listed[1].last_error.as_deref(), Some("451"));
        store.close().await;
        db.cleanup().await;
    }
}
