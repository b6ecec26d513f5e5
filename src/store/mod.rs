//! The ledger's storage: one [`Store`] trait, two implementations (SQLite and
//! PostgreSQL) chosen by the database URL, one migrations folder per backend.
//!
//! Both implementations are generated from the same SQL (`sql.rs`), so they behave
//! identically; only connection set-up and a few backend-specific statements differ.
//! Writes go through a [`LedgerTx`] unit of work: an import or an API batch is one
//! transaction, committed whole or not at all.

mod accounts;
pub mod actions;
pub mod bank;
pub mod call_tasks;
pub mod documents;
pub mod idempotency;
mod postgres;
pub mod report_deliveries;
pub mod reports;
pub mod retention;
mod rows;
pub mod scratch;
mod sql;
mod sqlite;
mod steps;
pub mod tokens;
pub mod users;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::DatabaseUrl;
use crate::domain::{
    Account, Customer, Dispute, Invoice, InvoiceRecord, Pause, Payment, PromiseToPay,
};

pub use actions::{
    ActionDetail, ActionEvent, ActionFilter, ActionRow, ActionStatus, ClaimedAction, Completion,
    NewAction, RecordCounts, TickRecord,
};
pub use idempotency::IdempotencyStore;
pub use postgres::PostgresStore;
pub use retention::RetentionStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} '{key}' not found")]
    NotFound { what: &'static str, key: String },
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A scratch file a piece of work needs (the keys of a large import) cannot be
    /// created or used: the machine's fault, not the input's.
    #[error("{0}")]
    Scratch(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<crate::ffi::sqlite::SqliteError> for StoreError {
    fn from(e: crate::ffi::sqlite::SqliteError) -> Self {
        StoreError::Invalid(e.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How many rows a batch upsert inserted, changed, or found identical.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl UpsertCounts {
    /// The counts of a batch upsert of `rows` rows, `existing` of which were stored
    /// before, that changed `affected` rows (inserted or updated).
    pub(crate) fn of_batch(rows: usize, existing: u64, affected: u64) -> UpsertCounts {
        let inserted = rows as u64 - existing;
        let updated = affected.saturating_sub(inserted);
        UpsertCounts {
            inserted,
            updated,
            unchanged: existing - updated,
        }
    }
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: Self) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// What recording a payment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentOutcome {
    pub status: PaymentStatus,
    /// (invoice number, amount) allocations now in force for this payment.
    pub allocations: Vec<(String, Decimal)>,
    pub unapplied: Decimal,
    pub by_reference: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// A new payment, allocated.
    Inserted,
    /// A known payment whose details changed: its allocations were redone.
    Updated,
    /// A known payment, identical: nothing done.
    Unchanged,
}

/// A payment with where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentView {
    pub payment: Payment,
    pub allocations: Vec<(String, Decimal)>,
    pub unapplied: Decimal,
}

/// One row of a list the API pages through: the row's id (the cursor after it), the
/// item, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    pub id: i64,
    pub item: T,
    pub updated_at: DateTime<Utc>,
}

/// A page of customers: filters, and the rows after `after_id`, by id.
#[derive(Debug, Clone, Default)]
pub struct CustomerQuery {
    pub segment: Option<String>,
    pub collector: Option<String>,
    /// Changed at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// A page of invoices: filters, and the rows after `after_id`, by id.
#[derive(Debug, Clone, Default)]
pub struct InvoiceQuery {
    pub customer: Option<String>,
    pub status: Option<crate::domain::InvoiceStatus>,
    pub due_from: Option<NaiveDate>,
    pub due_to: Option<NaiveDate>,
    pub issued_from: Option<NaiveDate>,
    pub issued_to: Option<NaiveDate>,
    /// Changed at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// A page of payments and credit notes: filters, and the rows after `after_id`, by id.
#[derive(Debug, Clone, Default)]
pub struct PaymentQuery {
    /// The payment's own id (external id).
    pub id: Option<String>,
    pub customer: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Changed at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// A new promise to pay.
#[derive(Debug, Clone)]
pub struct NewPromise {
    pub customer: String,
    pub promised_date: NaiveDate,
    pub amount: Decimal,
    /// Invoice numbers; empty means every open invoice of the customer.
    pub invoices: Vec<String>,
    pub note: Option<String>,
    /// The call task whose outcome it is.
    pub call_task: Option<i64>,
}

/// An action sent before relance kept the log (the history of a previous dunning tool,
/// or of a sample portfolio), recorded as sent so the rules see the steps already taken
/// and the reports what followed them.
#[derive(Debug, Clone)]
pub struct PastAction {
    /// From [`LedgerTx::customer_ids`].
    pub customer_id: i64,
    pub kind: crate::domain::ActionKind,
    pub step: String,
    /// Invoice numbers of the customer.
    pub invoices: Vec<String>,
    /// The amount the action named; `None`: the invoices' amounts.
    pub amount: Option<Decimal>,
    pub sent_at: DateTime<Utc>,
    /// Where it comes from (the file imported), kept with the action.
    pub source: String,
    /// The variant of the segment's experiment that sent it, if any.
    pub variant: Option<String>,
}

/// An import, as recorded in the ledger.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub kind: String,
    pub file_name: String,
    pub sha256: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
}

/// Totals for one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrencyTotals {
    pub currency: String,
    pub open_invoices: u64,
    pub open: Decimal,
    pub overdue: Decimal,
    pub unapplied_credit: Decimal,
}

impl CurrencyTotals {
    /// Zero totals, at the currency's scale (`0.00` for EUR).
    pub fn zero(currency: crate::domain::Currency) -> CurrencyTotals {
        let z = currency.from_minor(0);
        CurrencyTotals {
            currency: currency.to_string(),
            open_invoices: 0,
            open: z,
            overdue: z,
            unapplied_credit: z,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerSummary {
    pub customers: u64,
    pub invoices: u64,
    pub payments: u64,
    pub pending_promises: u64,
    pub by_currency: Vec<CurrencyTotals>,
}

/// Which accounts to read.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Only customers of these segments.
    pub segments: Option<Vec<String>>,
    /// Only this customer (external id).
    pub customer: Option<String>,
}

/// A stream of account batches.
pub type AccountStream<'a> = futures_util::stream::BoxStream<'a, Result<Vec<Account>>>;

/// Being the one instance that schedules ticks. Dropping it gives the role up.
#[async_trait]
pub trait Leadership: Send {
    /// Whether the role is still held (the connection holding it is alive).
    async fn still_held(&mut self) -> bool;
}

/// The ledger: customers, invoices, payments, promises; the accounts a tick reads; units
/// of work for imports and collectors.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Starts a unit of work.
    async fn begin(&self) -> Result<Box<dyn LedgerTx>>;

    async fn customer(&self, external_id: &str) -> Result<Option<Customer>>;

    /// A page of customers (by id).
    async fn list_customers(&self, q: &CustomerQuery) -> Result<Vec<Listed<Customer>>>;

    /// A page of invoices (by id).
    async fn list_invoices(&self, q: &InvoiceQuery) -> Result<Vec<Listed<Invoice>>>;

    /// A page of payments and credit notes (by id), with their allocations.
    async fn list_payments(&self, q: &PaymentQuery) -> Result<Vec<Listed<PaymentView>>>;

    /// Customers, optionally of one segment, by external id.
    async fn customers(
        &self,
        segment: Option<&str>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<Customer>>;

    /// Every invoice of a customer, by due date.
    async fn invoices_of(&self, customer: &str) -> Result<Vec<Invoice>>;

    async fn invoice(&self, number: &str) -> Result<Option<Invoice>>;

    async fn payments_of(&self, customer: &str) -> Result<Vec<PaymentView>>;

    async fn promises_of(&self, customer: &str) -> Result<Vec<PromiseToPay>>;

    /// Accounts that have open invoices, in customer order, in batches of up to `batch`
    /// customers. Memory is bounded by the batch, not by the portfolio.
    fn accounts<'a>(&'a self, filter: &'a AccountFilter, batch: usize) -> AccountStream<'a>;

    /// Reads every open invoice in customer order, as [`Self::accounts`] does, decoding
    /// each row but assembling nothing: the floor under the cost of a tick, measured by
    /// the benchmarks. Returns (invoices, customers).
    async fn scan_open_invoices(&self) -> Result<(u64, u64)>;

    /// Customers with open invoices in segments other than `except`, by segment:
    /// (segment, customers). Only those customers are looked at, so naming the segments
    /// that have rules makes this cheap.
    async fn segments_with_open_invoices(&self, except: &[String]) -> Result<Vec<(String, i64)>>;

    /// Ledger totals as of `today` (for overdue amounts).
    async fn summary(&self, today: NaiveDate) -> Result<LedgerSummary>;
}

/// The action log: decisions recorded idempotently, and the outbox's queue (claims under
/// a lease, outcomes, retries).
#[async_trait]
pub trait ActionLog: Send + Sync {
    /// Records decisions; a decision whose key is already recorded is a no-op (and an
    /// event on the existing action). One transaction.
    async fn record_actions(&self, batch: &[NewAction], now: DateTime<Utc>)
        -> Result<RecordCounts>;

    /// Claims up to `limit` due actions for delivery, oldest first, marking each
    /// `sending` under a lease; none when nothing is due. One transaction.
    async fn claim_actions(
        &self,
        owner: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ClaimedAction>>;

    /// What claiming action `id` would give (its customer, invoices, options), without
    /// claiming it: for rendering its message. `None` for an unknown id.
    async fn action_message(&self, id: i64) -> Result<Option<ClaimedAction>>;

    /// Records how a delivery attempt ended; `false` when the lease was lost.
    async fn complete_action(
        &self,
        action_id: i64,
        owner: &str,
        completion: &Completion,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Extends the lease of an action being sent by `owner`, to `until`; `false` when the
    /// lease was lost (another worker reclaimed the action).
    async fn extend_lease(&self, action_id: i64, owner: &str, until: DateTime<Utc>)
        -> Result<bool>;

    /// Records, before a channel writes its request to the network, that attempt
    /// `attempt` of the action is about to leave (`part`: what is sent). An interrupted
    /// send without this record provably never left, and is retried even for held kinds.
    async fn mark_transmitting(
        &self,
        action_id: i64,
        attempt: i64,
        part: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Actions whose lease expired mid-send: resent; held for the kinds in `hold` when
    /// the interrupted attempt may have reached the peer (it was marked transmitting).
    async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        hold: &[crate::domain::ActionKind],
    ) -> Result<Vec<(i64, ActionStatus)>>;

    /// Puts a dead, held, cancelled or failed action back in the queue.
    async fn retry_action(&self, id: i64, now: DateTime<Utc>) -> Result<()>;

    /// Cancels an action not yet sent.
    async fn cancel_action(&self, id: i64, reason: &str, now: DateTime<Utc>) -> Result<()>;

    async fn list_actions(&self, filter: &ActionFilter) -> Result<Vec<ActionRow>>;

    /// When the customer was sent actions of these kinds since `since`, oldest first.
    async fn recent_contacts(
        &self,
        customer: &str,
        kinds: &[crate::domain::ActionKind],
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>>;

    async fn action(&self, id: i64) -> Result<Option<ActionDetail>>;

    /// Actions by kind and status, and how many are due, for the metrics.
    async fn action_counts(&self, now: DateTime<Utc>) -> Result<actions::ActionCounts>;
}

/// Call tasks, created by `call_task` actions.
#[async_trait]
pub trait CallTaskStore: Send + Sync {
    /// Creates the task of a `call_task` action; creating it again returns the same id.
    async fn create_call_task(
        &self,
        task: &call_tasks::NewCallTask,
        now: DateTime<Utc>,
    ) -> Result<i64>;

    async fn call_tasks(
        &self,
        filter: &call_tasks::TaskFilter,
    ) -> Result<Vec<call_tasks::CallTask>>;

    async fn call_task(&self, id: i64) -> Result<Option<call_tasks::CallTask>>;
}

/// Documents archived with actions, parts delivered, insurer endpoints' state.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Archives a document with its action; an existing one of the same kind for the
    /// action is kept and returned (a retry reuses what was first generated).
    async fn save_document(
        &self,
        doc: &documents::NewDocument,
        now: DateTime<Utc>,
    ) -> Result<documents::StoredDocument>;

    async fn documents(&self, action_id: i64) -> Result<Vec<documents::StoredDocument>>;

    /// The documents archived with a customer's actions, newest first, at most `limit`.
    async fn customer_documents(
        &self,
        customer: &str,
        limit: u32,
    ) -> Result<Vec<documents::StoredDocument>>;

    /// The bytes of a document archived in the database.
    async fn document_content(&self, id: i64) -> Result<Option<Vec<u8>>>;

    /// Records that one part of an action (`email`, `registered_mail`) was accepted.
    async fn record_delivered_part(
        &self,
        action_id: i64,
        part: &str,
        provider_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    async fn delivered_parts(&self, action_id: i64) -> Result<Vec<documents::DeliveredPart>>;

    async fn endpoint_states(&self) -> Result<Vec<documents::EndpointState>>;

    /// Disables an insurer endpoint with a reason, or re-enables it (`None`).
    async fn set_endpoint_state(
        &self,
        insurer: &str,
        disabled: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// HTTP API tokens (the SHA-256 of their secrets, never the secrets).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token (the SHA-256 of its secret); returns its id.
    async fn create_token(
        &self,
        name: &str,
        scopes: &[&str],
        sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<i64>;

    async fn tokens(&self) -> Result<Vec<tokens::ApiToken>>;

    /// The live (not revoked) token whose secret has this SHA-256.
    async fn token_by_hash(&self, sha256: &str) -> Result<Option<tokens::ApiToken>>;

    /// Revokes a token; `false` when there is no live token with this id.
    async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool>;
}

/// The console's users and their sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; refused (`Invalid`) when the name is taken.
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<i64>;

    async fn users(&self) -> Result<Vec<users::User>>;

    /// A user and its password hash, by name.
    async fn user_with_hash(&self, username: &str)
        -> Result<Option<(users::User, Option<String>)>>;

    /// Disables (and signs out) or enables a user; `false` when there is none by that name.
    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Sets a user's password hash and ends its sessions; `false` when there is no such user.
    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Stores a session by the SHA-256 of its secret (and drops expired ones).
    async fn create_session(
        &self,
        sha256: &str,
        user_id: i64,
        csrf: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The live session whose secret has this SHA-256, of a user not disabled.
    async fn session(&self, sha256: &str, now: DateTime<Utc>) -> Result<Option<users::Session>>;

    /// Signs a session out.
    async fn end_session(&self, sha256: &str) -> Result<()>;

    /// Records a change made by `actor` (a user's name).
    async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        customer: Option<&str>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The changes made to a customer's account, latest first (at most `limit`).
    async fn audit_of(&self, customer: &str, limit: u32) -> Result<Vec<users::AuditEvent>>;

    /// Adds a note to a customer's account.
    async fn add_note(
        &self,
        customer: &str,
        author: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<i64>;

    /// A customer's notes, latest first (at most `limit`).
    async fn notes_of(&self, customer: &str, limit: u32) -> Result<Vec<users::Note>>;
}

/// The debtor portal's links: each customer's link generation.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// The customer's row id and link generation, by its external id.
    async fn portal_generation(&self, external_id: &str) -> Result<Option<(i64, u32)>>;

    /// The customer a link names (by row id) with its link generation.
    async fn portal_customer(&self, id: i64) -> Result<Option<(Customer, u32)>>;

    /// Raises the customer's link generation: every link it was given is refused from
    /// now on. Returns the new generation, `None` for an unknown customer.
    async fn revoke_portal_links(
        &self,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>>;

    /// Records that the customer opened its portal page from a link, carried by the
    /// message of action `action` if any.
    async fn record_portal_visit(
        &self,
        customer: &str,
        action: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The customer's portal visits, latest first (at most `limit`): the action whose
    /// link was followed, if any, and when.
    async fn portal_visits_of(
        &self,
        customer: &str,
        limit: u32,
    ) -> Result<Vec<(Option<i64>, DateTime<Utc>)>>;

    /// When the link the message of `action` carried was first followed, and how many
    /// times it was.
    async fn action_opened(&self, action: i64) -> Result<Option<(DateTime<Utc>, i64)>>;
}

/// The bank statement import's reads and its record of each credit.
#[async_trait]
pub trait BankStore: Send + Sync {
    /// Every open invoice with something left to pay, handed to `each` as it is read
    /// (one statement, streamed).
    async fn open_invoices_for_matching(
        &self,
        each: &mut (dyn FnMut(bank::OpenInvoice) + Send),
    ) -> Result<()>;

    /// Every customer's names (one statement).
    async fn customer_names(&self) -> Result<Vec<bank::CustomerName>>;

    /// Records credits by key: a credit imported again keeps its first record unless it
    /// was not matched and now is.
    async fn record_bank_credits(&self, rows: &[bank::BankCreditRow]) -> Result<u64>;

    /// The credits among `keys` recorded before as matched: key → (how, customer,
    /// invoice).
    async fn matched_bank_credits(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, (String, String, Option<String>)>>;

    /// The credits recorded, latest first (only the unmatched ones with `unmatched`).
    async fn bank_credits(&self, unmatched: bool, limit: u32) -> Result<Vec<bank::BankCreditRow>>;
}

/// What the console reads beyond the ledger's own queries.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Customers matching `query`, the most overdue first, one page.
    async fn search_customers(
        &self,
        query: &users::CustomerQuery,
    ) -> Result<Vec<users::CustomerRow>>;

    /// Every customer with its balance as of `today` and what the list filters on (one
    /// statement): what the console's customer list searches in memory.
    async fn customer_index(&self, today: NaiveDate) -> Result<Vec<users::IndexedCustomer>>;
}

/// What the reports read, in batches of customers.
pub trait ReportStore: Send + Sync {
    /// Customers matching `filter` in id order, in batches of up to `batch`, each with
    /// all of its invoices and what `needs` asks for.
    fn report_accounts<'a>(
        &'a self,
        filter: &'a reports::ReportFilter,
        needs: reports::ReportNeeds,
        batch: usize,
    ) -> reports::ReportStream<'a>;
}

/// Scheduled reports emailed to the credit managers (`reports.monthly`): planned once
/// per report, period and recipient, claimed with a lease, their outcome recorded.
#[async_trait]
pub trait ReportDeliveryStore: Send + Sync {
    /// Plans `report` for `period` to each recipient, unless already planned (whatever
    /// became of it); returns how many were new.
    async fn plan_report_deliveries(
        &self,
        report: &str,
        period: &str,
        slot: DateTime<Utc>,
        recipients: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<u64>;

    /// Claims the oldest due delivery (planned, retrying, or sending with an expired
    /// lease: an interrupted send, sent again with the same Message-ID) for `owner`
    /// until `lease_until`.
    async fn claim_report_delivery(
        &self,
        owner: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<report_deliveries::ReportDelivery>>;

    /// Records an attempt's outcome, if `owner` still holds the lease; `false` when it
    /// does not (another instance reclaimed it).
    async fn finish_report_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &report_deliveries::ReportOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// The most recent deliveries first, at most `limit`.
    async fn report_deliveries(&self, limit: i64)
        -> Result<Vec<report_deliveries::ReportDelivery>>;
}

/// Ticks as recorded: when each segment ran, for which slot, what it did.
#[async_trait]
pub trait TickStore: Send + Sync {
    async fn start_tick(
        &self,
        segment: &str,
        scheduled_for: DateTime<Utc>,
        trigger: &str,
        as_of: NaiveDate,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<i64>;

    #[allow(clippy::too_many_arguments)]
    async fn finish_tick(
        &self,
        id: i64,
        status: &str,
        customers: i64,
        planned: i64,
        blocked: i64,
        errors: i64,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The last finished tick of a segment.
    async fn last_tick(&self, segment: &str) -> Result<Option<TickRecord>>;

    /// Marks as failed the scheduled ticks still `running` that another instance
    /// started: called by a new scheduler leader, the previous one having stopped (ticks
    /// run with `relance tick` are left alone). Returns how many.
    async fn abandon_ticks(&self, instance: &str, now: DateTime<Utc>) -> Result<u64>;
}

/// The ledger as persisted: every concern above, on one database, plus what concerns
/// the database itself (migrations, the scheduler role, planner statistics).
#[async_trait]
pub trait Store:
    LedgerStore
    + ActionLog
    + CallTaskStore
    + DocumentStore
    + TokenStore
    + IdempotencyStore
    + RetentionStore
    + UserStore
    + ConsoleStore
    + BankStore
    + PortalStore
    + TickStore
    + ReportStore
    + ReportDeliveryStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize>;

    /// Tries to become the instance that schedules ticks: `None` when another instance
    /// is. On PostgreSQL a session advisory lock on a dedicated connection: when the
    /// holder dies, its connection closes and another instance takes over at its next
    /// try. SQLite serves one instance, which always leads.
    async fn try_lead(&self) -> Result<Option<Box<dyn Leadership>>>;

    /// Refreshes the query planner's statistics, after a bulk change: without them
    /// PostgreSQL plans the per-batch reads of a tick as full scans.
    async fn refresh_statistics(&self) -> Result<()>;

    /// Refreshes the planner's statistics of the action log, which a tick grows fast.
    async fn refresh_action_statistics(&self) -> Result<()>;

    /// Sizes the write connection's page cache for a tick's writes (`tick`) or back for
    /// everything else. On SQLite a tick writes as fast with a 32 MiB cache as with the
    /// 64 MiB an import needs, and its peak memory stays under its bound with it.
    async fn size_write_cache_for_tick(&self, tick: bool) -> Result<()>;

    /// (migrations applied, migrations this version ships), for readiness.
    async fn migrations_applied(&self) -> Result<(usize, usize)>;

    async fn close(&self);
}

/// One transaction on the ledger. Dropping it without `commit` rolls it back.
#[async_trait]
pub trait LedgerTx: Send {
    /// Inserts or updates customers by external id. Pauses are not touched.
    async fn upsert_customers(&mut self, batch: &[Customer]) -> Result<UpsertCounts>;

    /// Internal ids of the given customers (those that exist).
    async fn customer_ids(&mut self, external_ids: &[&str]) -> Result<HashMap<String, i64>>;

    /// Inserts or updates invoices by number; `customer_id` comes from [`Self::customer_ids`].
    /// Disputes and pauses are not touched.
    async fn upsert_invoices(&mut self, batch: &[(i64, InvoiceRecord)]) -> Result<UpsertCounts>;

    /// The customer (external id) each of these invoices belongs to, for those that exist.
    async fn invoice_customers(&mut self, numbers: &[&str]) -> Result<HashMap<String, String>>;

    /// The dispute reason of each of these invoices that exist (`None`: not disputed).
    async fn invoice_disputes(
        &mut self,
        numbers: &[&str],
    ) -> Result<HashMap<String, Option<String>>>;

    /// Whether the same promise (customer, date, amount and invoices) is already
    /// recorded: a file of promises imported again adds none twice.
    async fn promise_recorded(&mut self, promise: &NewPromise) -> Result<bool>;

    /// Undoes every payment allocation on an invoice: the payments get the amounts back
    /// as unapplied credit, the invoice is open for them again. Returns how many
    /// allocations were released and their total in minor units.
    async fn release_invoice_allocations(&mut self, number: &str) -> Result<(u64, i64)>;

    /// Records payments or credit notes and allocates them in order
    /// (see [`crate::domain::allocate`]); `customer_id` comes from [`Self::customer_ids`].
    /// A payment id may appear once per batch.
    async fn record_payments(&mut self, batch: &[(i64, Payment)]) -> Result<Vec<PaymentOutcome>>;

    /// Records one payment: [`Self::record_payments`] for a batch of one.
    async fn record_payment(
        &mut self,
        customer_id: i64,
        payment: &Payment,
    ) -> Result<PaymentOutcome> {
        let mut out = self
            .record_payments(&[(customer_id, payment.clone())])
            .await?;
        out.pop()
            .ok_or_else(|| StoreError::Invalid("no outcome for the payment".into()))
    }

    /// Pauses a customer's dunning, or lifts the pause with `None`.
    async fn set_customer_pause(&mut self, customer: &str, pause: Option<&Pause>) -> Result<()>;
    /// Pauses one invoice's dunning, or lifts the pause with `None`.
    async fn set_invoice_pause(&mut self, number: &str, pause: Option<&Pause>) -> Result<()>;
    /// Opens (`Some`) or resolves (`None`) a dispute on an invoice.
    async fn set_invoice_dispute(&mut self, number: &str, dispute: Option<&Dispute>) -> Result<()>;

    /// Records an e-invoicing lifecycle status of the invoice and makes it its last.
    #[allow(clippy::too_many_arguments)]
    async fn record_einvoice_status(
        &mut self,
        number: &str,
        code: u16,
        status: &str,
        date: NaiveDate,
        reason: Option<&str>,
        amount_minor: Option<i64>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Cancels the invoice: not a valid claim (refused or rejected); it leaves dunning.
    async fn cancel_invoice(&mut self, number: &str, now: DateTime<Utc>) -> Result<()>;

    /// Records an action sent in the past, as sent; `false` when the same action
    /// (customer, kind, step, invoices, day) is recorded already.
    async fn record_past_action(&mut self, action: &PastAction) -> Result<bool>;

    /// Records a promise to pay; returns its id.
    async fn add_promise(&mut self, promise: &NewPromise, now: DateTime<Utc>) -> Result<i64>;
    /// Marks an open call task done with its outcome.
    async fn complete_call_task(
        &mut self,
        id: i64,
        outcome: call_tasks::CallOutcome,
        note: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Marks pending promises kept or broken as of `today`; returns how many changed.
    async fn refresh_promises(&mut self, today: NaiveDate, now: DateTime<Utc>) -> Result<u64>;

    async fn record_import(&mut self, record: &ImportRecord, now: DateTime<Utc>) -> Result<()>;

    async fn commit(self: Box<Self>) -> Result<()>;
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Opens the store a URL names: `sqlite://path` (created if missing) or `postgres://...`.
///
/// # Errors
/// When the database cannot be reached or opened.
pub async fn open(url: &DatabaseUrl, max_connections: u32) -> Result<Arc<dyn Store>> {
    if url.is_postgres() {
        Ok(Arc::new(
            PostgresStore::connect(url.expose(), max_connections).await?,
        ))
    } else {
        Ok(Arc::new(
            SqliteStore::connect(url.expose(), max_connections).await?,
        ))
    }
}

/// One customer's account as the rules see it (the customer, its open invoices,
/// credit, history and promises); a customer with nothing open has no invoices.
/// `None` for an unknown customer.
///
/// # Errors
/// The store's.
pub async fn account_of(store: &dyn Store, external_id: &str) -> Result<Option<Account>> {
    use futures_util::StreamExt;
    let filter = AccountFilter {
        segments: None,
        customer: Some(external_id.to_string()),
    };
    let found = {
        let mut stream = store.accounts(&filter, 1);
        let first = stream.next().await;
        drop(stream);
        first.transpose()?.and_then(|mut batch| batch.pop())
    };
    if found.is_some() {
        return Ok(found);
    }
    let Some(customer) = store.customer(external_id).await? else {
        return Ok(None);
    };
    Ok(Some(Account {
        customer,
        invoices: Vec::new(),
        unapplied_credit: Decimal::ZERO,
        history: Vec::new(),
        promises: store.promises_of(external_id).await?,
    }))
}
