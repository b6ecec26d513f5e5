//! Replaying a version of a segment's script over a past period: at each tick date of
//! the segment's schedule, every customer's account is rebuilt **as it was that day** —
//! invoices issued by then, what was still owed at the end of the day before (payments
//! and credit notes dated after it not yet received), disputes and pauses as they stood
//! (`holds`), promises made by then with their state on that day — with the actions the
//! replayed script itself decided on earlier tick dates as its history (not the live
//! log). What it decides is compared with what the live rules decided in the period
//! (the action log, whatever became of each action: sent, blocked, cancelled…). Streams: one batch of customers at a time, each replayed
//! over the whole period. Reads only.
//!
//! What cannot be rebuilt: the unapplied credit of past days (taken as none), changes to
//! the customer's own record (contacts, segment, tags: today's are used), and disputes
//! or pauses that had ended before the database kept their history (version 0012).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::Config;
use crate::domain::{
    Account, ActionKind, Currency, Dispute, Invoice, InvoiceStatus, OpenInvoice, Pause,
    PromiseStatus, PromiseToPay, StepRecord,
};
use crate::scheduler::diff::{DiffError, RuleVersion};
use crate::scripting::{DecisionStatus, Evaluator, Limits, RuleSet};
use crate::store::reports::{hold_on, Hold, ReportAccount, ReportFilter, ReportNeeds};
use crate::store::Store;

/// What to replay.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    pub segment: String,
    pub version: RuleVersion,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Counts of one side (the replay, or the live log).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideTotals {
    pub actions: u64,
    /// Emails, SMS and call tasks.
    pub contacts: u64,
    pub customers_contacted: u64,
    pub formal_notices: u64,
    pub insurer_handovers: u64,
    /// Contacts naming an invoice paid in full within the 3 days after them.
    pub wasted_contacts: u64,
    /// The open amounts the actions named, per currency.
    pub amounts: BTreeMap<String, Decimal>,
}

/// One step, replayed and live.
#[derive(Debug, Clone, Serialize)]
pub struct StepTotals {
    pub kind: ActionKind,
    pub step: String,
    pub replay: u64,
    pub live: u64,
    pub delta: i64,
}

/// The replay's result.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub segment: String,
    pub label: String,
    pub hash: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The tick dates replayed (the segment's schedule in the period).
    pub ticks: Vec<NaiveDate>,
    pub customers: u64,
    pub replay: SideTotals,
    pub live: SideTotals,
    pub steps: Vec<StepTotals>,
    /// Customers the replayed script failed for (at least once).
    pub errors: u64,
}

/// The days of the period on which the segment's schedule has a slot.
pub fn tick_dates(
    config: &Config,
    segment: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<NaiveDate> {
    let Some(seg) = config.segments.get(segment) else {
        return Vec::new();
    };
    let tz = config.timezone;
    let Some(start) = from
        .pred_opt()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .and_then(|t| t.and_local_timezone(tz).earliest())
    else {
        return Vec::new();
    };
    let mut days = BTreeSet::new();
    for t in seg.schedule.after(&start) {
        let d = t.date_naive();
        if d > to {
            break;
        }
        days.insert(d);
    }
    days.into_iter().collect()
}

/// One side's counts, being made.
#[derive(Default)]
struct Count {
    t: SideTotals,
    customers: BTreeSet<String>,
    steps: BTreeMap<(ActionKind, String), u64>,
}

impl Count {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        customer: &str,
        kind: ActionKind,
        step: &str,
        currency: &str,
        amount: Decimal,
        on: NaiveDate,
        invoices: &[String],
        paid_on: &BTreeMap<&str, NaiveDate>,
    ) {
        self.t.actions += 1;
        *self.steps.entry((kind, step.to_string())).or_default() += 1;
        *self.t.amounts.entry(currency.to_string()).or_default() += amount;
        match kind {
            ActionKind::FormalNotice => self.t.formal_notices += 1,
            ActionKind::InsurerHandover => self.t.insurer_handovers += 1,
            ActionKind::Email | ActionKind::Sms | ActionKind::CallTask => {
                self.t.contacts += 1;
                self.customers.insert(customer.to_string());
                let wasted = invoices.iter().any(|n| {
                    paid_on
                        .get(n.as_str())
                        .is_some_and(|p| *p > on && (*p - on).num_days() <= 3)
                });
                if wasted {
                    self.t.wasted_contacts += 1;
                }
            }
        }
    }
}

impl Count {
    fn merge(&mut self, other: Count) {
        let t = other.t;
        self.t.actions += t.actions;
        self.t.contacts += t.contacts;
        self.t.formal_notices += t.formal_notices;
        self.t.insurer_handovers += t.insurer_handovers;
        self.t.wasted_contacts += t.wasted_contacts;
        for (c, a) in t.amounts {
            *self.t.amounts.entry(c).or_default() += a;
        }
        self.customers.extend(other.customers);
        for (k, n) in other.steps {
            *self.steps.entry(k).or_default() += n;
        }
    }
}

/// Replays one customer over the tick dates and counts its live actions of the period;
/// `true` when the script failed for it.
fn replay_one(
    a: &ReportAccount,
    evaluator: &Evaluator,
    rules: &RuleSet,
    ticks: &[NaiveDate],
    (from, to): (NaiveDate, NaiveDate),
    replay: &mut Count,
    live: &mut Count,
) -> bool {
    let Some(customer) = &a.details else {
        return false;
    };
    let paid_on: BTreeMap<&str, NaiveDate> = a
        .invoices
        .iter()
        .filter_map(|i| i.paid_in_full_on().map(|d| (i.number.as_str(), d)))
        .collect();
    for x in &a.actions {
        if x.decided_on < from || x.decided_on > to {
            continue;
        }
        live.add(
            &a.customer.external_id,
            x.kind,
            &x.step,
            &x.currency,
            crate::reports::money(&x.currency, x.amount_minor),
            x.decided_on,
            &x.invoices,
            &paid_on,
        );
    }
    let mut history: Vec<StepRecord> = Vec::new();
    let mut failed = false;
    for &day in ticks {
        let Some(account) = account_on(a, customer, day, &history) else {
            continue;
        };
        let outcome = evaluator.evaluate(rules, account, day);
        for d in outcome.decisions {
            match d.status {
                DecisionStatus::Planned => {
                    let (Some(kind), Some(step)) = (d.kind, d.step.as_deref()) else {
                        continue;
                    };
                    let invoices: Vec<String> = d.invoices.iter().map(|i| i.to_string()).collect();
                    replay.add(
                        &a.customer.external_id,
                        kind,
                        step,
                        d.currency.code(),
                        d.amount,
                        day,
                        &invoices,
                        &paid_on,
                    );
                    for n in invoices {
                        history.push(StepRecord {
                            invoice: n,
                            kind,
                            step: step.to_string(),
                            date: day,
                            status: "sent".into(),
                        });
                    }
                }
                DecisionStatus::Error => failed = true,
                _ => {}
            }
        }
    }
    failed
}

fn pause_of(h: &Hold) -> Pause {
    Pause {
        reason: h.reason.clone(),
        until: h.until,
    }
}

/// A day as an instant: its first moment, UTC.
fn midnight(day: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// The account as it stood at the start of `day` (what a tick that day would read).
fn account_on(
    a: &ReportAccount,
    customer: &crate::domain::Customer,
    day: NaiveDate,
    history: &[StepRecord],
) -> Option<Account> {
    // A tick runs during the day: it knows what was recorded up to the day before.
    let known = day.pred_opt()?;
    let mut c = customer.clone();
    c.pause = hold_on(&a.customer.holds, false, day).map(pause_of);
    let mut invoices = Vec::new();
    for inv in &a.invoices {
        if inv.issue_date > day {
            continue;
        }
        let open_minor = inv.open_on(known);
        if open_minor <= 0 {
            continue;
        }
        let Ok(currency) = Currency::parse(&inv.currency) else {
            continue;
        };
        let money = |minor: i64| crate::reports::money(&inv.currency, minor);
        let dispute = hold_on(&inv.holds, true, day).map(|h| Dispute {
            reason: h.reason.clone(),
            opened_at: midnight(h.from),
        });
        let pause = hold_on(&inv.holds, false, day).map(pause_of);
        invoices.push(OpenInvoice {
            invoice: Invoice {
                number: inv.number.clone(),
                customer: customer.external_id.clone(),
                issue_date: inv.issue_date,
                due_date: inv.due_date,
                currency,
                amount: money(inv.amount_minor),
                open_amount: money(open_minor),
                status: InvoiceStatus::Open,
                dispute,
                pause,
            },
            payments: inv
                .settlements
                .iter()
                .filter(|s| s.date <= known)
                .map(|s| (s.date, money(s.amount_minor)))
                .collect(),
            einvoice_status: None,
        });
    }
    if invoices.is_empty() {
        return None;
    }
    invoices.sort_by(|x, y| {
        (x.invoice.due_date, &x.invoice.number).cmp(&(y.invoice.due_date, &y.invoice.number))
    });
    let open: BTreeSet<&str> = invoices.iter().map(|i| i.invoice.number.as_str()).collect();
    let history = history
        .iter()
        .filter(|h| open.contains(h.invoice.as_str()))
        .cloned()
        .collect();
    let mut promises = Vec::new();
    for p in &a.promises {
        if p.created_on > known || p.status == "cancelled" {
            continue;
        }
        let Ok(currency) = Currency::parse(&p.currency) else {
            continue;
        };
        let money = |minor: i64| crate::reports::money(&p.currency, minor);
        let covered: Vec<&crate::store::reports::ReportInvoice> = a
            .invoices
            .iter()
            .filter(|i| p.invoices.is_empty() || p.invoices.contains(&i.number))
            .collect();
        let paid_since: i64 = covered
            .iter()
            .flat_map(|i| i.settlements.iter())
            .filter(|s| s.date >= p.created_on && s.date <= known)
            .map(|s| s.amount_minor)
            .sum();
        let open_now: i64 = covered
            .iter()
            .filter(|i| i.issue_date <= day)
            .map(|i| i.open_on(known))
            .sum();
        let status = crate::domain::promise_status(
            p.promised_date,
            money(p.amount_minor),
            money(paid_since),
            money(open_now),
            day,
        );
        if status == PromiseStatus::Kept {
            continue;
        }
        promises.push(PromiseToPay {
            id: p.id,
            customer: customer.external_id.clone(),
            promised_date: p.promised_date,
            amount: money(p.amount_minor),
            currency,
            invoices: p.invoices.clone(),
            status,
            note: None,
            created_at: midnight(p.created_on),
        });
    }
    Some(Account {
        customer: c,
        invoices,
        unapplied_credit: Decimal::ZERO,
        history,
        promises,
    })
}

/// Replays `opts.version` over the period for the segment's customers.
///
/// # Errors
/// The version does not compile; a store error.
pub async fn backtest(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    opts: &BacktestOptions,
    progress: impl Fn(u64),
) -> Result<Backtest, DiffError> {
    let engine =
        crate::scripting::engine::build(Arc::new(config.calendar.clone()), &Limits::default());
    let rule = crate::scheduler::diff::compile_version(
        &engine,
        &config,
        &opts.segment,
        &opts.version,
        "replayed",
    )?;
    let hash = rule.hash.clone();
    let mut rules = RuleSet::default();
    rules.by_segment.insert(opts.segment.clone(), rule);
    let ticks = tick_dates(&config, &opts.segment, opts.from, opts.to);
    let filter = ReportFilter {
        segment: Some(opts.segment.clone()),
        ..ReportFilter::default()
    };
    let needs = ReportNeeds {
        timezone: config.timezone,
        promises: true,
        details: true,
        decided: true,
        ..ReportNeeds::default()
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut replay = Count::default();
    let mut live = Count::default();
    let mut customers = 0u64;
    let mut errors = 0u64;
    let mut stream = store.report_accounts(&filter, needs, 500);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        customers += batch.len() as u64;
        // Each worker thread replays a share of the batch with its own engine.
        let chunk = batch.len().div_ceil(workers).max(1);
        let parts: Vec<(Count, Count, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(chunk)
                .map(|part| {
                    let (config, rules, ticks) = (&config, &rules, &ticks);
                    let (from, to) = (opts.from, opts.to);
                    scope.spawn(move || {
                        let evaluator = Evaluator::new(config, Limits::default());
                        let mut replay = Count::default();
                        let mut live = Count::default();
                        let mut errors = 0;
                        for a in part {
                            let failed = crate::panics::contain(|| {
                                replay_one(
                                    a,
                                    &evaluator,
                                    rules,
                                    ticks,
                                    (from, to),
                                    &mut replay,
                                    &mut live,
                                )
                            });
                            if !matches!(failed, Ok(false)) {
                                errors += 1;
                            }
                        }
                        (replay, live, errors)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (r, l, e) in parts {
            replay.merge(r);
            live.merge(l);
            errors += e;
        }
        progress(customers);
    }
    let keys: BTreeSet<(ActionKind, String)> = replay
        .steps
        .keys()
        .chain(live.steps.keys())
        .cloned()
        .collect();
    let steps = keys
        .into_iter()
        .map(|k| {
            let r = replay.steps.get(&k).copied().unwrap_or(0);
            let l = live.steps.get(&k).copied().unwrap_or(0);
            StepTotals {
                kind: k.0,
                step: k.1,
                replay: r,
                live: l,
                delta: r as i64 - l as i64,
            }
        })
        .collect();
    let finish = |mut c: Count| {
        c.t.customers_contacted = c.customers.len() as u64;
        c.t
    };
    Ok(Backtest {
        segment: opts.segment.clone(),
        label: opts.version.label.clone(),
        hash,
        from: opts.from,
        to: opts.to,
        ticks,
        customers,
        replay: finish(replay),
        live: finish(live),
        steps,
        errors,
    })
}
