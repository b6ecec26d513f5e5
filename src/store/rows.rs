//! Rows as stored, and their conversion to and from domain types. Shared by both
//! backends: the column types decode the same way on SQLite and PostgreSQL.

use chrono::{DateTime, NaiveDate, Utc};

use super::{Result, StoreError};
use crate::domain::{
    CountryCode, Currency, Customer, Dispute, EmailAddress, Insurance, Invoice, InvoiceStatus,
    Locale, Pause, Payment, PaymentKind, PhoneNumber, PostalAddress, PromiseStatus, PromiseToPay,
    Siren, Siret, VatNumber,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn currency(code: &str) -> Result<Currency> {
    Currency::parse(code).map_err(|e| corrupt("currency", e))
}

fn json_list<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn pause(reason: Option<String>, until: Option<NaiveDate>) -> Option<Pause> {
    reason.map(|reason| Pause { reason, until })
}

#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRowWithId {
    pub id: i64,
    #[sqlx(flatten)]
    pub row: CustomerRow,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRow {
    pub external_id: String,
    pub name: String,
    pub legal_name: Option<String>,
    pub siren: Option<String>,
    pub siret: Option<String>,
    pub vat_number: Option<String>,
    pub country: String,
    pub segment: String,
    pub locale: String,
    pub emails: String,
    pub phones: String,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub address_country: Option<String>,
    pub currency: String,
    pub credit_limit_minor: Option<i64>,
    pub insured: bool,
    pub insurer_policy: Option<String>,
    pub insurer_buyer_ref: Option<String>,
    pub cover_minor: Option<i64>,
    pub collector: Option<String>,
    pub tags: String,
    pub pause_reason: Option<String>,
    pub paused_until: Option<NaiveDate>,
}

fn opt<T>(
    v: Option<String>,
    f: fn(&str) -> Result<T, crate::domain::InvalidValue>,
) -> Result<Option<T>, crate::domain::InvalidValue> {
    v.map(|s| f(&s)).transpose()
}

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;
    fn try_from(r: CustomerRow) -> Result<Customer> {
        let cur = currency(&r.currency)?;
        Ok(Customer {
            siren: opt(r.siren, Siren::parse).map_err(|e| corrupt("siren", e))?,
            siret: opt(r.siret, Siret::parse).map_err(|e| corrupt("siret", e))?,
            vat_number: opt(r.vat_number, VatNumber::parse)
                .map_err(|e| corrupt("vat_number", e))?,
            country: CountryCode::parse(&r.country).map_err(|e| corrupt("country", e))?,
            locale: Locale::parse(&r.locale).map_err(|e| corrupt("locale", e))?,
            emails: json_list::<EmailAddress>("emails", &r.emails)?,
            phones: json_list::<PhoneNumber>("phones", &r.phones)?,
            address: PostalAddress {
                line1: r.address_line1,
                line2: r.address_line2,
                postal_code: r.postal_code,
                city: r.city,
                country: opt(r.address_country, CountryCode::parse)
                    .map_err(|e| corrupt("address_country", e))?,
            },
            currency: cur,
            credit_limit: r.credit_limit_minor.map(|m| cur.from_minor(m)),
            insurance: Insurance {
                insured: r.insured,
                policy: r.insurer_policy,
                buyer_ref: r.insurer_buyer_ref,
                cover_amount: r.cover_minor.map(|m| cur.from_minor(m)),
            },
            collector: r.collector,
            tags: json_list("tags", &r.tags)?,
            pause: pause(r.pause_reason, r.paused_until),
            external_id: r.external_id,
            name: r.name,
            legal_name: r.legal_name,
            segment: r.segment,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    pub number: String,
    pub customer: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: String,
    pub amount_minor: i64,
    pub open_minor: i64,
    pub status: String,
    pub dispute_reason: Option<String>,
    pub disputed_at: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    pub paused_until: Option<NaiveDate>,
}

/// A date written `YYYY-MM-DD` (as the store writes dates), read without a format
/// parser: ticks read millions of them. `None` for any other text.
pub(crate) fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(y, digits(5..7)?, digits(8..10)?)
}

/// `date` written `YYYY-MM-DD`, as sqlx writes a date (chrono's `%F`) for years 0 to
/// 9999, without a format parser: a tick writes a date for each of millions of steps.
pub(crate) fn push_iso_date(out: &mut String, date: NaiveDate) {
    use chrono::Datelike;
    let (y, m, d) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&y) {
        out.push_str(&date.format("%F").to_string());
        return;
    }
    let y = y as u32;
    for n in [y / 1000, y / 100 % 10, y / 10 % 10, y % 10] {
        out.push(char::from(b'0' + n as u8));
    }
    for (n, sep) in [(m, '-'), (d, '-')] {
        out.push(sep);
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
}

/// `date` written `YYYY-MM-DD` (see [`push_iso_date`]).
pub(crate) fn iso_date_text(date: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    push_iso_date(&mut s, date);
    s
}

/// A date bound to a statement as sqlx binds a `NaiveDate` (the same text on SQLite,
/// a `date` on PostgreSQL), without chrono's format parser, which sqlx runs again for
/// each date it writes to SQLite: an import binds two dates per invoice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqlDate(pub NaiveDate);

impl sqlx::Type<sqlx::Sqlite> for SqlDate {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <NaiveDate as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for SqlDate {
    fn encode_by_ref(
        &self,
        buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(iso_date_text(self.0), buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for SqlDate {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <NaiveDate as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for SqlDate {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <NaiveDate as sqlx::Encode<'_, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

macro_rules! invoice_select {
    ($($extra:literal)?) => {
        concat!(
            "SELECT i.number, c.external_id AS customer, i.issue_date, i.due_date, i.currency, \
             i.amount_minor, i.open_minor, i.status, i.dispute_reason, i.disputed_at, i.pause_reason, \
             i.paused_until",
            $($extra,)?
            " FROM invoices i JOIN customers c ON c.id = i.customer_id"
        )
    };
}

pub(crate) const INVOICE_SELECT: &str = invoice_select!();

/// An invoice of a claimed action, with the latest date of the promises to pay pending
/// on it (see [`crate::store::actions::ClaimedAction::promised`]).
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedInvoiceRow {
    #[sqlx(flatten)]
    pub invoice: InvoiceRow,
    pub promised_until: Option<NaiveDate>,
}

pub(crate) const CLAIMED_INVOICE_SELECT: &str = invoice_select!(
    ", (SELECT MAX(p.promised_date) FROM promise_invoices pi JOIN promises p ON p.id = pi.promise_id \
     WHERE pi.invoice_id = i.id AND p.status = 'pending') AS promised_until"
);

impl TryFrom<InvoiceRow> for Invoice {
    type Error = StoreError;
    fn try_from(r: InvoiceRow) -> Result<Invoice> {
        let cur = currency(&r.currency)?;
        Ok(Invoice {
            status: r
                .status
                .parse::<InvoiceStatus>()
                .map_err(|e| corrupt("status", e))?,
            dispute: match (r.dispute_reason, r.disputed_at) {
                (Some(reason), Some(opened_at)) => Some(Dispute { reason, opened_at }),
                _ => None,
            },
            pause: pause(r.pause_reason, r.paused_until),
            amount: cur.from_minor(r.amount_minor),
            open_amount: cur.from_minor(r.open_minor),
            currency: cur,
            number: r.number,
            customer: r.customer,
            issue_date: r.issue_date,
            due_date: r.due_date,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    pub id: i64,
    pub external_id: String,
    pub customer: String,
    pub kind: String,
    pub date: NaiveDate,
    pub currency: String,
    pub amount_minor: i64,
    pub unapplied_minor: i64,
    pub reference: Option<String>,
}

impl PaymentRow {
    pub fn into_payment(self) -> Result<(i64, Payment, i64)> {
        let cur = currency(&self.currency)?;
        Ok((
            self.id,
            Payment {
                external_id: self.external_id,
                customer: self.customer,
                kind: self
                    .kind
                    .parse::<PaymentKind>()
                    .map_err(|e| corrupt("kind", e))?,
                date: self.date,
                currency: cur,
                amount: cur.from_minor(self.amount_minor),
                reference: self.reference,
            },
            self.unapplied_minor,
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PromiseRow {
    pub id: i64,
    pub customer: String,
    pub promised_date: NaiveDate,
    pub currency: String,
    pub amount_minor: i64,
    pub status: String,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl PromiseRow {
    pub fn into_promise(self, invoices: Vec<String>) -> Result<PromiseToPay> {
        let cur = currency(&self.currency)?;
        Ok(PromiseToPay {
            id: self.id,
            customer: self.customer,
            promised_date: self.promised_date,
            amount: cur.from_minor(self.amount_minor),
            currency: cur,
            invoices,
            status: self
                .status
                .parse::<PromiseStatus>()
                .map_err(|e| corrupt("status", e))?,
            note: self.note,
            created_at: self.created_at,
        })
    }
}

/// Customer fields as bound into an upsert, in `sql::customer_upsert_columns!` order.
pub(crate) struct CustomerBinds {
    pub external_id: String,
    pub name: String,
    pub legal_name: Option<String>,
    pub siren: Option<String>,
    pub siret: Option<String>,
    pub vat_number: Option<String>,
    pub country: String,
    pub segment: String,
    pub locale: &'static str,
    pub emails: String,
    pub phones: String,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub address_country: Option<String>,
    pub currency: String,
    pub credit_limit_minor: Option<i64>,
    pub insured: bool,
    pub insurer_policy: Option<String>,
    pub insurer_buyer_ref: Option<String>,
    pub cover_minor: Option<i64>,
    pub collector: Option<String>,
    pub tags: String,
}

impl CustomerBinds {
    pub fn from_customer(c: &Customer) -> Result<CustomerBinds> {
        let minor = |v: Option<rust_decimal::Decimal>| {
            v.map(|a| c.currency.to_minor(a))
                .transpose()
                .map_err(|e| StoreError::Invalid(format!("customer {}: {e}", c.external_id)))
        };
        Ok(CustomerBinds {
            external_id: c.external_id.clone(),
            name: c.name.clone(),
            legal_name: c.legal_name.clone(),
            siren: c.siren.as_ref().map(|s| s.to_string()),
            siret: c.siret.as_ref().map(|s| s.to_string()),
            vat_number: c.vat_number.as_ref().map(|s| s.to_string()),
            country: c.country.to_string(),
            segment: c.segment.clone(),
            locale: c.locale.as_str(),
            emails: to_json(&c.emails),
            phones: to_json(&c.phones),
            address_line1: c.address.line1.clone(),
            address_line2: c.address.line2.clone(),
            postal_code: c.address.postal_code.clone(),
            city: c.address.city.clone(),
            address_country: c.address.country.map(|k| k.to_string()),
            currency: c.currency.to_string(),
            credit_limit_minor: minor(c.credit_limit)?,
            insured: c.insurance.insured,
            insurer_policy: c.insurance.policy.clone(),
            insurer_buyer_ref: c.insurance.buyer_ref.clone(),
            cover_minor: minor(c.insurance.cover_amount)?,
            collector: c.collector.clone(),
            tags: to_json(&c.tags),
        })
    }
}

/// An open invoice as the account stream reads it (the covering index's columns).
pub(crate) type OpenInvoiceRow = (
    i64,
    i64,
    String,
    NaiveDate,
    NaiveDate,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<NaiveDate>,
    Option<String>,
);

pub(crate) const OPEN_INVOICE_COLUMNS: &str = "customer_id, id, number, issue_date, due_date, currency, amount_minor, open_minor, allocated_minor, dispute_reason, disputed_at, pause_reason, paused_until, einvoice_status";

/// Builds an invoice from an [`OpenInvoiceRow`]; the customer's external id is filled later.
pub(crate) fn open_invoice(
    r: OpenInvoiceRow,
) -> Result<(i64, i64, i64, crate::domain::OpenInvoice)> {
    let (
        customer_id,
        id,
        number,
        issue_date,
        due_date,
        cur,
        amount,
        open,
        allocated,
        dispute_reason,
        disputed_at,
        pause_reason,
        paused_until,
        einvoice_status,
    ) = r;
    let cur = currency(&cur)?;
    let invoice = Invoice {
        number,
        customer: String::new(),
        issue_date,
        due_date,
        currency: cur,
        amount: cur.from_minor(amount),
        open_amount: cur.from_minor(open),
        status: InvoiceStatus::Open,
        dispute: match (dispute_reason, disputed_at) {
            (Some(reason), Some(opened_at)) => Some(Dispute { reason, opened_at }),
            _ => None,
        },
        pause: pause(pause_reason, paused_until),
    };
    Ok((
        customer_id,
        id,
        allocated,
        crate::domain::OpenInvoice {
            invoice,
            payments: Vec::new(),
            einvoice_status,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::SqlDate;
    use chrono::NaiveDate;
    use sqlx::Connection;

    #[tokio::test]
    async fn a_sql_date_is_stored_as_the_same_text_as_sqlxs_date_whatever_the_year() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        for (y, m, d) in [
            (1, 1, 1),
            (999, 12, 31),
            (2024, 2, 29),
            (2026, 11, 2),
            (9999, 12, 31),
            (10000, 1, 1),
            (-5, 3, 4),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let (ours, sqlxs): (String, String) = sqlx::query_as("SELECT ?1, ?2")
                .bind(SqlDate(date))
                .bind(date)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(ours, sqlxs, "{date}");
        }
    }
}
