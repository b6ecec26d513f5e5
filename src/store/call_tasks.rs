//! Call tasks as the store holds them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    Reached,
    NoAnswer,
    WrongNumber,
    Promise,
    Dispute,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Reached,
        CallOutcome::NoAnswer,
        CallOutcome::WrongNumber,
        CallOutcome::Promise,
        CallOutcome::Dispute,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Reached => "reached",
            CallOutcome::NoAnswer => "no-answer",
            CallOutcome::WrongNumber => "wrong-number",
            CallOutcome::Promise => "promise",
            CallOutcome::Dispute => "dispute",
        }
    }
}

impl std::str::FromStr for CallOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown outcome '{s}' (expected reached, no-answer, wrong-number, promise or dispute)"
                )
            })
    }
}

/// A task to create for a claimed `call_task` action.
#[derive(Debug, Clone)]
pub struct NewCallTask {
    pub action_id: i64,
    pub customer: String,
    pub invoices: Vec<String>,
    pub reason: String,
    pub priority: String,
    pub assignee: Option<String>,
    pub due_on: NaiveDate,
}

/// A call task.
#[derive(Debug, Clone, Serialize)]
pub struct CallTask {
    pub id: i64,
    pub action_id: i64,
    pub customer: String,
    pub customer_name: String,
    pub invoices: Vec<String>,
    pub reason: String,
    pub priority: String,
    pub assignee: Option<String>,
    pub due_on: NaiveDate,
    pub status: String,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub completed_by: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub assignee: Option<String>,
    /// `open` or `done`.
    pub status: Option<String>,
    /// Due on or before this date.
    pub due_by: Option<NaiveDate>,
    pub customer: Option<String>,
    /// The tasks after this one in the list's order (status, then due date, then id):
    /// the cursor of a page.
    pub after: Option<TaskCursor>,
    pub limit: u32,
}

/// Where a page of tasks ended: the last task's status, due date and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCursor {
    pub status: String,
    pub due_on: NaiveDate,
    pub id: i64,
}

impl TaskCursor {
    /// The cursor as text: `open.2026-12-04.123`.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.status, self.due_on, self.id)
    }

    /// A cursor read back; `None` when it is not one.
    pub fn decode(text: &str) -> Option<TaskCursor> {
        let mut parts = text.splitn(3, '.');
        let status = parts.next()?;
        if !matches!(status, "open" | "done") {
            return None;
        }
        Some(TaskCursor {
            status: status.to_string(),
            due_on: parts.next()?.parse().ok()?,
            id: parts.next()?.parse().ok().filter(|n: &i64| *n > 0)?,
        })
    }
}
