//! Bank statements in ISO 20022: `camt.053` (the end-of-day statement) and `camt.054`
//! (debit/credit notifications), every version banks send today (`.001.02` and later:
//! the elements that moved between versions are read wherever they are). Read as a
//! stream of XML events (quick-xml), so a statement of any size takes the memory of
//! one entry at a time.
//!
//! What is read of each booked credit (`CdtDbtInd` `CRDT`, status `BOOK`, not a
//! reversal), per transaction of the entry (`TxDtls`), else of the entry itself: the
//! value date (else booking date), amount and currency, the debtor's name and IBAN,
//! the remittance information (structured creditor reference `Strd/CdtrRefInf/Ref`, and
//! the unstructured `Ustrd` lines), and the bank's reference, which makes its key.
//! Debits, pending entries and reversals are counted and left out.

use std::io::BufRead;
use std::path::Path;

use chrono::NaiveDate;
use quick_xml::events::Event;
use rust_decimal::Decimal;
use serde::Serialize;

/// One credit of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankCredit {
    /// Stable from one import of the statement to the next: `CAMT-` and the bank's
    /// reference of the transaction (else of the entry, with the transaction's
    /// position), else a digest of what the credit says.
    pub key: String,
    /// The line of its `<Ntry>` in the file.
    pub line: u64,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub debtor_name: Option<String>,
    pub debtor_iban: Option<String>,
    /// The structured creditor reference (ISO 11649 `RF…`, or another scheme's).
    pub structured_reference: Option<String>,
    /// The unstructured remittance information, lines joined with spaces.
    pub remittance: String,
}

/// What a statement held besides its credits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatementSummary {
    /// `camt.053.001.02`, `camt.054.001.08`…
    pub message: String,
    pub entries: u64,
    pub credits: u64,
    pub debits: u64,
    /// Entries not booked (pending, information only) and reversals.
    pub not_booked: u64,
}

/// Why a statement cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CamtError {
    pub line: u64,
    pub message: String,
}

#[derive(Default)]
struct Tx {
    bank_ref: Option<String>,
    end_to_end: Option<String>,
    amount: Option<(String, Option<String>)>,
    indicator: Option<String>,
    debtor_name: Option<String>,
    debtor_iban: Option<String>,
    structured: Option<String>,
    remittance: Vec<String>,
}

#[derive(Default)]
struct Entry {
    line: u64,
    amount: Option<(String, Option<String>)>,
    indicator: Option<String>,
    status: Option<String>,
    reversal: bool,
    booking: Option<String>,
    value: Option<String>,
    bank_ref: Option<String>,
    entry_ref: Option<String>,
    info: Option<String>,
    txs: Vec<Tx>,
}

fn date_of(text: &str) -> Option<NaiveDate> {
    // `Dt` (2026-11-02) or `DtTm` (2026-11-02T10:00:00+01:00).
    text.get(..10)?.parse().ok()
}

fn money(text: &str, line: u64) -> Result<Decimal, CamtError> {
    text.trim().parse::<Decimal>().map_err(|_| CamtError {
        line,
        message: format!("'{text}' is not an amount"),
    })
}

/// Reads a statement, calling `on_credit` for each booked credit in file order.
///
/// # Errors
/// Malformed XML, a document that is not a camt.053 or camt.054, an amount or date that
/// does not read (with its line); `on_credit`'s errors.
pub fn read<R: BufRead>(
    input: R,
    mut on_credit: impl FnMut(BankCredit) -> Result<(), CamtError>,
) -> Result<StatementSummary, CamtError> {
    let mut reader = quick_xml::Reader::from_reader(Lines {
        inner: input,
        newlines: 0,
    });
    // Text is trimmed per element, not per event: an entity splits a text in events
    // (`Martin &amp; Fils`).
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut summary = StatementSummary::default();
    let mut entry: Option<Entry> = None;
    let mut tx: Option<Tx> = None;
    // Depths of the current <Ntry> and <TxDtls> in the stack.
    let (mut ntry_at, mut tx_at) = (0usize, 0usize);
    let mut line;
    let mut counted = 0usize;
    let mut pending_ccy: Option<String> = None;
    loop {
        let event = reader.read_event_into(&mut buf);
        line = reader.get_ref().newlines + 1;
        let ev = match event {
            Ok(e) => e,
            Err(e) => {
                return Err(CamtError {
                    line,
                    message: format!("not well-formed XML: {e}"),
                })
            }
        };
        match ev {
            Event::Empty(s) if stack.is_empty() => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                root_message(&name, &s, line)?;
                break;
            }
            Event::Start(s) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                if stack.is_empty() {
                    summary.message = root_message(&name, &s, line)?;
                }
                if name == "Ntry" {
                    entry = Some(Entry {
                        line,
                        ..Entry::default()
                    });
                    ntry_at = stack.len() + 1;
                    summary.entries += 1;
                } else if name == "TxDtls" && entry.is_some() {
                    tx = Some(Tx::default());
                    tx_at = stack.len() + 1;
                } else if name == "Amt" {
                    pending_ccy = s
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"Ccy")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(_) => {}
            // Entities come apart from the text around them (GeneralRef).
            Event::Text(t) => match t.decode() {
                Ok(c) => text.push_str(&c),
                Err(_) => text.push_str(&String::from_utf8_lossy(&t)),
            },
            Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Event::GeneralRef(r) => text.push_str(&entity(&r)),
            Event::End(_) => {
                let value = std::mem::take(&mut text).trim().to_string();
                let value = if value.is_empty() { None } else { Some(value) };
                if let (Some(t), true) = (tx.as_mut(), tx_at > 0 && stack.len() > tx_at) {
                    let path = stack[tx_at..].join("/");
                    match path.as_str() {
                        "Refs/AcctSvcrRef" => t.bank_ref = value,
                        "Refs/EndToEndId" if value.as_deref() != Some("NOTPROVIDED") => {
                            t.end_to_end = value
                        }
                        "Amt" | "AmtDtls/TxAmt/Amt" if t.amount.is_none() => {
                            t.amount = value.map(|v| (v, pending_ccy.take()))
                        }
                        "CdtDbtInd" => t.indicator = value,
                        "RltdPties/Dbtr/Nm" | "RltdPties/Dbtr/Pty/Nm" => t.debtor_name = value,
                        "RltdPties/DbtrAcct/Id/IBAN" => t.debtor_iban = value,
                        "RmtInf/Strd/CdtrRefInf/Ref" => t.structured = value,
                        "RmtInf/Ustrd" | "RmtInf/Strd/AddtlRmtInf" | "AddtlTxInf" => {
                            t.remittance.extend(value)
                        }
                        _ => {}
                    }
                } else if let (Some(e), true) =
                    (entry.as_mut(), ntry_at > 0 && stack.len() > ntry_at)
                {
                    let path = stack[ntry_at..].join("/");
                    match path.as_str() {
                        "Amt" => e.amount = value.map(|v| (v, pending_ccy.take())),
                        "CdtDbtInd" => e.indicator = value,
                        "Sts" | "Sts/Cd" if value.is_some() => e.status = value,
                        "RvslInd" => e.reversal = matches!(value.as_deref(), Some("true" | "1")),
                        "BookgDt/Dt" | "BookgDt/DtTm" => e.booking = value,
                        "ValDt/Dt" | "ValDt/DtTm" => e.value = value,
                        "AcctSvcrRef" => e.bank_ref = value,
                        "NtryRef" => e.entry_ref = value,
                        "AddtlNtryInf" => e.info = value,
                        _ => {}
                    }
                }
                let closing = stack.pop().unwrap_or_default();
                if closing == "TxDtls" && tx_at == stack.len() + 1 {
                    if let (Some(t), Some(e)) = (tx.take(), entry.as_mut()) {
                        e.txs.push(t);
                    }
                    tx_at = 0;
                } else if closing == "Ntry" && ntry_at == stack.len() + 1 {
                    ntry_at = 0;
                    if let Some(e) = entry.take() {
                        counted += 1;
                        for credit in credits_of(e, counted, &mut summary)? {
                            on_credit(credit)?;
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if summary.message.is_empty() {
        return Err(CamtError {
            line,
            message: "the file is empty: not an ISO 20022 statement".into(),
        });
    }
    Ok(summary)
}

/// The message a statement's root element names (`camt.053.001.02`), or why it is not
/// one.
fn root_message(
    name: &str,
    s: &quick_xml::events::BytesStart<'_>,
    line: u64,
) -> Result<String, CamtError> {
    if name != "Document" {
        return Err(CamtError {
            line,
            message: format!(
                "the root element is <{name}>, not <Document>: not an ISO 20022 statement"
            ),
        });
    }
    let ns = s
        .attributes()
        .flatten()
        .filter(|a| a.key.as_ref().starts_with(b"xmlns"))
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .find(|v| v.contains("iso:20022"))
        .unwrap_or_default();
    let message = ns.rsplit(':').next().unwrap_or("").to_string();
    if message.starts_with("camt.053") || message.starts_with("camt.054") {
        Ok(message)
    } else {
        Err(CamtError {
            line,
            message: format!(
                "the document's namespace is '{ns}': relance reads camt.053 and camt.054 statements"
            ),
        })
    }
}

/// The text an entity reference stands for (`amp`, `#233`, `#xE9`…); nothing for an
/// unknown one.
pub(super) fn entity(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.as_ref() {
        "amp" => "&".to_string(),
        "lt" => "<".to_string(),
        "gt" => ">".to_string(),
        "quot" => "\"".to_string(),
        "apos" => "'".to_string(),
        n => n
            .strip_prefix("#x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_default(),
    }
}

/// A reader counting the lines of what the parser consumed, for error messages.
struct Lines<R> {
    inner: R,
    newlines: u64,
}

impl<R: std::io::Read> std::io::Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: BufRead> BufRead for Lines<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(b) = self.inner.fill_buf() {
            let n = amt.min(b.len());
            self.newlines += b[..n].iter().filter(|&&c| c == b'\n').count() as u64;
        }
        self.inner.consume(amt);
    }
}

/// The booked credits an entry makes: one per transaction, else the entry's own.
fn credits_of(
    e: Entry,
    position: usize,
    summary: &mut StatementSummary,
) -> Result<Vec<BankCredit>, CamtError> {
    let line = e.line;
    let booked = e.status.as_deref().is_none_or(|s| s == "BOOK");
    if !booked || e.reversal {
        summary.not_booked += 1;
        return Ok(Vec::new());
    }
    if e.indicator.as_deref() != Some("CRDT") {
        summary.debits += 1;
        return Ok(Vec::new());
    }
    let date = e
        .value
        .as_deref()
        .or(e.booking.as_deref())
        .and_then(date_of)
        .ok_or_else(|| CamtError {
            line,
            message: "the entry has no value date (ValDt) nor booking date (BookgDt)".into(),
        })?;
    let (entry_amount, entry_ccy) = e.amount.clone().ok_or_else(|| CamtError {
        line,
        message: "the entry has no amount (Amt)".into(),
    })?;
    let entry_amount = money(&entry_amount, line)?;
    let txs = if e.txs.is_empty() {
        vec![Tx::default()]
    } else {
        e.txs
    };
    let single = txs.len() == 1;
    let mut out = Vec::new();
    for (i, t) in txs.into_iter().enumerate() {
        if t.indicator.as_deref().is_some_and(|c| c != "CRDT") {
            continue;
        }
        let (amount, currency) = match t.amount {
            Some((a, c)) => (money(&a, line)?, c.or_else(|| entry_ccy.clone())),
            None if single => (entry_amount, entry_ccy.clone()),
            None => {
                return Err(CamtError {
                    line,
                    message: format!("transaction {} of a batched entry has no amount", i + 1),
                })
            }
        };
        if amount <= Decimal::ZERO {
            continue;
        }
        let currency = currency.ok_or_else(|| CamtError {
            line,
            message: "the amount has no currency (Ccy)".into(),
        })?;
        let mut remittance = t.remittance;
        if remittance.is_empty() {
            remittance.extend(e.info.clone());
        }
        let remittance = remittance.join(" ");
        let key = match (&t.bank_ref, &e.bank_ref, &e.entry_ref) {
            (Some(r), _, _) => format!("CAMT-{r}"),
            (None, Some(r), _) | (None, None, Some(r)) if single => format!("CAMT-{r}"),
            (None, Some(r), _) | (None, None, Some(r)) => format!("CAMT-{r}-{}", i + 1),
            _ => {
                let digest = crate::digest::sha256_hex(
                    format!(
                        "{date}\u{1f}{amount}\u{1f}{currency}\u{1f}{:?}\u{1f}{:?}\u{1f}{remittance}\u{1f}{:?}\u{1f}{position}\u{1f}{i}",
                        t.debtor_name, t.debtor_iban, t.end_to_end
                    )
                    .as_bytes(),
                );
                format!("CAMT-{}", &digest[..20])
            }
        };
        summary.credits += 1;
        out.push(BankCredit {
            key,
            line,
            date,
            amount,
            currency,
            debtor_name: t.debtor_name,
            debtor_iban: t.debtor_iban.map(|i| i.replace(' ', "")),
            structured_reference: t.structured.map(|r| r.replace(' ', "")),
            remittance,
        });
    }
    Ok(out)
}

/// Reads a statement file.
///
/// # Errors
/// The file cannot be opened; see [`read`].
pub fn read_file(
    path: &Path,
    on_credit: impl FnMut(BankCredit) -> Result<(), CamtError>,
) -> Result<StatementSummary, CamtError> {
    let f = std::fs::File::open(path).map_err(|e| CamtError {
        line: 0,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    read(std::io::BufReader::with_capacity(256 * 1024, f), on_credit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>S1</MsgId><CreDtTm>2026-11-03T06:00:00</CreDtTm></GrpHdr>
  <Stmt>
   <Id>STMT-1</Id>
   <Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>
   <Ntry>
    <Amt Ccy="EUR">1200.00</Amt>
    <CdtDbtInd>CRDT</CdtDbtInd>
    <Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-02</Dt></BookgDt>
    <ValDt><Dt>2026-11-02</Dt></ValDt>
    <AcctSvcrRef>BANK-001</AcctSvcrRef>
    <NtryDtls><TxDtls>
     <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
     <RltdPties><Dbtr><Nm>Garage Martin &amp; Fils</Nm></Dbtr><DbtrAcct><Id><IBAN>FR76 3000 4000 0312 3456 7890 143</IBAN></Id></DbtrAcct></RltdPties>
     <RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>RF65F101</Ref></CdtrRefInf></Strd></RmtInf>
    </TxDtls></NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">80.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-02</Dt></BookgDt>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <ValDt><Dt>2026-11-03</Dt></ValDt>
    <NtryRef>E3</NtryRef>
    <NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>
     <TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">300.00</Amt></TxAmt></AmtDtls><RmtInf><Ustrd>FACT F-7 ET</Ustrd><Ustrd>F-8</Ustrd></RmtInf></TxDtls>
     <TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">200.00</Amt></TxAmt></AmtDtls><RmtInf><Ustrd>ACOMPTE</Ustrd></RmtInf></TxDtls>
    </NtryDtls>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>"#;

    fn credits(xml: &str) -> (Vec<BankCredit>, StatementSummary) {
        let mut out = Vec::new();
        let s = read(xml.as_bytes(), |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        (out, s)
    }

    #[test]
    fn a_version_2_statement_gives_its_booked_credits() {
        let (c, s) = credits(V2);
        assert_eq!(s.message, "camt.053.001.02");
        assert_eq!((s.entries, s.credits, s.debits), (3, 3, 1));
        assert_eq!(c[0].key, "CAMT-BANK-001");
        assert_eq!(c[0].line, 8);
        assert_eq!(c[0].amount, Decimal::new(120_000, 2));
        assert_eq!(c[0].debtor_name.as_deref(), Some("Garage Martin & Fils"));
        assert_eq!(
            c[0].debtor_iban.as_deref(),
            Some("FR7630004000031234567890143")
        );
        assert_eq!(c[0].structured_reference.as_deref(), Some("RF65F101"));
        assert_eq!(c[1].key, "CAMT-E3-1");
        assert_eq!(c[1].amount, Decimal::new(30_000, 2));
        assert_eq!(c[1].remittance, "FACT F-7 ET F-8");
        assert_eq!(c[2].date, NaiveDate::from_ymd_opt(2026, 11, 3).unwrap());
    }

    #[test]
    fn a_version_8_notification_names_its_debtor_under_pty_and_its_status_under_cd() {
        let xml = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn><Ntfctn>
<Ntry><Amt Ccy="EUR">10.5</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><ValDt><DtTm>2026-11-04T10:00:00+01:00</DtTm></ValDt>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>X9</AcctSvcrRef></Refs><Amt Ccy="EUR">10.5</Amt><RltdPties><Dbtr><Pty><Nm>Un</Nm></Pty></Dbtr></RltdPties></TxDtls></NtryDtls></Ntry>
<Ntry><Amt Ccy="EUR">99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts></Ntry>
</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"#;
        let (c, s) = credits(xml);
        assert_eq!(
            (s.message.as_str(), s.credits, s.not_booked),
            ("camt.054.001.08", 1, 1)
        );
        assert_eq!(c[0].key, "CAMT-X9");
        assert_eq!(c[0].debtor_name.as_deref(), Some("Un"));
        assert_eq!(c[0].date, NaiveDate::from_ymd_opt(2026, 11, 4).unwrap());
    }

    #[test]
    fn a_file_that_is_not_a_statement_is_refused_with_its_line() {
        for (xml, expected) in [
            ("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\"/>", "relance reads camt.053"),
            ("<html></html>", "not an ISO 20022 statement"),
            ("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\n<Ntry>\n<Amt Ccy=\"EUR\">1,2</Amt><CdtDbtInd>CRDT</CdtDbtInd><ValDt><Dt>2026-01-01</Dt></ValDt></Ntry></Document>", "'1,2' is not an amount"),
            ("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\n<Ntry></Document>", "not well-formed"),
            ("", "empty"),
        ] {
            let e = read(xml.as_bytes(), |_| Ok(())).unwrap_err();
            assert!(e.message.contains(expected), "{xml}: {e}");
        }
    }
}

/// How a credit was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// Its structured creditor reference (ISO 11649 `RF…`) is an open invoice's.
    Reference,
    /// Its remittance text names open invoices of one customer.
    InvoiceNumber,
    /// Its debtor's name is a customer's, with exactly one open invoice of that amount.
    AmountAndDebtor,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Reference => "reference",
            MatchedBy::InvoiceNumber => "invoice_number",
            MatchedBy::AmountAndDebtor => "amount_and_debtor",
        }
    }
}

/// One credit and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct CreditMatch {
    pub key: String,
    pub line: u64,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub debtor_name: Option<String>,
    pub debtor_iban: Option<String>,
    pub reference: Option<String>,
    pub remittance: String,
    pub matched_by: Option<MatchedBy>,
    pub customer: Option<String>,
    pub invoices: Vec<String>,
}

/// What a statement import did.
#[derive(Debug, Clone, Serialize)]
pub struct CamtReport {
    pub file: std::path::PathBuf,
    pub sha256: String,
    pub statement: StatementSummary,
    /// Credits matched, by how.
    pub by_reference: u64,
    pub by_invoice_number: u64,
    pub by_amount_and_debtor: u64,
    pub unmatched: u64,
    /// The ledger's payments the matched credits became.
    pub payments: crate::store::UpsertCounts,
    pub unapplied_payments: u64,
    /// Every credit with its match, in file order.
    pub credits: Vec<CreditMatch>,
}

impl std::fmt::Display for CamtReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = crate::telemetry::escape_control(&self.file.display().to_string()).into_owned();
        let s = &self.statement;
        write!(
            f,
            "{file}: {} ({} entries: {} credits, {} debits left out, {} not booked)\n  matched by structured reference: {}\n  matched by invoice number in the text: {}\n  matched by amount and debtor: {}\n  not matched, for a collector: {}\n  payments: {} new, {} updated, {} unchanged",
            s.message,
            s.entries,
            s.credits,
            s.debits,
            s.not_booked,
            self.by_reference,
            self.by_invoice_number,
            self.by_amount_and_debtor,
            self.unmatched,
            self.payments.inserted,
            self.payments.updated,
            self.payments.unchanged,
        )
    }
}

/// A name compared without case, accents, punctuation or legal form.
fn name_key(name: &str) -> String {
    const FORMS: [&str; 12] = [
        "SA", "SAS", "SASU", "SARL", "EURL", "SNC", "SCI", "SCOP", "GMBH", "LTD", "SPA", "SL",
    ];
    // `S.A.S.` is `SAS`.
    let folded: String = name
        .chars()
        .filter(|c| *c != '.')
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' | 'Ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
            'î' | 'ï' | 'Î' | 'Ï' => 'i',
            'ô' | 'ö' | 'Ô' | 'Ö' => 'o',
            'ù' | 'û' | 'ü' | 'Ù' | 'Û' | 'Ü' => 'u',
            'ç' | 'Ç' => 'c',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect::<String>()
        .to_uppercase();
    folded
        .split_whitespace()
        .filter(|w| !FORMS.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Letters and digits only, upper case: how an invoice number is written in a creditor
/// reference.
fn compact(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A 64-bit digest of an invoice number (FNV-1a): the matcher's index key.
fn digest(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An open invoice as the matcher keeps it: indexes into the matcher's tables.
struct Open {
    customer: u32,
    currency: u16,
    amount: Decimal,
}

/// The open invoices and customers credits are matched against, held in memory for
/// the import, compactly (a million open invoices take about 100 MB).
#[derive(Default)]
struct Matcher {
    /// (digest of an invoice number, its index), sorted once loaded: a number is found
    /// by its digest and checked against `numbers`, without a second copy of it.
    by_digest: Vec<(u64, u32)>,
    numbers: Vec<Box<str>>,
    open: Vec<Open>,
    customers: Vec<Box<str>>,
    customer_index: std::collections::HashMap<Box<str>, u32>,
    currencies: Vec<Box<str>>,
    /// Compacted number → invoices (for creditor references of numbers with
    /// separators).
    by_compact: std::collections::HashMap<Box<str>, Vec<u32>>,
    /// Name key → customers.
    by_name: std::collections::HashMap<String, Vec<u32>>,
    /// Customer → its open invoices.
    by_customer: std::collections::HashMap<u32, Vec<u32>>,
}

/// A match: how, the customer, the invoices.
type Found = (MatchedBy, String, Vec<String>);

impl Matcher {
    fn customer(&mut self, id: &str) -> u32 {
        if let Some(i) = self.customer_index.get(id) {
            return *i;
        }
        let i = u32::try_from(self.customers.len()).unwrap_or(u32::MAX);
        self.customers.push(id.into());
        self.customer_index.insert(id.into(), i);
        i
    }

    fn add_invoice(&mut self, inv: crate::store::bank::OpenInvoice) {
        let customer = self.customer(&inv.customer);
        let currency = match self.currencies.iter().position(|c| **c == *inv.currency) {
            Some(i) => i,
            None => {
                self.currencies.push(inv.currency.as_str().into());
                self.currencies.len() - 1
            }
        };
        let idx = u32::try_from(self.open.len()).unwrap_or(u32::MAX);
        let c = compact(&inv.number);
        if c != inv.number {
            self.by_compact.entry(c.into()).or_default().push(idx);
        }
        self.by_customer.entry(customer).or_default().push(idx);
        self.by_digest.push((digest(&inv.number), idx));
        self.numbers.push(inv.number.into());
        self.open.push(Open {
            customer,
            currency: u16::try_from(currency).unwrap_or(u16::MAX),
            amount: inv.open_amount,
        });
    }

    fn add_customer(&mut self, c: &crate::store::bank::CustomerName) {
        let idx = self.customer(&c.external_id);
        for n in std::iter::once(&c.name).chain(c.legal_name.iter()) {
            let k = name_key(n);
            if !k.is_empty() {
                let list = self.by_name.entry(k).or_default();
                if !list.contains(&idx) {
                    list.push(idx);
                }
            }
        }
    }

    fn currency_of(&self, i: u32) -> &str {
        self.open
            .get(i as usize)
            .and_then(|o| self.currencies.get(usize::from(o.currency)))
            .map_or("", |c| c)
    }

    fn customer_of(&self, i: u32) -> String {
        self.open
            .get(i as usize)
            .and_then(|o| self.customers.get(o.customer as usize))
            .map_or_else(String::new, |c| c.to_string())
    }

    fn number(&self, i: u32) -> String {
        self.numbers
            .get(i as usize)
            .map_or_else(String::new, |n| n.to_string())
    }

    /// Sorts the index once every invoice is added.
    fn ready(&mut self) {
        self.by_digest.sort_unstable();
    }

    /// The open invoice numbered `number`.
    fn by_number(&self, number: &str) -> Option<u32> {
        let d = digest(number);
        let from = self.by_digest.partition_point(|(k, _)| *k < d);
        self.by_digest[from..]
            .iter()
            .take_while(|(k, _)| *k == d)
            .map(|(_, i)| *i)
            .find(|i| {
                self.numbers
                    .get(*i as usize)
                    .is_some_and(|n| **n == *number)
            })
    }

    /// The open invoice a compacted number designates, if exactly one.
    fn by_compacted(&self, body: &str) -> Option<u32> {
        if let Some(i) = self.by_number(body) {
            return Some(i);
        }
        match self.by_compact.get(body).map(Vec::as_slice) {
            Some([one]) => Some(*one),
            _ => None,
        }
    }

    fn find(&self, c: &BankCredit) -> Option<Found> {
        // 1. The structured reference (RF…), else an RF reference written in the text.
        let rf = c
            .structured_reference
            .iter()
            .cloned()
            .chain(
                c.remittance
                    .split(|ch: char| !ch.is_ascii_alphanumeric())
                    .filter(|w| w.len() > 4 && w.to_ascii_uppercase().starts_with("RF"))
                    .map(str::to_string),
            )
            .find(|r| crate::domain::sepa::is_creditor_reference(r));
        if let Some(r) = rf {
            let body = compact(&r)[4..].to_string();
            if let Some(i) = self.by_compacted(&body) {
                if self.currency_of(i) == c.currency {
                    return Some((
                        MatchedBy::Reference,
                        self.customer_of(i),
                        vec![self.number(i)],
                    ));
                }
            }
        }
        // 2. Invoice numbers in the text, all of one customer.
        let mut found: Vec<u32> = Vec::new();
        for word in c
            .remittance
            .split(|ch: char| ch.is_whitespace() || matches!(ch, ',' | ';' | ':' | '(' | ')' | '+'))
            .map(|w| w.trim_matches(|ch: char| ch == '.' || ch == '\'' || ch == '"'))
            .filter(|w| w.len() >= 3)
        {
            let hit = self.by_number(word).or_else(|| {
                let k = compact(word);
                (k.len() >= 4).then(|| self.by_compacted(&k)).flatten()
            });
            if let Some(i) = hit {
                if !found.contains(&i) {
                    found.push(i);
                }
            }
        }
        if let Some(&first) = found.first() {
            let customer = self.open.get(first as usize).map(|o| o.customer);
            if found.iter().all(|&i| {
                self.open.get(i as usize).map(|o| o.customer) == customer
                    && self.currency_of(i) == c.currency
            }) {
                return Some((
                    MatchedBy::InvoiceNumber,
                    self.customer_of(first),
                    found.iter().map(|&i| self.number(i)).collect(),
                ));
            }
        }
        // 3. The debtor's name is one customer's, with one open invoice of that amount.
        let name = c
            .debtor_name
            .as_deref()
            .map(name_key)
            .filter(|k| !k.is_empty())?;
        let [customer] = self.by_name.get(&name)?.as_slice() else {
            return None;
        };
        let same: Vec<u32> = self
            .by_customer
            .get(customer)?
            .iter()
            .copied()
            .filter(|&i| {
                self.open
                    .get(i as usize)
                    .is_some_and(|o| o.amount == c.amount)
                    && self.currency_of(i) == c.currency
            })
            .collect();
        match same.as_slice() {
            [one] => Some((
                MatchedBy::AmountAndDebtor,
                self.customers
                    .get(*customer as usize)
                    .map_or_else(String::new, |c| c.to_string()),
                vec![self.number(*one)],
            )),
            _ => None,
        }
    }
}

/// Imports a statement: each booked credit matched to an open invoice (structured
/// reference, invoice number in the text, amount and debtor) becomes a payment of that
/// invoice's customer allocated to it, in one transaction; every credit is recorded
/// with its match, the unmatched ones for a collector (`relance bank unmatched`).
/// Importing the statement again changes nothing (credits are keyed by the bank's
/// references); a credit unmatched before is matched if it can be now.
///
/// # Errors
/// The file is not a statement (with its line), or the database fails.
pub async fn import_camt(
    store: &dyn crate::store::Store,
    path: &Path,
    base: &super::ImportOptions,
) -> Result<CamtReport, super::ImportError> {
    let file_label = path.display().to_string();
    let failed = |message: String| super::ImportError::File {
        file: file_label.clone(),
        message,
    };
    let sha256 = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut f = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
        std::io::copy(&mut f, &mut hasher).map_err(|e| failed(e.to_string()))?;
        crate::digest::hex(&hasher.finalize())
    };
    let mut credits = Vec::new();
    let statement = read_file(path, |c| {
        credits.push(c);
        Ok(())
    })
    .map_err(|e| failed(e.to_string()))?;
    let file_name = path
        .file_name()
        .map_or_else(|| file_label.clone(), |n| n.to_string_lossy().into_owned());
    import_credits(store, path, &file_name, (statement, credits), sha256, base).await
}

/// [`import_camt`] of a statement received in a request (`name` names it in the
/// ledger's import history).
///
/// # Errors
/// As [`import_camt`].
pub async fn import_camt_bytes(
    store: &dyn crate::store::Store,
    name: &str,
    bytes: &[u8],
    base: &super::ImportOptions,
) -> Result<CamtReport, super::ImportError> {
    let mut credits = Vec::new();
    let statement = read(bytes, |c| {
        credits.push(c);
        Ok(())
    })
    .map_err(|e| super::ImportError::File {
        file: name.to_string(),
        message: e.to_string(),
    })?;
    let sha256 = crate::digest::sha256_hex(bytes);
    import_credits(
        store,
        Path::new(name),
        name,
        (statement, credits),
        sha256,
        base,
    )
    .await
}

async fn import_credits(
    store: &dyn crate::store::Store,
    path: &Path,
    file_name: &str,
    (statement, credits): (StatementSummary, Vec<BankCredit>),
    sha256: String,
    base: &super::ImportOptions,
) -> Result<CamtReport, super::ImportError> {
    use std::collections::HashMap;
    /// Credits matched and written at a time.
    const CHUNK: usize = 2000;
    let file_label = path.display().to_string();
    let file_name = file_name.to_string();
    let mut matcher = Matcher::default();
    store
        .open_invoices_for_matching(&mut |i| matcher.add_invoice(i))
        .await?;
    matcher.ready();
    for c in store.customer_names().await? {
        matcher.add_customer(&c);
    }
    let mut report = CamtReport {
        file: path.to_path_buf(),
        sha256: sha256.clone(),
        statement,
        by_reference: 0,
        by_invoice_number: 0,
        by_amount_and_debtor: 0,
        unmatched: 0,
        payments: crate::store::UpsertCounts::default(),
        unapplied_payments: 0,
        credits: Vec::with_capacity(credits.len()),
    };
    let strict = super::ImportOptions {
        skip_invalid: false,
        progress: None,
        ..base.clone()
    };
    let mut imp = super::Importer::new(super::ImportKind::Payments, store.begin().await?, &strict);
    imp.source = file_name.clone();
    let mut paid = 0u64;
    let mut credits = credits.into_iter().peekable();
    while credits.peek().is_some() {
        let chunk: Vec<BankCredit> = credits.by_ref().take(CHUNK).collect();
        // A credit matched at an earlier import keeps its match (its invoice may be paid
        // by it since, and no longer open).
        let earlier = store
            .matched_bank_credits(&chunk.iter().map(|c| c.key.clone()).collect::<Vec<_>>())
            .await?;
        let mut payments: Vec<(u64, HashMap<String, String>)> = Vec::new();
        for c in chunk {
            let found = match earlier.get(&c.key) {
                Some((by, customer, invoice)) => {
                    let by = match by.as_str() {
                        "reference" => MatchedBy::Reference,
                        "invoice_number" => MatchedBy::InvoiceNumber,
                        _ => MatchedBy::AmountAndDebtor,
                    };
                    let invoices = invoice
                        .iter()
                        .flat_map(|i| i.split_whitespace().map(str::to_string))
                        .collect();
                    Some((by, customer.clone(), invoices))
                }
                None => matcher.find(&c),
            };
            let (matched_by, customer, invoices) = match found {
                Some((by, customer, invoices)) => (Some(by), Some(customer), invoices),
                None => (None, None, Vec::new()),
            };
            match matched_by {
                Some(MatchedBy::Reference) => report.by_reference += 1,
                Some(MatchedBy::InvoiceNumber) => report.by_invoice_number += 1,
                Some(MatchedBy::AmountAndDebtor) => report.by_amount_and_debtor += 1,
                None => report.unmatched += 1,
            }
            if let Some(customer) = &customer {
                let mut r = HashMap::new();
                r.insert("id".to_string(), c.key.clone());
                r.insert("customer".to_string(), customer.clone());
                r.insert("date".to_string(), c.date.to_string());
                r.insert("amount".to_string(), c.amount.to_string());
                r.insert("currency".to_string(), c.currency.clone());
                r.insert("reference".to_string(), invoices.join(" "));
                payments.push((c.line, r));
            }
            report.credits.push(CreditMatch {
                key: c.key,
                line: c.line,
                date: c.date,
                amount: c.amount,
                currency: c.currency,
                debtor_name: c.debtor_name,
                debtor_iban: c.debtor_iban,
                reference: c.structured_reference,
                remittance: c.remittance,
                matched_by,
                customer,
                invoices,
            });
        }
        paid += payments.len() as u64;
        imp.feed(&payments).await?;
        if imp.rejected_total > 0 {
            break;
        }
    }
    if imp.rejected_total > 0 {
        let first = imp
            .rejected
            .first()
            .map(|e| format!("line {}: {}", e.line, e.message))
            .unwrap_or_default();
        imp.tx.rollback().await?;
        return Err(super::ImportError::File {
            file: file_label,
            message: format!(
                "a matched credit could not be recorded as a payment ({first}); nothing was written"
            ),
        });
    }
    report.payments = imp.written;
    report.unapplied_payments = imp.unapplied;
    let now = chrono::Utc::now();
    let mut tx = imp.tx;
    tx.record_import(
        &crate::store::ImportRecord {
            kind: "camt".into(),
            file_name: file_name.clone(),
            sha256,
            rows_read: report.statement.credits,
            rows_written: paid,
            rows_rejected: 0,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    // Every credit with its match, a chunk at a time.
    for chunk in report.credits.chunks(CHUNK) {
        let rows: Vec<crate::store::bank::BankCreditRow> = chunk
            .iter()
            .map(|c| crate::store::bank::BankCreditRow {
                key: c.key.clone(),
                file_name: file_name.clone(),
                value_date: c.date,
                currency: c.currency.clone(),
                amount: c.amount,
                debtor_name: c.debtor_name.clone(),
                debtor_iban: c.debtor_iban.clone(),
                reference: c.reference.clone(),
                remittance: c.remittance.clone(),
                matched_by: c.matched_by.map(|m| m.as_str().to_string()),
                customer: c.customer.clone(),
                // The invoices it was matched to, space-separated.
                invoice: (!c.invoices.is_empty()).then(|| c.invoices.join(" ")),
                payment_id: c.customer.as_ref().map(|_| c.key.clone()),
                imported_at: now,
            })
            .collect();
        store.record_bank_credits(&rows).await?;
    }
    if report.payments.inserted + report.payments.updated > 0 {
        store.refresh_statistics().await?;
    }
    tracing::info!(
        credits = report.statement.credits,
        by_reference = report.by_reference,
        by_invoice_number = report.by_invoice_number,
        by_amount_and_debtor = report.by_amount_and_debtor,
        unmatched = report.unmatched,
        "bank statement imported"
    );
    Ok(report)
}

/// A statement written as a bank writes one: what `relance sample --camt` makes of its
/// payments.
pub mod write {
    use super::*;
    use std::io::Write;

    /// A credit as the statement writes it.
    pub struct Credit<'a> {
        pub bank_ref: &'a str,
        pub date: NaiveDate,
        pub amount: Decimal,
        pub currency: &'a str,
        pub debtor: &'a str,
        /// A structured creditor reference (`RF…`), else…
        pub structured: Option<String>,
        /// …an unstructured remittance text.
        pub text: &'a str,
    }

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    /// Writes a `camt.053.001.02` statement of `credits` to the account `iban`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn camt053(
        out: &mut impl Write,
        id: &str,
        iban: &str,
        as_of: NaiveDate,
        credits: &[Credit<'_>],
    ) -> std::io::Result<()> {
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            out,
            r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#
        )?;
        writeln!(out, " <BkToCstmrStmt>")?;
        writeln!(
            out,
            "  <GrpHdr><MsgId>{}</MsgId><CreDtTm>{as_of}T06:00:00</CreDtTm></GrpHdr>",
            esc(id)
        )?;
        writeln!(out, "  <Stmt>")?;
        writeln!(out, "   <Id>{}</Id>", esc(id))?;
        writeln!(out, "   <CreDtTm>{as_of}T06:00:00</CreDtTm>")?;
        writeln!(
            out,
            "   <Acct><Id><IBAN>{}</IBAN></Id><Ccy>EUR</Ccy></Acct>",
            esc(iban)
        )?;
        for c in credits {
            writeln!(out, "   <Ntry>")?;
            writeln!(
                out,
                r#"    <Amt Ccy="{}">{:.2}</Amt>"#,
                esc(c.currency),
                c.amount
            )?;
            writeln!(out, "    <CdtDbtInd>CRDT</CdtDbtInd>")?;
            writeln!(out, "    <Sts>BOOK</Sts>")?;
            writeln!(out, "    <BookgDt><Dt>{}</Dt></BookgDt>", c.date)?;
            writeln!(out, "    <ValDt><Dt>{}</Dt></ValDt>", c.date)?;
            writeln!(out, "    <AcctSvcrRef>{}</AcctSvcrRef>", esc(c.bank_ref))?;
            writeln!(out, "    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>")?;
            writeln!(out, "    <NtryDtls><TxDtls>")?;
            writeln!(out, "     <Refs><AcctSvcrRef>{}</AcctSvcrRef><EndToEndId>NOTPROVIDED</EndToEndId></Refs>", esc(c.bank_ref))?;
            writeln!(
                out,
                "     <RltdPties><Dbtr><Nm>{}</Nm></Dbtr></RltdPties>",
                esc(c.debtor)
            )?;
            match &c.structured {
                Some(r) => writeln!(out, "     <RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp><Ref>{}</Ref></CdtrRefInf></Strd></RmtInf>", esc(r))?,
                None => writeln!(out, "     <RmtInf><Ustrd>{}</Ustrd></RmtInf>", esc(c.text))?,
            }
            writeln!(out, "    </TxDtls></NtryDtls>")?;
            writeln!(out, "   </Ntry>")?;
        }
        writeln!(out, "  </Stmt>")?;
        writeln!(out, " </BkToCstmrStmt>")?;
        writeln!(out, "</Document>")
    }
}
