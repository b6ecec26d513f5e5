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

use crate::config::Config;
use crate::scripting::registry::sha256_hex;
use crate::scripting::{pipeline, Decision, DecisionStatus, Evaluator, Limits, RuleSet};
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
    /// Decisions already in the log (a re-run).
    pub duplicates: u64,
    pub already_done: u64,
    pub blocked: u64,
    pub errors: u64,
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
) -> Result<Vec<TickReport>, StoreError> {
    let mut tick_ids = Vec::with_capacity(segments.len());
    for segment in segments {
        tick_ids.push(
            store
                .start_tick(segment, scheduled_for, trigger, as_of, instance, Utc::now())
                .await?,
        );
    }
    let started = std::time::Instant::now();
    let result = tick_body(store.clone(), config, rules, segments, as_of).await;
    let metrics = crate::metrics::global();
    metrics.tick_duration(started.elapsed());
    let now = Utc::now();
    match &result {
        Ok(reports) => {
            for (r, tick_id) in reports.iter().zip(&tick_ids) {
                store
                    .finish_tick(
                        *tick_id,
                        "done",
                        r.customers as i64,
                        r.planned as i64,
                        r.blocked as i64,
                        r.errors as i64,
                        None,
                        now,
                    )
                    .await?;
                metrics.tick(&r.segment, "done", r.customers, r.errors);
                tracing::info!(segment = %r.segment, %as_of, customers = r.customers, planned = r.planned, duplicates = r.duplicates, blocked = r.blocked, errors = r.errors, "tick done");
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
                }
            }
        }
    }
    Ok(())
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
    pipeline::run(store.clone(), filter, rules, make, opts, move |outcomes| {
        let mut batch = Vec::new();
        if let Ok(mut reports) = sink_reports.lock() {
            for o in &outcomes {
                let account = o.facts.account();
                let Some(r) = reports.get_mut(account.customer.segment.as_str()) else {
                    continue;
                };
                r.customers += 1;
                r.invoices += account.invoices.len() as u64;
                // Already-done decisions are not recorded: no snapshot for them.
                let recorded = o
                    .decisions
                    .iter()
                    .any(|d| d.status != DecisionStatus::AlreadyDone);
                let facts: (Arc<str>, Arc<str>) = if recorded {
                    let json =
                        serde_json::to_string(&o.facts.snapshot()).unwrap_or_else(|_| "{}".into());
                    let sha = sha256_hex(json.as_bytes());
                    (json.into(), sha.into())
                } else {
                    (Arc::from(""), Arc::from(""))
                };
                for d in &o.decisions {
                    match d.status {
                        DecisionStatus::AlreadyDone => r.already_done += 1,
                        DecisionStatus::Blocked => r.blocked += 1,
                        DecisionStatus::Error => r.errors += 1,
                        DecisionStatus::Planned => {}
                    }
                    batch.extend(new_action(d, &facts, as_of));
                }
            }
        }
        // Decisions are written several read batches at a time: each write transaction
        // inserts into the action log's indexes all over their key range, so fewer,
        // larger transactions rewrite each index page fewer times.
        let full = sink_pending.lock().ok().and_then(|mut p| {
            p.extend(batch);
            (p.len() >= WRITE_ACTIONS).then(|| std::mem::take(&mut *p))
        });
        let (writer, reports, growth) = (writer.clone(), sink_reports.clone(), sink_growth.clone());
        async move {
            match full {
                Some(batch) => write_actions(&writer, batch, &reports, &growth).await,
                None => Ok(()),
            }
        }
    })
    .await?;
    let rest = pending
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    write_actions(&store, rest, &reports, &growth).await?;
    store.refresh_action_statistics().await?;
    let mut reports = reports.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(segments
        .iter()
        .filter_map(|s| reports.remove(s.as_str()))
        .collect())
}
