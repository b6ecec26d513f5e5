//! Idempotency keys of the HTTP API's POST requests (`idempotency_keys`).

use super::StoreImpl;
use crate::store::idempotency::Claim;

#[async_trait::async_trait]
impl crate::store::IdempotencyStore for StoreImpl {
    async fn idempotency_claim(
        &self,
        token_id: i64,
        key: &str,
        request_sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
        expired_before: chrono::DateTime<chrono::Utc>,
        abandoned_before: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::Result<Claim> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        // A claim left unanswered by a process that died: taken over.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status IS NULL AND created_at < $3",
        )
        .bind(token_id)
        .bind(key)
        .bind(abandoned_before)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, request_sha256, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token_id, key) DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(request_sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let claim = if inserted == 1 {
            Claim::New
        } else {
            let (sha, status, content_type, body): (String, Option<i32>, Option<String>, Option<Vec<u8>>) =
                sqlx::query_as(
                    "SELECT request_sha256, status, content_type, body FROM idempotency_keys WHERE token_id = $1 AND key = $2",
                )
                .bind(token_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            if sha != request_sha256 {
                Claim::Mismatch
            } else {
                match status {
                    None => Claim::InProgress,
                    Some(status) => Claim::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type,
                        body: body.unwrap_or_default(),
                    },
                }
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn idempotency_record(
        &self,
        token_id: i64,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> crate::store::Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 WHERE token_id = $4 AND key = $5",
        )
        .bind(i32::from(status))
        .bind(content_type)
        .bind(body)
        .bind(token_id)
        .bind(key)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    async fn idempotency_release(&self, token_id: i64, key: &str) -> crate::store::Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status IS NULL",
        )
        .bind(token_id)
        .bind(key)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }
}
