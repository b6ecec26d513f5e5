//! The aged balance (balance âgée): open amounts by how long past due, per customer and
//! in total, per currency, with what is disputed, paused, promised or handed over to the
//! insurer shown apart.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{money, Cell, PerCurrency, ReportError, ReportQuery, Table, TopN};
use crate::domain::ActionKind;
use crate::store::reports::{ReportAccount, ReportNeeds};
use crate::store::Store;

/// One bucket's label and amount.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// `not_due`, `1-30`, …, `over_120`.
    pub label: String,
    pub amount: Decimal,
}

/// Open amounts of one customer, or of all, in one currency.
#[derive(Debug, Clone, Serialize)]
pub struct AgedBalance {
    pub currency: String,
    pub open_invoices: u64,
    pub open: Decimal,
    pub overdue: Decimal,
    /// Not due, then each bucket of days past due.
    pub buckets: Vec<Bucket>,
    /// Parts of `open` (each also counted in its bucket): invoices with a dispute open,
    /// paused (the invoice or its customer), covered by a pending promise, handed over to
    /// the credit insurer.
    pub disputed: Decimal,
    pub paused: Decimal,
    pub promised: Decimal,
    pub handed_over: Decimal,
}

/// A customer's line.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerAging {
    pub customer: String,
    pub name: String,
    pub segment: String,
    pub collector: Option<String>,
    pub oldest_overdue_days: Option<i64>,
    #[serde(flatten)]
    pub balance: AgedBalance,
}

/// Totals of one currency.
#[derive(Debug, Clone, Serialize)]
pub struct AgingTotal {
    pub customers: u64,
    #[serde(flatten)]
    pub balance: AgedBalance,
}

/// The aged balance.
#[derive(Debug, Clone, Serialize)]
pub struct Aging {
    pub report: &'static str,
    pub as_of: NaiveDate,
    /// The buckets' labels, in order.
    pub buckets: Vec<String>,
    pub totals: Vec<AgingTotal>,
    /// The customers with the largest overdue amounts, largest first (`--top`).
    pub customers: Vec<CustomerAging>,
}

/// Labels of the buckets `limits` make: `not_due`, `1-30`, `31-60`, …, `over_120`.
pub fn bucket_labels(limits: &[i64]) -> Vec<String> {
    let mut labels = vec!["not_due".to_string()];
    let mut low = 1;
    for l in limits {
        labels.push(format!("{low}-{l}"));
        low = l + 1;
    }
    labels.push(format!("over_{}", limits.last().copied().unwrap_or(0)));
    labels
}

/// The bucket (index into [`bucket_labels`]) of an invoice `days` past due.
pub fn bucket_of(days: i64, limits: &[i64]) -> usize {
    if days <= 0 {
        return 0;
    }
    limits
        .iter()
        .position(|l| days <= *l)
        .map_or(limits.len() + 1, |i| i + 1)
}

/// Sums in minor units while reading.
#[derive(Debug, Clone, Default)]
struct Sums {
    invoices: u64,
    open: i64,
    overdue: i64,
    buckets: Vec<i64>,
    disputed: i64,
    paused: i64,
    promised: i64,
    handed_over: i64,
    oldest: Option<i64>,
}

impl Sums {
    fn new(n: usize) -> Sums {
        Sums {
            buckets: vec![0; n],
            ..Sums::default()
        }
    }

    fn add(&mut self, o: &Sums) {
        self.invoices += o.invoices;
        self.open += o.open;
        self.overdue += o.overdue;
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.disputed += o.disputed;
        self.paused += o.paused;
        self.promised += o.promised;
        self.handed_over += o.handed_over;
        self.oldest = self.oldest.max(o.oldest);
    }

    fn balance(&self, currency: &str, labels: &[String]) -> AgedBalance {
        let m = |v: i64| money(currency, v);
        AgedBalance {
            currency: currency.to_string(),
            open_invoices: self.invoices,
            open: m(self.open),
            overdue: m(self.overdue),
            buckets: labels
                .iter()
                .zip(&self.buckets)
                .map(|(l, v)| Bucket {
                    label: l.clone(),
                    amount: m(*v),
                })
                .collect(),
            disputed: m(self.disputed),
            paused: m(self.paused),
            promised: m(self.promised),
            handed_over: m(self.handed_over),
        }
    }
}

/// Whether a pause (`Some(until)`) holds on `day`.
/// One account's sums per currency as of the query's date.
fn account_sums(a: &ReportAccount, query: &ReportQuery, n_buckets: usize) -> PerCurrency<Sums> {
    let day = query.as_of;
    let mut out: PerCurrency<Sums> = PerCurrency::new();
    let customer_paused = a.customer.paused_on(day);
    for inv in &a.invoices {
        let open = query.open_minor(inv);
        if open <= 0 {
            continue;
        }
        let s = out
            .entry(inv.currency.clone())
            .or_insert_with(|| Sums::new(n_buckets));
        let days = (day - inv.due_date).num_days();
        s.invoices += 1;
        s.open += open;
        s.buckets[super::aging::bucket_of(days, &query.buckets)] += open;
        if days > 0 {
            s.overdue += open;
            s.oldest = s.oldest.max(Some(days));
        }
        if inv.disputed_at_end_of(day) {
            s.disputed += open;
        }
        if customer_paused || inv.paused_at_end_of(day) {
            s.paused += open;
        }
        let promised = a.promises.iter().any(|p| {
            p.invoices.contains(&inv.number)
                && p.created_on <= day
                && p.promised_date >= day
                && (p.status == "pending" || p.resolved_on.is_some_and(|r| r > day))
        });
        if promised {
            s.promised += open;
        }
        let handed = a.actions.iter().any(|x| {
            x.kind == ActionKind::InsurerHandover
                && x.decided_on <= day
                && x.invoices.contains(&inv.number)
        });
        if handed {
            s.handed_over += open;
        }
    }
    out
}

/// The aged balance as of the query's date.
///
/// # Errors
/// The store's.
pub async fn aging(
    store: &dyn Store,
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<Aging, ReportError> {
    let labels = bucket_labels(&query.buckets);
    let n = labels.len();
    let needs = ReportNeeds {
        timezone: config.timezone,
        promises: true,
        handovers: true,
        ..ReportNeeds::default()
    };
    let mut totals: PerCurrency<(u64, Sums)> = PerCurrency::new();
    let mut tops: PerCurrency<TopN<CustomerAging>> = PerCurrency::new();
    super::for_each_account(store, query, needs, |a| {
        for (currency, s) in account_sums(a, query, n) {
            let t = totals
                .entry(currency.clone())
                .or_insert_with(|| (0, Sums::new(n)));
            t.0 += 1;
            t.1.add(&s);
            if query.top > 0 && s.overdue > 0 {
                let top = tops.entry(currency.clone()).or_insert_with(|| {
                    TopN::new(query.top, |c| (c.balance.overdue, c.customer.clone()))
                });
                top.push(CustomerAging {
                    customer: a.customer.external_id.clone(),
                    name: a.customer.name.clone(),
                    segment: a.customer.segment.clone(),
                    collector: a.customer.collector.clone(),
                    oldest_overdue_days: s.oldest,
                    balance: s.balance(&currency, &labels),
                });
            }
        }
    })
    .await?;
    Ok(Aging {
        report: "aging",
        as_of: query.as_of,
        totals: totals
            .iter()
            .map(|(c, (customers, s))| AgingTotal {
                customers: *customers,
                balance: s.balance(c, &labels),
            })
            .collect(),
        customers: tops.into_values().flat_map(TopN::into_sorted).collect(),
        buckets: labels,
    })
}

impl Aging {
    pub fn tables(&self) -> Vec<Table> {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<String>>();
        let mut columns = names(&["customer", "name", "segment", "collector", "currency"]);
        let row = |b: &AgedBalance| -> Vec<Cell> {
            let mut r = vec![Cell::Int(b.open_invoices as i64), Cell::Amount(b.open)];
            r.extend(b.buckets.iter().map(|x| Cell::Amount(x.amount)));
            r.extend([
                Cell::Amount(b.overdue),
                Cell::Amount(b.disputed),
                Cell::Amount(b.paused),
                Cell::Amount(b.promised),
                Cell::Amount(b.handed_over),
            ]);
            r
        };
        let mut tail = names(&["invoices", "open"]);
        tail.extend(self.buckets.iter().cloned());
        tail.extend(names(&[
            "overdue",
            "disputed",
            "paused",
            "promised",
            "handed_over",
        ]));
        columns.extend(tail.iter().cloned());
        let customers = Table {
            key: "customers",
            title: format!(
                "Aged balance as of {}: the {} customers with the largest overdue amounts (per currency)",
                self.as_of,
                self.customers.len()
            ),
            columns,
            rows: self
                .customers
                .iter()
                .map(|c| {
                    let mut r = vec![
                        Cell::text(&c.customer),
                        Cell::text(&c.name),
                        Cell::text(&c.segment),
                        Cell::text(c.collector.clone().unwrap_or_default()),
                        Cell::text(&c.balance.currency),
                    ];
                    r.extend(row(&c.balance));
                    r
                })
                .collect(),
        };
        let mut total_cols = names(&["currency", "customers"]);
        total_cols.extend(tail);
        let totals = Table {
            key: "totals",
            title: format!("Aged balance as of {}: totals by currency", self.as_of),
            columns: total_cols,
            rows: self
                .totals
                .iter()
                .map(|t| {
                    let mut r = vec![
                        Cell::text(&t.balance.currency),
                        Cell::Int(t.customers as i64),
                    ];
                    r.extend(row(&t.balance));
                    r
                })
                .collect(),
        };
        vec![totals, customers]
    }
}
