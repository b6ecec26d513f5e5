//! The facts a rule sees: `today` and `customer`, precomputed in Rust so scripts stay
//! short and cheap (totals, days overdue, steps applied, blocking reasons). Script
//! values are `Arc` handles: passing them around in a script copies no data.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use rhai::ImmutableString;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{Account, Jurisdictions, PromiseStatus};

/// A calendar date in scripts: `today`, due dates... `a - b` is a number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

/// What facts are computed with, besides the account itself.
#[derive(Debug, Clone)]
pub struct FactSettings {
    /// Late-payment terms; a customer's are those of its country.
    pub late_payment: Arc<Jurisdictions>,
    /// Insurer policy key → days after the due date by which an overdue must be declared.
    pub insurer_deadlines: HashMap<String, i64>,
}

pub(crate) struct InvoiceFact {
    pub days_overdue: i64,
    /// Steps applied to this invoice: (step, kind, last date applied, times applied).
    pub steps: Vec<(ImmutableString, crate::domain::ActionKind, NaiveDate, u32)>,
    /// Why the invoice cannot be dunned today, if it cannot.
    pub blocked: Option<String>,
    pub promised_until: Option<NaiveDate>,
    interest: OnceLock<Result<Decimal, String>>,
}

pub(crate) struct Inner {
    pub today: NaiveDate,
    pub account: Account,
    pub settings: Arc<FactSettings>,
    /// The customer's ids, shared by its decisions.
    pub ext_id: Arc<str>,
    pub seg: Arc<str>,
    pub invoices: Vec<InvoiceFact>,
    pub exposure: Decimal,
    pub overdue_total: Decimal,
    pub not_due_total: Decimal,
    pub oldest_overdue_days: i64,
    pub insurer_deadline: Option<NaiveDate>,
    pub paused: bool,
    /// The promise to pay in force today (pending, date not passed).
    pub active_promise: Option<usize>,
    pub broken_promise: Option<usize>,
    pub last_contact: Option<NaiveDate>,
}

impl Inner {
    /// The number of the customer's `i`-th open invoice.
    pub(crate) fn number(&self, i: usize) -> &str {
        &self.account.invoices[i].invoice.number
    }
}

/// `customer` in scripts.
#[derive(Clone)]
pub struct CustomerFacts(pub(crate) Arc<Inner>);

/// A list of the customer's invoices in scripts (`customer.invoices`, filters): a
/// handle and indexes, so filtering and passing lists around copies no invoice.
/// Lists of up to 15 invoices (nearly all) need no allocation of their own.
#[derive(Clone)]
pub struct InvoiceList {
    pub(crate) c: Arc<Inner>,
    idx: Indexes,
}

#[derive(Clone)]
enum Indexes {
    Inline { len: u8, items: [u16; 15] },
    Heap(Arc<[u32]>),
}

impl InvoiceList {
    pub(crate) fn new(c: &Arc<Inner>, idx: impl IntoIterator<Item = u32>) -> InvoiceList {
        let mut items = [0u16; 15];
        let mut len = 0usize;
        let mut iter = idx.into_iter();
        for i in iter.by_ref() {
            if len == items.len() || i > u32::from(u16::MAX) {
                let all: Vec<u32> = items[..len]
                    .iter()
                    .map(|&x| u32::from(x))
                    .chain(std::iter::once(i))
                    .chain(iter)
                    .collect();
                return InvoiceList {
                    c: c.clone(),
                    idx: Indexes::Heap(all.into()),
                };
            }
            items[len] = i as u16;
            len += 1;
        }
        InvoiceList {
            c: c.clone(),
            idx: Indexes::Inline {
                len: len as u8,
                items,
            },
        }
    }

    /// Indexes into the customer's open invoices.
    pub(crate) fn indexes(&self) -> impl Iterator<Item = usize> + '_ {
        let (inline, heap): (&[u16], &[u32]) = match &self.idx {
            Indexes::Inline { len, items } => (&items[..usize::from(*len)], &[]),
            Indexes::Heap(all) => (&[], all),
        };
        inline
            .iter()
            .map(|&i| usize::from(i))
            .chain(heap.iter().map(|&i| i as usize))
    }

    pub(crate) fn len(&self) -> usize {
        match &self.idx {
            Indexes::Inline { len, .. } => usize::from(*len),
            Indexes::Heap(all) => all.len(),
        }
    }

    /// The invoices of the list matching `keep`.
    pub(crate) fn retain(
        &self,
        keep: impl Fn(&InvoiceFact, &crate::domain::OpenInvoice) -> bool,
    ) -> InvoiceList {
        let c = &self.c;
        InvoiceList::new(
            c,
            self.indexes()
                .filter(|&i| keep(&c.invoices[i], &c.account.invoices[i]))
                .map(|i| i as u32),
        )
    }

    /// The invoice numbers of the list, in its order.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = String> + '_ {
        self.indexes()
            .map(|i| self.c.account.invoices[i].invoice.number.clone())
    }

    pub(crate) fn get(&self, n: usize) -> Option<InvoiceFacts> {
        self.indexes().nth(n).map(|i| InvoiceFacts {
            c: self.c.clone(),
            i,
        })
    }
}

impl IntoIterator for InvoiceList {
    type Item = InvoiceFacts;
    type IntoIter = std::vec::IntoIter<InvoiceFacts>;
    fn into_iter(self) -> Self::IntoIter {
        self.indexes()
            .map(|i| InvoiceFacts {
                c: self.c.clone(),
                i,
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// An invoice in scripts.
#[derive(Clone)]
pub struct InvoiceFacts {
    pub(crate) c: Arc<Inner>,
    pub(crate) i: usize,
}

impl InvoiceFacts {
    pub(crate) fn number(&self) -> String {
        self.open().invoice.number.clone()
    }

    pub(crate) fn fact(&self) -> &InvoiceFact {
        &self.c.invoices[self.i]
    }

    pub(crate) fn open(&self) -> &crate::domain::OpenInvoice {
        &self.c.account.invoices[self.i]
    }

    /// Late interest as of today (computed on first use).
    pub(crate) fn interest(&self) -> Result<Decimal, String> {
        self.fact()
            .interest
            .get_or_init(|| {
                let o = self.open();
                self.c
                    .settings
                    .late_payment
                    .for_country(self.c.account.customer.country)
                    .interest(
                        o.principal(),
                        o.invoice.due_date,
                        &o.payments,
                        self.c.today,
                        o.invoice.currency,
                    )
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    pub(crate) fn indemnity(&self) -> Decimal {
        self.c
            .settings
            .late_payment
            .for_country(self.c.account.customer.country)
            .indemnity(self.open().invoice.due_date, self.c.today)
    }
}

impl CustomerFacts {
    /// Precomputes the facts of one account as of `today`.
    pub fn new(account: Account, today: NaiveDate, settings: Arc<FactSettings>) -> CustomerFacts {
        let c = &account.customer;
        let paused = c.pause.as_ref().is_some_and(|p| p.active_on(today));
        // Promises: the latest pending one not yet due is in force; one whose date passed
        // with its invoices still open, or marked broken, is broken.
        let is_open = |n: &String| account.invoices.iter().any(|o| &o.invoice.number == n);
        let mut active_promise = None;
        let mut broken_promise = None;
        for (i, p) in account.promises.iter().enumerate() {
            let still_open = p.invoices.is_empty() || p.invoices.iter().any(is_open);
            match p.status {
                PromiseStatus::Pending if p.promised_date >= today => active_promise = Some(i),
                PromiseStatus::Pending if still_open => broken_promise = Some(i),
                PromiseStatus::Broken if still_open => broken_promise = Some(i),
                _ => {}
            }
        }
        let promised: Option<(NaiveDate, &[String])> = active_promise.map(|i| {
            let p = &account.promises[i];
            (p.promised_date, p.invoices.as_slice())
        });

        // Few invoices and steps per customer: a vector beats hashing here.
        type Steps = Vec<(ImmutableString, crate::domain::ActionKind, NaiveDate, u32)>;
        let mut steps_by_invoice: Vec<(&str, Steps)> = Vec::new();
        let mut last_contact: Option<NaiveDate> = None;
        for h in &account.history {
            last_contact = Some(last_contact.map_or(h.date, |d: NaiveDate| d.max(h.date)));
            let pos = match steps_by_invoice.iter().position(|(n, _)| *n == h.invoice) {
                Some(p) => p,
                None => {
                    steps_by_invoice.push((h.invoice.as_str(), Vec::new()));
                    steps_by_invoice.len() - 1
                }
            };
            let list = &mut steps_by_invoice[pos].1;
            match list.iter_mut().find(|s| s.0.as_str() == h.step) {
                Some(s) => {
                    s.2 = s.2.max(h.date);
                    s.3 += 1;
                }
                None => list.push((h.step.as_str().into(), h.kind, h.date, 1)),
            }
        }

        // Zero at the currency's scale, so that snapshots read 0.00, not 0.
        let zero = c.currency.from_minor(0);
        let mut exposure = zero;
        let mut overdue_total = zero;
        let mut not_due_total = zero;
        let mut oldest_overdue_days = 0;
        let mut oldest_due: Option<NaiveDate> = None;
        // Invoices handed over to the credit insurer leave the dunning ladder: the insurer
        // collects them now.
        let handed_over: Vec<(&str, NaiveDate)> = account
            .history
            .iter()
            .filter(|h| {
                h.kind == crate::domain::ActionKind::InsurerHandover
                    && !["failed", "dead"].contains(&h.status.as_str())
            })
            .map(|h| (h.invoice.as_str(), h.date))
            .collect();
        let mut invoices = Vec::with_capacity(account.invoices.len());
        for o in &account.invoices {
            let inv = &o.invoice;
            let days_overdue = (today - inv.due_date).num_days();
            exposure += inv.open_amount;
            if days_overdue > 0 {
                overdue_total += inv.open_amount;
                oldest_overdue_days = oldest_overdue_days.max(days_overdue);
                oldest_due =
                    Some(oldest_due.map_or(inv.due_date, |d: NaiveDate| d.min(inv.due_date)));
            } else {
                not_due_total += inv.open_amount;
            }
            let promised_until = promised.and_then(|(date, list)| {
                (list.is_empty() || list.contains(&inv.number)).then_some(date)
            });
            let handover = handed_over
                .iter()
                .find(|(n, _)| *n == inv.number.as_str())
                .map(|(_, d)| *d);
            let blocked = if let Some(d) = handover {
                Some(format!("handed over to the credit insurer on {d}"))
            } else if paused {
                let p = c.pause.as_ref().map(|p| (p.reason.clone(), p.until));
                p.map(|(r, u)| match u {
                    Some(u) => format!("customer paused until {u}: {r}"),
                    None => format!("customer paused: {r}"),
                })
            } else if let Some(d) = &inv.dispute {
                Some(format!("disputed: {}", d.reason))
            } else if let Some(p) = inv.pause.as_ref().filter(|p| p.active_on(today)) {
                Some(match p.until {
                    Some(u) => format!("paused until {u}: {}", p.reason),
                    None => format!("paused: {}", p.reason),
                })
            } else {
                promised_until.map(|d| format!("promise to pay by {d}"))
            };
            invoices.push(InvoiceFact {
                days_overdue,
                steps: steps_by_invoice
                    .iter_mut()
                    .find(|(n, _)| *n == inv.number)
                    .map(|(_, v)| std::mem::take(v))
                    .unwrap_or_default(),
                blocked,
                promised_until,
                interest: OnceLock::new(),
            });
        }
        let insurer_deadline = if c.insurance.insured {
            let days = c
                .insurance
                .policy
                .as_ref()
                .and_then(|p| settings.insurer_deadlines.get(p))
                .copied();
            oldest_due
                .zip(days)
                .map(|(d, n)| d + chrono::Duration::days(n))
        } else {
            None
        };
        let inner = Inner {
            today,
            ext_id: Arc::from(c.external_id.as_str()),
            seg: Arc::from(c.segment.as_str()),
            invoices,
            exposure,
            overdue_total,
            not_due_total,
            oldest_overdue_days,
            insurer_deadline,
            paused,
            active_promise,
            broken_promise,
            last_contact,
            settings,
            account,
        };
        CustomerFacts(Arc::new(inner))
    }

    pub fn account(&self) -> &Account {
        &self.0.account
    }

    pub fn today(&self) -> NaiveDate {
        self.0.today
    }

    /// A compact summary of the facts, stored with each decision to answer
    /// "why was this sent?".
    pub fn snapshot(&self) -> FactsSnapshot {
        let c = &self.0;
        FactsSnapshot {
            today: c.today,
            segment: c.seg.to_string(),
            exposure: c.exposure,
            overdue_total: c.overdue_total,
            not_due_total: c.not_due_total,
            oldest_overdue_days: c.oldest_overdue_days,
            unapplied_credit: c.account.unapplied_credit,
            paused: c.paused,
            insured: c.account.customer.insurance.insured,
            insurer_deadline: c.insurer_deadline,
            promise: c
                .active_promise
                .map(|i| c.account.promises[i].promised_date),
            broken_promise: c.broken_promise.is_some(),
            has_email: !c.account.customer.emails.is_empty(),
            has_mobile: c
                .account
                .customer
                .phones
                .iter()
                .any(|p| p.is_probably_mobile()),
            days_to_insurer_deadline: c.insurer_deadline.map(|d| (d - c.today).num_days()),
            last_contact_days: c.last_contact.map(|d| (c.today - d).num_days()),
            invoices: c
                .invoices
                .iter()
                .zip(&c.account.invoices)
                .map(|(f, o)| InvoiceSnapshot {
                    number: o.invoice.number.clone(),
                    due_date: o.invoice.due_date,
                    open_amount: o.invoice.open_amount,
                    days_overdue: f.days_overdue,
                    steps: f.steps.iter().map(|s| s.0.to_string()).collect(),
                    blocked: f.blocked.clone(),
                })
                .collect(),
        }
    }
}

/// What a decision was based on, as stored in the action log.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FactsSnapshot {
    pub today: NaiveDate,
    pub segment: String,
    pub exposure: Decimal,
    pub overdue_total: Decimal,
    pub not_due_total: Decimal,
    pub oldest_overdue_days: i64,
    pub unapplied_credit: Decimal,
    pub paused: bool,
    pub insured: bool,
    pub insurer_deadline: Option<NaiveDate>,
    pub promise: Option<NaiveDate>,
    pub broken_promise: bool,
    /// The channel facts rules test (absent from snapshots stored before they were
    /// kept).
    #[serde(default)]
    pub has_email: bool,
    #[serde(default)]
    pub has_mobile: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_to_insurer_deadline: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_days: Option<i64>,
    pub invoices: Vec<InvoiceSnapshot>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct InvoiceSnapshot {
    pub number: String,
    pub due_date: NaiveDate,
    pub open_amount: Decimal,
    pub days_overdue: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}
