//! Real transports against real peers on loopback: an SMTP server (aiosmtpd, an
//! independent implementation) and HTTP servers shaped like Twilio, Brevo and a generic
//! gateway; call tasks whose outcome feeds back into the ledger; templates checked by
//! `relance rules check`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::helpers::{workspace_with_rules_and, Run, Workspace};

/// The SMTP peer: `tests/peers/smtp_sink.py`, stopped when dropped.
pub(crate) struct SmtpSink {
    child: Child,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    pub(crate) fn start(dir: &Path, args: &[&str]) -> SmtpSink {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP peer (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the SMTP peer did not start (is aiosmtpd installed?): {line:?}")
        });
        SmtpSink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// What the server accepted, in order.
    pub(crate) fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const NBSP: char = '\u{a0}';

fn email_workspace(port: u16, extra_rules: &str) -> Workspace {
    let rule = format!("[email(\"reminder_1\", customer.dunnable.overdue(1)), {extra_rules}]");
    let config = format!(
        "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\nchannels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {port}, security: plain, timeout_seconds: 5 }}\n    from: \"Test SAS <relance@test.example>\"\n    reply_to: credit@test.example\n    bcc: archive@test.example\n"
    );
    let w = workspace_with_rules_and(&[("smb", &rule)], &config);
    w.import_ledger(
        "external_id,name,segment,emails,locale,collector,phones\n\
         C1,Un SARL,smb,compta@un.example,fr,marie@test.example,+33612345678\n\
         C2,Two Ltd,smb,ap@two.example,en,,+33145678901\n",
        "number,customer,issue_date,due_date,amount\n\
         F1,C1,2026-01-01,2026-01-31,1234.56\n\
         F2,C1,2026-01-05,2026-02-04,50.00\n\
         F3,C2,2026-01-01,2026-01-31,2500.00\n",
    );
    w
}

fn action_list(w: &Workspace) -> Vec<serde_json::Value> {
    w.relance(&["actions", "list", "--format", "json"])
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_email_reaches_the_smtp_server_with_its_recipients_both_parts_and_locale_formatting() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let w = email_workspace(sink.port, "");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let run = w.relance(&["dispatch"]);
    run.expect_code(0);
    let got = sink.messages();
    assert_eq!(got.len(), 2, "{}\n{}", run.stdout, run.stderr);

    let fr = got
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("un.example"))
        .unwrap();
    let mut rcpt: Vec<&str> = fr["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rcpt.sort();
    assert_eq!(rcpt, ["archive@test.example", "compta@un.example"]);
    assert!(
        !fr["to"].as_str().unwrap().contains("archive"),
        "bcc is not a header"
    );
    assert_eq!(fr["mail_from"], "relance@test.example");
    // Replies go to the customer's collector.
    assert_eq!(fr["reply_to"], "marie@test.example");
    assert_eq!(fr["content_type"], "multipart/alternative");
    let subject = fr["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Test SAS : relance pour 2 factures"),
        "{subject}"
    );
    let text = fr["text"].as_str().unwrap();
    let html = fr["html"].as_str().unwrap();
    for part in [text, html] {
        for needle in [
            "F1".to_string(),
            "F2".to_string(),
            format!("1{NBSP}234,56{NBSP}€"),
            format!("50,00{NBSP}€"),
            format!("1{NBSP}284,56{NBSP}€"),
            "31/01/2026".to_string(),
        ] {
            assert!(part.contains(&needle), "{needle:?} missing from\n{part}");
        }
    }
    assert!(text.contains("30 jours de retard"), "{text}");
    assert!(html.contains("<table"), "{html}");

    let en = got
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("two.example"))
        .unwrap();
    assert_eq!(
        en["reply_to"], "credit@test.example",
        "no collector: the configured reply-to"
    );
    let text = en["text"].as_str().unwrap();
    assert!(
        text.contains("€2,500.00") && text.contains("31 Jan 2026"),
        "{text}"
    );
    assert!(en["subject"]
        .as_str()
        .unwrap()
        .contains("overdue invoice F3"));

    // The Message-ID is recorded in the action log.
    let sent: Vec<String> = action_list(&w)
        .iter()
        .map(|a| a["provider_ref"].as_str().unwrap().to_string())
        .collect();
    for m in &got {
        assert!(
            sent.contains(&m["message_id"].as_str().unwrap().to_string()),
            "{sent:?} {m}"
        );
    }
}

#[test]
fn a_temporary_smtp_failure_is_retried_and_delivers_once() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &["--fail-first", "1"]);
    let w = email_workspace(sink.port, "");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let first = w.relance(&["dispatch", "--once"]);
    assert!(first.stdout.contains("will retry"), "{}", first.stdout);
    assert!(first.stdout.contains("451"), "{}", first.stdout);
    w.relance(&["dispatch"]).expect_code(0);
    let got = sink.messages();
    assert_eq!(got.len(), 2, "each customer's email accepted once");
    let actions = action_list(&w);
    assert!(actions.iter().all(|a| a["status"] == "sent"), "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .map(|a| a["attempts"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
}

#[test]
fn a_permanent_smtp_rejection_is_recorded_as_failed_and_not_retried() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &["--reject"]);
    let w = email_workspace(sink.port, "");
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let run = w.relance(&["dispatch"]);
    run.expect_code(0);
    assert!(run.stdout.contains("failed ("), "{}", run.stdout);
    assert!(sink.messages().is_empty());
    let actions = action_list(&w);
    assert!(
        actions
            .iter()
            .all(|a| a["status"] == "failed" && a["attempts"] == 1),
        "{actions:?}"
    );
    assert!(
        actions[0]["last_error"].as_str().unwrap().contains("550"),
        "{actions:?}"
    );
    // Nothing is left to retry; an operator can requeue it.
    assert!(w.relance(&["dispatch"]).stdout.contains("nothing to send"));
    w.relance(&["actions", "retry", "1"]).expect_code(0);
}

// ---- SMS over HTTP -------------------------------------------------------------------

/// A scripted answer: status, headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Clone, Default)]
pub(crate) struct Seen {
    pub(crate) requests: Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>>,
}

/// An HTTP server on a free loopback port answering each request with the next of
/// `answers` (the last one repeats), recording every request.
pub(crate) async fn http_peer(answers: Vec<Answer>) -> (String, Seen) {
    use axum::response::IntoResponse;
    let seen = Seen::default();
    let answers = Arc::new(answers);
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let record = record.clone();
        let answers = answers.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let n = {
                let mut r = record.requests.lock().unwrap();
                r.push((
                    parts.uri.path().to_string(),
                    parts.headers.clone(),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                r.len()
            };
            let (status, headers, body) = answers[(n - 1).min(answers.len() - 1)].clone();
            let mut resp =
                (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn sms_workspace(channel: &str) -> Workspace {
    let rule = "sms(\"sms_reminder\", customer.dunnable.overdue(1))";
    let config = format!(
        "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\nchannels:\n  sms:\n{channel}"
    );
    let w = workspace_with_rules_and(&[("smb", rule)], &config);
    w.import_ledger(
        "external_id,name,segment,emails,locale,phones\n\
         C1,Un SARL,smb,compta@un.example,fr,+33612345678\n\
         C2,Deux SA,smb,ap@deux.example,fr,+33145678901\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1234.56\nF3,C2,2026-01-01,2026-01-31,99.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w
}

pub(crate) async fn run(w: &Arc<Workspace>, args: &'static [&'static str]) -> Run {
    let w = w.clone();
    tokio::task::spawn_blocking(move || w.relance(args))
        .await
        .unwrap()
}

fn status_of(w: &Workspace, customer: &str) -> serde_json::Value {
    action_list(w)
        .into_iter()
        .find(|a| a["customer"] == customer)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_is_retried_after_429_with_retry_after_and_sends_once_with_the_same_idempotency_token(
) {
    let (url, seen) = http_peer(vec![
        (
            429,
            vec![("retry-after", "1")],
            r#"{"code":20429,"message":"Too Many Requests"}"#,
        ),
        (
            201,
            vec![],
            r#"{"sid":"SM0123456789abcdef","status":"queued"}"#,
        ),
    ])
    .await;
    let w = Arc::new(sms_workspace(&format!(
        "    provider: twilio\n    twilio: {{ account_sid: AC123, auth_token: tok-secret, from: \"+33700000000\", base_url: \"{url}\" }}\n"
    )));
    let first = run(&w, &["dispatch"]).await;
    first.expect_code(0);
    assert!(first.stdout.contains("will retry"), "{}", first.stdout);
    // The customer without a mobile number is blocked with the reason.
    let blocked = status_of(&w, "C2");
    assert_eq!(blocked["status"], "blocked");
    assert!(blocked["last_error"]
        .as_str()
        .unwrap()
        .contains("no valid E.164 mobile number"));
    // Retry-After (1 s) is honoured, not the zero backoff.
    let early = run(&w, &["dispatch"]).await;
    assert!(early.stdout.contains("nothing to send"), "{}", early.stdout);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    run(&w, &["dispatch"]).await.expect_code(0);

    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    for (path, headers, body) in &requests {
        assert_eq!(path, "/2010-04-01/Accounts/AC123/Messages.json");
        // HTTP Basic: account SID and auth token.
        let auth = headers["authorization"].to_str().unwrap();
        assert_eq!(auth, "Basic QUMxMjM6dG9rLXNlY3JldA==");
        assert!(
            body.contains("To=%2B33612345678") && body.contains("From=%2B33700000000"),
            "{body}"
        );
        assert!(body.contains("Body="), "{body}");
    }
    assert_eq!(
        requests[0].1["i-twilio-idempotency-token"],
        requests[1].1["i-twilio-idempotency-token"]
    );
    let sent = status_of(&w, "C1");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["provider_ref"], "SM0123456789abcdef");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brevo_gets_its_api_key_and_a_4xx_is_not_retried() {
    let (url, seen) = http_peer(vec![(
        400,
        vec![],
        r#"{"code":"invalid_parameter","message":"sender is invalid"}"#,
    )])
    .await;
    let w = Arc::new(sms_workspace(&format!(
        "    provider: brevo\n    brevo: {{ api_key: xkeysib-test, sender: Durand, base_url: \"{url}\" }}\n"
    )));
    run(&w, &["dispatch"]).await.expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "a 400 is permanent: no second request");
    let (path, headers, body) = &requests[0];
    assert_eq!(path, "/v3/transactionalSMS/send");
    assert_eq!(headers["api-key"], "xkeysib-test");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["recipient"], "33612345678");
    assert_eq!(body["sender"], "Durand");
    assert_eq!(body["type"], "transactional");
    // No-break spaces become spaces in an SMS: they would force UCS-2.
    assert!(
        body["content"].as_str().unwrap().contains("1 234,56 €"),
        "{body}"
    );
    let failed = status_of(&w, "C1");
    assert_eq!(failed["status"], "failed");
    assert!(failed["last_error"]
        .as_str()
        .unwrap()
        .contains("sender is invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_gateway_gets_the_configured_headers_and_body_and_5xx_is_retried() {
    let (url, seen) = http_peer(vec![
        (503, vec![], "unavailable"),
        (200, vec![], r#"{"data":{"id":"gw-77"}}"#),
    ])
    .await;
    let w = Arc::new(sms_workspace(&format!(
        "    provider: http\n    http:\n      url: \"{url}/send\"\n      headers: {{ authorization: \"Bearer gw-token\" }}\n      body: '{{\"msisdn\": \"{{{{ to }}}}\", \"message\": \"{{{{ text }}}}\", \"ref\": \"{{{{ idempotency_key }}}}\"}}'\n      id_pointer: /data/id\n"
    )));
    run(&w, &["dispatch"]).await.expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "503 then 200");
    let (path, headers, body) = &requests[1];
    assert_eq!(path, "/send");
    assert_eq!(headers["authorization"], "Bearer gw-token");
    let body: serde_json::Value = serde_json::from_str(body).expect("the body is valid JSON");
    assert_eq!(body["msisdn"], "+33612345678");
    assert!(body["ref"].as_str().unwrap().starts_with("planned:"));
    assert_eq!(requests[0].2, requests[1].2, "the same request again");
    assert_eq!(status_of(&w, "C1")["provider_ref"], "gw-77");
}

// ---- Call tasks ----------------------------------------------------------------------

#[test]
fn a_call_completed_with_a_promise_pauses_dunning_until_its_date_then_the_broken_promise_shows() {
    let rule = "let open = customer.dunnable; [\
        call_task(\"overdue balance\", open.overdue(1), #{ priority: \"high\" }),\
        email(\"reminder_2\", open.overdue(40)),\
        if customer.broken_promise != () { call_task(\"broken promise\", open.overdue(1), #{ step: \"broken_promise\" }) },\
    ]";
    let w = workspace_with_rules_and(
        &[("smb", rule)],
        "channels:\n  call_tasks:\n    default_assignee: recouvrement\n",
    );
    w.import_ledger(
        "external_id,name,segment,emails,collector\nC1,Un SARL,smb,a@un.example,marie\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1000.00\nF2,C1,2026-01-01,2026-02-10,500.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);

    let tasks: Vec<serde_json::Value> = serde_json::from_str(
        &w.relance(&["tasks", "list", "--status", "open", "--format", "json"])
            .expect_code(0)
            .stdout,
    )
    .unwrap();
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t["customer"], "C1");
    assert_eq!(t["invoices"], serde_json::json!(["F1", "F2"]));
    assert_eq!(t["priority"], "high");
    assert_eq!(t["assignee"], "marie", "the customer's collector");
    assert_eq!(t["reason"], "overdue balance");
    // The collector's own list, due by a date.
    let mine = w.relance(&[
        "tasks",
        "list",
        "--assignee",
        "marie",
        "--due",
        "2099-12-31",
    ]);
    assert_eq!(mine.stdout.lines().count(), 2, "{}", mine.stdout);
    let none = w.relance(&["tasks", "list", "--assignee", "bruno"]);
    assert!(none.stdout.contains("no call task"), "{}", none.stdout);
    let id = t["id"].to_string();

    // A promise without its date is refused.
    let refused = w.relance(&["tasks", "complete", &id, "--outcome", "promise"]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("--promise-date"),
        "{}",
        refused.stderr
    );
    let done = w.relance(&[
        "tasks",
        "complete",
        &id,
        "--outcome",
        "promise",
        "--promise-date",
        "2026-03-20",
        "--note",
        "paiement le 20",
    ]);
    done.expect_code(0);
    assert!(done.stdout.contains("done (promise)"), "{}", done.stdout);
    w.relance(&["tasks", "complete", &id, "--outcome", "no-answer"])
        .expect_code(4);

    // Before the promised date: the promised invoices are left alone, although F1 is now
    // 40 days late.
    let paused = w.relance(&["tick", "--as-of", "2026-03-12"]);
    assert!(
        paused.stdout.contains("0 new planned actions"),
        "{}",
        paused.stdout
    );
    // After it, unpaid: the promise is broken and the rules see it.
    let broken = w.relance(&["tick", "--as-of", "2026-03-23"]);
    assert!(
        broken.stdout.contains("2 new planned actions"),
        "{}",
        broken.stdout
    );
    let steps: Vec<String> = action_list(&w)
        .iter()
        .map(|a| a["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"broken_promise".to_string()) && steps.contains(&"reminder_2".to_string()),
        "{steps:?}"
    );
}

#[test]
fn a_dispute_recorded_on_a_call_marks_the_invoices_disputed() {
    let rule = "[call_task(\"overdue\", customer.dunnable.overdue(1)), email(\"reminder_1\", customer.dunnable.overdue(1))]";
    let w = workspace_with_rules_and(&[("smb", rule)], "");
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,a@un.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1000.00\n",
    );
    // The call is made first; the email waits for the next dispatch.
    w.relance(&["tick", "--as-of", "2026-03-02", "--segment", "smb"])
        .expect_code(0);
    let first = w.relance(&["dispatch", "--once"]);
    first.expect_code(0);
    let list = w.relance(&["tasks", "list"]).expect_code(0).stdout.clone();
    assert!(
        list.contains("C1 Un SARL") && list.contains("open"),
        "{list}"
    );
    w.relance(&[
        "tasks",
        "complete",
        "1",
        "--outcome",
        "dispute",
        "--reason",
        "goods returned",
    ])
    .expect_code(0);
    // The pending email is cancelled: its invoice is now disputed.
    let run = w.relance(&["dispatch"]);
    assert!(
        run.stdout.contains("disputed: goods returned"),
        "{}",
        run.stdout
    );
    let done = w
        .relance(&["tasks", "list", "--status", "done"])
        .expect_code(0)
        .stdout
        .clone();
    assert!(done.contains("-> dispute"), "{done}");
}

// ---- Templates -----------------------------------------------------------------------

#[test]
fn rules_check_reports_missing_templates_and_unknown_variables() {
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "email(\"no_such_letter\", customer.dunnable.overdue(1))",
        )],
        "",
    );
    let run = w.relance(&["rules", "check"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("email template 'no_such_letter' (fr): template email/no_such_letter.fr.subject not found"),
        "{}",
        run.stderr
    );

    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        "",
    );
    std::fs::create_dir_all(w.path("templates/email")).unwrap();
    w.write(
        "templates/email/reminder_1.en.subject",
        "Hello {{ customer.nickname }}",
    );
    // `config check` catches it too, as a configuration problem.
    let config = w.relance(&["config", "check"]);
    config.expect_code(3);
    assert!(
        config.stderr.contains("email template 'reminder_1' (en)"),
        "{}",
        config.stderr
    );
    let run = w.relance(&["rules", "check"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("email template 'reminder_1' (en)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nickname") || run.stderr.contains("undefined"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("(fr)"),
        "the shipped French template still renders: {}",
        run.stderr
    );
}

#[test]
fn rules_check_warns_about_long_sms_and_passes_with_the_shipped_templates() {
    let w = workspace_with_rules_and(
        &[("smb", "sms(\"sms_reminder\", customer.dunnable.overdue(1))")],
        "",
    );
    let ok = w.relance(&["rules", "check"]);
    ok.expect_code(0);
    assert!(ok.stdout.contains("templates: OK"), "{}", ok.stdout);
    std::fs::create_dir_all(w.path("templates/sms")).unwrap();
    w.write(
        "templates/sms/sms_reminder.fr.txt",
        format!("{} {{{{ total_open }}}}", "Rappel ".repeat(60)),
    );
    let long = w.relance(&["rules", "check"]);
    long.expect_code(0);
    assert!(
        long.stderr
            .contains("warning: sms template 'sms_reminder' takes 3 GSM-7 segments"),
        "{}",
        long.stderr
    );
}

// ---- Crashes around a send to an HTTP receiver -----------------------------------------

const GATEWAY: &str = "    provider: http\n    timeout_seconds: 1\n    http:\n      url: \"URL/send\"\n      body: '{\"to\": \"{{ to }}\", \"text\": \"{{ text }}\"}'\n      id_pointer: /id\n";

fn gateway_workspace(url: &str, extra: &str) -> Workspace {
    let w = sms_workspace(&format!("{}{extra}", GATEWAY.replace("URL", url)));
    // Short leases: a crashed holder's action is reclaimed quickly (the lease must
    // outlast the gateway's 1 s timeout plus a margin).
    let config = std::fs::read_to_string(w.path("relance.yaml"))
        .unwrap()
        .replace("dispatch:\n", "dispatch:\n  lease_seconds: 2\n");
    w.write("relance.yaml", config);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_after_claiming_is_recovered_by_lease_expiry_and_the_receiver_sees_one_delivery(
) {
    let (url, seen) = http_peer(vec![(200, vec![], r#"{"id":"gw-1"}"#)]).await;
    let w = Arc::new(gateway_workspace(&url, ""));
    let mut child = w.dispatch_with_failpoint("pause-after-claim");
    // Wait for the claim, then SIGKILL the process holding the lease.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let w2 = w.clone();
        let claimed = tokio::task::spawn_blocking(move || action_list(&w2))
            .await
            .unwrap()
            .iter()
            .any(|a| a["status"] == "sending");
        if claimed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the action was never claimed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        seen.requests.lock().unwrap().is_empty(),
        "killed before sending"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    run(&w, &["dispatch"]).await.expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);
    assert_eq!(
        seen.requests.lock().unwrap().len(),
        1,
        "exactly one delivery"
    );
    let a = status_of(&w, "C1");
    assert_eq!(a["status"], "sent");
    assert_eq!(a["provider_ref"], "gw-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_receiver_accepted_resends_with_the_same_key_or_is_held_for_an_operator()
{
    // Resend (the SMS default): the receiver gets the same request twice, with the same
    // idempotency key, and can deduplicate.
    let (url, seen) = http_peer(vec![(200, vec![], r#"{"id":"gw-1"}"#)]).await;
    let w = Arc::new(gateway_workspace(&url, ""));
    let mut child = w.dispatch_with_failpoint("dispatch-after-send");
    assert!(!child.wait().unwrap().success());
    assert_eq!(seen.requests.lock().unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    run(&w, &["dispatch"]).await.expect_code(0);
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].1["idempotency-key"],
        requests[1].1["idempotency-key"]
    );
    assert_eq!(requests[0].2, requests[1].2);
    assert_eq!(status_of(&w, "C1")["status"], "sent");

    // Hold: the interrupted send waits for an operator; nothing is sent again by itself.
    let (url, seen) = http_peer(vec![(200, vec![], r#"{"id":"gw-2"}"#)]).await;
    let w = Arc::new(gateway_workspace(&url, "  on_interrupted: { sms: hold }\n"));
    let mut child = w.dispatch_with_failpoint("dispatch-after-send");
    assert!(!child.wait().unwrap().success());
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let r = run(&w, &["dispatch"]).await;
    r.expect_code(0);
    assert_eq!(
        seen.requests.lock().unwrap().len(),
        1,
        "{}\n{}\n{}",
        r.stdout,
        r.stderr,
        std::fs::read_to_string(w.path("relance.yaml")).unwrap()
    );
    let held = status_of(&w, "C1");
    assert_eq!(held["status"], "held", "{held}");
    // The operator sees how far the send went.
    let w2 = w.clone();
    let report = tokio::task::spawn_blocking(move || w2.relance(&["actions", "held"]))
        .await
        .unwrap();
    report.expect_code(0);
    assert!(
        report
            .stdout
            .contains("request written to the network: sms at")
            && report.stdout.contains("it may have reached the recipient"),
        "{}",
        report.stdout
    );
    // The operator checked with the provider and decides to send it again.
    let id = held["id"].to_string();
    let w2 = w.clone();
    tokio::task::spawn_blocking(move || w2.relance(&["actions", "retry", &id]).expect_code(0).code)
        .await
        .unwrap();
    run(&w, &["dispatch"]).await.expect_code(0);
    assert_eq!(seen.requests.lock().unwrap().len(), 2);
    assert_eq!(status_of(&w, "C1")["status"], "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_that_provably_never_left_is_retried_not_held() {
    // Held kind, but the process died right after claiming: no request was written to
    // the network, so the action is sent again by itself rather than held.
    let (url, seen) = http_peer(vec![(200, vec![], r#"{"id":"gw-3"}"#)]).await;
    let w = Arc::new(gateway_workspace(&url, "  on_interrupted: { sms: hold }\n"));
    let mut child = w.dispatch_with_failpoint("dispatch-after-claim");
    assert!(!child.wait().unwrap().success());
    assert_eq!(seen.requests.lock().unwrap().len(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    run(&w, &["dispatch"]).await.expect_code(0);
    assert_eq!(
        seen.requests.lock().unwrap().len(),
        1,
        "sent once, after the interruption"
    );
    let a = status_of(&w, "C1");
    assert_eq!(a["status"], "sent", "{a}");
    let id = a["id"].to_string();
    let w2 = w.clone();
    let show = tokio::task::spawn_blocking(move || w2.relance(&["actions", "show", &id]).stdout)
        .await
        .unwrap();
    assert!(
        show.contains("before any request was written to the network"),
        "{show}"
    );
}

/// Checks a request with the reference Standard Webhooks library.
pub(crate) fn verify_with_reference(
    secret: &str,
    headers: &axum::http::HeaderMap,
    body: &str,
) -> Result<serde_json::Value, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/verify_webhook.py");
    let request = serde_json::json!({
        "headers": {
            "webhook-id": headers["webhook-id"].to_str().unwrap(),
            "webhook-timestamp": headers["webhook-timestamp"].to_str().unwrap(),
            "webhook-signature": headers["webhook-signature"].to_str().unwrap(),
        },
        "body": body,
    });
    let mut child = Command::new("python3")
        .arg(script)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with standardwebhooks (pip install standardwebhooks)");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        request.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_call_tasks_are_announced_to_a_webhook_signed_per_standard_webhooks() {
    // Two secrets (a rotation); the receiver knows only the new one.
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=";
    let (url, seen) = http_peer(vec![(500, vec![], "oops"), (204, vec![], "")]).await;
    let rule = "call_task(\"overdue\", customer.dunnable.overdue(1), #{ priority: \"high\" })";
    let w = workspace_with_rules_and(
        &[("smb", rule)],
        &format!("dispatch:\n  backoff_base_seconds: 0\nchannels:\n  call_tasks:\n    notify:\n      url: \"{url}/hooks/tasks\"\n      secrets: [\"{old}\", \"{new}\"]\n"),
    );
    w.write(
        "customers.csv",
        "external_id,name,segment,emails,collector\nC1,Un SARL,smb,a@un.example,marie\n",
    );
    w.write(
        "invoices.csv",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1000.00\n",
    );
    let w = Arc::new(w);
    run(&w, &["import", "customers", "customers.csv"])
        .await
        .expect_code(0);
    run(&w, &["import", "invoices", "invoices.csv"])
        .await
        .expect_code(0);
    run(&w, &["tick", "--as-of", "2026-03-02"])
        .await
        .expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);

    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "a 500, then accepted");
    assert_eq!(
        requests[0].1["webhook-id"], requests[1].1["webhook-id"],
        "the same id on a resend"
    );
    let (path, headers, body) = &requests[1];
    assert_eq!(path, "/hooks/tasks");
    let payload =
        verify_with_reference(new, headers, body).expect("verifies with the rotated secret");
    verify_with_reference(old, headers, body).expect("and with the old one");
    assert!(verify_with_reference("whsec_d3JvbmcgZnJvbSB0aGUgc3RhcnQ=", headers, body).is_err());
    assert_eq!(payload["type"], "call_task.created");
    assert_eq!(payload["task"]["customer"]["id"], "C1");
    assert_eq!(payload["task"]["priority"], "high");
    assert_eq!(payload["task"]["assignee"], "marie");
    // One task, although the webhook needed two attempts.
    let tasks = run(&w, &["tasks", "list", "--format", "json"]).await;
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&tasks.stdout).unwrap();
    assert_eq!(tasks.len(), 1);
}

#[test]
fn email_over_starttls_with_authentication_trusts_the_configured_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    // A private CA and a server certificate for localhost signed by it.
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (ca, ca_key, cert, key, csr) = (
        p("ca.pem"),
        p("ca.key"),
        p("cert.pem"),
        p("key.pem"),
        p("req.csr"),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test CA",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &cert,
        ],
    ] {
        let made = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl makes test certificates");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let mail = dir.path().join("mail");
    let sink = SmtpSink::start(
        &mail,
        &["--starttls", &cert, &key, "--auth", "relance:s3cret"],
    );
    let setup = |smtp: &str| {
        let config =
            format!("channels:\n  email:\n    smtp: {smtp}\n    from: relance@test.example\n");
        let w = workspace_with_rules_and(
            &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
            &config,
        );
        w.import_ledger(
            "external_id,name,segment,emails\nC1,Un SARL,smb,compta@un.example\n",
            "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1000.00\n",
        );
        w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
        w
    };
    // The server's certificate is not signed by a public root: refused, nothing sent.
    let w = setup(&format!(
        "{{ host: localhost, port: {}, security: starttls, username: relance, password: s3cret }}",
        sink.port
    ));
    let run = w.relance(&["dispatch", "--once"]);
    assert!(run.stdout.contains("will retry"), "{}", run.stdout);
    assert!(sink.messages().is_empty());

    // Trusting the CA that signed it: STARTTLS, then AUTH, then the message.
    let w = setup(&format!(
        "{{ host: localhost, port: {}, security: starttls, username: relance, password: s3cret, ca_file: {} }}",
        sink.port, ca
    ));
    let run = w.relance(&["--log-level", "debug", "dispatch"]);
    assert!(
        run.stdout.contains(": sent (<planned."),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(sink.messages().len(), 1);
    // The password never shows in what relance prints, even at debug level.
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_gateway_outage_is_one_warning_then_one_recovery_line() {
    // Down for three attempts, then up: the service says so once each way, not at every
    // retry.
    let (url, seen) = http_peer(vec![
        (503, vec![], "unavailable"),
        (503, vec![], "unavailable"),
        (503, vec![], "unavailable"),
        (200, vec![], r#"{"id":"gw-9"}"#),
    ])
    .await;
    let w = Arc::new(gateway_workspace(&url, ""));
    let mut child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["--config", w.path("relance.yaml").to_str().unwrap()])
        .args(["serve", "--grace", "5"])
        .current_dir(w.dir.path())
        .env_remove("RELANCE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.requests.lock().unwrap().len() < 4 {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the gateway never recovered ({} requests):\n{}",
                seen.requests.lock().unwrap().len(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("transport failing"), 1, "{log}");
    assert_eq!(count("transport recovered"), 1, "{log}");
    assert!(count("temporary failure, will retry") >= 3, "{log}");
}
