//! What each dunning step earns: per segment, rule version and step, the actions sent
//! in the period, what they named, how much of it was paid soon after, and what was
//! collected, attributed to the last action before each payment that named the invoice.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{money, Cell, Fixed, ReportError, ReportQuery, Table};
use crate::domain::ActionKind;
use crate::store::reports::{ReportAccount, ReportAction, ReportNeeds};
use crate::store::Store;

/// One step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StepEffect {
    pub segment: String,
    /// The SHA-256 of the rule script that decided the actions.
    pub rule_hash: String,
    /// The variant of the segment's experiment that sent the actions (none for a
    /// segment without variants).
    pub variant: Option<String>,
    pub step: String,
    pub kind: ActionKind,
    pub currency: String,
    /// Actions of the step sent in the period.
    pub actions: u64,
    /// Invoices they named (an invoice named by two actions counts twice).
    pub invoices_named: u64,
    pub amount_named: Decimal,
    /// Share of the named invoices paid in full within 7, 14 and 30 days of the action,
    /// in percent.
    pub paid_within_7_days: Option<Decimal>,
    pub paid_within_14_days: Option<Decimal>,
    pub paid_within_30_days: Option<Decimal>,
    /// Payments attributed to the step's actions (up to the report's date).
    pub collected: Decimal,
    /// Median days from an action to a payment attributed to it.
    pub median_days_to_payment: Option<Decimal>,
    /// Disputes opened after an action of the step (it being the last before them that
    /// named the invoice).
    pub disputes_after: u64,
    /// Actions sent per 1,000 (of the currency) collected.
    pub contacts_per_1000: Option<Decimal>,
}

/// The effectiveness report.
#[derive(Debug, Clone, Serialize)]
pub struct Effectiveness {
    pub report: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub steps: Vec<StepEffect>,
}

type Key = (String, String, Option<String>, String, ActionKind, String);

#[derive(Debug, Default)]
struct Sums {
    actions: u64,
    invoices: u64,
    named: i64,
    within: [u64; 3],
    collected: i64,
    /// Days from action to payment: how many payments took each number of days.
    days: BTreeMap<i64, u64>,
    disputes: u64,
}

fn key(a: &ReportAction) -> Key {
    (
        a.segment.clone(),
        a.rule_hash.clone(),
        a.variant.clone(),
        a.step.clone(),
        a.kind,
        a.currency.clone(),
    )
}

/// The median of a histogram of days.
pub(crate) fn median(days: &BTreeMap<i64, u64>) -> Option<Decimal> {
    let n: u64 = days.values().sum();
    if n == 0 {
        return None;
    }
    let value_at = |rank: u64| {
        let mut seen = 0;
        for (d, c) in days {
            seen += c;
            if seen > rank {
                return *d;
            }
        }
        0
    };
    let lo = value_at((n - 1) / 2);
    let hi = value_at(n / 2);
    Some((Decimal::from(lo + hi) / Decimal::from(2)).fixed(1))
}

/// The last action in `actions` (sorted by sent day, then id) sent on or before `day`
/// that named `invoice`.
pub(crate) fn last_before<'a>(
    actions: &[&'a ReportAction],
    invoice: &str,
    day: NaiveDate,
) -> Option<&'a ReportAction> {
    actions
        .iter()
        .rev()
        .find(|a| a.sent_on <= day && a.invoices.iter().any(|n| n == invoice))
        .copied()
}

/// Payments on an account's invoices: (invoice, day, amount) — payments, not credit
/// notes, and what the ERP reported paid without a dated allocation (on the day relance
/// recorded it); up to `until`.
pub(crate) fn payments(a: &ReportAccount, until: NaiveDate) -> Vec<(&str, NaiveDate, i64)> {
    let mut out = Vec::new();
    for inv in &a.invoices {
        for s in &inv.settlements {
            if !s.credit_note && s.date <= until {
                out.push((inv.number.as_str(), s.date, s.amount_minor));
            }
        }
        let undated = inv.undated_minor();
        if undated > 0 && (inv.status == "open" || inv.status == "paid") && inv.updated_on <= until
        {
            out.push((inv.number.as_str(), inv.updated_on, undated));
        }
    }
    out
}

fn account(a: &ReportAccount, query: &ReportQuery, sums: &mut HashMap<Key, Sums>) {
    let mut sent: Vec<&ReportAction> = a
        .actions
        .iter()
        .filter(|x| x.status == "sent" && x.sent_on <= query.as_of)
        .collect();
    if sent.is_empty() {
        return;
    }
    sent.sort_by_key(|x| (x.sent_on, x.id));
    let in_period = |x: &ReportAction| x.sent_on >= query.from && x.sent_on <= query.to;
    let paid_on: HashMap<&str, Option<NaiveDate>> = a
        .invoices
        .iter()
        .map(|i| {
            let p = i.paid_in_full_on().filter(|d| *d <= query.as_of);
            let p = if i.status == "cancelled" || i.status == "written_off" {
                None
            } else {
                p
            };
            (i.number.as_str(), p)
        })
        .collect();
    for x in sent.iter().filter(|x| in_period(x)) {
        let s = sums.entry(key(x)).or_default();
        s.actions += 1;
        s.invoices += x.invoices.len() as u64;
        s.named += x.amount_minor;
        for n in &x.invoices {
            if let Some(Some(p)) = paid_on.get(n.as_str()) {
                let d = (*p - x.sent_on).num_days();
                if d >= 0 {
                    for (i, limit) in [7, 14, 30].iter().enumerate() {
                        if d <= *limit {
                            s.within[i] += 1;
                        }
                    }
                }
            }
        }
    }
    for (invoice, day, amount) in payments(a, query.as_of) {
        if let Some(x) = last_before(&sent, invoice, day).filter(|x| in_period(x)) {
            let s = sums.entry(key(x)).or_default();
            s.collected += amount;
            *s.days.entry((day - x.sent_on).num_days()).or_default() += 1;
        }
    }
    for inv in &a.invoices {
        for d in inv.disputes_opened().filter(|d| *d <= query.as_of) {
            if let Some(x) = last_before(&sent, &inv.number, d).filter(|x| in_period(x)) {
                sums.entry(key(x)).or_default().disputes += 1;
            }
        }
    }
}

/// What each step earned over the query's period.
///
/// # Errors
/// The store's.
pub async fn effectiveness(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Effectiveness, ReportError> {
    let needs = ReportNeeds {
        timezone: config.timezone,
        actions: true,
        ..ReportNeeds::default()
    };
    let mut sums: HashMap<Key, Sums> = HashMap::new();
    super::for_each_account(store, query, needs, |a| account(a, query, &mut sums)).await?;
    let mut steps: Vec<StepEffect> = sums
        .into_iter()
        .map(|((segment, rule_hash, variant, step, kind, currency), s)| {
            let collected = money(&currency, s.collected);
            let share = |n: u64| super::percent(n as i64, s.invoices as i64);
            StepEffect {
                amount_named: money(&currency, s.named),
                paid_within_7_days: share(s.within[0]),
                paid_within_14_days: share(s.within[1]),
                paid_within_30_days: share(s.within[2]),
                median_days_to_payment: median(&s.days),
                contacts_per_1000: (s.collected > 0)
                    .then(|| (Decimal::from(s.actions) * Decimal::from(1000) / collected).fixed(2)),
                collected,
                disputes_after: s.disputes,
                actions: s.actions,
                invoices_named: s.invoices,
                segment,
                rule_hash,
                variant,
                step,
                kind,
                currency,
            }
        })
        .collect();
    steps.sort_by(|a, b| {
        (&a.segment, &a.currency, &a.variant, &a.rule_hash, &a.step).cmp(&(
            &b.segment,
            &b.currency,
            &b.variant,
            &b.rule_hash,
            &b.step,
        ))
    });
    Ok(Effectiveness {
        report: "effectiveness",
        from: query.from,
        to: query.to,
        as_of: query.as_of,
        steps,
    })
}

impl Effectiveness {
    pub fn tables(&self) -> Vec<Table> {
        let columns = [
            "segment",
            "rule",
            "variant",
            "step",
            "kind",
            "currency",
            "actions",
            "invoices",
            "amount_named",
            "paid_7d_percent",
            "paid_14d_percent",
            "paid_30d_percent",
            "collected",
            "median_days",
            "disputes",
            "contacts_per_1000",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        vec![Table {
            key: "steps",
            title: format!(
                "What each step earned: actions sent {} to {}, payments up to {}",
                self.from, self.to, self.as_of
            ),
            columns,
            rows: self
                .steps
                .iter()
                .map(|s| {
                    vec![
                        Cell::text(&s.segment),
                        Cell::text(s.rule_hash.chars().take(12).collect::<String>()),
                        Cell::text(s.variant.as_deref().unwrap_or("")),
                        Cell::text(&s.step),
                        Cell::text(s.kind.as_str()),
                        Cell::text(&s.currency),
                        Cell::Int(s.actions as i64),
                        Cell::Int(s.invoices_named as i64),
                        Cell::Amount(s.amount_named),
                        Cell::Number(s.paid_within_7_days),
                        Cell::Number(s.paid_within_14_days),
                        Cell::Number(s.paid_within_30_days),
                        Cell::Amount(s.collected),
                        Cell::Number(s.median_days_to_payment),
                        Cell::Int(s.disputes_after as i64),
                        Cell::Number(s.contacts_per_1000),
                    ]
                })
                .collect(),
        }]
    }
}
