//! Reports credit managers steer by: the aged balance, DSO and CEI month by month, what
//! each dunning step earns, risk against credit limits and insurers' cover, and what
//! collectors' calls bring in; and the insurers' declaration deadlines.
//!
//! Each report reads the ledger once, in batches of customers
//! ([`crate::store::ReportStore`]), and keeps only its totals and a bounded list of
//! rows: memory does not grow with the portfolio. Amounts are kept per currency and never
//! summed across currencies. The formulas are documented in `docs/reports.md`.

pub mod aging;
pub mod collectors;
mod deadlines;
pub mod effectiveness;
pub mod experiment;
pub mod risk;
pub mod table;
pub mod trend;

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::Currency;
use crate::store::reports::{ReportAccount, ReportFilter, ReportNeeds};
use crate::store::{Store, StoreError};

pub use deadlines::{insurer_deadlines, DeadlineRow};
pub use table::{Cell, Table};

/// The reports, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Aging,
    Dso,
    Cei,
    Effectiveness,
    Risk,
    Collectors,
    Experiment,
}

impl ReportKind {
    pub const ALL: [ReportKind; 7] = [
        ReportKind::Aging,
        ReportKind::Dso,
        ReportKind::Cei,
        ReportKind::Effectiveness,
        ReportKind::Risk,
        ReportKind::Collectors,
        ReportKind::Experiment,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ReportKind::Aging => "aging",
            ReportKind::Dso => "dso",
            ReportKind::Cei => "cei",
            ReportKind::Effectiveness => "effectiveness",
            ReportKind::Risk => "risk",
            ReportKind::Collectors => "collectors",
            ReportKind::Experiment => "experiment",
        }
    }

    /// Whether the report covers a period (`from`, `to`) rather than one date.
    pub fn has_period(&self) -> bool {
        matches!(
            self,
            ReportKind::Dso
                | ReportKind::Cei
                | ReportKind::Effectiveness
                | ReportKind::Collectors
                | ReportKind::Experiment
        )
    }
}

impl std::str::FromStr for ReportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ReportKind::ALL.iter().map(ReportKind::as_str).collect();
                format!("unknown report '{s}' (expected {})", names.join(", "))
            })
    }
}

/// What a report covers: its date, period and filters.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// The date the report is as of (the end of the period for period reports).
    pub as_of: NaiveDate,
    /// The first day of the period (period reports).
    pub from: NaiveDate,
    /// The last day of the period; never after `as_of`.
    pub to: NaiveDate,
    /// Today in the configured time zone: as of today or later, open amounts are the
    /// ledger's current ones (what `relance ledger` shows).
    pub today: NaiveDate,
    pub filter: ReportFilter,
    /// How many customers the lists show (largest first).
    pub top: usize,
    /// Aging buckets: the last day past due of each bucket but the last (`[30, 60, 90, 120]`
    /// gives 1–30, 31–60, 61–90, 91–120 and over 120).
    pub buckets: Vec<i64>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportQuery {
    /// A query as of `as_of` over the twelve months up to it, no filter.
    pub fn new(as_of: NaiveDate, today: NaiveDate) -> ReportQuery {
        ReportQuery {
            as_of,
            from: first_of_month(as_of)
                .checked_sub_months(Months::new(11))
                .unwrap_or(as_of),
            to: as_of,
            today,
            filter: ReportFilter::default(),
            top: 20,
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }

    /// The query a command or a request asks for: `as_of` (the end of the period),
    /// `from` (default: twelve months), the filter and list length, with the
    /// configuration's buckets and list length; checked.
    ///
    /// # Errors
    /// An unknown segment, a bad period or currency.
    pub fn build(
        config: &crate::config::Config,
        as_of: NaiveDate,
        from: Option<NaiveDate>,
        filter: ReportFilter,
        top: Option<usize>,
        today: NaiveDate,
    ) -> Result<ReportQuery, ReportError> {
        let mut q = ReportQuery::new(as_of, today);
        if let Some(f) = from {
            q.from = f;
        }
        q.buckets = config.reports.aging_buckets.clone();
        q.top = top.unwrap_or(config.reports.top);
        q.filter = ReportFilter {
            currency: filter.currency.map(|c| c.trim().to_uppercase()),
            ..filter
        };
        if let Some(why) = q
            .filter
            .segment
            .as_deref()
            .and_then(|s| config.unknown_segment(s))
        {
            return Err(ReportError::Invalid(why));
        }
        if q.top > 10_000 {
            return Err(ReportError::Invalid("top: at most 10000".into()));
        }
        q.check()?;
        Ok(q)
    }

    /// Checks the period and buckets.
    ///
    /// # Errors
    /// `from` after `to`, a period of more than 10 years, buckets not increasing.
    pub fn check(&self) -> Result<(), ReportError> {
        if self.from > self.to {
            return Err(ReportError::Invalid(format!(
                "the period starts ({}) after it ends ({})",
                self.from, self.to
            )));
        }
        if (self.to - self.from).num_days() > 3660 {
            return Err(ReportError::Invalid(
                "the period is longer than 10 years".into(),
            ));
        }
        if self.buckets.is_empty()
            || self.buckets[0] < 1
            || self.buckets.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(ReportError::Invalid(format!(
                "aging buckets must be increasing numbers of days, the first at least 1 (got {:?})",
                self.buckets
            )));
        }
        if let Some(c) = &self.filter.currency {
            Currency::parse(c).map_err(|e| ReportError::Invalid(format!("currency: {e}")))?;
        }
        Ok(())
    }

    /// The open amount of an invoice as of the report's date: the ledger's current one
    /// as of today or later, else the amount less what was settled by then.
    pub(crate) fn open_minor(&self, inv: &crate::store::reports::ReportInvoice) -> i64 {
        self.open_minor_on(inv, self.as_of)
    }

    /// The open amount of an invoice at the end of `day` (see [`Self::open_minor`]).
    pub(crate) fn open_minor_on(
        &self,
        inv: &crate::store::reports::ReportInvoice,
        day: NaiveDate,
    ) -> i64 {
        if day >= self.today {
            if inv.status == "open" {
                inv.open_minor.max(0)
            } else {
                0
            }
        } else if inv.receivable_on(day) {
            inv.open_on(day)
        } else {
            0
        }
    }
}

/// The aging buckets used when the configuration sets none.
pub const DEFAULT_BUCKETS: [i64; 4] = [30, 60, 90, 120];

/// How many customers a batch reads.
const BATCH: usize = 500;

/// Reads every account the query selects, in batches, handing each to `each`.
pub(crate) async fn for_each_account(
    store: &dyn Store,
    query: &ReportQuery,
    needs: ReportNeeds,
    mut each: impl FnMut(&ReportAccount),
) -> Result<(), ReportError> {
    let mut stream = store.report_accounts(&query.filter, needs, BATCH);
    while let Some(batch) = stream.next().await {
        for account in batch? {
            each(&account);
        }
    }
    Ok(())
}

/// The first day of `d`'s month.
pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The last day of `d`'s month.
pub fn last_of_month(d: NaiveDate) -> NaiveDate {
    first_of_month(d)
        .checked_add_months(Months::new(1))
        .and_then(|n| n.pred_opt())
        .unwrap_or(d)
}

/// An amount in minor units of a currency code, as a decimal (`0` for an unknown code).
pub(crate) fn money(code: &str, minor: i64) -> Decimal {
    match Currency::parse(code) {
        Ok(c) => c.from_minor(minor),
        Err(_) => Decimal::from(minor),
    }
}

/// `part / whole × 100`, to one decimal; `None` when `whole` is zero.
pub(crate) fn percent(part: i64, whole: i64) -> Option<Decimal> {
    (whole != 0).then(|| (Decimal::from(part) * Decimal::from(100) / Decimal::from(whole)).fixed(1))
}

/// Totals kept per currency code, in code order.
pub(crate) type PerCurrency<T> = BTreeMap<String, T>;

/// The most `n` entries by `key`, kept bounded while a report streams: entries are
/// pushed, and the list is cut back to `n` whenever it doubles.
#[derive(Debug)]
pub(crate) struct TopN<T> {
    n: usize,
    items: Vec<T>,
    key: fn(&T) -> (Decimal, String),
}

impl<T> TopN<T> {
    pub(crate) fn new(n: usize, key: fn(&T) -> (Decimal, String)) -> TopN<T> {
        TopN {
            n,
            items: Vec::new(),
            key,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        self.items.push(item);
        if self.items.len() >= 2 * self.n.max(1) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let key = self.key;
        // Largest first; ties by name (the key's text) for a stable order.
        self.items.sort_by(|a, b| {
            let (ka, ta) = key(a);
            let (kb, tb) = key(b);
            kb.cmp(&ka).then_with(|| ta.cmp(&tb))
        });
        self.items.truncate(self.n);
    }

    pub(crate) fn into_sorted(mut self) -> Vec<T> {
        self.cut();
        self.items
    }
}

/// A report's result, whichever it is.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    Aging(aging::Aging),
    Trend(trend::Trend),
    Effectiveness(effectiveness::Effectiveness),
    Risk(risk::Risk),
    Collectors(collectors::Collectors),
    Experiment(experiment::Experiment),
}

impl Report {
    /// The report as tables (for the terminal and CSV).
    pub fn tables(&self, kind: ReportKind) -> Vec<Table> {
        match self {
            Report::Aging(r) => r.tables(),
            Report::Trend(r) => r.tables(kind),
            Report::Effectiveness(r) => r.tables(),
            Report::Risk(r) => r.tables(),
            Report::Collectors(r) => r.tables(),
            Report::Experiment(r) => r.tables(),
        }
    }
}

/// Runs report `kind`.
///
/// # Errors
/// An invalid query, or the store's error.
pub async fn run(
    store: &dyn Store,
    config: &crate::config::Config,
    kind: ReportKind,
    query: &ReportQuery,
) -> Result<Report, ReportError> {
    query.check()?;
    Ok(match kind {
        ReportKind::Aging => Report::Aging(aging::aging(store, config, query).await?),
        ReportKind::Dso | ReportKind::Cei => {
            let mut t = trend::trend(store, config, query).await?;
            t.report = kind.as_str();
            Report::Trend(t)
        }
        ReportKind::Effectiveness => {
            Report::Effectiveness(effectiveness::effectiveness(store, config, query).await?)
        }
        ReportKind::Risk => Report::Risk(risk::risk(store, config, query).await?),
        ReportKind::Collectors => {
            Report::Collectors(collectors::collectors(store, config, query).await?)
        }
        ReportKind::Experiment => {
            Report::Experiment(experiment::experiment(store, config, query).await?)
        }
    })
}

/// `part / whole × 100` of two amounts, to one decimal; `None` when `whole` is zero.
pub fn share(part: Decimal, whole: Decimal) -> Option<Decimal> {
    (!whole.is_zero()).then(|| (part * Decimal::from(100) / whole).fixed(1))
}

/// Decimals written with a fixed number of places, rounded half away from zero (as
/// accountants round): `30` days is `30.0`, `0.625` per thousand `0.63`.
pub(crate) trait Fixed {
    fn fixed(self, places: u32) -> Decimal;
}

impl Fixed for Decimal {
    fn fixed(self, places: u32) -> Decimal {
        let mut d = self
            .round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        d.rescale(places);
        d
    }
}
