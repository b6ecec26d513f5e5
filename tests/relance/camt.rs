//! Bank statements (ISO 20022 camt.053 / camt.054) into the ledger: credits matched to
//! open invoices by structured reference, by invoice number in the text, by amount and
//! debtor, else listed for a collector; a statement imported again changes nothing; a
//! file that is not a statement is refused with its line.

use serde_json::Value;

use crate::helpers::{workspace_with_rules_and, Workspace};

fn import_camt(w: &Workspace, file: &str) -> Value {
    let run = w.relance(&["import", "camt", file, "--format", "json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn every_structured_reference_of_a_10000_credit_statement_is_matched_and_the_rest_reported() {
    let w = workspace_with_rules_and(
        &[
            ("smb", "[]"),
            ("key_accounts", "[]"),
            ("public_sector", "[]"),
        ],
        "",
    );
    let run = w.relance(&[
        "sample",
        "--customers",
        "2000",
        "--invoices",
        "66000",
        "--as-of",
        "2026-12-01",
        "--camt",
        "--out",
        "sample",
    ]);
    run.expect_code(0);
    for kind in ["customers", "invoices"] {
        w.relance(&["import", kind, &format!("sample/{kind}.csv")])
            .expect_code(0);
    }
    let xml = std::fs::read_to_string(w.path("sample/camt053-2026-12-01.xml")).unwrap();
    let structured = xml.matches("<CdtrRefInf>").count() as u64;
    let r = import_camt(&w, "sample/camt053-2026-12-01.xml");
    let credits = r["statement"]["credits"].as_u64().unwrap();
    assert!(credits >= 10_000, "{credits} credits");
    assert_eq!(r["statement"]["message"], "camt.053.001.02");
    assert_eq!(
        r["by_reference"].as_u64(),
        Some(structured),
        "{}",
        r["by_reference"]
    );
    let matched = r["by_reference"].as_u64().unwrap()
        + r["by_invoice_number"].as_u64().unwrap()
        + r["by_amount_and_debtor"].as_u64().unwrap();
    let unmatched = r["unmatched"].as_u64().unwrap();
    assert_eq!(matched + unmatched, credits);
    assert_eq!(r["payments"]["inserted"].as_u64(), Some(matched));
    // The unmatched ones wait for a collector.
    let run = w.relance(&[
        "bank",
        "credits",
        "--unmatched",
        "--limit",
        "100000",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len() as u64, unmatched);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["matched_by"].is_null() && c["reference"].is_null()));
    // Once more: nothing new, nothing changed, the same matches.
    let again = import_camt(&w, "sample/camt053-2026-12-01.xml");
    assert_eq!(again["payments"]["inserted"], 0);
    assert_eq!(again["payments"]["updated"], 0);
    assert_eq!(again["by_reference"], r["by_reference"]);
}

const STATEMENT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-03T06:00:00</CreDtTm></GrpHdr>
  <Stmt><Id>S1</Id><Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>
   <Ntry><Amt Ccy="EUR">1200.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <ValDt><Dt>2026-11-02</Dt></ValDt><AcctSvcrRef>B1</AcctSvcrRef>
    <NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Garage Martin</Nm></Pty></Dbtr></RltdPties>
     <RmtInf><Strd><CdtrRefInf><Ref>RF65 F101</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="EUR">450.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <ValDt><Dt>2026-11-02</Dt></ValDt><AcctSvcrRef>B2</AcctSvcrRef>
    <NtryDtls><TxDtls><RmtInf><Ustrd>Paiement factures F-7 et F-8, merci</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="EUR">99.90</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <ValDt><Dt>2026-11-03</Dt></ValDt><AcctSvcrRef>B3</AcctSvcrRef>
    <NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>ACME S.A.S.</Nm></Pty></Dbtr></RltdPties>
     <RmtInf><Ustrd>VIREMENT ACME</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="EUR">75.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <ValDt><Dt>2026-11-03</Dt></ValDt><AcctSvcrRef>B4</AcctSvcrRef>
    <NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Inconnu SARL</Nm></Pty></Dbtr></RltdPties>
     <RmtInf><Ustrd>FACTURE Z-999</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="EUR">40.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><ValDt><Dt>2026-11-03</Dt></ValDt></Ntry>
   <Ntry><Amt Ccy="EUR">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts><ValDt><Dt>2026-11-03</Dt></ValDt></Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"#;

#[test]
fn a_credit_is_matched_by_reference_invoice_number_or_amount_and_debtor_else_left_for_a_collector()
{
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    w.import_ledger(
        "external_id,name,segment\nC1,Garage Martin,smb\nC2,Atelier Sept,smb\nC3,Acme SAS,smb\nC4,Inconnu SARL,smb\n",
        "number,customer,issue_date,due_date,amount\nF-101,C1,2026-09-01,2026-10-01,1200.00\nF-7,C2,2026-09-01,2026-10-01,300.00\nF-8,C2,2026-09-01,2026-10-01,150.00\nF-6,C2,2026-08-01,2026-09-01,500.00\nA-1,C3,2026-09-01,2026-10-01,99.90\nA-2,C3,2026-09-01,2026-10-01,250.00\n",
    );
    assert_eq!(
        relance::domain::sepa::creditor_reference("F-101").as_deref(),
        Some("RF65F101"),
        "the reference the statement carries"
    );
    w.write("releve.xml", STATEMENT);
    let r = import_camt(&w, "releve.xml");
    assert_eq!(r["statement"]["message"], "camt.053.001.08");
    assert_eq!(
        (
            r["statement"]["entries"].as_u64(),
            r["statement"]["credits"].as_u64(),
            r["statement"]["debits"].as_u64(),
            r["statement"]["not_booked"].as_u64()
        ),
        (Some(6), Some(4), Some(1), Some(1))
    );
    let by: Vec<(String, Value, Value)> = r["credits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["matched_by"].clone(),
                c["invoices"].clone(),
            )
        })
        .collect();
    assert_eq!(
        by[0],
        (
            "CAMT-B1".into(),
            "reference".into(),
            serde_json::json!(["F-101"])
        )
    );
    assert_eq!(
        by[1],
        (
            "CAMT-B2".into(),
            "invoice_number".into(),
            serde_json::json!(["F-7", "F-8"])
        )
    );
    assert_eq!(
        by[2],
        (
            "CAMT-B3".into(),
            "amount_and_debtor".into(),
            serde_json::json!(["A-1"])
        )
    );
    assert_eq!(by[3].1, Value::Null);
    // In the ledger: F-7 and F-8 paid by the one transfer, not the older F-6.
    let run = w.relance(&["customer", "C2"]);
    assert!(
        run.stdout.contains("CAMT-B2") && run.stdout.contains("→ F-7 300.00, F-8 150.00"),
        "{}",
        run.stdout
    );
    let run = w.relance(&["customer", "C1"]);
    assert!(run.stdout.contains("→ F-101 1200.00"), "{}", run.stdout);
    // The unknown one waits for a collector, with what the bank said.
    let run = w.relance(&["bank", "credits", "--unmatched"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("75.00 EUR")
            && run.stdout.contains("Inconnu SARL")
            && run.stdout.contains("FACTURE Z-999")
            && run.stdout.contains("not matched"),
        "{}",
        run.stdout
    );
    // The invoice it pays arrives: the same statement again matches it, and only it.
    w.write(
        "late.csv",
        "number,customer,issue_date,due_date,amount\nZ-999,C4,2026-10-01,2026-10-31,75.00\n",
    );
    w.relance(&["import", "invoices", "late.csv"])
        .expect_code(0);
    let again = import_camt(&w, "releve.xml");
    assert_eq!(
        (
            again["payments"]["inserted"].as_u64(),
            again["payments"]["unchanged"].as_u64()
        ),
        (Some(1), Some(3)),
        "{again}"
    );
    let run = w.relance(&["bank", "credits", "--unmatched"]);
    assert!(run.stdout.contains("no unmatched credit"), "{}", run.stdout);
}

#[test]
fn a_file_that_is_not_a_bank_statement_is_refused_with_its_line_and_nothing_is_written() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    for (content, expected) in [
        ("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\"><CstmrCdtTrfInitn/></Document>", "relance reads camt.053 and camt.054"),
        ("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\n<BkToCstmrStmt>\n<Stmt>\n<Ntry><Amt Ccy=\"EUR\">12</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry>", "line 4: the entry has no value date"),
        ("not xml at all", "not an ISO 20022 statement"),
    ] {
        w.write("bad.xml", content);
        let run = w.relance(&["import", "camt", "bad.xml"]);
        run.expect_code(4);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
    }
    let run = w.relance(&["bank", "credits"]);
    assert!(
        run.stdout.contains("no bank credit imported"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_imports_a_statement_and_lists_the_unmatched_credits() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    w.import_ledger(
        "external_id,name,segment\nC1,Garage Martin,smb\n",
        "number,customer,issue_date,due_date,amount\nF-101,C1,2026-09-01,2026-10-01,1200.00\n",
    );
    let ingest = w.token("bank", "ingest");
    let read = w.token("reader", "read");
    let served = w.serve(&[]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{}/v1/bank/statements?name=releve.xml",
            served.base
        ))
        .bearer_auth(&ingest)
        .header("Content-Type", "application/xml")
        .body(STATEMENT.replace("RF33 F101", "RF65 F101"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["by_reference"], 1, "{report}");
    assert_eq!(report["unmatched"], 3, "{report}");
    // A reader may list, not import.
    let r = http
        .post(format!("{}/v1/bank/statements", served.base))
        .bearer_auth(&read)
        .body(STATEMENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .get(format!("{}/v1/bank/credits?unmatched=true", served.base))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    // Not a statement: 422 with the reason, nothing written.
    let r = http
        .post(format!("{}/v1/bank/statements", served.base))
        .bearer_auth(&ingest)
        .body("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\"/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(e.to_string().contains("camt.053"), "{e}");
    served.stop();
}
