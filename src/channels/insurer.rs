//! Handover to the credit insurer: a versioned JSON document (`docs/insurer-webhook.md`,
//! `docs/schemas/insurer-handover.v1.json`) posted to the policy's endpoint, signed per
//! Standard Webhooks. The document is built once, archived with the action, and the same
//! bytes are posted with the same `webhook-id` on every retry. Retries run for about
//! three days (`retry_hours`), honouring `Retry-After`; an endpoint answering 410 Gone is
//! disabled (alert in the log and the metrics) and the handover dead-lettered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde_json::json;

use super::documents::Documents;
use super::{http_error, webhook, Channel, Delivered, DeliveryError, OnInterrupted, OutboxDir};
use crate::config::RetryPolicy;
use crate::config::{Company, Insurer};
use crate::documents::archive::Document;
use crate::documents::{company_json, customer_address};
use crate::domain::ActionKind;
use crate::store::{ActionFilter, ClaimedAction, Store};

/// The event type and schema version of the handover document.
pub const EVENT_TYPE: &str = "insurer.handover";
pub const SCHEMA_VERSION: &str = "1.0";

pub struct InsurerChannel {
    store: Arc<dyn Store>,
    documents: Arc<Documents>,
    insurers: BTreeMap<String, Insurer>,
    company: Company,
    outbox: OutboxDir,
    http: reqwest::Client,
}

fn temp(e: crate::store::StoreError) -> DeliveryError {
    DeliveryError::Temporary {
        message: format!("database: {e}"),
        retry_after: None,
    }
}

/// Backoff from one minute doubling up to four hours, with as many attempts as it takes
/// to cover `span`.
pub fn policy_for(span: Duration) -> RetryPolicy {
    let base = Duration::from_secs(60);
    let max_delay = Duration::from_secs(4 * 3600);
    let mut total = Duration::ZERO;
    let mut attempts = 1;
    let mut delay = base;
    while total < span && attempts < 200 {
        total += delay;
        delay = (delay * 2).min(max_delay);
        attempts += 1;
    }
    RetryPolicy {
        max_attempts: attempts,
        base,
        max_delay,
    }
}

impl InsurerChannel {
    pub fn new(
        store: Arc<dyn Store>,
        documents: Arc<Documents>,
        insurers: BTreeMap<String, Insurer>,
        company: Company,
        outbox: OutboxDir,
    ) -> InsurerChannel {
        InsurerChannel {
            store,
            documents,
            insurers,
            company,
            outbox,
            http: reqwest::Client::new(),
        }
    }

    fn insurer(&self, a: &ClaimedAction) -> Result<&Insurer, DeliveryError> {
        let key = a.options.get("insurer").and_then(|v| v.as_str()).or(a
            .customer
            .insurance
            .policy
            .as_deref());
        let Some(key) = key else {
            return Err(DeliveryError::Blocked {
                reason: format!(
                    "customer {} has no insurer policy (insurance.policy)",
                    a.customer.external_id
                ),
            });
        };
        self.insurers
            .get(key)
            .ok_or_else(|| DeliveryError::Blocked {
                reason: format!("insurer policy '{key}' is not in the configuration (insurers)"),
            })
    }

    /// The handover document (schema version 1.0).
    async fn document(
        &self,
        a: &ClaimedAction,
        insurer: &Insurer,
    ) -> Result<serde_json::Value, DeliveryError> {
        let now = chrono::Utc::now();
        let today = self.documents.date_for(a);
        let claim = self
            .documents
            .claim(&a.customer, &a.invoices, today)
            .await?;
        let history = self
            .store
            .list_actions(&ActionFilter {
                customer: Some(a.customer.external_id.clone()),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .map_err(temp)?;
        let history: Vec<_> = history.into_iter().filter(|h| h.id != a.id).collect();
        // The latest formal notice sent with a document about any of these invoices.
        let mut notice = serde_json::Value::Null;
        for h in history.iter().rev().filter(|h| {
            h.kind == ActionKind::FormalNotice
                && h.invoices
                    .iter()
                    .any(|n| a.invoices.iter().any(|i| &i.number == n))
        }) {
            let docs = self.store.documents(h.id).await.map_err(temp)?;
            if let Some(d) = docs.into_iter().find(|d| d.kind == "formal_notice") {
                let mut n = json!({
                    "action_id": h.id,
                    "reference": d.reference,
                    "date": d.metadata.get("date"),
                    "deadline": d.metadata.get("deadline"),
                    "claimed": d.metadata.get("claimed"),
                    "sha256": d.sha256,
                    "file_name": d.file_name,
                    "size": d.size,
                    "status": h.status.as_str(),
                    "provider_ref": h.provider_ref,
                });
                if insurer.include_pdf {
                    let bytes = self.documents.archive.content(&d).await.map_err(|e| {
                        DeliveryError::Blocked {
                            reason: e.to_string(),
                        }
                    })?;
                    n["content_base64"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                notice = n;
                break;
            }
        }
        let c = &a.customer;
        let invoices: Vec<serde_json::Value> = claim
            .invoices
            .iter()
            .map(|l| {
                json!({
                    "number": l.number,
                    "issue_date": l.issue_date,
                    "due_date": l.due_date,
                    "currency": l.currency,
                    "amount": l.amount.to_string(),
                    "open_amount": l.open_amount.to_string(),
                    "days_overdue": l.days_overdue,
                    "disputed": l.disputed,
                    "interest": l.interest.to_string(),
                    "indemnity": l.indemnity.to_string(),
                })
            })
            .collect();
        let seller = company_json(&self.company);
        Ok(json!({
            "type": EVENT_TYPE,
            "version": SCHEMA_VERSION,
            "id": webhook::message_id(&a.key),
            "created_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "policy": {
                "key": insurer.key,
                "insurer": insurer.name,
                "number": insurer.policy_number,
                "declaration_deadline_days": insurer.declaration_deadline_days,
            },
            "buyer": {
                "customer_id": c.external_id,
                "insurer_buyer_ref": c.insurance.buyer_ref,
                "legal_name": c.legal_name(),
                "name": c.name,
                "siren": c.siren.as_ref().map(|s| s.to_string()),
                "siret": c.siret.as_ref().map(|s| s.to_string()),
                "vat_number": c.vat_number.as_ref().map(|s| s.to_string()),
                "country": c.country.as_str(),
                "address": {
                    "lines": customer_address(c, None),
                    "line1": c.address.line1,
                    "line2": c.address.line2,
                    "postal_code": c.address.postal_code,
                    "city": c.address.city,
                    "country": c.address.country.as_ref().map(|x| x.as_str()),
                },
                "cover_amount": c.insurance.cover_amount.map(|d| d.to_string()),
            },
            "invoices": invoices,
            "totals": {
                "currency": claim.currency,
                "open": claim.open.to_string(),
                "interest": claim.interest.to_string(),
                "indemnities": claim.indemnities.to_string(),
                "claimed": claim.claimed.to_string(),
            },
            "interest": {
                "as_of": claim.as_of,
                "rates": claim.rates.iter().map(|(from, r)| json!({ "from": from, "annual_percent": r.to_string() })).collect::<Vec<_>>(),
            },
            "history": history.iter().map(|h| json!({
                "action_id": h.id,
                "date": h.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "decided_on": h.decided_on,
                "kind": h.kind.as_str(),
                "step": h.step,
                "invoices": h.invoices,
                "status": h.status.as_str(),
                "attempts": h.attempts,
                "provider_ref": h.provider_ref,
            })).collect::<Vec<_>>(),
            "formal_notice": notice,
            "seller": {
                "name": seller["name"],
                "legal_name": seller["legal_name"],
                "siren": seller["siren"],
                "siret": seller["siret"],
                "vat_number": seller["vat_number"],
                "address": seller["address"],
                "contact": {
                    "email": seller["email"],
                    "phone": seller["phone"],
                    "collector": c.collector,
                },
            },
            "note": a.options.get("note").and_then(|v| v.as_str()),
        }))
    }
}

#[async_trait]
impl Channel for InsurerChannel {
    fn name(&self) -> &str {
        "insurer"
    }

    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Hold
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        self.insurers
            .values()
            .map(|i| i.retry_for)
            .max()
            .map(policy_for)
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        self.hand_over(a).await.map_err(super::redacted)
    }
}

impl InsurerChannel {
    /// Posts (or writes to the outbox) the handover of `a`.
    async fn hand_over(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        let insurer = self.insurer(a)?;
        if let Some(state) = self
            .store
            .endpoint_states()
            .await
            .map_err(temp)?
            .into_iter()
            .find(|s| s.insurer == insurer.key && s.disabled_at.is_some())
        {
            return Err(DeliveryError::Blocked {
                reason: format!(
                    "the endpoint of insurer '{}' is disabled since {} ({}); re-enable it with `relance insurers enable {}`",
                    insurer.key,
                    state.disabled_at.map(|d| d.to_rfc3339()).unwrap_or_default(),
                    state.reason.unwrap_or_default(),
                    insurer.key
                ),
            });
        }
        // Built once and archived: every retry posts the same bytes.
        let (doc, body) = match self
            .documents
            .archive
            .find(a.id, "insurer_handover")
            .await
            .map_err(|e| DeliveryError::Blocked {
                reason: e.to_string(),
            })? {
            Some(found) => found,
            None => {
                let value = self.document(a, insurer).await?;
                let bytes = serde_json::to_vec(&value).unwrap_or_default();
                let reference = format!("HANDOVER-{:06}", a.id);
                let metadata = json!({
                    "insurer": insurer.key,
                    "totals": value["totals"],
                });
                self.documents
                    .archive
                    .keep(
                        a.id,
                        Document {
                            kind: "insurer_handover".into(),
                            file_name: format!("{reference}.json"),
                            reference,
                            bytes,
                            metadata,
                        },
                    )
                    .await
                    .map_err(|e| DeliveryError::Temporary {
                        message: e.to_string(),
                        retry_after: None,
                    })?
            }
        };
        let Some(endpoint) = &insurer.endpoint else {
            let path = self.outbox.put(a, ".json", &body).await?;
            tracing::info!(document = %doc.sha256, "insurer handover written to the outbox (no endpoint configured)");
            return Ok(Delivered { provider_ref: path });
        };
        let id = webhook::message_id(&a.key);
        let response = webhook::post_raw(
            &self.http,
            &endpoint.url,
            &endpoint.secrets,
            &id,
            &body,
            endpoint.timeout,
        )
        .await?;
        // The endpoint's URL as it may be logged, stored and shown: without credentials.
        let shown_url = crate::config::redact_url(&endpoint.url);
        if response.status == 410 {
            let reason = format!("{shown_url} answered 410 Gone");
            self.store
                .set_endpoint_state(&insurer.key, Some(&reason), chrono::Utc::now())
                .await
                .map_err(temp)?;
            tracing::error!(alert = "insurer_endpoint_disabled", insurer = %insurer.key, url = %shown_url, "ALERT: insurer endpoint answered 410 Gone: disabled, handovers to it are blocked until `relance insurers enable {}`", insurer.key);
            return Err(DeliveryError::DeadLetter {
                message: format!("{reason}: endpoint disabled"),
            });
        }
        if !(200..300).contains(&response.status) {
            return Err(http_error(
                &endpoint.url,
                response.status,
                &response.body,
                response.retry_after,
            ));
        }
        let reference = serde_json::from_str::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.pointer(&insurer.reference_pointer).cloned())
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        Ok(Delivered {
            provider_ref: reference.unwrap_or_else(|| {
                format!(
                    "accepted ({}) without {}",
                    response.status, insurer.reference_pointer
                )
            }),
        })
    }
}
