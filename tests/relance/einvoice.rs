//! E-invoices into the ledger: a CII invoice (the XML of Factur-X) and a UBL credit note
//! become the customer, the invoice with its due date, and the credit note on the
//! invoice it corrects; importing them again changes nothing; a file that is not an
//! e-invoice, or lacks what the ledger needs, is named with the reason.

use serde_json::Value;

use crate::helpers::workspace_with_rules_and;

const CII: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>
 <rsm:ExchangedDocument><ram:ID>FA-2026-0042</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20261015</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:ApplicableHeaderTradeAgreement>
   <ram:SellerTradeParty><ram:Name>Test SAS</ram:Name></ram:SellerTradeParty>
   <ram:BuyerTradeParty><ram:ID>CLI-77</ram:ID><ram:Name>Garage Martin &amp; Fils</ram:Name>
    <ram:SpecifiedLegalOrganization><ram:ID schemeID="0002">732829320</ram:ID></ram:SpecifiedLegalOrganization>
    <ram:PostalTradeAddress><ram:PostcodeCode>69007</ram:PostcodeCode><ram:LineOne>12 rue des Forges</ram:LineOne><ram:CityName>Lyon</ram:CityName><ram:CountryID>FR</ram:CountryID></ram:PostalTradeAddress>
    <ram:URIUniversalCommunication><ram:URIID schemeID="EM">compta@martin.example</ram:URIID></ram:URIUniversalCommunication>
   </ram:BuyerTradeParty>
  </ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeDelivery/>
  <ram:ApplicableHeaderTradeSettlement>
   <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
   <ram:SpecifiedTradePaymentTerms><ram:Description>30 jours fin de mois</ram:Description><ram:DueDateDateTime><udt:DateTimeString format="102">20261130</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:TaxBasisTotalAmount>1000.00</ram:TaxBasisTotalAmount><ram:TaxTotalAmount currencyID="EUR">200.00</ram:TaxTotalAmount>
    <ram:GrandTotalAmount>1200.00</ram:GrandTotalAmount><ram:DuePayableAmount>1200.00</ram:DuePayableAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
  </ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"#;

const UBL_CREDIT_NOTE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
 <cbc:ID>AV-2026-0007</cbc:ID><cbc:IssueDate>2026-11-05</cbc:IssueDate><cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>
 <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
 <cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>FA-2026-0042</cbc:ID></cac:InvoiceDocumentReference></cac:BillingReference>
 <cac:AccountingSupplierParty><cac:Party><cac:PartyName><cbc:Name>Test SAS</cbc:Name></cac:PartyName></cac:Party></cac:AccountingSupplierParty>
 <cac:AccountingCustomerParty><cac:Party><cac:PartyIdentification><cbc:ID>CLI-77</cbc:ID></cac:PartyIdentification>
  <cac:PartyName><cbc:Name>Garage Martin &amp; Fils</cbc:Name></cac:PartyName></cac:Party></cac:AccountingCustomerParty>
 <cac:LegalMonetaryTotal><cbc:TaxInclusiveAmount currencyID="EUR">200.00</cbc:TaxInclusiveAmount><cbc:PayableAmount currencyID="EUR">200.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
</CreditNote>
"#;

#[test]
fn a_cii_invoice_and_a_ubl_credit_note_become_the_customer_its_invoice_and_the_credit() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    w.write("FA-2026-0042.xml", CII);
    w.write("AV-2026-0007.xml", UBL_CREDIT_NOTE);
    // A new buyer needs a segment.
    let run = w.relance(&["import", "einvoice", "FA-2026-0042.xml"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("FA-2026-0042.xml: customer CLI-77 is new to the ledger"),
        "{}",
        run.stderr
    );
    let run = w.relance(&[
        "import",
        "einvoice",
        "FA-2026-0042.xml",
        "AV-2026-0007.xml",
        "--segment",
        "smb",
    ]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(
            "FA-2026-0042.xml: CII invoice FA-2026-0042 for customer CLI-77 (new) (1 new"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("AV-2026-0007.xml: UBL credit note AV-2026-0007 for customer CLI-77 (1 new"),
        "{}",
        run.stdout
    );
    let run = w.relance(&["customer", "CLI-77", "--format", "json"]);
    run.expect_code(0);
    let c: Value = serde_json::from_str(&run.stdout).unwrap();
    let text = c.to_string();
    for expected in [
        "Garage Martin & Fils",
        "732829320",
        "compta@martin.example",
        "Lyon",
        "2026-11-30",
        "FA-2026-0042",
    ] {
        assert!(text.contains(expected), "{expected}: {c:#}");
    }
    let run = w.relance(&["customer", "CLI-77"]);
    assert!(
        run.stdout.contains(
            "FA-2026-0042   issued 2026-10-15 due 2026-11-30      1200.00 open      1000.00"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("AV-2026-0007")
            && run
                .stdout
                .contains("credit_note 200.00 EUR → FA-2026-0042 200.00"),
        "{}",
        run.stdout
    );
    // Again: nothing changes.
    let run = w.relance(&[
        "import",
        "einvoice",
        "FA-2026-0042.xml",
        "AV-2026-0007.xml",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    for line in run.stdout.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["written"]["unchanged"], 1, "{r}");
        assert_eq!(r["new_customer"], false, "{r}");
    }
}

#[test]
fn a_file_that_is_not_an_e_invoice_or_lacks_a_field_is_named_and_the_others_are_imported() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    w.write("ok.xml", CII);
    w.write(
        "order.xml",
        "<Order xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Order-2\"><ID>1</ID></Order>",
    );
    w.write(
        "no-total.xml",
        CII.replace("<ram:GrandTotalAmount>1200.00</ram:GrandTotalAmount>", "")
            .replace("FA-2026-0042", "FA-2026-0043"),
    );
    w.write(
        "bad-date.xml",
        CII.replace("20261015", "20261345")
            .replace("FA-2026-0042", "FA-2026-0044"),
    );
    let run = w.relance(&[
        "import",
        "einvoice",
        "order.xml",
        "ok.xml",
        "no-total.xml",
        "bad-date.xml",
        "--segment",
        "smb",
    ]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("order.xml: the root element is <Order>"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no-total.xml: SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement/SpecifiedTradeSettlementHeaderMonetarySummation/GrandTotalAmount: the invoice has no total"), "{}", run.stderr);
    assert!(run.stderr.contains("bad-date.xml: ExchangedDocument/IssueDateTime/DateTimeString: the invoice has no readable issue date"), "{}", run.stderr);
    assert!(
        run.stdout.contains("ok.xml: CII invoice FA-2026-0042"),
        "{}",
        run.stdout
    );
    let run = w.relance(&["ledger", "--format", "json"]);
    let l: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(l["invoices"], 1, "{l}");
}

/// Whether the factur-x library (PyPI) is installed (`.ci/run` installs it).
fn facturx_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import facturx"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_factur_x_pdf_made_from_relances_pdf_is_read_back_into_the_same_invoice() {
    if !facturx_available() {
        eprintln!("SKIPPED a_factur_x_pdf_made_from_relances_pdf_is_read_back_into_the_same_invoice: the factur-x library is needed (.ci/run installs it)");
        return;
    }
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    w.import_ledger(
        "external_id,name,segment\nC1,Un,smb\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-09-01,2026-10-01,100.00\n",
    );
    // A PDF of relance's engine (the monthly report) carries the invoice's XML.
    w.relance(&["report", "monthly", "--out", "carrier.pdf"])
        .expect_code(0);
    let xml = crate::helpers::repo().join("tests/fixtures/factur-x-basicwl.xml");
    let out = std::process::Command::new("python3")
        .arg(crate::helpers::repo().join("tests/peers/facturx_embed.py"))
        .arg(w.path("carrier.pdf"))
        .arg(&xml)
        .arg(w.path("FA-2026-0042.pdf"))
        .arg("basicwl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = String::from_utf8(out.stdout).unwrap();
    assert!(back.contains("FA-2026-0042"), "{back}");
    // The PDF and the XML alone give the same invoice.
    let from_pdf = w.relance(&[
        "import",
        "einvoice",
        "FA-2026-0042.pdf",
        "--segment",
        "smb",
        "--format",
        "json",
    ]);
    from_pdf.expect_code(0);
    let r: Value = serde_json::from_str(&from_pdf.stdout).unwrap();
    assert_eq!(
        (
            r["pdf"].as_bool(),
            r["syntax"].as_str(),
            r["number"].as_str()
        ),
        (Some(true), Some("cii"), Some("FA-2026-0042")),
        "{r}"
    );
    assert_eq!(r["written"]["inserted"], 1, "{r}");
    let pdf_customer = w
        .relance(&["customer", "CLI-77", "--format", "json"])
        .stdout;
    let again = w.relance(&[
        "import",
        "einvoice",
        xml.to_str().unwrap(),
        "--format",
        "json",
    ]);
    again.expect_code(0);
    let r: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        r["written"]["unchanged"], 1,
        "the XML says what the PDF said: {r}"
    );
    assert_eq!(
        w.relance(&["customer", "CLI-77", "--format", "json"])
            .stdout,
        pdf_customer
    );
    let run = w.relance(&["customer", "CLI-77"]);
    assert!(
        run.stdout.contains(
            "FA-2026-0042   issued 2026-10-15 due 2026-11-30      1200.00 open      1200.00"
        ),
        "{}",
        run.stdout
    );
    // A PDF without an invoice inside is named as such.
    let run = w.relance(&["import", "einvoice", "carrier.pdf", "--segment", "smb"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("carrier.pdf: this PDF carries no CII XML"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_statuses_cancel_dispute_pause_and_pay_invoices() {
    // The rules see the last status: a deposited invoice waits for its approval.
    let w = workspace_with_rules_and(
        &[(
            "smb",
            "[email(\"reminder_1\", customer.dunnable.overdue(1).filter(|inv| inv.einvoice_status != \"deposited\"))]",
        )],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un,smb,un@client.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-08-01,2026-09-01,100.00\nF2,C1,2026-08-01,2026-09-01,200.00\nF3,C1,2026-08-01,2026-09-01,300.00\nF4,C1,2026-08-01,2026-09-01,400.00\nF5,C1,2026-08-01,2026-09-01,500.00\n",
    );
    w.write(
        "statuts.csv",
        "invoice;status;date;reason;amount\nF1;Refusée;2026-11-02;Commande annulée;\nF2;207;2026-11-02;Quantités erronées;\nF3;encaissée;2026-11-03;;300,00\nF4;Déposée;2026-11-01;;\nF9;212;2026-11-03;;\nF4;payée;2026-11-03;;\n",
    );
    let run = w.relance(&["import", "statuses", "statuts.csv"]);
    run.expect_code(4);
    for expected in [
        "statuts.csv:2: invoice F1 210 refused: cancelled",
        "statuts.csv:3: invoice F2 207 disputed: disputed",
        "statuts.csv:4: invoice F3 212 collected: paid",
        "statuts.csv:5: invoice F4 200 deposited: recorded",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    assert!(
        run.stderr.contains("statuts.csv:6: no invoice 'F9'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("statuts.csv:7: status: 'payée' is not a lifecycle status"),
        "{}",
        run.stderr
    );
    let run = w.relance(&["customer", "C1"]);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("F1 ") && l.trim_end().ends_with("cancelled")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("disputed: e-invoicing: En litige (207): Quantités erronées"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("EINV-F3-212") && run.stdout.contains("→ F3 300.00"),
        "{}",
        run.stdout
    );
    // The same status again changes nothing more (the payment is keyed by invoice and status).
    w.write(
        "again.csv",
        "invoice;status;date;amount\nF3;212;2026-11-03;300.00\n",
    );
    w.relance(&["import", "statuses", "again.csv"])
        .expect_code(0);
    let l: Value =
        serde_json::from_str(&w.relance(&["ledger", "--format", "json"]).stdout).unwrap();
    assert_eq!(l["payments"], 1, "{l}");
    // Over the API: suspended pauses F5; an unknown status and invoice are refused.
    let token = w.token("platform", "ingest");
    let served = w.serve(&[]);
    let http = reqwest::Client::new();
    let post = |number: &str, body: Value| {
        let r = http
            .post(format!("{}/v1/invoices/{number}/status", served.base))
            .bearer_auth(&token)
            .json(&body)
            .send();
        async move {
            let r = r.await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, r) = post(
        "F5",
        serde_json::json!({"status": "Suspendue", "reason": "litige logistique"}),
    )
    .await;
    assert_eq!((status, r["effect"].as_str()), (200, Some("paused")), "{r}");
    let (status, r) = post("F5", serde_json::json!({"status": "lost"})).await;
    assert_eq!(status, 422, "{r}");
    let (status, _) = post("F99", serde_json::json!({"status": "212"})).await;
    assert_eq!(status, 404);
    served.stop();
    // Nothing of it is dunned any more but F4 (deposited only).
    let run = w.relance(&["explain", "C1", "--format", "json"]);
    let e: Value = serde_json::from_str(&run.stdout).unwrap();
    let dunnable: Vec<&str> = e["facts"]["dunnable"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["number"].as_str().or(i.as_str()))
        .collect();
    assert_eq!(dunnable, ["F4"], "{e:#}");
    // F4 is deposited: the rule leaves it out, so nothing is planned.
    assert!(
        e["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "planned"),
        "{e:#}"
    );
}
