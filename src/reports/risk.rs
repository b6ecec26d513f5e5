//! Risk: customers whose exposure exceeds their credit limit or their insurer's cover,
//! and how concentrated the overdue amounts are.

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{money, Cell, Fixed, PerCurrency, ReportError, ReportQuery, Table, TopN};
use crate::domain::ActionKind;
use crate::store::reports::{ReportAccount, ReportNeeds};
use crate::store::Store;

/// A customer over its credit limit or its insurer's cover.
#[derive(Debug, Clone, Serialize)]
pub struct RiskRow {
    pub customer: String,
    pub name: String,
    pub segment: String,
    pub collector: Option<String>,
    /// The customer's currency: the limit, the cover and the amounts below are in it.
    pub currency: String,
    /// What the customer owes (open invoices in its currency).
    pub exposure: Decimal,
    pub overdue: Decimal,
    pub oldest_overdue_days: Option<i64>,
    pub credit_limit: Option<Decimal>,
    pub over_limit: Option<Decimal>,
    pub insurer: Option<String>,
    pub cover: Option<Decimal>,
    pub over_cover: Option<Decimal>,
    /// The earliest declaration deadline of an overdue invoice not handed over yet.
    pub declaration_deadline: Option<NaiveDate>,
    /// Days from the report's date to that deadline (negative once passed).
    pub deadline_days_left: Option<i64>,
}

/// A customer among those owing the most overdue.
#[derive(Debug, Clone, Serialize)]
pub struct ConcentrationRow {
    pub customer: String,
    pub name: String,
    pub overdue: Decimal,
    /// Share of the currency's overdue, in percent.
    pub share: Option<Decimal>,
}

/// How concentrated one currency's overdue is.
#[derive(Debug, Clone, Serialize)]
pub struct Concentration {
    pub currency: String,
    pub overdue: Decimal,
    pub customers_overdue: u64,
    /// The ten customers owing the most overdue, and their share of it.
    pub top_10_overdue: Decimal,
    pub top_10_share: Option<Decimal>,
    pub top_10: Vec<ConcentrationRow>,
}

/// The risk report.
#[derive(Debug, Clone, Serialize)]
pub struct Risk {
    pub report: &'static str,
    pub as_of: NaiveDate,
    /// How many customers are over their limit, over their cover.
    pub over_limit_customers: u64,
    pub over_cover_customers: u64,
    /// Those customers, by how much they exceed (largest first, `--top`).
    pub customers: Vec<RiskRow>,
    pub concentration: Vec<Concentration>,
}

fn row(
    a: &ReportAccount,
    query: &ReportQuery,
    config: &crate::config::Config,
) -> (Option<RiskRow>, PerCurrency<i64>) {
    let day = query.as_of;
    let c = &a.customer;
    let mut overdue_by: PerCurrency<i64> = PerCurrency::new();
    let (mut exposure, mut overdue, mut oldest, mut deadline) =
        (0i64, 0i64, None, None::<NaiveDate>);
    let insurer = c
        .insurer_policy
        .as_ref()
        .filter(|_| c.insured)
        .and_then(|p| config.insurers.get(p));
    for inv in &a.invoices {
        let open = query.open_minor(inv);
        if open <= 0 {
            continue;
        }
        let days = (day - inv.due_date).num_days();
        if days > 0 {
            *overdue_by.entry(inv.currency.clone()).or_default() += open;
        }
        if inv.currency != c.currency {
            continue;
        }
        exposure += open;
        if days > 0 {
            overdue += open;
            oldest = oldest.max(Some(days));
            let handed = a.actions.iter().any(|x| {
                x.kind == ActionKind::InsurerHandover
                    && x.decided_on <= day
                    && x.invoices.contains(&inv.number)
            });
            if let (Some(ins), false) = (insurer, handed) {
                let d = inv.due_date + Duration::days(ins.declaration_deadline_days);
                deadline = Some(deadline.map_or(d, |x: NaiveDate| x.min(d)));
            }
        }
    }
    let over = |limit: Option<i64>| limit.filter(|l| exposure > *l).map(|l| exposure - l);
    let over_limit = over(c.credit_limit_minor);
    let over_cover = if c.insured { over(c.cover_minor) } else { None };
    if over_limit.is_none() && over_cover.is_none() {
        return (None, overdue_by);
    }
    let m = |v: i64| money(&c.currency, v);
    (
        Some(RiskRow {
            customer: c.external_id.clone(),
            name: c.name.clone(),
            segment: c.segment.clone(),
            collector: c.collector.clone(),
            currency: c.currency.clone(),
            exposure: m(exposure),
            overdue: m(overdue),
            oldest_overdue_days: oldest,
            credit_limit: c.credit_limit_minor.map(m),
            over_limit: over_limit.map(m),
            insurer: c.insurer_policy.clone().filter(|_| c.insured),
            cover: c.cover_minor.filter(|_| c.insured).map(m),
            over_cover: over_cover.map(m),
            declaration_deadline: deadline,
            deadline_days_left: deadline.map(|d| (d - day).num_days()),
        }),
        overdue_by,
    )
}

/// Risk as of the query's date.
///
/// # Errors
/// The store's.
pub async fn risk(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Risk, ReportError> {
    let needs = ReportNeeds {
        timezone: config.timezone,
        handovers: true,
        ..ReportNeeds::default()
    };
    let (mut over_limit, mut over_cover) = (0u64, 0u64);
    let mut rows: TopN<RiskRow> = TopN::new(query.top, |r| {
        (
            r.over_limit
                .unwrap_or_default()
                .max(r.over_cover.unwrap_or_default()),
            r.customer.clone(),
        )
    });
    // Per currency: total overdue, customers overdue, the ten owing most.
    let mut conc: PerCurrency<(i64, u64, TopN<ConcentrationRow>)> = PerCurrency::new();
    super::for_each_account(store, query, needs, |a| {
        let (r, overdue_by) = row(a, query, config);
        if let Some(r) = r {
            over_limit += u64::from(r.over_limit.is_some());
            over_cover += u64::from(r.over_cover.is_some());
            rows.push(r);
        }
        for (currency, overdue) in overdue_by {
            let e = conc
                .entry(currency.clone())
                .or_insert_with(|| (0, 0, TopN::new(10, |r| (r.overdue, r.customer.clone()))));
            e.0 += overdue;
            e.1 += 1;
            e.2.push(ConcentrationRow {
                customer: a.customer.external_id.clone(),
                name: a.customer.name.clone(),
                overdue: money(&currency, overdue),
                share: None,
            });
        }
    })
    .await?;
    let concentration = conc
        .into_iter()
        .map(|(currency, (total, n, top))| {
            let total_d = money(&currency, total);
            let share = |v: Decimal| {
                (!total_d.is_zero()).then(|| (v * Decimal::from(100) / total_d).fixed(1))
            };
            let mut top = top.into_sorted();
            for r in &mut top {
                r.share = share(r.overdue);
            }
            let top_sum: Decimal = top.iter().map(|r| r.overdue).sum();
            Concentration {
                overdue: total_d,
                customers_overdue: n,
                top_10_overdue: top_sum,
                top_10_share: share(top_sum),
                top_10: top,
                currency,
            }
        })
        .collect();
    Ok(Risk {
        report: "risk",
        as_of: query.as_of,
        over_limit_customers: over_limit,
        over_cover_customers: over_cover,
        customers: rows.into_sorted(),
        concentration,
    })
}

impl Risk {
    pub fn tables(&self) -> Vec<Table> {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<String>>();
        let customers = Table {
            key: "customers",
            title: format!(
                "Risk as of {}: {} customers over their credit limit, {} over their insurer's cover",
                self.as_of, self.over_limit_customers, self.over_cover_customers
            ),
            columns: names(&[
                "customer",
                "name",
                "currency",
                "exposure",
                "overdue",
                "oldest_days",
                "credit_limit",
                "over_limit",
                "insurer",
                "cover",
                "over_cover",
                "declaration_deadline",
                "days_left",
            ]),
            rows: self
                .customers
                .iter()
                .map(|r| {
                    vec![
                        Cell::text(&r.customer),
                        Cell::text(&r.name),
                        Cell::text(&r.currency),
                        Cell::Amount(r.exposure),
                        Cell::Amount(r.overdue),
                        Cell::Number(r.oldest_overdue_days.map(Decimal::from)),
                        Cell::Number(r.credit_limit),
                        Cell::Number(r.over_limit),
                        Cell::text(r.insurer.clone().unwrap_or_default()),
                        Cell::Number(r.cover),
                        Cell::Number(r.over_cover),
                        Cell::Date(r.declaration_deadline),
                        Cell::Number(r.deadline_days_left.map(Decimal::from)),
                    ]
                })
                .collect(),
        };
        let concentration = Table {
            key: "concentration",
            title: format!(
                "Concentration as of {}: the ten customers owing the most overdue",
                self.as_of
            ),
            columns: names(&["currency", "customer", "name", "overdue", "share_percent"]),
            rows: self
                .concentration
                .iter()
                .flat_map(|c| {
                    c.top_10
                        .iter()
                        .map(|r| {
                            vec![
                                Cell::text(&c.currency),
                                Cell::text(&r.customer),
                                Cell::text(&r.name),
                                Cell::Amount(r.overdue),
                                Cell::Number(r.share),
                            ]
                        })
                        .chain(std::iter::once(vec![
                            Cell::text(&c.currency),
                            Cell::text("top 10"),
                            Cell::text(format!("of {} customers overdue", c.customers_overdue)),
                            Cell::Amount(c.top_10_overdue),
                            Cell::Number(c.top_10_share),
                        ]))
                        .collect::<Vec<_>>()
                })
                .collect(),
        };
        vec![customers, concentration]
    }
}
