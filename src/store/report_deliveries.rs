//! Scheduled reports emailed to the credit managers, as the store holds them: one
//! delivery per report, period and recipient, planned when the schedule fires, claimed
//! with a lease, and recorded with its outcome (the evidence of what was sent, when,
//! under which Message-ID, with which document).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A report delivery as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportDelivery {
    pub id: i64,
    /// Which report (`monthly`).
    pub report: String,
    /// The period it covers (`2026-11`).
    pub period: String,
    pub recipient: String,
    /// The schedule slot that planned it.
    pub slot: DateTime<Utc>,
    /// `planned`, `sending`, `retrying`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    /// Stable across attempts, the Message-ID's left part: a resend after an
    /// interruption carries the same Message-ID.
    pub key: String,
    /// The SHA-256 of the PDF sent.
    pub document_sha256: Option<String>,
    pub last_error: Option<String>,
    pub planned_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    Sent {
        document_sha256: String,
    },
    /// Tried again at `at`.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Given up.
    Dead {
        error: String,
    },
}
