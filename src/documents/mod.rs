//! Documents that carry legal weight: the formal notice (mise en demeure) with its
//! statutory interest and indemnities, and the account statement. Both are PDF files
//! rendered by [`pdf::PdfRenderer`] from editable Typst templates and archived as
//! evidence by [`archive::Archive`].

pub mod archive;
pub mod pdf;
pub mod qr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use crate::config::{Company, Insurer};
use crate::domain::format;
use crate::domain::{Customer, InterestError, Invoice, LatePayment, Locale};
use crate::store::PaymentView;

/// What is claimed for one invoice on a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceClaim {
    pub number: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: String,
    pub amount: Decimal,
    pub open_amount: Decimal,
    pub days_overdue: i64,
    /// Late-payment interest accrued up to the claim date, rounded once to the cent.
    pub interest: Decimal,
    /// Fixed recovery indemnity.
    pub indemnity: Decimal,
    /// Open amount + interest + indemnity.
    pub claimed: Decimal,
    pub disputed: bool,
}

/// What is claimed from a customer on a date, invoice by invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    pub as_of: NaiveDate,
    pub currency: String,
    pub invoices: Vec<InvoiceClaim>,
    pub open: Decimal,
    pub interest: Decimal,
    pub indemnities: Decimal,
    pub claimed: Decimal,
    /// The annual rates applied (reference rate + margin) and from when.
    pub rates: Vec<(NaiveDate, Decimal)>,
}

impl Claim {
    /// Interest and indemnities on `invoices` as of `as_of`, from the customer's
    /// payments (each allocation reduces accrual on its invoice from the payment date).
    /// The indemnity applies to late invoices in the currency of the late-payment terms.
    ///
    /// # Errors
    /// A day of an accrual period without a reference rate.
    pub fn compute(
        invoices: &[Invoice],
        payments: &[PaymentView],
        terms: &LatePayment,
        as_of: NaiveDate,
    ) -> Result<Claim, InterestError> {
        let mut lines = Vec::with_capacity(invoices.len());
        let mut rates = std::collections::BTreeMap::new();
        for inv in invoices {
            let paid: Vec<(NaiveDate, Decimal)> = payments
                .iter()
                .flat_map(|p| {
                    p.allocations
                        .iter()
                        .filter(|(n, _)| *n == inv.number)
                        .map(|(_, a)| (p.payment.date, *a))
                })
                .collect();
            // Allocations are what settled the invoice; anything else that reduced it
            // (a write-off) counts from the start.
            let allocated: Decimal = paid.iter().map(|(_, a)| *a).sum();
            let principal = inv.open_amount + allocated;
            let interest = terms.interest(principal, inv.due_date, &paid, as_of, inv.currency)?;
            let indemnity = if inv.currency == terms.currency {
                terms.indemnity(inv.due_date, as_of)
            } else {
                Decimal::ZERO
            };
            // The periods of the rate table the accrual overlaps, from their first day.
            let first = inv.due_date + chrono::Duration::days(1);
            let table = &terms.reference_rates;
            for (i, (from, _)) in table.iter().enumerate() {
                let next = table.get(i + 1).map(|(f, _)| *f);
                if *from <= as_of && next.is_none_or(|n| n > first) {
                    let start = (*from).max(first);
                    if let Some(r) = terms.rate_on(start) {
                        rates.insert(start, r);
                    }
                }
            }
            lines.push(InvoiceClaim {
                number: inv.number.clone(),
                issue_date: inv.issue_date,
                due_date: inv.due_date,
                currency: inv.currency.code().to_string(),
                amount: inv.amount,
                open_amount: inv.open_amount,
                days_overdue: inv.days_overdue(as_of).max(0),
                interest,
                indemnity,
                claimed: inv.open_amount + interest + indemnity,
                disputed: inv.dispute.is_some(),
            });
        }
        // Keep one entry per distinct consecutive rate.
        let mut applied: Vec<(NaiveDate, Decimal)> = Vec::new();
        for (from, r) in rates {
            if applied.last().is_none_or(|(_, last)| *last != r) {
                applied.push((from, r));
            }
        }
        let sum = |f: fn(&InvoiceClaim) -> Decimal| lines.iter().map(f).sum::<Decimal>();
        Ok(Claim {
            as_of,
            currency: invoices
                .first()
                .map_or(terms.currency.code(), |i| i.currency.code())
                .to_string(),
            open: sum(|l| l.open_amount),
            interest: sum(|l| l.interest),
            indemnities: sum(|l| l.indemnity),
            claimed: sum(|l| l.claimed),
            invoices: lines,
            rates: applied,
        })
    }
}

fn percent(rate: Decimal, locale: Locale) -> String {
    let s = rate.normalize().to_string();
    match locale {
        Locale::Fr => format!("{}\u{a0}%", s.replace('.', ",")),
        Locale::En => format!("{s}%"),
    }
}

/// "12,15 % l'an (taux de la BCE majoré de 10 points)" and its variants.
fn rate_text(claim: &Claim, terms: &LatePayment, locale: Locale) -> String {
    let margin = percent(terms.margin_points, locale);
    let margin = margin.trim_end_matches(['%', '\u{a0}']).to_string();
    let parts: Vec<String> = claim
        .rates
        .iter()
        .enumerate()
        .map(|(i, (from, r))| match (locale, i) {
            (Locale::Fr, 0) => format!("{} l'an", percent(*r, locale)),
            (Locale::Fr, _) => format!(
                "{} à compter du {}",
                percent(*r, locale),
                format::date(*from, locale)
            ),
            (Locale::En, 0) => format!("{} a year", percent(*r, locale)),
            (Locale::En, _) => format!(
                "{} from {}",
                percent(*r, locale),
                format::date(*from, locale)
            ),
        })
        .collect();
    let joined = match locale {
        Locale::Fr => parts.join(", puis "),
        Locale::En => parts.join(", then "),
    };
    match locale {
        Locale::Fr => format!(
            "{joined} ({} majoré de {margin} points)",
            terms.reference_label(locale)
        ),
        Locale::En => format!(
            "{joined} ({} plus {margin} points)",
            terms.reference_label(locale)
        ),
    }
}

fn address_lines(
    line1: &Option<String>,
    line2: &Option<String>,
    postal_code: &Option<String>,
    city: &Option<String>,
    country: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = [line1, line2].into_iter().flatten().cloned().collect();
    let town = [postal_code.as_deref(), city.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !town.is_empty() {
        out.push(town);
    }
    if let Some(c) = country {
        out.push(c.to_string());
    }
    out
}

/// The seller as templates and insurer documents show it.
pub fn company_json(company: &Company) -> serde_json::Value {
    let legal = company
        .legal_name
        .clone()
        .unwrap_or_else(|| company.name.clone());
    let a = &company.address;
    json!({
        "name": company.name,
        "legal_name": legal,
        "legal_form": company.legal_form,
        "siren": company.siren.as_ref().map(|s| s.to_string()),
        "siret": company.siret.as_ref().map(|s| s.to_string()),
        "vat_number": company.vat_number.as_ref().map(|s| s.to_string()),
        "address": address_lines(&a.line1, &a.line2, &a.postal_code, &a.city, None),
        "email": company.email.as_ref().map(|e| e.to_string()),
        "phone": company.phone.as_ref().map(|p| p.to_string()),
        "website": company.website,
        "bank": {
            "holder": company.bank.holder.clone().unwrap_or(legal),
            "iban": company.bank.iban,
            "bic": company.bank.bic,
            "bank_name": company.bank.bank_name,
        },
        "signatory_name": company.signatory_name,
        "signatory_title": company.signatory_title,
    })
}

/// The customer's postal address, as printed lines; the country only when it is not
/// `home` (the seller's).
pub fn customer_address(c: &Customer, home: Option<&crate::domain::CountryCode>) -> Vec<String> {
    let a = &c.address;
    let country = a.country.as_ref().unwrap_or(&c.country);
    address_lines(
        &a.line1,
        &a.line2,
        &a.postal_code,
        &a.city,
        (Some(country) != home).then(|| country.as_str()),
    )
}

fn customer_json(c: &Customer, company: &Company) -> serde_json::Value {
    json!({
        "id": c.external_id,
        "name": c.name,
        "legal_name": c.legal_name(),
        "siren": c.siren.as_ref().map(|s| s.to_string()),
        "address": customer_address(c, company.address.country.as_ref()),
    })
}

/// A formal notice to render.
#[derive(Debug, Clone)]
pub struct FormalNotice<'a> {
    pub company: &'a Company,
    pub customer: &'a Customer,
    pub claim: &'a Claim,
    pub terms: &'a LatePayment,
    /// The credit insurer the debt will be declared to, if the customer is covered.
    pub insurer: Option<&'a Insurer>,
    pub reference: String,
    /// Days given to pay, and the resulting last day.
    pub deadline_days: i64,
    pub deadline: NaiveDate,
    /// Sent by registered mail (the letter says so).
    pub registered: bool,
    /// Whether the customer was sent a reminder about these invoices before: the
    /// letter refers to earlier reminders only then.
    pub reminded_before: bool,
}

impl FormalNotice<'_> {
    /// The template's `/data.json`: every figure formatted for the customer's locale.
    pub fn data(&self) -> serde_json::Value {
        let locale = self.customer.locale;
        let cur = |a: Decimal, code: &str| {
            let currency = code.parse().unwrap_or(self.terms.currency);
            format::money(a, &currency, locale)
        };
        let code = self.claim.currency.as_str();
        let invoices: Vec<serde_json::Value> = self
            .claim
            .invoices
            .iter()
            .map(|l| {
                json!({
                    "number": l.number,
                    "issue_date": format::date(l.issue_date, locale),
                    "due_date": format::date(l.due_date, locale),
                    "amount": cur(l.amount, &l.currency),
                    "open_amount": cur(l.open_amount, &l.currency),
                    "days_overdue": l.days_overdue,
                    "interest": cur(l.interest, &l.currency),
                    "indemnity": cur(l.indemnity, &l.currency),
                    "claimed": cur(l.claimed, &l.currency),
                })
            })
            .collect();
        json!({
            "lang": locale.as_str(),
            "reference": self.reference,
            "date": format::date(self.claim.as_of, locale),
            "place": self.company.address.city,
            "registered": self.registered,
            "reminded_before": self.reminded_before,
            "company": company_json(self.company),
            "customer": customer_json(self.customer, self.company),
            "invoices": invoices,
            "totals": {
                "open": cur(self.claim.open, code),
                "interest": cur(self.claim.interest, code),
                "indemnities": cur(self.claim.indemnities, code),
                "claimed": cur(self.claim.claimed, code),
            },
            "rate_text": rate_text(self.claim, self.terms, locale),
            "legal_basis": self.terms.legal_basis(locale),
            "indemnity_each": format::money(self.terms.fixed_indemnity, &self.terms.currency, locale),
            "deadline_days": self.deadline_days,
            "deadline": format::date(self.deadline, locale),
            "insurer": self.insurer.map(|i| i.name.clone()),
            "payment_reference": self.claim.invoices.iter().map(|l| l.number.as_str()).collect::<Vec<_>>().join(" "),
        })
    }

    /// The figures the notice states, kept with the archived document.
    pub fn metadata(&self) -> serde_json::Value {
        json!({
            "reference": self.reference,
            "date": self.claim.as_of,
            "deadline": self.deadline,
            "currency": self.claim.currency,
            "open": self.claim.open,
            "interest": self.claim.interest,
            "indemnities": self.claim.indemnities,
            "claimed": self.claim.claimed,
            "invoices": self.claim.invoices,
        })
    }
}

/// The account statement's `/data.json`: open invoices and totals as of `as_of`.
pub fn statement_data(
    company: &Company,
    customer: &Customer,
    invoices: &[Invoice],
    as_of: NaiveDate,
) -> serde_json::Value {
    let locale = customer.locale;
    let currency = invoices.first().map_or(customer.currency, |i| i.currency);
    let overdue: Decimal = invoices
        .iter()
        .filter(|i| i.days_overdue(as_of) > 0)
        .map(|i| i.open_amount)
        .sum();
    let open: Decimal = invoices.iter().map(|i| i.open_amount).sum();
    let lines: Vec<serde_json::Value> = invoices
        .iter()
        .map(|i| {
            json!({
                "number": i.number,
                "issue_date": format::date(i.issue_date, locale),
                "due_date": format::date(i.due_date, locale),
                "amount": format::money(i.amount, &i.currency, locale),
                "open_amount": format::money(i.open_amount, &i.currency, locale),
                "days_overdue": i.days_overdue(as_of).max(0),
            })
        })
        .collect();
    json!({
        "lang": locale.as_str(),
        "date": format::date(as_of, locale),
        "place": company.address.city,
        "company": company_json(company),
        "customer": customer_json(customer, company),
        "invoices": lines,
        "totals": {
            "open": format::money(open, &currency, locale),
            "overdue": format::money(overdue, &currency, locale),
            "not_due": format::money(open - overdue, &currency, locale),
        },
    })
}

/// The customer's account statement as of `today` (its `open` invoices, oldest due
/// first), rendered as PDF on a blocking thread; nothing is archived.
///
/// # Errors
/// The statement template cannot be rendered.
pub async fn statement_pdf(
    templates_dir: &std::path::Path,
    company: &Company,
    customer: &Customer,
    mut open: Vec<Invoice>,
    today: NaiveDate,
) -> Result<Vec<u8>, pdf::PdfError> {
    open.sort_by(|x, y| (x.due_date, &x.number).cmp(&(y.due_date, &y.number)));
    let data = statement_data(company, customer, &open, today);
    let renderer = pdf::PdfRenderer::new(templates_dir);
    let ident = format!("statement:{}:{today}", customer.external_id);
    let locale = customer.locale;
    tokio::task::spawn_blocking(move || renderer.render("statement", locale, &data, &ident, today))
        .await
        .map_err(|e| pdf::PdfError::Render {
            name: "statement".into(),
            message: format!("rendering stopped: {e}"),
        })?
}
