//! SMS over an HTTP provider: Twilio's Messages API, Brevo's transactional SMS API, or
//! any gateway through a URL, headers and a body template. The action's idempotency key
//! goes with every request (Twilio's `I-Twilio-Idempotency-Token`, a Brevo tag, the
//! generic template's `idempotency_key`), so a resend can be recognised.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{
    describe_reqwest, http_error, retry_after, Channel, Delivered, DeliveryError, OnInterrupted,
};
use crate::config::channels::{SmsConfig, SmsProvider};
use crate::config::Company;
use crate::domain::PhoneNumber;
use crate::store::ClaimedAction;
use crate::templates::{MessageContext, Templates};

pub struct SmsChannel {
    client: reqwest::Client,
    config: SmsConfig,
    company: Company,
    templates: Arc<Templates>,
}

impl SmsChannel {
    pub fn new(config: &SmsConfig, company: &Company, templates: Arc<Templates>) -> SmsChannel {
        SmsChannel {
            client: reqwest::Client::new(),
            config: config.clone(),
            company: company.clone(),
            templates,
        }
    }

    /// The recipient and text of an action.
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] without a valid mobile number or a renderable template.
    pub fn message(&self, a: &ClaimedAction) -> Result<(String, String), DeliveryError> {
        sms_text(a, &self.company, &self.templates)
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, DeliveryError> {
        super::transmitting("sms").await?;
        let response = request
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| DeliveryError::Temporary {
                message: format!("{}: {}", self.config.provider.name(), describe_reqwest(&e)),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(http_error(url, status, &text, wait));
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

/// The recipient and text of an action.
///
/// # Errors
/// [`DeliveryError::Blocked`] without a valid mobile number or a renderable template.
pub fn sms_text(
    a: &ClaimedAction,
    company: &Company,
    templates: &Templates,
) -> Result<(String, String), DeliveryError> {
    let to = match a.options.get("to").and_then(|v| v.as_str()) {
        Some(t) => PhoneNumber::try_from(t.to_string())
            .map_err(|e| DeliveryError::Blocked {
                reason: format!("the rule's 'to' number is not valid: {}", e.0),
            })?
            .to_string(),
        None => a
            .customer
            .phones
            .iter()
            .find(|p| p.is_probably_mobile())
            .map(|p| p.to_string())
            .ok_or_else(|| DeliveryError::Blocked {
                reason: format!(
                    "customer {} has no valid E.164 mobile number",
                    a.customer.external_id
                ),
            })?,
    };
    let template = a.template.as_deref().unwrap_or(&a.step);
    let ctx = MessageContext::for_action(company, a);
    let text = templates
        .sms(template, a.customer.locale, &ctx)
        .map_err(|e| DeliveryError::Blocked {
            reason: e.to_string(),
        })?;
    Ok((to, text))
}

#[async_trait]
impl Channel for SmsChannel {
    fn name(&self) -> &str {
        self.config.provider.name()
    }

    /// Providers deduplicate on the idempotency key where they can.
    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Resend
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        let (to, text) = self.message(a)?;
        let id_of = |v: &serde_json::Value, pointer: &str| -> Option<String> {
            match v.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        match &self.config.provider {
            SmsProvider::Twilio {
                account_sid,
                auth_token,
                from,
                base_url,
            } => {
                let url = format!("{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json");
                let request = self
                    .client
                    .post(&url)
                    .basic_auth(account_sid, Some(auth_token.expose()))
                    .header("I-Twilio-Idempotency-Token", &a.key)
                    .form(&[
                        ("To", to.as_str()),
                        ("From", from.as_str()),
                        ("Body", text.as_str()),
                    ]);
                let v = self.exchange(request, &url).await?;
                Ok(Delivered {
                    provider_ref: id_of(&v, "/sid").unwrap_or_else(|| a.key.clone()),
                })
            }
            SmsProvider::Brevo {
                api_key,
                sender,
                base_url,
            } => {
                let url = format!("{base_url}/v3/transactionalSMS/send");
                let body = json!({
                    "sender": sender,
                    "recipient": to.trim_start_matches('+'),
                    "content": text,
                    "type": "transactional",
                    "tag": a.key,
                });
                let request = self
                    .client
                    .post(&url)
                    .header("api-key", api_key.expose())
                    .header("accept", "application/json")
                    .json(&body);
                let v = self.exchange(request, &url).await?;
                Ok(Delivered {
                    provider_ref: id_of(&v, "/messageId").unwrap_or_else(|| a.key.clone()),
                })
            }
            SmsProvider::Http {
                url,
                method,
                headers,
                body,
                content_type,
                id_pointer,
            } => {
                let ctx = json!({
                    "to": to,
                    "text": text,
                    "idempotency_key": a.key,
                    "customer": a.customer.external_id,
                    "action_id": a.id,
                });
                // Values are JSON-escaped when the body is JSON.
                let rendered = if content_type.contains("json") {
                    let escaped: serde_json::Map<String, serde_json::Value> = ctx
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| {
                            let s = match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            let quoted = serde_json::to_string(&s).unwrap_or_default();
                            (k.clone(), json!(quoted[1..quoted.len() - 1]))
                        })
                        .collect();
                    Templates::render_str(body, escaped)
                } else {
                    Templates::render_str(body, &ctx)
                }
                .map_err(|e| DeliveryError::Permanent {
                    message: format!("channels.sms.http.body: {e}"),
                })?;
                let m =
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
                let mut request = self
                    .client
                    .request(m, url)
                    .header("content-type", content_type.as_str())
                    .header("idempotency-key", &a.key)
                    .body(rendered);
                for (k, v) in headers {
                    request = request.header(k.as_str(), v.expose());
                }
                let v = self.exchange(request, url).await?;
                let provider_ref = id_pointer
                    .as_deref()
                    .and_then(|p| id_of(&v, p))
                    .unwrap_or_else(|| a.key.clone());
                Ok(Delivered { provider_ref })
            }
        }
    }
}
