//! Retention: what the action log accumulates, removed after its time (facts
//! snapshots, copies of messages, documents past their retention), and a customer's
//! personal data erased on request — the accounting records and the evidence of what
//! was sent (actions, statuses, attempts, SHA-256 of facts and documents) are kept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;

/// The instants before which each kind of record goes.
#[derive(Debug, Clone, Copy)]
pub struct PruneCutoffs {
    pub now: DateTime<Utc>,
    /// Facts snapshots referenced only by actions created before this.
    pub facts_before: DateTime<Utc>,
    /// Documents other than formal notices (account statements) created before this.
    pub messages_before: DateTime<Utc>,
    /// Formal notices created before this.
    pub formal_notices_before: DateTime<Utc>,
}

/// What a prune removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneCounts {
    pub facts_snapshots: u64,
    pub inline_facts: u64,
    pub documents: u64,
    pub formal_notices: u64,
    pub idempotency_keys: u64,
    pub console_sessions: u64,
    /// Archive files of the documents whose bytes went (to delete from disk).
    #[serde(skip)]
    pub document_files: Vec<String>,
}

/// What erasing a customer's personal data changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureCounts {
    pub facts_snapshots: u64,
    pub notes: u64,
    pub task_notes: u64,
    pub documents: u64,
    pub portal_visits: u64,
    /// The customer's actions (their outbox folder copies go too).
    #[serde(skip)]
    pub action_ids: Vec<i64>,
    /// Archive files of the documents whose bytes went.
    #[serde(skip)]
    pub document_files: Vec<String>,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Removes what is past its retention; with `dry_run`, only counts it.
    async fn prune(&self, cutoffs: &PruneCutoffs, dry_run: bool) -> Result<PruneCounts>;

    /// Erases the personal data of a customer (contact details, notes, facts
    /// snapshots, account statements, portal visits and links) and pauses its dunning
    /// for good; invoices, payments, actions and formal notices stay. `None`: no such
    /// customer.
    async fn erase_customer(
        &self,
        external_id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ErasureCounts>>;
}
