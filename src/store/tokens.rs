//! HTTP API tokens as the store holds them: a name, scopes and the SHA-256 of the
//! secret (never the secret itself).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A token as listed (without its secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// Scope names as stored (`ingest`, `read`…); what they grant is the API's
    /// business (`api::scope`).
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}
