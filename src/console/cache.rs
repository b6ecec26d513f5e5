//! The reports the console shows, kept for a few minutes: a report reads the whole
//! ledger (seconds on 100,000 customers), a page must answer at once. A report asked for
//! is computed once however many pages ask for it meanwhile; after [`FRESH`] the page
//! answers with the kept figures (saying when they were computed) while they are
//! computed again in the background. The dashboard's reports and each report's default
//! page are computed when the service starts ([`warm_up`]), after the customer list's
//! index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::ConsoleState;
use crate::reports::{Report, ReportKind, ReportQuery};

/// How long a report is served before it is computed again.
pub(crate) const FRESH: Duration = Duration::from_secs(300);

/// A report as computed, and when.
#[derive(Clone)]
pub(crate) struct Cached {
    pub report: Arc<Report>,
    pub computed: Instant,
    pub at: DateTime<Utc>,
    kind: ReportKind,
    query: ReportQuery,
}

#[derive(Default)]
pub(crate) struct ReportCache {
    entries: Mutex<HashMap<String, Cached>>,
    /// One lock per report being computed: the pages asking for it meanwhile wait for
    /// that computation rather than starting their own.
    computing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The customer index read again after changes.
    index_job: Arc<Coalesced>,
    /// The kept reports and the dashboard computed again after changes.
    reports_job: Arc<Coalesced>,
}

/// Work done again after changes, in the background: changes made while it runs lead
/// to one more run, not one each, and runs start at least `gap` apart.
#[derive(Default)]
pub(crate) struct Coalesced {
    dirty: std::sync::atomic::AtomicBool,
    running: std::sync::atomic::AtomicBool,
    last: Mutex<Option<Instant>>,
}

impl Coalesced {
    fn trigger<F, Fut>(self: &Arc<Self>, gap: Duration, work: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        use std::sync::atomic::Ordering::SeqCst;
        self.dirty.store(true, SeqCst);
        if self.running.swap(true, SeqCst) {
            return;
        }
        let job = self.clone();
        tokio::spawn(async move {
            loop {
                while job.dirty.swap(false, SeqCst) {
                    let since = job.last.lock().ok().and_then(|l| *l).map(|l| l.elapsed());
                    if let Some(wait) = since.and_then(|s| gap.checked_sub(s)) {
                        tokio::time::sleep(wait).await;
                        // Changes made meanwhile are covered by this run.
                        job.dirty.store(false, SeqCst);
                    }
                    if let Ok(mut l) = job.last.lock() {
                        *l = Some(Instant::now());
                    }
                    work().await;
                }
                job.running.store(false, SeqCst);
                // A change marked between the last look and now: go on, unless another
                // task has taken over.
                if !job.dirty.load(SeqCst) || job.running.swap(true, SeqCst) {
                    break;
                }
            }
        });
    }
}

/// The least time between two computations of the kept reports after changes: each
/// reads the whole ledger (about 100 s for 100,000 customers).
const REPORTS_GAP: Duration = Duration::from_secs(60);

fn key(kind: ReportKind, query: &ReportQuery) -> String {
    format!("{}|{query:?}", kind.as_str())
}

impl ReportCache {
    fn get(&self, key: &str) -> Option<Cached> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self
            .computing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key.to_string()).or_default().clone()
    }

    fn put(&self, kind: ReportKind, query: &ReportQuery, report: Report) -> Cached {
        let key = key(kind, query);
        let c = Cached {
            report: Arc::new(report),
            computed: Instant::now(),
            at: Utc::now(),
            kind,
            query: query.clone(),
        };
        if let Ok(mut m) = self.entries.lock() {
            // Reports of past days are not asked for again: keep the map small, and the
            // locks of reports no longer kept nor being computed.
            m.retain(|_, v| v.computed.elapsed() < FRESH * 12);
            m.insert(key, c.clone());
            if let Ok(mut locks) = self.computing.lock() {
                locks.retain(|k, l| m.contains_key(k) || Arc::strong_count(l) > 1);
            }
        }
        c
    }
}

async fn compute(
    state: &ConsoleState,
    kind: ReportKind,
    query: &ReportQuery,
) -> Result<Report, String> {
    crate::reports::run(state.store.as_ref(), &state.config, kind, query)
        .await
        .map_err(|e| e.to_string())
}

/// The report, kept or computed (see the module's documentation).
///
/// # Errors
/// The report's error, as text.
pub(crate) async fn report(
    state: &ConsoleState,
    kind: ReportKind,
    query: &ReportQuery,
) -> Result<Cached, String> {
    let cache = &state.reports;
    let k = key(kind, query);
    if let Some(c) = cache.get(&k) {
        if c.computed.elapsed() > FRESH {
            refresh(state, kind, query.clone());
        }
        return Ok(c);
    }
    let lock = cache.lock_for(&k);
    let _computing = lock.lock().await;
    if let Some(c) = cache.get(&k) {
        return Ok(c);
    }
    let r = compute(state, kind, query).await?;
    Ok(cache.put(kind, query, r))
}

/// Computes the report again in the background, unless it is being computed.
fn refresh(state: &ConsoleState, kind: ReportKind, query: ReportQuery) {
    let k = key(kind, &query);
    let lock = state.reports.lock_for(&k);
    let Ok(guard) = lock.clone().try_lock_owned() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let _computing = guard;
        match compute(&state, kind, &query).await {
            Ok(r) => {
                state.reports.put(kind, &query, r);
            }
            Err(e) => {
                tracing::warn!(report = kind.as_str(), error = %e, "cannot compute the report again; the console shows the previous figures")
            }
        }
    });
}

/// A change was made in the console (a promise, a pause, a dispute, a call's
/// outcome...): the kept reports and the dashboard's figures are computed again in the
/// background, the pages answering with the previous ones meanwhile: the customer index
/// at once, the reports at most once a minute ([`REPORTS_GAP`]). Changes made meanwhile
/// lead to one more computation, not one each.
pub(crate) fn ledger_changed(state: &ConsoleState) {
    let st = state.clone();
    state.reports.index_job.trigger(Duration::ZERO, move || {
        let state = st.clone();
        async move { super::index::rebuild(&state, true).await }
    });
    let st = state.clone();
    state.reports.reports_job.trigger(REPORTS_GAP, move || {
        let state = st.clone();
        async move { recompute_kept(&state).await }
    });
}

/// Computes every kept report again, then the dashboard's figures.
async fn recompute_kept(state: &ConsoleState) {
    let cache = &state.reports;
    let kept: Vec<Cached> = cache
        .entries
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for c in kept {
        let lock = cache.lock_for(&key(c.kind, &c.query));
        let _computing = lock.lock().await;
        match compute(state, c.kind, &c.query).await {
            Ok(r) => {
                cache.put(c.kind, &c.query, r);
            }
            Err(e) => {
                tracing::warn!(report = c.kind.as_str(), error = %e, "cannot compute the report again; the console shows the previous figures")
            }
        }
    }
    super::pages::recompute_dashboard(state).await;
}

/// Computes, in the background, the dashboard's figures and each report's default page
/// (as of today, default period and filters), so that the first pages asked for after
/// the service starts answer at once. The returned handle ends when they are computed.
pub fn warm_up(state: &ConsoleState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        super::index::rebuild(&state, true).await;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "the console's customer list is ready"
        );
        super::pages::warm_dashboard(&state).await;
        let today = state.today();
        // The experiment report compares a segment's variants: it is asked for by
        // segment, not computed ahead.
        for kind in ReportKind::ALL
            .into_iter()
            .filter(|k| *k != ReportKind::Experiment)
        {
            match ReportQuery::build(&state.config, today, None, Default::default(), None, today) {
                Ok(q) => {
                    if let Err(e) = report(&state, kind, &q).await {
                        tracing::warn!(report = kind.as_str(), error = %e, "cannot compute the report for the console");
                    }
                }
                Err(e) => {
                    tracing::warn!(report = kind.as_str(), error = %e, "cannot build the report's default query")
                }
            }
        }
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "the console's dashboard and reports are computed"
        );
    })
}
