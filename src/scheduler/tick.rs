//! One tick: evaluate a segment's customers and write the decisions to the action log.
//!
//! Every planned action gets a deterministic key (customer, kind, step, repeat number,
//! invoice set) under a UNIQUE constraint: re-running a tick, a restart in the middle of
//! one, or two instances deciding at once never produce a second action. Blocked and
//! error decisions are logged at most once a day each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::pipeline;
use crate::config::Config;
use crate::digest::sha256_hex;
use crate::scripting::{Decision, DecisionStatus, Evaluator, Limits, Outcome, RuleSet};
use crate::store::{AccountFilter, ActionStatus, NewAction, Store, StoreError};

/// What a tick did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub segment: String,
    pub as_of: Option<NaiveDate>,
    pub customers: u64,
    pub invoices: u64,
    /// New planned actions.
    pub planned: u64,
    /// New planned actions by variant, for a segment with variants.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub planned_by_variant: std::collections::BTreeMap<String, u64>,
    /// Decisions already in the log (a re-run).
    pub duplicates: u64,
    pub already_done: u64,
    pub blocked: u64,
    pub errors: u64,
    /// Why the tick failed, when it could not account for every customer it read (the
    /// decisions of the others are recorded all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl TickReport {
    /// The status its tick record ends with.
    pub fn status(&self) -> &'static str {
        if self.failure.is_some() {
            "failed"
        } else {
            "done"
        }
    }
}

/// The key that makes a decision a no-op the second time.
pub fn action_key(d: &Decision, as_of: NaiveDate) -> String {
    let mut invoices: Vec<&str> = d.invoices.iter().map(AsRef::as_ref).collect();
    invoices.sort_unstable();
    let kind = d.kind.map_or("none", |k| k.as_str());
    let step = d.step.as_deref().unwrap_or("");
    let raw = match d.status {
        DecisionStatus::Planned => format!(
            "planned|{}|{kind}|{step}|{}|{}",
            d.customer,
            d.repeat,
            invoices.join(",")
        ),
        DecisionStatus::Blocked => format!(
            "blocked|{as_of}|{}|{kind}|{step}|{}",
            d.customer,
            invoices.join(",")
        ),
        _ => format!(
            "{}|{as_of}|{}|{kind}|{step}|{}",
            d.status.as_str(),
            d.customer,
            d.detail
        ),
    };
    format!(
        "{}:{}",
        d.status.as_str(),
        &sha256_hex(raw.as_bytes())[..40]
    )
}

fn new_action(d: &Decision, facts: &(Arc<str>, Arc<str>), as_of: NaiveDate) -> Option<NewAction> {
    let status = match d.status {
        DecisionStatus::Planned => ActionStatus::Planned,
        DecisionStatus::Blocked => ActionStatus::Blocked,
        DecisionStatus::Error => ActionStatus::Error,
        DecisionStatus::AlreadyDone => return None,
    };
    Some(NewAction {
        key: action_key(d, as_of),
        customer: d.customer.to_string(),
        segment: d.segment.to_string(),
        // A rule error has no action kind: it is logged as a call task for a person to
        // look at the customer (status `error`, never dispatched).
        kind: d.kind.unwrap_or(crate::domain::ActionKind::CallTask),
        step: d.step.as_deref().unwrap_or("rule_error").to_string(),
        template: d.template.as_deref().map(str::to_string),
        options: serde_json::Value::Object(d.options.clone()).to_string(),
        currency: d.currency.code().to_string(),
        amount_minor: d.currency.to_minor(d.amount).unwrap_or(0),
        rule_file: d.rule_file.as_deref().unwrap_or("").to_string(),
        rule_hash: d.rule_hash.as_deref().unwrap_or("").to_string(),
        variant: d.variant.as_deref().map(str::to_string),
        facts: facts.0.clone(),
        facts_sha256: facts.1.clone(),
        decided_on: as_of,
        status,
        detail: (!d.detail.is_empty()).then(|| d.detail.clone()),
        invoices: d.invoices.iter().map(|n| n.to_string()).collect(),
    })
}

/// Runs one tick of each of `segments` as of `as_of`, in one pass over the ledger: the
/// open invoices are read once for all of them. Each segment gets its own tick record
/// and report, in the order given.
///
/// # Errors
/// A database error; the ticks are then recorded as failed.
#[allow(clippy::too_many_arguments)]
pub async fn run_tick(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    segments: &[String],
    as_of: NaiveDate,
    scheduled_for: DateTime<Utc>,
    trigger: &str,
    instance: &str,
    metrics: &crate::metrics::Metrics,
) -> Result<Vec<TickReport>, StoreError> {
    let mut tick_ids = Vec::with_capacity(segments.len());
    for segment in segments {
        tick_ids.push(
            store
                .start_tick(segment, scheduled_for, trigger, as_of, instance, Utc::now())
                .await?,
        );
    }
    // The write connection's cache sized for the tick, then back (see the store).
    if let Err(e) = store.size_write_cache_for_tick(true).await {
        tracing::warn!(error = %e, "cannot size the write cache for the tick; ticking with it as it is");
    }
    let started = std::time::Instant::now();
    let result = tick_body(store.clone(), config, rules, segments, as_of).await;
    if let Err(e) = store.size_write_cache_for_tick(false).await {
        tracing::warn!(error = %e, "cannot size the write cache back after the tick");
    }
    metrics.tick_duration(started.elapsed());
    let now = Utc::now();
    match &result {
        Ok(reports) => {
            for (r, tick_id) in reports.iter().zip(&tick_ids) {
                store
                    .finish_tick(
                        *tick_id,
                        r.status(),
                        r.customers as i64,
                        r.planned as i64,
                        r.blocked as i64,
                        r.errors as i64,
                        r.failure.as_deref(),
                        now,
                    )
                    .await?;
                metrics.tick(&r.segment, r.status(), r.customers, r.errors);
                for (variant, n) in &r.planned_by_variant {
                    metrics.variant_planned(&r.segment, variant, *n);
                }
                if let Some(why) = &r.failure {
                    tracing::error!(segment = %r.segment, %as_of, customers = r.customers, planned = r.planned, errors = r.errors, error = %why, "tick failed: not every customer was evaluated");
                } else if r.errors > 0 {
                    tracing::warn!(segment = %r.segment, %as_of, customers = r.customers, planned = r.planned, duplicates = r.duplicates, blocked = r.blocked, errors = r.errors, "tick done with rule errors: the customers in error were not dunned (`relance actions list --status error`)");
                } else {
                    tracing::info!(segment = %r.segment, %as_of, customers = r.customers, planned = r.planned, duplicates = r.duplicates, blocked = r.blocked, errors = r.errors, "tick done");
                }
            }
        }
        Err(e) => {
            for (segment, tick_id) in segments.iter().zip(&tick_ids) {
                let _ = store
                    .finish_tick(*tick_id, "failed", 0, 0, 0, 0, Some(&e.to_string()), now)
                    .await;
                metrics.tick(segment, "failed", 0, 0);
                tracing::error!(%segment, %as_of, error = %e, "tick failed");
            }
        }
    }
    result
}

/// One customer's evaluation, ready to be counted and written.
struct Evaluated {
    segment: String,
    invoices: u64,
    already_done: u64,
    blocked: u64,
    errors: u64,
    actions: Vec<NewAction>,
}

impl Evaluated {
    fn new(o: &Outcome, as_of: NaiveDate) -> Evaluated {
        let account = o.facts.account();
        // Already-done decisions are not recorded: no snapshot for them.
        let recorded = o
            .decisions
            .iter()
            .any(|d| d.status != DecisionStatus::AlreadyDone);
        let facts: (Arc<str>, Arc<str>) = if recorded {
            let json = serde_json::to_string(&o.facts.snapshot()).unwrap_or_else(|_| "{}".into());
            let sha = sha256_hex(json.as_bytes());
            (json.into(), sha.into())
        } else {
            (Arc::from(""), Arc::from(""))
        };
        let count = |status: DecisionStatus| {
            o.decisions.iter().filter(|d| d.status == status).count() as u64
        };
        Evaluated {
            segment: account.customer.segment.to_string(),
            invoices: account.invoices.len() as u64,
            already_done: count(DecisionStatus::AlreadyDone),
            blocked: count(DecisionStatus::Blocked),
            errors: count(DecisionStatus::Error),
            actions: o
                .decisions
                .iter()
                .filter_map(|d| new_action(d, &facts, as_of))
                .collect(),
        }
    }
}

/// Per-segment counts while a pass runs.
type Reports = Arc<Mutex<HashMap<String, TickReport>>>;

/// Decisions written per transaction (about two read batches of 500 customers).
const WRITE_ACTIONS: usize = 4_000;

/// Records a tick's decisions, refreshes the planner's statistics of the action log as
/// it grows, and counts what was new and what was already planned.
async fn write_actions(
    writer: &Arc<dyn Store>,
    batch: Vec<NewAction>,
    reports: &Reports,
    growth: &Mutex<(u64, u64)>,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }

    let counts = writer.record_actions(&batch, Utc::now()).await?;
    let refresh = growth.lock().is_ok_and(|mut g| {
        g.0 += counts.recorded;
        let due = g.0 >= g.1;
        if due {
            g.1 = g.0.saturating_mul(4);
        }
        due
    });
    if refresh {
        writer.refresh_action_statistics().await?;
    }
    if let Ok(mut reports) = reports.lock() {
        // Duplicates are decisions already logged; the other planned ones are new.
        for a in batch.iter().filter(|a| a.status == ActionStatus::Planned) {
            if let Some(r) = reports.get_mut(a.segment.as_str()) {
                if counts.duplicate_keys.contains(&a.key) {
                    r.duplicates += 1;
                } else {
                    r.planned += 1;
                    if let Some(v) = &a.variant {
                        *r.planned_by_variant.entry(v.clone()).or_default() += 1;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A batch of decisions being written by a task of its own.
type Write = tokio::task::JoinHandle<Result<(), StoreError>>;

/// Waits for a write started earlier, if any, and returns its outcome.
async fn finish_write(write: Option<Write>) -> Result<(), StoreError> {
    match write {
        Some(task) => task
            .await
            .map_err(|e| StoreError::Invalid(format!("the action writer stopped: {e}")))?,
        None => Ok(()),
    }
}

async fn tick_body(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    segments: &[String],
    as_of: NaiveDate,
) -> Result<Vec<TickReport>, StoreError> {
    // Promises whose date passed become broken (or kept) before the rules look.
    let mut tx = store.begin().await?;
    tx.refresh_promises(as_of, Utc::now()).await?;
    tx.commit().await?;

    let filter = AccountFilter {
        segments: Some(segments.to_vec()),
        customer: None,
    };
    let cfg = config.clone();
    let make: Arc<dyn Fn() -> Evaluator + Send + Sync> =
        Arc::new(move || Evaluator::new(&cfg, Limits::default()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let opts = pipeline::PipelineOptions {
        workers,
        batch: 500,
        today: as_of,
    };
    let reports: Reports = Arc::new(Mutex::new(
        segments
            .iter()
            .map(|s| {
                let r = TickReport {
                    segment: s.clone(),
                    as_of: Some(as_of),
                    ..Default::default()
                };
                (s.clone(), r)
            })
            .collect(),
    ));
    let writer = store.clone();
    let sink_reports = reports.clone();
    // Actions recorded by this pass, and the count at which the planner's statistics of
    // the action log are next refreshed: a first tick on a large ledger grows the log
    // from nothing, and stale statistics turn the per-batch history reads into scans.
    let growth = Arc::new(Mutex::new((0u64, 10_000u64)));
    let pending: Arc<Mutex<Vec<NewAction>>> = Arc::new(Mutex::new(Vec::new()));
    let sink_pending = pending.clone();
    let sink_growth = growth.clone();
    let in_flight: Arc<Mutex<Option<Write>>> = Arc::new(Mutex::new(None));
    let sink_in_flight = in_flight.clone();
    // Each outcome becomes its report counts and action rows on the rule worker threads
    // (the facts snapshot is serialised and hashed there); the sink only collects them.
    let prepare = move |_: &crate::scripting::Evaluator, o: Outcome| Evaluated::new(&o, as_of);
    let passed = pipeline::run_mapped(
        store.clone(),
        filter,
        rules,
        make,
        opts,
        prepare,
        move |evaluated| {
            let mut batch = Vec::new();
            if let Ok(mut reports) = sink_reports.lock() {
                for e in evaluated {
                    let Some(r) = reports.get_mut(e.segment.as_str()) else {
                        continue;
                    };
                    r.customers += 1;
                    r.invoices += e.invoices;
                    r.already_done += e.already_done;
                    r.blocked += e.blocked;
                    r.errors += e.errors;
                    batch.extend(e.actions);
                }
            }
            // Decisions are written several read batches at a time: each write transaction
            // inserts into the action log's indexes, so fewer, larger transactions rewrite
            // each index page fewer times. A full batch is written by a task of its own
            // while the next one is read and evaluated; the pass waits only for the
            // previous write (one at a time, in order) before it starts the next.
            let full = sink_pending.lock().ok().and_then(|mut p| {
                p.extend(batch);
                (p.len() >= WRITE_ACTIONS).then(|| std::mem::take(&mut *p))
            });
            let (writer, reports, growth) =
                (writer.clone(), sink_reports.clone(), sink_growth.clone());
            let in_flight = sink_in_flight.clone();
            async move {
                let Some(batch) = full else { return Ok(()) };
                let previous = in_flight.lock().ok().and_then(|mut w| w.take());
                finish_write(previous).await?;
                let task =
                    tokio::spawn(
                        async move { write_actions(&writer, batch, &reports, &growth).await },
                    );
                if let Ok(mut w) = in_flight.lock() {
                    *w = Some(task);
                }
                Ok(())
            }
        },
    )
    .await;
    // The write under way, even when the pass failed: its transaction completes or not
    // as a whole, and is not left running after the tick.
    let previous = in_flight.lock().ok().and_then(|mut w| w.take());
    let written = finish_write(previous).await;
    let stats = passed?;
    written?;
    let rest = pending
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    write_actions(&store, rest, &reports, &growth).await?;
    store.refresh_action_statistics().await?;
    let mut reports = reports.lock().map(|r| r.clone()).unwrap_or_default();
    // Every customer read must have been evaluated: when one was not, the pass (all its
    // segments: which one the customer was in is not known) is recorded as failed.
    let failure = stats.unaccounted();
    Ok(segments
        .iter()
        .filter_map(|s| reports.remove(s.as_str()))
        .map(|r| TickReport {
            failure: failure.clone(),
            ..r
        })
        .collect())
}
