//! The HTTP API over real HTTP: the service started in-process on port 0 through
//! `relance::runtime::launch` (one test through the `relance serve` binary), requests
//! with reqwest, tokens made with `relance tokens create`.

use serde_json::{json, Value};

use crate::helpers::{
    postgres_admin_url, say_postgres_skipped, workspace_with_rules_and, TestDb, Workspace,
};

/// Reminders at 1 day late, a call task at 30: something to audit.
const RULE: &str = r#"
let open = customer.dunnable;
[
    email("reminder_1", open.overdue_between(1, 29), #{ step: "first_reminder" }),
    call_task("call the customer", open.overdue(30), #{ step: "call", due_in_days: 2 }),
]
"#;

/// The running service: in-process through `relance::runtime::launch`, or the
/// `relance serve` binary for the tests that go through the program itself.
enum Running {
    InProcess(crate::helpers::InProcess),
    Binary(crate::helpers::Served),
}

/// A running service, its HTTP API and its log.
struct Server {
    running: Running,
    base: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts the service in-process on port 0.
    fn start(w: &Workspace) -> Server {
        let service = w.launch();
        Server {
            base: service.base.clone(),
            running: Running::InProcess(service),
            client: reqwest::Client::new(),
        }
    }

    /// Starts `relance serve --listen 127.0.0.1:0`.
    fn start_binary(w: &Workspace) -> Server {
        let served = w.serve(&[]);
        Server {
            base: served.base.clone(),
            running: Running::Binary(served),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// Stops the service (its shutdown future, or SIGTERM for the binary), checks it
    /// ended cleanly; returns its log.
    fn stop(self) -> String {
        match self.running {
            Running::InProcess(s) => s.stop(),
            Running::Binary(s) => s.stop(),
        }
    }
}

fn token(w: &Workspace, name: &str, scope: &str) -> String {
    let r = w.relance(&["tokens", "create", "--name", name, "--scope", scope]);
    r.expect_code(0);
    assert!(r.stderr.contains("shown once"), "{}", r.stderr);
    r.stdout.trim().to_string()
}

fn workspace(database_url: &str, extra: &str) -> Workspace {
    let w = workspace_with_rules_and(&[("smb", RULE)], extra);
    let cfg = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    w.write(
        "relance.yaml",
        cfg.replace("sqlite://ledger.db", database_url),
    );
    w
}

#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    // RFC 9457 problem details: type, title, status, detail, instance.
    assert_eq!(got.1["type"], format!("/v1/problems/{code}"), "{}", got.1);
    assert_eq!(got.1["status"], status, "{}", got.1);
    assert!(
        got.1["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        got.1
    );
    assert!(
        got.1["instance"]
            .as_str()
            .is_some_and(|i| i.starts_with('/')),
        "{}",
        got.1
    );
    assert!(
        got.1["detail"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token_everything_else_does_and_scopes_are_enforced() {
    let w = workspace("sqlite://ledger.db", "");
    let ingest = token(&w, "erp", "ingest");
    let read = token(&w, "dashboard", "read");
    let revoked = token(&w, "old", "admin");
    let list = w.relance(&["tokens", "list", "--format", "json"]);
    list.expect_code(0);
    let old_id = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == "old")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(!list.stdout.contains(&ingest), "secrets are never listed");
    w.relance(&["tokens", "revoke", &old_id.to_string()])
        .expect_code(0);
    w.relance(&["tokens", "revoke", &old_id.to_string()])
        .expect_code(4);
    let bad = w.relance(&["tokens", "create", "--name", "x", "--scope", "root"]);
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("unknown scope 'root'"),
        "{}",
        bad.stderr
    );

    let s = Server::start_binary(&w);
    assert_eq!(
        s.call("GET", "/healthz", None, None).await,
        (200, json!({"status": "ok"}))
    );
    let (status, ready) = s.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["migrations"]["applied"],
        ready["migrations"]["expected"]
    );

    let no_token = s.client.get(s.url("/v1/actions")).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        no_token.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["instance"], "/v1/actions");
    // The problem's type is a page that says what it means, without a token.
    let page = s
        .client
        .get(s.url(body["type"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Not authenticated"));
    assert_error(
        &s.call("GET", "/v1/problems/no_such_problem", None, None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.call("GET", "/v1/actions", Some("rel_not-a-token"), None)
            .await,
        401,
        "unauthorized",
    );
    assert_error(
        &s.call("GET", "/v1/actions", Some(&revoked), None).await,
        401,
        "unauthorized",
    );
    assert_error(
        &s.call("GET", "/metrics", None, None).await,
        401,
        "unauthorized",
    );
    assert_error(
        &s.call("GET", "/v1/openapi.json", None, None).await,
        401,
        "unauthorized",
    );
    // Scopes.
    let forbidden = s.call("GET", "/v1/actions", Some(&ingest), None).await;
    assert_error(&forbidden, 403, "forbidden");
    assert!(
        forbidden.1["detail"]
            .as_str()
            .unwrap()
            .contains("'read' scope"),
        "{}",
        forbidden.1
    );
    assert_error(
        &s.call(
            "PUT",
            "/v1/customers/C1",
            Some(&read),
            Some(json!({"name": "X", "segment": "smb"})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &s.call("POST", "/v1/actions/1/retry", Some(&read), None)
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &s.call(
            "PUT",
            "/v1/invoices/F1/dispute",
            Some(&ingest),
            Some(json!({"reason": "x"})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_eq!(s.call("GET", "/v1/actions", Some(&read), None).await.0, 200);
    // Unknown routes and methods answer JSON too.
    assert_error(
        &s.call("GET", "/v1/nothing", Some(&read), None).await,
        404,
        "not_found",
    );
    assert_error(
        &s.call("DELETE", "/v1/actions", Some(&read), None).await,
        405,
        "method_not_allowed",
    );

    let log = s.stop();
    for secret in [&ingest, &read, &revoked] {
        assert!(
            !log.contains(secret.as_str()),
            "a token appears in the log:\n{log}"
        );
    }
}

/// Customers, invoices and payments, singly and in batches; a batch is all or nothing.
async fn ingestion(database_url: &str) {
    let w = workspace(
        database_url,
        "api:\n  max_body_bytes: 65536\n  max_batch_items: 100\n",
    );
    let erp = token(&w, "erp", "ingest,read");
    let s = Server::start(&w);

    let (status, report) = s
        .call("PUT", "/v1/customers/C1", Some(&erp), Some(json!({
            "name": "Menuiserie Un", "segment": "smb", "emails": ["compta@un.example"], "siren": "732829320", "credit_limit": "50000.00"
        })))
        .await;
    // Created: 201.
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["written"]["inserted"], 1);
    // The path is the key: a contradicting body is refused.
    let clash = s
        .call(
            "PUT",
            "/v1/customers/C1",
            Some(&erp),
            Some(json!({"external_id": "C2", "name": "X", "segment": "smb"})),
        )
        .await;
    assert_error(&clash, 422, "invalid_field");
    assert_eq!(clash.1["field"], "external_id");

    let invoices = json!({"items": [
        {"number": "F-1", "customer": "C1", "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "1200.00"},
        {"number": "F-2", "customer": "C1", "issue_date": "2026-10-15", "due_date": "2026-11-14", "amount": 350.5},
        {"number": "F-3", "customer": "C1", "issue_date": "2026-11-01", "due_date": "2026-12-01", "amount": "99.99", "currency": "EUR"},
    ]});
    let (status, report) = s
        .call(
            "POST",
            "/v1/invoices/batch",
            Some(&erp),
            Some(invoices.clone()),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["written"],
        json!({"inserted": 3, "updated": 0, "unchanged": 0})
    );
    // Idempotent: the same batch again changes nothing.
    let (_, report) = s
        .call("POST", "/v1/invoices/batch", Some(&erp), Some(invoices))
        .await;
    assert_eq!(
        report["written"],
        json!({"inserted": 0, "updated": 0, "unchanged": 3})
    );

    // One bad invoice among good ones: 422 naming it, and nothing written.
    let bad = s
        .call("POST", "/v1/invoices/batch", Some(&erp), Some(json!({"items": [
            {"number": "F-4", "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "10.00"},
            {"number": "F-5", "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-13-45", "amount": "10.00"},
            {"number": "F-6", "customer": "C9", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "10.00"},
            {"number": "F-7", "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "12.345"},
        ]})))
        .await;
    assert_error(&bad, 422, "invalid_field");
    assert_eq!(bad.1["field"], "items[1].due_date", "{}", bad.1);
    let fields: Vec<&str> = bad.1["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["items[1].due_date", "items[3].amount", "items[2].customer"],
        "{}",
        bad.1
    );
    assert!(bad.1["detail"]
        .as_str()
        .unwrap()
        .contains("nothing was written"));
    assert_error(
        &s.call("GET", "/v1/invoices/F-4", Some(&erp), None).await,
        404,
        "not_found",
    );

    // Malformed JSON, wrong types, unknown fields, wrong media type, oversize bodies.
    let raw = |body: &'static str, ctype: &'static str| {
        let req = s
            .client
            .post(s.url("/v1/invoices/batch"))
            .bearer_auth(&erp)
            .header("content-type", ctype)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let malformed = raw("{\"items\": [", "application/json").await;
    assert_error(&malformed, 400, "malformed_json");
    assert_error(
        &raw("{\"items\": []}", "text/plain").await,
        415,
        "unsupported_media_type",
    );
    let not_list = s
        .call(
            "POST",
            "/v1/invoices/batch",
            Some(&erp),
            Some(json!({"items": "F-1"})),
        )
        .await;
    assert_error(&not_list, 422, "invalid_field");
    assert_eq!(not_list.1["field"], "items");
    let unknown = s.call("POST", "/v1/invoices/batch", Some(&erp), Some(json!({"items": [{"number": "F-8", "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "1", "colour": "red"}]}))).await;
    assert_error(&unknown, 422, "invalid_field");
    assert_eq!(unknown.1["field"], "items[0].colour");
    let nested = s.call("PUT", "/v1/invoices/F-9", Some(&erp), Some(json!({"customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": {"value": 1}}))).await;
    assert_error(&nested, 422, "invalid_field");
    assert_eq!(nested.1["field"], "amount");
    let too_many: Vec<Value> = (0..101).map(|i| json!({"number": format!("G-{i}"), "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "1"})).collect();
    let r = s
        .call(
            "POST",
            "/v1/invoices/batch",
            Some(&erp),
            Some(json!({"items": too_many})),
        )
        .await;
    assert_error(&r, 422, "invalid_field");
    let huge: Vec<Value> = (0..600).map(|i| json!({"number": format!("H-{i:05}"), "customer": "C1", "issue_date": "2026-11-02", "due_date": "2026-12-02", "amount": "1.00", "currency": "EUR"})).collect();
    let r = s
        .call(
            "POST",
            "/v1/invoices/batch",
            Some(&erp),
            Some(json!({"items": huge})),
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
    assert_error(
        &s.call("GET", "/v1/invoices/H-00001", Some(&erp), None)
            .await,
        404,
        "not_found",
    );

    // Payments: allocated as the CSV import does.
    let (status, report) = s
        .call("POST", "/v1/payments/batch", Some(&erp), Some(json!({"items": [
            {"id": "P-1", "customer": "C1", "date": "2026-11-20", "amount": "200.00", "reference": "VIR F-1"}
        ]})))
        .await;
    assert_eq!(status, 200, "{report}");
    let (status, view) = s.call("GET", "/v1/customers/C1", Some(&erp), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["balance"]["open"], "1450.49", "{view}");
    assert_eq!(view["open_invoices"].as_array().unwrap().len(), 3);
    assert_eq!(
        view["payments"][0]["payment"]["external_id"], "P-1",
        "{view}"
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_upserts_singly_and_in_batches_and_a_bad_batch_writes_nothing() {
    ingestion("sqlite://ledger.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("ingestion_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    ingestion(&db.url).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_record_disputes_promises_pauses_and_tasks_and_the_log_explains_each_action() {
    // An SMTP server that refuses connections: emails stay in the queue, retrying.
    let w = workspace(
        "sqlite://ledger.db",
        "channels:\n  email:\n    smtp: { host: 127.0.0.1, port: 1, security: plain, timeout_seconds: 2 }\n    from: \"Test <relance@test.example>\"\n",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un,smb,a@un.example\nC2,Deux,smb,b@deux.example\nC3,Trois,smb,c@trois.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\nF2,C2,2026-09-01,2026-11-10,200.00\nF3,C3,2026-09-01,2026-11-12,300.00\nF4,C3,2026-09-01,2026-11-13,50.00\n",
    );
    let admin = token(&w, "ops", "admin");
    let collector = token(&w, "collectors-app", "read,collect");
    // Ticks run by the CLI as of a fixed date; the server only answers.
    w.relance(&["tick", "--as-of", "2026-11-20"]).expect_code(0);
    let s = Server::start(&w);

    // Audit: pages by cursor, filters, and one action with its reasons.
    let (status, page) = s
        .call("GET", "/v1/actions?limit=1", Some(&collector), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = s
        .call(
            "GET",
            &format!("/v1/actions?limit=10&cursor={cursor}"),
            Some(&collector),
            None,
        )
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2, "{page2}");
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, calls) = s
        .call(
            "GET",
            "/v1/actions?kind=call_task&customer=C1&from=2026-01-01",
            Some(&collector),
            None,
        )
        .await;
    assert_eq!(calls["items"].as_array().unwrap().len(), 1, "{calls}");
    let (_, none) = s
        .call("GET", "/v1/actions?to=2020-01-01", Some(&collector), None)
        .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.call("GET", "/v1/actions?limit=501", Some(&collector), None)
            .await
            .1["field"],
        "limit"
    );
    assert_eq!(
        s.call("GET", "/v1/actions?kind=fax", Some(&collector), None)
            .await
            .1["field"],
        "kind"
    );
    assert_eq!(
        s.call("GET", "/v1/actions?colour=red", Some(&collector), None)
            .await
            .1["field"],
        "colour"
    );
    let email_id = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page["items"].as_array().unwrap())
        .find(|a| a["customer"] == "C2")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, detail) = s
        .call(
            "GET",
            &format!("/v1/actions/{email_id}"),
            Some(&collector),
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["kind"], "email");
    assert_eq!(detail["rule_file"], "rules/smb.rhai", "{detail}");
    assert_eq!(detail["rule_hash"].as_str().unwrap().len(), 64, "{detail}");
    assert!(detail["facts"].is_object(), "{detail}");
    assert!(
        detail["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{detail}"
    );
    assert_error(
        &s.call("GET", "/v1/actions/999999", Some(&collector), None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.call("GET", "/v1/actions/abc", Some(&collector), None)
            .await,
        422,
        "invalid_field",
    );

    // Cancel and retry need admin.
    assert_error(
        &s.call(
            "POST",
            &format!("/v1/actions/{email_id}/cancel"),
            Some(&collector),
            Some(json!({"reason": "x"})),
        )
        .await,
        403,
        "forbidden",
    );
    // The server's dispatcher tries the email as soon as it starts: while an attempt is
    // under way the action is `sending` and cannot be cancelled (409), so wait for the
    // refused connection to put it back in the queue.
    let started = std::time::Instant::now();
    loop {
        let (_, a) = s
            .call(
                "GET",
                &format!("/v1/actions/{email_id}"),
                Some(&collector),
                None,
            )
            .await;
        if a["status"] != "sending" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{a}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, cancelled) = s
        .call(
            "POST",
            &format!("/v1/actions/{email_id}/cancel"),
            Some(&admin),
            Some(json!({"reason": "customer called"})),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, retried) = s
        .call(
            "POST",
            &format!("/v1/actions/{email_id}/retry"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_ne!(retried["status"], "cancelled", "{retried}");

    // Dry-run: what `simulate --format json` prints for the customer.
    let (status, dry) = s
        .call(
            "GET",
            "/v1/customers/C3/dry-run?as_of=2026-11-25",
            Some(&collector),
            None,
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let sim = w.relance(&[
        "simulate",
        "--as-of",
        "2026-11-25",
        "--customer",
        "C3",
        "--format",
        "json",
    ]);
    sim.expect_code(0);
    let expected: Vec<Value> = sim
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(dry["decisions"], Value::Array(expected));

    // Collectors: a dispute, a promise, pauses; each visible in the customer view.
    let (status, _) = s
        .call(
            "PUT",
            "/v1/invoices/F3/dispute",
            Some(&collector),
            Some(json!({"reason": "goods damaged"})),
        )
        .await;
    assert_eq!(status, 200);
    let empty = s
        .call(
            "PUT",
            "/v1/invoices/F3/dispute",
            Some(&collector),
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(empty.1["field"], "reason");
    assert_error(
        &s.call(
            "PUT",
            "/v1/invoices/NOPE/dispute",
            Some(&collector),
            Some(json!({"reason": "x"})),
        )
        .await,
        404,
        "not_found",
    );
    let (status, promise) = s.call("POST", "/v1/promises", Some(&collector), Some(json!({"customer": "C3", "promised_date": "2026-12-05", "amount": "50.00", "invoices": ["F4"]}))).await;
    assert_eq!(status, 201, "{promise}");
    assert_eq!(promise["status"], "pending");
    let bad_amount = s
        .call(
            "POST",
            "/v1/promises",
            Some(&collector),
            Some(json!({"customer": "C3", "promised_date": "2026-12-05", "amount": "abc"})),
        )
        .await;
    assert_error(&bad_amount, 422, "invalid_field");
    assert_eq!(bad_amount.1["field"], "amount");
    let bad_date = s
        .call(
            "POST",
            "/v1/promises",
            Some(&collector),
            Some(json!({"customer": "C3", "promised_date": "05/12/2026", "amount": "1"})),
        )
        .await;
    assert_eq!(bad_date.1["field"], "promised_date", "{}", bad_date.1);
    let missing = s
        .call(
            "POST",
            "/v1/promises",
            Some(&collector),
            Some(json!({"customer": "C3", "amount": "1"})),
        )
        .await;
    assert_error(&missing, 422, "invalid_field");
    assert!(
        missing.1["detail"]
            .as_str()
            .unwrap()
            .contains("promised_date"),
        "{}",
        missing.1
    );
    let (status, _) = s
        .call(
            "PUT",
            "/v1/customers/C2/pause",
            Some(&collector),
            Some(json!({"reason": "restructuring talks", "until": "2027-01-31"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, view) = s
        .call("GET", "/v1/customers/C2", Some(&collector), None)
        .await;
    assert_eq!(view["pause"]["reason"], "restructuring talks", "{view}");
    let (_, view3) = s
        .call("GET", "/v1/customers/C3", Some(&collector), None)
        .await;
    assert_eq!(
        view3["current_promise"]["promised_date"], "2026-12-05",
        "{view3}"
    );
    let f3 = view3["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "F3")
        .unwrap();
    assert_eq!(f3["dispute"]["reason"], "goods damaged");
    assert!(!view3["history"].as_array().unwrap().is_empty());
    let (status, _) = s
        .call("DELETE", "/v1/customers/C2/pause", Some(&collector), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .call(
            "PUT",
            "/v1/invoices/F1/pause",
            Some(&collector),
            Some(json!({"reason": "credit note pending"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, inv) = s
        .call("GET", "/v1/invoices/F1", Some(&collector), None)
        .await;
    assert_eq!(inv["pause"]["reason"], "credit note pending", "{inv}");
    let (status, _) = s
        .call("DELETE", "/v1/invoices/F3/dispute", Some(&collector), None)
        .await;
    assert_eq!(status, 200);

    // Call tasks: listed, then completed with a promise.
    let (status, tasks) = s
        .call("GET", "/v1/tasks?status=open", Some(&collector), None)
        .await;
    assert_eq!(status, 200, "{tasks}");
    let task = &tasks["items"][0];
    assert_eq!(task["customer"], "C1", "{tasks}");
    let id = task["id"].as_i64().unwrap();
    let no_date = s
        .call(
            "POST",
            &format!("/v1/tasks/{id}/complete"),
            Some(&collector),
            Some(json!({"outcome": "promise"})),
        )
        .await;
    assert_eq!(no_date.1["field"], "promise_date");
    let (status, done) = s.call("POST", &format!("/v1/tasks/{id}/complete"), Some(&collector), Some(json!({"outcome": "promise", "promise_date": "2026-12-10", "note": "pays on the 10th"}))).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "done");
    assert_eq!(done["completed_by"], "collectors-app");
    let again = s
        .call(
            "POST",
            &format!("/v1/tasks/{id}/complete"),
            Some(&collector),
            Some(json!({"outcome": "reached"})),
        )
        .await;
    assert_error(&again, 409, "conflict");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_actions_queue_dead_letters_and_insurer_endpoints() {
    let w = workspace("sqlite://ledger.db", "");
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un,smb,a@un.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-11-10,100.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-11-20"]).expect_code(0);
    w.relance(&["insurers", "disable", "coface-fr"])
        .expect_code(0);
    let read = token(&w, "prometheus", "read");
    let s = Server::start(&w);
    // A request with the caller's request id: returned on the answer and logged.
    let asked = s
        .client
        .get(s.url("/v1/customers/C1"))
        .bearer_auth(&read)
        .header("x-request-id", "erp-sync-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 200);
    assert_eq!(asked.headers()["x-request-id"], "erp-sync-4711");
    // Without one, the service makes one (a UUID).
    let made = s
        .client
        .get(s.url("/v1/nothing-here"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 404);
    assert_eq!(made.headers()["x-request-id"].len(), 36);
    let resp = s
        .client
        .get(s.url("/metrics"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        "relance_insurer_endpoint_up{insurer=\"coface-fr\"} 0",
        "# TYPE relance_tick_duration_seconds histogram",
        "relance_customers_evaluated_total ",
        "relance_rule_errors_total ",
        "relance_dead_letters 0",
        "relance_scheduler_leader ",
        // The build, the process, and the HTTP requests by route and status.
        "relance_build_info{version=\"",
        "# TYPE process_cpu_seconds_total counter",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "# TYPE relance_http_request_duration_seconds histogram",
        "relance_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/customers/{external_id}\",status=\"200\"} 1",
        "relance_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "relance_http_requests_total{status=\"200\"} ",
    ] {
        assert!(text.contains(line), "'{line}' not in\n{text}");
    }
    // The tick's email: planned and due, or being sent or already sent by the running
    // service's dispatcher — whichever the scrape catches, it is counted once.
    assert!(
        ["planned", "sending", "sent"]
            .iter()
            .any(|status| text.contains(&format!(
                "relance_actions{{kind=\"email\",status=\"{status}\"}} 1"
            ))),
        "{text}"
    );
    let log = s.stop();
    // One line per request, with its id, method, path, status and time.
    let line = log
        .lines()
        .find(|l| l.contains("erp-sync-4711"))
        .unwrap_or_else(|| panic!("no request log line in\n{log}"));
    assert!(
        line.contains("GET /v1/customers/C1 200") && line.contains(" ms"),
        "{line}"
    );
    w.relance(&["insurers", "enable", "coface-fr"])
        .expect_code(0);
    let s = Server::start(&w);
    let text = s
        .client
        .get(s.url("/metrics"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("relance_insurer_endpoint_up{insurer=\"coface-fr\"} 1"),
        "{text}"
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let w = workspace("sqlite://ledger.db", "");
    let read = token(&w, "docs", "read");
    let s = Server::start(&w);
    let (status, doc) = s.call("GET", "/v1/openapi.json", Some(&read), None).await;
    assert_eq!(status, 200);
    s.stop();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = relance::api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    served.sort();
    let undocumented: Vec<_> = served.iter().filter(|r| !documented.contains(r)).collect();
    let unserved: Vec<_> = documented.iter().filter(|r| !served.contains(r)).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    // Every path parameter is declared.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let params: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next())
            .collect();
        for (method, op) in ops.as_object().unwrap() {
            for p in &params {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|x| x["name"] == *p && x["in"] == "path"));
                assert!(declared, "{method} {path}: path parameter {p} not declared");
            }
        }
    }
}

/// Customers C1 and C2, invoice F64 of C1 (100.00) with 60.00 of C1's payment on it.
async fn moving_an_invoice(database_url: &str) {
    let w = workspace(database_url, "");
    let erp = token(&w, "erp", "ingest,read");
    let s = Server::start(&w);
    for id in ["C1", "C2"] {
        let (status, r) = s
            .call(
                "PUT",
                &format!("/v1/customers/{id}"),
                Some(&erp),
                Some(json!({"name": id, "segment": "smb"})),
            )
            .await;
        assert_eq!(status, 201, "{r}");
    }
    let f64 = |customer: &str| json!({"customer": customer, "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "100.00"});
    let (status, r) = s
        .call("PUT", "/v1/invoices/F64", Some(&erp), Some(f64("C1")))
        .await;
    assert_eq!(status, 201, "{r}");
    let (status, r) = s
        .call(
            "PUT",
            "/v1/payments/P1",
            Some(&erp),
            Some(json!({"customer": "C1", "date": "2026-10-15", "amount": "60.00"})),
        )
        .await;
    assert_eq!(status, 201, "{r}");

    // Another customer in a PUT: refused, naming the field; nothing moves.
    let refused = s
        .call("PUT", "/v1/invoices/F64", Some(&erp), Some(f64("C2")))
        .await;
    assert_error(&refused, 422, "invalid_field");
    assert_eq!(refused.1["field"], "customer", "{}", refused.1);
    let message = refused.1["errors"][0]["detail"].as_str().unwrap();
    assert!(
        message.contains("belongs to customer 'C1'") && message.contains("allow_customer_change"),
        "{message}"
    );
    // In a batch: the item is named, and the other items are not written either.
    let refused = s
        .call("POST", "/v1/invoices/batch", Some(&erp), Some(json!({"items": [
            {"number": "F65", "customer": "C2", "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "5.00"},
            {"number": "F64", "customer": "C2", "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "100.00"},
        ]})))
        .await;
    assert_error(&refused, 422, "invalid_field");
    assert_eq!(refused.1["field"], "items[1].customer", "{}", refused.1);
    let (_, inv) = s.call("GET", "/v1/invoices/F64", Some(&erp), None).await;
    assert_eq!(inv["customer"], "C1", "{inv}");
    assert_eq!(inv["open_amount"], "40.00", "{inv}");
    assert_error(
        &s.call("GET", "/v1/invoices/F65", Some(&erp), None).await,
        404,
        "not_found",
    );
    assert_error(
        &s.call(
            "PUT",
            "/v1/invoices/F64?allow_customer_change=maybe",
            Some(&erp),
            Some(f64("C2")),
        )
        .await,
        422,
        "invalid_field",
    );
    assert_error(
        &s.call(
            "PUT",
            "/v1/payments/P1?allow_customer_change=true",
            Some(&erp),
            Some(json!({"customer": "C1", "date": "2026-10-15", "amount": "60.00"})),
        )
        .await,
        422,
        "invalid_field",
    );

    // Asked for: the invoice moves, C1's allocation on it is released.
    let (status, report) = s
        .call(
            "PUT",
            "/v1/invoices/F64?allow_customer_change=true",
            Some(&erp),
            Some(f64("C2")),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["written"]["updated"], 1, "{report}");
    assert_eq!(
        report["customer_changes"],
        json!([{"line": 0, "invoice": "F64", "from": "C1", "to": "C2", "released_allocations": 1, "released_amount": "60.00"}]),
        "{report}"
    );
    let (_, inv) = s.call("GET", "/v1/invoices/F64", Some(&erp), None).await;
    assert_eq!(inv["customer"], "C2", "{inv}");
    assert_eq!(inv["open_amount"], "100.00", "{inv}");
    assert_eq!(inv["status"], "open", "{inv}");
    let (_, c1) = s.call("GET", "/v1/customers/C1", Some(&erp), None).await;
    assert_eq!(c1["payments"][0]["unapplied"], "60.00", "{c1}");
    assert_eq!(
        c1["payments"][0]["allocations"].as_array().map(Vec::len),
        Some(0),
        "{c1}"
    );
    // The same PUT again changes nothing.
    let (_, again) = s
        .call(
            "PUT",
            "/v1/invoices/F64?allow_customer_change=true",
            Some(&erp),
            Some(f64("C2")),
        )
        .await;
    assert_eq!(again["written"]["unchanged"], 1, "{again}");
    assert_eq!(again["customer_changes"], json!([]), "{again}");
    s.stop();
    let history = crate::import::import_history(&w, database_url).await;
    assert!(
        history.iter().any(|(kind, what)| kind == "invoice_customer_change"
            && what.contains("api:item: invoice F64 moved from customer C1 to C2; 1 payment allocation(s) released (60.00)")),
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_put_with_another_customer_is_refused_unless_the_move_is_asked_for() {
    moving_an_invoice("sqlite://ledger.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_put_with_another_customer_is_refused_unless_the_move_is_asked_for_on_postgres()
{
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped(
            "an_invoice_put_with_another_customer_is_refused_unless_the_move_is_asked_for_on_postgres",
        );
    };
    let db = TestDb::postgres(&admin).await;
    moving_an_invoice(&db.url).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json_and_a_client_slow_to_send_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let w = workspace("sqlite://ledger.db", "");
    let read = token(&w, "dashboard", "read");
    let s = Server::start(&w);
    let json_error = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        assert_eq!(
            ctype.as_deref(),
            Some("application/problem+json"),
            "{status}: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
        assert!(v["detail"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        (status, v)
    };
    let addr = s.base.trim_start_matches("http://").to_string();
    let raw_http = |request: Vec<u8>| {
        let mut raw = std::net::TcpStream::connect(&addr).unwrap();
        raw.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        raw.write_all(&request).unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
        (head.to_ascii_lowercase(), v)
    };
    // A 100 KB path (beyond what HTTP clients send: written by hand).
    let (head, v) = raw_http(
        format!(
            "GET /v1/customers/{} HTTP/1.1\r\nhost: relance\r\nauthorization: Bearer {read}\r\n\r\n",
            "a".repeat(100 * 1024)
        )
        .into_bytes(),
    );
    assert!(head.starts_with("http/1.1 414"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(v["code"], "uri_too_long", "{v}");
    // A path segment that is not UTF-8 once decoded.
    let resp = s
        .client
        .get(s.url("/v1/customers/%FF%FE"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let (status, v) = json_error(resp).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "bad_request");
    // Headers too large, and a request line that is not HTTP.
    let mut many = s.client.get(s.url("/v1/actions")).bearer_auth(&read);
    for i in 0..120 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let resp = many.send().await.unwrap();
    let (status, _) = json_error(resp).await;
    assert_eq!(status, 431);
    let (head, v) = raw_http(b"NOT HTTP AT ALL\r\n\r\n".to_vec());
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(v["code"], "bad_request", "{v}");

    // Half a request line, then nothing: the server hangs up once the header read
    // timeout (10 s) has passed.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/act").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        r.is_ok(),
        "the connection is still open after {waited:?}: {r:?}"
    );
    assert!(
        waited >= std::time::Duration::from_secs(5) && waited <= std::time::Duration::from_secs(15),
        "closed after {waited:?}"
    );
    // The server still answers.
    assert_eq!(s.call("GET", "/healthz", None, None).await.0, 200);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_a_logged_value_cannot_forge_a_log_line() {
    let w = workspace("sqlite://ledger.db", "");
    w.import_ledger(
        "external_id,name,segment\nC1,Un,smb\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\n",
    );
    let forger = token(&w, "ops\nINFO forged line by=admin", "collect,read");
    let s = Server::start(&w);
    let (status, r) = s
        .call(
            "PUT",
            "/v1/invoices/F1/dispute",
            Some(&forger),
            Some(json!({"reason": "goods damaged"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    // Values with line breaks are refused before they reach the log.
    let refused = s
        .call(
            "PUT",
            "/v1/customers/C1/pause",
            Some(&forger),
            Some(json!({"reason": "talks\nINFO forged line"})),
        )
        .await;
    assert_error(&refused, 422, "invalid_field");
    assert_eq!(refused.1["field"], "reason");
    let log = s.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("dispute opened") && l.contains("ops\\nINFO forged line")),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("INFO forged")),
        "a forged line in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_and_text_with_control_characters_or_unbounded_lengths_are_refused() {
    let w = workspace("sqlite://ledger.db", "");
    let erp = token(&w, "erp", "ingest,read,collect");
    let s = Server::start(&w);
    let customer = |extra: Value| {
        let mut c = json!({"name": "Un", "segment": "smb"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let field_of = |r: &(u16, Value)| r.1["field"].as_str().unwrap_or("").to_string();
    for (path, body, field) in [
        ("/v1/customers/C%001", customer(json!({})), "external_id"),
        ("/v1/customers/C%1B1", customer(json!({})), "external_id"),
        (
            "/v1/customers/C1",
            customer(json!({"name": "Un\u{1b}[2J"})),
            "name",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"name": "x".repeat(201)})),
            "name",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"city": "Paris\nINFO x"})),
            "city",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"country": "ZZ"})),
            "country",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"country": "XX"})),
            "country",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"tags": ["ok", "a\u{0}b"]})),
            "tags",
        ),
        (
            "/v1/customers/C1",
            customer(json!({"external_id": "C1\u{0}"})),
            "external_id",
        ),
    ] {
        let r = s.call("PUT", path, Some(&erp), Some(body)).await;
        assert_error(&r, 422, "invalid_field");
        assert_eq!(field_of(&r), field, "{path}: {}", r.1);
    }
    let huge = s
        .call(
            "POST",
            "/v1/customers/batch",
            Some(&erp),
            Some(json!({"items": [{"external_id": "C".repeat(100 * 1024), "name": "Un", "segment": "smb"}]})),
        )
        .await;
    assert_error(&huge, 422, "invalid_field");
    assert_eq!(field_of(&huge), "items[0].external_id");
    assert!(
        huge.1["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("at most 64"),
        "{}",
        huge.1
    );
    for country in ["FR", "DE", "gb"] {
        let (status, r) = s
            .call(
                "PUT",
                &format!("/v1/customers/C-{country}"),
                Some(&erp),
                Some(customer(json!({"country": country}))),
            )
            .await;
        assert_eq!(status, 201, "{country}: {r}");
    }
    let (status, r) = s
        .call(
            "PUT",
            "/v1/invoices/F1",
            Some(&erp),
            Some(json!({"customer": "C-FR", "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "1.00"})),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let bad_invoice = s
        .call(
            "PUT",
            "/v1/invoices/F%0A2",
            Some(&erp),
            Some(json!({"customer": "C-FR", "issue_date": "2026-10-01", "due_date": "2026-10-31", "amount": "1.00"})),
        )
        .await;
    assert_eq!(field_of(&bad_invoice), "number", "{}", bad_invoice.1);
    let bad_reference = s
        .call(
            "PUT",
            "/v1/payments/P1",
            Some(&erp),
            Some(json!({"customer": "C-FR", "date": "2026-10-02", "amount": "1.00", "reference": "VIR\u{0}F1"})),
        )
        .await;
    assert_eq!(field_of(&bad_reference), "reference", "{}", bad_reference.1);
    let long_reference = s
        .call(
            "PUT",
            "/v1/payments/P1",
            Some(&erp),
            Some(json!({"customer": "C-FR", "date": "2026-10-02", "amount": "1.00", "reference": "r".repeat(2001)})),
        )
        .await;
    assert_eq!(
        field_of(&long_reference),
        "reference",
        "{}",
        long_reference.1
    );
    // Collectors' text and keys in paths, queries and bodies.
    for (method, path, body, field) in [
        ("GET", "/v1/customers/C%1B", None, "external_id"),
        ("GET", "/v1/invoices/F%001", None, "number"),
        (
            "PUT",
            "/v1/invoices/F1/dispute",
            Some(json!({"reason": "bad\u{0}"})),
            "reason",
        ),
        (
            "PUT",
            "/v1/invoices/F1/dispute",
            Some(json!({"reason": "x".repeat(2001)})),
            "reason",
        ),
        (
            "PUT",
            "/v1/invoices/F1/pause",
            Some(json!({"reason": "a\rb"})),
            "reason",
        ),
        (
            "POST",
            "/v1/promises",
            Some(
                json!({"customer": "C-FR", "promised_date": "2027-01-05", "amount": "1.00", "note": "n\u{7}"}),
            ),
            "note",
        ),
        (
            "POST",
            "/v1/promises",
            Some(
                json!({"customer": "C-FR", "promised_date": "2027-01-05", "amount": "1.00", "invoices": ["F\u{1b}1"]}),
            ),
            "invoices[0]",
        ),
        ("GET", "/v1/actions?customer=C%00", None, "customer"),
        ("GET", "/v1/tasks?customer=C%0A", None, "customer"),
    ] {
        let r = s.call(method, path, Some(&erp), body).await;
        assert_error(&r, 422, "invalid_field");
        assert_eq!(field_of(&r), field, "{method} {path}: {}", r.1);
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_server_agree_on_what_is_refused() {
    let w = workspace("sqlite://ledger.db", "");
    w.import_ledger(
        "external_id,name,segment\nC1,Un,smb\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\n",
    );
    w.relance(&["tick", "--as-of", "2026-11-20"]).expect_code(0);
    let collector = token(&w, "collectors-app", "read,collect");
    let s = Server::start(&w);
    let (status, doc) = s
        .call("GET", "/v1/openapi.json", Some(&collector), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(relance::api::OPENAPI).unwrap()
    );

    // What the document forbids, the server refuses.
    for (method, path, body, field) in [
        ("GET", "/v1/customers/C1/dry-run?as_of=", None, "as_of"),
        ("GET", "/v1/actions?customer=", None, "customer"),
        (
            "PUT",
            "/v1/customers/C1/pause",
            Some(json!({"reason": "talks", "until": null})),
            "until",
        ),
        (
            "PUT",
            "/v1/invoices/F1/dispute",
            Some(json!({"reason": null})),
            "reason",
        ),
        (
            "POST",
            "/v1/promises",
            Some(json!({"customer": "C1", "promised_date": "2027-01-05", "amount": null})),
            "amount",
        ),
        (
            "POST",
            "/v1/tasks/1/complete",
            Some(json!({"outcome": "reached", "amount": null})),
            "amount",
        ),
        ("GET", "/v1/actions/0", None, "id"),
        ("GET", "/v1/actions/-1", None, "id"),
    ] {
        let r = s.call(method, path, Some(&collector), body).await;
        assert_error(&r, 422, "invalid_field");
        assert_eq!(r.1["field"], field, "{method} {path}: {}", r.1);
    }
    let (status, r) = s
        .call(
            "GET",
            "/v1/customers/C1/dry-run?as_of=2026-11-25",
            Some(&collector),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    s.stop();

    // What the server refuses, the document forbids.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let schema = &p["schema"];
                match schema["type"].as_str() {
                    Some("integer") => {
                        assert_eq!(schema["minimum"], 1, "{method} {path} {}", p["name"])
                    }
                    Some("string") if p["in"] == "path" && schema.get("enum").is_none() => {
                        assert_key_schema(schema, &format!("{method} {path} {}", p["name"]))
                    }
                    Some("string") => assert!(
                        schema["minLength"] == 1 || schema.get("enum").is_some(),
                        "{method} {path} {}",
                        p["name"]
                    ),
                    _ => {}
                }
            }
            // Every operation under /v1 declares its JSON errors.
            if path.starts_with("/v1/") {
                // 401 where a token is needed (`security: []` says none is).
                let open = op["security"].as_array().is_some_and(Vec::is_empty);
                for code in ["400", "401"] {
                    if open && code == "401" {
                        continue;
                    }
                    let content = &op["responses"][code]["content"];
                    assert!(
                        content["application/problem+json"].is_object(),
                        "{method} {path}: no problem details for {code}"
                    );
                }
            }
        }
    }
    let document = &doc["paths"]["/v1/actions/{id}/documents/{kind}"]["get"]["responses"];
    for ctype in ["application/pdf", "application/json"] {
        assert!(document["200"]["content"][ctype].is_object(), "{document}");
    }
    for code in ["404", "409", "422"] {
        assert!(
            document[code]["content"]["application/problem+json"].is_object(),
            "{document}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for (schema, field, max) in [
        ("CustomerItem", "external_id", 64),
        ("CustomerItem", "name", 200),
        ("InvoiceItem", "number", 64),
        ("InvoiceItem", "customer", 64),
        ("PaymentItem", "id", 64),
        ("PaymentItem", "reference", 2000),
        ("Pause", "reason", 2000),
        ("Dispute", "reason", 2000),
        ("Promise", "customer", 64),
        ("Promise", "note", 2000),
    ] {
        let f = &schemas[schema]["properties"][field];
        let f = if f["oneOf"].is_array() {
            &f["oneOf"][0]
        } else {
            f
        };
        assert_eq!(f["maxLength"], max, "{schema}.{field}: {f}");
        assert!(f["pattern"].is_string(), "{schema}.{field}: {f}");
    }
    // Country codes: the assigned ones only (ZA, ZM, ZW; no ZZ), in either case.
    let country = schemas["CustomerItem"]["properties"]["country"]["pattern"]
        .as_str()
        .unwrap_or_default();
    assert!(country.contains("[Zz][AMWamw]"), "{country}");
}

/// A key in a path: not empty, at most 64 characters, no control characters.
fn assert_key_schema(schema: &Value, what: &str) {
    assert_eq!(schema["minLength"], 1, "{what}: {schema}");
    assert_eq!(schema["maxLength"], 64, "{what}: {schema}");
    let pattern = schema["pattern"].as_str().unwrap_or_default();
    assert!(pattern.contains("\\u0000-\\u001F"), "{what}: {schema}");
}

/// Customers, invoices, payments and tasks as lists an ERP reconciles against: filters,
/// pages by cursor, `updated_since`; a PUT that creates answers 201 with `Location`;
/// single resources carry an `ETag` and answer 304 to `If-None-Match`.
async fn lists(database_url: &str) {
    let w = workspace(database_url, "");
    w.import_ledger(
        "external_id,name,segment,emails,collector\nC1,Un,smb,a@un.example,alice\nC2,Deux,smb,b@deux.example,bruno\nC3,Trois,smb,c@trois.example,alice\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\nF2,C2,2026-09-15,2026-11-10,200.00\nF3,C3,2026-10-01,2026-11-12,300.00\nF4,C3,2026-10-02,2026-11-13,50.00\n",
    );
    w.write(
        "payments.csv",
        "id,customer,date,amount,invoices\nP1,C1,2026-10-05,100.00,F1\nP2,C3,2026-11-20,20.00,F4\n",
    );
    w.relance(&["import", "payments", "payments.csv"])
        .expect_code(0);
    w.relance(&["tick", "--as-of", "2026-12-20"]).expect_code(0);
    let read = token(&w, "erp", "read,ingest");
    let s = Server::start(&w);
    let get = |path: String| {
        let s = &s;
        let read = read.clone();
        async move { s.call("GET", &path, Some(&read), None).await }
    };
    let ids = |page: &Value, field: &str| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[field].as_str().unwrap_or_default().to_string())
            .collect()
    };

    // Customers: two pages of two, then none.
    let (status, first) = get("/v1/customers?limit=2".into()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first, "external_id"), ["C1", "C2"], "{first}");
    assert!(first["items"][0]["updated_at"].is_string(), "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = get(format!("/v1/customers?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second, "external_id"), ["C3"], "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
    let (_, alice) = get("/v1/customers?collector=alice".into()).await;
    assert_eq!(ids(&alice, "external_id"), ["C1", "C3"], "{alice}");

    // Invoices: by customer, status, due and issue ranges.
    let (_, of_c3) = get("/v1/invoices?customer=C3".into()).await;
    assert_eq!(ids(&of_c3, "number"), ["F3", "F4"], "{of_c3}");
    let (_, open) = get("/v1/invoices?status=open".into()).await;
    assert_eq!(ids(&open, "number"), ["F2", "F3", "F4"], "{open}");
    let (_, paid) = get("/v1/invoices?status=paid".into()).await;
    assert_eq!(ids(&paid, "number"), ["F1"], "{paid}");
    let (_, due) = get("/v1/invoices?due_from=2026-11-10&due_to=2026-11-12".into()).await;
    assert_eq!(ids(&due, "number"), ["F2", "F3"], "{due}");
    let (_, issued) = get("/v1/invoices?issued_from=2026-10-01".into()).await;
    assert_eq!(ids(&issued, "number"), ["F3", "F4"], "{issued}");
    assert_error(
        &get("/v1/invoices?due_from=2026-11-12&due_to=2026-11-10".into()).await,
        422,
        "invalid_field",
    );
    assert_error(
        &get("/v1/invoices?status=lost".into()).await,
        422,
        "invalid_field",
    );
    assert_error(
        &get("/v1/invoices?cursor=abc".into()).await,
        422,
        "invalid_field",
    );

    // updated_since: nothing changed after now; a change shows up.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, none) = get(format!("/v1/invoices?updated_since={now}")).await;
    assert_eq!(status, 200, "{none}");
    assert!(none["items"].as_array().unwrap().is_empty(), "{none}");
    let (status, _) = s
        .call(
            "PUT",
            "/v1/invoices/F2",
            Some(&read),
            Some(json!({"customer": "C2", "issue_date": "2026-09-15", "due_date": "2026-11-10", "amount": "210.00"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, changed) = get(format!("/v1/invoices?updated_since={now}")).await;
    assert_eq!(
        ids(&changed, "number"),
        ["F2"],
        "{changed} (before: {none})"
    );
    let (_, today) = get("/v1/invoices?updated_since=2000-01-01".into()).await;
    assert_eq!(today["items"].as_array().unwrap().len(), 4);

    // Payments, with their allocations; one by id.
    let (_, payments) = get("/v1/payments".into()).await;
    assert_eq!(payments["items"].as_array().unwrap().len(), 2, "{payments}");
    let (_, of_c3) = get("/v1/payments?customer=C3".into()).await;
    assert_eq!(of_c3["items"][0]["payment"]["external_id"], "P2", "{of_c3}");
    // Allocated to the oldest open invoice of C3.
    assert_eq!(of_c3["items"][0]["allocations"][0][0], "F3", "{of_c3}");
    let (status, p1) = get("/v1/payments/P1".into()).await;
    assert_eq!(status, 200, "{p1}");
    assert_eq!(p1["payment"]["customer"], "C1", "{p1}");
    assert_error(&get("/v1/payments/P9".into()).await, 404, "not_found");

    // Tasks (the shipped rule calls at 30 days late): paged by cursor.
    let (_, tasks) = get("/v1/tasks?limit=1".into()).await;
    let all = get("/v1/tasks?limit=500".into()).await.1;
    let total = all["items"].as_array().unwrap().len();
    assert!(total >= 2, "{all}");
    let mut seen = ids_of_tasks(&tasks);
    let mut cursor = tasks["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (status, page) = get(format!("/v1/tasks?limit=1&cursor={c}")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids_of_tasks(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ids_of_tasks(&all));

    // PUT: 201 with Location when it creates, 200 when it updates.
    let created = s
        .client
        .put(s.url("/v1/customers/C%2F4"))
        .bearer_auth(&read)
        .json(&json!({"name": "Quatre", "segment": "smb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(created.headers()["location"], "/v1/customers/C%2F4");
    let again = s
        .client
        .put(s.url("/v1/customers/C%2F4"))
        .bearer_auth(&read)
        .json(&json!({"name": "Quatre", "segment": "smb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert!(again.headers().get("location").is_none());

    // ETag and If-None-Match on a single resource.
    let first = s
        .client
        .get(s.url("/v1/invoices/F3"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let same = s
        .client
        .get(s.url("/v1/invoices/F3"))
        .bearer_auth(&read)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status().as_u16(), 304);
    assert_eq!(same.headers()["etag"].to_str().unwrap(), tag);
    assert!(same.bytes().await.unwrap().is_empty());
    let other = s
        .client
        .get(s.url("/v1/invoices/F2"))
        .bearer_auth(&read)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    s.stop();
}

fn ids_of_tasks(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_page_what_an_erp_reconciles_and_single_resources_answer_not_modified() {
    lists("sqlite://ledger.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("lists_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    lists(&db.url).await;
    db.cleanup().await;
}

/// A client retrying a POST with its `Idempotency-Key` (the answer was lost): the
/// first answer again, nothing done twice; the key reused for another request, or by
/// a request still running, is refused.
async fn idempotent_posts(database_url: &str) {
    let w = workspace(database_url, "");
    w.import_ledger(
        "external_id,name,segment,emails\nC3,Trois,smb,c@trois.example\n",
        "number,customer,issue_date,due_date,amount\nF3,C3,2026-09-01,2026-11-12,300.00\nF4,C3,2026-09-01,2026-11-13,50.00\n",
    );
    let collector = token(&w, "collectors-app", "read,collect,ingest");
    let other = token(&w, "other-app", "read,collect");
    let s = Server::start(&w);
    let post = |token: &str, key: &str, path: &str, body: Value| {
        s.client
            .post(s.url(path))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let promise = json!({"customer": "C3", "promised_date": "2026-12-24", "amount": "50.00", "invoices": ["F4"]});
    let first = post(&collector, "promise-C3-1", "/v1/promises", promise.clone())
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();
    let again = post(&collector, "promise-C3-1", "/v1/promises", promise.clone())
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(again.text().await.unwrap(), first_body);
    let (_, view) = s
        .call("GET", "/v1/customers/C3", Some(&collector), None)
        .await;
    let promises = view["promises"].as_array().unwrap();
    assert_eq!(promises.len(), 1, "one promise, not two: {view}");

    // The same key with another request: refused, nothing done.
    let mut other_promise = promise.clone();
    other_promise["amount"] = json!("40.00");
    let reused = post(&collector, "promise-C3-1", "/v1/promises", other_promise)
        .await
        .unwrap();
    assert_eq!(reused.status().as_u16(), 422);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["code"], "idempotency_key_reused", "{body}");
    // Keys belong to their token: another token's same key is its own.
    let theirs = post(&other, "promise-C3-1", "/v1/promises", promise.clone())
        .await
        .unwrap();
    assert_eq!(theirs.status().as_u16(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none());

    // A refused request is answered the same way again (and still writes nothing).
    let bad = json!({"items": [{"number": "F9", "customer": "C3", "issue_date": "2026-11-02", "due_date": "2026-13-45", "amount": "10.00"}]});
    let refused = post(&collector, "batch-7", "/v1/invoices/batch", bad.clone())
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let refused_body: Value = refused.json().await.unwrap();
    let replayed = post(&collector, "batch-7", "/v1/invoices/batch", bad)
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 422);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replayed.headers()["content-type"],
        "application/problem+json"
    );
    let replayed_body: Value = replayed.json().await.unwrap();
    assert_eq!(replayed_body["code"], refused_body["code"]);
    assert_eq!(replayed_body["errors"], refused_body["errors"]);

    // A malformed key is refused before anything is done.
    let malformed = post(&collector, "has space", "/v1/promises", promise)
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "bad_request", "{body}");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_retried_with_its_idempotency_key_is_done_once_and_answered_the_same() {
    idempotent_posts("sqlite://ledger.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return say_postgres_skipped("idempotency_keys_on_postgres");
    };
    let db = TestDb::postgres(&admin).await;
    idempotent_posts(&db.url).await;
    db.cleanup().await;
}
