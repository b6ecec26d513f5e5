//! The `outbox/` folder transport: each action becomes a JSON file describing exactly
//! what would be sent, and, where messages are rendered, what a transport would carry:
//! the email as an `.eml` file (RFC 5322, plain text and HTML, attachments) that any
//! mail client opens, the SMS text as a `.txt` file, the letter as its PDF. The embedded
//! default uses it for every kind, so nothing leaves the machine until real transports
//! are configured.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::documents::Documents;
use super::email::{attachments_of, Composer};
use super::sms::sms_text;
use super::{Channel, Delivered, DeliveryError, OnInterrupted};
use crate::config::Company;
use crate::domain::ActionKind;
use crate::store::ClaimedAction;
use crate::templates::Templates;

pub struct OutboxDir {
    dir: PathBuf,
    rendering: Option<Arc<Rendering>>,
}

/// What the outbox folder renders messages with.
pub struct Rendering {
    pub composer: Composer,
    pub company: Company,
    pub templates: Arc<Templates>,
    pub documents: Option<Arc<Documents>>,
}

impl OutboxDir {
    /// The folder, writing the JSON description of each action only.
    pub fn new(dir: impl Into<PathBuf>) -> OutboxDir {
        OutboxDir {
            dir: dir.into(),
            rendering: None,
        }
    }

    /// The folder, writing each message as a transport would send it too.
    pub fn rendering(dir: impl Into<PathBuf>, rendering: Arc<Rendering>) -> OutboxDir {
        OutboxDir {
            dir: dir.into(),
            rendering: Some(rendering),
        }
    }

    /// How messages are composed, when this folder renders them.
    pub fn composer(&self) -> Option<&Composer> {
        self.rendering.as_ref().map(|r| &r.composer)
    }

    /// The file name stem of an action's files: `<id>-<customer>`.
    fn stem(a: &ClaimedAction) -> String {
        let safe: String = a
            .customer
            .external_id
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        format!("{:08}-{safe}", a.id)
    }

    /// Writes `bytes` as `<kind>/<id>-<customer><suffix>` through a temporary file; a
    /// resend overwrites the same file. Returns the path.
    ///
    /// # Errors
    /// Temporary: the folder cannot be written.
    pub async fn put(
        &self,
        a: &ClaimedAction,
        suffix: &str,
        bytes: &[u8],
    ) -> Result<String, DeliveryError> {
        let dir = self.dir.join(a.kind.as_str());
        let path = dir.join(format!("{}{suffix}", Self::stem(a)));
        let tmp = dir.join(format!(".{}{suffix}.tmp", Self::stem(a)));
        let io = |e: std::io::Error| DeliveryError::Temporary {
            message: format!("cannot write {}: {e}", path.display()),
            retry_after: None,
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(path.display().to_string())
    }

    /// What an action would send, as JSON: the action, its customer and invoices, and
    /// `extra` fields (a document, a request body).
    pub fn describe(a: &ClaimedAction, extra: serde_json::Value) -> serde_json::Value {
        let c = &a.customer;
        let recipients = match a.kind {
            ActionKind::Email | ActionKind::FormalNotice => json!(c.emails),
            ActionKind::Sms => json!(c
                .phones
                .iter()
                .filter(|p| p.is_probably_mobile())
                .collect::<Vec<_>>()),
            ActionKind::CallTask => json!(c.phones),
            ActionKind::InsurerHandover => json!(c.insurance.policy),
        };
        let mut body = json!({
            "message_id": a.key,
            "action_id": a.id,
            "attempt": a.attempt,
            "kind": a.kind,
            "step": a.step,
            "template": a.template,
            "decided_on": a.decided_on,
            "customer": { "id": c.external_id, "name": c.name, "locale": c.locale, "collector": c.collector },
            "recipients": recipients,
            "invoices": a.invoices.iter().map(|i| json!({
                "number": i.number, "issue_date": i.issue_date, "due_date": i.due_date,
                "amount": i.amount, "open_amount": i.open_amount, "currency": i.currency,
            })).collect::<Vec<_>>(),
            "amount": a.amount,
            "currency": a.currency,
            "options": a.options,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
            obj.extend(more);
        }
        body
    }
}

#[async_trait]
impl Channel for OutboxDir {
    fn name(&self) -> &str {
        "outbox"
    }

    /// Files are written under a name derived from the action: a resend overwrites the
    /// same file, so resending is always safe here.
    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Resend
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        // What the transport would carry first: a message that cannot be built (no
        // address, a template that does not render) is blocked as it would be.
        if let Some(r) = &self.rendering {
            match a.kind {
                ActionKind::Email => {
                    let template = a.template.as_deref().unwrap_or(&a.step);
                    let attachments = attachments_of(a, r.documents.as_deref()).await?;
                    let message = r.composer.compose(a, template, &attachments)?;
                    self.put(a, ".eml", &message.formatted()).await?;
                }
                ActionKind::Sms => {
                    let (to, text) = sms_text(a, &r.company, &r.templates)?;
                    self.put(a, ".txt", format!("To: {to}\n\n{text}\n").as_bytes())
                        .await?;
                }
                _ => {}
            }
        }
        let body = Self::describe(a, json!({}));
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        let path = self.put(a, ".json", text.as_bytes()).await?;
        Ok(Delivered { provider_ref: path })
    }
}
