//! The FEC (Fichier des Écritures Comptables, article A47 A-1 du livre des procédures
//! fiscales): the accounting entries every French accounting software exports, read
//! into the ledger with no mapping work.
//!
//! - The 18 standard columns (or `Montant` and `Sens` instead of `Debit` and `Credit`),
//!   tab or `|` separated, UTF-8 or ISO-8859-15, amounts with a decimal comma, dates
//!   `AAAAMMJJ`; an `EcheanceDate` column, which some software adds, gives due dates.
//! - Only the lines on customer accounts count (`CompteNum` starting with `411`, or the
//!   prefixes given): the customer is `CompAuxNum` (`CompAuxLib` its name), else the
//!   account itself.
//! - A debit is an invoice (`PieceRef` its number, `PieceDate` its date, lines of one
//!   piece added up); a credit is a payment, or a credit note when its journal is one
//!   where invoices are (the sales journal). Its id is the journal and entry number,
//!   stable from one export to the next, so re-importing a newer FEC of the same year
//!   updates and never duplicates.
//! - Lettering (`EcritureLet`): a credit settles the debits of the same customer that
//!   carry its letter; without one it goes where its label names an invoice, else to
//!   the oldest ones, as a CSV payment does.
//! - Customers already in the ledger are left as they are (the FEC knows only their
//!   name); new ones get the segment given.
//!
//! The file is imported in one transaction: any invalid line (named with its line and
//! column) and nothing is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::csv_source::{CsvSource, Dialect, FieldError, Row};
use super::{ImportError, ImportKind, ImportOptions, Importer, RowError};
use crate::store::{ImportRecord, Store, UpsertCounts};

/// How a FEC is read.
#[derive(Debug, Clone)]
pub struct FecOptions {
    /// The account prefixes of customer accounts (`411` by default).
    pub accounts: Vec<String>,
    /// The segment customers new to the ledger get (required when the file has some).
    pub segment: Option<String>,
    /// Payment terms for invoices without a due date (no `EcheanceDate` column or cell).
    pub terms_days: i64,
}

impl Default for FecOptions {
    fn default() -> Self {
        FecOptions {
            accounts: vec!["411".into()],
            segment: None,
            terms_days: 30,
        }
    }
}

/// The standard columns as the format names them (headers are matched without case).
pub const COLUMNS: [&str; 18] = [
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
];

/// The column's name as the format writes it.
fn display(column: &str) -> String {
    COLUMNS
        .iter()
        .chain(["Montant", "Sens", "EcheanceDate"].iter())
        .find(|c| c.eq_ignore_ascii_case(column))
        .map_or_else(|| column.to_string(), |c| (*c).to_string())
}

/// What a FEC import did.
#[derive(Debug, Clone, Serialize)]
pub struct FecReport {
    pub file: PathBuf,
    pub sha256: String,
    pub lines_read: u64,
    /// Lines on customer accounts.
    pub customer_lines: u64,
    pub customers: UpsertCounts,
    pub invoices: UpsertCounts,
    /// Payments and credit notes.
    pub payments: UpsertCounts,
    pub credit_notes: u64,
    /// Credits allocated by their lettering.
    pub lettered: u64,
    /// Payments whose amount was not fully allocated (unapplied credit).
    pub unapplied_payments: u64,
    pub rejected: Vec<RowError>,
    pub committed: bool,
}

impl FecReport {
    /// `file:line: column 'x': message` for one rejected line.
    pub fn format_error(&self, e: &RowError) -> String {
        let file = crate::telemetry::escape_control(&self.file.display().to_string()).into_owned();
        match &e.column {
            Some(c) => format!("{file}:{}: column '{c}': {}", e.line, e.message),
            None => format!("{file}:{}: {}", e.line, e.message),
        }
    }
}

impl std::fmt::Display for FecReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = crate::telemetry::escape_control(&self.file.display().to_string()).into_owned();
        if !self.committed {
            return write!(
                f,
                "{file}: rejected, nothing written: {} invalid line(s) of {}",
                self.rejected.len(),
                self.lines_read
            );
        }
        let c = |u: &UpsertCounts| {
            format!(
                "{} new, {} updated, {} unchanged",
                u.inserted, u.updated, u.unchanged
            )
        };
        write!(
            f,
            "{file}: {} lines read, {} on customer accounts\n  customers: {}\n  invoices: {}\n  payments and credit notes: {} ({} credit notes, {} allocated by their lettering)",
            self.lines_read,
            self.customer_lines,
            c(&self.customers),
            c(&self.invoices),
            c(&self.payments),
            self.credit_notes,
            self.lettered
        )?;
        if self.unapplied_payments > 0 {
            write!(
                f,
                "\n  {} payment(s) left unapplied credit",
                self.unapplied_payments
            )?;
        }
        Ok(())
    }
}

/// One line on a customer account.
#[derive(Debug, Clone)]
struct Entry {
    line: u64,
    journal: String,
    number: String,
    date: NaiveDate,
    customer: String,
    name: String,
    piece: Option<String>,
    piece_date: Option<NaiveDate>,
    label: Option<String>,
    debit: Decimal,
    credit: Decimal,
    letter: Option<String>,
    due: Option<NaiveDate>,
    currency: Option<String>,
}

/// `AAAAMMJJ` (the format's), or `AAAA-MM-JJ`.
fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .map_err(|_| format!("'{text}' is not a date (AAAAMMJJ)"))
}

fn amount(text: &str) -> Result<Decimal, String> {
    crate::domain::money::parse_amount(text).map_err(|e| e.to_string())
}

fn col(row: &Row<'_>, name: &str) -> Result<Option<String>, FieldError> {
    row.get(&name.to_ascii_lowercase())
        .map_err(|e| FieldError::new(&display(name), e.message))
}

fn parse<T>(
    row: &Row<'_>,
    name: &str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, FieldError> {
    match col(row, name)? {
        None => Ok(None),
        Some(t) => f(&t).map(Some).map_err(|m| FieldError::new(name, m)),
    }
}

/// Reads one line: `None` when it is not on a customer account (or carries nothing).
fn entry(row: &Row<'_>, opts: &FecOptions, signed: bool) -> Result<Option<Entry>, FieldError> {
    let account = col(row, "CompteNum")?.ok_or_else(|| FieldError::new("CompteNum", "is empty"))?;
    if !opts
        .accounts
        .iter()
        .any(|p| account.starts_with(p.as_str()))
    {
        return Ok(None);
    }
    let (debit, credit) = if signed {
        let m = parse(row, "Montant", amount)?.unwrap_or_default();
        match col(row, "Sens")?
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("D" | "+1" | "1") => (m, Decimal::ZERO),
            Some("C" | "-1") => (Decimal::ZERO, m),
            other => {
                return Err(FieldError::new(
                    "Sens",
                    format!("'{}' is not D or C", other.unwrap_or("")),
                ))
            }
        }
    } else {
        (
            parse(row, "Debit", amount)?.unwrap_or_default(),
            parse(row, "Credit", amount)?.unwrap_or_default(),
        )
    };
    if debit > Decimal::ZERO && credit > Decimal::ZERO {
        return Err(FieldError::new(
            "Credit",
            "a line is a debit or a credit, not both",
        ));
    }
    // A negative amount is the other side's.
    let net = debit - credit;
    let (debit, credit) = (net.max(Decimal::ZERO), (-net).max(Decimal::ZERO));
    if debit.is_zero() && credit.is_zero() {
        return Ok(None);
    }
    let customer = match col(row, "CompAuxNum")? {
        Some(aux) => aux,
        None => account.clone(),
    };
    let name = col(row, "CompAuxLib")?
        .or(col(row, "CompteLib")?)
        .unwrap_or_else(|| customer.clone());
    let number =
        col(row, "EcritureNum")?.ok_or_else(|| FieldError::new("EcritureNum", "is empty"))?;
    let journal =
        col(row, "JournalCode")?.ok_or_else(|| FieldError::new("JournalCode", "is empty"))?;
    let date_value = parse(row, "EcritureDate", date)?
        .ok_or_else(|| FieldError::new("EcritureDate", "is empty"))?;
    let foreign = match (parse(row, "Montantdevise", amount)?, col(row, "Idevise")?) {
        (Some(a), Some(code)) if !a.is_zero() => {
            crate::domain::Currency::parse(&code)
                .map_err(|e| FieldError::new("Idevise", e.to_string()))?;
            Some((a.abs(), code))
        }
        _ => None,
    };
    let (debit, credit, currency) = match foreign {
        Some((a, code)) if debit > Decimal::ZERO => (a, Decimal::ZERO, Some(code)),
        Some((a, code)) => (Decimal::ZERO, a, Some(code)),
        None => (debit, credit, None),
    };
    Ok(Some(Entry {
        line: row.line,
        journal,
        number,
        date: date_value,
        customer,
        name,
        piece: col(row, "PieceRef")?,
        piece_date: parse(row, "PieceDate", date)?,
        label: col(row, "EcritureLib")?,
        debit,
        credit,
        letter: col(row, "EcritureLet")?,
        due: parse(row, "EcheanceDate", date)?,
        currency,
    }))
}

/// A ledger record as its fields, with the line it comes from: made into the
/// importer's named fields a batch at a time.
type Lean = (u64, Vec<(&'static str, String)>);

fn named(records: &[Lean]) -> Vec<(u64, HashMap<String, String>)> {
    records
        .iter()
        .map(|(line, fields)| {
            (
                *line,
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect(),
            )
        })
        .collect()
}

/// The ledger's records a FEC's customer lines make, each with the line it comes from.
#[derive(Debug, Default)]
struct Records {
    customers: Vec<Lean>,
    invoices: Vec<Lean>,
    payments: Vec<Lean>,
    credit_notes: u64,
    lettered: u64,
}

fn records(entries: &[Entry], opts: &FecOptions) -> Result<Records, Vec<RowError>> {
    let mut out = Records::default();
    let mut errors = Vec::new();
    // Customers, first seen first.
    let mut seen = HashSet::new();
    for e in entries {
        if seen.insert(e.customer.as_str()) {
            let r = vec![
                ("external_id", e.customer.clone()),
                ("name", e.name.clone()),
            ];
            out.customers.push((e.line, r));
        }
    }
    // Invoices: debits, by piece.
    struct Piece {
        line: u64,
        customer: String,
        issue: NaiveDate,
        due: Option<NaiveDate>,
        amount: Decimal,
        currency: Option<String>,
    }
    let mut pieces: BTreeMap<(u64, String), Piece> = BTreeMap::new();
    let mut by_number: HashMap<String, (u64, String)> = HashMap::new();
    let mut sales_journals = HashSet::new();
    for e in entries.iter().filter(|e| e.debit > Decimal::ZERO) {
        sales_journals.insert(e.journal.as_str());
        let number = e
            .piece
            .clone()
            .unwrap_or_else(|| format!("{}{}", e.journal, e.number));
        let issue = e.piece_date.unwrap_or(e.date);
        match by_number.get(&number) {
            Some(key) => {
                let p = pieces.get_mut(key).expect("a piece by its number");
                if p.customer != e.customer {
                    errors.push(RowError {
                        line: e.line,
                        column: Some("PieceRef".into()),
                        message: format!(
                            "piece {number} is on customer {} (line {}) and on {}",
                            p.customer, p.line, e.customer
                        ),
                    });
                    continue;
                }
                if p.currency != e.currency {
                    errors.push(RowError {
                        line: e.line,
                        column: Some("Idevise".into()),
                        message: format!("piece {number} is in two currencies"),
                    });
                    continue;
                }
                p.amount += e.debit;
                p.issue = p.issue.min(issue);
                p.due = p.due.or(e.due);
            }
            None => {
                let key = (e.line, number.clone());
                by_number.insert(number.clone(), key.clone());
                pieces.insert(
                    key,
                    Piece {
                        line: e.line,
                        customer: e.customer.clone(),
                        issue,
                        due: e.due,
                        amount: e.debit,
                        currency: e.currency.clone(),
                    },
                );
            }
        }
    }
    // Lettered debits: customer and letter → invoice numbers.
    let mut letters: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for e in entries.iter().filter(|e| e.debit > Decimal::ZERO) {
        if let Some(l) = &e.letter {
            let number = e
                .piece
                .clone()
                .unwrap_or_else(|| format!("{}{}", e.journal, e.number));
            let list = letters
                .entry((e.customer.as_str(), l.as_str()))
                .or_default();
            if !list.contains(&number) {
                list.push(number);
            }
        }
    }
    for ((_, number), p) in pieces {
        let due = p
            .due
            .unwrap_or(p.issue + Duration::days(opts.terms_days))
            .max(p.issue);
        let mut r = vec![
            ("number", number),
            ("customer", p.customer),
            ("issue_date", p.issue.to_string()),
            ("due_date", due.to_string()),
            ("amount", p.amount.to_string()),
        ];
        if let Some(c) = p.currency {
            r.push(("currency", c));
        }
        out.invoices.push((p.line, r));
    }
    // Payments and credit notes: credits, one per line, in the file's order.
    let mut ids: HashMap<String, u32> = HashMap::new();
    for e in entries.iter().filter(|e| e.credit > Decimal::ZERO) {
        let base = format!("{}{}", e.journal, e.number);
        let n = ids
            .entry(format!("{base}\u{1f}{}", e.customer))
            .or_insert(0);
        *n += 1;
        let id = if *n == 1 {
            format!("{base}-{}", e.customer)
        } else {
            format!("{base}-{}-{n}", e.customer)
        };
        let credit_note = sales_journals.contains(e.journal.as_str());
        let lettered = e
            .letter
            .as_deref()
            .and_then(|l| letters.get(&(e.customer.as_str(), l)));
        let reference = match lettered {
            Some(numbers) => {
                out.lettered += 1;
                numbers.join(" ")
            }
            None => [e.piece.as_deref(), e.label.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        };
        let kind = if credit_note {
            "credit_note"
        } else {
            "payment"
        };
        let mut r = vec![
            ("id", id),
            ("customer", e.customer.clone()),
            ("kind", kind.to_string()),
        ];
        if credit_note {
            out.credit_notes += 1;
        }
        r.push(("date", e.date.to_string()));
        r.push(("amount", e.credit.to_string()));
        if let Some(c) = &e.currency {
            r.push(("currency", c.clone()));
        }
        if !reference.is_empty() {
            r.push(("reference", reference.chars().take(2000).collect()));
        }
        out.payments.push((e.line, r));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The FEC column a ledger field of `kind` comes from, for error messages.
fn fec_column(kind: ImportKind, field: &str) -> String {
    match (kind, field) {
        (ImportKind::Customers, "external_id") | (_, "customer") => "CompAuxNum",
        (ImportKind::Customers, "name") => "CompAuxLib",
        (ImportKind::Customers, "segment") => "--segment",
        (ImportKind::Invoices, "number") => "PieceRef",
        (ImportKind::Invoices, "issue_date") => "PieceDate",
        (ImportKind::Invoices, "due_date") => "EcheanceDate",
        (ImportKind::Invoices, "amount") => "Debit",
        (ImportKind::Payments, "amount") => "Credit",
        (ImportKind::Payments, "date") => "EcritureDate",
        (ImportKind::Payments, "id") => "EcritureNum",
        (ImportKind::Payments, "reference") => "EcritureLib",
        (_, "currency") => "Idevise",
        (_, other) => other,
    }
    .to_string()
}

/// Imports a FEC into the ledger, in one transaction.
///
/// # Errors
/// The file cannot be read, lacks standard columns, or the database fails. Invalid
/// lines are in the report (nothing is then written).
pub async fn import_fec(
    store: &dyn Store,
    path: &Path,
    base: &ImportOptions,
    opts: &FecOptions,
) -> Result<FecReport, ImportError> {
    let file_label = path.display().to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Some(p) = &base.progress {
        p.start("fec", size);
    }
    let mut source = CsvSource::open_as(path, base.encoding, base.progress.clone(), Dialect::FEC)
        .map_err(|message| ImportError::File {
        file: file_label.clone(),
        message,
    })?;
    let signed = source.has_column("montant") && source.has_column("sens");
    let missing: Vec<String> = COLUMNS
        .iter()
        .filter(|c| !(signed && matches!(**c, "Debit" | "Credit")))
        .filter(|c| !source.has_column(&c.to_ascii_lowercase()))
        .map(|c| (*c).to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns {
            file: file_label,
            missing,
            found: source.headers.clone(),
        });
    }
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    let mut lines_read = 0u64;
    while let Some(next) = source.next_row() {
        lines_read += 1;
        match next {
            Ok(row) => match entry(&row, opts, signed) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {}
                Err(e) => rejected.push(RowError {
                    line: row.line,
                    column: e.column.map(|c| display(&c)),
                    message: e.message,
                }),
            },
            Err((line, message)) => rejected.push(RowError {
                line,
                column: None,
                message,
            }),
        }
    }
    if let Some(p) = &base.progress {
        p.finish();
    }
    let sha256 = source.finish();
    let customer_lines = entries.len() as u64;
    let mut report = FecReport {
        file: path.to_path_buf(),
        sha256: sha256.clone(),
        lines_read,
        customer_lines,
        customers: UpsertCounts::default(),
        invoices: UpsertCounts::default(),
        payments: UpsertCounts::default(),
        credit_notes: 0,
        lettered: 0,
        unapplied_payments: 0,
        rejected: Vec::new(),
        committed: false,
    };
    let recs = match records(&entries, opts) {
        Ok(r) if rejected.is_empty() => r,
        Ok(_) => {
            report.rejected = rejected;
            return Ok(report);
        }
        Err(more) => {
            rejected.extend(more);
            rejected.sort_by_key(|e| e.line);
            report.rejected = rejected;
            return Ok(report);
        }
    };
    // The lines are no longer needed: only the records are kept.
    drop(entries);
    report.credit_notes = recs.credit_notes;
    report.lettered = recs.lettered;

    let strict = ImportOptions {
        skip_invalid: false,
        progress: None,
        ..base.clone()
    };
    let mut tx = store.begin().await?;
    // Customers the ledger does not know yet: the FEC gives their name only.
    let id_of = |r: &Lean| {
        r.1.iter()
            .find(|(k, _)| *k == "external_id")
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let mut known = HashMap::new();
    for chunk in recs.customers.chunks(2000) {
        let ids: Vec<String> = chunk.iter().map(id_of).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        known.extend(tx.customer_ids(&refs).await?);
    }
    let new_customers: Vec<Lean> = recs
        .customers
        .into_iter()
        .filter(|r| !known.contains_key(id_of(r).as_str()))
        .map(|(line, mut r)| {
            if let Some(s) = &opts.segment {
                r.push(("segment", s.clone()));
            }
            (line, r)
        })
        .collect();
    report.customers.unchanged = known.len() as u64;
    let mut all_rejected = Vec::new();
    let mut unapplied = 0;
    for (kind, records) in [
        (ImportKind::Customers, &new_customers),
        (ImportKind::Invoices, &recs.invoices),
        (ImportKind::Payments, &recs.payments),
    ] {
        let mut imp = Importer::new(kind, tx, &strict);
        imp.source = path
            .file_name()
            .map_or_else(|| file_label.clone(), |n| n.to_string_lossy().into_owned());
        if kind == ImportKind::Customers && opts.segment.is_none() && !records.is_empty() {
            for r in records.iter().take(super::MAX_ERRORS_KEPT) {
                imp.reject(
                    r.0,
                    Some("--segment".into()),
                    format!(
                        "customer {} is new to the ledger: name the segment new customers get (--segment), or import the customers first",
                        id_of(r)
                    ),
                );
            }
        } else {
            for chunk in records.chunks(2000) {
                imp.feed(&named(chunk)).await?;
                if imp.rejected_total > 0 {
                    break;
                }
            }
        }
        let written = imp.written;
        unapplied += imp.unapplied;
        all_rejected.extend(imp.rejected.iter().map(|e| RowError {
            line: e.line,
            column: e.column.as_deref().map(|c| fec_column(kind, c)),
            message: e.message.clone(),
        }));
        let failed = imp.rejected_total > 0;
        tx = imp.tx;
        match kind {
            ImportKind::Customers => report.customers.inserted = written.inserted,
            ImportKind::Invoices => report.invoices = written,
            _ => report.payments = written,
        }
        if failed {
            break;
        }
    }
    if !all_rejected.is_empty() {
        tx.rollback().await?;
        all_rejected.sort_by_key(|e| e.line);
        report.rejected = all_rejected;
        report.customers = UpsertCounts::default();
        report.invoices = UpsertCounts::default();
        report.payments = UpsertCounts::default();
        return Ok(report);
    }
    let record = ImportRecord {
        kind: "fec".to_string(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256,
        rows_read: lines_read,
        rows_written: customer_lines,
        rows_rejected: 0,
    };
    tx.record_import(&record, chrono::Utc::now()).await?;
    tx.commit().await?;
    if report.invoices.inserted + report.payments.inserted + report.customers.inserted > 0 {
        store.refresh_statistics().await?;
    }
    report.unapplied_payments = unapplied;
    report.committed = true;
    tracing::info!(
        lines_read,
        customer_lines,
        invoices = report.invoices.inserted + report.invoices.updated,
        payments = report.payments.inserted + report.payments.updated,
        "FEC import finished"
    );
    Ok(report)
}

/// A ledger written as a FEC: what `relance sample --fec` makes of its CSV files.
pub mod write {
    use super::*;
    use std::io::Write;

    /// An invoice as the FEC writes it.
    pub struct Invoice<'a> {
        pub number: &'a str,
        pub customer: &'a str,
        pub name: &'a str,
        pub issue: NaiveDate,
        pub due: NaiveDate,
        pub amount: Decimal,
    }

    /// A payment or a credit note as the FEC writes it.
    pub struct Credit<'a> {
        pub id: &'a str,
        pub customer: &'a str,
        pub name: &'a str,
        pub date: NaiveDate,
        pub amount: Decimal,
        pub credit_note: bool,
        pub label: &'a str,
        /// The invoice it is lettered with, if any.
        pub letter_with: Option<&'a str>,
    }

    fn fr(a: Decimal) -> String {
        format!("{:.2}", a).replace('.', ",")
    }

    fn d(date: NaiveDate) -> String {
        date.format("%Y%m%d").to_string()
    }

    /// Writes the entries: each invoice in the sales journal `VT` (customer 411 debit,
    /// sales 706 and VAT 44571 credit at 20 %), each payment in the bank journal `BQ`
    /// (bank 512 debit, customer credit), each credit note in `VT`; with an
    /// `EcheanceDate` column, `|` separated. Lettering codes join a credit and the
    /// invoice it is lettered with.
    ///
    /// # Errors
    /// I/O errors.
    pub fn fec(
        out: &mut impl Write,
        invoices: &[Invoice<'_>],
        credits: &[Credit<'_>],
    ) -> std::io::Result<()> {
        writeln!(out, "{}|EcheanceDate", COLUMNS.join("|"))?;
        let mut letters: HashMap<&str, String> = HashMap::new();
        for c in credits {
            if let Some(n) = c.letter_with {
                let next = letter(letters.len());
                letters.entry(n).or_insert(next);
            }
        }
        let line = |out: &mut dyn Write,
                    journal: &str,
                    num: u64,
                    date: NaiveDate,
                    account: (&str, &str),
                    aux: (&str, &str),
                    piece: (&str, NaiveDate),
                    label: &str,
                    (debit, credit): (Decimal, Decimal),
                    letter: Option<&str>,
                    due: Option<NaiveDate>| {
            writeln!(
                out,
                "{journal}|{}|{journal}{num:07}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|||{}",
                if journal == "VT" { "Ventes" } else { "Banque" },
                d(date),
                account.0,
                account.1,
                aux.0,
                aux.1,
                piece.0,
                d(piece.1),
                label.replace(['|', '\t', '\n'], " "),
                fr(debit),
                fr(credit),
                letter.unwrap_or(""),
                letter.map(|_| d(date)).unwrap_or_default(),
                d(date),
                due.map(d).unwrap_or_default(),
            )
        };
        let zero = Decimal::ZERO;
        let mut num = 0;
        for i in invoices {
            num += 1;
            let net = (i.amount / Decimal::new(12, 1)).round_dp(2);
            let vat = i.amount - net;
            let label = format!("Facture {} {}", i.number, i.name);
            let letter = letters.get(i.number).map(String::as_str);
            line(
                out,
                "VT",
                num,
                i.issue,
                ("41100000", "Clients"),
                (i.customer, i.name),
                (i.number, i.issue),
                &label,
                (i.amount, zero),
                letter,
                Some(i.due),
            )?;
            line(
                out,
                "VT",
                num,
                i.issue,
                ("70600000", "Prestations de services"),
                ("", ""),
                (i.number, i.issue),
                &label,
                (zero, net),
                None,
                None,
            )?;
            line(
                out,
                "VT",
                num,
                i.issue,
                ("44571000", "TVA collectée"),
                ("", ""),
                (i.number, i.issue),
                &label,
                (zero, vat),
                None,
                None,
            )?;
        }
        let mut bank = 0;
        for c in credits {
            let letter = c
                .letter_with
                .and_then(|n| letters.get(n))
                .map(String::as_str);
            // A credit note in the sales journal against sales, a payment in the bank
            // journal against the bank; the customer's account credited either way.
            let (journal, n, account) = if c.credit_note {
                num += 1;
                ("VT", num, ("70600000", "Prestations de services"))
            } else {
                bank += 1;
                ("BQ", bank, ("51200000", "Banque"))
            };
            let piece = (c.id, c.date);
            line(
                out,
                journal,
                n,
                c.date,
                account,
                ("", ""),
                piece,
                c.label,
                (c.amount, zero),
                None,
                None,
            )?;
            line(
                out,
                journal,
                n,
                c.date,
                ("41100000", "Clients"),
                (c.customer, c.name),
                piece,
                c.label,
                (zero, c.amount),
                letter,
                None,
            )?;
        }
        Ok(())
    }

    /// Lettering codes: A, B, …, Z, AA, AB, …
    pub(super) fn letter(n: usize) -> String {
        let mut n = n + 1;
        let mut s = Vec::new();
        while n > 0 {
            n -= 1;
            s.push(b'A' + (n % 26) as u8);
            n /= 26;
        }
        s.reverse();
        String::from_utf8(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_invoices_and_lettered_payments() {
        let e =
            |line, journal: &str, debit: i64, credit: i64, piece: &str, letter: Option<&str>| {
                Entry {
                    line,
                    journal: journal.into(),
                    number: line.to_string(),
                    date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
                    customer: "C1".into(),
                    name: "Un".into(),
                    piece: Some(piece.into()),
                    piece_date: None,
                    label: Some("VIR".into()),
                    debit: Decimal::new(debit, 2),
                    credit: Decimal::new(credit, 2),
                    letter: letter.map(str::to_string),
                    due: None,
                    currency: None,
                }
            };
        let entries = [
            e(2, "VT", 10_000, 0, "F1", Some("AA")),
            e(3, "VT", 5_000, 0, "F2", Some("AA")),
            e(4, "VT", 2_500, 0, "F2", Some("AA")),
            e(5, "BQ", 0, 17_500, "R1", Some("AA")),
            e(6, "VT", 0, 1_000, "AV1", None),
        ];
        let r = records(&entries, &FecOptions::default()).unwrap();
        assert_eq!(r.customers.len(), 1);
        assert_eq!(r.invoices.len(), 2);
        let field = |r: &Lean, k: &str| r.1.iter().find(|(f, _)| *f == k).map(|(_, v)| v.clone());
        assert_eq!(field(&r.invoices[1], "amount").as_deref(), Some("75.00"));
        assert_eq!(
            field(&r.invoices[1], "due_date").as_deref(),
            Some("2026-03-31")
        );
        assert_eq!(field(&r.payments[0], "reference").as_deref(), Some("F1 F2"));
        assert_eq!(field(&r.payments[0], "kind").as_deref(), Some("payment"));
        assert_eq!(
            field(&r.payments[1], "kind").as_deref(),
            Some("credit_note")
        );
        assert_eq!(r.lettered, 1);
        assert_eq!(write::letter(0), "A");
        assert_eq!(write::letter(26), "AA");
    }
}
