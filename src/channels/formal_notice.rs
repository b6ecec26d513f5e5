//! The formal notice (mise en demeure): a PDF letter generated and archived before it
//! is sent, then delivered by email (attached) and/or through a registered-mail
//! provider's HTTP API. Each means is a part of the action: a retry after one part was
//! accepted sends only the others. A means without a configured transport writes to the
//! `outbox/` folder.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use serde_json::json;

use super::documents::Documents;
use super::email::Attachment;
use super::{
    http_error, Channel, Delivered, DeliveryError, EmailChannel, OnInterrupted, OutboxDir,
};
use crate::config::channels::RegisteredMailConfig;
use crate::config::Company;
use crate::store::documents::StoredDocument;
use crate::store::{ClaimedAction, Store};

/// How a notice goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Means {
    Email,
    RegisteredMail,
}

impl Means {
    fn as_str(self) -> &'static str {
        match self {
            Means::Email => "email",
            Means::RegisteredMail => "registered_mail",
        }
    }
}

/// The means a rule asked for (`delivery: "email"`, `"registered_mail"` or both);
/// email when it says nothing.
///
/// # Errors
/// An unknown means.
pub fn means_of(options: &serde_json::Value) -> Result<Vec<Means>, String> {
    let names: Vec<String> = match options.get("delivery") {
        None | Some(serde_json::Value::Null) => vec!["email".into()],
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(v)) => v
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(other) => return Err(format!("delivery: {other} is not a means")),
    };
    let mut out = Vec::new();
    for n in names {
        let m = match n.as_str() {
            "email" => Means::Email,
            "registered_mail" => Means::RegisteredMail,
            other => {
                return Err(format!(
                    "delivery '{other}' is not email or registered_mail"
                ))
            }
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

pub struct FormalNoticeChannel {
    store: Arc<dyn Store>,
    documents: Arc<Documents>,
    email: Option<Arc<EmailChannel>>,
    email_template: String,
    registered: Option<RegisteredMailConfig>,
    outbox: OutboxDir,
    company: Company,
    http: reqwest::Client,
}

impl FormalNoticeChannel {
    pub fn new(
        store: Arc<dyn Store>,
        documents: Arc<Documents>,
        email: Option<Arc<EmailChannel>>,
        email_template: String,
        registered: Option<RegisteredMailConfig>,
        outbox: OutboxDir,
        company: Company,
    ) -> FormalNoticeChannel {
        FormalNoticeChannel {
            store,
            documents,
            email,
            email_template,
            registered,
            outbox,
            company,
            http: reqwest::Client::new(),
        }
    }

    async fn by_email(
        &self,
        a: &ClaimedAction,
        doc: &StoredDocument,
        pdf: &[u8],
    ) -> Result<String, DeliveryError> {
        let attachment = Attachment {
            file_name: doc.file_name.clone(),
            bytes: pdf.to_vec(),
        };
        match &self.email {
            Some(email) => {
                let message = email.compose(a, &self.email_template, &[attachment])?;
                Ok(email.send(message).await?.provider_ref)
            }
            None => {
                if a.customer.emails.is_empty() {
                    return Err(DeliveryError::Blocked {
                        reason: format!("customer {} has no email address", a.customer.external_id),
                    });
                }
                self.outbox
                    .put(a, &format!("-{}", doc.file_name), pdf)
                    .await?;
                // The email itself, with the letter attached, as SMTP would carry it.
                if let Some(composer) = self.outbox.composer() {
                    let message = composer.compose(
                        a,
                        &self.email_template,
                        std::slice::from_ref(&attachment),
                    )?;
                    self.outbox
                        .put(a, "-email.eml", &message.formatted())
                        .await?;
                }
                let body = OutboxDir::describe(a, json!({ "means": "email", "document": doc }));
                self.outbox
                    .put(
                        a,
                        "-email.json",
                        serde_json::to_string_pretty(&body)
                            .unwrap_or_default()
                            .as_bytes(),
                    )
                    .await
            }
        }
    }

    /// The request a registered-mail provider receives.
    fn letter_request(
        &self,
        a: &ClaimedAction,
        doc: &StoredDocument,
        pdf: &[u8],
    ) -> serde_json::Value {
        let c = &a.customer;
        let addr = &c.address;
        let sender = &self.company.address;
        let lines =
            |a: [&Option<String>; 2]| a.into_iter().flatten().cloned().collect::<Vec<String>>();
        let recipient_lines = lines([&addr.line1, &addr.line2]);
        let sender_lines = lines([&sender.line1, &sender.line2]);
        json!({
            "idempotency_key": a.key,
            "reference": doc.reference,
            "document": {
                "file_name": doc.file_name,
                "content_type": "application/pdf",
                "sha256": doc.sha256,
                "size": doc.size,
                "content_base64": base64::engine::general_purpose::STANDARD.encode(pdf),
            },
            "recipient": {
                "name": c.legal_name(),
                "customer_id": c.external_id,
                "address_lines": recipient_lines,
                "postal_code": addr.postal_code,
                "city": addr.city,
                "country": addr.country.as_ref().map(|x| x.as_str()).unwrap_or(c.country.as_str()),
            },
            "sender": {
                "name": self.company.legal_name.clone().unwrap_or_else(|| self.company.name.clone()),
                "address_lines": sender_lines,
                "postal_code": sender.postal_code,
                "city": sender.city,
                "country": sender.country.as_ref().map(|x| x.as_str()),
            },
            "acknowledgement_of_receipt": true,
        })
    }

    async fn by_registered_mail(
        &self,
        a: &ClaimedAction,
        doc: &StoredDocument,
        pdf: &[u8],
    ) -> Result<String, DeliveryError> {
        let c = &a.customer;
        if c.address.line1.is_none() || c.address.postal_code.is_none() || c.address.city.is_none()
        {
            return Err(DeliveryError::Blocked {
                reason: format!(
                    "customer {} has no complete postal address (line 1, postal code, city) for registered mail",
                    c.external_id
                ),
            });
        }
        let request = self.letter_request(a, doc, pdf);
        let Some(cfg) = &self.registered else {
            self.outbox
                .put(a, &format!("-{}", doc.file_name), pdf)
                .await?;
            let mut body = request;
            if let Some(d) = body.get_mut("document").and_then(|d| d.as_object_mut()) {
                d.remove("content_base64");
            }
            return self
                .outbox
                .put(
                    a,
                    "-registered_mail.json",
                    serde_json::to_string_pretty(&body)
                        .unwrap_or_default()
                        .as_bytes(),
                )
                .await;
        };
        let mut req = self
            .http
            .post(&cfg.url)
            .timeout(cfg.timeout)
            .header("Idempotency-Key", &a.key)
            .json(&request);
        for (name, value) in &cfg.headers {
            req = req.header(name.as_str(), value.expose());
        }
        super::transmitting("registered_mail").await?;
        let response = req.send().await.map_err(|e| DeliveryError::Temporary {
            message: format!(
                "POST {}: {}",
                crate::config::redact_url(&cfg.url),
                super::describe_reqwest(&e)
            ),
            retry_after: None,
        })?;
        let status = response.status().as_u16();
        let retry_after = super::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(http_error(&cfg.url, status, &text, retry_after));
        }
        let tracking = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.pointer(&cfg.tracking_pointer).cloned())
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        // Accepted without a readable tracking reference: record the acceptance rather
        // than send the letter again.
        Ok(tracking
            .unwrap_or_else(|| format!("accepted ({status}) without {}", cfg.tracking_pointer)))
    }
}

#[async_trait]
impl Channel for FormalNoticeChannel {
    fn name(&self) -> &str {
        "formal_notice"
    }

    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Hold
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        let means = means_of(&a.options).map_err(|reason| DeliveryError::Blocked { reason })?;
        let registered = means.contains(&Means::RegisteredMail);
        let (doc, pdf) = self.documents.formal_notice(a, registered).await?;
        let temp = |e: crate::store::StoreError| DeliveryError::Temporary {
            message: format!("database: {e}"),
            retry_after: None,
        };
        let done = self.store.delivered_parts(a.id).await.map_err(temp)?;
        let mut refs: Vec<String> = Vec::new();
        for m in means {
            if let Some(p) = done.iter().find(|p| p.part == m.as_str()) {
                refs.push(format!("{}:{}", p.part, p.provider_ref));
                continue;
            }
            let provider_ref = match m {
                Means::Email => self.by_email(a, &doc, &pdf).await?,
                Means::RegisteredMail => self.by_registered_mail(a, &doc, &pdf).await?,
            };
            tracing::info!(part = m.as_str(), provider_ref = %provider_ref, "formal notice part sent");
            self.store
                .record_delivered_part(a.id, m.as_str(), &provider_ref, chrono::Utc::now())
                .await
                .map_err(temp)?;
            refs.push(format!("{}:{provider_ref}", m.as_str()));
        }
        Ok(Delivered {
            provider_ref: refs.join(" "),
        })
    }
}
