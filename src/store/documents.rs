//! Documents generated for actions (evidence), parts of multi-channel deliveries, and
//! the state of insurer endpoints, as the store holds them.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A document to archive with its action.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub action_id: i64,
    /// `formal_notice`, `statement`.
    pub kind: String,
    /// The reference printed on the document (`MED-000042`).
    pub reference: String,
    pub file_name: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: i64,
    /// Where the bytes are when archived in a directory.
    pub location: Option<String>,
    /// The bytes, when archived in the database.
    pub content: Option<Vec<u8>>,
    /// Figures the document states (totals, deadline), as JSON.
    pub metadata: serde_json::Value,
}

/// An archived document.
#[derive(Debug, Clone, Serialize)]
pub struct StoredDocument {
    pub id: i64,
    pub action_id: i64,
    pub kind: String,
    pub reference: String,
    pub file_name: String,
    pub sha256: String,
    pub size: i64,
    /// The archive file, or `None` when the bytes are in the database.
    pub location: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When its bytes were removed (retention, or a customer's erasure): the row stays
    /// as evidence of what was sent.
    pub pruned_at: Option<DateTime<Utc>>,
}

/// A part of an action already accepted (e.g. `email`, `registered_mail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveredPart {
    pub part: String,
    pub provider_ref: String,
    pub at: DateTime<Utc>,
}

/// An insurer endpoint's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointState {
    pub insurer: String,
    /// Set when the endpoint answered 410 Gone: no handover is sent until re-enabled.
    pub disabled_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}
