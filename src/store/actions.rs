//! The action log as stored: decisions, their delivery, and every status change.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{ActionKind, Customer, Invoice};

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Decided, waiting to be sent (possibly not before `next_attempt_at`).
    Planned,
    /// Claimed by a worker, being sent (with a lease).
    Sending,
    /// The channel accepted it.
    Sent,
    /// A send failed temporarily; another attempt is scheduled.
    Retrying,
    /// Refused for good by the channel (a permanent error): not retried.
    Failed,
    /// Attempts exhausted: dead letter.
    Dead,
    /// Not sent: the facts changed (paid, disputed, paused) or an operator cancelled it.
    Cancelled,
    /// Decided but blocked (disputed, paused, promised): never sent.
    Blocked,
    /// A send was interrupted and the channel holds such actions for an operator.
    Held,
    /// The rule failed for the customer.
    Error,
}

impl ActionStatus {
    pub const ALL: [ActionStatus; 10] = [
        ActionStatus::Planned,
        ActionStatus::Sending,
        ActionStatus::Sent,
        ActionStatus::Retrying,
        ActionStatus::Failed,
        ActionStatus::Dead,
        ActionStatus::Cancelled,
        ActionStatus::Blocked,
        ActionStatus::Held,
        ActionStatus::Error,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Sending => "sending",
            ActionStatus::Sent => "sent",
            ActionStatus::Retrying => "retrying",
            ActionStatus::Failed => "failed",
            ActionStatus::Dead => "dead",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::Blocked => "blocked",
            ActionStatus::Held => "held",
            ActionStatus::Error => "error",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status '{s}' (expected one of: {})",
                    ActionStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewAction {
    /// Deterministic: a second identical decision is a no-op.
    pub key: String,
    pub customer: String,
    pub segment: String,
    pub kind: ActionKind,
    pub step: String,
    pub template: Option<String>,
    /// JSON object.
    pub options: String,
    pub currency: String,
    pub amount_minor: i64,
    pub rule_file: String,
    pub rule_hash: String,
    /// The variant of the segment's experiment whose script decided, if any.
    pub variant: Option<String>,
    /// JSON snapshot of the facts the rule saw, shared by the customer's actions of one
    /// evaluation, and its SHA-256 (hex) under which it is stored once.
    pub facts: std::sync::Arc<str>,
    pub facts_sha256: std::sync::Arc<str>,
    pub decided_on: NaiveDate,
    /// planned, blocked or error.
    pub status: ActionStatus,
    pub detail: Option<String>,
    pub invoices: Vec<String>,
}

/// The actions of `batch` whose customer `customer_ids` knows (external id to internal
/// id), with that id; the others name a customer the ledger does not have.
pub(crate) fn with_customer_ids<'a>(
    batch: &'a [NewAction],
    customer_ids: &std::collections::HashMap<String, i64>,
) -> Vec<(&'a NewAction, i64)> {
    batch
        .iter()
        .filter_map(|a| customer_ids.get(&a.customer).map(|&cid| (a, cid)))
        .collect()
}

/// The customers `batch` names, each once, in order.
pub(crate) fn customers_named(batch: &[NewAction]) -> Vec<String> {
    let mut customers: Vec<&str> = batch.iter().map(|a| a.customer.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    customers.into_iter().map(str::to_string).collect()
}

/// The facts snapshots the actions recorded (`ids`, by key) need: one per customer and
/// distinct facts (customer id, SHA-256, JSON); an identical one may be stored already.
pub(crate) fn new_snapshots<'a>(
    rows: &[(&'a NewAction, i64)],
    ids: &std::collections::HashMap<String, i64>,
) -> Vec<(i64, &'a str, &'a str)> {
    let mut snapshots: Vec<(i64, &str, &str)> = rows
        .iter()
        .filter(|(a, _)| ids.contains_key(&a.key))
        .map(|(a, cid)| (*cid, &*a.facts_sha256, &*a.facts))
        .collect();
    snapshots.sort_unstable_by_key(|s| (s.0, s.1));
    snapshots.dedup_by_key(|s| (s.0, s.1));
    snapshots
}

/// The steps the actions recorded (`ids`, by key) applied, as rows of the dunning state
/// the next tick reads.
pub(crate) fn new_steps(
    rows: &[(&NewAction, i64)],
    ids: &std::collections::HashMap<String, i64>,
) -> Vec<crate::store::steps::StepRow> {
    crate::store::steps::fold(rows.iter().filter_map(|(a, cid)| {
        ids.get(&a.key).map(|&id| crate::store::steps::StepSource {
            id,
            customer_id: *cid,
            invoices: &a.invoices,
            kind: a.kind.as_str(),
            step: &a.step,
            day: a.decided_on,
            status: a.status.as_str(),
        })
    }))
}

/// The actions of `rows` the batch did not record (`ids`, by key, lacks them): their key
/// was recorded for their customer before. Each key with its customer's id.
pub(crate) fn unrecorded<'a>(
    rows: &[(&'a NewAction, i64)],
    ids: &std::collections::HashMap<String, i64>,
) -> Vec<(&'a str, i64)> {
    rows.iter()
        .map(|(a, cid)| (a.key.as_str(), *cid))
        .filter(|(k, _)| !ids.contains_key(*k))
        .collect()
}

/// What the log says of a batch's decisions beyond the action rows (action id, status,
/// detail): nothing for a new planned action, which is its own record of the decision
/// (its creation time and status); the status and reason of a new blocked or failed
/// one; `duplicate` for a decision identical to one recorded before (`existing`: that
/// action's id by key).
pub(crate) fn decision_events<'a>(
    rows: &[(&'a NewAction, i64)],
    ids: &std::collections::HashMap<String, i64>,
    existing: &std::collections::HashMap<String, i64>,
) -> Vec<(i64, &'a str, Option<&'a str>)> {
    const DUPLICATE: &str = "the same decision was taken again; not recorded twice";
    rows.iter()
        .filter_map(|(a, _)| match ids.get(&a.key) {
            Some(_) if a.status == ActionStatus::Planned => None,
            Some(&id) => Some((id, a.status.as_str(), a.detail.as_deref())),
            None => existing
                .get(&a.key)
                .map(|&id| (id, "duplicate", Some(DUPLICATE))),
        })
        .collect()
}

/// What recording a batch did: `ids` recorded, `unrecorded` already there.
pub(crate) fn record_counts(
    ids: &std::collections::HashMap<String, i64>,
    unrecorded: &[(&str, i64)],
) -> RecordCounts {
    RecordCounts {
        recorded: ids.len() as u64,
        duplicates: unrecorded.len() as u64,
        duplicate_keys: unrecorded.iter().map(|(k, _)| (*k).to_string()).collect(),
    }
}

/// The invoices an action covers as stored: a JSON array of their numbers.
pub(crate) fn invoice_numbers_json(numbers: &[String]) -> String {
    serde_json::to_string(numbers).unwrap_or_else(|_| "[]".into())
}

/// What recording a batch of decisions did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    pub recorded: u64,
    /// Identical decisions already recorded (a re-run, or another instance).
    pub duplicates: u64,
    /// The keys of those duplicates.
    pub duplicate_keys: std::collections::HashSet<String>,
}

/// An action claimed for delivery, with what the channel needs.
#[derive(Debug, Clone)]
pub struct ClaimedAction {
    pub id: i64,
    pub key: String,
    pub customer: Customer,
    pub kind: ActionKind,
    pub step: String,
    pub template: Option<String>,
    pub options: serde_json::Value,
    pub invoices: Vec<Invoice>,
    /// The invoices with a promise to pay pending, and the latest date promised for
    /// each, as of the claim.
    pub promised: Vec<(String, NaiveDate)>,
    pub currency: String,
    pub amount: Decimal,
    /// This attempt's number (1 the first time).
    pub attempt: i64,
    pub decided_on: NaiveDate,
    /// Whether the customer was already sent a message (email, SMS, formal notice)
    /// about one of these invoices: a message may say "despite our previous reminder"
    /// only then.
    pub reminded_before: bool,
    /// The customer's portal link for this message (`{{ portal_url }}`): made by the
    /// outbox when it delivers, never stored; `None` without a portal.
    pub portal_url: Option<String>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Sent {
        provider_ref: String,
    },
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    Dead {
        error: String,
    },
    /// Refused for good by the channel.
    Failed {
        error: String,
    },
    /// Cannot be sent as it stands (no address, no mobile number).
    Blocked {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
    /// Not now (quiet hours, contact budget): back to planned, not before `until`.
    Deferred {
        until: DateTime<Utc>,
        reason: String,
    },
}

/// One row of the action log.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub key: String,
    pub customer: String,
    pub segment: String,
    pub kind: ActionKind,
    pub step: String,
    pub template: Option<String>,
    pub status: ActionStatus,
    pub attempts: i64,
    pub amount: Decimal,
    pub currency: String,
    pub invoices: Vec<String>,
    pub rule_file: String,
    pub rule_hash: String,
    /// The variant of the segment's experiment whose script decided, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub decided_on: NaiveDate,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_ref: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A status change or delivery attempt.
#[derive(Debug, Clone, Serialize)]
pub struct ActionEvent {
    pub at: DateTime<Utc>,
    pub status: String,
    pub attempt: i64,
    pub detail: Option<String>,
    pub provider_ref: Option<String>,
}

/// One action with its facts snapshot, options and history.
#[derive(Debug, Clone, Serialize)]
pub struct ActionDetail {
    #[serde(flatten)]
    pub row: ActionRow,
    pub options: serde_json::Value,
    pub facts: serde_json::Value,
    pub events: Vec<ActionEvent>,
}

/// Which actions to list.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub customer: Option<String>,
    pub status: Option<ActionStatus>,
    pub kind: Option<ActionKind>,
    pub since: Option<DateTime<Utc>>,
    /// Only actions created before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only ids greater than this (cursor).
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// A tick as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct TickRecord {
    pub id: i64,
    pub segment: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: String,
    pub as_of: NaiveDate,
    pub status: String,
    pub customers: i64,
    pub planned: i64,
    pub blocked: i64,
    pub errors: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Counts the metrics endpoint reads from the action log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionCounts {
    /// (kind, status, actions).
    pub by_kind_status: Vec<(String, String, i64)>,
    /// Actions planned or retrying whose time has come.
    pub due: i64,
}
