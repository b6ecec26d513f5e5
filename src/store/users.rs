//! The console's users and sessions as the store holds them: a user's name, role and
//! password hash (Argon2id, never the password); a session by the SHA-256 of its
//! cookie's secret (never the secret), with the token its forms carry.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A console user (without the password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `viewer`, `collector`, `credit_manager` or `admin`: what it allows is the
    /// console's business.
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// The token every form of the session carries (CSRF protection).
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A change made from the console, with who made it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The user's name.
    pub actor: String,
    /// What was done: `pause`, `promise`, `dispute`, `task_completed`…
    pub action: String,
    pub customer: Option<String>,
    pub detail: String,
}

/// What the console's customer list asks for.
#[derive(Debug, Clone, Default)]
pub struct CustomerQuery {
    /// An external id, a SIREN or an invoice number (exactly), or part of the name.
    pub text: Option<String>,
    pub segment: Option<String>,
    pub collector: Option<String>,
    /// Only customers with an open disputed invoice, a pending promise, a pause, or
    /// insured.
    pub disputed: bool,
    pub promised: bool,
    pub paused: bool,
    pub insured: bool,
    /// Only customers whose oldest overdue invoice is at least / at most this many days
    /// past due (an aging bucket).
    pub min_days: Option<i64>,
    pub max_days: Option<i64>,
    pub today: chrono::NaiveDate,
    pub offset: u32,
    pub limit: u32,
}

/// One customer of the console's list.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerRow {
    pub external_id: String,
    pub name: String,
    pub segment: String,
    pub collector: Option<String>,
    pub currency: String,
    pub open_minor: i64,
    pub overdue_minor: i64,
    pub oldest_due: Option<chrono::NaiveDate>,
    pub paused: bool,
    pub insured: bool,
    /// An open invoice of the customer is disputed.
    pub disputed: bool,
    /// The customer has a pending promise to pay.
    pub promised: bool,
}

/// One customer of the console's customer index: its list row and what the list
/// filters on besides.
#[derive(Debug, Clone)]
pub struct IndexedCustomer {
    pub row: CustomerRow,
    pub siren: Option<String>,
}

/// A note on a customer's account.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub author: String,
    pub text: String,
}
