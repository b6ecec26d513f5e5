//! Message templates: `templates/email/<name>.<locale>.{subject,txt,html}` and
//! `templates/sms/<name>.<locale>.txt`, rendered with minijinja. A file in the configured
//! templates folder wins over the shipped one of the same name, so a credit manager
//! edits only what they want to change. Variables missing from the context are errors
//! (strict mode), caught by `relance rules check` before anything is sent.

pub use crate::domain::format;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::Company;
use crate::domain::{Customer, Invoice, Locale};

/// The templates relance ships, used when the folder has no file of that name.
const SHIPPED: &[(&str, &str)] = &[
    (
        "email/portal_confirmation.fr.subject",
        include_str!("../../templates/email/portal_confirmation.fr.subject"),
    ),
    (
        "email/portal_confirmation.fr.txt",
        include_str!("../../templates/email/portal_confirmation.fr.txt"),
    ),
    (
        "email/portal_confirmation.fr.html",
        include_str!("../../templates/email/portal_confirmation.fr.html"),
    ),
    (
        "email/portal_confirmation.en.subject",
        include_str!("../../templates/email/portal_confirmation.en.subject"),
    ),
    (
        "email/portal_confirmation.en.txt",
        include_str!("../../templates/email/portal_confirmation.en.txt"),
    ),
    (
        "email/portal_confirmation.en.html",
        include_str!("../../templates/email/portal_confirmation.en.html"),
    ),
    (
        "email/formal_notice.fr.subject",
        include_str!("../../templates/email/formal_notice.fr.subject"),
    ),
    (
        "email/formal_notice.fr.txt",
        include_str!("../../templates/email/formal_notice.fr.txt"),
    ),
    (
        "email/formal_notice.fr.html",
        include_str!("../../templates/email/formal_notice.fr.html"),
    ),
    (
        "email/formal_notice.en.subject",
        include_str!("../../templates/email/formal_notice.en.subject"),
    ),
    (
        "email/formal_notice.en.txt",
        include_str!("../../templates/email/formal_notice.en.txt"),
    ),
    (
        "email/formal_notice.en.html",
        include_str!("../../templates/email/formal_notice.en.html"),
    ),
    (
        "email/_invoices.fr.txt",
        include_str!("../../templates/email/_invoices.fr.txt"),
    ),
    (
        "email/_invoices.en.txt",
        include_str!("../../templates/email/_invoices.en.txt"),
    ),
    (
        "email/_layout.fr.html",
        include_str!("../../templates/email/_layout.fr.html"),
    ),
    (
        "email/_layout.en.html",
        include_str!("../../templates/email/_layout.en.html"),
    ),
    (
        "email/courtesy.fr.subject",
        include_str!("../../templates/email/courtesy.fr.subject"),
    ),
    (
        "email/courtesy.fr.txt",
        include_str!("../../templates/email/courtesy.fr.txt"),
    ),
    (
        "email/courtesy.fr.html",
        include_str!("../../templates/email/courtesy.fr.html"),
    ),
    (
        "email/courtesy.en.subject",
        include_str!("../../templates/email/courtesy.en.subject"),
    ),
    (
        "email/courtesy.en.txt",
        include_str!("../../templates/email/courtesy.en.txt"),
    ),
    (
        "email/courtesy.en.html",
        include_str!("../../templates/email/courtesy.en.html"),
    ),
    (
        "email/reminder_1.fr.subject",
        include_str!("../../templates/email/reminder_1.fr.subject"),
    ),
    (
        "email/reminder_1.fr.txt",
        include_str!("../../templates/email/reminder_1.fr.txt"),
    ),
    (
        "email/reminder_1.fr.html",
        include_str!("../../templates/email/reminder_1.fr.html"),
    ),
    (
        "email/reminder_1.en.subject",
        include_str!("../../templates/email/reminder_1.en.subject"),
    ),
    (
        "email/reminder_1.en.txt",
        include_str!("../../templates/email/reminder_1.en.txt"),
    ),
    (
        "email/reminder_1.en.html",
        include_str!("../../templates/email/reminder_1.en.html"),
    ),
    (
        "email/reminder_2.fr.subject",
        include_str!("../../templates/email/reminder_2.fr.subject"),
    ),
    (
        "email/reminder_2.fr.txt",
        include_str!("../../templates/email/reminder_2.fr.txt"),
    ),
    (
        "email/reminder_2.fr.html",
        include_str!("../../templates/email/reminder_2.fr.html"),
    ),
    (
        "email/reminder_2.en.subject",
        include_str!("../../templates/email/reminder_2.en.subject"),
    ),
    (
        "email/reminder_2.en.txt",
        include_str!("../../templates/email/reminder_2.en.txt"),
    ),
    (
        "email/reminder_2.en.html",
        include_str!("../../templates/email/reminder_2.en.html"),
    ),
    (
        "sms/sms_reminder.fr.txt",
        include_str!("../../templates/sms/sms_reminder.fr.txt"),
    ),
    (
        "sms/sms_reminder.en.txt",
        include_str!("../../templates/sms/sms_reminder.en.txt"),
    ),
];

/// The shipped message templates: (path under the templates folder, text).
pub fn shipped() -> impl Iterator<Item = (&'static str, &'static str)> {
    SHIPPED.iter().copied()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {0} not found (neither in the templates folder nor shipped)")]
    Missing(String),
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The template set: the configured folder over the shipped templates.
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("dir", &self.dir).finish()
    }
}

impl Templates {
    pub fn new(dir: &Path) -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        // HTML escaping of what is needed only: minijinja's default also escapes `/`,
        // which turns every date into `31&#x2f;01&#x2f;2026` in the source.
        env.set_formatter(|out, state, value| {
            if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() {
                let text = value.to_string();
                let mut escaped = String::with_capacity(text.len());
                for c in text.chars() {
                    match c {
                        '&' => escaped.push_str("&amp;"),
                        '<' => escaped.push_str("&lt;"),
                        '>' => escaped.push_str("&gt;"),
                        '"' => escaped.push_str("&quot;"),
                        '\'' => escaped.push_str("&#39;"),
                        c => escaped.push(c),
                    }
                }
                out.write_str(&escaped)?;
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        let root = dir.to_path_buf();
        env.set_loader(move |name: &str| {
            // Names are built by relance from checked template names; refuse anything
            // that would leave the folder all the same.
            if name.split('/').any(|p| p == ".." || p.is_empty()) {
                return Ok(None);
            }
            match std::fs::read_to_string(root.join(name)) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SHIPPED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| (*t).to_string())),
                Err(e) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot read {name}: {e}"),
                )),
            }
        });
        Templates {
            env,
            dir: dir.to_path_buf(),
        }
    }

    fn render(&self, name: &str, ctx: &MessageContext) -> Result<String, TemplateError> {
        let t = self.env.get_template(name).map_err(|e| match e.kind() {
            minijinja::ErrorKind::TemplateNotFound => TemplateError::Missing(name.to_string()),
            _ => TemplateError::Render {
                name: name.to_string(),
                message: detail(&e),
            },
        })?;
        t.render(ctx).map_err(|e| TemplateError::Render {
            name: name.to_string(),
            message: detail(&e),
        })
    }

    /// Subject, plain text and HTML of email template `name` in `locale`.
    ///
    /// # Errors
    /// A missing template or a rendering error (unknown variable, syntax).
    pub fn email(
        &self,
        name: &str,
        locale: Locale,
        ctx: &MessageContext,
    ) -> Result<RenderedEmail, TemplateError> {
        let base = format!("email/{name}.{}", locale.as_str());
        let subject = self.render(&format!("{base}.subject"), ctx)?;
        Ok(RenderedEmail {
            // A subject is one line.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render(&format!("{base}.txt"), ctx)?,
            html: self.render(&format!("{base}.html"), ctx)?,
        })
    }

    /// The text of SMS template `name` in `locale`, on one line.
    ///
    /// # Errors
    /// A missing template or a rendering error.
    pub fn sms(
        &self,
        name: &str,
        locale: Locale,
        ctx: &MessageContext,
    ) -> Result<String, TemplateError> {
        let text = self.render(&format!("sms/{name}.{}.txt", locale.as_str()), ctx)?;
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// Renders a template given as text (the generic SMS provider's body).
    ///
    /// # Errors
    /// A syntax or rendering error.
    pub fn render_str(source: &str, ctx: impl Serialize) -> Result<String, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.render_str(source, ctx)
            .map_err(|e| TemplateError::Render {
                name: "inline".into(),
                message: detail(&e),
            })
    }
}

fn detail(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(line) = e.line() {
        if !msg.contains("line") && !msg.contains(" (in ") {
            msg.push_str(&format!(" (line {line})"));
        }
    }
    msg
}

/// One invoice as templates see it: formatted for the customer's locale.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceLine {
    pub number: String,
    pub issue_date: String,
    pub due_date: String,
    pub amount: String,
    pub open_amount: String,
    pub days_overdue: i64,
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompanyView {
    pub name: String,
    pub legal_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
    pub account_holder: String,
    pub signatory_name: Option<String>,
    pub signatory_title: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerView {
    pub id: String,
    pub name: String,
    pub legal_name: String,
}

/// Everything a message template can use. Documented in `docs/templates.md`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    pub company: CompanyView,
    pub customer: CustomerView,
    /// The customer's assigned collector, when known.
    pub collector: Option<String>,
    pub step: String,
    pub today: String,
    pub invoices: Vec<InvoiceLine>,
    pub invoice_count: usize,
    pub total_open: String,
    pub total_overdue: String,
    /// What to write on the transfer: the invoice numbers.
    pub payment_reference: String,
    /// Whether the customer was already sent a message about one of these invoices.
    pub reminded_before: bool,
    /// The customer's link to its page on the debtor portal, made for this message
    /// (empty without a portal: `{% if portal_url %}…{% endif %}`).
    pub portal_url: String,
    /// What the customer did on the portal, for its confirmation (empty otherwise).
    pub portal_act: PortalAct,
}

/// What a customer did on its portal page, as its confirmation email tells it: every
/// field formatted for the customer's locale, empty when it does not apply.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PortalAct {
    /// `promise`, `dispute` or `contact` (empty for any other message).
    pub kind: String,
    pub invoice: String,
    /// The promised date.
    pub date: String,
    /// The promised amount.
    pub amount: String,
    /// The dispute's reason.
    pub reason: String,
    /// The customer's text.
    pub message: String,
}

impl MessageContext {
    /// The context of the message a claimed action becomes, as of its decision.
    pub fn for_action(company: &Company, a: &crate::store::ClaimedAction) -> MessageContext {
        let mut ctx = MessageContext::new(company, &a.customer, &a.invoices, &a.step, a.decided_on);
        ctx.reminded_before = a.reminded_before;
        ctx.portal_url = a.portal_url.clone().unwrap_or_default();
        ctx.portal_act = a
            .options
            .get("portal_act")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        ctx
    }

    /// The context of a message about `invoices` of `customer`, as of `today`.
    pub fn new(
        company: &Company,
        customer: &Customer,
        invoices: &[Invoice],
        step: &str,
        today: NaiveDate,
    ) -> MessageContext {
        let locale = customer.locale;
        let currency = invoices.first().map_or(customer.currency, |i| i.currency);
        let lines: Vec<InvoiceLine> = invoices
            .iter()
            .map(|i| InvoiceLine {
                number: i.number.clone(),
                issue_date: format::date(i.issue_date, locale),
                due_date: format::date(i.due_date, locale),
                amount: format::money(i.amount, &i.currency, locale),
                open_amount: format::money(i.open_amount, &i.currency, locale),
                days_overdue: i.days_overdue(today).max(0),
                overdue: i.days_overdue(today) > 0,
            })
            .collect();
        let total_open: rust_decimal::Decimal = invoices.iter().map(|i| i.open_amount).sum();
        let total_overdue: rust_decimal::Decimal = invoices
            .iter()
            .filter(|i| i.days_overdue(today) > 0)
            .map(|i| i.open_amount)
            .sum();
        let legal = company
            .legal_name
            .clone()
            .unwrap_or_else(|| company.name.clone());
        MessageContext {
            company: CompanyView {
                name: company.name.clone(),
                legal_name: legal.clone(),
                email: company.email.as_ref().map(|e| e.to_string()),
                phone: company.phone.as_ref().map(|p| p.to_string()),
                website: company.website.clone(),
                iban: company.bank.iban.clone(),
                bic: company.bank.bic.clone(),
                bank_name: company.bank.bank_name.clone(),
                account_holder: company.bank.holder.clone().unwrap_or(legal),
                signatory_name: company.signatory_name.clone(),
                signatory_title: company.signatory_title.clone(),
            },
            customer: CustomerView {
                id: customer.external_id.clone(),
                name: customer.name.clone(),
                legal_name: customer.legal_name().to_string(),
            },
            collector: customer.collector.clone(),
            step: step.to_string(),
            today: format::date(today, locale),
            invoice_count: lines.len(),
            invoices: lines,
            total_open: format::money(total_open, &currency, locale),
            total_overdue: format::money(total_overdue, &currency, locale),
            payment_reference: invoices
                .iter()
                .map(|i| i.number.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            reminded_before: false,
            portal_url: String::new(),
            portal_act: PortalAct::default(),
        }
    }
}

/// How an SMS text is encoded and how many segments it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsLength {
    /// `GSM-7` or `UCS-2`.
    pub encoding: &'static str,
    pub units: usize,
    pub segments: usize,
}

/// Characters of the GSM 03.38 basic set.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of its extension table, two units each.
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// Counts the segments of `text`: GSM-7 when every character is in the GSM alphabet
/// (160 units alone, 153 per segment when concatenated; extension characters such as
/// `€` take two), else UCS-2 (70 alone, 67 per segment; characters outside the BMP take
/// two units).
pub fn sms_length(text: &str) -> SmsLength {
    let gsm: Option<usize> = text.chars().try_fold(0usize, |n, c| {
        if GSM_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (encoding, units, single, multi) = match gsm {
        Some(units) => ("GSM-7", units, 160, 153),
        None => ("UCS-2", text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    SmsLength {
        encoding,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_segments_follow_gsm_and_ucs2_rules() {
        assert_eq!(sms_length(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_length(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_length(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_length(&"a".repeat(307)).segments, 3);
        // The euro sign is in the extension table: two units.
        let l = sms_length(&format!("{}€", "a".repeat(158)));
        assert_eq!((l.encoding, l.units, l.segments), ("GSM-7", 160, 1));
        // A character outside GSM-7 switches the whole message to UCS-2.
        let l = sms_length(&format!("{}ç", "a".repeat(69)));
        assert_eq!((l.encoding, l.units, l.segments), ("UCS-2", 70, 1));
        assert_eq!(sms_length(&"ê".repeat(71)).segments, 2);
        assert_eq!(sms_length(&"ê".repeat(135)).segments, 3);
        // French text with é and à stays GSM-7.
        assert_eq!(sms_length("Échéance dépassée à régler").encoding, "GSM-7");
        assert_eq!(sms_length("Votre fenêtre").encoding, "UCS-2");
    }
}
