//! Evaluating a portfolio: accounts are read in batches (in customer order) by one
//! task while worker threads, each with its own Rhai engine, evaluate them; outcomes
//! reach the caller batch by batch, in customer order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use futures_util::StreamExt;

use crate::scripting::{Evaluator, Outcome, RuleSet};
use crate::store::{AccountFilter, Store, StoreError};

/// How a portfolio is evaluated.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub workers: usize,
    /// Customers per batch.
    pub batch: usize,
    pub today: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PipelineStats {
    /// Customers read from the ledger.
    pub customers: u64,
    pub invoices: u64,
    /// Customers whose outcome reached the sink.
    pub evaluated: u64,
    /// Customers read but not evaluated: a defect met outside the rule itself (the
    /// customer's facts), with its message. The others were evaluated all the same.
    pub lost: Vec<LostCustomer>,
}

impl PipelineStats {
    /// Why not every customer read was evaluated, if so: what a tick records as its
    /// failure.
    pub fn unaccounted(&self) -> Option<String> {
        if self.evaluated == self.customers && self.lost.is_empty() {
            return None;
        }
        let missing = self.customers.saturating_sub(self.evaluated);
        let mut why = format!(
            "{missing} of {} customers read were not evaluated",
            self.customers
        );
        for l in self.lost.iter().take(5) {
            why.push_str(&format!("; {}: {}", l.customer, l.message));
        }
        if self.lost.len() > 5 {
            why.push_str(&format!("; and {} more", self.lost.len() - 5));
        }
        Some(why)
    }
}

/// A customer read but not evaluated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LostCustomer {
    pub customer: String,
    pub message: String,
}

type Job = (u64, Vec<crate::domain::Account>);
/// A batch's outcomes, and the customers of the batch that could not be evaluated.
type Done<T> = (u64, Vec<T>, Vec<LostCustomer>);

/// Runs the pipeline; `sink` receives each batch of outcomes in customer order.
///
/// # Errors
/// A store error while reading, or the first error `sink` returns.
pub async fn run<F, Fut>(
    store: Arc<dyn Store>,
    filter: AccountFilter,
    rules: Arc<RuleSet>,
    make_evaluator: Arc<dyn Fn() -> Evaluator + Send + Sync>,
    opts: PipelineOptions,
    sink: F,
) -> Result<PipelineStats, StoreError>
where
    F: FnMut(Vec<Outcome>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    run_mapped(store, filter, rules, make_evaluator, opts, |_, o| o, sink).await
}

/// Runs the pipeline with `map` applied to each outcome on the worker threads (work
/// that would otherwise run one batch at a time in `sink`), with the worker's evaluator
/// (to evaluate the customer again, with other rules); `sink` receives each batch of
/// mapped outcomes in customer order.
///
/// # Errors
/// A store error while reading, or the first error `sink` returns.
pub async fn run_mapped<T, M, F, Fut>(
    store: Arc<dyn Store>,
    filter: AccountFilter,
    rules: Arc<RuleSet>,
    make_evaluator: Arc<dyn Fn() -> Evaluator + Send + Sync>,
    opts: PipelineOptions,
    map: M,
    mut sink: F,
) -> Result<PipelineStats, StoreError>
where
    T: Send + 'static,
    M: Fn(&Evaluator, Outcome) -> T + Send + Sync + 'static,
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let workers = opts.workers.max(1);
    let map = Arc::new(map);
    let (job_tx, job_rx) = tokio::sync::mpsc::channel::<Job>(workers * 2);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Done<T>>(workers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut threads = Vec::with_capacity(workers);
    for n in 0..workers {
        let job_rx = job_rx.clone();
        let out_tx = out_tx.clone();
        let rules = rules.clone();
        let make = make_evaluator.clone();
        let map = map.clone();
        let today = opts.today;
        let handle = std::thread::Builder::new()
            .name(format!("rules-{n}"))
            .spawn(move || {
                let evaluator = make();
                // Fault injection for tests of the last line of defence: a defect outside
                // the rule while this customer is evaluated.
                let faulty = std::env::var("RELANCE_FAILPOINT")
                    .ok()
                    .and_then(|f| f.strip_prefix("evaluate-panic:").map(str::to_string));
                loop {
                    let job = match job_rx.lock() {
                        Ok(mut rx) => rx.blocking_recv(),
                        Err(_) => None,
                    };
                    let Some((seq, accounts)) = job else { break };
                    let mut outcomes: Vec<T> = Vec::with_capacity(accounts.len());
                    let mut lost = Vec::new();
                    for a in accounts {
                        // The rule's own failures are the customer's error decision; a
                        // defect elsewhere loses this customer only, and is reported.
                        let customer = a.customer.external_id.clone();
                        let evaluated = crate::panics::contain(|| {
                            if faulty.as_deref() == Some(customer.as_str()) {
                                panic!("fault injected for {customer}");
                            }
                            map(&evaluator, evaluator.evaluate(&rules, a, today))
                        });
                        match evaluated {
                            Ok(o) => outcomes.push(o),
                            Err(message) => {
                                tracing::error!(%customer, error = %message, "customer not evaluated");
                                lost.push(LostCustomer { customer, message });
                            }
                        }
                    }
                    if out_tx.blocking_send((seq, outcomes, lost)).is_err() {
                        break;
                    }
                }
            });
        match handle {
            Ok(h) => threads.push(h),
            Err(e) => {
                return Err(StoreError::Invalid(format!(
                    "cannot start a rule worker thread: {e}"
                )))
            }
        }
    }
    drop(out_tx);

    let batch = opts.batch.max(1);
    let reader = tokio::spawn(async move {
        let mut stats = PipelineStats::default();
        let mut stream = store.accounts(&filter, batch);
        let mut seq = 0u64;
        while let Some(next) = stream.next().await {
            let accounts = next?;
            stats.customers += accounts.len() as u64;
            stats.invoices += accounts
                .iter()
                .map(|a| a.invoices.len() as u64)
                .sum::<u64>();
            if job_tx.send((seq, accounts)).await.is_err() {
                break;
            }
            seq += 1;
        }
        Ok::<_, StoreError>(stats)
    });

    // Outcomes may arrive out of order: hold them until their turn.
    let mut waiting: BTreeMap<u64, Vec<T>> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut sink_result = Ok(());
    let mut evaluated = 0u64;
    let mut lost_all = Vec::new();
    while let Some((seq, outcomes, lost)) = out_rx.recv().await {
        lost_all.extend(lost);
        waiting.insert(seq, outcomes);
        while let Some(ready) = waiting.remove(&next_seq) {
            next_seq += 1;
            if sink_result.is_ok() {
                let n = ready.len() as u64;
                sink_result = sink(ready).await;
                if sink_result.is_ok() {
                    evaluated += n;
                }
            }
        }
        if sink_result.is_err() {
            break;
        }
    }
    // Batches after one that never came back (its worker stopped) are still waiting:
    // they reach the sink in order, and the missing batch is counted as not evaluated.
    for (_, ready) in std::mem::take(&mut waiting) {
        if sink_result.is_ok() {
            let n = ready.len() as u64;
            sink_result = sink(ready).await;
            if sink_result.is_ok() {
                evaluated += n;
            }
        }
    }
    drop(out_rx);
    let stats = match reader.await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Invalid(format!(
            "the account reader stopped: {e}"
        ))),
    };
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    sink_result?;
    let mut stats = stats?;
    stats.evaluated = evaluated;
    stats.lost = lost_all;
    Ok(stats)
}
