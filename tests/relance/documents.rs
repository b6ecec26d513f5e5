//! Formal notices and insurer handovers, through the binary: the PDF read back by an
//! independent extractor (`pdftotext`, poppler), emails read by aiosmtpd, handovers
//! verified by the reference Standard Webhooks library and validated against the JSON
//! Schema by the `jsonschema` package.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::channels::{http_peer, run, verify_with_reference, SmtpSink};
use crate::helpers::{postgres_admin_url, say_postgres_skipped, TestDb, Workspace};

/// A seller, French late-payment terms with a rate change on 1 January 2027, and one
/// segment whose rule is `rule`; `extra` is appended.
pub(crate) fn notice_workspace(database_url: &str, rule: &str, extra: &str) -> Workspace {
    let w = Workspace::new();
    std::fs::create_dir_all(w.path("rules")).unwrap();
    w.write("rules/smb.rhai", rule);
    w.write(
        "relance.yaml",
        format!(
            r#"database:
  url: "{database_url}"
company:
  name: Ateliers Test
  legal_name: Ateliers Test SAS
  siren: "732829320"
  currency: EUR
  address: {{ line1: 12 rue des Forges, postal_code: "69007", city: Lyon, country: FR }}
  email: recouvrement@ateliers-test.example
  bank: {{ iban: FR7630006000011234567890189, bic: AGRIFRPP }}
  signatory: {{ name: Claire Martin, title: Credit manager }}
timezone: Europe/Paris
late_payment:
  reference_rates:
    - {{ from: 2026-07-01, rate: "2.15" }}
    - {{ from: 2027-01-01, rate: "3.00" }}
insurers:
  coface-fr:
    name: Coface
    policy_number: POL-778
    declaration_deadline_days: 150
segments:
  smb:
    rules: rules/smb.rhai
    schedule: "0 0 9 * * Mon-Fri"
dispatch:
  backoff_base_seconds: 0
  max_attempts: 5
{extra}"#
        ),
    );
    // Invoice F-A: 10,000.00 due 16 Dec 2026. Invoice F-B: 5,000.00 due 31 Dec 2026,
    // 2,000.00 paid on 6 Jan 2027.
    w.write(
        "customers.csv",
        "external_id,name,legal_name,siren,segment,emails,locale,address_line1,postal_code,city,insured,insurer_policy,insurer_buyer_ref\n\
         C1,Menuiserie Un,Menuiserie Un SARL,210949566,smb,compta@un.example,fr,77 rue de la République,13002,Marseille,yes,coface-fr,CF-0001\n",
    );
    w.write(
        "invoices.csv",
        "number,customer,issue_date,due_date,amount\n\
         F-A,C1,2026-11-16,2026-12-16,10000.00\n\
         F-B,C1,2026-12-01,2026-12-31,5000.00\n",
    );
    w.write(
        "payments.csv",
        "id,customer,kind,date,currency,amount,reference\nP1,C1,payment,2027-01-06,EUR,2000.00,VIR F-B\n",
    );
    for (what, file) in [
        ("customers", "customers.csv"),
        ("invoices", "invoices.csv"),
        ("payments", "payments.csv"),
    ] {
        w.relance(&["import", what, file]).expect_code(0);
    }
    w
}

pub(crate) fn actions(w: &Workspace, kind: &str) -> Vec<serde_json::Value> {
    w.relance(&["actions", "list", "--kind", kind, "--format", "json"])
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn show(w: &Workspace, id: i64) -> serde_json::Value {
    serde_json::from_str(
        &w.relance(&["actions", "show", &id.to_string(), "--format", "json"])
            .expect_code(0)
            .stdout,
    )
    .unwrap()
}

/// The text of a PDF, as poppler's `pdftotext -layout` extracts it, with no-break
/// spaces made plain.
pub(crate) fn pdf_text(path: &std::path::Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) is installed");
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        path.display()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(['\u{a0}', '\u{202f}'], " ")
}

fn sha256_of(bytes: &[u8]) -> String {
    relance::digest::sha256_hex(bytes)
}

/// Interest by hand (ECB + 10 points: 12.15 % in 2026, 13.00 % from 1 Jan 2027), as of
/// 15 Jan 2027:
/// - F-A, 10,000.00 due 16 Dec: 17–31 Dec 15 days at 12.15 % + 1–15 Jan 15 days at
///   13.00 % = 10,000 × (182.25 + 195) / 36,500 = 103.356… → 103.36
/// - F-B, 5,000.00 due 31 Dec, 2,000.00 paid 6 Jan: 1–5 Jan on 5,000 + 6–15 Jan on
///   3,000, at 13.00 % = (25,000 + 30,000) × 13 / 36,500 = 19.589… → 19.59
/// - indemnities 2 × 40.00; open 13,000.00; claimed 13,000 + 122.95 + 80 = 13,202.95.
const EXPECTED: &[&str] = &[
    "MISE EN DEMEURE",
    "mise en demeure de payer",
    "Menuiserie Un SARL",
    "77 rue de la République",
    "13002 Marseille",
    "F-A",
    "F-B",
    "10 000,00 €",
    "3 000,00 €",
    "103,36 €",
    "19,59 €",
    "122,95 €",
    "80,00 €",
    "13 000,00 €",
    "13 202,95 €",
    "15/01/2027",
    "25/01/2027",
    "MED-",
    "Coface",
    "FR7630006000011234567890189",
    "Claire Martin",
];

#[test]
fn a_formal_notice_pdf_states_the_customer_each_invoice_the_interest_and_the_exact_totals() {
    let w = notice_workspace(
        "sqlite://ledger.db",
        "formal_notice(customer.dunnable.overdue(1), #{ deadline_days: 10 })",
        "",
    );
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let list = actions(&w, "formal_notice");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "sent", "{list:?}");
    let id = list[0]["id"].as_i64().unwrap();

    let out = w.path("notice.pdf");
    let r = w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]);
    r.expect_code(0);
    assert!(r.stderr.contains("verified"), "{}", r.stderr);
    let text = pdf_text(&out);
    for s in EXPECTED {
        assert!(text.contains(s), "'{s}' not found in the notice:\n{text}");
    }
    // 10 days to pay from the notice's date, in words too.
    assert!(text.contains("10 jours"), "{text}");

    // The action log holds the SHA-256 of exactly these bytes, and the figures.
    let bytes = std::fs::read(&out).unwrap();
    let detail = show(&w, id);
    let doc = &detail["documents"][0];
    assert_eq!(doc["kind"], "formal_notice");
    assert_eq!(doc["sha256"], sha256_of(&bytes));
    assert_eq!(doc["metadata"]["interest"], "122.95");
    assert_eq!(doc["metadata"]["claimed"], "13202.95");
    // Without an SMTP server the email part went to the outbox folder, with this PDF.
    let outboxed = std::fs::read_dir(w.path("outbox/formal_notice"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pdf"))
        .expect("the PDF in the outbox folder");
    assert_eq!(sha256_of(&std::fs::read(outboxed).unwrap()), doc["sha256"]);

    // Evidence that no longer matches its hash is refused.
    let archived = PathBuf::from(doc["location"].as_str().unwrap());
    let archived = if archived.is_absolute() {
        archived
    } else {
        w.path(archived.to_str().unwrap())
    };
    let mut altered = std::fs::read(&archived).unwrap();
    altered.extend_from_slice(b"%tampered");
    std::fs::write(&archived, altered).unwrap();
    let r = w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("does not match its recorded SHA-256"),
        "{}",
        r.stderr
    );
}

/// The same account with the customer established in Germany, whose jurisdiction has its
/// own reference rate (1.27 % then 2.00 % from 1 Jan 2027) and margin (9 points):
/// - F-A: 10,000 × (15 × 10.27 + 15 × 11.00) / 36,500 = 87.410… → 87.41
/// - F-B: (5 × 5,000 + 10 × 3,000) × 11.00 / 36,500 = 16.575… → 16.58
/// - the indemnity is inherited from the default terms: 2 × 40.00; claimed 13,183.99.
#[test]
fn a_customer_abroad_is_claimed_interest_under_its_country_terms() {
    let w = notice_workspace(
        "sqlite://ledger.db",
        "formal_notice(customer.dunnable.overdue(1))",
        "",
    );
    let cfg = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    let cfg = cfg.replacen(
        "late_payment:\n",
        r#"late_payment:
  jurisdictions:
    DE:
      margin_points: 9
      reference_label: { fr: taux de base de la Bundesbank, en: Bundesbank base rate }
      legal_basis: { fr: "§§ 286 et 288 du BGB", en: "German Civil Code (BGB), sections 286 and 288" }
      reference_rates:
        - { from: 2026-07-01, rate: "1.27" }
        - { from: 2027-01-01, rate: "2.00" }
"#,
        1,
    );
    w.write("relance.yaml", cfg);
    w.write(
        "customers.csv",
        "external_id,name,legal_name,segment,emails,locale,address_line1,postal_code,city,country\n\
         C1,Menuiserie Un,Tischlerei Eins GmbH,smb,buchhaltung@eins.example,fr,Hauptstraße 5,10115,Berlin,DE\n",
    );
    w.relance(&["import", "customers", "customers.csv"])
        .expect_code(0);
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let list = actions(&w, "formal_notice");
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_i64().unwrap();
    let out = w.path("notice.pdf");
    w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "--output",
        out.to_str().unwrap(),
    ])
    .expect_code(0);
    let text = pdf_text(&out);
    for s in [
        "Tischlerei Eins GmbH",
        "87,41 €",
        "16,58 €",
        "103,99 €",
        "80,00 €",
        "13 183,99 €",
    ] {
        assert!(text.contains(s), "'{s}' not found in the notice:\n{text}");
    }
    // Sentences wrap: compare on words.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for s in [
        "taux de base de la Bundesbank majoré de 9 points",
        "Conformément à la loi (§§ 286 et 288 du BGB)",
    ] {
        assert!(words.contains(s), "'{s}' not found in the notice:\n{text}");
    }
    assert!(!text.contains("BCE") && !text.contains("L441"), "{text}");
    assert_eq!(
        show(&w, id)["documents"][0]["metadata"]["interest"],
        "103.99"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formal_notice_goes_by_email_with_the_pdf_and_by_registered_mail_each_part_once() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let (url, seen) = http_peer(vec![
        (503, vec![("retry-after", "0")], "{\"error\":\"busy\"}"),
        (201, vec![], "{\"letter\":{\"tracking\":\"RR123456789FR\"}}"),
    ])
    .await;
    let extra = format!(
        "channels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {}, security: plain, timeout_seconds: 5 }}\n    from: \"Ateliers Test <relance@test.example>\"\n  formal_notice:\n    registered_mail:\n      url: \"{url}/letters\"\n      headers: {{ Authorization: \"Bearer letters-key\" }}\n      tracking_pointer: /letter/tracking\n",
        sink.port
    );
    let w = Arc::new(notice_workspace(
        "sqlite://ledger.db",
        "formal_notice(customer.dunnable.overdue(1), #{ delivery: [\"email\", \"registered_mail\"] })",
        &extra,
    ));
    run(&w, &["tick", "--as-of", "2027-01-15"])
        .await
        .expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);

    let list = actions(&w, "formal_notice");
    assert_eq!(list[0]["status"], "sent", "{list:?}");
    let detail = show(&w, list[0]["id"].as_i64().unwrap());
    let sha = detail["documents"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let provider_ref = detail["provider_ref"].as_str().unwrap();
    assert!(
        provider_ref.contains("registered_mail:RR123456789FR"),
        "{provider_ref}"
    );

    // The email went once although the registered letter was retried, with the PDF.
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["content_type"], "multipart/mixed");
    assert!(
        m["subject"].as_str().unwrap().contains("mise en demeure"),
        "{m}"
    );
    assert!(m["text"].as_str().unwrap().contains("F-A"), "{m}");
    let att = &m["attachments"][0];
    assert_eq!(att["content_type"], "application/pdf");
    assert_eq!(att["sha256"], sha.as_str());

    // The provider got the same request twice: PDF, addressing, idempotency key, auth.
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].2, requests[1].2);
    let (path, headers, body) = &requests[1];
    assert_eq!(path, "/letters");
    assert_eq!(headers["authorization"], "Bearer letters-key");
    assert_eq!(headers["idempotency-key"], detail["key"].as_str().unwrap());
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["recipient"]["name"], "Menuiserie Un SARL");
    assert_eq!(body["recipient"]["postal_code"], "13002");
    assert_eq!(body["recipient"]["city"], "Marseille");
    assert_eq!(body["document"]["sha256"], sha.as_str());
    let pdf = base64_decode(&body["document"]["content_base64"]);
    assert_eq!(sha256_of(&pdf), sha);
    // The letter says it is registered.
    let file = w.path("sent.pdf");
    std::fs::write(&file, &pdf).unwrap();
    assert!(pdf_text(&file).contains("LETTRE RECOMMANDÉE AVEC ACCUSÉ DE RÉCEPTION"));
}

/// Validates `document` against the shipped JSON Schema with the `jsonschema` package.
fn validate_against_schema(document: &serde_json::Value) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(root.join("tests/peers/validate_schema.py"))
        .arg(root.join("docs/schemas/insurer-handover.v1.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (pip install jsonschema)");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        document.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const SECRET_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_NEW: &str = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=";

fn insurer_endpoint(url: &str) -> String {
    format!(
        "    endpoint:\n      url: \"{url}/claims\"\n      secrets: [\"{SECRET_OLD}\", \"{SECRET_NEW}\"]\n    reference_pointer: /claim/reference\n"
    )
}

/// A notice workspace whose insurer posts to `url`, ticked on 15 Jan 2027 with `rule`.
async fn insurer_workspace(rule: &str, url: &str) -> Arc<Workspace> {
    let w = Arc::new(notice_workspace("sqlite://ledger.db", rule, ""));
    let config = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    let config = config.replace(
        "    declaration_deadline_days: 150\n",
        &format!(
            "    declaration_deadline_days: 150\n{}",
            insurer_endpoint(url)
        ),
    );
    w.write("relance.yaml", config);
    run(&w, &["tick", "--as-of", "2027-01-15"])
        .await
        .expect_code(0);
    w
}

fn base64_decode(text: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insurer_handover_verifies_with_the_reference_library_matches_the_schema_and_keeps_its_id_across_retries(
) {
    let (url, seen) = http_peer(vec![
        (
            503,
            vec![("retry-after", "0")],
            "{\"error\":\"maintenance\"}",
        ),
        (200, vec![], "{\"claim\":{\"reference\":\"CLM-2027-0042\"}}"),
    ])
    .await;
    let w = insurer_workspace(
        "[formal_notice(customer.dunnable.overdue(1)), insurer_handover(customer.dunnable.overdue(1), #{ note: \"buyer unreachable\" })]",
        &url,
    )
    .await;
    run(&w, &["dispatch"]).await.expect_code(0);

    let handover = actions(&w, "insurer_handover");
    assert_eq!(handover.len(), 1);
    assert_eq!(handover[0]["status"], "sent", "{handover:?}");
    assert_eq!(handover[0]["provider_ref"], "CLM-2027-0042");
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one 503, one 200");
    // Same id, same bytes, on both attempts.
    assert_eq!(requests[0].1["webhook-id"], requests[1].1["webhook-id"]);
    assert_eq!(requests[0].2, requests[1].2);
    for (_, headers, body) in &requests {
        // Either rotated secret verifies with the reference implementation; a wrong one does not.
        let payload = verify_with_reference(SECRET_NEW, headers, body).expect("verifies");
        verify_with_reference(SECRET_OLD, headers, body).expect("verifies with the old secret");
        assert!(
            verify_with_reference("whsec_d3Jvbmcgc2VjcmV0IGZvciB0aGUgdGVzdA==", headers, body)
                .is_err()
        );
        validate_against_schema(&payload).unwrap_or_else(|e| panic!("schema: {e}\n{payload:#}"));
        assert_eq!(payload["id"], headers["webhook-id"].to_str().unwrap());
    }
    let doc: serde_json::Value = serde_json::from_str(&requests[1].2).unwrap();
    assert_eq!(doc["type"], "insurer.handover");
    assert_eq!(doc["version"], "1.0");
    assert_eq!(doc["policy"]["number"], "POL-778");
    assert_eq!(doc["buyer"]["insurer_buyer_ref"], "CF-0001");
    assert_eq!(doc["buyer"]["siren"], "210949566");
    assert_eq!(doc["totals"]["open"], "13000.00");
    assert_eq!(doc["totals"]["interest"], "122.95");
    assert_eq!(doc["totals"]["claimed"], "13202.95");
    assert_eq!(doc["note"], "buyer unreachable");
    // The formal notice sent before it, with its hash and the PDF itself.
    let notice = &doc["formal_notice"];
    let notice_action = actions(&w, "formal_notice")[0]["id"].as_i64().unwrap();
    let archived = show(&w, notice_action)["documents"][0]["sha256"].clone();
    assert_eq!(notice["sha256"], archived);
    let pdf = base64_decode(&notice["content_base64"]);
    assert_eq!(serde_json::json!(sha256_of(&pdf)), archived);
    // The history lists the notice with its delivery status.
    assert!(doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["kind"] == "formal_notice" && h["status"] == "sent"));

    // The reference is stored once; the handed-over invoices leave the ladder.
    let detail = show(&w, handover[0]["id"].as_i64().unwrap());
    let with_ref: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["provider_ref"] == "CLM-2027-0042")
        .collect();
    assert_eq!(with_ref.len(), 1, "{detail:#}");
    run(&w, &["tick", "--as-of", "2027-02-20"])
        .await
        .expect_code(0);
    assert_eq!(actions(&w, "formal_notice").len(), 1);
    assert_eq!(actions(&w, "insurer_handover").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insurer_endpoint_answering_410_is_disabled_with_an_alert_and_the_handover_dead_lettered(
) {
    let (url, seen) = http_peer(vec![(410, vec![], "{\"error\":\"gone\"}")]).await;
    let w = insurer_workspace("insurer_handover(customer.dunnable.overdue(1))", &url).await;
    let r = run(&w, &["dispatch"]).await;
    r.expect_code(0);
    assert!(r.stderr.contains("ALERT"), "{}", r.stderr);
    let h = actions(&w, "insurer_handover");
    assert_eq!(h[0]["status"], "dead", "{h:?}");
    assert_eq!(seen.requests.lock().unwrap().len(), 1, "not retried");
    let list = run(&w, &["insurers", "list"]).await;
    assert!(list.stdout.contains("DISABLED"), "{}", list.stdout);

    // Requeued while disabled: blocked with the way out, and nothing is posted.
    let id = h[0]["id"].as_i64().unwrap().to_string();
    w.relance(&["actions", "retry", &id]).expect_code(0);
    run(&w, &["dispatch"]).await.expect_code(0);
    let h = actions(&w, "insurer_handover");
    assert_eq!(h[0]["status"], "blocked", "{h:?}");
    assert!(h[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("relance insurers enable coface-fr"));
    assert_eq!(seen.requests.lock().unwrap().len(), 1);
    run(&w, &["insurers", "enable", "coface-fr"])
        .await
        .expect_code(0);
    assert!(run(&w, &["insurers", "list"])
        .await
        .stdout
        .contains("enabled"));
    // An operator can disable it too, with a reason; an unknown key is an input error.
    run(
        &w,
        &[
            "insurers",
            "disable",
            "coface-fr",
            "--reason",
            "endpoint migration",
        ],
    )
    .await
    .expect_code(0);
    let list = run(&w, &["insurers", "list"]).await;
    assert!(
        list.stdout.contains("DISABLED") && list.stdout.contains("endpoint migration"),
        "{}",
        list.stdout
    );
    run(&w, &["insurers", "enable", "allianz"])
        .await
        .expect_code(4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_formal_notices_can_be_archived_in_the_database() {
    let Some(admin) = postgres_admin_url() else {
        say_postgres_skipped("on_postgresql_formal_notices_can_be_archived_in_the_database");
        return;
    };
    let db = TestDb::postgres(&admin).await;
    let w = notice_workspace(
        &db.url,
        "formal_notice(customer.dunnable.overdue(1))",
        "channels:\n  documents:\n    archive: database\n",
    );
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let id = actions(&w, "formal_notice")[0]["id"].as_i64().unwrap();
    let detail = show(&w, id);
    assert!(detail["documents"][0]["location"].is_null(), "{detail:#}");
    assert!(!w.path("archive").exists());
    let out = w.path("from-db.pdf");
    w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "-o",
        out.to_str().unwrap(),
    ])
    .expect_code(0);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(detail["documents"][0]["sha256"], sha256_of(&bytes));
    let text = pdf_text(&out);
    assert!(text.contains("13 202,95 €"), "{text}");
    customer_documents_list_the_notice(&db, &w, id).await;
    db.cleanup().await;
}

/// What a customer's page in the console lists: the documents archived with the
/// customer's actions (here the formal notice), and none of another customer's.
async fn customer_documents_list_the_notice(db: &TestDb, w: &Workspace, id: i64) {
    let customer = show(w, id)["customer"].as_str().unwrap().to_string();
    let store = db.open().await;
    let docs = store.customer_documents(&customer, 10).await.unwrap();
    assert!(
        docs.iter()
            .any(|d| d.action_id == id && d.kind == "formal_notice"),
        "{docs:?}"
    );
    assert!(store
        .customer_documents("nobody", 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_customers_documents_are_the_ones_archived_with_its_actions() {
    let db = TestDb::sqlite();
    let w = notice_workspace(&db.url, "formal_notice(customer.dunnable.overdue(1))", "");
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let id = actions(&w, "formal_notice")[0]["id"].as_i64().unwrap();
    customer_documents_list_the_notice(&db, &w, id).await;
}

#[test]
fn an_email_rule_can_attach_the_account_statement() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let extra = format!(
        "channels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {}, security: plain, timeout_seconds: 5 }}\n    from: \"Ateliers Test <relance@test.example>\"\n",
        sink.port
    );
    let w = notice_workspace(
        "sqlite://ledger.db",
        "email(\"reminder_1\", customer.dunnable.overdue(1), #{ attachments: [\"statement\"] })",
        &extra,
    );
    w.relance(&["tick", "--as-of", "2027-01-15"]).expect_code(0);
    w.relance(&["dispatch"]).expect_code(0);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let att = &messages[0]["attachments"][0];
    assert_eq!(att["content_type"], "application/pdf", "{messages:?}");
    let id = actions(&w, "email")[0]["id"].as_i64().unwrap();
    let detail = show(&w, id);
    assert_eq!(detail["documents"][0]["kind"], "statement");
    assert_eq!(detail["documents"][0]["sha256"], att["sha256"]);
    let out = w.path("statement.pdf");
    w.relance(&[
        "actions",
        "document",
        &id.to_string(),
        "-o",
        out.to_str().unwrap(),
    ])
    .expect_code(0);
    let text = pdf_text(&out);
    for s in [
        "RELEVÉ DE COMPTE",
        "Menuiserie Un SARL",
        "F-A",
        "F-B",
        "13 000,00 €",
    ] {
        assert!(text.contains(s), "'{s}' not in the statement:\n{text}");
    }

    // An unknown attachment is a rule error, named.
    w.write(
        "rules/smb.rhai",
        "email(\"reminder_1\", customer.dunnable.overdue(1), #{ attachments: [\"invoice-copy\"] })",
    );
    let r = w.relance(&["simulate", "--as-of", "2027-01-15", "--format", "json"]);
    assert!(
        r.stdout
            .contains("option 'attachments' must be \\\"statement\\\""),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
