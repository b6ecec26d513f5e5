//! What the reports read: each customer with all of its invoices (open and closed) and
//! how they were settled, its sent actions, call tasks and promises, streamed in
//! batches of customers so memory is bounded by the batch, not by the portfolio.

use chrono::NaiveDate;

use crate::domain::ActionKind;

/// Which customers and invoices a report reads.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub segment: Option<String>,
    /// The collector customers are assigned to.
    pub collector: Option<String>,
    /// Only invoices (and actions) in this currency.
    pub currency: Option<String>,
    /// Only this customer (external id).
    pub customer: Option<String>,
}

/// What to read besides customers and invoices.
#[derive(Debug, Clone, Copy)]
pub struct ReportNeeds {
    /// The time zone stored instants are dated in (the configured one).
    pub timezone: chrono_tz::Tz,
    /// Sent actions.
    pub actions: bool,
    /// Call tasks.
    pub tasks: bool,
    /// Promises to pay.
    pub promises: bool,
    /// Actions handing invoices over to the insurer (any status but failed, dead,
    /// cancelled, blocked), for the aged balance.
    pub handovers: bool,
    /// Every field of the customer (what the rules see), for replays of the rules.
    pub details: bool,
    /// Every action the rules decided, whatever became of it (rather than the sent
    /// ones of [`Self::actions`]), for replays of the rules.
    pub decided: bool,
}

impl Default for ReportNeeds {
    fn default() -> Self {
        ReportNeeds {
            timezone: chrono_tz::UTC,
            actions: false,
            tasks: false,
            promises: false,
            handovers: false,
            details: false,
            decided: false,
        }
    }
}

/// A customer as the reports see it.
#[derive(Debug, Clone)]
pub struct ReportCustomer {
    pub external_id: String,
    pub name: String,
    pub segment: String,
    pub collector: Option<String>,
    pub currency: String,
    pub credit_limit_minor: Option<i64>,
    pub insured: bool,
    pub insurer_policy: Option<String>,
    pub cover_minor: Option<i64>,
    /// Paused until this date (`Some(None)`: until lifted).
    pub paused: Option<Option<NaiveDate>>,
    /// The customer's pauses over time.
    pub holds: Vec<Hold>,
}

impl ReportCustomer {
    /// Whether the customer was paused at the end of `day`.
    pub fn paused_on(&self, day: NaiveDate) -> bool {
        hold_on(&self.holds, false, day).is_some()
    }
}

/// The dispute (or pause) of `holds` that was on at the end of `day`, if any.
pub fn hold_on(holds: &[Hold], dispute: bool, day: NaiveDate) -> Option<&Hold> {
    holds.iter().find(|h| h.dispute == dispute && h.on(day))
}

/// A dispute or a pause, from the day it began to the day it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// A dispute (else a pause).
    pub dispute: bool,
    pub reason: String,
    pub from: NaiveDate,
    /// A pause's last day, when it was given one.
    pub until: Option<NaiveDate>,
    /// The day it was resolved or lifted (`None`: still on).
    pub ended: Option<NaiveDate>,
}

impl Hold {
    /// Whether it was on at the end of `day`.
    pub fn on(&self, day: NaiveDate) -> bool {
        self.from <= day
            && self.ended.is_none_or(|e| e > day)
            && self.until.is_none_or(|u| u >= day)
    }
}

/// A payment or credit note applied to an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Settlement {
    /// The payment's (or credit note's) date.
    pub date: NaiveDate,
    pub amount_minor: i64,
    pub credit_note: bool,
}

/// An invoice, whatever its status, with how its open amount came down.
#[derive(Debug, Clone)]
pub struct ReportInvoice {
    pub number: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: String,
    pub amount_minor: i64,
    /// The open amount today.
    pub open_minor: i64,
    /// open, paid, cancelled or written_off.
    pub status: String,
    /// Payments and credit notes applied to it, by date.
    pub settlements: Vec<Settlement>,
    /// The day relance last recorded a change to it: what brought its open amount down
    /// without a dated allocation (the ERP's own matching, a cancellation, a write-off)
    /// is dated on that day.
    pub updated_on: NaiveDate,
    pub disputed_on: Option<NaiveDate>,
    /// Paused until this date (`Some(None)`: until lifted).
    pub paused: Option<Option<NaiveDate>>,
    /// Its disputes and pauses over time.
    pub holds: Vec<Hold>,
}

impl ReportInvoice {
    /// Whether it was disputed at the end of `day`.
    pub fn disputed_at_end_of(&self, day: NaiveDate) -> bool {
        hold_on(&self.holds, true, day).is_some()
    }

    /// Whether it was paused at the end of `day`.
    pub fn paused_at_end_of(&self, day: NaiveDate) -> bool {
        hold_on(&self.holds, false, day).is_some()
    }

    /// The days its disputes were opened, oldest first.
    pub fn disputes_opened(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holds.iter().filter(|h| h.dispute).map(|h| h.from)
    }

    /// What was still owed at the end of `day`: the amount less the settlements dated
    /// by then, and less what came down without a dated allocation once relance had
    /// recorded it. `0` before the invoice was issued counts as not yet a receivable;
    /// see [`Self::receivable_on`].
    pub fn open_on(&self, day: NaiveDate) -> i64 {
        let settled: i64 = self
            .settlements
            .iter()
            .filter(|s| s.date <= day)
            .map(|s| s.amount_minor)
            .sum();
        let undated = if self.updated_on <= day {
            self.undated_minor()
        } else {
            0
        };
        (self.amount_minor - settled - undated).max(0)
    }

    /// What brought the open amount down without a dated allocation: the ERP's own
    /// matching, a cancellation or a write-off (dated [`Self::updated_on`]).
    pub fn undated_minor(&self) -> i64 {
        let all: i64 = self.settlements.iter().map(|s| s.amount_minor).sum();
        (self.amount_minor - all - self.open_minor).max(0)
    }

    /// Whether the invoice was a receivable at the end of `day`: issued by then.
    pub fn receivable_on(&self, day: NaiveDate) -> bool {
        self.issue_date <= day
    }

    /// The day the invoice was paid in full, if it was: the date of the settlement that
    /// brought it to zero (or the day relance recorded it closed).
    pub fn paid_in_full_on(&self) -> Option<NaiveDate> {
        if self.status != "paid" && self.open_minor > 0 {
            return None;
        }
        let mut left = self.amount_minor;
        for s in &self.settlements {
            left -= s.amount_minor;
            if left <= 0 {
                return Some(s.date);
            }
        }
        (self.status == "paid" || self.open_minor == 0).then_some(self.updated_on)
    }
}

/// An action sent (or, for handovers, decided) for a customer.
#[derive(Debug, Clone)]
pub struct ReportAction {
    pub id: i64,
    pub kind: ActionKind,
    pub step: String,
    pub segment: String,
    pub rule_hash: String,
    pub status: String,
    pub decided_on: NaiveDate,
    /// The day it was sent (its last change, for a sent action).
    pub sent_on: NaiveDate,
    pub invoices: Vec<String>,
    pub currency: String,
    pub amount_minor: i64,
    /// The collector the call task went to, for a call task.
    pub assignee: Option<String>,
    /// The variant of the segment's experiment whose script decided it, if any.
    pub variant: Option<String>,
}

/// A call task.
#[derive(Debug, Clone)]
pub struct ReportTask {
    pub id: i64,
    pub assignee: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub created_on: NaiveDate,
    pub completed_on: Option<NaiveDate>,
}

/// A promise to pay.
#[derive(Debug, Clone)]
pub struct ReportPromise {
    pub id: i64,
    pub promised_date: NaiveDate,
    pub currency: String,
    pub amount_minor: i64,
    /// pending, kept, broken or cancelled.
    pub status: String,
    pub created_on: NaiveDate,
    pub resolved_on: Option<NaiveDate>,
    pub invoices: Vec<String>,
    /// The call task whose outcome it was.
    pub call_task: Option<i64>,
}

/// One customer and what the reports asked for.
#[derive(Debug, Clone)]
pub struct ReportAccount {
    pub customer: ReportCustomer,
    /// Every invoice (of the filter's currency), by due date.
    pub invoices: Vec<ReportInvoice>,
    /// Sent actions, oldest first (with [`ReportNeeds::actions`]), and the handovers
    /// (with [`ReportNeeds::handovers`]).
    pub actions: Vec<ReportAction>,
    pub tasks: Vec<ReportTask>,
    pub promises: Vec<ReportPromise>,
    /// The customer in full (with [`ReportNeeds::details`]).
    pub details: Option<crate::domain::Customer>,
}

/// A stream of report account batches.
pub type ReportStream<'a> = futures_util::stream::BoxStream<'a, super::Result<Vec<ReportAccount>>>;
