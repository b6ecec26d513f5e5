//! The debtor's self-service page, served by `relance serve` on `portal.listen`: a
//! customer follows the link of a reminder an SMTP server received, in a real browser,
//! promises and disputes; the ledger, the collector's tasks, the next tick and the
//! confirmation emails show it. Over plain HTTP: a link opens its own customer's
//! account and acts on nothing else; refused links all look alike; forms need their
//! token and this site; inputs are bounded; a GET writes nothing; a flood is limited;
//! what a customer writes is shown as text to collectors.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::channels::SmtpSink;
use crate::helpers::{repo, workspace_with_rules_and, Served, Workspace};
use crate::portal::KEY_1;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn portal_yaml(port: u16, extra: &str) -> String {
    format!(
        "portal:\n  public_url: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n  keys:\n    - {{ id: 1, secret: \"{KEY_1}\" }}\n  payment_link: \"https://pay.example/checkout?ref={{{{ reference }}}}&amount={{{{ amount }}}}\"\n{extra}"
    )
}

const BANK: &str =
    "  bank: { holder: Test SAS, iban: \"FR7630006000011234567890189\", bic: AGRIFRPPXXX }\n";

/// The workspace's configuration with the company's bank account.
fn with_bank(w: &Workspace) {
    let config = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    let config = config.replacen(
        "  address: { country: FR }\n",
        &format!("  address: {{ country: FR }}\n{BANK}"),
        1,
    );
    w.write("relance.yaml", config);
}

/// Waits until the served instance's portal listens; its base URL.
fn portal_of(served: &Served) -> String {
    let started = std::time::Instant::now();
    loop {
        let log = served.log();
        if let Some(rest) = log.split("debtor portal listening on ").nth(1) {
            return format!("http://{}", rest.split_whitespace().next().unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the portal did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn browser_available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && std::path::Path::new("/usr/bin/zbarimg").exists()
        && std::process::Command::new("python3")
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
}

/// The portal link in a message the SMTP peer received (its plain text part).
fn link_in(message: &Value) -> String {
    let text = message.to_string();
    let start = text.find("/p/").expect("a portal link in the message");
    let begin = text[..start].rfind("http").unwrap();
    let token: String = text[start + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("{}/p/{token}", &text[begin..start])
}

#[test]
fn a_customer_follows_the_emailed_link_promises_and_disputes_in_a_real_browser() {
    if !browser_available() {
        eprintln!("SKIPPED a_customer_follows_the_emailed_link_promises_and_disputes_in_a_real_browser: chromium, chromedriver, selenium and zbarimg are needed (.ci/run installs them)");
        return;
    }
    let mail = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(mail.path(), &[]);
    let port = free_port();
    let config = format!(
        "dispatch:\n  backoff_base_seconds: 0\nchannels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {}, security: plain, timeout_seconds: 5 }}\n    from: \"Test SAS <relance@test.example>\"\n{}",
        smtp.port,
        portal_yaml(port, "")
    );
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "[email(\"reminder_1\", customer.dunnable.overdue(1))]",
        )],
        &config,
    );
    with_bank(&w);
    // The service's today is Paris' (its time zone), a day ahead of UTC's late in the evening.
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let due = |days: i64| (today - chrono::Duration::days(days)).to_string();
    w.import_ledger(
        "external_id,name,segment,emails,locale,collector\nC1,Garage Martin,smb,compta@martin.example,en,alice\n",
        &format!(
            "number,customer,issue_date,due_date,amount\nF-101,C1,{},{},1200.00\nF-102,C1,{},{},300.50\n",
            due(70),
            due(40),
            due(50),
            due(20)
        ),
    );
    w.relance(&["tick"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let sent = smtp.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let link = link_in(&sent[0]);
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/p/")),
        "{link}"
    );
    let served = w.serve(&[]);
    assert_eq!(portal_of(&served), format!("http://127.0.0.1:{port}"));
    let promise_date = (today + chrono::Duration::days(12)).to_string();
    let shots = w.path("shots");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/peers/portal_browser.py"))
        .arg(&link)
        .arg(&shots)
        .arg(&promise_date)
        .arg("F-101")
        .arg("F-102")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser scenario failed:\n{}\n--- service log\n{}",
        String::from_utf8_lossy(&out.stderr),
        served.log()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The customer's own page, in its language.
    assert!(
        seen["landing"].as_str().unwrap().contains("Garage Martin"),
        "{seen}"
    );
    assert_eq!(
        seen["invoices"],
        serde_json::json!(["invoice-F-101", "invoice-F-102"])
    );
    assert_eq!(seen["total"], "€1,500.50", "{seen}");
    let reference = relance::domain::sepa::creditor_reference("F-101").unwrap();
    assert_eq!(seen["references"][0], reference.as_str(), "{seen}");
    assert_eq!(seen["qr_codes"], 2, "{seen}");
    // The EPC QR code, read by zbarimg: the company's IBAN, the amount, the reference.
    let qr = seen["qr"].as_str().unwrap();
    let lines: Vec<&str> = qr.split('\n').collect();
    assert_eq!(&lines[..4], &["BCD", "002", "1", "SCT"], "{qr:?}");
    assert_eq!(lines[4], "AGRIFRPPXXX", "{qr:?}");
    assert_eq!(lines[5], "Test SAS", "{qr:?}");
    assert_eq!(lines[6], "FR7630006000011234567890189", "{qr:?}");
    assert_eq!(lines[7], "EUR1200.00", "{qr:?}");
    assert_eq!(lines[9], reference, "{qr:?}");
    assert!(relance::domain::sepa::is_creditor_reference(lines[9]));
    // The promise and the dispute, confirmed on the page.
    assert!(
        seen["promise_done"]
            .as_str()
            .unwrap()
            .contains("payment date is recorded"),
        "{seen}"
    );
    assert!(
        seen["promised_tag"]
            .as_str()
            .unwrap()
            .contains("payment planned on"),
        "{seen}"
    );
    assert!(
        seen["disputed_tag"]
            .as_str()
            .unwrap()
            .contains("disagreement"),
        "{seen}"
    );
    assert_eq!(seen["dispute_forms_left"], 0, "{seen}");
    assert_eq!(seen["csp"], 0, "the page has no script: {seen}");
    assert_eq!(
        seen["tampered"], "This link is not valid (any more)",
        "{seen}"
    );

    // In the ledger: the promise on F-101, the dispute on F-102.
    let run = w.relance(&["customer", "C1"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!(
            "1200.00 EUR by {promise_date} (pending) for F-101"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("disputed: customer (portal): Wrong amount or price: The agreed price was <b>250</b>, see our order."), "{}", run.stdout);
    // The collector's task for the dispute, made by the outbox of the running service.
    let started = std::time::Instant::now();
    loop {
        let run = w.relance(&["tasks", "list", "--format", "json"]);
        if run.stdout.contains("Dispute on invoice F-102 (portal)") {
            let tasks: Value = serde_json::from_str(&run.stdout).unwrap();
            let task = tasks
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["reason"].as_str().unwrap_or("").contains("F-102"))
                .unwrap();
            assert_eq!(task["priority"], "high", "{task}");
            assert_eq!(task["assignee"], "alice", "{task}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no task for the dispute: {}\n{}",
            run.stdout,
            served.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The next tick sends no reminder: one invoice is promised, the other disputed.
    let run = w.relance(&["explain", "C1", "--format", "json"]);
    run.expect_code(0);
    let e: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        e["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "planned"),
        "{e:#}"
    );
    assert_eq!(e["facts"]["dunnable"], serde_json::json!([]), "{e:#}");
    let tick = w.relance(&[
        "tick",
        "--as-of",
        &(today + chrono::Duration::days(3)).to_string(),
    ]);
    tick.expect_code(0);
    assert!(
        tick.stdout.contains("0 new planned actions"),
        "{}",
        tick.stdout
    );
    // The confirmations, emailed by the running service.
    let started = std::time::Instant::now();
    let subjects = loop {
        let subjects: Vec<String> = smtp
            .messages()
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or("").to_string())
            .collect();
        if subjects.len() >= 3 {
            break subjects;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{subjects:?}\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Your payment date is recorded — invoice F-101")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Your disagreement is recorded — invoice F-102")),
        "{subjects:?}"
    );
    // The reminder that carried the link was opened: the API says when.
    let token = w.token("reader", "read");
    let action: Value = serde_json::from_str(
        &String::from_utf8(
            std::process::Command::new("curl")
                .args([
                    "-s",
                    "-H",
                    &format!("Authorization: Bearer {token}"),
                    &format!("{}/v1/actions/1", served.base),
                ])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(action["portal_opened_at"].is_string(), "{action}");
    assert_eq!(action["portal_visits"], 1, "{action}");
    let run = w.relance(&["actions", "show", "1"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("portal link opened on") && run.stdout.contains("(1 visit)"),
        "{}",
        run.stdout
    );
    for shot in [
        "portal-landing.png",
        "portal-account.png",
        "portal-done.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot}");
    }
    if let Ok(dir) = std::env::var("RELANCE_PORTAL_SHOTS") {
        for entry in std::fs::read_dir(&shots).unwrap().flatten() {
            let _ = std::fs::copy(
                entry.path(),
                std::path::Path::new(&dir).join(entry.file_name()),
            );
        }
    }
    served.stop();
}

/// Two customers, A (C1, French) and B (C2), an invoice each, and an admin of the
/// console signed in by a trusted header.
fn two_customers(extra: &str) -> Workspace {
    let port = free_port();
    let w = workspace_with_rules_and(
        &[("smb", "[]")],
        &format!(
            "{}auth:\n  trusted_header: X-Test-User\n",
            portal_yaml(port, extra)
        ),
    );
    with_bank(&w);
    w.import_ledger(
        "external_id,name,segment,emails,locale\nC1,Client Un,smb,un@client.example,fr\nC2,Client Deux,smb,deux@client.example,en\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\nG1,C2,2026-09-01,2026-10-01,999.00\n",
    );
    w
}

fn token_of(link: &str) -> String {
    link.trim().rsplit("/p/").next().unwrap().to_string()
}

fn link(w: &Workspace, customer: &str, extra: &[&str]) -> String {
    let mut args = vec!["portal", "link", customer];
    args.extend_from_slice(extra);
    let run = w.relance(&args);
    run.expect_code(0);
    token_of(&run.stdout)
}

fn visits(w: &Workspace) -> i64 {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from portal_visits').fetchone()[0])",
        ])
        .arg(w.path("ledger.db"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The form token on a portal page.
fn form_token(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_acts_on_its_own_customer_only_and_every_refused_link_gets_the_same_page() {
    let w = two_customers("");
    let a = link(&w, "C1", &[]);
    let expired = link(&w, "C1", &["--as-of", "2026-01-01"]);
    let revoked = link(&w, "C2", &[]);
    w.relance(&["portal", "revoke", "C2"]).expect_code(0);
    let b = link(&w, "C2", &[]);
    let served = w.serve(&[]);
    let portal = portal_of(&served);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{portal}{path}");
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{portal}{path}");
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    // A's link: A's name and invoice, nothing of B's.
    let before = visits(&w);
    let (status, landing) = get(format!("/p/{a}")).await;
    assert_eq!(status, 200, "{landing}");
    assert!(landing.contains("Client Un") && !landing.contains("Client Deux"));
    let csrf = form_token(&landing);
    let (status, page) = get(format!("/p/{a}/account")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("invoice-F1") && !page.contains("invoice-G1") && !page.contains("999,00"),
        "{page}"
    );
    let (status, _) = get(format!("/p/{a}/statement.pdf")).await;
    assert_eq!(status, 200);
    // GET requests wrote nothing.
    assert_eq!(visits(&w), before);
    // "See my account" records the visit.
    let (status, _) = post(format!("/p/{a}"), vec![("csrf", csrf.clone())]).await;
    assert_eq!(status, 303);
    assert_eq!(visits(&w), before + 1);

    // B's invoice through A's link: refused as not on the account, nothing written.
    let (status, page) = post(
        format!("/p/{a}/promise"),
        vec![
            ("csrf", csrf.clone()),
            ("invoice", "G1".into()),
            ("date", Utc::now().date_naive().to_string()),
            ("amount", "10".into()),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("pas ouverte sur votre compte"), "{page}");
    let (status, _) = post(
        format!("/p/{a}/dispute"),
        vec![
            ("csrf", csrf.clone()),
            ("invoice", "G1".into()),
            ("reason", "wrong_amount".into()),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = get(format!("/p/{a}/invoices/G1/qr.png")).await;
    assert_eq!(status, 404);
    let run = w.relance(&["customer", "C2"]);
    assert!(
        !run.stdout.contains("promises:") && !run.stdout.contains("disputed"),
        "{}",
        run.stdout
    );
    // A's form token does not work on B's link, nor none at all, nor from another site.
    let (status, _) = post(
        format!("/p/{b}/contact"),
        vec![("csrf", csrf.clone()), ("message", "hello".into())],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(format!("/p/{a}/contact"), vec![("message", "hello".into())]).await;
    assert_eq!(status, 403);
    let r = http
        .post(format!("{portal}/p/{a}/contact"))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("message", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Inputs out of bounds are refused with the field, and nothing is written.
    // The service's today is Paris' (its time zone), a day ahead of UTC's late in the evening.
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    for (date, amount, field) in [
        (
            (today + chrono::Duration::days(31)).to_string(),
            "10".to_string(),
            "date",
        ),
        (
            (today - chrono::Duration::days(1)).to_string(),
            "10".to_string(),
            "date",
        ),
        ("31/12/2026".to_string(), "10".to_string(), "date"),
        (today.to_string(), "100.01".to_string(), "amount"),
        (today.to_string(), "0".to_string(), "amount"),
        (today.to_string(), "1.001".to_string(), "amount"),
        (today.to_string(), "abc".to_string(), "amount"),
        (today.to_string(), "9".repeat(40), "amount"),
    ] {
        let (status, page) = post(
            format!("/p/{a}/promise"),
            vec![
                ("csrf", csrf.clone()),
                ("invoice", "F1".into()),
                ("date", date.clone()),
                ("amount", amount.clone()),
            ],
        )
        .await;
        assert_eq!(status, 422, "{date} {amount}: {page}");
        assert!(page.contains("id=\"error\""), "{field}: {page}");
    }
    let (status, _) = post(
        format!("/p/{a}/dispute"),
        vec![
            ("csrf", csrf.clone()),
            ("invoice", "F1".into()),
            ("reason", "other".into()),
            ("text", "x".repeat(2001)),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(
        format!("/p/{a}/dispute"),
        vec![
            ("csrf", csrf.clone()),
            ("invoice", "F1".into()),
            ("reason", "made_up".into()),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let run = w.relance(&["customer", "C1"]);
    assert!(
        !run.stdout.contains("promises:") && !run.stdout.contains("disputed"),
        "{}",
        run.stdout
    );

    // What a customer writes reaches the collectors as text, not markup.
    let (status, _) = post(
        format!("/p/{a}/dispute"),
        vec![
            ("csrf", csrf.clone()),
            ("invoice", "F1".into()),
            ("reason", "other".into()),
            ("text", "<script>alert(1)</script><b>never</b>".into()),
        ],
    )
    .await;
    assert_eq!(status, 303);
    w.relance(&["users", "add", "root", "--role", "admin"])
        .expect_code(0);
    let console = http
        .get(format!("{}/customers/C1", served.base))
        .header("X-Test-User", "root")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        console.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || console.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{console}"
    );
    assert!(!console.contains("<script>alert") && !console.contains("<b>never</b>"));
    assert!(
        console.contains("customer (portal)"),
        "the act is in the customer's timeline"
    );

    // Refused links: malformed, tampered, expired, revoked, of an unknown key: one page.
    let mut tampered = a.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_key = {
        // Sealed under key id 9, which is not configured.
        let mut t = base64_decode(&a);
        t[0] = 9;
        base64_encode(&t)
    };
    let mut pages = Vec::new();
    for bad in [
        tampered,
        expired,
        revoked,
        other_key,
        "hello".to_string(),
        "A".repeat(76),
    ] {
        let (status, page) = get(format!("/p/{bad}")).await;
        assert_eq!(status, 404, "{bad}");
        pages.push(page.clone());
        let (status, page2) = get(format!("/p/{bad}/account")).await;
        assert_eq!((status, &page2), (404, &page), "{bad}");
    }
    assert!(
        pages.windows(2).all(|p| p[0] == p[1]),
        "refused links must look alike"
    );
    assert!(pages[0].contains("pas (ou plus) valable") || pages[0].contains("not valid"));
    let log = served.stop();
    // The log says why a link was refused, and never shows a link.
    assert!(
        log.contains("expired on") && log.contains("revoked"),
        "{log}"
    );
    assert!(!log.contains(&a), "a link reached the log");
}

fn base64_decode(t: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_is_limited_per_link_and_per_address() {
    let w = two_customers("  rate_limits: { per_address_per_minute: 40, per_link_per_minute: 10, acts_per_link_per_day: 2 }\n");
    let a = link(&w, "C1", &[]);
    let served = w.serve(&[]);
    let portal = portal_of(&served);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Promises, disputes and messages: two a day on one link here.
    let landing = http
        .get(format!("{portal}/p/{a}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_token(&landing);
    let mut acts = Vec::new();
    for n in 0..3 {
        let r = http
            .post(format!("{portal}/p/{a}/contact"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("topic", "question"),
                ("message", &format!("question {n}")),
            ])
            .send()
            .await
            .unwrap();
        acts.push(r.status().as_u16());
    }
    assert_eq!(acts, [303, 303, 429]);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let r = http.get(format!("{portal}/p/{a}")).send().await.unwrap();
        if r.status().as_u16() == 429 {
            assert_eq!(r.headers()["retry-after"], "60");
        }
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    // Other links from the same address, until the address's own limit.
    let mut statuses = Vec::new();
    for _ in 0..120 {
        let r = http
            .get(format!("{portal}/p/x{}", statuses.len()))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&404) && statuses.contains(&429),
        "{statuses:?}"
    );
    let log = served.stop();
    assert!(log.contains("too many requests on one link"), "{log}");
    assert!(log.contains("too many requests from one address"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formal_notice_prints_the_link_as_text_and_qr_code_and_the_page_shows_what_it_claimed() {
    let port = free_port();
    let w = workspace_with_rules_and(
        &[("smb", "[formal_notice(customer.dunnable.overdue(1))]")],
        &portal_yaml(port, ""),
    );
    with_bank(&w);
    w.import_ledger(
        "external_id,name,segment,emails,locale\nC1,Client Un,smb,un@client.example,fr\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-08-01,2026-09-01,5000.00\n",
    );
    w.relance(&["tick"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let notice = crate::documents::actions(&w, "formal_notice");
    let id = notice[0]["id"].as_i64().unwrap();
    let pdf = w.path("notice.pdf");
    w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "--output",
        pdf.to_str().unwrap(),
    ])
    .expect_code(0);
    let text = crate::documents::pdf_text(&pdf);
    let start = text
        .find(&format!("http://127.0.0.1:{port}/p/"))
        .unwrap_or_else(|| panic!("no link in the notice:\n{text}"));
    let printed: String = text[start..].split_whitespace().next().unwrap().to_string();
    // The QR code next to it holds the same link.
    let png = w.path("page");
    let status = std::process::Command::new("pdftoppm")
        .args(["-r", "200", "-png", "-f", "1", "-l", "2"])
        .arg(&pdf)
        .arg(&png)
        .status()
        .unwrap();
    assert!(status.success());
    let mut decoded = String::new();
    for entry in std::fs::read_dir(w.path("")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("page") && name.ends_with(".png") {
            let out = std::process::Command::new("zbarimg")
                .args(["--raw", "-q"])
                .arg(entry.path())
                .output()
                .unwrap();
            decoded.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    assert_eq!(
        decoded.trim(),
        printed,
        "the QR code and the printed link differ"
    );
    let run = w.relance(&["portal", "check", &printed]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains(&format!("for the message of action {id}")),
        "{}",
        run.stdout
    );
    // The page shows the interest and indemnity the notice claimed on the invoice.
    let claimed = crate::documents::show(&w, id)["documents"][0]["metadata"]["invoices"][0].clone();
    let served = w.serve(&[]);
    let portal = portal_of(&served);
    let page = reqwest::get(format!("{portal}/p/{}/account", token_of(&printed)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let interest: rust_decimal::Decimal = claimed["interest"].as_str().unwrap().parse().unwrap();
    let shown = relance::domain::format::money(
        interest,
        &relance::domain::Currency::EUR,
        relance::domain::Locale::Fr,
    );
    assert!(
        page.contains("Mise en demeure du") && page.contains(&shown),
        "{shown}: {page}"
    );
    assert!(page.contains("40,00"), "the indemnity: {page}");
    served.stop();
}
