//! The Rhai engine rule scripts run in: built from `Engine::new_raw()` with only the
//! packages rules need, every limit set in one place ([`Limits`]), no `eval`, no
//! modules, strict variables, and the facts and constructors of the rule API.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage,
    MoreStringPackage, Package,
};
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext,
    Position, INT,
};
use rust_decimal::Decimal;

use super::actions::{self, ActionRequest};
use super::facts::{CustomerFacts, Date, InvoiceFacts, InvoiceList};
use crate::domain::dates::{CalendarError, CALENDAR_YEARS};
use crate::domain::{ActionKind, BusinessCalendar};

/// Resource limits for one customer's evaluation.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_function_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_variables: usize,
    /// Wall-clock budget per customer.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 200_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 16 * 1024,
            max_array_size: 10_000,
            max_map_size: 1_000,
            max_variables: 1_000,
            time_budget: Duration::from_millis(100),
        }
    }
}

thread_local! {
    /// Deadline of the evaluation running on this thread.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets the wall-clock deadline for evaluations on this thread (`None` clears it).
pub(crate) fn set_deadline(deadline: Option<Instant>) {
    DEADLINE.with(|d| d.set(deadline));
}

/// Message of the token `on_progress` stops a script with.
pub(crate) const TIME_BUDGET_EXCEEDED: &str = "time budget exceeded";

fn rt_err(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        msg.into().into(),
        Position::NONE,
    ))
}

fn opt<T: Clone + Send + Sync + 'static>(v: Option<T>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from)
}

/// Builds an engine for rule scripts.
pub fn build(calendar: Arc<BusinessCalendar>, limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(CorePackage::new().as_shared_module());
    engine.register_global_module(LogicPackage::new().as_shared_module());
    engine.register_global_module(BasicMathPackage::new().as_shared_module());
    engine.register_global_module(BasicArrayPackage::new().as_shared_module());
    engine.register_global_module(BasicMapPackage::new().as_shared_module());
    engine.register_global_module(MoreStringPackage::new().as_shared_module());
    engine.disable_symbol("eval");
    // Scripts are compiled as written, so that the checks see every line (the optimiser
    // would drop an `if` whose block is empty, with its condition); the registry then
    // optimises the AST that runs (`registry::compile`).
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_variables(limits.max_variables);
    engine.on_print(|s| tracing::debug!(target: "relance::rules", "print: {s}"));
    engine.on_debug(|s, src, pos| tracing::debug!(target: "relance::rules", "debug: {}:{pos}: {s}", src.unwrap_or("")));
    engine.on_progress(|ops| {
        // Reading the clock costs more than an operation: look every 1024.
        if ops % 1024 != 0 {
            return None;
        }
        past_deadline().then(|| Dynamic::from(TIME_BUDGET_EXCEEDED))
    });
    register_dates(&mut engine, calendar);
    register_customer(&mut engine);
    register_invoice(&mut engine);
    register_invoice_list(&mut engine);
    register_lists(&mut engine);
    register_actions(&mut engine);
    engine
}

/// Whether the evaluation running on this thread is past its deadline.
fn past_deadline() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|dl| Instant::now() > dl))
}

/// The error that stops a script whose time ran out inside a built-in function: the
/// same token `on_progress` stops it with, so it reads as the budget's message.
fn budget_err() -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from(TIME_BUDGET_EXCEEDED),
        Position::NONE,
    ))
}

fn calendar_err(what: String, e: CalendarError) -> Box<EvalAltResult> {
    match e {
        CalendarError::Interrupted => budget_err(),
        CalendarError::OutOfRange(_) => rt_err(format!(
            "{what}: the result is outside the calendar (years 1 to 9999)"
        )),
    }
}

/// `d` moved by `n` days, within the calendar's years; `what` names the operation in
/// the error.
fn shift(
    d: Date,
    n: Option<INT>,
    what: impl FnOnce() -> String,
) -> Result<Date, Box<EvalAltResult>> {
    n.and_then(chrono::Duration::try_days)
        .and_then(|delta| d.0.checked_add_signed(delta))
        .filter(|r| CALENDAR_YEARS.contains(&r.year()))
        .map(Date)
        .ok_or_else(|| {
            rt_err(format!(
                "{}: the result is outside the calendar (years 1 to 9999)",
                what()
            ))
        })
}

/// A date a calendar function is given, checked against the calendar's years.
fn in_calendar(d: Date, what: &str) -> Result<NaiveDate, Box<EvalAltResult>> {
    if CALENDAR_YEARS.contains(&d.0.year()) {
        Ok(d.0)
    } else {
        Err(rt_err(format!(
            "{what}: {} is outside the calendar (years 1 to 9999)",
            d.0
        )))
    }
}

fn register_dates(engine: &mut Engine, cal: Arc<BusinessCalendar>) {
    engine.register_type_with_name::<Date>("Date");
    engine.register_fn("-", |a: Date, b: Date| -> INT { (a.0 - b.0).num_days() });
    engine.register_fn("+", |a: Date, n: INT| {
        shift(a, Some(n), || format!("{} + {n} days", a.0))
    });
    engine.register_fn("-", |a: Date, n: INT| {
        shift(a, n.checked_neg(), || format!("{} - {n} days", a.0))
    });
    engine.register_fn("==", |a: Date, b: Date| a == b);
    engine.register_fn("!=", |a: Date, b: Date| a != b);
    engine.register_fn("<", |a: Date, b: Date| a < b);
    engine.register_fn("<=", |a: Date, b: Date| a <= b);
    engine.register_fn(">", |a: Date, b: Date| a > b);
    engine.register_fn(">=", |a: Date, b: Date| a >= b);
    engine.register_fn("to_string", |d: &mut Date| d.0.to_string());
    engine.register_fn("to_debug", |d: &mut Date| d.0.to_string());
    engine.register_get("year", |d: &mut Date| -> INT { d.0.year().into() });
    engine.register_get("month", |d: &mut Date| -> INT { d.0.month().into() });
    engine.register_get("day", |d: &mut Date| -> INT { d.0.day().into() });
    engine.register_get("weekday", |d: &mut Date| -> INT {
        d.0.weekday().number_from_monday().into()
    });
    engine.register_fn("add_days", |d: Date, n: INT| {
        shift(d, Some(n), || format!("add_days({}, {n})", d.0))
    });
    engine.register_fn("date", |s: &str| -> Result<Date, Box<EvalAltResult>> {
        crate::domain::parse_date(s).map(Date).map_err(rt_err)
    });
    engine.register_fn(
        "date",
        |y: INT, m: INT, d: INT| -> Result<Date, Box<EvalAltResult>> {
            let ok = |v: INT| u32::try_from(v).ok();
            i32::try_from(y)
                .ok()
                .filter(|y| CALENDAR_YEARS.contains(y))
                .zip(ok(m).zip(ok(d)))
                .and_then(|(y, (m, d))| NaiveDate::from_ymd_opt(y, m, d))
                .map(Date)
                .ok_or_else(|| {
                    rt_err(format!(
                        "date({y}, {m}, {d}) is not a valid date (years 1 to 9999)"
                    ))
                })
        },
    );
    // Calendar functions check the rule's time budget themselves: a call can cost more
    // than the operations Rhai counts for it.
    let c = cal.clone();
    engine.register_fn(
        "is_business_day",
        move |d: Date| -> Result<bool, Box<EvalAltResult>> {
            if past_deadline() {
                return Err(budget_err());
            }
            Ok(c.is_business_day(in_calendar(d, "is_business_day")?))
        },
    );
    let c = cal.clone();
    engine.register_fn(
        "next_business_day",
        move |d: Date| -> Result<Date, Box<EvalAltResult>> {
            if past_deadline() {
                return Err(budget_err());
            }
            c.try_next_business_day(in_calendar(d, "next_business_day")?)
                .map(Date)
                .map_err(|e| calendar_err(format!("next_business_day({})", d.0), e))
        },
    );
    let c = cal.clone();
    engine.register_fn(
        "add_business_days",
        move |d: Date, n: INT| -> Result<Date, Box<EvalAltResult>> {
            if past_deadline() {
                return Err(budget_err());
            }
            c.add_business_days(in_calendar(d, "add_business_days")?, n, &mut || {
                !past_deadline()
            })
            .map(Date)
            .map_err(|e| calendar_err(format!("add_business_days({}, {n})", d.0), e))
        },
    );
    engine.register_fn(
        "business_days_between",
        move |a: Date, b: Date| -> Result<INT, Box<EvalAltResult>> {
            if past_deadline() {
                return Err(budget_err());
            }
            let (x, y) = (
                in_calendar(a, "business_days_between")?,
                in_calendar(b, "business_days_between")?,
            );
            cal.business_days_between(x, y, &mut || !past_deadline())
                .map_err(|e| calendar_err(format!("business_days_between({}, {})", a.0, b.0), e))
        },
    );
}

fn register_customer(engine: &mut Engine) {
    engine.register_type_with_name::<CustomerFacts>("Customer");
    engine.register_fn("to_string", |c: &mut CustomerFacts| {
        format!("customer {}", c.0.ext_id)
    });
    engine.register_fn("to_debug", |c: &mut CustomerFacts| {
        format!("customer {}", c.0.ext_id)
    });
    engine.register_get("id", |c: &mut CustomerFacts| {
        ImmutableString::from(&*c.0.ext_id)
    });
    engine.register_get("name", |c: &mut CustomerFacts| {
        ImmutableString::from(c.0.account.customer.name.as_str())
    });
    engine.register_get("legal_name", |c: &mut CustomerFacts| {
        ImmutableString::from(c.0.account.customer.legal_name())
    });
    engine.register_get("segment", |c: &mut CustomerFacts| {
        ImmutableString::from(&*c.0.seg)
    });
    engine.register_get("locale", |c: &mut CustomerFacts| {
        ImmutableString::from(c.0.account.customer.locale.as_str())
    });
    engine.register_get("country", |c: &mut CustomerFacts| {
        ImmutableString::from(c.0.account.customer.country.as_str())
    });
    engine.register_get("currency", |c: &mut CustomerFacts| {
        ImmutableString::from(c.0.account.customer.currency.code())
    });
    engine.register_get("collector", |c: &mut CustomerFacts| {
        opt(c
            .0
            .account
            .customer
            .collector
            .clone()
            .map(ImmutableString::from))
    });
    engine.register_get("tags", |c: &mut CustomerFacts| -> Array {
        c.0.account
            .customer
            .tags
            .iter()
            .map(|t| Dynamic::from(ImmutableString::from(t.as_str())))
            .collect()
    });
    engine.register_fn("has_tag", |c: &mut CustomerFacts, t: &str| {
        c.0.account.customer.tags.iter().any(|x| x == t)
    });
    engine.register_get("has_email", |c: &mut CustomerFacts| {
        !c.0.account.customer.emails.is_empty()
    });
    engine.register_get("has_mobile", |c: &mut CustomerFacts| {
        c.0.account
            .customer
            .phones
            .iter()
            .any(|p| p.is_probably_mobile())
    });
    engine.register_get("credit_limit", |c: &mut CustomerFacts| {
        opt(c.0.account.customer.credit_limit)
    });
    engine.register_get("exposure", |c: &mut CustomerFacts| c.0.exposure);
    engine.register_get("overdue_total", |c: &mut CustomerFacts| c.0.overdue_total);
    engine.register_get("not_due_total", |c: &mut CustomerFacts| c.0.not_due_total);
    engine.register_get("oldest_overdue_days", |c: &mut CustomerFacts| -> INT {
        c.0.oldest_overdue_days
    });
    engine.register_get("unapplied_credit", |c: &mut CustomerFacts| {
        c.0.account.unapplied_credit
    });
    engine.register_get("insured", |c: &mut CustomerFacts| {
        c.0.account.customer.insurance.insured
    });
    engine.register_get("cover_amount", |c: &mut CustomerFacts| {
        opt(c.0.account.customer.insurance.cover_amount)
    });
    engine.register_get("insurer_deadline", |c: &mut CustomerFacts| {
        opt(c.0.insurer_deadline.map(Date))
    });
    engine.register_get("days_to_insurer_deadline", |c: &mut CustomerFacts| {
        opt(c
            .0
            .insurer_deadline
            .map(|d| -> INT { (d - c.0.today).num_days() }))
    });
    engine.register_get("paused", |c: &mut CustomerFacts| c.0.paused);
    engine.register_get("pause_reason", |c: &mut CustomerFacts| {
        opt(c
            .0
            .account
            .customer
            .pause
            .as_ref()
            .filter(|_| c.0.paused)
            .map(|p| ImmutableString::from(p.reason.as_str())))
    });
    engine.register_get("paused_until", |c: &mut CustomerFacts| {
        opt(c
            .0
            .account
            .customer
            .pause
            .as_ref()
            .filter(|_| c.0.paused)
            .and_then(|p| p.until)
            .map(Date))
    });
    engine.register_get("promise", |c: &mut CustomerFacts| {
        opt(c.0.active_promise.map(|i| promise_map(c, i, false)))
    });
    engine.register_get("broken_promise", |c: &mut CustomerFacts| {
        opt(c.0.broken_promise.map(|i| promise_map(c, i, true)))
    });
    engine.register_get("last_contact_days", |c: &mut CustomerFacts| {
        opt(c
            .0
            .last_contact
            .map(|d| -> INT { (c.0.today - d).num_days() }))
    });
    engine.register_get("invoices", |c: &mut CustomerFacts| {
        InvoiceList::new(&c.0, 0..c.0.invoices.len() as u32)
    });
    engine.register_get("dunnable", |c: &mut CustomerFacts| {
        InvoiceList::new(
            &c.0,
            (0..c.0.invoices.len() as u32).filter(|&i| c.0.invoices[i as usize].blocked.is_none()),
        )
    });
    engine.register_get("history", |c: &mut CustomerFacts| -> Array {
        c.0.account
            .history
            .iter()
            .map(|h| {
                let mut m = Map::new();
                m.insert("date".into(), Dynamic::from(Date(h.date)));
                m.insert(
                    "kind".into(),
                    Dynamic::from(ImmutableString::from(h.kind.as_str())),
                );
                m.insert(
                    "step".into(),
                    Dynamic::from(ImmutableString::from(h.step.as_str())),
                );
                m.insert(
                    "invoice".into(),
                    Dynamic::from(ImmutableString::from(h.invoice.as_str())),
                );
                Dynamic::from_map(m)
            })
            .collect()
    });
}

fn promise_map(c: &CustomerFacts, i: usize, broken: bool) -> Map {
    let p = &c.0.account.promises[i];
    let mut m = Map::new();
    m.insert("date".into(), Dynamic::from(Date(p.promised_date)));
    m.insert("amount".into(), Dynamic::from(p.amount));
    m.insert("broken".into(), Dynamic::from(broken));
    m.insert(
        "invoices".into(),
        Dynamic::from_array(
            p.invoices
                .iter()
                .map(|n| Dynamic::from(ImmutableString::from(n.as_str())))
                .collect(),
        ),
    );
    m
}

fn register_invoice(engine: &mut Engine) {
    engine.register_type_with_name::<InvoiceFacts>("Invoice");
    engine.register_fn("to_string", |i: &mut InvoiceFacts| {
        format!("invoice {}", i.open().invoice.number)
    });
    engine.register_fn("to_debug", |i: &mut InvoiceFacts| {
        format!("invoice {}", i.open().invoice.number)
    });
    engine.register_get("number", |i: &mut InvoiceFacts| {
        ImmutableString::from(i.open().invoice.number.as_str())
    });
    engine.register_get("issue_date", |i: &mut InvoiceFacts| {
        Date(i.open().invoice.issue_date)
    });
    engine.register_get("due_date", |i: &mut InvoiceFacts| {
        Date(i.open().invoice.due_date)
    });
    engine.register_get("amount", |i: &mut InvoiceFacts| i.open().invoice.amount);
    engine.register_get("open_amount", |i: &mut InvoiceFacts| {
        i.open().invoice.open_amount
    });
    engine.register_get("currency", |i: &mut InvoiceFacts| {
        ImmutableString::from(i.open().invoice.currency.code())
    });
    engine.register_get("days_overdue", |i: &mut InvoiceFacts| -> INT {
        i.fact().days_overdue
    });
    engine.register_get("disputed", |i: &mut InvoiceFacts| {
        i.open().invoice.dispute.is_some()
    });
    // The last e-invoicing lifecycle status ("" when the platform reported none).
    engine.register_get("einvoice_status", |i: &mut InvoiceFacts| {
        ImmutableString::from(i.open().einvoice_status.as_deref().unwrap_or(""))
    });
    engine.register_get("dispute_reason", |i: &mut InvoiceFacts| {
        opt(i
            .open()
            .invoice
            .dispute
            .as_ref()
            .map(|d| ImmutableString::from(d.reason.as_str())))
    });
    engine.register_get("paused", |i: &mut InvoiceFacts| {
        i.open()
            .invoice
            .pause
            .as_ref()
            .is_some_and(|p| p.active_on(i.c.today))
    });
    engine.register_get("promised", |i: &mut InvoiceFacts| {
        i.fact().promised_until.is_some()
    });
    engine.register_get("blocked", |i: &mut InvoiceFacts| i.fact().blocked.is_some());
    engine.register_get("blocked_reason", |i: &mut InvoiceFacts| {
        opt(i.fact().blocked.clone().map(ImmutableString::from))
    });
    engine.register_get("steps", |i: &mut InvoiceFacts| -> Array {
        i.fact()
            .steps
            .iter()
            .map(|s| Dynamic::from(s.0.clone()))
            .collect()
    });
    engine.register_fn("has_step", |i: &mut InvoiceFacts, step: &str| {
        i.fact().steps.iter().any(|s| s.0.as_str() == step)
    });
    engine.register_fn("step_date", |i: &mut InvoiceFacts, step: &str| {
        opt(i
            .fact()
            .steps
            .iter()
            .find(|s| s.0.as_str() == step)
            .map(|s| Date(s.2)))
    });
    engine.register_fn("days_since", |i: &mut InvoiceFacts, step: &str| {
        opt(i
            .fact()
            .steps
            .iter()
            .find(|s| s.0.as_str() == step)
            .map(|s| -> INT { (i.c.today - s.2).num_days() }))
    });
    engine.register_fn("times_applied", |i: &mut InvoiceFacts, step: &str| -> INT {
        i.fact()
            .steps
            .iter()
            .find(|s| s.0.as_str() == step)
            .map_or(0, |s| s.3.into())
    });
    engine.register_get(
        "late_interest",
        |i: &mut InvoiceFacts| -> Result<Decimal, Box<EvalAltResult>> {
            i.interest().map_err(rt_err)
        },
    );
    engine.register_get("indemnity", |i: &mut InvoiceFacts| i.indemnity());
    engine.register_get(
        "total_due",
        |i: &mut InvoiceFacts| -> Result<Decimal, Box<EvalAltResult>> {
            let interest = i.interest().map_err(rt_err)?;
            i.open()
                .invoice
                .open_amount
                .checked_add(interest)
                .and_then(|t| t.checked_add(i.indemnity()))
                .ok_or_else(|| rt_err("total_due: the amount is too large"))
        },
    );
}

fn register_invoice_list(engine: &mut Engine) {
    engine.register_type_with_name::<InvoiceList>("Invoices");
    engine.register_iterator::<InvoiceList>();
    let show = |l: &mut InvoiceList| {
        format!(
            "[{}]",
            l.indexes()
                .map(|i| l.c.number(i))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    engine.register_fn("to_string", show);
    engine.register_fn("to_debug", show);
    engine.register_fn("len", |l: &mut InvoiceList| -> INT { l.len() as INT });
    engine.register_fn("is_empty", |l: &mut InvoiceList| l.len() == 0);
    engine.register_indexer_get(
        |l: &mut InvoiceList, n: INT| -> Result<InvoiceFacts, Box<EvalAltResult>> {
            let len = l.len() as INT;
            let at = if n < 0 { len + n } else { n };
            usize::try_from(at)
                .ok()
                .and_then(|at| l.get(at))
                .ok_or_else(|| {
                    rt_err(format!(
                        "index {n} is out of range: the list has {len} invoices"
                    ))
                })
        },
    );
    engine.register_fn("to_array", |l: &mut InvoiceList| -> Array {
        l.clone().into_iter().map(Dynamic::from).collect()
    });
    engine.register_fn(
        "filter",
        |ctx: NativeCallContext,
         l: &mut InvoiceList,
         f: FnPtr|
         -> Result<InvoiceList, Box<EvalAltResult>> {
            let mut keep = Vec::with_capacity(l.len());
            for i in l.indexes() {
                if f.call_within_context::<bool>(&ctx, (InvoiceFacts { c: l.c.clone(), i },))? {
                    keep.push(i as u32);
                }
            }
            Ok(InvoiceList::new(&l.c, keep))
        },
    );
    engine.register_fn("+", |a: InvoiceList, b: InvoiceList| -> InvoiceList {
        let mut all: Vec<u32> = a.indexes().chain(b.indexes()).map(|i| i as u32).collect();
        all.sort_unstable();
        all.dedup();
        InvoiceList::new(&a.c, all)
    });
    engine.register_fn("overdue", |l: &mut InvoiceList, min_days: INT| {
        l.retain(|f, _| f.days_overdue >= min_days)
    });
    engine.register_fn(
        "overdue_between",
        |l: &mut InvoiceList, min: INT, max: INT| {
            l.retain(|f, _| (min..=max).contains(&f.days_overdue))
        },
    );
    engine.register_fn("due_within", |l: &mut InvoiceList, days: INT| {
        l.retain(|f, _| (-days..=0).contains(&f.days_overdue))
    });
    engine.register_fn("with_step", |l: &mut InvoiceList, step: &str| {
        l.retain(|f, _| f.steps.iter().any(|s| s.0.as_str() == step))
    });
    engine.register_fn("without_step", |l: &mut InvoiceList, step: &str| {
        l.retain(|f, _| !f.steps.iter().any(|s| s.0.as_str() == step))
    });
    engine.register_fn("total", |l: &mut InvoiceList| -> Decimal {
        l.indexes()
            .map(|i| l.c.account.invoices[i].invoice.open_amount)
            .sum()
    });
    // The customer's totals over the invoices of a list: `customer.dunnable
    // .overdue_total()` leaves out disputed, paused and promised invoices, which
    // `customer.overdue_total` counts.
    engine.register_fn("overdue_total", |l: &mut InvoiceList| -> Decimal {
        l.indexes()
            .filter(|&i| l.c.invoices[i].days_overdue > 0)
            .map(|i| l.c.account.invoices[i].invoice.open_amount)
            .sum()
    });
    engine.register_fn("not_due_total", |l: &mut InvoiceList| -> Decimal {
        l.indexes()
            .filter(|&i| l.c.invoices[i].days_overdue <= 0)
            .map(|i| l.c.account.invoices[i].invoice.open_amount)
            .sum()
    });
    engine.register_fn("max_days_overdue", |l: &mut InvoiceList| -> INT {
        l.indexes()
            .map(|i| l.c.invoices[i].days_overdue)
            .max()
            .unwrap_or(0)
    });
    engine.register_fn("numbers", |l: &mut InvoiceList| -> Array {
        l.indexes()
            .map(|i| Dynamic::from(ImmutableString::from(l.c.number(i))))
            .collect()
    });
}

fn invoices_of(list: &Array) -> impl Iterator<Item = (Dynamic, InvoiceFacts)> + '_ {
    list.iter().filter_map(|d| {
        d.read_lock::<InvoiceFacts>()
            .map(|i| (d.clone(), i.clone()))
    })
}

fn register_lists(engine: &mut Engine) {
    engine.register_fn("overdue", |l: &mut Array, min_days: INT| -> Array {
        invoices_of(l)
            .filter(|(_, i)| i.fact().days_overdue >= min_days)
            .map(|(d, _)| d)
            .collect()
    });
    engine.register_fn(
        "overdue_between",
        |l: &mut Array, min: INT, max: INT| -> Array {
            invoices_of(l)
                .filter(|(_, i)| (min..=max).contains(&i.fact().days_overdue))
                .map(|(d, _)| d)
                .collect()
        },
    );
    engine.register_fn("due_within", |l: &mut Array, days: INT| -> Array {
        invoices_of(l)
            .filter(|(_, i)| (-days..=0).contains(&i.fact().days_overdue))
            .map(|(d, _)| d)
            .collect()
    });
    engine.register_fn("with_step", |l: &mut Array, step: &str| -> Array {
        invoices_of(l)
            .filter(|(_, i)| i.fact().steps.iter().any(|s| s.0.as_str() == step))
            .map(|(d, _)| d)
            .collect()
    });
    engine.register_fn("without_step", |l: &mut Array, step: &str| -> Array {
        invoices_of(l)
            .filter(|(_, i)| !i.fact().steps.iter().any(|s| s.0.as_str() == step))
            .map(|(d, _)| d)
            .collect()
    });
    engine.register_fn("total", |l: &mut Array| -> Decimal {
        invoices_of(l)
            .map(|(_, i)| i.open().invoice.open_amount)
            .sum()
    });
    engine.register_fn("max_days_overdue", |l: &mut Array| -> INT {
        invoices_of(l)
            .map(|(_, i)| i.fact().days_overdue)
            .max()
            .unwrap_or(0)
    });
    engine.register_fn("numbers", |l: &mut Array| -> Array {
        invoices_of(l)
            .map(|(_, i)| Dynamic::from(ImmutableString::from(i.open().invoice.number.as_str())))
            .collect()
    });
}

fn register_actions(engine: &mut Engine) {
    engine.register_type_with_name::<ActionRequest>("Action");
    engine.register_fn("to_string", |a: &mut ActionRequest| {
        format!("{} {}", a.kind, a.step)
    });
    engine.register_fn("to_debug", |a: &mut ActionRequest| {
        format!("{} {} ({} invoices)", a.kind, a.step, a.invoices.len())
    });
    engine.register_get("kind", |a: &mut ActionRequest| {
        ImmutableString::from(a.kind.as_str())
    });
    engine.register_get("step", |a: &mut ActionRequest| a.step.clone());
    for (name, kind) in [("email", ActionKind::Email), ("sms", ActionKind::Sms)] {
        engine.register_fn(name, move |t: ImmutableString, inv: Dynamic| {
            actions::build(kind, Some(t), &inv, None)
        });
        engine.register_fn(name, move |t: ImmutableString, inv: Dynamic, o: Map| {
            actions::build(kind, Some(t), &inv, Some(o))
        });
    }
    let call = |reason: ImmutableString,
                inv: Dynamic,
                o: Option<Map>|
     -> Result<Dynamic, Box<EvalAltResult>> {
        let a = actions::build(ActionKind::CallTask, None, &inv, o)?;
        Ok(match a.try_cast::<ActionRequest>() {
            Some(mut a) => {
                a.options.insert(
                    "reason".into(),
                    serde_json::Value::String(reason.to_string()),
                );
                Dynamic::from(a)
            }
            None => Dynamic::UNIT,
        })
    };
    engine.register_fn("call_task", move |r: ImmutableString, inv: Dynamic| {
        call(r, inv, None)
    });
    engine.register_fn(
        "call_task",
        move |r: ImmutableString, inv: Dynamic, o: Map| call(r, inv, Some(o)),
    );
    for (name, kind) in [
        ("formal_notice", ActionKind::FormalNotice),
        ("insurer_handover", ActionKind::InsurerHandover),
    ] {
        engine.register_fn(name, move |inv: Dynamic| {
            actions::build(kind, None, &inv, None)
        });
        engine.register_fn(name, move |inv: Dynamic, o: Map| {
            actions::build(kind, None, &inv, Some(o))
        });
    }
}
