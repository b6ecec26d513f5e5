//! Answers kept for POST requests sent with an `Idempotency-Key`: the same request
//! again within the retention gets the first answer, and nothing is done twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its earlier use expired, or was abandoned): answer the
    /// request, then record or release.
    New,
    /// The same request was answered: its answer.
    Replay {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The key was used for another request.
    Mismatch,
    /// The same request is being answered now.
    InProgress,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` of `token_id` for a request whose SHA-256 is `request_sha256`.
    /// Keys created before `expired_before` are forgotten first; a claim still being
    /// answered since before `abandoned_before` is taken over (its process died).
    async fn idempotency_claim(
        &self,
        token_id: i64,
        key: &str,
        request_sha256: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<Claim>;

    /// Keeps the answer of a claimed key.
    async fn idempotency_record(
        &self,
        token_id: i64,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<()>;

    /// Forgets a claimed key whose request was not answered for good (a 5xx): the
    /// next try runs it again.
    async fn idempotency_release(&self, token_id: i64, key: &str) -> Result<()>;
}
