//! CSV imports of customers, invoices and payments into the ledger.
//!
//! A file is imported in one transaction: by default any bad row rejects the whole
//! file (nothing is written) and every bad row is reported with its line, column and
//! reason; with `skip_invalid` the good rows are written and the bad ones reported.
//! Imports are upserts keyed by the ERP's identifiers, so importing a file twice
//! changes nothing the second time.

pub mod camt;
mod csv_source;
pub mod einvoice;
pub mod fec;
mod keys;
mod rows;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use csv_source::{
    parse_bool, split_list, CsvSource, Dialect, Encoding, FieldError, Progress, Row,
};

use crate::domain::{CountryCode, Currency, Customer, InvoiceRecord, Locale, Payment};
use crate::store::{ImportRecord, LedgerTx, PaymentStatus, Store, StoreError, UpsertCounts};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportKind {
    Customers,
    Invoices,
    Payments,
    /// Invoices disputed (or resolved) by the customer.
    Disputes,
    /// Promises to pay.
    Promises,
    /// Actions sent before relance kept the log (another tool's dunning history).
    History,
}

impl ImportKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Invoices => "invoices",
            ImportKind::Payments => "payments",
            ImportKind::Disputes => "disputes",
            ImportKind::Promises => "promises",
            ImportKind::History => "history",
        }
    }

    /// Columns that must be in the header.
    pub fn required_columns(&self) -> &'static [&'static str] {
        match self {
            ImportKind::Customers => &["external_id", "name", "segment"],
            ImportKind::Invoices => &["number", "customer", "issue_date", "due_date", "amount"],
            ImportKind::Payments => &["id", "customer", "date", "amount"],
            ImportKind::Disputes => &["invoice", "reason"],
            ImportKind::Promises => &["customer", "promised_date", "amount"],
            ImportKind::History => &["customer", "kind", "step", "sent_on", "invoices"],
        }
    }

    /// Every column relance reads.
    pub fn known_columns(&self) -> &'static [&'static str] {
        match self {
            ImportKind::Customers => &[
                "external_id",
                "name",
                "legal_name",
                "siren",
                "siret",
                "vat_number",
                "country",
                "segment",
                "locale",
                "emails",
                "phones",
                "address_line1",
                "address_line2",
                "postal_code",
                "city",
                "currency",
                "credit_limit",
                "insured",
                "insurer_policy",
                "insurer_buyer_ref",
                "cover_amount",
                "collector",
                "tags",
            ],
            ImportKind::Invoices => &[
                "number",
                "customer",
                "issue_date",
                "due_date",
                "currency",
                "amount",
                "open_amount",
                "status",
            ],
            ImportKind::Payments => &[
                "id",
                "customer",
                "kind",
                "date",
                "currency",
                "amount",
                "reference",
            ],
            ImportKind::Disputes => &["invoice", "reason", "status", "opened_on"],
            ImportKind::Promises => &[
                "customer",
                "promised_date",
                "amount",
                "invoices",
                "note",
                "made_on",
            ],
            ImportKind::History => &[
                "customer", "kind", "step", "sent_on", "invoices", "amount", "variant",
            ],
        }
    }
}

/// Defaults for values a file leaves out, and how to read it.
#[derive(Clone)]
pub struct ImportOptions {
    pub skip_invalid: bool,
    pub encoding: Encoding,
    pub default_currency: Currency,
    pub default_country: CountryCode,
    pub default_locale: Locale,
    /// Told how far the reading is (none by default).
    pub progress: Option<std::sync::Arc<dyn Progress>>,
    /// Let an invoice imported again with another customer move to it, releasing the
    /// payment allocations the previous customer had on it. Without it such a row is
    /// an error on its `customer` column.
    pub allow_customer_change: bool,
    /// The segments, insurer policies and collectors rows may name (none checked
    /// when absent).
    pub references: Option<std::sync::Arc<References>>,
}

/// The names the configuration knows, which a customer row must use: a misspelt
/// segment would leave the customer out of every rule, a misspelt policy out of every
/// handover. Each list is checked when the configuration has one (a ledger kept
/// without segments, insurers or a list of collectors accepts any name there).
#[derive(Debug, Clone, Default)]
pub struct References {
    pub segments: Option<std::collections::BTreeSet<String>>,
    pub insurer_policies: Option<std::collections::BTreeSet<String>>,
    pub collectors: Option<std::collections::BTreeSet<String>>,
}

impl References {
    pub fn of(config: &crate::config::Config) -> References {
        let listed =
            |names: std::collections::BTreeSet<String>| (!names.is_empty()).then_some(names);
        References {
            segments: listed(config.segments.keys().cloned().collect()),
            insurer_policies: listed(config.insurers.keys().cloned().collect()),
            collectors: config.collectors.clone().and_then(listed),
        }
    }

    /// The error for `value` in `column` when it is not one of `known`.
    pub(crate) fn check(
        column: &str,
        what: &str,
        value: &str,
        known: &std::collections::BTreeSet<String>,
        configured_in: &str,
    ) -> Result<(), csv_source::FieldError> {
        if known.contains(value) {
            return Ok(());
        }
        let listed: Vec<&str> = known.iter().map(String::as_str).collect();
        let nearest = crate::domain::nearest(value, listed.iter().copied())
            .map_or(String::new(), |n| format!("; did you mean '{n}'?"));
        Err(csv_source::FieldError::new(
            column,
            format!(
                "unknown {what} '{value}': the {configured_in} are {}{nearest}",
                listed.join(", ")
            ),
        ))
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            skip_invalid: false,
            encoding: Encoding::Auto,
            default_currency: Currency::EUR,
            default_country: CountryCode::FR,
            default_locale: Locale::Fr,
            progress: None,
            allow_customer_change: false,
            references: None,
        }
    }
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("skip_invalid", &self.skip_invalid)
            .field("encoding", &self.encoding)
            .field("default_currency", &self.default_currency)
            .field("default_country", &self.default_country)
            .field("default_locale", &self.default_locale)
            .field("progress", &self.progress.is_some())
            .field("allow_customer_change", &self.allow_customer_change)
            .finish()
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

/// An invoice moved to another customer (with `allow_customer_change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerChange {
    /// The row's line (CSV) or the item's index (API).
    pub line: u64,
    pub invoice: String,
    pub from: String,
    pub to: String,
    /// Payment allocations of the previous customer undone on the invoice: the amounts
    /// went back to those payments as unapplied credit.
    pub released_allocations: u64,
    /// Their total, in the invoice's currency.
    pub released_amount: rust_decimal::Decimal,
}

impl CustomerChange {
    /// The entry recorded in the ledger's import history for this move.
    fn history_entry(&self, source: &str, sha256: &str) -> ImportRecord {
        ImportRecord {
            kind: "invoice_customer_change".to_string(),
            file_name: format!(
                "{source}: invoice {} moved from customer {} to {}; {} payment allocation(s) released ({})",
                self.invoice, self.from, self.to, self.released_allocations, self.released_amount
            ),
            sha256: sha256.to_string(),
            rows_read: 1,
            rows_written: 1,
            rows_rejected: 0,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub kind: ImportKind,
    pub sha256: String,
    pub rows_read: u64,
    /// Rows applied to the ledger (0 when the file was rejected).
    pub written: UpsertCounts,
    pub rejected: Vec<RowError>,
    /// Whether the rows were committed.
    pub committed: bool,
    /// Header columns relance does not read.
    pub ignored_columns: Vec<String>,
    /// Payments whose amount was not fully allocated (unapplied credit).
    pub unapplied_payments: u64,
    /// Invoices moved to another customer (only with `--allow-customer-change`).
    pub customer_changes: Vec<CustomerChange>,
}

impl ImportReport {
    /// `file:line: column 'x': message` for one rejected row.
    pub fn format_error(&self, e: &RowError) -> String {
        let file = self.file_label();
        match &e.column {
            Some(c) => format!("{file}:{}: column '{}': {}", e.line, c, e.message),
            None => format!("{file}:{}: {}", e.line, e.message),
        }
    }

    /// The file's name as printed: control characters escaped, one line.
    fn file_label(&self) -> String {
        crate::telemetry::escape_control(&self.file.display().to_string()).into_owned()
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.written;
        if self.committed {
            write!(
                f,
                "{}: {} rows read, {} new, {} updated, {} unchanged",
                self.file_label(),
                self.rows_read,
                w.inserted,
                w.updated,
                w.unchanged
            )?;
            if !self.rejected.is_empty() {
                write!(f, ", {} rejected", self.rejected.len())?;
            }
            if self.unapplied_payments > 0 {
                write!(
                    f,
                    " ({} payment(s) left unapplied credit)",
                    self.unapplied_payments
                )?;
            }
            for c in &self.customer_changes {
                write!(
                    f,
                    "\n  invoice {} moved from customer {} to {}: {} payment allocation(s) released ({})",
                    c.invoice, c.from, c.to, c.released_allocations, c.released_amount
                )?;
            }
        } else {
            write!(
                f,
                "{}: rejected, nothing written: {} of {} rows are invalid (use --skip-invalid to import the others)",
                self.file_label(),
                self.rejected.len(),
                self.rows_read
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read as CSV at all.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}:1: missing required column(s): {} (found: {})", .missing.join(", "), .found.join(", "))]
    MissingColumns {
        file: String,
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows are applied to the ledger in batches of this size.
const BATCH: usize = 2000;

/// Customer ids kept from one batch to the next (a batch looks up the others).
const CUSTOMER_IDS_KEPT: usize = 100_000;

/// The instant a day given in a file stands for: noon UTC, the same day in every time
/// zone of Europe and the Americas.
fn day_instant(day: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc()
}

/// Most row errors kept in a report; beyond it they are counted, not stored.
const MAX_ERRORS_KEPT: usize = 10_000;

/// A parsed row waiting to be written.
enum Parsed {
    Customer(Box<Customer>),
    Invoice(InvoiceRecord),
    Payment(Payment),
    Dispute(rows::DisputeRow),
    Promise(rows::PromiseRow),
    History(rows::HistoryRow),
}

impl Parsed {
    fn customer_key(&self) -> Option<&str> {
        match self {
            Parsed::Customer(_) | Parsed::Dispute(_) => None,
            Parsed::Invoice(i) => Some(&i.customer),
            Parsed::Payment(p) => Some(&p.customer),
            Parsed::Promise(p) => Some(&p.promise.customer),
            Parsed::History(h) => Some(&h.customer),
        }
    }

    /// What identifies the row in its file: a second row with the same key is refused.
    fn key(&self) -> String {
        match self {
            Parsed::Customer(c) => c.external_id.clone(),
            Parsed::Invoice(i) => i.number.clone(),
            Parsed::Payment(p) => p.external_id.clone(),
            Parsed::Dispute(d) => d.invoice.clone(),
            Parsed::Promise(p) => format!(
                "{} {} {} {}",
                p.promise.customer,
                p.promise.promised_date,
                p.promise.amount,
                p.promise.invoices.join("|")
            ),
            Parsed::History(h) => format!(
                "{} {} {} {} {}",
                h.customer,
                h.kind,
                h.step,
                h.sent_on,
                h.invoices.join("|")
            ),
        }
    }
}

struct Importer<'a> {
    kind: ImportKind,
    tx: Box<dyn LedgerTx>,
    opts: &'a ImportOptions,
    /// Customer external id → internal id, filled as batches need them.
    customer_ids: HashMap<String, i64>,
    written: UpsertCounts,
    rejected: Vec<RowError>,
    rejected_total: u64,
    unapplied: u64,
    customer_changes: Vec<CustomerChange>,
    /// The file (or request) the rows come from, kept with imported history.
    source: String,
    /// The keys of the rows accepted so far (a second row with one is refused).
    keys: keys::SeenKeys,
    /// Where a repeated key was first met: ("in the file", "on line") or for a batch
    /// of records ("in the batch", "at item").
    place: (&'static str, &'static str),
}

impl<'a> Importer<'a> {
    fn new(kind: ImportKind, tx: Box<dyn LedgerTx>, opts: &'a ImportOptions) -> Importer<'a> {
        Importer {
            kind,
            tx,
            opts,
            customer_ids: HashMap::new(),
            written: UpsertCounts::default(),
            rejected: Vec::new(),
            rejected_total: 0,
            unapplied: 0,
            customer_changes: Vec::new(),
            source: kind.as_str().to_string(),
            keys: keys::SeenKeys::new(keys::IN_MEMORY),
            place: ("in the file", "on line"),
        }
    }

    fn reject(&mut self, line: u64, column: Option<String>, message: String) {
        self.rejected_total += 1;
        if self.rejected.len() < MAX_ERRORS_KEPT {
            self.rejected.push(RowError {
                line,
                column,
                message,
            });
        }
    }

    /// Parses one row and queues it, rejecting a key seen before; writes a full batch.
    async fn accept(
        &mut self,
        row: &Row<'_>,
        batch: &mut Vec<(u64, Parsed)>,
    ) -> Result<(), ImportError> {
        let line = row.line;
        let parsed = match self.kind {
            ImportKind::Customers => {
                rows::customer(row, self.opts).map(|c| Parsed::Customer(Box::new(c)))
            }
            ImportKind::Invoices => rows::invoice(row, self.opts).map(Parsed::Invoice),
            ImportKind::Payments => rows::payment(row, self.opts).map(Parsed::Payment),
            ImportKind::Disputes => rows::dispute(row).map(Parsed::Dispute),
            ImportKind::Promises => rows::promise(row).map(Parsed::Promise),
            ImportKind::History => rows::history(row).map(Parsed::History),
        };
        let p = match parsed {
            Err(e) => {
                self.reject(line, e.column, e.message);
                return Ok(());
            }
            Ok(p) => p,
        };
        let key = p.key();
        if let Some(first) = self.keys.check(&key, line) {
            self.reject_repeated(line, &key, first);
            return Ok(());
        }
        batch.push((line, p));
        if batch.len() >= BATCH {
            self.flush(batch).await?;
        }
        Ok(())
    }

    fn reject_repeated(&mut self, line: u64, key: &str, first: u64) {
        let (container, position) = self.place;
        let col = self.kind.required_columns()[0];
        let message = format!("'{key}' appears twice {container} (first {position} {first})");
        self.reject(line, Some(col.into()), message);
    }

    /// Parses, checks and writes records given as named fields (`line` is where each
    /// comes from, for the errors), rejecting unknown fields.
    async fn feed(
        &mut self,
        records: &[(u64, HashMap<String, String>)],
    ) -> Result<(), ImportError> {
        let kind = self.kind;
        self.place = ("in the batch", "at item");
        let mut batch: Vec<(u64, Parsed)> = Vec::with_capacity(BATCH.min(records.len()));
        for (line, fields) in records {
            let line = *line;
            let mut unknown: Vec<&String> = fields
                .keys()
                .filter(|k| !kind.known_columns().contains(&k.as_str()))
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                for k in unknown {
                    self.reject(
                        line,
                        Some(k.clone()),
                        format!(
                            "unknown field (expected one of: {})",
                            kind.known_columns().join(", ")
                        ),
                    );
                }
                continue;
            }
            let row = Row::from_fields(line, fields);
            self.accept(&row, &mut batch).await?;
        }
        self.flush(&mut batch).await
    }

    /// Whether rows should still be written (not once the file is known to be rejected).
    fn writing(&self) -> bool {
        self.opts.skip_invalid || self.rejected_total == 0
    }

    async fn flush(&mut self, batch: &mut Vec<(u64, Parsed)>) -> Result<(), ImportError> {
        // Keys an earlier batch had (once the keys met are kept on disk).
        let repeated = self.keys.settle().await?;
        if !repeated.is_empty() {
            let rows = std::mem::take(batch);
            for (line, p) in rows {
                match repeated.get(&line) {
                    Some(&first) => self.reject_repeated(line, &p.key(), first),
                    None => batch.push((line, p)),
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        // The customer ids met are kept for the next batches, up to a bound: a file
        // of invoices may name every customer of a large ledger.
        if self.customer_ids.len() > CUSTOMER_IDS_KEPT {
            self.customer_ids = HashMap::new();
        }
        // Resolve the customers this batch refers to.
        let missing: Vec<&str> = {
            let mut seen = std::collections::HashSet::new();
            batch
                .iter()
                .filter_map(|(_, p)| p.customer_key())
                .filter(|k| !self.customer_ids.contains_key(*k) && seen.insert(*k))
                .collect()
        };
        if !missing.is_empty() {
            let found = self.tx.customer_ids(&missing).await?;
            self.customer_ids.extend(found);
        }
        let rows = std::mem::take(batch);
        let mut customers = Vec::new();
        let mut invoices = Vec::new();
        let mut payments = Vec::new();
        let mut disputes = Vec::new();
        let mut promises = Vec::new();
        let mut history = Vec::new();
        for (line, parsed) in rows {
            if let Some(key) = parsed.customer_key() {
                if !self.customer_ids.contains_key(key) {
                    self.reject(line, Some("customer".into()), format!("unknown customer '{key}' (import it with `relance import customers` first)"));
                    continue;
                }
            }
            match parsed {
                Parsed::Customer(c) => customers.push(*c),
                Parsed::Invoice(i) => invoices.push((line, self.customer_ids[&i.customer], i)),
                Parsed::Payment(p) => payments.push((self.customer_ids[&p.customer], p)),
                Parsed::Dispute(d) => disputes.push((line, d)),
                Parsed::Promise(p) => promises.push((line, p)),
                Parsed::History(h) => history.push((line, h)),
            }
        }
        let moves = self.customer_changes_of(&mut invoices).await?;
        let disputes = self.checked_disputes(disputes).await?;
        let promises = self.checked_promises(promises).await?;
        let history = self.checked_history(history).await?;
        if !self.writing() {
            return Ok(());
        }
        for (d, current) in disputes {
            let wanted = d.reason.as_deref();
            if current.as_deref() == wanted {
                self.written.unchanged += 1;
                continue;
            }
            let opened_at = d.opened_on.map_or_else(chrono::Utc::now, day_instant);
            let dispute = d
                .reason
                .map(|reason| crate::domain::Dispute { reason, opened_at });
            self.tx
                .set_invoice_dispute(&d.invoice, dispute.as_ref())
                .await?;
            self.written.updated += 1;
        }
        for p in promises {
            if self.tx.promise_recorded(&p.promise).await? {
                self.written.unchanged += 1;
            } else {
                let made = p.made_on.map_or_else(chrono::Utc::now, day_instant);
                self.tx.add_promise(&p.promise, made).await?;
                self.written.inserted += 1;
            }
        }
        for (line, h) in history {
            let action = crate::store::PastAction {
                customer_id: self.customer_ids[&h.customer],
                kind: h.kind,
                step: h.step,
                invoices: h.invoices,
                amount: h.amount,
                sent_at: day_instant(h.sent_on),
                source: self.source.clone(),
                variant: h.variant,
            };
            match self.tx.record_past_action(&action).await {
                Ok(true) => self.written.inserted += 1,
                Ok(false) => self.written.unchanged += 1,
                Err(StoreError::Invalid(m)) => self.reject(line, Some("invoices".into()), m),
                Err(e) => return Err(e.into()),
            }
        }
        if !payments.is_empty() {
            for outcome in self.tx.record_payments(&payments).await? {
                match outcome.status {
                    PaymentStatus::Inserted => self.written.inserted += 1,
                    PaymentStatus::Updated => self.written.updated += 1,
                    PaymentStatus::Unchanged => self.written.unchanged += 1,
                }
                if outcome.unapplied > rust_decimal::Decimal::ZERO {
                    self.unapplied += 1;
                }
            }
        }
        if !customers.is_empty() {
            self.written += self.tx.upsert_customers(&customers).await?;
            // Invoices in a later file may refer to these.
            for c in customers {
                self.customer_ids.remove(&c.external_id);
            }
        }
        for mut m in moves {
            let (n, minor) = self.tx.release_invoice_allocations(&m.invoice).await?;
            m.released_allocations = n;
            m.released_amount = invoices
                .iter()
                .find(|(_, _, i)| i.number == m.invoice)
                .map_or(rust_decimal::Decimal::ZERO, |(_, _, i)| {
                    i.currency.from_minor(minor)
                });
            tracing::info!(invoice = %m.invoice, from = %m.from, to = %m.to, released_allocations = n, "invoice moved to another customer");
            self.customer_changes.push(m);
        }
        if !invoices.is_empty() {
            let batch: Vec<(i64, InvoiceRecord)> =
                invoices.into_iter().map(|(_, cid, i)| (cid, i)).collect();
            self.written += self.tx.upsert_invoices(&batch).await?;
        }
        Ok(())
    }

    /// Disputes on invoices that exist, each with the invoice's current dispute reason;
    /// the others are rejected on their `invoice` column.
    async fn checked_disputes(
        &mut self,
        rows: Vec<(u64, rows::DisputeRow)>,
    ) -> Result<Vec<(rows::DisputeRow, Option<String>)>, ImportError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let numbers: Vec<&str> = rows.iter().map(|(_, d)| d.invoice.as_str()).collect();
        let current = self.tx.invoice_disputes(&numbers).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (line, d) in rows {
            match current.get(&d.invoice) {
                Some(now) => {
                    let now = now.clone();
                    out.push((d, now));
                }
                None => self.reject(
                    line,
                    Some("invoice".into()),
                    format!(
                        "unknown invoice '{}' (import it with `relance import invoices` first)",
                        d.invoice
                    ),
                ),
            }
        }
        Ok(out)
    }

    /// Promises whose invoices exist and belong to their customer; the others are
    /// rejected on their `invoices` column.
    async fn checked_promises(
        &mut self,
        rows: Vec<(u64, rows::PromiseRow)>,
    ) -> Result<Vec<rows::PromiseRow>, ImportError> {
        let numbers: Vec<&str> = rows
            .iter()
            .flat_map(|(_, p)| p.promise.invoices.iter().map(String::as_str))
            .collect();
        let owners = if numbers.is_empty() {
            HashMap::new()
        } else {
            self.tx.invoice_customers(&numbers).await?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (line, p) in rows {
            let wrong = p.promise.invoices.iter().find_map(|n| match owners.get(n) {
                None => Some(format!("unknown invoice '{n}'")),
                Some(c) if *c != p.promise.customer => {
                    Some(format!("invoice '{n}' is not {}'s", p.promise.customer))
                }
                Some(_) => None,
            });
            match wrong {
                Some(message) => self.reject(line, Some("invoices".into()), message),
                None => out.push(p),
            }
        }
        Ok(out)
    }

    /// Past actions whose invoices exist and belong to their customer; the others are
    /// rejected on their `invoices` column.
    async fn checked_history(
        &mut self,
        rows: Vec<(u64, rows::HistoryRow)>,
    ) -> Result<Vec<(u64, rows::HistoryRow)>, ImportError> {
        let numbers: Vec<&str> = rows
            .iter()
            .flat_map(|(_, h)| h.invoices.iter().map(String::as_str))
            .collect();
        let owners = if numbers.is_empty() {
            HashMap::new()
        } else {
            self.tx.invoice_customers(&numbers).await?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (line, h) in rows {
            let wrong = h.invoices.iter().find_map(|n| match owners.get(n) {
                None => Some(format!("unknown invoice '{n}'")),
                Some(c) if *c != h.customer => {
                    Some(format!("invoice '{n}' is not {}'s", h.customer))
                }
                Some(_) => None,
            });
            match wrong {
                Some(message) => self.reject(line, Some("invoices".into()), message),
                None => out.push((line, h)),
            }
        }
        Ok(out)
    }

    /// Invoices of the batch that already belong to another customer: rejected on their
    /// `customer` column (and taken out of the batch), or, with `allow_customer_change`,
    /// returned as the moves to make.
    async fn customer_changes_of(
        &mut self,
        invoices: &mut Vec<(u64, i64, InvoiceRecord)>,
    ) -> Result<Vec<CustomerChange>, ImportError> {
        if invoices.is_empty() {
            return Ok(Vec::new());
        }
        let current = {
            let numbers: Vec<&str> = invoices.iter().map(|(_, _, i)| i.number.as_str()).collect();
            self.tx.invoice_customers(&numbers).await?
        };
        let mut moves = Vec::new();
        let mut refused = Vec::new();
        for (line, _, inv) in invoices.iter() {
            match current.get(&inv.number) {
                Some(from) if *from != inv.customer => {
                    if self.opts.allow_customer_change {
                        moves.push(CustomerChange {
                            line: *line,
                            invoice: inv.number.clone(),
                            from: from.clone(),
                            to: inv.customer.clone(),
                            released_allocations: 0,
                            released_amount: rust_decimal::Decimal::ZERO,
                        });
                    } else {
                        refused.push((
                            *line,
                            inv.number.clone(),
                            from.clone(),
                            inv.customer.clone(),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (line, number, from, to) in refused {
            self.reject(
                line,
                Some("customer".into()),
                format!(
                    "invoice '{number}' belongs to customer '{from}', not '{to}'; moving an invoice to another customer releases the payment allocations on it and must be asked for (--allow-customer-change, or allow_customer_change=true in the API)"
                ),
            );
            invoices.retain(|(l, _, _)| *l != line);
        }
        Ok(moves)
    }
}

/// Writes `records` of `kind` within `tx`, all or none (whatever `base.skip_invalid`
/// says): the transaction back with what was written (and how many payments left
/// unapplied credit), or, the transaction rolled back, the first problem as
/// `column: message`.
pub(crate) async fn write_all(
    tx: Box<dyn LedgerTx>,
    kind: ImportKind,
    records: &[(u64, HashMap<String, String>)],
    base: &ImportOptions,
    source: &str,
) -> Result<Result<(Box<dyn LedgerTx>, UpsertCounts, u64), String>, ImportError> {
    let strict = ImportOptions {
        skip_invalid: false,
        progress: None,
        ..base.clone()
    };
    let mut imp = Importer::new(kind, tx, &strict);
    imp.source = source.to_string();
    imp.feed(records).await?;
    if let Some(e) = imp.rejected.first() {
        let message = match &e.column {
            Some(c) => format!("{c}: {}", e.message),
            None => e.message.clone(),
        };
        imp.tx.rollback().await?;
        return Ok(Err(message));
    }
    Ok(Ok((imp.tx, imp.written, imp.unapplied)))
}

/// Imports one CSV file into the ledger.
///
/// # Errors
/// When the file cannot be read as CSV, lacks required columns, or the database fails.
/// Invalid rows are not errors: they are in the report, and the report says whether
/// anything was committed.
#[tracing::instrument(skip_all, fields(kind = kind.as_str(), file = %path.display()))]
pub async fn import_file(
    store: &dyn Store,
    kind: ImportKind,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let file_label = path.display().to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        p.start(kind.as_str(), size);
    }
    let mut source = CsvSource::open(path, opts.encoding, progress.clone()).map_err(|message| {
        ImportError::File {
            file: file_label.clone(),
            message,
        }
    })?;
    let missing: Vec<String> = kind
        .required_columns()
        .iter()
        .filter(|c| !source.has_column(c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns {
            file: file_label,
            missing,
            found: source.headers.clone(),
        });
    }
    let ignored_columns: Vec<String> = source
        .headers
        .iter()
        .filter(|h| !kind.known_columns().contains(&h.as_str()))
        .cloned()
        .collect();
    for c in &ignored_columns {
        tracing::warn!(column = %c, "column not read by relance, ignored");
    }
    tracing::debug!(encoding = ?source.encoding, delimiter = %(source.delimiter as char).escape_default(), "reading");

    let mut imp = Importer::new(kind, store.begin().await?, opts);
    imp.source = path
        .file_name()
        .map_or_else(|| file_label.clone(), |n| n.to_string_lossy().into_owned());
    let mut batch: Vec<(u64, Parsed)> = Vec::with_capacity(BATCH);
    let mut rows_read = 0u64;
    while let Some(next) = source.next_row() {
        rows_read += 1;
        let row = match next {
            Ok(r) => r,
            Err((line, message)) => {
                imp.reject(line, None, message);
                continue;
            }
        };
        imp.accept(&row, &mut batch).await?;
    }
    imp.flush(&mut batch).await?;
    if let Some(p) = &progress {
        p.finish();
    }
    let sha256 = source.finish();

    let committed = imp.writing();
    let Importer {
        mut tx,
        written,
        mut rejected,
        rejected_total,
        unapplied,
        customer_changes,
        ..
    } = imp;
    // Rows are checked in phases (each row, then its references by batch): the
    // report gives them in file order.
    rejected.sort_by_key(|e| e.line);
    if committed {
        let record = ImportRecord {
            kind: kind.as_str().to_string(),
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: sha256.clone(),
            rows_read,
            rows_written: written.inserted + written.updated + written.unchanged,
            rows_rejected: rejected_total,
        };
        tx.record_import(&record, chrono::Utc::now()).await?;
        for c in &customer_changes {
            tx.record_import(
                &c.history_entry(&record.file_name, &sha256),
                chrono::Utc::now(),
            )
            .await?;
        }
        tx.commit().await?;
        if written.inserted + written.updated > 0 {
            store.refresh_statistics().await?;
        }
    } else {
        tx.rollback().await?;
    }
    let written = if committed {
        written
    } else {
        UpsertCounts::default()
    };
    tracing::info!(
        rows_read,
        inserted = written.inserted,
        updated = written.updated,
        unchanged = written.unchanged,
        rejected = rejected_total,
        committed,
        "import finished"
    );
    Ok(ImportReport {
        file: path.to_path_buf(),
        kind,
        sha256,
        rows_read,
        written,
        rejected,
        committed,
        ignored_columns,
        unapplied_payments: unapplied,
        customer_changes: if committed {
            customer_changes
        } else {
            Vec::new()
        },
    })
}

/// What an API batch did.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub kind: ImportKind,
    pub items: u64,
    pub written: UpsertCounts,
    /// Payments whose amount was not fully allocated (unapplied credit).
    pub unapplied_payments: u64,
    /// Invoices moved to another customer (only with `allow_customer_change`); `line`
    /// is the item's index in the batch.
    pub customer_changes: Vec<CustomerChange>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Invalid items (`line` is the item's index in the batch): nothing was written.
    #[error("{} item(s) rejected; nothing was written", .0.len())]
    Rejected(Vec<RowError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ImportError> for BatchError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Store(s) => BatchError::Store(s),
            other => BatchError::Store(StoreError::Invalid(other.to_string())),
        }
    }
}

/// Upserts a batch of records given as named fields (the CSV columns of `kind`, see
/// docs/import.md), in one transaction: every item is valid and written, or nothing
/// is. Items are matched by external id, invoice number or payment id, so sending the
/// same batch again changes nothing. `source` and `sha256` identify the request in the
/// ledger's import history.
///
/// # Errors
/// [`BatchError::Rejected`] with every invalid item (unknown fields, bad values,
/// duplicates, unknown customers); a database error.
pub async fn import_records(
    store: &dyn Store,
    kind: ImportKind,
    records: &[HashMap<String, String>],
    opts: &ImportOptions,
    source: &str,
    sha256: &str,
) -> Result<BatchReport, BatchError> {
    let opts = ImportOptions {
        skip_invalid: false,
        ..opts.clone()
    };
    let mut imp = Importer::new(kind, store.begin().await?, &opts);
    imp.source = source.to_string();
    let numbered: Vec<(u64, HashMap<String, String>)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64, r.clone()))
        .collect();
    imp.feed(&numbered).await?;
    let Importer {
        mut tx,
        written,
        rejected,
        rejected_total,
        unapplied,
        customer_changes,
        ..
    } = imp;
    if rejected_total > 0 {
        tx.rollback().await?;
        return Err(BatchError::Rejected(rejected));
    }
    let record = ImportRecord {
        kind: kind.as_str().to_string(),
        file_name: source.to_string(),
        sha256: sha256.to_string(),
        rows_read: records.len() as u64,
        rows_written: written.inserted + written.updated + written.unchanged,
        rows_rejected: 0,
    };
    tx.record_import(&record, chrono::Utc::now()).await?;
    for c in &customer_changes {
        tx.record_import(&c.history_entry(source, sha256), chrono::Utc::now())
            .await?;
    }
    tx.commit().await?;
    Ok(BatchReport {
        kind,
        items: records.len() as u64,
        written,
        unapplied_payments: unapplied,
        customer_changes,
    })
}
