//! One CSV row → one domain value, per kind of file.

use crate::domain::{
    parse_amount, parse_date, CountryCode, Currency, Customer, EmailAddress, Insurance,
    InvoiceRecord, Locale, Payment, PhoneNumber, PostalAddress, Siren, Siret, VatNumber,
};

use super::csv_source::{parse_bool, split_list, FieldError, Row};
use super::ImportOptions;

fn currency(row: &Row<'_>, opts: &ImportOptions) -> Result<Currency, FieldError> {
    Ok(row
        .parse("currency", Currency::parse)?
        .unwrap_or(opts.default_currency))
}

fn money(
    row: &Row<'_>,
    column: &str,
    currency: Currency,
) -> Result<Option<rust_decimal::Decimal>, FieldError> {
    let Some(amount) = row.parse(column, parse_amount)? else {
        return Ok(None);
    };
    currency
        .to_minor(amount)
        .map_err(|e| FieldError::new(column, e.to_string()))?;
    Ok(Some(amount))
}

pub fn customer(row: &Row<'_>, opts: &ImportOptions) -> Result<Customer, FieldError> {
    let currency = currency(row, opts)?;
    let emails = match row.get("emails")? {
        None => Vec::new(),
        Some(t) => split_list(&t)
            .iter()
            .map(|e| EmailAddress::parse(e))
            .collect::<Result<_, _>>()
            .map_err(|e| FieldError::new("emails", e.0))?,
    };
    let phones = match row.get("phones")? {
        None => Vec::new(),
        Some(t) => split_list(&t)
            .iter()
            .map(|p| PhoneNumber::parse(p))
            .collect::<Result<_, _>>()
            .map_err(|e| FieldError::new("phones", e.0))?,
    };
    let country = row
        .parse("country", CountryCode::parse_assigned)?
        .unwrap_or(opts.default_country);
    let credit_limit = money(row, "credit_limit", currency)?;
    let cover_amount = money(row, "cover_amount", currency)?;
    for (col, v) in [
        ("credit_limit", credit_limit),
        ("cover_amount", cover_amount),
    ] {
        if v.is_some_and(|a| a < rust_decimal::Decimal::ZERO) {
            return Err(FieldError::new(col, "must not be negative"));
        }
    }
    let insurer_policy = row.get("insurer_policy")?;
    let insured = row
        .parse("insured", parse_bool)?
        .unwrap_or(insurer_policy.is_some());
    let segment = row.required("segment")?;
    if !segment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(FieldError::new(
            "segment",
            format!("'{segment}' is not a segment name (letters, digits, '_' and '-')"),
        ));
    }
    let collector = row.get("collector")?;
    if let Some(refs) = &opts.references {
        use super::References;
        if let Some(known) = &refs.segments {
            References::check(
                "segment",
                "segment",
                &segment,
                known,
                "segments in relance.yaml",
            )?;
        }
        if let (Some(policy), Some(known)) = (&insurer_policy, &refs.insurer_policies) {
            References::check(
                "insurer_policy",
                "insurer policy",
                policy,
                known,
                "insurers in relance.yaml",
            )?;
        }
        if let (Some(c), Some(known)) = (&collector, &refs.collectors) {
            References::check(
                "collector",
                "collector",
                c,
                known,
                "collectors in relance.yaml",
            )?;
        }
    }
    Ok(Customer {
        external_id: row.required("external_id")?,
        name: row.required("name")?,
        legal_name: row.get("legal_name")?,
        siren: row.parse("siren", Siren::parse)?,
        siret: row.parse("siret", Siret::parse)?,
        vat_number: row.parse("vat_number", VatNumber::parse)?,
        country,
        segment,
        locale: row
            .parse("locale", Locale::parse)?
            .unwrap_or(opts.default_locale),
        emails,
        phones,
        address: PostalAddress {
            line1: row.get("address_line1")?,
            line2: row.get("address_line2")?,
            postal_code: row.get("postal_code")?,
            city: row.get("city")?,
            country: Some(country),
        },
        currency,
        credit_limit,
        insurance: Insurance {
            insured,
            policy: insurer_policy,
            buyer_ref: row.get("insurer_buyer_ref")?,
            cover_amount,
        },
        collector,
        tags: tags(row)?,
        pause: None,
    })
}

fn tags(row: &Row<'_>) -> Result<Vec<String>, FieldError> {
    let tags = row.get("tags")?.map(|t| split_list(&t)).unwrap_or_default();
    for (i, tag) in tags.iter().enumerate() {
        crate::domain::ids::check_text(tag, crate::domain::ids::TextKind::Name)
            .map_err(|e| FieldError::new("tags", format!("tag {}: {}", i + 1, e.0)))?;
    }
    Ok(tags)
}

pub fn invoice(row: &Row<'_>, opts: &ImportOptions) -> Result<InvoiceRecord, FieldError> {
    let currency = currency(row, opts)?;
    let record = InvoiceRecord {
        number: row.required("number")?,
        customer: row.required("customer")?,
        issue_date: row.parse_required("issue_date", parse_date)?,
        due_date: row.parse_required("due_date", parse_date)?,
        currency,
        amount: money(row, "amount", currency)?
            .ok_or_else(|| FieldError::new("amount", "is empty"))?,
        open_amount: money(row, "open_amount", currency)?,
        status: row.parse("status", str::parse)?,
    };
    record
        .validate()
        .map_err(|(col, msg)| FieldError::new(col, msg))?;
    Ok(record)
}

pub fn payment(row: &Row<'_>, opts: &ImportOptions) -> Result<Payment, FieldError> {
    let currency = currency(row, opts)?;
    let payment = Payment {
        external_id: row.required("id")?,
        customer: row.required("customer")?,
        kind: row
            .parse("kind", str::parse)?
            .unwrap_or(crate::domain::PaymentKind::Payment),
        date: row.parse_required("date", parse_date)?,
        currency,
        amount: money(row, "amount", currency)?
            .ok_or_else(|| FieldError::new("amount", "is empty"))?,
        reference: row.get("reference")?,
    };
    payment
        .validate()
        .map_err(|(col, msg)| FieldError::new(col, msg))?;
    Ok(payment)
}

/// A dispute row: the invoice, and the reason (`None` when the row resolves it).
#[derive(Debug, Clone)]
pub struct DisputeRow {
    pub invoice: String,
    pub reason: Option<String>,
    /// The day the customer disputed the invoice (default: now).
    pub opened_on: Option<chrono::NaiveDate>,
}

/// A promise row: the promise, and the day it was made (default: now).
#[derive(Debug, Clone)]
pub struct PromiseRow {
    pub promise: crate::store::NewPromise,
    pub made_on: Option<chrono::NaiveDate>,
}

/// An action sent in the past.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub customer: String,
    pub kind: crate::domain::ActionKind,
    pub step: String,
    pub sent_on: chrono::NaiveDate,
    pub invoices: Vec<String>,
    pub amount: Option<rust_decimal::Decimal>,
    /// The variant of the segment's experiment that sent it, if any.
    pub variant: Option<String>,
}

pub fn history(row: &Row<'_>) -> Result<HistoryRow, FieldError> {
    let kind = row.parse_required("kind", |v| {
        v.parse::<crate::domain::ActionKind>()
            .map_err(|e| e.to_string())
    })?;
    let step = row.required("step")?;
    if step.chars().count() > 64 || step.chars().any(char::is_control) {
        return Err(FieldError::new(
            "step",
            "must be at most 64 characters, without control characters",
        ));
    }
    let invoices = split_list(&row.required("invoices")?);
    if invoices.is_empty() {
        return Err(FieldError::new("invoices", "names no invoice"));
    }
    let amount = row.parse("amount", |v| parse_amount(v).map_err(|e| e.to_string()))?;
    if amount.is_some_and(|a| a < rust_decimal::Decimal::ZERO) {
        return Err(FieldError::new("amount", "must not be negative"));
    }
    let variant = row.get("variant")?;
    if variant.as_deref().is_some_and(|v| {
        v.len() > 64
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(FieldError::new(
            "variant",
            "a variant name: letters, digits, '_' and '-', at most 64",
        ));
    }
    Ok(HistoryRow {
        customer: row.required("customer")?,
        kind,
        step,
        sent_on: row.parse_required("sent_on", parse_date)?,
        invoices,
        amount,
        variant,
    })
}

fn text(row: &Row<'_>, column: &str) -> Result<String, FieldError> {
    crate::domain::ids::free_text(&row.required(column)?).map_err(|e| FieldError::new(column, e.0))
}

pub fn dispute(row: &Row<'_>) -> Result<DisputeRow, FieldError> {
    let invoice = row.required("invoice")?;
    let resolved = match row.get("status")?.as_deref() {
        None | Some("open") => false,
        Some("resolved") => true,
        Some(other) => {
            return Err(FieldError::new(
                "status",
                format!("'{other}' is not a dispute status (open or resolved)"),
            ))
        }
    };
    let reason = text(row, "reason")?;
    Ok(DisputeRow {
        invoice,
        reason: (!resolved).then_some(reason),
        opened_on: row.parse("opened_on", parse_date)?,
    })
}

pub fn promise(row: &Row<'_>) -> Result<PromiseRow, FieldError> {
    let amount = row.parse_required("amount", parse_amount)?;
    if amount <= rust_decimal::Decimal::ZERO {
        return Err(FieldError::new("amount", "must be positive"));
    }
    if amount.scale() > 2 && amount.normalize().scale() > 2 {
        return Err(FieldError::new(
            "amount",
            format!("{amount} has more than 2 decimals"),
        ));
    }
    let note = match row.get("note")? {
        None => None,
        Some(_) => Some(text(row, "note")?),
    };
    Ok(PromiseRow {
        promise: crate::store::NewPromise {
            customer: row.required("customer")?,
            promised_date: row.parse_required("promised_date", parse_date)?,
            amount,
            invoices: row
                .get("invoices")?
                .map(|t| split_list(&t))
                .unwrap_or_default(),
            note,
            call_task: None,
        },
        made_on: row.parse("made_on", parse_date)?,
    })
}
