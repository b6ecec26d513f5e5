//! The customer list's index: every customer with its balance and what the list filters
//! on, read from the ledger by one statement and searched in memory, so that the list,
//! its filters and its search answer in milliseconds on 100,000 customers. Built when
//! the service starts, read again after a change made in the console, and every
//! [`FRESH`](super::cache::FRESH) otherwise (in the background, the list answering from
//! the previous one meanwhile). Until it is built, and on a new day, the list is read
//! from the ledger directly.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use super::ConsoleState;
use crate::store::users::{CustomerQuery, CustomerRow, IndexedCustomer};

/// The customers, the most overdue first (then by id), as of a day.
pub struct CustomerIndex {
    customers: Vec<IndexedCustomer>,
    /// Each customer's name in lower case, for the search.
    names: Vec<String>,
    pub(crate) today: NaiveDate,
    pub(crate) at: DateTime<Utc>,
    built: Instant,
}

#[derive(Default)]
pub(crate) struct IndexSlot {
    current: RwLock<Option<Arc<CustomerIndex>>>,
    building: AtomicBool,
}

impl CustomerIndex {
    /// The index of these customers (as [`crate::store::ConsoleStore::customer_index`]
    /// reads them) as of `today`.
    pub fn new(mut customers: Vec<IndexedCustomer>, today: NaiveDate) -> CustomerIndex {
        customers.sort_by(|a, b| {
            b.row
                .overdue_minor
                .cmp(&a.row.overdue_minor)
                .then_with(|| a.row.external_id.cmp(&b.row.external_id))
        });
        let names = customers
            .iter()
            .map(|c| c.row.name.to_lowercase())
            .collect();
        CustomerIndex {
            customers,
            names,
            today,
            at: Utc::now(),
            built: Instant::now(),
        }
    }

    /// One page of the customers matching `q`, as the ledger's query would give it.
    /// `invoice_owner` is the customer of the invoice numbered as the search text, if
    /// there is one.
    pub fn search(&self, q: &CustomerQuery, invoice_owner: Option<&str>) -> Vec<CustomerRow> {
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let lower = text.map(|t| t.to_lowercase().replace(['\\', '%', '_'], ""));
        let siren = text.map(|t| t.replace(' ', ""));
        let oldest_at_most = q.min_days.map(|d| q.today - chrono::Duration::days(d));
        let oldest_at_least = q.max_days.map(|d| q.today - chrono::Duration::days(d));
        self.customers
            .iter()
            .zip(&self.names)
            .filter(|(c, name)| {
                let r = &c.row;
                if let Some(t) = text {
                    let found = r.external_id == t
                        || c.siren.as_deref() == siren.as_deref()
                        || lower.as_deref().is_some_and(|l| name.contains(l))
                        || invoice_owner == Some(r.external_id.as_str());
                    if !found {
                        return false;
                    }
                }
                q.segment.as_ref().is_none_or(|s| &r.segment == s)
                    && q.collector
                        .as_ref()
                        .is_none_or(|s| r.collector.as_ref() == Some(s))
                    && (!q.paused || r.paused)
                    && (!q.insured || r.insured)
                    && (!q.disputed || r.disputed)
                    && (!q.promised || r.promised)
                    && oldest_at_most.is_none_or(|d| r.oldest_due.is_some_and(|o| o <= d))
                    && oldest_at_least.is_none_or(|d| r.oldest_due.is_some_and(|o| o >= d))
            })
            .skip(q.offset as usize)
            .take(q.limit as usize)
            .map(|(c, _)| c.row.clone())
            .collect()
    }
}

/// The index to search for today, if there is one; one computed more than
/// [`FRESH`](super::cache::FRESH) ago is still given, and read again in the background.
pub(crate) fn current(state: &ConsoleState) -> Option<Arc<CustomerIndex>> {
    let ix = state.index.current.read().ok()?.clone()?;
    if ix.today != state.today() {
        rebuild_in_background(state);
        return None;
    }
    if ix.built.elapsed() > super::cache::FRESH {
        rebuild_in_background(state);
    }
    Some(ix)
}

/// Reads the index from the ledger, once at a time: with `wait`, after the reading
/// under way if there is one (it may have begun before a change to show); without, a
/// call while it is being read returns at once.
pub(crate) async fn rebuild(state: &ConsoleState, wait: bool) {
    while state.index.building.swap(true, SeqCst) {
        if !wait {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let today = state.today();
    match state.store.customer_index(today).await {
        Ok(customers) => {
            let ix = Arc::new(CustomerIndex::new(customers, today));
            if let Ok(mut slot) = state.index.current.write() {
                *slot = Some(ix);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the customer list's index; the list is read from the ledger meanwhile")
        }
    }
    state.index.building.store(false, SeqCst);
}

fn rebuild_in_background(state: &ConsoleState) {
    if state.index.building.load(SeqCst) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move { rebuild(&state, false).await });
}
