//! Rule tests: YAML cases kept next to each script (`rules/smb.test.yaml` for
//! `rules/smb.rhai`), each a customer's facts and a date with the expected decisions.
//! The whole decision path runs: script, then the engine's idempotency and blocking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::decide::DecisionStatus;
use super::evaluate::Evaluator;
use super::registry::RuleSet;
use crate::config::yaml_index::YamlIndex;
use crate::domain::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    today: NaiveDate,
    #[serde(default)]
    customer: CustomerSpec,
    #[serde(default)]
    invoices: Vec<InvoiceSpec>,
    #[serde(default)]
    history: Vec<HistorySpec>,
    #[serde(default)]
    promises: Vec<PromiseSpec>,
    #[serde(default)]
    unapplied_credit: Option<Decimal>,
    #[serde(default)]
    expect: Vec<Expected>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerSpec {
    id: Option<String>,
    name: Option<String>,
    segment: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    emails: Option<Vec<String>>,
    phones: Option<Vec<String>>,
    credit_limit: Option<Decimal>,
    #[serde(default)]
    insured: bool,
    insurer_policy: Option<String>,
    cover_amount: Option<Decimal>,
    collector: Option<String>,
    paused: Option<PauseSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseSpec {
    reason: String,
    until: Option<NaiveDate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceSpec {
    number: String,
    due: NaiveDate,
    issued: Option<NaiveDate>,
    amount: Decimal,
    open: Option<Decimal>,
    disputed: Option<String>,
    paused: Option<PauseSpec>,
    #[serde(default)]
    payments: Vec<PaymentSpec>,
    /// The last e-invoicing lifecycle status (`approved`, `suspended`…).
    einvoice_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentSpec {
    date: NaiveDate,
    amount: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistorySpec {
    invoice: String,
    step: String,
    date: NaiveDate,
    kind: Option<ActionKind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseSpec {
    date: NaiveDate,
    amount: Decimal,
    #[serde(default)]
    invoices: Vec<String>,
    #[serde(default = "pending")]
    status: PromiseStatus,
}

fn pending() -> PromiseStatus {
    PromiseStatus::Pending
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Expected {
    kind: Option<ActionKind>,
    step: Option<String>,
    template: Option<String>,
    #[serde(default)]
    invoices: Vec<String>,
    #[serde(default = "planned")]
    status: DecisionStatus,
    detail_contains: Option<String>,
}

fn planned() -> DecisionStatus {
    DecisionStatus::Planned
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub line: Option<usize>,
    pub name: String,
    /// `None` when the case passed; else a readable expected-vs-got report.
    pub failure: Option<String>,
}

/// All the results of one test file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub file: String,
    pub cases: Vec<CaseResult>,
    /// The file could not be read or parsed.
    pub error: Option<String>,
}

/// The test file kept next to a script: `smb.rhai` → `smb.test.yaml`.
pub fn test_file_for(script: &Path) -> PathBuf {
    script.with_extension("test.yaml")
}

fn customer_of(spec: &CustomerSpec, segment: &str, currency: Currency) -> Result<Customer, String> {
    let emails = spec
        .emails
        .clone()
        .unwrap_or_else(|| vec!["compta@client.example".into()]);
    let phones = spec
        .phones
        .clone()
        .unwrap_or_else(|| vec!["+33612345678".into()]);
    Ok(Customer {
        external_id: spec.id.clone().unwrap_or_else(|| "C1".into()),
        name: spec.name.clone().unwrap_or_else(|| "Test customer".into()),
        legal_name: None,
        siren: None,
        siret: None,
        vat_number: None,
        country: CountryCode::FR,
        segment: spec.segment.clone().unwrap_or_else(|| segment.to_string()),
        locale: spec
            .locale
            .as_deref()
            .map(Locale::parse)
            .transpose()
            .map_err(|e| e.0)?
            .unwrap_or_default(),
        emails: emails
            .iter()
            .map(|e| EmailAddress::parse(e))
            .collect::<Result<_, _>>()
            .map_err(|e| e.0)?,
        phones: phones
            .iter()
            .map(|p| PhoneNumber::parse(p))
            .collect::<Result<_, _>>()
            .map_err(|e| e.0)?,
        address: PostalAddress::default(),
        currency,
        credit_limit: spec.credit_limit,
        insurance: Insurance {
            insured: spec.insured || spec.insurer_policy.is_some(),
            policy: spec.insurer_policy.clone(),
            buyer_ref: None,
            cover_amount: spec.cover_amount,
        },
        collector: spec.collector.clone(),
        tags: spec.tags.clone(),
        pause: spec.paused.as_ref().map(|p| Pause {
            reason: p.reason.clone(),
            until: p.until,
        }),
    })
}

fn account_of(case: &Case, segment: &str, currency: Currency) -> Result<Account, String> {
    let customer = customer_of(&case.customer, segment, currency)?;
    let opened: DateTime<Utc> = DateTime::from_naive_utc_and_offset(
        case.today.and_hms_opt(0, 0, 0).unwrap_or_default(),
        Utc,
    );
    let mut invoices: Vec<OpenInvoice> = case
        .invoices
        .iter()
        .map(|i| {
            let paid: Decimal = i.payments.iter().map(|p| p.amount).sum();
            OpenInvoice {
                invoice: Invoice {
                    number: i.number.clone(),
                    customer: customer.external_id.clone(),
                    issue_date: i.issued.unwrap_or(i.due - Duration::days(30)),
                    due_date: i.due,
                    currency,
                    amount: i.amount,
                    open_amount: i.open.unwrap_or(i.amount - paid),
                    status: InvoiceStatus::Open,
                    dispute: i.disputed.as_ref().map(|r| Dispute {
                        reason: r.clone(),
                        opened_at: opened,
                    }),
                    pause: i.paused.as_ref().map(|p| Pause {
                        reason: p.reason.clone(),
                        until: p.until,
                    }),
                },
                payments: i.payments.iter().map(|p| (p.date, p.amount)).collect(),
                einvoice_status: i.einvoice_status.clone(),
            }
        })
        .collect();
    invoices.sort_by(|a, b| {
        (a.invoice.due_date, &a.invoice.number).cmp(&(b.invoice.due_date, &b.invoice.number))
    });
    let history = case
        .history
        .iter()
        .map(|h| StepRecord {
            invoice: h.invoice.clone(),
            kind: h.kind.unwrap_or(ActionKind::Email),
            step: h.step.clone(),
            date: h.date,
            status: "sent".into(),
        })
        .collect();
    let promises = case
        .promises
        .iter()
        .enumerate()
        .map(|(n, p)| PromiseToPay {
            id: n as i64 + 1,
            customer: customer.external_id.clone(),
            promised_date: p.date,
            amount: p.amount,
            currency,
            invoices: p.invoices.clone(),
            status: p.status,
            note: None,
            created_at: opened,
        })
        .collect();
    Ok(Account {
        customer,
        invoices,
        unapplied_credit: case.unapplied_credit.unwrap_or(Decimal::ZERO),
        history,
        promises,
    })
}

fn describe<T: AsRef<str>>(
    kind: Option<ActionKind>,
    step: Option<&str>,
    invoices: &[T],
    status: DecisionStatus,
) -> String {
    let mut inv: Vec<&str> = invoices.iter().map(AsRef::as_ref).collect();
    inv.sort();
    match kind {
        Some(k) => format!(
            "{k} {} [{}] {}",
            step.unwrap_or("-"),
            inv.join(", "),
            status.as_str()
        ),
        None => format!("{} [{}]", status.as_str(), inv.join(", ")),
    }
}

/// Runs one test file against the script of `segment`.
pub fn run_file(
    path: &Path,
    base: &Path,
    segment: &str,
    rules: &RuleSet,
    evaluator: &Evaluator,
    currency: Currency,
) -> FileResult {
    let file = super::registry::display_path(path, Some(base));
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return FileResult {
                file,
                cases: Vec::new(),
                error: Some(format!("cannot read: {e}")),
            }
        }
    };
    let index = YamlIndex::build(&text);
    let parsed: File = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let line = e
                .location()
                .map(|l| format!(":{}", l.line()))
                .unwrap_or_default();
            return FileResult {
                file: file.clone(),
                cases: Vec::new(),
                error: Some(format!("{file}{line}: {e}")),
            };
        }
    };
    let mut results = Vec::new();
    for (n, case) in parsed.cases.iter().enumerate() {
        let line = index.line_of(&format!("cases[{n}]"));
        let failure = match account_of(case, segment, currency) {
            Err(e) => Some(format!("invalid case: {e}")),
            Ok(account) => {
                let outcome = evaluator.evaluate(rules, account, case.today);
                check(&case.expect, &outcome.decisions)
            }
        };
        results.push(CaseResult {
            file: file.clone(),
            line,
            name: case.name.clone(),
            failure,
        });
    }
    FileResult {
        file,
        cases: results,
        error: None,
    }
}

fn check(expected: &[Expected], got: &[super::Decision]) -> Option<String> {
    let mut unmatched: Vec<&super::Decision> = got.iter().collect();
    let mut missing = Vec::new();
    for e in expected {
        let mut want: Vec<&str> = e.invoices.iter().map(String::as_str).collect();
        want.sort_unstable();
        let pos = unmatched.iter().position(|d| {
            let mut inv: Vec<&str> = d.invoices.iter().map(AsRef::as_ref).collect();
            inv.sort_unstable();
            d.status == e.status
                && e.kind.is_none_or(|k| d.kind == Some(k))
                && e.step
                    .as_ref()
                    .is_none_or(|s| d.step.as_deref() == Some(s.as_str()))
                && e.template
                    .as_ref()
                    .is_none_or(|t| d.template.as_deref() == Some(t.as_str()))
                && (e.invoices.is_empty() && e.kind.is_none() || inv == want)
                && e.detail_contains
                    .as_ref()
                    .is_none_or(|s| d.detail.contains(s.as_str()))
        });
        match pos {
            Some(p) => {
                unmatched.remove(p);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return None;
    }
    let mut out = String::new();
    out.push_str("    expected:\n");
    if expected.is_empty() {
        out.push_str("      (no action)\n");
    }
    for e in expected {
        let mut line = describe(e.kind, e.step.as_deref(), &e.invoices, e.status);
        if let Some(t) = &e.template {
            line.push_str(&format!(" template={t}"));
        }
        if let Some(s) = &e.detail_contains {
            line.push_str(&format!(" detail~\"{s}\""));
        }
        out.push_str(&format!("      {line}\n"));
    }
    out.push_str("    got:\n");
    if got.is_empty() {
        out.push_str("      (no action)\n");
    }
    for d in got {
        let mut line = describe(d.kind, d.step.as_deref(), &d.invoices, d.status);
        if let Some(t) = &d.template {
            line.push_str(&format!(" template={t}"));
        }
        if !d.detail.is_empty() {
            line.push_str(&format!(" ({})", d.detail));
        }
        out.push_str(&format!("      {line}\n"));
    }
    for e in &missing {
        out.push_str(&format!(
            "    - missing:    {}\n",
            describe(e.kind, e.step.as_deref(), &e.invoices, e.status)
        ));
    }
    for d in &unmatched {
        out.push_str(&format!(
            "    + unexpected: {}\n",
            describe(d.kind, d.step.as_deref(), &d.invoices, d.status)
        ));
    }
    Some(out)
}

/// A test file of a configured script: its segment, its variant (if the segment has
/// variants) and the file.
pub struct TestFile {
    pub segment: String,
    pub variant: Option<String>,
    pub path: PathBuf,
}

/// Test files per script (each variant's next to its script), for the configured
/// scripts whose test file exists.
pub fn discover(segments: &BTreeMap<String, crate::config::Segment>) -> Vec<TestFile> {
    let mut out: Vec<TestFile> = Vec::new();
    for (name, s) in segments {
        for script in &s.scripts {
            let path = test_file_for(&script.rules);
            // Two variants may share a script (an A/A test): its file runs once.
            if path.is_file() && !out.iter().any(|t| t.segment == *name && t.path == path) {
                out.push(TestFile {
                    segment: name.clone(),
                    variant: script.variant.clone(),
                    path,
                });
            }
        }
    }
    out
}

/// One step of a script's ladder: the step, its channel, and the day (relative to the
/// due date) a lone unpaid invoice first gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    pub step: String,
    pub kind: ActionKind,
    pub day: i64,
}

/// The ladder `rules` makes a lone unpaid invoice of `amount` climb (a customer with an
/// email address and a mobile, insured or not): the script is evaluated day by day from
/// 10 days before the due date to 120 days after, each planned step recorded as sent,
/// and the first day of each step kept. What sample histories send to a variant's
/// customers.
pub fn ladder(
    rules: &RuleSet,
    evaluator: &Evaluator,
    segment: &str,
    amount: Decimal,
    insured: bool,
    currency: Currency,
) -> Vec<Rung> {
    let spec = CustomerSpec {
        id: Some("LADDER".into()),
        insured,
        ..CustomerSpec::default()
    };
    let Ok(customer) = customer_of(&spec, segment, currency) else {
        return Vec::new();
    };
    let due = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default();
    let mut account = Account {
        customer,
        invoices: vec![OpenInvoice {
            invoice: Invoice {
                number: "L1".into(),
                customer: "LADDER".into(),
                issue_date: due - Duration::days(30),
                due_date: due,
                currency,
                amount,
                open_amount: amount,
                status: InvoiceStatus::Open,
                dispute: None,
                pause: None,
            },
            payments: Vec::new(),
            einvoice_status: None,
        }],
        unapplied_credit: Decimal::ZERO,
        history: Vec::new(),
        promises: Vec::new(),
    };
    let mut out: Vec<Rung> = Vec::new();
    for day in -10..=120 {
        let today = due + Duration::days(day);
        let outcome = evaluator.evaluate(rules, account.clone(), today);
        for d in outcome.decisions {
            let (DecisionStatus::Planned, Some(kind), Some(step)) = (d.status, d.kind, d.step)
            else {
                continue;
            };
            account.history.push(StepRecord {
                invoice: "L1".into(),
                kind,
                step: step.to_string(),
                date: today,
                status: "sent".into(),
            });
            if !out.iter().any(|r| *r.step == *step) {
                out.push(Rung {
                    step: step.to_string(),
                    kind,
                    day,
                });
            }
        }
    }
    out
}
