//! Champion / challenger: the variants of a segment's experiment compared on what they
//! collect, each figure with its 95 % confidence interval, and a verdict in words.
//!
//! The unit of the experiment is the customer: customers are assigned to variants (not
//! invoices), and one customer's invoices are paid alike. Every figure is a ratio of two
//! sums over an arm's customers (invoices paid within 30 days ÷ overdue invoices,
//! collected ÷ collectible, contacts ÷ collected…); its variance is estimated by the delta
//! method for a ratio of means with the customer as the cluster, so invoices of the same
//! customer are not counted as independent. The difference between a challenger and the
//! champion has the standard error √(v₁ + v₂) and a 95 % interval of ± 1.96 of it (a
//! two-sample z-test); it is significant when the interval leaves out 0. The sums are
//! kept as the ledger streams by (sums of x, y, x², y², xy per arm): memory does not grow
//! with the portfolio. `docs/rules-experiments.md` gives the method and a worked example.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use super::effectiveness::payments;
use super::{money, Cell, Fixed, ReportError, ReportQuery, Table};
use crate::store::reports::{ReportAccount, ReportNeeds};
use crate::store::Store;

/// A figure of one arm, with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Estimate {
    pub value: Option<Decimal>,
    pub ci_low: Option<Decimal>,
    pub ci_high: Option<Decimal>,
}

/// One variant's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Arm {
    pub variant: String,
    pub weight: u32,
    /// Its configured share of the segment's customers, in percent.
    pub target_share: Decimal,
    /// The segment's customers assigned to it (and not moved during the period).
    pub customers: u64,
    /// Customers acted on in the period by another variant than the one they are in
    /// now (the weights or variants changed): left out of every figure.
    pub moved: u64,
    /// Invoices that fell due in the period (and at least 30 days before the as-of date)
    /// unpaid: the invoices the variants dunned.
    pub overdue_invoices: u64,
    /// Share of those paid in full within 14 and 30 days of their due date, in percent.
    pub paid_within_14_days: Estimate,
    pub paid_within_30_days: Estimate,
    /// Mean days from due date to full payment (an unpaid invoice counts the days up to
    /// the as-of date).
    pub days_to_pay: Estimate,
    /// Collection effectiveness over the period, in percent.
    pub cei: Estimate,
    /// Actions sent in the period.
    pub contacts: u64,
    /// Payments received in the period.
    pub collected: Decimal,
    /// Actions sent per 1,000 (of the currency) collected.
    pub contacts_per_1000: Estimate,
    /// Share of the overdue invoices disputed after their due date, in percent.
    pub disputed: Estimate,
}

/// A challenger against the champion on one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub variant: String,
    pub against: String,
    /// `paid_within_14_days`, `paid_within_30_days`, `days_to_pay`, `cei`,
    /// `contacts_per_1000` or `disputed`.
    pub figure: &'static str,
    /// The challenger's figure less the champion's.
    pub difference: Option<Decimal>,
    pub ci_low: Option<Decimal>,
    pub ci_high: Option<Decimal>,
    /// Whether the 95 % interval leaves out 0.
    pub significant: bool,
}

/// The experiment report.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub report: &'static str,
    pub segment: String,
    /// The experiment's name (customers are assigned by a hash of it and their id).
    pub experiment: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub currency: String,
    /// The variant the others are compared with: the one named `champion`, else the one
    /// of largest weight.
    pub champion: String,
    pub variants: Vec<Arm>,
    pub comparisons: Vec<Comparison>,
    /// In plain words, one sentence per challenger.
    pub verdict: Vec<String>,
}

/// The figures, in the order they are reported.
const FIGURES: [&str; 6] = [
    "paid_within_30_days",
    "paid_within_14_days",
    "days_to_pay",
    "cei",
    "contacts_per_1000",
    "disputed",
];

/// A ratio Σy / Σx over customers, kept as running sums.
#[derive(Debug, Default, Clone, Copy)]
struct Ratio {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Ratio {
    /// Adds one customer's (y, x).
    fn add(&mut self, y: f64, x: f64) {
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    /// The ratio times `scale` and the variance of that, by the delta method:
    /// Var(R) ≈ Σ(yᵢ − R xᵢ)² / ((n − 1) n x̄²).
    fn estimate(&self, scale: f64) -> Option<(f64, f64)> {
        if self.x <= 0.0 || self.n < 2.0 {
            return None;
        }
        let r = self.y / self.x;
        let residuals = (self.yy - 2.0 * r * self.xy + r * r * self.xx).max(0.0);
        let mean_x = self.x / self.n;
        let var = residuals / ((self.n - 1.0) * self.n * mean_x * mean_x);
        Some((r * scale, var * scale * scale))
    }
}

fn dec(v: f64, places: u32) -> Option<Decimal> {
    Decimal::from_f64(v).map(|d| d.fixed(places))
}

fn interval(e: Option<(f64, f64)>, places: u32) -> Estimate {
    match e {
        Some((v, var)) => {
            let half = 1.96 * var.sqrt();
            Estimate {
                value: dec(v, places),
                ci_low: dec(v - half, places),
                ci_high: dec(v + half, places),
            }
        }
        None => Estimate {
            value: None,
            ci_low: None,
            ci_high: None,
        },
    }
}

/// One arm's running sums.
#[derive(Debug, Default)]
struct ArmSums {
    customers: u64,
    /// Customers with an overdue invoice in the period.
    with_overdue: u64,
    moved: u64,
    overdue: u64,
    contacts: u64,
    collected: i64,
    paid14: Ratio,
    paid30: Ratio,
    days: Ratio,
    cei: Ratio,
    contacts_per: Ratio,
    disputed: Ratio,
}

/// The scale (× 100 for percentages, × 1,000 for contacts per 1,000) and decimal places
/// of each figure.
fn scale(figure: &str) -> (f64, u32) {
    match figure {
        "days_to_pay" => (1.0, 1),
        "contacts_per_1000" => (1000.0, 2),
        _ => (100.0, 1),
    }
}

impl ArmSums {
    fn ratio(&self, figure: &str) -> &Ratio {
        match figure {
            "paid_within_14_days" => &self.paid14,
            "paid_within_30_days" => &self.paid30,
            "days_to_pay" => &self.days,
            "cei" => &self.cei,
            "contacts_per_1000" => &self.contacts_per,
            _ => &self.disputed,
        }
    }

    fn account(&mut self, a: &ReportAccount, q: &ReportQuery, minor: f64) {
        self.customers += 1;
        let last_due = q.to.min(q.as_of - Duration::days(30));
        let (mut overdue, mut p14, mut p30, mut days, mut disputed) =
            (0u64, 0u64, 0u64, 0i64, 0u64);
        let (mut opening, mut sales, mut closing, mut current) = (0i64, 0i64, 0i64, 0i64);
        let eve = q.from - Duration::days(1);
        for inv in &a.invoices {
            if inv.status == "cancelled" {
                continue;
            }
            if inv.issue_date <= eve {
                opening += q.open_minor_on(inv, eve);
            }
            if inv.issue_date >= q.from && inv.issue_date <= q.to {
                sales += inv.amount_minor;
            }
            if inv.issue_date <= q.to {
                let open = q.open_minor_on(inv, q.to);
                closing += open;
                if inv.due_date >= q.to {
                    current += open;
                }
            }
            let due = inv.due_date;
            if due < q.from || due > last_due || q.open_minor_on(inv, due) <= 0 {
                continue;
            }
            overdue += 1;
            let paid = inv
                .paid_in_full_on()
                .filter(|d| *d <= q.as_of && inv.status != "written_off");
            let late = (paid.unwrap_or(q.as_of) - due).num_days().max(0);
            days += late;
            if paid.is_some() && late <= 14 {
                p14 += 1;
            }
            if paid.is_some() && late <= 30 {
                p30 += 1;
            }
            if inv.disputes_opened().any(|d| d >= due && d <= q.as_of) {
                disputed += 1;
            }
        }
        let contacts = a
            .actions
            .iter()
            .filter(|x| x.status == "sent" && x.sent_on >= q.from && x.sent_on <= q.to)
            .count() as u64;
        let collected: i64 = payments(a, q.to)
            .into_iter()
            .filter(|(_, d, _)| *d >= q.from)
            .map(|(_, _, amount)| amount)
            .sum();
        self.overdue += overdue;
        self.with_overdue += u64::from(overdue > 0);
        self.contacts += contacts;
        self.collected += collected;
        let o = overdue as f64;
        self.paid14.add(p14 as f64, o);
        self.paid30.add(p30 as f64, o);
        self.days.add(days as f64, o);
        self.disputed.add(disputed as f64, o);
        self.cei.add(
            (opening + sales - closing) as f64,
            (opening + sales - current) as f64,
        );
        // Contacts per unit of the currency collected, in major units.
        self.contacts_per
            .add(contacts as f64, collected as f64 / minor);
    }
}

/// Compares the variants of `segment`'s experiment over the query's period.
///
/// # Errors
/// The segment has no variants (or is unknown); the store's error.
pub async fn experiment(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Experiment, ReportError> {
    let Some(name) = query.filter.segment.clone() else {
        return Err(ReportError::Invalid(
            "the experiment report needs a segment (--segment, or ?segment=) whose variants it compares".into(),
        ));
    };
    let seg = config
        .segments
        .get(&name)
        .ok_or_else(|| ReportError::Invalid(config.unknown_segment(&name).unwrap_or_default()))?;
    let Some(experiment) = seg.experiment.clone() else {
        return Err(ReportError::Invalid(format!(
            "segment '{name}' has no variants (segments.{name}.variants in the configuration): there is no experiment to report on"
        )));
    };
    let mut q = query.clone();
    let currency = q
        .filter
        .currency
        .clone()
        .unwrap_or_else(|| config.company.currency.code().to_string());
    q.filter.currency = Some(currency.clone());
    let minor = crate::domain::Currency::parse(&currency)
        .map(|c| c.to_minor(Decimal::ONE).unwrap_or(100) as f64)
        .unwrap_or(100.0);
    let needs = ReportNeeds {
        timezone: config.timezone,
        actions: true,
        ..ReportNeeds::default()
    };
    let mut arms: BTreeMap<String, ArmSums> = seg
        .scripts
        .iter()
        .filter_map(|s| s.variant.clone())
        .map(|v| (v, ArmSums::default()))
        .collect();
    super::for_each_account(store, &q, needs, |a| {
        let assigned = seg
            .script_for(&a.customer.external_id)
            .variant
            .clone()
            .unwrap_or_default();
        let Some(arm) = arms.get_mut(&assigned) else {
            return;
        };
        // Acted on by another variant in the period: moved by a change of weights.
        let moved = a.actions.iter().any(|x| {
            x.sent_on >= q.from
                && x.sent_on <= q.to
                && x.variant.as_deref().is_some_and(|v| v != assigned)
        });
        if moved {
            arm.moved += 1;
        } else {
            arm.account(a, &q, minor);
        }
    })
    .await?;
    let total_weight: u32 = seg.scripts.iter().map(|s| s.weight).sum();
    let champion = seg
        .scripts
        .iter()
        .find(|s| s.variant.as_deref() == Some("champion"))
        .or_else(|| {
            // The largest weight; the first by name among equals.
            seg.scripts.iter().rev().max_by_key(|s| s.weight)
        })
        .and_then(|s| s.variant.clone())
        .unwrap_or_default();
    let variants: Vec<Arm> = seg
        .scripts
        .iter()
        .filter_map(|s| {
            let v = s.variant.clone()?;
            let sums = arms.get(&v)?;
            let est = |f: &str| {
                let (k, places) = scale(f);
                interval(sums.ratio(f).estimate(k), places)
            };
            Some(Arm {
                target_share: super::percent(i64::from(s.weight), i64::from(total_weight))
                    .unwrap_or_default(),
                weight: s.weight,
                customers: sums.customers,
                moved: sums.moved,
                overdue_invoices: sums.overdue,
                paid_within_14_days: est("paid_within_14_days"),
                paid_within_30_days: est("paid_within_30_days"),
                days_to_pay: est("days_to_pay"),
                cei: est("cei"),
                contacts: sums.contacts,
                collected: money(&currency, sums.collected),
                contacts_per_1000: est("contacts_per_1000"),
                disputed: est("disputed"),
                variant: v,
            })
        })
        .collect();
    let mut comparisons = Vec::new();
    let mut verdict = Vec::new();
    if let Some(base) = arms.get(&champion) {
        for (v, sums) in arms.iter().filter(|(v, _)| **v != champion) {
            for f in FIGURES {
                let (k, places) = scale(f);
                let d = match (sums.ratio(f).estimate(k), base.ratio(f).estimate(k)) {
                    (Some((a, va)), Some((b, vb))) => Some((a - b, (va + vb).sqrt())),
                    _ => None,
                };
                comparisons.push(Comparison {
                    variant: v.clone(),
                    against: champion.clone(),
                    figure: f,
                    difference: d.and_then(|(x, _)| dec(x, places)),
                    ci_low: d.and_then(|(x, se)| dec(x - 1.96 * se, places)),
                    ci_high: d.and_then(|(x, se)| dec(x + 1.96 * se, places)),
                    significant: d.is_some_and(|(x, se)| se > 0.0 && x.abs() > 1.96 * se),
                });
            }
            verdict.push(sentence(v, &champion, sums, base, &comparisons));
        }
    }
    Ok(Experiment {
        report: "experiment",
        segment: name,
        experiment,
        from: q.from,
        to: q.to,
        as_of: q.as_of,
        currency,
        champion,
        variants,
        comparisons,
        verdict,
    })
}

/// Customers per arm below which no verdict is given.
const TOO_FEW: u64 = 30;

/// The verdict on `variant` against `champion`, on the share paid within 30 days.
fn sentence(
    variant: &str,
    champion: &str,
    arm: &ArmSums,
    base: &ArmSums,
    comparisons: &[Comparison],
) -> String {
    let customers = format!(
        "{} and {} customers",
        group(arm.customers),
        group(base.customers)
    );
    if arm.with_overdue < TOO_FEW || base.with_overdue < TOO_FEW {
        return format!(
            "{variant} against {champion}: not enough data yet ({customers}; at least {TOO_FEW} customers with an invoice due in the period are needed in each)"
        );
    }
    let Some(c) = comparisons
        .iter()
        .find(|c| c.variant == variant && c.figure == "paid_within_30_days")
    else {
        return format!("{variant} against {champion}: no figure to compare");
    };
    let (Some(d), Some(lo), Some(hi)) = (c.difference, c.ci_low, c.ci_high) else {
        return format!("{variant} against {champion}: no figure to compare");
    };
    let ci = format!("95 % CI {lo} to {hi}");
    // The other figures whose difference is significant, named after the main one.
    let also: Vec<String> = comparisons
        .iter()
        .filter(|o| o.variant == variant && o.significant && o.figure != "paid_within_30_days")
        .filter_map(|o| {
            let (d, lo, hi) = (o.difference?, o.ci_low?, o.ci_high?);
            let sign = if d > Decimal::ZERO { "+" } else { "" };
            Some(format!(
                "{} {sign}{d} (95 % CI {lo} to {hi})",
                o.figure.replace('_', " ")
            ))
        })
        .collect();
    let also = if also.is_empty() {
        String::new()
    } else {
        format!(". Also significant: {}", also.join("; "))
    };
    if c.significant {
        let (more, points) = if d > Decimal::ZERO {
            ("more", d)
        } else {
            ("less", -d)
        };
        format!(
            "{variant} collects {points} points {more} invoices within 30 days of their due date than {champion} ({ci}; {customers}){also}"
        )
    } else {
        format!(
            "no significant difference between {variant} and {champion} in the share of invoices paid within 30 days ({d} points, {ci}; {customers}){also}"
        )
    }
}

/// `3400` as `3,400`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Experiment {
    pub fn tables(&self) -> Vec<Table> {
        let est = |e: &Estimate| {
            [
                Cell::Number(e.value),
                Cell::Number(e.ci_low),
                Cell::Number(e.ci_high),
            ]
        };
        let mut columns: Vec<String> = [
            "variant",
            "weight",
            "target_share",
            "customers",
            "moved",
            "overdue_invoices",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        for f in FIGURES {
            columns.push(f.to_string());
            columns.push(format!("{f}_ci_low"));
            columns.push(format!("{f}_ci_high"));
        }
        columns.push("contacts".into());
        columns.push("collected".into());
        let rows = self
            .variants
            .iter()
            .map(|a| {
                let mut row = vec![
                    Cell::text(&a.variant),
                    Cell::Int(i64::from(a.weight)),
                    Cell::Number(Some(a.target_share)),
                    Cell::Int(a.customers as i64),
                    Cell::Int(a.moved as i64),
                    Cell::Int(a.overdue_invoices as i64),
                ];
                for e in [
                    &a.paid_within_30_days,
                    &a.paid_within_14_days,
                    &a.days_to_pay,
                    &a.cei,
                    &a.contacts_per_1000,
                    &a.disputed,
                ] {
                    row.extend(est(e));
                }
                row.push(Cell::Int(a.contacts as i64));
                row.push(Cell::Amount(a.collected));
                row
            })
            .collect();
        vec![
            Table {
                key: "verdict",
                title: format!(
                    "Experiment '{}' of segment {}: invoices due {} to {}, payments up to {} ({}); champion: {}",
                    self.experiment, self.segment, self.from, self.to, self.as_of, self.currency, self.champion
                ),
                columns: vec!["verdict".into()],
                rows: self.verdict.iter().map(|v| vec![Cell::text(v)]).collect(),
            },
            Table {
                key: "variants",
                title: "Each variant's figures, with their 95 % confidence intervals".into(),
                columns,
                rows,
            },
            Table {
                key: "comparisons",
                title: "Each challenger less the champion".into(),
                columns: [
                    "variant",
                    "against",
                    "figure",
                    "difference",
                    "ci_low",
                    "ci_high",
                    "significant",
                ]
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
                rows: self
                    .comparisons
                    .iter()
                    .map(|c| {
                        vec![
                            Cell::text(&c.variant),
                            Cell::text(&c.against),
                            Cell::text(c.figure),
                            Cell::Number(c.difference),
                            Cell::Number(c.ci_low),
                            Cell::Number(c.ci_high),
                            Cell::text(if c.significant { "yes" } else { "no" }),
                        ]
                    })
                    .collect(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_of_independent_units_has_the_binomial_variance() {
        // 1,000 customers with one invoice each, 300 paid: p = 0.3, Var = p(1-p)/n.
        let mut r = Ratio::default();
        for i in 0..1000 {
            r.add(if i < 300 { 1.0 } else { 0.0 }, 1.0);
        }
        let (p, var) = r.estimate(1.0).unwrap();
        assert!((p - 0.3).abs() < 1e-12);
        let binomial = 0.3 * 0.7 / 1000.0;
        // The delta method's n - 1 makes it n / (n - 1) times the binomial's.
        assert!((var - binomial * 1000.0 / 999.0).abs() < 1e-12, "{var}");
    }

    #[test]
    fn grouped_counts() {
        assert_eq!(group(3400), "3,400");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
