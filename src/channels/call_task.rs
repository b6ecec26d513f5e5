//! Call tasks: a `call_task` action becomes a task row for a collector (customer,
//! invoices, reason, priority, assignee, due date), optionally announced to a webhook
//! (a CRM, a helpdesk) signed per Standard Webhooks. Creating the task is idempotent on
//! the action, and the webhook carries the action's key as `webhook-id`: a resend after
//! an interruption creates nothing twice.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use serde_json::json;

use super::{webhook, Channel, Delivered, DeliveryError, OnInterrupted};
use crate::config::channels::CallTasksConfig;
use crate::domain::BusinessCalendar;
use crate::store::call_tasks::NewCallTask;
use crate::store::{ClaimedAction, Store};

pub struct CallTaskChannel {
    store: Arc<dyn Store>,
    config: CallTasksConfig,
    calendar: BusinessCalendar,
    client: reqwest::Client,
}

impl CallTaskChannel {
    pub fn new(
        store: Arc<dyn Store>,
        config: &CallTasksConfig,
        calendar: &BusinessCalendar,
    ) -> CallTaskChannel {
        CallTaskChannel {
            store,
            config: config.clone(),
            calendar: calendar.clone(),
            client: reqwest::Client::new(),
        }
    }

    /// The task an action asks for: the rule's options over the customer's collector
    /// and the configuration's defaults. The due date falls on a business day.
    pub fn task_for(&self, a: &ClaimedAction) -> NewCallTask {
        let opt = |k: &str| {
            a.options
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let days = a
            .options
            .get("due_in_days")
            .and_then(|v| v.as_i64())
            .unwrap_or(self.config.due_in_days)
            .clamp(0, 365);
        let mut due = a.decided_on.max(Utc::now().date_naive()) + Duration::days(days);
        while !self.calendar.is_business_day(due) {
            due += Duration::days(1);
        }
        NewCallTask {
            action_id: a.id,
            customer: a.customer.external_id.clone(),
            invoices: a.invoices.iter().map(|i| i.number.clone()).collect(),
            reason: opt("reason").unwrap_or_else(|| a.step.clone()),
            priority: opt("priority").unwrap_or_else(|| "normal".into()),
            assignee: opt("assignee")
                .or_else(|| a.customer.collector.clone())
                .or_else(|| self.config.default_assignee.clone()),
            due_on: due,
        }
    }
}

#[async_trait]
impl Channel for CallTaskChannel {
    fn name(&self) -> &str {
        "call_tasks"
    }

    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Resend
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        let task = self.task_for(a);
        let id = self
            .store
            .create_call_task(&task, Utc::now())
            .await
            .map_err(|e| DeliveryError::Temporary {
                message: format!("cannot record the call task: {e}"),
                retry_after: None,
            })?;
        if let Some(notify) = &self.config.notify {
            let body = json!({
                "type": "call_task.created",
                "version": 1,
                "task": {
                    "id": id,
                    "action_id": a.id,
                    "customer": { "id": a.customer.external_id, "name": a.customer.name, "phones": a.customer.phones },
                    "invoices": a.invoices.iter().map(|i| json!({
                        "number": i.number, "due_date": i.due_date, "open_amount": i.open_amount, "currency": i.currency,
                    })).collect::<Vec<_>>(),
                    "reason": task.reason,
                    "priority": task.priority,
                    "assignee": task.assignee,
                    "due_on": task.due_on,
                },
            });
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            webhook::post(
                &self.client,
                &notify.url,
                &notify.secrets,
                &webhook::message_id(&a.key),
                &bytes,
                notify.timeout,
            )
            .await?;
        }
        Ok(Delivered {
            provider_ref: format!("task:{id}"),
        })
    }
}
