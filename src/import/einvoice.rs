//! Structured e-invoices, as the French e-invoicing reform exchanges them: UN/CEFACT CII
//! (`CrossIndustryInvoice`, the XML inside a Factur-X / ZUGFeRD PDF) and OASIS UBL
//! (`Invoice`, `CreditNote`). Each file gives the buyer (its identifiers, name, address,
//! contact) and the invoice (number, type, dates, due date, currency, amounts, payment
//! terms): the same ledger records a CSV row gives.

use std::collections::HashMap;
use std::io::BufRead;

use chrono::NaiveDate;
use quick_xml::events::Event;
use rust_decimal::Decimal;
use serde::Serialize;

/// The syntax of an e-invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    Cii,
    Ubl,
}

/// The invoice's buyer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Buyer {
    /// The seller's identifier for the buyer (CII `BuyerTradeParty/ID`, UBL
    /// `PartyIdentification/ID`).
    pub id: Option<String>,
    pub name: Option<String>,
    pub siren: Option<String>,
    pub siret: Option<String>,
    pub vat_number: Option<String>,
    pub email: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

/// What an e-invoice says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EInvoice {
    pub syntax: Syntax,
    pub number: String,
    /// `380` invoice, `381` credit note, …
    pub type_code: String,
    pub issue_date: NaiveDate,
    pub due_date: Option<NaiveDate>,
    pub currency: String,
    /// The total including tax.
    pub total: Decimal,
    /// What remains to pay (after prepaid amounts), when given.
    pub due_amount: Option<Decimal>,
    pub payment_terms: Option<String>,
    pub seller_name: Option<String>,
    pub buyer: Buyer,
    /// The invoice a credit note corrects.
    pub corrects: Option<String>,
}

impl EInvoice {
    pub fn is_credit_note(&self) -> bool {
        matches!(
            self.type_code.as_str(),
            "381" | "261" | "262" | "396" | "532"
        )
    }
}

/// Why a file is not an e-invoice relance reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EInvoiceError {
    /// The element (a path) the problem is at.
    pub field: Option<String>,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> EInvoiceError {
    EInvoiceError {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// Every element's text by its path of local names (`ExchangedDocument/ID`), the first
/// occurrence of each, and the `schemeID` of identifiers (`…/ID@schemeID`).
fn elements(input: impl BufRead) -> Result<(String, HashMap<String, String>), EInvoiceError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut root = String::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| EInvoiceError {
                field: None,
                message: format!("not well-formed XML: {e}"),
            })?;
        match ev {
            Event::Empty(s) if stack.is_empty() => {
                root = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                break;
            }
            Event::Start(s) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                if stack.is_empty() {
                    root.clone_from(&name);
                } else {
                    let path = format!("{}/{name}", stack[1..].join("/"));
                    let path = path.trim_start_matches('/').to_string();
                    for a in s.attributes().flatten() {
                        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                        if matches!(key.as_str(), "schemeID" | "format" | "currencyID") {
                            values
                                .entry(format!("{path}@{key}"))
                                .or_insert_with(|| String::from_utf8_lossy(&a.value).into_owned());
                        }
                    }
                }
                stack.push(name);
                text.clear();
            }
            Event::Text(t) => match t.decode() {
                Ok(c) => text.push_str(&c),
                Err(_) => text.push_str(&String::from_utf8_lossy(&t)),
            },
            Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Event::GeneralRef(r) => text.push_str(&super::camt::entity(&r)),
            Event::End(_) => {
                let value = std::mem::take(&mut text).trim().to_string();
                if stack.len() > 1 && !value.is_empty() {
                    let path = stack[1..].join("/");
                    values.entry(path).or_insert(value);
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if root.is_empty() {
        return Err(EInvoiceError {
            field: None,
            message: "the file is empty".into(),
        });
    }
    Ok((root, values))
}

fn date_102(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d"))
        .ok()
}

fn amount(field: &str, text: &str) -> Result<Decimal, EInvoiceError> {
    text.trim()
        .parse::<Decimal>()
        .map_err(|_| err(field, format!("'{text}' is not an amount")))
}

/// Reads a CII or UBL e-invoice.
///
/// # Errors
/// Malformed XML, another document, a missing or unreadable mandatory field (named).
pub fn read(input: impl BufRead) -> Result<EInvoice, EInvoiceError> {
    let (root, v) = elements(input)?;
    let get = |k: &str| v.get(k).cloned();
    match root.as_str() {
        "CrossIndustryInvoice" => cii(&get),
        "Invoice" | "CreditNote" => ubl(&root, &get),
        other => Err(EInvoiceError {
            field: None,
            message: format!(
                "the root element is <{other}>: relance reads CII (CrossIndustryInvoice, the XML of Factur-X) and UBL (Invoice, CreditNote) e-invoices"
            ),
        }),
    }
}

fn cii(get: &dyn Fn(&str) -> Option<String>) -> Result<EInvoice, EInvoiceError> {
    const DOC: &str = "ExchangedDocument";
    const AGREEMENT: &str = "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement";
    const SETTLEMENT: &str = "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement";
    let buyer = format!("{AGREEMENT}/BuyerTradeParty");
    let number = get(&format!("{DOC}/ID"))
        .ok_or_else(|| err("ExchangedDocument/ID", "the invoice has no number"))?;
    let issue_path = format!("{DOC}/IssueDateTime/DateTimeString");
    let issue_date = get(&issue_path)
        .as_deref()
        .and_then(date_102)
        .ok_or_else(|| err(&issue_path, "the invoice has no readable issue date"))?;
    let due_date = get(&format!(
        "{SETTLEMENT}/SpecifiedTradePaymentTerms/DueDateDateTime/DateTimeString"
    ))
    .as_deref()
    .and_then(date_102);
    let currency = get(&format!("{SETTLEMENT}/InvoiceCurrencyCode"))
        .ok_or_else(|| err("InvoiceCurrencyCode", "the invoice has no currency"))?;
    let sums = format!("{SETTLEMENT}/SpecifiedTradeSettlementHeaderMonetarySummation");
    let total_path = format!("{sums}/GrandTotalAmount");
    let total = amount(
        &total_path,
        &get(&total_path)
            .ok_or_else(|| err(&total_path, "the invoice has no total (GrandTotalAmount)"))?,
    )?;
    let due_path = format!("{sums}/DuePayableAmount");
    let due_amount = get(&due_path).map(|a| amount(&due_path, &a)).transpose()?;
    let legal = format!("{buyer}/SpecifiedLegalOrganization/ID");
    let legal_id = get(&legal);
    let scheme = get(&format!("{legal}@schemeID")).unwrap_or_default();
    let (siren, siret) = match legal_id {
        Some(id) if scheme == "0009" || id.len() == 14 => {
            (Some(id[..9.min(id.len())].to_string()), Some(id))
        }
        Some(id) => (Some(id), None),
        None => (None, None),
    };
    let address = format!("{buyer}/PostalTradeAddress");
    Ok(EInvoice {
        syntax: Syntax::Cii,
        number,
        type_code: get(&format!("{DOC}/TypeCode")).unwrap_or_else(|| "380".into()),
        issue_date,
        due_date,
        currency,
        total,
        due_amount,
        payment_terms: get(&format!(
            "{SETTLEMENT}/SpecifiedTradePaymentTerms/Description"
        )),
        seller_name: get(&format!("{AGREEMENT}/SellerTradeParty/Name")),
        buyer: Buyer {
            id: get(&format!("{buyer}/ID")),
            name: get(&format!("{buyer}/Name")),
            siren,
            siret,
            vat_number: get(&format!("{buyer}/SpecifiedTaxRegistration/ID")),
            email: get(&format!("{buyer}/URIUniversalCommunication/URIID")),
            address_line1: get(&format!("{address}/LineOne")),
            address_line2: get(&format!("{address}/LineTwo")),
            postal_code: get(&format!("{address}/PostcodeCode")),
            city: get(&format!("{address}/CityName")),
            country: get(&format!("{address}/CountryID")),
        },
        corrects: get(&format!(
            "{SETTLEMENT}/InvoiceReferencedDocument/IssuerAssignedID"
        )),
    })
}

fn ubl(root: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<EInvoice, EInvoiceError> {
    let party = "AccountingCustomerParty/Party";
    let number = get("ID").ok_or_else(|| err("ID", "the invoice has no number"))?;
    let issue_date = get("IssueDate")
        .as_deref()
        .and_then(date_102)
        .ok_or_else(|| err("IssueDate", "the invoice has no readable issue date"))?;
    let due_date = get("DueDate")
        .or_else(|| get("PaymentMeans/PaymentDueDate"))
        .as_deref()
        .and_then(date_102);
    let currency = get("DocumentCurrencyCode")
        .ok_or_else(|| err("DocumentCurrencyCode", "the invoice has no currency"))?;
    let total = amount(
        "LegalMonetaryTotal/TaxInclusiveAmount",
        &get("LegalMonetaryTotal/TaxInclusiveAmount")
            .or_else(|| get("LegalMonetaryTotal/PayableAmount"))
            .ok_or_else(|| {
                err(
                    "LegalMonetaryTotal/TaxInclusiveAmount",
                    "the invoice has no total",
                )
            })?,
    )?;
    let due_amount = get("LegalMonetaryTotal/PayableAmount")
        .map(|a| amount("LegalMonetaryTotal/PayableAmount", &a))
        .transpose()?;
    let legal = get(&format!("{party}/PartyLegalEntity/CompanyID"));
    let (siren, siret) = match legal {
        Some(id) if id.len() == 14 => (Some(id[..9].to_string()), Some(id)),
        Some(id) => (Some(id), None),
        None => (None, None),
    };
    let address = format!("{party}/PostalAddress");
    let type_code = if root == "CreditNote" {
        get("CreditNoteTypeCode").unwrap_or_else(|| "381".into())
    } else {
        get("InvoiceTypeCode").unwrap_or_else(|| "380".into())
    };
    Ok(EInvoice {
        syntax: Syntax::Ubl,
        number,
        type_code,
        issue_date,
        due_date,
        currency,
        total,
        due_amount,
        payment_terms: get("PaymentTerms/Note"),
        seller_name: get("AccountingSupplierParty/Party/PartyName/Name")
            .or_else(|| get("AccountingSupplierParty/Party/PartyLegalEntity/RegistrationName")),
        buyer: Buyer {
            id: get(&format!("{party}/PartyIdentification/ID")),
            name: get(&format!("{party}/PartyName/Name"))
                .or_else(|| get(&format!("{party}/PartyLegalEntity/RegistrationName"))),
            siren,
            siret,
            vat_number: get(&format!("{party}/PartyTaxScheme/CompanyID")),
            email: get(&format!("{party}/Contact/ElectronicMail")),
            address_line1: get(&format!("{address}/StreetName")),
            address_line2: get(&format!("{address}/AdditionalStreetName")),
            postal_code: get(&format!("{address}/PostalZone")),
            city: get(&format!("{address}/CityName")),
            country: get(&format!("{address}/Country/IdentificationCode")),
        },
        corrects: get("BillingReference/InvoiceDocumentReference/ID"),
    })
}

/// A ledger record as named fields, with the line it comes from.
type Fields = (u64, HashMap<String, String>);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The largest XML relance inflates out of a PDF.
const MAX_XML: u64 = 32 * 1024 * 1024;

/// The CII XML a Factur-X / ZUGFeRD PDF carries: the embedded file (a stream of
/// `/Type /EmbeddedFile`, usually `factur-x.xml`) whose content is a
/// `CrossIndustryInvoice`, inflated when compressed (`/FlateDecode`). `None` when the
/// PDF carries none.
pub fn xml_in_pdf(pdf: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut fallback = None;
    let mut pos = 0;
    while let Some(i) = find(&pdf[pos..], b"stream") {
        let at = pos + i;
        pos = at + 6;
        if at >= 3 && &pdf[at - 3..at] == b"end" {
            continue;
        }
        // The data starts after the keyword's end of line.
        let mut start = at + 6;
        match pdf.get(start) {
            Some(b'\r') if pdf.get(start + 1) == Some(&b'\n') => start += 2,
            Some(b'\n' | b'\r') => start += 1,
            _ => continue,
        }
        let Some(len) = find(&pdf[start..], b"endstream") else {
            break;
        };
        let mut data = &pdf[start..start + len];
        while let Some((last, rest)) = data.split_last() {
            if matches!(last, b'\r' | b'\n') {
                data = rest;
            } else {
                break;
            }
        }
        let dict = &pdf[rfind(&pdf[..at], b"obj").unwrap_or(0)..at];
        let content = if find(dict, b"/FlateDecode").is_some() {
            let mut out = Vec::new();
            if flate2::read::ZlibDecoder::new(data)
                .take(MAX_XML)
                .read_to_end(&mut out)
                .is_err()
            {
                continue;
            }
            out
        } else {
            data.to_vec()
        };
        if find(&content, b"CrossIndustryInvoice").is_some() {
            if find(dict, b"/EmbeddedFile").is_some() {
                return Some(content);
            }
            fallback.get_or_insert(content);
        }
        pos = start + len;
    }
    fallback
}

/// Reads an e-invoice file: a Factur-X / ZUGFeRD PDF (its embedded CII), or CII or UBL
/// XML.
///
/// # Errors
/// As [`read`]; a PDF without an embedded CII XML.
pub fn read_bytes(bytes: &[u8]) -> Result<EInvoice, EInvoiceError> {
    if bytes.starts_with(b"%PDF") {
        let xml = xml_in_pdf(bytes).ok_or_else(|| EInvoiceError {
            field: None,
            message: "this PDF carries no CII XML: it is not a Factur-X (or ZUGFeRD) invoice"
                .into(),
        })?;
        return read(xml.as_slice());
    }
    read(bytes)
}

/// What importing one e-invoice did.
#[derive(Debug, Clone, Serialize)]
pub struct EInvoiceReport {
    pub file: std::path::PathBuf,
    /// Whether the file was a Factur-X PDF (its embedded CII read).
    pub pdf: bool,
    pub syntax: Syntax,
    pub number: String,
    /// `invoice` or `credit_note`.
    pub kind: &'static str,
    pub customer: String,
    /// Whether the customer was new to the ledger.
    pub new_customer: bool,
    pub written: crate::store::UpsertCounts,
}

impl std::fmt::Display for EInvoiceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.written;
        write!(
            f,
            "{}: {} {} {} for customer {}{} ({} new, {} updated, {} unchanged)",
            crate::telemetry::escape_control(&self.file.display().to_string()),
            match (self.pdf, self.syntax) {
                (true, _) => "Factur-X",
                (false, Syntax::Cii) => "CII",
                (false, Syntax::Ubl) => "UBL",
            },
            self.kind.replace('_', " "),
            self.number,
            self.customer,
            if self.new_customer { " (new)" } else { "" },
            w.inserted,
            w.updated,
            w.unchanged
        )
    }
}

/// Imports one e-invoice file (CII or UBL XML) in one transaction: its buyer becomes a
/// customer when the ledger does not know it (keyed by the seller's id for the buyer,
/// else its SIREN, else its VAT number; new customers get `segment`), the invoice an
/// invoice (due date: the file's, else the issue date plus `terms_days`), a credit note
/// a credit note on the invoice it corrects. Importing it again changes nothing.
///
/// # Errors
/// [`super::ImportError::File`] naming the file and the field for a file that is not
/// an e-invoice or lacks what a ledger record needs; [`super::ImportError::Rows`]-like
/// rejections come back as `File` errors too (one invoice, one message); the database.
pub async fn import_einvoice(
    store: &dyn crate::store::Store,
    path: &std::path::Path,
    base: &super::ImportOptions,
    segment: Option<&str>,
    terms_days: i64,
) -> Result<EInvoiceReport, super::ImportError> {
    let file_label = path.display().to_string();
    let failed = |message: String| super::ImportError::File {
        file: file_label.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(format!("cannot read it: {e}")))?;
    let inv = read_bytes(&bytes).map_err(|e| {
        failed(match &e.field {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message.clone(),
        })
    })?;
    let b = &inv.buyer;
    let customer =
        b.id.clone()
            .or_else(|| b.siren.clone())
            .or_else(|| b.vat_number.clone())
            .ok_or_else(|| {
                failed("the buyer has no identifier (its ID, SIREN or VAT number)".into())
            })?;
    let mut tx = store.begin().await?;
    let known = tx.customer_ids(&[customer.as_str()]).await?;
    let new_customer = known.is_empty();
    let line = 1u64;
    let mut batches: Vec<(super::ImportKind, Vec<Fields>)> = Vec::new();
    if new_customer {
        let Some(segment) = segment else {
            tx.rollback().await?;
            return Err(failed(format!(
                "customer {customer} is new to the ledger: name the segment new customers get (--segment), or import the customers first"
            )));
        };
        let mut r = HashMap::new();
        r.insert("external_id".to_string(), customer.clone());
        r.insert(
            "name".to_string(),
            b.name
                .clone()
                .ok_or_else(|| failed("the buyer has no name".into()))?,
        );
        r.insert("segment".to_string(), segment.to_string());
        for (k, v) in [
            ("siren", &b.siren),
            ("siret", &b.siret),
            ("vat_number", &b.vat_number),
            ("emails", &b.email),
            ("address_line1", &b.address_line1),
            ("address_line2", &b.address_line2),
            ("postal_code", &b.postal_code),
            ("city", &b.city),
            ("country", &b.country),
        ] {
            if let Some(v) = v {
                r.insert(k.to_string(), v.clone());
            }
        }
        batches.push((super::ImportKind::Customers, vec![(line, r)]));
    }
    let mut r = HashMap::new();
    let kind = if inv.is_credit_note() {
        r.insert("id".to_string(), inv.number.clone());
        r.insert("customer".to_string(), customer.clone());
        r.insert("kind".to_string(), "credit_note".to_string());
        r.insert("date".to_string(), inv.issue_date.to_string());
        r.insert("currency".to_string(), inv.currency.clone());
        r.insert("amount".to_string(), inv.total.abs().to_string());
        if let Some(c) = &inv.corrects {
            r.insert("reference".to_string(), c.clone());
        }
        batches.push((super::ImportKind::Payments, vec![(line, r)]));
        "credit_note"
    } else {
        r.insert("number".to_string(), inv.number.clone());
        r.insert("customer".to_string(), customer.clone());
        r.insert("issue_date".to_string(), inv.issue_date.to_string());
        let due = inv
            .due_date
            .unwrap_or(inv.issue_date + chrono::Duration::days(terms_days))
            .max(inv.issue_date);
        r.insert("due_date".to_string(), due.to_string());
        r.insert("currency".to_string(), inv.currency.clone());
        r.insert("amount".to_string(), inv.total.to_string());
        if let Some(d) = inv
            .due_amount
            .filter(|d| *d != inv.total && *d >= Decimal::ZERO)
        {
            r.insert("open_amount".to_string(), d.to_string());
        }
        batches.push((super::ImportKind::Invoices, vec![(line, r)]));
        "invoice"
    };
    let mut written = crate::store::UpsertCounts::default();
    let source = path
        .file_name()
        .map_or_else(|| file_label.clone(), |n| n.to_string_lossy().into_owned());
    for (k, records) in &batches {
        let (back, counts, _) = super::write_all(tx, *k, records, base, &source)
            .await?
            .map_err(&failed)?;
        if *k != super::ImportKind::Customers {
            written = counts;
        }
        tx = back;
    }
    let sha256 = crate::digest::sha256_hex(&bytes);
    tx.record_import(
        &crate::store::ImportRecord {
            kind: "einvoice".into(),
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            rows_read: 1,
            rows_written: 1,
            rows_rejected: 0,
        },
        chrono::Utc::now(),
    )
    .await?;
    tx.commit().await?;
    Ok(EInvoiceReport {
        file: path.to_path_buf(),
        pdf: bytes.starts_with(b"%PDF"),
        syntax: inv.syntax,
        number: inv.number,
        kind,
        customer,
        new_customer,
        written,
    })
}

/// A lifecycle status as a platform reports it for an invoice.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Code (`212`), id (`collected`) or French name (`Encaissée`).
    pub status: String,
    /// The status's date (default: today).
    pub date: Option<NaiveDate>,
    /// Why (a refusal's or a dispute's reason).
    pub reason: Option<String>,
    /// The amount a `collected` status carries (default: what is open).
    pub amount: Option<Decimal>,
}

/// What a status did.
#[derive(Debug, Clone, Serialize)]
pub struct StatusOutcome {
    pub invoice: String,
    pub customer: String,
    pub code: u16,
    pub status: &'static str,
    /// `cancelled`, `disputed`, `paused`, `paid` or `recorded`.
    pub effect: &'static str,
    /// The payment a `collected` status made.
    pub payment: Option<String>,
}

/// Applies a lifecycle status to an invoice, in one transaction, and records it (the
/// invoice's last status, its history, the customer's timeline):
/// - `rejected` (213) / `refused` (210): the invoice is cancelled — not a valid claim;
/// - `disputed` (207): a dispute opens (unless one is open) and dunning pauses;
/// - `suspended` (208): the invoice is paused until lifted;
/// - `payment_sent` (211): the invoice is paused 10 days after the status's date;
/// - `collected` (212): a payment of the amount (default: what is open) on that date,
///   allocated to the invoice;
/// - any other: recorded only.
///
/// # Errors
/// [`super::ImportError::File`] for an unknown status or invoice (the message says
/// which); the database.
pub async fn apply_status(
    store: &dyn crate::store::Store,
    number: &str,
    report: &StatusReport,
    base: &super::ImportOptions,
    source: &str,
    today: NaiveDate,
) -> Result<StatusOutcome, super::ImportError> {
    use crate::domain::lifecycle::{status, Effect, STATUSES};
    let refused = |message: String| super::ImportError::File {
        file: format!("invoice {number}"),
        message,
    };
    let Some(st) = status(&report.status) else {
        return Err(refused(format!(
            "status: '{}' is not a lifecycle status (one of {})",
            report.status,
            STATUSES
                .iter()
                .map(|s| format!("{} {}", s.code, s.id))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let reason = report
        .reason
        .as_deref()
        .map(|r| crate::domain::ids::free_text(r).map_err(|e| refused(format!("reason: {}", e.0))))
        .transpose()?;
    let Some(invoice) = store.invoice(number).await? else {
        return Err(refused(format!("no invoice '{number}'")));
    };
    let date = report.date.unwrap_or(today);
    let now = chrono::Utc::now();
    let amount_minor = report
        .amount
        .map(|a| {
            invoice
                .currency
                .to_minor(a)
                .map_err(|e| refused(format!("amount: {e}")))
        })
        .transpose()?;
    let label = match &reason {
        Some(r) => format!("{} ({}): {r}", st.fr, st.code),
        None => format!("{} ({})", st.fr, st.code),
    };
    let mut tx = store.begin().await?;
    tx.record_einvoice_status(
        number,
        st.code,
        st.id,
        date,
        reason.as_deref(),
        amount_minor,
        source,
        now,
    )
    .await?;
    let mut payment = None;
    let effect = match st.effect() {
        Effect::Cancel => {
            tx.cancel_invoice(number, now).await?;
            "cancelled"
        }
        Effect::Dispute => {
            if invoice.dispute.is_none() {
                let d = crate::domain::Dispute {
                    reason: format!("e-invoicing: {label}"),
                    opened_at: now,
                };
                tx.set_invoice_dispute(number, Some(&d)).await?;
            }
            "disputed"
        }
        Effect::Pause => {
            let p = crate::domain::Pause {
                reason: format!("e-invoicing: {label}"),
                until: None,
            };
            tx.set_invoice_pause(number, Some(&p)).await?;
            "paused"
        }
        Effect::Wait(days) => {
            let p = crate::domain::Pause {
                reason: format!("e-invoicing: {label}"),
                until: Some(date + chrono::Duration::days(days)),
            };
            tx.set_invoice_pause(number, Some(&p)).await?;
            "paused"
        }
        Effect::Payment => {
            let amount = report.amount.unwrap_or(invoice.open_amount);
            let id = format!("EINV-{number}-{}", st.code);
            let mut r = HashMap::new();
            r.insert("id".to_string(), id.clone());
            r.insert("customer".to_string(), invoice.customer.clone());
            r.insert("date".to_string(), date.to_string());
            r.insert("amount".to_string(), amount.to_string());
            r.insert("currency".to_string(), invoice.currency.code().to_string());
            r.insert("reference".to_string(), number.to_string());
            let (back, _, _) =
                super::write_all(tx, super::ImportKind::Payments, &[(0, r)], base, source)
                    .await?
                    .map_err(&refused)?;
            tx = back;
            payment = Some(id);
            "paid"
        }
        Effect::None => "recorded",
    };
    tx.commit().await?;
    store
        .record_audit(
            "e-invoicing platform",
            "einvoice_status",
            Some(&invoice.customer),
            &format!("invoice {number}: {label} on {date} ({effect})"),
            now,
        )
        .await?;
    Ok(StatusOutcome {
        invoice: number.to_string(),
        customer: invoice.customer,
        code: st.code,
        status: st.id,
        effect,
        payment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const CII: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>
 <rsm:ExchangedDocument><ram:ID>FA-2026-0042</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20261015</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:ApplicableHeaderTradeAgreement>
   <ram:SellerTradeParty><ram:Name>Ateliers Durand SAS</ram:Name></ram:SellerTradeParty>
   <ram:BuyerTradeParty><ram:ID>CLI-77</ram:ID><ram:Name>Garage Martin &amp; Fils</ram:Name>
    <ram:SpecifiedLegalOrganization><ram:ID schemeID="0002">732829320</ram:ID></ram:SpecifiedLegalOrganization>
    <ram:PostalTradeAddress><ram:PostcodeCode>69007</ram:PostcodeCode><ram:LineOne>12 rue des Forges</ram:LineOne><ram:CityName>Lyon</ram:CityName><ram:CountryID>FR</ram:CountryID></ram:PostalTradeAddress>
    <ram:URIUniversalCommunication><ram:URIID schemeID="EM">compta@martin.example</ram:URIID></ram:URIUniversalCommunication>
    <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">FR44732829320</ram:ID></ram:SpecifiedTaxRegistration>
   </ram:BuyerTradeParty>
  </ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeDelivery/>
  <ram:ApplicableHeaderTradeSettlement>
   <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
   <ram:SpecifiedTradePaymentTerms><ram:Description>30 jours fin de mois</ram:Description><ram:DueDateDateTime><udt:DateTimeString format="102">20261130</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:LineTotalAmount>1000.00</ram:LineTotalAmount><ram:TaxBasisTotalAmount>1000.00</ram:TaxBasisTotalAmount>
    <ram:TaxTotalAmount currencyID="EUR">200.00</ram:TaxTotalAmount><ram:GrandTotalAmount>1200.00</ram:GrandTotalAmount>
    <ram:DuePayableAmount>1200.00</ram:DuePayableAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
  </ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>"#;

    #[test]
    fn a_cii_invoice_gives_its_buyer_and_amounts() {
        let i = read(CII.as_bytes()).unwrap();
        assert_eq!(i.syntax, Syntax::Cii);
        assert_eq!(i.number, "FA-2026-0042");
        assert_eq!(i.issue_date, NaiveDate::from_ymd_opt(2026, 10, 15).unwrap());
        assert_eq!(i.due_date, NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(i.total, Decimal::new(120_000, 2));
        assert_eq!(i.buyer.name.as_deref(), Some("Garage Martin & Fils"));
        assert_eq!(i.buyer.siren.as_deref(), Some("732829320"));
        assert_eq!(i.buyer.vat_number.as_deref(), Some("FR44732829320"));
        assert_eq!(i.buyer.city.as_deref(), Some("Lyon"));
        assert_eq!(i.payment_terms.as_deref(), Some("30 jours fin de mois"));
        assert!(!i.is_credit_note());
    }

    #[test]
    fn a_ubl_credit_note_names_the_invoice_it_corrects() {
        let xml = r#"<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
<cbc:ID>AV-9</cbc:ID><cbc:IssueDate>2026-11-02</cbc:IssueDate><cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode><cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>FA-2026-0042</cbc:ID></cac:InvoiceDocumentReference></cac:BillingReference>
<cac:AccountingCustomerParty><cac:Party><cac:PartyIdentification><cbc:ID>CLI-77</cbc:ID></cac:PartyIdentification><cac:PartyName><cbc:Name>Garage Martin</cbc:Name></cac:PartyName></cac:Party></cac:AccountingCustomerParty>
<cac:LegalMonetaryTotal><cbc:TaxInclusiveAmount currencyID="EUR">120.00</cbc:TaxInclusiveAmount><cbc:PayableAmount currencyID="EUR">120.00</cbc:PayableAmount></cac:LegalMonetaryTotal></CreditNote>"#;
        let i = read(xml.as_bytes()).unwrap();
        assert_eq!(i.syntax, Syntax::Ubl);
        assert!(i.is_credit_note());
        assert_eq!(i.corrects.as_deref(), Some("FA-2026-0042"));
        assert_eq!(i.buyer.id.as_deref(), Some("CLI-77"));
        assert_eq!(i.total, Decimal::new(12_000, 2));
    }

    #[test]
    fn another_document_is_refused_and_a_missing_field_named() {
        let e = read("<Document/>".as_bytes()).unwrap_err();
        assert!(e.message.contains("relance reads CII"), "{e}");
        let e = read(
            CII.replace("<ram:GrandTotalAmount>1200.00</ram:GrandTotalAmount>", "")
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.field.unwrap().ends_with("GrandTotalAmount"));
    }
}
