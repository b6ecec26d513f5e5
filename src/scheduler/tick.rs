//! One tick: evaluate a segment's customers and write the decisions to the action log.
//!
//! Every planned action gets a deterministic key (customer, kind, step, repeat number,
//! invoice set) under a UNIQUE constraint: re-running a tick, a restart in the middle of
//! one, or two instances deciding at once never produce a second action. Blocked and
//! error decisions are logged at most once a day each.

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

fn new_action(d: &Decision, facts: &str, as_of: NaiveDate) -> Option<NewAction> {
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
        facts: facts.to_string(),
        decided_on: as_of,
        status,
        detail: (!d.detail.is_empty()).then(|| d.detail.clone()),
        invoices: d.invoices.iter().map(|n| n.to_string()).collect(),
    })
}

/// Runs one tick of `segment` as of `as_of`.
///
/// # Errors
/// A database error; the tick is then recorded as failed.
#[allow(clippy::too_many_arguments)]
pub async fn run_tick(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    segment: &str,
    as_of: NaiveDate,
    scheduled_for: DateTime<Utc>,
    trigger: &str,
    instance: &str,
) -> Result<TickReport, StoreError> {
    let tick_id = store
        .start_tick(segment, scheduled_for, trigger, as_of, instance, Utc::now())
        .await?;
    let result = tick_body(store.clone(), config, rules, segment, as_of).await;
    let now = Utc::now();
    match &result {
        Ok(r) => {
            store
                .finish_tick(
                    tick_id,
                    "done",
                    r.customers as i64,
                    r.planned as i64,
                    r.blocked as i64,
                    r.errors as i64,
                    None,
                    now,
                )
                .await?;
            tracing::info!(segment, %as_of, customers = r.customers, planned = r.planned, duplicates = r.duplicates, blocked = r.blocked, errors = r.errors, "tick done");
        }
        Err(e) => {
            let _ = store
                .finish_tick(tick_id, "failed", 0, 0, 0, 0, Some(&e.to_string()), now)
                .await;
            tracing::error!(segment, %as_of, error = %e, "tick failed");
        }
    }
    result
}

async fn tick_body(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    segment: &str,
    as_of: NaiveDate,
) -> Result<TickReport, StoreError> {
    // Promises whose date passed become broken (or kept) before the rules look.
    let mut tx = store.begin().await?;
    tx.refresh_promises(as_of, Utc::now()).await?;
    tx.commit().await?;

    let filter = AccountFilter {
        segments: Some(vec![segment.to_string()]),
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
    let report = Arc::new(Mutex::new(TickReport {
        segment: segment.to_string(),
        as_of: Some(as_of),
        ..Default::default()
    }));
    let writer = store.clone();
    let sink_report = report.clone();
    let stats = pipeline::run(store.clone(), filter, rules, make, opts, move |outcomes| {
        let mut batch = Vec::new();
        if let Ok(mut r) = sink_report.lock() {
            for o in &outcomes {
                // Already-done decisions are not recorded: no snapshot for them.
                let recorded = o
                    .decisions
                    .iter()
                    .any(|d| d.status != DecisionStatus::AlreadyDone);
                let facts = if recorded {
                    serde_json::to_string(&o.facts.snapshot()).unwrap_or_else(|_| "{}".into())
                } else {
                    String::new()
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
        let planned: u64 = batch
            .iter()
            .filter(|a| a.status == ActionStatus::Planned)
            .count() as u64;
        let (writer, report) = (writer.clone(), sink_report.clone());
        async move {
            let counts = writer.record_actions(&batch, Utc::now()).await?;
            if let Ok(mut r) = report.lock() {
                // Duplicates are decisions already logged; the rest of the planned ones are new.
                r.duplicates += counts.duplicates;
                r.planned += planned.saturating_sub(counts.duplicates);
            }
            Ok::<_, StoreError>(())
        }
    })
    .await?;
    let mut r = report.lock().map(|r| r.clone()).unwrap_or_default();
    r.customers = stats.customers;
    r.invoices = stats.invoices;
    Ok(r)
}
