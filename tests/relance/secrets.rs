//! Secrets planted in the configuration never reach the logs, the database, the HTTP
//! API or the command line's output, even when the insurer's endpoint fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

use crate::channels::{http_peer, run};
use crate::helpers::{workspace_with_rules_and, Workspace};

const USERINFO_PASSWORD: &str = "Pw-userinfo-7Q2xRv";
const API_KEY: &str = "apikey-9Zt4LmQw";
const SMTP_PASSWORD: &str = "smtp-pass-K8v1Ne";
/// `whsec_` + base64 of "planted-webhook-secret-0123456789".
const WEBHOOK_SECRET: &str = "whsec_cGxhbnRlZC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5";
const WEBHOOK_SECRET_KEY: &str = "cGxhbnRlZC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5";

fn planted() -> [&'static str; 4] {
    [
        USERINFO_PASSWORD,
        API_KEY,
        SMTP_PASSWORD,
        WEBHOOK_SECRET_KEY,
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for secret in planted() {
        assert!(
            !text.contains(secret),
            "{what} shows the secret «{secret}»:\n{text}"
        );
    }
}

/// Two insured customers handed over to an insurer whose endpoint URL carries
/// credentials; the SMTP password and the webhook secret are planted too.
fn workspace(peer: &str) -> Workspace {
    let host = peer.trim_start_matches("http://");
    let w = workspace_with_rules_and(
        &[("smb", "insurer_handover(customer.dunnable.overdue(1))")],
        &format!(
            "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\nchannels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: 1, username: relance, password: \"{SMTP_PASSWORD}\", timeout_seconds: 5 }}\n    from: \"Test SAS <relance@test.example>\"\n"
        ),
    );
    let config = std::fs::read_to_string(w.path("relance.yaml"))
        .unwrap()
        .replace(
            "    declaration_deadline_days: 90\n",
            &format!(
                "    declaration_deadline_days: 90\n    endpoint:\n      url: \"http://relance:{USERINFO_PASSWORD}@{host}/claims?api_key={API_KEY}&format=json\"\n      secrets: [\"{WEBHOOK_SECRET}\"]\n      timeout_seconds: 5\n"
            ),
        );
    w.write("relance.yaml", config);
    w.import_ledger(
        "external_id,name,segment,emails,insured,insurer_policy\nC1,Un,smb,a@un.example,yes,coface-fr\nC2,Deux,smb,b@deux.example,yes,coface-fr\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,100.00\nF2,C2,2026-01-01,2026-01-31,200.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w
}

/// Every byte of the SQLite database (and its write-ahead log), as text.
fn database_bytes(w: &Workspace) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(w.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ledger.db") {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!all.is_empty());
    String::from_utf8_lossy(&all).into_owned()
}

fn http_get(addr: &str, path: &str, token: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Regression: an insurer endpoint URL with credentials (`http://user:pass@host/…?
/// api_key=…`) appeared in full in INFO logs, in `actions.last_error`,
/// `action_events.detail` (so in `/v1/actions`) and in `relance insurers list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_an_insurer_endpoint_url_never_reach_logs_database_api_or_cli() {
    // The first handover gets a 500, the second a 410 Gone (the endpoint is disabled).
    let (url, seen) = http_peer(vec![
        (500, vec![], r#"{"error":"internal"}"#),
        (410, vec![], r#"{"error":"gone"}"#),
    ])
    .await;
    let w = Arc::new(workspace(&url));

    let check = w.relance(&["config", "check"]);
    check.expect_code(0);
    assert_clean("config check", &format!("{}{}", check.stdout, check.stderr));

    let dispatch = run(&w, &["--log-level", "info", "dispatch"]).await;
    dispatch.expect_code(0);
    let out = format!("{}\n{}", dispatch.stdout, dispatch.stderr);
    assert_eq!(seen.requests.lock().unwrap().len(), 2, "{out}");
    assert!(out.contains("answered 500"), "{out}");
    assert!(out.contains("answered 410"), "{out}");
    assert!(out.contains("http://***@"), "{out}");
    assert_clean("dispatch output and logs", &out);

    let list = run(&w, &["actions", "list", "--format", "json"]).await;
    assert!(list.stdout.contains("answered 500"), "{}", list.stdout);
    assert_clean("actions list", &list.stdout);
    for id in ["1", "2"] {
        let w2 = w.clone();
        let show = tokio::task::spawn_blocking(move || {
            w2.relance(&["actions", "show", id, "--format", "json"])
        })
        .await
        .unwrap();
        assert_clean("actions show", &show.stdout);
    }

    for format in ["text", "json"] {
        let w2 = w.clone();
        let insurers = tokio::task::spawn_blocking(move || {
            w2.relance(&["insurers", "list", "--format", format])
        })
        .await
        .unwrap();
        insurers.expect_code(0);
        assert!(insurers.stdout.contains("coface-fr"), "{}", insurers.stdout);
        assert!(insurers.stdout.contains("410"), "{}", insurers.stdout);
        assert_clean("insurers list", &insurers.stdout);
    }

    // The HTTP API, to a read-only token, and the service's own log.
    let token = run(
        &w,
        &["tokens", "create", "--name", "reader", "--scope", "read"],
    )
    .await
    .stdout
    .trim()
    .to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args([
            "--config",
            w.path("relance.yaml").to_str().unwrap(),
            "serve",
            "--grace",
            "5",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(w.dir.path())
        .env_remove("RELANCE_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("HTTP API listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the service starts");
    let addr2 = addr.clone();
    let token2 = token.clone();
    let api = tokio::task::spawn_blocking(move || {
        [
            http_get(&addr2, "/v1/actions?limit=100", &token2),
            http_get(&addr2, "/v1/actions/1", &token2),
            http_get(&addr2, "/v1/actions/2", &token2),
        ]
        .join("\n")
    })
    .await
    .unwrap();
    assert!(api.contains("answered 500"), "{api}");
    assert_clean("the HTTP API", &api);
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let log = reader.join().unwrap();
    assert_clean("the service's log", &log);

    assert_clean("the database", &database_bytes(&w));
}

/// Regression: an unquoted numeric password (`password: 123456`) was printed in the
/// configuration error; values of secret keys are never shown, only what is wrong.
#[test]
fn a_config_error_about_a_secret_never_shows_its_value() {
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        "channels:\n  email:\n    smtp: { host: smtp.example.com, username: relance, password: 918273645 }\n    from: \"Test SAS <relance@test.example>\"\n  formal_notice:\n    registered_mail:\n      url: \"ftp://letters:Pw-letters-55@mail.example/send?token=Tk-letters-66\"\n      headers: { Authorization: 77441122 }\n",
    );
    let config = std::fs::read_to_string(w.path("relance.yaml"))
        .unwrap()
        .replace(
            "    declaration_deadline_days: 90\n",
            "    declaration_deadline_days: 90\n    endpoint:\n      url: https://claims.example/in\n      secret: \"Pw-${not closed\"\n",
        );
    w.write("relance.yaml", config);
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let cfg = w.path("relance.yaml").display().to_string();
    for expected in [
        format!("{cfg}:"),
        "channels.email.smtp.password: invalid type: integer, expected a string; write the value in quotes".to_string(),
        "channels.formal_notice.registered_mail.headers.Authorization: invalid type: integer".to_string(),
        "channels.formal_notice.registered_mail.url: 'ftp://***@mail.example/send?token=***' is not an http(s) URL".to_string(),
        "insurers.coface-fr.endpoint.secret: ".to_string(),
    ] {
        assert!(run.stderr.contains(&expected), "missing «{expected}» in\n{}", run.stderr);
    }
    for secret in [
        "918273645",
        "77441122",
        "Pw-letters-55",
        "Tk-letters-66",
        "Pw-$",
        "not closed",
    ] {
        assert!(
            !run.stderr.contains(secret),
            "«{secret}» shown:\n{}",
            run.stderr
        );
    }
}
