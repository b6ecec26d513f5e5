//! What a rule change would do, before it goes live: two versions of a segment's script
//! evaluated on the real ledger as of a date, in one pass (each customer's account read
//! once, evaluated with the old version and then the new), and their planned actions
//! compared per step — actions only the old version plans, only the new, planned by both
//! with different invoices or options — with the amounts they name, the customers
//! affected, and for the first customers of each kind the conditions of the script that
//! decided differently. Reads only: nothing is written, nothing is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::Config;
use crate::domain::{Account, ActionKind};
use crate::scripting::{Decision, DecisionStatus, Evaluator, Limits, RuleSet};
use crate::store::{AccountFilter, Store, StoreError};

/// One version of a segment's script.
#[derive(Debug, Clone)]
pub struct RuleVersion {
    /// How it was named: a file, `git:REF`, `live`, `request`.
    pub label: String,
    /// The file it is read as (in messages and line numbers).
    pub file: String,
    pub source: String,
}

/// A segment and the two versions compared.
#[derive(Debug, Clone)]
pub struct SegmentChange {
    pub segment: String,
    pub old: RuleVersion,
    pub new: RuleVersion,
}

/// How a diff runs.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub as_of: NaiveDate,
    /// Customers shown per kind of change, with the reasons.
    pub examples: usize,
    pub workers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A version that does not compile (or is empty).
    #[error("{which} version of {segment} ({label}): {message}")]
    Rule {
        which: &'static str,
        segment: String,
        label: String,
        message: String,
        /// Line, column and the source line, as `rules check` shows it.
        long: String,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A version as the diff reports it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub label: String,
    pub file: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentVersions {
    pub segment: String,
    pub old: VersionInfo,
    pub new: VersionInfo,
}

/// An amount in one currency.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Amount {
    pub currency: String,
    pub amount: Decimal,
}

/// Actions of one kind of change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub actions: u64,
    pub customers: u64,
    /// The open amounts the actions name, per currency.
    pub amounts: Vec<Amount>,
}

/// One step's changes.
#[derive(Debug, Clone, Serialize)]
pub struct StepDiff {
    pub segment: String,
    pub kind: ActionKind,
    pub step: String,
    pub only_old: Side,
    pub only_new: Side,
    /// Planned by both, with different invoices or options.
    pub changed: Side,
    /// Planned by both, the same.
    pub unchanged: u64,
}

/// Planned actions of a kind in each version.
#[derive(Debug, Clone, Serialize)]
pub struct KindTotals {
    pub kind: ActionKind,
    pub old: u64,
    pub new: u64,
    pub delta: i64,
}

/// An action as one version plans it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Planned {
    pub invoices: Vec<String>,
    pub amount: Decimal,
    pub currency: String,
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A condition of the script, as a version evaluated it for the customer.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// `old` or `new`.
    pub version: &'static str,
    /// `condition` (a comparison or test the script made) or `call` (an action
    /// constructor and the invoices it named).
    pub what: &'static str,
    pub line: Option<usize>,
    pub source: String,
    pub evaluated: String,
    pub outcome: bool,
}

/// A customer whose actions differ, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// `only_old`, `only_new` or `changed`.
    pub change: &'static str,
    pub customer: String,
    pub name: String,
    pub segment: String,
    pub kind: ActionKind,
    pub step: String,
    pub old: Option<Planned>,
    pub new: Option<Planned>,
    /// The conditions evaluated differently by the two versions (or only by one).
    pub reasons: Vec<Reason>,
}

/// Customers whose rule failed, per version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Errors {
    pub old: u64,
    pub new: u64,
    /// The first customers the new version fails for, with the error.
    pub new_examples: Vec<(String, String)>,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RuleDiff {
    pub as_of: NaiveDate,
    pub segments: Vec<SegmentVersions>,
    /// Customers evaluated.
    pub customers: u64,
    /// Customers whose planned actions differ.
    pub customers_affected: u64,
    /// What matters most, first: the largest changes, formal notices and handovers first.
    pub headline: Vec<String>,
    pub kinds: Vec<KindTotals>,
    pub steps: Vec<StepDiff>,
    pub errors: Errors,
    pub examples: Vec<Example>,
}

/// A customer's planned actions, by (kind, step).
type PlanMap = BTreeMap<(ActionKind, String), Planned>;

/// What a worker found for one customer.
struct CustomerResult {
    customer: String,
    name: String,
    segment: String,
    old: PlanMap,
    new: PlanMap,
    old_error: bool,
    new_error: Option<String>,
    /// The account, kept only when the versions differ (for the examples' reasons).
    account: Option<Account>,
}

fn planned(decisions: &[Decision]) -> (PlanMap, Option<String>) {
    let mut map = PlanMap::new();
    let mut error = None;
    for d in decisions {
        match d.status {
            DecisionStatus::Planned => {
                let (Some(kind), Some(step)) = (d.kind, d.step.as_deref()) else {
                    continue;
                };
                let entry = map
                    .entry((kind, step.to_string()))
                    .or_insert_with(|| Planned {
                        invoices: Vec::new(),
                        amount: Decimal::ZERO,
                        currency: d.currency.code().to_string(),
                        options: d.options.clone(),
                    });
                entry
                    .invoices
                    .extend(d.invoices.iter().map(|i| i.to_string()));
                entry.invoices.sort();
                entry.invoices.dedup();
                entry.amount += d.amount;
            }
            DecisionStatus::Error => error = Some(d.detail.clone()),
            _ => {}
        }
    }
    (map, error)
}

/// Compiles a version of `segment`'s script; `which` names it in errors (old, new).
///
/// # Errors
/// [`DiffError::Rule`] when it is empty or does not compile.
pub fn compile_version(
    engine: &rhai::Engine,
    config: &Config,
    segment: &str,
    v: &RuleVersion,
    which: &'static str,
) -> Result<Arc<crate::scripting::registry::CompiledRule>, DiffError> {
    let refuse = |message: String, long: String| DiffError::Rule {
        which,
        segment: segment.to_string(),
        label: v.label.clone(),
        message,
        long,
    };
    if crate::scripting::registry::is_blank(&v.source) {
        return Err(refuse(
            "the script is empty (only whitespace or comments)".into(),
            String::new(),
        ));
    }
    crate::scripting::registry::compile(
        engine,
        segment,
        None,
        Path::new(&v.file),
        &config.base_dir,
        &v.source,
    )
    .map(Arc::new)
    .map_err(|e| refuse(e.diagnostic.short(), e.long()))
}

/// Compares the versions of `changes` on the ledger as of `opts.as_of`.
///
/// # Errors
/// A version that does not compile; a store error.
pub async fn diff(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    changes: &[SegmentChange],
    opts: &DiffOptions,
) -> Result<RuleDiff, DiffError> {
    let engine =
        crate::scripting::engine::build(Arc::new(config.calendar.clone()), &Limits::default());
    let mut old_set = RuleSet::default();
    let mut new_set = RuleSet::default();
    let mut segments = Vec::new();
    for c in changes {
        let old = compile_version(&engine, &config, &c.segment, &c.old, "old")?;
        let new = compile_version(&engine, &config, &c.segment, &c.new, "new")?;
        segments.push(SegmentVersions {
            segment: c.segment.clone(),
            old: VersionInfo {
                label: c.old.label.clone(),
                file: c.old.file.clone(),
                hash: old.hash.clone(),
            },
            new: VersionInfo {
                label: c.new.label.clone(),
                file: c.new.file.clone(),
                hash: new.hash.clone(),
            },
        });
        old_set.by_segment.insert(c.segment.clone(), old);
        new_set.by_segment.insert(c.segment.clone(), new);
    }
    let old_set = Arc::new(old_set);
    let new_set = Arc::new(new_set);
    let filter = AccountFilter {
        segments: Some(changes.iter().map(|c| c.segment.clone()).collect()),
        customer: None,
    };
    let cfg = config.clone();
    let make: Arc<dyn Fn() -> Evaluator + Send + Sync> =
        Arc::new(move || Evaluator::new(&cfg, Limits::default()));
    let as_of = opts.as_of;
    let against = new_set.clone();
    let compare = move |evaluator: &Evaluator, old: crate::scripting::Outcome| {
        let account = old.facts.account().clone();
        let (old_plan, old_error) = planned(&old.decisions);
        let new = evaluator.evaluate(&against, account, as_of);
        let (new_plan, new_error) = planned(&new.decisions);
        let a = new.facts.account();
        let differs = old_plan != new_plan;
        CustomerResult {
            customer: a.customer.external_id.clone(),
            name: a.customer.name.clone(),
            segment: a.customer.segment.clone(),
            account: differs.then(|| a.clone()),
            old: old_plan,
            new: new_plan,
            old_error: old_error.is_some(),
            new_error,
        }
    };
    let acc = Arc::new(Mutex::new(Accumulator::new(opts.examples)));
    let sink_acc = acc.clone();
    let stats = crate::scheduler::pipeline::run_mapped(
        store,
        filter,
        old_set.clone(),
        make,
        crate::scheduler::pipeline::PipelineOptions {
            workers: opts.workers.max(1),
            batch: 500,
            today: as_of,
        },
        compare,
        move |batch| {
            if let Ok(mut acc) = sink_acc.lock() {
                for r in batch {
                    acc.add(r);
                }
            }
            std::future::ready(Ok(()))
        },
    )
    .await?;
    let acc = Arc::try_unwrap(acc)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_else(|| Accumulator::new(0));
    let evaluator = Evaluator::new(&config, Limits::default());
    let calendar = Arc::new(config.calendar.clone());
    Ok(
        acc.finish(stats.customers, as_of, segments, |account, kind| {
            reasons(
                &evaluator, &old_set, &new_set, account, as_of, &calendar, kind,
            )
        }),
    )
}

/// The conditions the two versions evaluated differently for a customer, and the calls
/// of the action's constructor that named other invoices.
fn reasons(
    evaluator: &Evaluator,
    old_set: &RuleSet,
    new_set: &RuleSet,
    account: &Account,
    as_of: NaiveDate,
    calendar: &Arc<crate::domain::BusinessCalendar>,
    kind: ActionKind,
) -> Vec<Reason> {
    use crate::scripting::explain::explain;
    let old = explain(evaluator, old_set, account.clone(), as_of, calendar.clone());
    let new = explain(evaluator, new_set, account.clone(), as_of, calendar.clone());
    let key = |c: &crate::scripting::explain::Condition| {
        (c.source.clone(), c.evaluated.clone(), c.outcome)
    };
    // Conditions at the same place (line, and rank on the line) with the same outcome
    // decided the same way, whatever their text (`deadline <= 15` and `deadline <= 60`
    // both false): not a reason.
    let placed = |list: &[crate::scripting::explain::Condition]| {
        let mut rank: BTreeMap<Option<usize>, usize> = BTreeMap::new();
        list.iter()
            .map(|c| {
                let r = rank.entry(c.line).or_default();
                *r += 1;
                ((c.line, *r), c.outcome)
            })
            .collect::<Vec<_>>()
    };
    let old_placed = placed(&old.conditions);
    let new_placed = placed(&new.conditions);
    let old_at: BTreeMap<_, _> = old_placed.iter().cloned().collect();
    let new_at: BTreeMap<_, _> = new_placed.iter().cloned().collect();
    let old_keys: BTreeSet<_> = old.conditions.iter().map(key).collect();
    let new_keys: BTreeSet<_> = new.conditions.iter().map(key).collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (version, list, places, other, other_at) in [
        ("old", &old.conditions, &old_placed, &new_keys, &new_at),
        ("new", &new.conditions, &new_placed, &old_keys, &old_at),
    ] {
        for (c, (place, outcome)) in list.iter().zip(places.iter()) {
            let k = key(c);
            if other.contains(&k)
                || other_at.get(place) == Some(outcome)
                || !seen.insert((version, k))
            {
                continue;
            }
            out.push(Reason {
                version,
                what: "condition",
                line: c.line,
                source: c.source.clone(),
                evaluated: c.evaluated.clone(),
                outcome: c.outcome,
            });
        }
    }
    // The action constructors' calls whose invoices differ: why an action names other
    // invoices (`open.overdue(30)` rather than `open.overdue(45)`).
    let call_key =
        |c: &crate::scripting::explain::ConstructorCall| (c.source.clone(), c.invoices.clone());
    let old_calls: BTreeSet<_> = old.calls.iter().map(call_key).collect();
    let new_calls: BTreeSet<_> = new.calls.iter().map(call_key).collect();
    for (version, list, other) in [
        ("old", &old.calls, &new_calls),
        ("new", &new.calls, &old_calls),
    ] {
        for c in list {
            if c.constructor != kind.as_str() || other.contains(&call_key(c)) {
                continue;
            }
            out.push(Reason {
                version,
                what: "call",
                line: c.line,
                source: c.source.clone(),
                evaluated: if c.invoices.is_empty() {
                    "names no invoice (no action)".to_string()
                } else {
                    format!("names {} invoice(s)", c.invoices.len())
                },
                outcome: !c.invoices.is_empty(),
            });
        }
    }
    out.truncate(12);
    out
}

/// Totals of one step, being counted.
#[derive(Default)]
struct StepCount {
    only_old: SideCount,
    only_new: SideCount,
    changed: SideCount,
    unchanged: u64,
}

#[derive(Default)]
struct SideCount {
    actions: u64,
    customers: BTreeSet<String>,
    amounts: BTreeMap<String, Decimal>,
}

impl SideCount {
    fn add(&mut self, customer: &str, p: &Planned) {
        self.actions += 1;
        self.customers.insert(customer.to_string());
        *self.amounts.entry(p.currency.clone()).or_default() += p.amount;
    }

    fn side(self) -> Side {
        Side {
            actions: self.actions,
            customers: self.customers.len() as u64,
            amounts: self
                .amounts
                .into_iter()
                .map(|(currency, amount)| Amount { currency, amount })
                .collect(),
        }
    }
}

struct Accumulator {
    examples_per_change: usize,
    steps: BTreeMap<(String, ActionKind, String), StepCount>,
    kinds: BTreeMap<ActionKind, (u64, u64)>,
    affected: u64,
    errors: Errors,
    /// (change, customer result, kind, step) of the first customers of each change.
    examples: Vec<(&'static str, Arc<CustomerResult>, ActionKind, String)>,
    per_change: BTreeMap<&'static str, usize>,
}

impl Accumulator {
    fn new(examples: usize) -> Accumulator {
        Accumulator {
            examples_per_change: examples,
            steps: BTreeMap::new(),
            kinds: BTreeMap::new(),
            affected: 0,
            errors: Errors::default(),
            examples: Vec::new(),
            per_change: BTreeMap::new(),
        }
    }

    fn add(&mut self, r: CustomerResult) {
        if r.old_error {
            self.errors.old += 1;
        }
        if let Some(e) = &r.new_error {
            self.errors.new += 1;
            if self.errors.new_examples.len() < self.examples_per_change.max(1) {
                self.errors
                    .new_examples
                    .push((r.customer.clone(), e.clone()));
            }
        }
        for (kind, _) in r.old.keys() {
            self.kinds.entry(*kind).or_default().0 += 1;
        }
        for (kind, _) in r.new.keys() {
            self.kinds.entry(*kind).or_default().1 += 1;
        }
        if r.old == r.new {
            for (kind, step) in r.old.keys() {
                self.steps
                    .entry((r.segment.clone(), *kind, step.clone()))
                    .or_default()
                    .unchanged += 1;
            }
            return;
        }
        self.affected += 1;
        let r = Arc::new(r);
        let keys: BTreeSet<&(ActionKind, String)> = r.old.keys().chain(r.new.keys()).collect();
        for key in keys {
            let (kind, step) = key;
            let count = self
                .steps
                .entry((r.segment.clone(), *kind, step.clone()))
                .or_default();
            let change = match (r.old.get(key), r.new.get(key)) {
                (Some(o), None) => {
                    count.only_old.add(&r.customer, o);
                    "only_old"
                }
                (None, Some(n)) => {
                    count.only_new.add(&r.customer, n);
                    "only_new"
                }
                (Some(o), Some(n)) if o != n => {
                    count.changed.add(&r.customer, n);
                    "changed"
                }
                _ => {
                    count.unchanged += 1;
                    continue;
                }
            };
            let shown = self.per_change.entry(change).or_default();
            if *shown < self.examples_per_change {
                *shown += 1;
                self.examples.push((change, r.clone(), *kind, step.clone()));
            }
        }
    }

    fn finish(
        self,
        customers: u64,
        as_of: NaiveDate,
        segments: Vec<SegmentVersions>,
        reasons: impl Fn(&Account, ActionKind) -> Vec<Reason>,
    ) -> RuleDiff {
        let steps: Vec<StepDiff> = self
            .steps
            .into_iter()
            .map(|((segment, kind, step), c)| StepDiff {
                segment,
                kind,
                step,
                only_old: c.only_old.side(),
                only_new: c.only_new.side(),
                changed: c.changed.side(),
                unchanged: c.unchanged,
            })
            .collect();
        let kinds: Vec<KindTotals> = self
            .kinds
            .into_iter()
            .map(|(kind, (old, new))| KindTotals {
                kind,
                old,
                new,
                delta: new as i64 - old as i64,
            })
            .collect();
        let examples = self
            .examples
            .into_iter()
            .map(|(change, r, kind, step)| {
                let key = (kind, step.clone());
                Example {
                    change,
                    customer: r.customer.clone(),
                    name: r.name.clone(),
                    segment: r.segment.clone(),
                    kind,
                    step,
                    old: r.old.get(&key).cloned(),
                    new: r.new.get(&key).cloned(),
                    reasons: r
                        .account
                        .as_ref()
                        .map(|a| reasons(a, kind))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let headline = headline(customers, self.affected, &kinds, &steps, &self.errors);
        RuleDiff {
            as_of,
            segments,
            customers,
            customers_affected: self.affected,
            headline,
            kinds,
            steps,
            errors: self.errors,
            examples,
        }
    }
}

/// The kinds whose change matters most come first: those that cannot be taken back.
fn weight(kind: ActionKind) -> u8 {
    match kind {
        ActionKind::InsurerHandover => 0,
        ActionKind::FormalNotice => 1,
        ActionKind::CallTask => 2,
        ActionKind::Sms => 3,
        ActionKind::Email => 4,
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn kind_names(kind: ActionKind) -> (&'static str, &'static str) {
    match kind {
        ActionKind::Email => ("email", "emails"),
        ActionKind::Sms => ("SMS", "SMS"),
        ActionKind::CallTask => ("call task", "call tasks"),
        ActionKind::FormalNotice => ("formal notice", "formal notices"),
        ActionKind::InsurerHandover => ("insurer handover", "insurer handovers"),
    }
}

fn headline(
    customers: u64,
    affected: u64,
    kinds: &[KindTotals],
    steps: &[StepDiff],
    errors: &Errors,
) -> Vec<String> {
    let mut lines = Vec::new();
    if errors.new > errors.old {
        let first = errors
            .new_examples
            .first()
            .map(|(c, e)| format!(" (first: {c}: {e})"))
            .unwrap_or_default();
        lines.push(format!(
            "the new version fails for {}{first}",
            plural(errors.new, "customer", "customers")
        ));
    }
    let mut changed: Vec<&KindTotals> = kinds.iter().filter(|k| k.delta != 0).collect();
    changed.sort_by_key(|k| (weight(k.kind), std::cmp::Reverse(k.delta.unsigned_abs())));
    for k in &changed {
        let (one, many) = kind_names(k.kind);
        let n = k.delta.unsigned_abs();
        let what = plural(n, one, many);
        lines.push(format!(
            "{what} {} than today ({} → {})",
            if k.delta > 0 { "more" } else { "fewer" },
            k.old,
            k.new
        ));
    }
    // Same counts, other customers; or the same customers, other invoices.
    for s in steps {
        let (_, many) = kind_names(s.kind);
        if !changed.iter().any(|k| k.kind == s.kind) && s.only_old.actions + s.only_new.actions > 0
        {
            lines.push(format!(
                "{}/{}: as many {many}, but {} customers gain one and {} lose one",
                s.segment, s.step, s.only_new.actions, s.only_old.actions
            ));
        }
        if s.changed.actions > 0 {
            lines.push(format!(
                "{}/{}: {} name other invoices or options",
                s.segment,
                s.step,
                plural(s.changed.actions, kind_names(s.kind).0, many)
            ));
        }
    }
    if lines.is_empty() {
        lines.push(format!(
            "no change: both versions plan the same actions for all {}",
            plural(customers, "customer", "customers")
        ));
    } else {
        lines.push(format!(
            "{} of {} evaluated have different actions",
            plural(affected, "customer", "customers"),
            customers
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(kind: ActionKind, old: u64, new: u64) -> KindTotals {
        KindTotals {
            kind,
            old,
            new,
            delta: new as i64 - old as i64,
        }
    }

    #[test]
    fn the_headline_puts_formal_notices_first_whatever_the_emails_do() {
        let kinds = [
            k(ActionKind::Email, 100, 5000),
            k(ActionKind::FormalNotice, 12, 10_012),
        ];
        let h = headline(20_000, 15_000, &kinds, &[], &Errors::default());
        assert_eq!(h[0], "10000 formal notices more than today (12 → 10012)");
        assert_eq!(h[1], "4900 emails more than today (100 → 5000)");
        assert_eq!(
            h[2],
            "15000 customers of 20000 evaluated have different actions"
        );
    }

    #[test]
    fn no_change_is_said_plainly() {
        let h = headline(3, 0, &[k(ActionKind::Email, 2, 2)], &[], &Errors::default());
        assert_eq!(
            h,
            ["no change: both versions plan the same actions for all 3 customers"]
        );
    }
}
