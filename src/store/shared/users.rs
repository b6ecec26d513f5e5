//! The console's users and sessions, shared by both backends like `actions.rs`
//! (compiled once for each).

// Rows are read as tuples, next to their SQL.
#![allow(clippy::type_complexity)]

use chrono::{DateTime, Utc};

use super::StoreImpl;
use crate::store::users::{AuditEvent, Note, Session, User};
use crate::store::StoreError;

const COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.created_at, u.disabled_at";

type Row = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn user(r: Row) -> User {
    User {
        id: r.0,
        username: r.1,
        display_name: r.2,
        role: r.3,
        created_at: r.4,
        disabled_at: r.5,
    }
}

#[async_trait::async_trait]
impl crate::store::UserStore for StoreImpl {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> crate::store::Result<i64> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (username) DO NOTHING RETURNING id",
        )
        .bind(username)
        .bind(display_name)
        .bind(role)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(self.write_pool())
        .await?;
        id.ok_or_else(|| StoreError::Invalid(format!("a user '{username}' exists already")))
    }

    async fn users(&self) -> crate::store::Result<Vec<User>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users u ORDER BY u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(user).collect())
    }

    async fn user_with_hash(
        &self,
        username: &str,
    ) -> crate::store::Result<Option<(User, Option<String>)>> {
        let row: Option<(
            i64,
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<String>,
        )> = sqlx::query_as(&format!(
            "SELECT {COLUMNS}, u.password_hash FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (user((r.0, r.1, r.2, r.3, r.4, r.5)), r.6)))
    }

    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> crate::store::Result<bool> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET disabled_at = $1, updated_at = $2 WHERE username = $3 RETURNING id",
        )
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            if disabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(id.is_some())
    }

    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> crate::store::Result<bool> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3 RETURNING id",
        )
        .bind(password_hash)
        .bind(now)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        // A new password signs the user out everywhere.
        if let Some(id) = id {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id.is_some())
    }

    async fn create_session(
        &self,
        sha256: &str,
        user_id: i64,
        csrf: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> crate::store::Result<()> {
        let mut tx = self.write_pool().begin_with(Self::BEGIN_WRITE).await?;
        // Expired sessions go as new ones come.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (sha256, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(
        &self,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> crate::store::Result<Option<Session>> {
        let row: Option<(i64, String, String, String, DateTime<Utc>, Option<DateTime<Utc>>, String, DateTime<Utc>)> =
            sqlx::query_as(&format!(
                "SELECT {COLUMNS}, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.sha256 = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
            ))
            .bind(sha256)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Session {
            user: user((r.0, r.1, r.2, r.3, r.4, r.5)),
            csrf: r.6,
            expires_at: r.7,
        }))
    }

    async fn end_session(&self, sha256: &str) -> crate::store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE sha256 = $1")
            .bind(sha256)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        customer: Option<&str>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, customer, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(customer)
        .bind(detail)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    async fn audit_of(&self, customer: &str, limit: u32) -> crate::store::Result<Vec<AuditEvent>> {
        let rows: Vec<(i64, DateTime<Utc>, String, String, Option<String>, String)> =
            sqlx::query_as(
                "SELECT id, at, actor, action, customer, detail FROM audit_events \
                 WHERE customer = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(customer)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.0,
                at: r.1,
                actor: r.2,
                action: r.3,
                customer: r.4,
                detail: r.5,
            })
            .collect())
    }

    async fn add_note(
        &self,
        customer: &str,
        author: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> crate::store::Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notes (customer, at, author, text) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(customer)
        .bind(now)
        .bind(author)
        .bind(text)
        .fetch_one(self.write_pool())
        .await?;
        Ok(id)
    }

    async fn notes_of(&self, customer: &str, limit: u32) -> crate::store::Result<Vec<Note>> {
        let rows: Vec<(i64, DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT id, at, author, text FROM notes WHERE customer = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(customer)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Note {
                id: r.0,
                at: r.1,
                author: r.2,
                text: r.3,
            })
            .collect())
    }
}
