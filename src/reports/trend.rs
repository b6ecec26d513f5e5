//! Month by month: receivables, sales, DSO (count-back and simple), best possible DSO,
//! average days delinquent, and the collection effectiveness index (CEI).

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    first_of_month, last_of_month, money, Cell, Fixed, PerCurrency, ReportError, ReportKind,
    ReportQuery, Table,
};
use crate::store::reports::ReportNeeds;
use crate::store::Store;

/// How many months the count-back method may walk back from a month's end.
const COUNT_BACK_MONTHS: usize = 36;

/// One month's figures in one currency.
#[derive(Debug, Clone, Serialize)]
pub struct MonthFigures {
    /// `2026-11`.
    pub month: String,
    pub start: NaiveDate,
    /// The month's last day, or the end of the period if earlier.
    pub end: NaiveDate,
    /// Receivables at the end of the day before `start`.
    pub opening_receivables: Decimal,
    /// Invoices issued from `start` to `end`.
    pub sales: Decimal,
    pub closing_receivables: Decimal,
    /// Of the closing receivables, what was not yet due.
    pub closing_current: Decimal,
    pub closing_overdue: Decimal,
    /// Days sales outstanding, count-back method.
    pub dso_count_back: Option<Decimal>,
    /// Best possible DSO (current receivables only), count-back method.
    pub best_dso_count_back: Option<Decimal>,
    /// Average days delinquent: DSO − best possible DSO, count-back method.
    pub add_count_back: Option<Decimal>,
    /// Days sales outstanding, simple method: closing receivables / sales × days.
    pub dso_simple: Option<Decimal>,
    pub best_dso_simple: Option<Decimal>,
    pub add_simple: Option<Decimal>,
    /// Collection effectiveness index, in percent.
    pub cei: Option<Decimal>,
}

/// The months of one currency.
#[derive(Debug, Clone, Serialize)]
pub struct CurrencyTrend {
    pub currency: String,
    pub months: Vec<MonthFigures>,
}

/// DSO and CEI over a period.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub report: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub currencies: Vec<CurrencyTrend>,
}

/// Sums of one currency while reading.
#[derive(Debug, Default)]
struct Sums {
    /// Sales by issue date.
    sales: BTreeMap<NaiveDate, i64>,
    /// Receivables and current receivables at each date of `ends`.
    receivables: Vec<i64>,
    current: Vec<i64>,
}

/// The months of the period: (start, end), the first starting on `from`'s month's first
/// day, the last ending on `to`.
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = first_of_month(from);
    while start <= to {
        let end = last_of_month(start).min(to);
        out.push((start, end));
        start = last_of_month(start) + Duration::days(1);
    }
    out
}

fn days_dec(d: Decimal) -> Decimal {
    d.fixed(1)
}

/// The count-back DSO of `receivables` at `end`: walks back month by month, taking each
/// month's sales whole while they fit, then the fraction of the month that covers what
/// is left.
pub fn count_back(
    receivables: i64,
    end: NaiveDate,
    sales: &BTreeMap<NaiveDate, i64>,
) -> Option<Decimal> {
    if receivables <= 0 {
        return Some(Decimal::ZERO.fixed(1));
    }
    let mut remaining = receivables;
    let mut days = Decimal::ZERO;
    let mut period_end = end;
    for _ in 0..COUNT_BACK_MONTHS {
        let period_start = first_of_month(period_end);
        let s: i64 = sales.range(period_start..=period_end).map(|(_, v)| v).sum();
        let len = Decimal::from((period_end - period_start).num_days() + 1);
        if s > 0 && remaining <= s {
            days += Decimal::from(remaining) / Decimal::from(s) * len;
            return Some(days_dec(days));
        }
        remaining -= s;
        days += len;
        period_end = period_start - Duration::days(1);
    }
    // Receivables older than the walk: the days walked are a floor, not the figure.
    None
}

fn simple(receivables: i64, sales: i64, days: i64) -> Option<Decimal> {
    (sales > 0)
        .then(|| days_dec(Decimal::from(receivables) / Decimal::from(sales) * Decimal::from(days)))
}

fn minus(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    Some(a? - b?)
}

/// DSO and CEI per month over the query's period.
///
/// # Errors
/// The store's.
pub async fn trend(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Trend, ReportError> {
    let months = months(query.from, query.to);
    // The dates receivables are measured at: the eve of the first month, then each
    // month's end.
    let mut ends: Vec<NaiveDate> = vec![months[0].0 - Duration::days(1)];
    ends.extend(months.iter().map(|m| m.1));
    let sales_from = first_of_month(ends[0])
        .checked_sub_months(chrono::Months::new(COUNT_BACK_MONTHS as u32))
        .unwrap_or(ends[0]);
    let last = *ends.last().unwrap_or(&query.to);
    let needs = ReportNeeds {
        timezone: config.timezone,
        ..ReportNeeds::default()
    };
    let mut per: PerCurrency<Sums> = PerCurrency::new();
    super::for_each_account(store, query, needs, |a| {
        for inv in &a.invoices {
            let s = per.entry(inv.currency.clone()).or_insert_with(|| Sums {
                receivables: vec![0; ends.len()],
                current: vec![0; ends.len()],
                ..Sums::default()
            });
            if inv.issue_date >= sales_from && inv.issue_date <= last {
                *s.sales.entry(inv.issue_date).or_default() += inv.amount_minor;
            }
            if inv.issue_date > last {
                continue;
            }
            for (i, e) in ends.iter().enumerate() {
                if inv.issue_date > *e {
                    continue;
                }
                let open = query.open_minor_on(inv, *e);
                s.receivables[i] += open;
                if inv.due_date >= *e {
                    s.current[i] += open;
                }
            }
        }
    })
    .await?;
    let currencies = per
        .into_iter()
        .map(|(currency, s)| {
            let m = |v: i64| money(&currency, v);
            let figures = months
                .iter()
                .enumerate()
                .map(|(i, (start, end))| {
                    let opening = s.receivables[i];
                    let closing = s.receivables[i + 1];
                    let current = s.current[i + 1];
                    let sales: i64 = s.sales.range(*start..=*end).map(|(_, v)| v).sum();
                    let days = (*end - *start).num_days() + 1;
                    let dso_cb = count_back(closing, *end, &s.sales);
                    let best_cb = count_back(current, *end, &s.sales);
                    let dso_s = simple(closing, sales, days);
                    let best_s = simple(current, sales, days);
                    let collected = opening + sales - closing;
                    let collectible = opening + sales - current;
                    MonthFigures {
                        month: format!("{:04}-{:02}", start.year(), start.month()),
                        start: *start,
                        end: *end,
                        opening_receivables: m(opening),
                        sales: m(sales),
                        closing_receivables: m(closing),
                        closing_current: m(current),
                        closing_overdue: m(closing - current),
                        dso_count_back: dso_cb,
                        best_dso_count_back: best_cb,
                        add_count_back: minus(dso_cb, best_cb),
                        dso_simple: dso_s,
                        best_dso_simple: best_s,
                        add_simple: minus(dso_s, best_s),
                        cei: super::percent(collected, collectible),
                    }
                })
                .collect();
            CurrencyTrend {
                currency,
                months: figures,
            }
        })
        .collect();
    Ok(Trend {
        report: "trend",
        from: query.from,
        to: query.to,
        currencies,
    })
}

impl Trend {
    pub fn tables(&self, kind: ReportKind) -> Vec<Table> {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<String>>();
        let (key, title, columns) = if kind == ReportKind::Cei {
            (
                "cei",
                format!(
                    "Collection effectiveness index by month, {} to {}",
                    self.from, self.to
                ),
                names(&[
                    "month",
                    "currency",
                    "opening",
                    "sales",
                    "closing",
                    "closing_current",
                    "cei_percent",
                ]),
            )
        } else {
            (
                "dso",
                format!(
                    "Days sales outstanding by month, {} to {}",
                    self.from, self.to
                ),
                names(&[
                    "month",
                    "currency",
                    "receivables",
                    "overdue",
                    "sales",
                    "dso_count_back",
                    "best_dso_count_back",
                    "add_count_back",
                    "dso_simple",
                    "best_dso_simple",
                    "add_simple",
                ]),
            )
        };
        let rows = self
            .currencies
            .iter()
            .flat_map(|c| {
                c.months.iter().map(move |m| {
                    if kind == ReportKind::Cei {
                        vec![
                            Cell::text(&m.month),
                            Cell::text(&c.currency),
                            Cell::Amount(m.opening_receivables),
                            Cell::Amount(m.sales),
                            Cell::Amount(m.closing_receivables),
                            Cell::Amount(m.closing_current),
                            Cell::Number(m.cei),
                        ]
                    } else {
                        vec![
                            Cell::text(&m.month),
                            Cell::text(&c.currency),
                            Cell::Amount(m.closing_receivables),
                            Cell::Amount(m.closing_overdue),
                            Cell::Amount(m.sales),
                            Cell::Number(m.dso_count_back),
                            Cell::Number(m.best_dso_count_back),
                            Cell::Number(m.add_count_back),
                            Cell::Number(m.dso_simple),
                            Cell::Number(m.best_dso_simple),
                            Cell::Number(m.add_simple),
                        ]
                    }
                })
            })
            .collect();
        vec![Table {
            key,
            title,
            columns,
            rows,
        }]
    }
}
