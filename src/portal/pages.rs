//! The portal's pages and what a customer does there.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::{browser_lang, neutral, render, PortalState};
use crate::domain::format;
use crate::domain::{Customer, Invoice, InvoiceStatus, Locale};
use crate::portal_links::{self, Opened};
use crate::templates::PortalAct;

/// `text` for a URL's path or query.
fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Who the portal's changes are recorded as (audit trail, tasks).
const ACTOR: &str = "customer (portal)";

/// Longest free text a customer may write.
const MAX_MESSAGE: usize = 2000;

/// The reasons a customer may give for a dispute: code, French, English.
const DISPUTE_REASONS: [(&str, &str, &str); 6] = [
    ("not_received", "Facture non reçue", "Invoice not received"),
    (
        "not_delivered",
        "Marchandise ou prestation non livrée",
        "Goods or service not delivered",
    ),
    (
        "defective",
        "Marchandise ou prestation non conforme",
        "Goods or service not as ordered",
    ),
    (
        "wrong_amount",
        "Montant ou prix erroné",
        "Wrong amount or price",
    ),
    ("already_paid", "Déjà payée", "Already paid"),
    ("other", "Autre raison", "Another reason"),
];

fn reason_label(code: &str, lang: Locale) -> Option<&'static str> {
    DISPUTE_REASONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, fr, en)| if lang == Locale::En { *en } else { *fr })
}

/// The link's customer, or the neutral page.
async fn opened(state: &PortalState, token: &str, headers: &HeaderMap) -> Result<Opened, Response> {
    let lang = browser_lang(headers);
    match portal_links::open(
        &state.config.portal,
        state.store.as_ref(),
        token,
        state.today(),
    )
    .await
    {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(refusal)) => {
            // The reason goes to the log (never the link: it opens an account).
            tracing::info!(reason = %refusal, "portal: a link was refused");
            Err(neutral(state, lang))
        }
        Err(e) => Err(unavailable(state, &e, lang)),
    }
}

fn unavailable(state: &PortalState, e: &dyn std::fmt::Display, lang: Locale) -> Response {
    tracing::error!(error = %e, "portal: the database does not answer");
    render(
        state,
        "neutral.html",
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        json!({ "reason": "unavailable" }),
    )
}

/// The token forms on a link's pages carry: bound to the link, derived from the
/// sealing key (nothing stored).
fn form_token(state: &PortalState, token: &str) -> String {
    let key = state
        .config
        .portal
        .keys
        .first()
        .map_or(&[0u8; 32][..], |k| &k.secret[..]);
    crate::digest::hmac_sha256_hex(key, format!("portal form\u{1f}{token}").as_bytes())[..32]
        .to_string()
}

fn check_form(state: &PortalState, token: &str, sent: &str, lang: Locale) -> Result<(), Response> {
    let expected = form_token(state, token);
    let same = expected.len() == sent.len()
        && expected
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        tracing::warn!("portal: a form without its token was refused");
        Err(render(
            state,
            "neutral.html",
            StatusCode::FORBIDDEN,
            lang,
            json!({ "reason": "form" }),
        ))
    }
}

/// `GET /p/{token}`: who the link is for, and a button to see the account. Nothing is
/// recorded: mail systems open links to scan them.
pub(super) async fn landing(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let o = match opened(&state, &token, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    render(
        &state,
        "landing.html",
        StatusCode::OK,
        o.customer.locale,
        json!({
            "customer": o.customer.name,
            "token": token,
            "csrf": form_token(&state, &token),
        }),
    )
}

#[derive(Deserialize)]
pub(super) struct EnterForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /p/{token}`: the customer opens its account: the visit is recorded (on the
/// action whose message carried the link), then the account is shown.
pub(super) async fn enter(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<EnterForm>,
) -> Response {
    let o = match opened(&state, &token, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = check_form(&state, &token, &f.csrf, o.customer.locale) {
        return r;
    }
    if let Err(e) = state
        .store
        .record_portal_visit(&o.customer.external_id, o.action, Utc::now())
        .await
    {
        return unavailable(&state, &e, o.customer.locale);
    }
    tracing::info!(customer = %o.customer.external_id, action = ?o.action, "portal: a customer opened its account");
    Redirect::to(&format!("/p/{token}/account")).into_response()
}

#[derive(Deserialize, Default)]
pub(super) struct AccountQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    invoice: Option<String>,
}

/// The customer's open invoices, oldest due first.
async fn open_invoices(state: &PortalState, c: &Customer) -> Result<Vec<Invoice>, Response> {
    match state.store.invoices_of(&c.external_id).await {
        Ok(all) => {
            let mut open: Vec<Invoice> = all
                .into_iter()
                .filter(|i| i.status == InvoiceStatus::Open && i.open_amount > Decimal::ZERO)
                .collect();
            open.sort_by(|x, y| (x.due_date, &x.number).cmp(&(y.due_date, &y.number)));
            Ok(open)
        }
        Err(e) => Err(unavailable(state, &e, c.locale)),
    }
}

/// What to write on the transfer for `invoice`: its ISO 11649 creditor reference, or
/// the invoice number when it cannot make one.
pub fn transfer_reference(invoice: &str) -> String {
    crate::domain::sepa::creditor_reference(invoice).unwrap_or_else(|| invoice.to_string())
}

/// The EPC QR code's text for paying `invoice`, when the company's bank account is
/// known and the invoice is in euros.
fn epc_payload(state: &PortalState, invoice: &Invoice) -> Option<String> {
    let company = &state.config.company;
    let iban = company.bank.iban.as_deref()?;
    if invoice.currency.code() != "EUR" {
        return None;
    }
    let holder = company
        .bank
        .holder
        .clone()
        .or_else(|| company.legal_name.clone())
        .unwrap_or_else(|| company.name.clone());
    let reference = crate::domain::sepa::creditor_reference(&invoice.number);
    let text = format!("{} {}", company.name, invoice.number);
    let transfer = crate::domain::sepa::CreditTransfer {
        name: &holder,
        iban,
        bic: company.bank.bic.as_deref(),
        amount: Some(invoice.open_amount),
        reference: reference.as_deref(),
        text: if reference.is_some() {
            None
        } else {
            Some(&text)
        },
    };
    match crate::domain::sepa::epc_qr_payload(&transfer) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(invoice = %invoice.number, error = %e, "portal: no EPC QR code for this invoice");
            None
        }
    }
}

/// The payment provider's link for `invoice`, from `portal.payment_link`.
fn payment_link(state: &PortalState, c: &Customer, invoice: &Invoice) -> Option<String> {
    let template = state.config.portal.payment_link.as_deref()?;
    let ctx = json!({
        "invoice": enc(&invoice.number),
        "amount": invoice.open_amount.to_string(),
        "currency": invoice.currency.code(),
        "reference": enc(&transfer_reference(&invoice.number)),
        "customer": enc(&c.external_id),
    });
    crate::templates::Templates::render_str(template, ctx)
        .ok()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

/// Interest and indemnities a formal notice claimed on each invoice: the latest notice.
async fn claimed_interest(
    state: &PortalState,
    c: &Customer,
) -> std::collections::HashMap<String, (NaiveDate, Decimal, Decimal)> {
    let mut out = std::collections::HashMap::new();
    let Ok(docs) = state.store.customer_documents(&c.external_id, 100).await else {
        return out;
    };
    // Newest first: the first notice naming an invoice is its latest.
    for d in docs.iter().filter(|d| d.kind == "formal_notice") {
        let date = d
            .metadata
            .get("date")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<NaiveDate>().ok())
            .unwrap_or_else(|| d.created_at.date_naive());
        let lines = d.metadata.get("invoices").and_then(|v| v.as_array());
        for l in lines.into_iter().flatten() {
            let dec = |k: &str| {
                l.get(k)
                    .and_then(|v| match v {
                        serde_json::Value::String(s) => s.parse::<Decimal>().ok(),
                        serde_json::Value::Number(n) => n.to_string().parse().ok(),
                        _ => None,
                    })
                    .unwrap_or_default()
            };
            if let Some(n) = l.get("number").and_then(|v| v.as_str()) {
                out.entry(n.to_string())
                    .or_insert((date, dec("interest"), dec("indemnity")));
            }
        }
    }
    out
}

/// `GET /p/{token}/account`: the account, with what the customer can do.
pub(super) async fn account(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    Query(q): Query<AccountQuery>,
    headers: HeaderMap,
) -> Response {
    let o = match opened(&state, &token, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    account_page(
        &state,
        &token,
        &o,
        StatusCode::OK,
        q.done.as_deref(),
        q.invoice.as_deref(),
        None,
    )
    .await
}

/// The account page, with a confirmation (`done`) or an error about a form.
async fn account_page(
    state: &PortalState,
    token: &str,
    o: &Opened,
    status: StatusCode,
    done: Option<&str>,
    about: Option<&str>,
    error: Option<(String, String)>,
) -> Response {
    let c = &o.customer;
    let lang = c.locale;
    let today = state.today();
    let open = match open_invoices(state, c).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let promises = match state.store.promises_of(&c.external_id).await {
        Ok(p) => p,
        Err(e) => return unavailable(state, &e, lang),
    };
    let interest = claimed_interest(state, c).await;
    let company = &state.config.company;
    let money = |a: Decimal, inv: &Invoice| format::money(a, &inv.currency, lang);
    let rows: Vec<serde_json::Value> = open
        .iter()
        .map(|i| {
            let promise = promises.iter().find(|p| {
                p.status == crate::domain::PromiseStatus::Pending
                    && (p.invoices.is_empty() || p.invoices.contains(&i.number))
            });
            let qr = epc_payload(state, i).and_then(|p| crate::documents::qr::svg(&p, "180").ok());
            let claimed = interest.get(&i.number).map(|(d, int, ind)| {
                json!({
                    "date": format::date(*d, lang),
                    "interest": money(*int, i),
                    "indemnity": money(*ind, i),
                })
            });
            json!({
                "number": i.number,
                "issued": format::date(i.issue_date, lang),
                "due": format::date(i.due_date, lang),
                "amount": money(i.amount, i),
                "open": money(i.open_amount, i),
                "open_plain": i.open_amount.to_string(),
                "currency": i.currency.code(),
                "days": i.days_overdue(today).max(0),
                "overdue": i.days_overdue(today) > 0,
                "disputed": i.dispute.as_ref().map(|d| d.reason.clone()),
                "promised": promise.map(|p| json!({
                    "date": format::date(p.promised_date, lang),
                    "amount": format::money(p.amount, &p.currency, lang),
                })),
                "reference": transfer_reference(&i.number),
                "qr": qr,
                "qr_png": format!("/p/{token}/invoices/{}/qr.png", enc(&i.number)),
                "pay_link": payment_link(state, c, i),
                "claimed": claimed,
            })
        })
        .collect();
    let total: Decimal = open.iter().map(|i| i.open_amount).sum();
    let overdue: Decimal = open
        .iter()
        .filter(|i| i.days_overdue(today) > 0)
        .map(|i| i.open_amount)
        .sum();
    let currency = open.first().map_or(c.currency, |i| i.currency);
    let holder = company
        .bank
        .holder
        .clone()
        .or_else(|| company.legal_name.clone())
        .unwrap_or_else(|| company.name.clone());
    render(
        state,
        "account.html",
        status,
        lang,
        json!({
            "token": token,
            "csrf": form_token(state, token),
            "customer": { "name": c.name, "id": c.external_id },
            "invoices": rows,
            "total": format::money(total, &currency, lang),
            "overdue": format::money(overdue, &currency, lang),
            "bank": {
                "holder": holder,
                "iban": company.bank.iban,
                "bic": company.bank.bic,
                "bank_name": company.bank.bank_name,
            },
            "today": today.to_string(),
            "max_date": (today + Duration::days(state.config.portal.promise_max_days)).to_string(),
            "max_days": state.config.portal.promise_max_days,
            "reasons": DISPUTE_REASONS.iter().map(|(code, fr, en)| json!({
                "code": code, "label": if lang == Locale::En { *en } else { *fr },
            })).collect::<Vec<_>>(),
            "done": done,
            "about": about,
            "error": error.map(|(field, message)| json!({ "field": field, "message": message })),
            "max_message": MAX_MESSAGE,
            "valid_until": format::date(o.expires, lang),
        }),
    )
}

/// `GET /p/{token}/statement.pdf`: the statement of the open invoices as of today.
pub(super) async fn statement(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let o = match opened(&state, &token, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let open = match open_invoices(&state, &o.customer).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let today = state.today();
    match crate::documents::statement_pdf(
        &state.config.channels.templates_dir,
        &state.config.company,
        &o.customer,
        open,
        today,
    )
    .await
    {
        Ok(bytes) => super::secure(
            (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"statement-{today}.pdf\""),
                    ),
                ],
                bytes,
            )
                .into_response(),
        ),
        Err(e) => unavailable(&state, &e, o.customer.locale),
    }
}

/// `GET /p/{token}/invoices/{number}/qr.png`: the EPC QR code of an open invoice of
/// the link's customer.
pub(super) async fn qr_png(
    State(state): State<PortalState>,
    Path((token, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let o = match opened(&state, &token, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let open = match open_invoices(&state, &o.customer).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let png = open
        .iter()
        .find(|i| i.number == number)
        .and_then(|i| epc_payload(&state, i))
        .and_then(|p| crate::documents::qr::png(&p, 8).ok());
    match png {
        Some(bytes) => {
            super::secure(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
        }
        None => neutral(&state, o.customer.locale),
    }
}

/// The open invoice `number` of the link's customer (any other is "not on your
/// account", whether it exists or not).
fn own_invoice<'a>(open: &'a [Invoice], number: &str) -> Option<&'a Invoice> {
    open.iter().find(|i| i.number == number)
}

/// Counts an act on the link: promises, disputes and messages are limited a day.
fn act_allowed(state: &PortalState, token: &str) -> bool {
    let day = Utc::now().timestamp().div_euclid(86_400);
    let key = format!("act:{}", &crate::digest::sha256_hex(token.as_bytes())[..32]);
    state
        .limiter
        .allow(&key, day, state.config.portal.acts_per_link_per_day)
}

/// A customer's text, on one line, bounded.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    words.chars().take(max).collect()
}

fn t(lang: Locale, fr: &str, en: &str) -> String {
    if lang == Locale::En { en } else { fr }.to_string()
}

/// Records the confirmation emailed to the customer: an email action (step `portal`,
/// template `portal_confirmation`) the outbox sends at once.
async fn confirm(
    state: &PortalState,
    c: &Customer,
    act: &PortalAct,
    invoices: Vec<String>,
    amount: Decimal,
    currency: &crate::domain::Currency,
) -> Result<(), crate::store::StoreError> {
    use crate::domain::ActionKind;
    use crate::store::actions::{ActionStatus, NewAction};
    if c.emails.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let options = json!({ "portal_act": act });
    let key = format!(
        "{}:{}",
        portal_links::STEP,
        &crate::digest::sha256_hex(
            format!(
                "{}\n{options}\n{}",
                c.external_id,
                now.timestamp_nanos_opt().unwrap_or(0)
            )
            .as_bytes()
        )[..24]
    );
    let facts = "{}";
    state
        .store
        .record_actions(
            &[NewAction {
                key,
                customer: c.external_id.clone(),
                segment: c.segment.clone(),
                kind: ActionKind::Email,
                step: portal_links::STEP.to_string(),
                template: Some("portal_confirmation".into()),
                options: options.to_string(),
                currency: currency.code().to_string(),
                amount_minor: currency.to_minor(amount).unwrap_or(0),
                rule_file: portal_links::STEP.to_string(),
                rule_hash: String::new(),
                variant: None,
                facts: Arc::from(facts),
                facts_sha256: Arc::from(crate::digest::sha256_hex(facts.as_bytes())),
                decided_on: state.today(),
                status: ActionStatus::Planned,
                detail: Some(format!(
                    "confirmation of the customer's {} on the portal",
                    act.kind
                )),
                invoices,
            }],
            now,
        )
        .await?;
    Ok(())
}

/// After an act: the audit line, the confirmation, then the account with a message.
async fn acted(
    state: &PortalState,
    token: &str,
    c: &Customer,
    act: PortalAct,
    detail: String,
    amount: Decimal,
    currency: &crate::domain::Currency,
) -> Response {
    let now = Utc::now();
    if let Err(e) = state
        .store
        .record_audit(
            ACTOR,
            &format!("portal_{}", act.kind),
            Some(&c.external_id),
            &detail,
            now,
        )
        .await
    {
        return unavailable(state, &e, c.locale);
    }
    let invoices: Vec<String> = if act.invoice.is_empty() {
        Vec::new()
    } else {
        vec![act.invoice.clone()]
    };
    if let Err(e) = confirm(state, c, &act, invoices, amount, currency).await {
        // The act is recorded; only its confirmation is missing: say so in the log.
        tracing::error!(customer = %c.external_id, error = %e, "portal: the confirmation email could not be planned");
    }
    tracing::info!(customer = %c.external_id, act = %act.kind, "portal: {detail}");
    let about = if act.invoice.is_empty() {
        String::new()
    } else {
        format!("&invoice={}", enc(&act.invoice))
    };
    Redirect::to(&format!("/p/{token}/account?done={}{about}", act.kind)).into_response()
}

/// The link's customer and its open invoices, for a form posted with `csrf`; else the
/// page that refuses it.
async fn acting(
    state: &PortalState,
    token: &str,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(Opened, Vec<Invoice>), Response> {
    let o = opened(state, token, headers).await?;
    check_form(state, token, csrf, o.customer.locale)?;
    let open = open_invoices(state, &o.customer).await?;
    Ok((o, open))
}

/// The account page again, with the form's error (422).
async fn refused(
    state: &PortalState,
    token: &str,
    o: &Opened,
    about: Option<&str>,
    field: String,
    message: String,
) -> Response {
    account_page(
        state,
        token,
        o,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        about,
        Some((field, message)),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct PromiseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    invoice: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    amount: String,
}

/// `POST /p/{token}/promise`: a date and an amount for one open invoice; recorded as
/// a promise to pay, which holds the invoice's reminders until that date.
pub(super) async fn promise(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<PromiseForm>,
) -> Response {
    let (o, open) = match acting(&state, &token, &headers, &f.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let lang = o.customer.locale;
    let about = Some(f.invoice.as_str());
    let refuse = |field: &str, fr: &str, en: &str| {
        refused(
            &state,
            &token,
            &o,
            about,
            field.to_string(),
            t(lang, fr, en),
        )
    };
    let Some(invoice) = own_invoice(&open, f.invoice.trim()) else {
        return refuse(
            "invoice",
            "Cette facture n'est pas ouverte sur votre compte.",
            "This invoice is not open on your account.",
        )
        .await;
    };
    if invoice.dispute.is_some() {
        return refuse(
            "invoice",
            "Cette facture fait l'objet d'un désaccord en cours d'examen.",
            "This invoice is under dispute.",
        )
        .await;
    }
    let today = state.today();
    let max = today + Duration::days(state.config.portal.promise_max_days);
    let Ok(date) = f.date.trim().parse::<NaiveDate>() else {
        return refuse(
            "date",
            "Indiquez une date (AAAA-MM-JJ).",
            "Give a date (YYYY-MM-DD).",
        )
        .await;
    };
    if date < today || date > max {
        let (fr, en) = (
            format!(
                "La date doit être entre aujourd'hui et le {}.",
                format::date(max, lang)
            ),
            format!(
                "The date must be between today and {}.",
                format::date(max, lang)
            ),
        );
        return refuse("date", &fr, &en).await;
    }
    let amount = match crate::domain::money::parse_amount(&f.amount) {
        Ok(a) if f.amount.len() <= 32 => a,
        _ => {
            return refuse(
                "amount",
                "Indiquez un montant, par exemple 1250,00.",
                "Give an amount, e.g. 1250.00.",
            )
            .await
        }
    };
    if amount <= Decimal::ZERO || amount > invoice.open_amount {
        let open_text = format::money(invoice.open_amount, &invoice.currency, lang);
        return refuse(
            "amount",
            &format!("Le montant doit être positif et au plus {open_text}."),
            &format!("The amount must be positive and at most {open_text}."),
        )
        .await;
    }
    if invoice.currency.to_minor(amount).is_err() {
        return refuse(
            "amount",
            "Ce montant a trop de décimales.",
            "This amount has too many decimals.",
        )
        .await;
    }
    if !act_allowed(&state, &token) {
        return super::too_many(&state, lang);
    }
    let input = crate::collect::PromiseInput {
        customer: o.customer.external_id.clone(),
        promised_date: date,
        amount,
        invoices: vec![invoice.number.clone()],
        note: Some("promised by the customer on the portal".into()),
    };
    match crate::collect::add_promise(state.store.as_ref(), input).await {
        Ok(_) => {}
        Err(crate::collect::CollectError::Invalid(i)) => {
            return refuse(&i.field, &i.message, &i.message).await;
        }
        Err(crate::collect::CollectError::Store(e)) => return unavailable(&state, &e, lang),
    }
    let act = PortalAct {
        kind: "promise".into(),
        invoice: invoice.number.clone(),
        date: format::date(date, lang),
        amount: format::money(amount, &invoice.currency, lang),
        ..PortalAct::default()
    };
    let detail = format!(
        "promise to pay {amount} {} on invoice {} by {date}",
        invoice.currency.code(),
        invoice.number
    );
    acted(
        &state,
        &token,
        &o.customer,
        act,
        detail,
        amount,
        &invoice.currency,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct DisputeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    invoice: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    text: String,
}

/// `POST /p/{token}/dispute`: a reason from the list and the customer's words; opens a
/// dispute on the invoice (its reminders stop) and a call task for the collector.
pub(super) async fn dispute(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<DisputeForm>,
) -> Response {
    let (o, open) = match acting(&state, &token, &headers, &f.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let lang = o.customer.locale;
    let about = Some(f.invoice.as_str());
    let refuse = |field: &str, fr: &str, en: &str| {
        refused(
            &state,
            &token,
            &o,
            about,
            field.to_string(),
            t(lang, fr, en),
        )
    };
    let Some(invoice) = own_invoice(&open, f.invoice.trim()) else {
        return refuse(
            "invoice",
            "Cette facture n'est pas ouverte sur votre compte.",
            "This invoice is not open on your account.",
        )
        .await;
    };
    if invoice.dispute.is_some() {
        return refuse(
            "invoice",
            "Un désaccord sur cette facture est déjà en cours d'examen.",
            "A disagreement about this invoice is already being looked at.",
        )
        .await;
    }
    let Some(label_en) = reason_label(&f.reason, Locale::En) else {
        return refuse(
            "reason",
            "Choisissez une raison dans la liste.",
            "Choose a reason from the list.",
        )
        .await;
    };
    if f.text.chars().count() > MAX_MESSAGE {
        let (fr, en) = (
            format!("Votre message dépasse {MAX_MESSAGE} caractères."),
            format!("Your message is longer than {MAX_MESSAGE} characters."),
        );
        return refuse("text", &fr, &en).await;
    }
    let text = one_line(&f.text, MAX_MESSAGE);
    if f.reason == "other" && text.is_empty() {
        return refuse(
            "text",
            "Dites-nous ce qui ne va pas.",
            "Tell us what is wrong.",
        )
        .await;
    }
    if !act_allowed(&state, &token) {
        return super::too_many(&state, lang);
    }
    let said = if text.is_empty() {
        label_en.to_string()
    } else {
        format!("{label_en}: {}", one_line(&text, 400))
    };
    let reason = format!("{ACTOR}: {said}");
    let now = Utc::now();
    let change = match crate::collect::dispute(&reason, now) {
        Ok(d) => crate::collect::Change::Dispute(Some(d)),
        Err(i) => return refuse("text", &i.message, &i.message).await,
    };
    match crate::collect::apply(state.store.as_ref(), &invoice.number, &change).await {
        Ok(()) => {}
        Err(crate::collect::CollectError::Invalid(i)) => {
            return refuse(&i.field, &i.message, &i.message).await
        }
        Err(crate::collect::CollectError::Store(e)) => return unavailable(&state, &e, lang),
    }
    let call = crate::call_outcomes::ScheduledCall {
        customer: o.customer.external_id.clone(),
        reason: one_line(
            &format!("Dispute on invoice {} (portal): {said}", invoice.number),
            500,
        ),
        priority: "high".into(),
        assignee: None,
        due_on: state.today(),
        by: ACTOR.into(),
        step: portal_links::STEP,
        invoices: Some(vec![invoice.number.clone()]),
    };
    if let Err(e) = crate::call_outcomes::schedule(&state.store, &call, state.today(), now).await {
        return unavailable(&state, &e, lang);
    }
    let act = PortalAct {
        kind: "dispute".into(),
        invoice: invoice.number.clone(),
        reason: reason_label(&f.reason, lang)
            .unwrap_or(label_en)
            .to_string(),
        message: text.clone(),
        ..PortalAct::default()
    };
    let detail = format!("dispute on invoice {}: {said}", invoice.number);
    acted(
        &state,
        &token,
        &o.customer,
        act,
        detail,
        invoice.open_amount,
        &invoice.currency,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    invoice: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    message: String,
}

/// `POST /p/{token}/contact`: a copy of an invoice or a question; a task for the
/// collector.
pub(super) async fn contact(
    State(state): State<PortalState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ContactForm>,
) -> Response {
    let (o, open) = match acting(&state, &token, &headers, &f.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let lang = o.customer.locale;
    let about = None;
    let refuse = |field: &str, fr: &str, en: &str| {
        refused(
            &state,
            &token,
            &o,
            about,
            field.to_string(),
            t(lang, fr, en),
        )
    };
    let invoice = f.invoice.trim();
    if !invoice.is_empty() && own_invoice(&open, invoice).is_none() {
        return refuse(
            "invoice",
            "Cette facture n'est pas ouverte sur votre compte.",
            "This invoice is not open on your account.",
        )
        .await;
    }
    let topic = match f.topic.as_str() {
        "copy" => "asks for a copy of the invoice",
        "question" | "" => "has a question",
        _ => {
            return refuse(
                "topic",
                "Choisissez l'objet de votre message.",
                "Choose what your message is about.",
            )
            .await
        }
    };
    if f.message.chars().count() > MAX_MESSAGE {
        let (fr, en) = (
            format!("Votre message dépasse {MAX_MESSAGE} caractères."),
            format!("Your message is longer than {MAX_MESSAGE} characters."),
        );
        return refuse("message", &fr, &en).await;
    }
    let message = one_line(&f.message, MAX_MESSAGE);
    if message.is_empty() && f.topic != "copy" {
        return refuse("message", "Écrivez votre message.", "Write your message.").await;
    }
    if !act_allowed(&state, &token) {
        return super::too_many(&state, lang);
    }
    let about = if invoice.is_empty() {
        String::new()
    } else {
        format!(" (invoice {invoice})")
    };
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    let reason = one_line(&format!("The customer {topic}{about} (portal){said}"), 500);
    let call = crate::call_outcomes::ScheduledCall {
        customer: o.customer.external_id.clone(),
        reason,
        priority: "normal".into(),
        assignee: None,
        due_on: state.today(),
        by: ACTOR.into(),
        step: portal_links::STEP,
        invoices: Some(if invoice.is_empty() {
            Vec::new()
        } else {
            vec![invoice.to_string()]
        }),
    };
    if let Err(e) =
        crate::call_outcomes::schedule(&state.store, &call, state.today(), Utc::now()).await
    {
        return unavailable(&state, &e, lang);
    }
    let act = PortalAct {
        kind: "contact".into(),
        invoice: invoice.to_string(),
        message: message.clone(),
        ..PortalAct::default()
    };
    let detail = one_line(&format!("message{about}: {topic}{said}"), 500);
    acted(
        &state,
        &token,
        &o.customer,
        act,
        detail,
        Decimal::ZERO,
        &o.customer.currency,
    )
    .await
}
