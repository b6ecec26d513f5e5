//! What the outbox folder writes: each email as an `.eml` file a mail client opens
//! (checked with Python's `email` package, an independent MIME parser), each SMS as its
//! text, each letter as its PDF; and no first message speaks of a previous reminder.

/// Python: parses every `.eml` of `outbox/email` and `outbox/formal_notice`; prints one
/// JSON object per file.
const PARSE: &str = r#"
import email, glob, json, sys
from email import policy
for path in sorted(glob.glob(sys.argv[1] + '/outbox/*/*.eml')):
    with open(path, 'rb') as f:
        m = email.message_from_bytes(f.read(), policy=policy.default)
    text = m.get_body(preferencelist=('plain',))
    html = m.get_body(preferencelist=('html',))
    print(json.dumps({
        'file': path.split('/outbox/')[1],
        'from': str(m['From']), 'to': str(m['To']), 'subject': str(m['Subject']),
        'message_id': str(m['Message-ID']),
        'type': m.get_content_type(),
        'text': text.get_content() if text else None,
        'html': html.get_content() if html else None,
        'attachments': [(a.get_filename(), a.get_content_type(), len(a.get_content())) for a in m.iter_attachments()],
        'defects': [str(d) for d in m.defects],
    }, ensure_ascii=False))
"#;

#[test]
fn the_embedded_default_writes_each_email_as_an_eml_file_in_the_customers_language() {
    // No configuration at all: the embedded default, its sample portfolio, the outbox.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["serve", "--grace", "5"])
        .current_dir(dir.path())
        .env_remove("RELANCE_CONFIG")
        .env_remove("RELANCE_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |kind: &str, ext: &str| {
        std::fs::read_dir(dir.path().join("outbox").join(kind))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
                    .count()
            })
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    let mut last = (0, std::time::Instant::now());
    loop {
        let n = count("email", ".json");
        if n != last.0 {
            last = (n, std::time::Instant::now());
        }
        // Delivered, and nothing new for two seconds.
        if n >= 10 && last.1.elapsed() > std::time::Duration::from_secs(2) {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "{n} emails so far");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // SAFETY: signalling the child this test spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // One message file per email description.
    assert_eq!(count("email", ".eml"), count("email", ".json"));
    let out = std::process::Command::new("python3")
        .args(["-c", PARSE, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let emails: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["file"].as_str().unwrap().starts_with("email/"))
        .collect();
    assert_eq!(emails.len(), count("email", ".eml"));
    for m in &emails {
        assert_eq!(m["defects"], serde_json::json!([]), "{m}");
        assert_eq!(m["type"], "multipart/alternative", "{m}");
        assert!(m["from"].as_str().unwrap().contains('@'), "{m}");
        assert!(m["to"].as_str().unwrap().contains('@'), "{m}");
        assert!(!m["subject"].as_str().unwrap().is_empty(), "{m}");
        assert!(
            m["text"].as_str().is_some() && m["html"].as_str().is_some(),
            "{m}"
        );
    }
    // The sample ledger comes with a year of history: a second reminder recalls the
    // first one sent before relance took over.
    assert!(
        emails.iter().any(|m| {
            let text = m["text"].as_str().unwrap();
            text.contains("précédent rappel") || text.contains("previous reminder")
        }),
        "no message recalls an earlier reminder"
    );
    // French customers read French, with the amounts as French writes them.
    let french = emails
        .iter()
        .find(|m| m["text"].as_str().unwrap().starts_with("Bonjour"))
        .expect("a French email");
    let text = french["text"].as_str().unwrap();
    assert!(text.contains("\u{a0}€"), "{text}");
    assert!(
        french["html"].as_str().unwrap().contains("lang=\"fr\""),
        "{french}"
    );
    // Each letter is a formal notice.
    for entry in std::fs::read_dir(dir.path().join("outbox/formal_notice"))
        .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !entry.file_name().to_string_lossy().ends_with(".pdf") {
            continue;
        }
        let text = std::process::Command::new("pdftotext")
            .args([entry.path().to_str().unwrap(), "-"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("MISE EN DEMEURE") || text.contains("FORMAL NOTICE"),
            "{text}"
        );
    }
    // A formal notice sent by email carries its letter as a PDF attachment.
    if let Some(notice) = messages
        .iter()
        .find(|m| m["file"].as_str().unwrap().starts_with("formal_notice/"))
    {
        let attachments = notice["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1, "{notice}");
        assert_eq!(attachments[0][1], "application/pdf", "{notice}");
        assert!(attachments[0][2].as_u64().unwrap() > 1000, "{notice}");
    }
}

#[test]
fn preview_renders_an_action_or_a_template_as_it_would_be_sent_and_sends_nothing() {
    let w = crate::helpers::workspace_with_rules_and(
        &[(
            "smb",
            "let late = customer.dunnable.overdue(1);\n[email(\"reminder_1\", late), sms(\"sms_reminder\", late)]",
        )],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails,phones\nC1,Un SARL,smb,compta@un.example,+33612345678\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1234.56\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    let run = w.relance(&["preview", "1"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("To: compta@un.example"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Subject: "), "{}", run.stdout);
    assert!(run.stdout.contains("1 234,56 €"), "{}", run.stdout);
    let html = w.relance(&["preview", "1", "--html"]);
    assert!(
        html.stdout.contains("<html lang=\"fr\">"),
        "{}",
        html.stdout
    );
    // The whole message, for a mail client.
    w.relance(&["preview", "1", "--eml", "m.eml"])
        .expect_code(0);
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import email, sys\nfrom email import policy\nm = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)\nprint(m['To']); print(m.get_body(preferencelist=('plain',)).get_content())",
            w.path("m.eml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.starts_with("compta@un.example") && parsed.contains("F1"),
        "{parsed}"
    );
    // The SMS, with its length.
    let sms = w.relance(&["preview", "2"]);
    sms.expect_code(0);
    assert!(sms.stdout.starts_with("To: +33612345678"), "{}", sms.stdout);
    assert!(sms.stderr.contains("segment"), "{}", sms.stderr);
    // A template for a customer, with its overdue invoices.
    let t = w.relance(&[
        "preview",
        "--customer",
        "C1",
        "--template",
        "reminder_2",
        "--as-of",
        "2026-03-02",
    ]);
    t.expect_code(0);
    assert!(t.stdout.contains("F1"), "{}", t.stdout);
    // Nothing was sent: both actions are still planned.
    let list = w.relance(&["actions", "list", "--format", "json"]).stdout;
    assert_eq!(list.matches("\"planned\"").count(), 2, "{list}");
    let missing = w.relance(&["preview", "99"]);
    assert_eq!(missing.code, 4);
    assert!(
        missing.stderr.contains("no action 99"),
        "{}",
        missing.stderr
    );
}
