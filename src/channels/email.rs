//! Email over SMTP (lettre's pooled async transport): one message per customer and step,
//! listing every invoice concerned, as multipart/alternative (plain text and HTML) from
//! the templates of the customer's locale. The Message-ID derives from the action's
//! idempotency key, so a resend after an interruption carries the same one.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Channel, Delivered, DeliveryError, OnInterrupted};
use crate::config::channels::{EmailConfig, SmtpSecurity};
use crate::config::Company;
use crate::store::ClaimedAction;
use crate::templates::{MessageContext, Templates};

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    config: EmailConfig,
    company: Company,
    templates: Arc<Templates>,
    domain: String,
}

impl EmailChannel {
    /// # Errors
    /// When the TLS parameters cannot be built for the host.
    pub fn new(
        config: &EmailConfig,
        company: &Company,
        templates: Arc<Templates>,
    ) -> Result<EmailChannel, String> {
        let smtp = &config.smtp;
        let tls = || {
            TlsParameters::new(smtp.host.clone())
                .map_err(|e| format!("TLS parameters for {}: {e}", smtp.host))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(smtp.timeout))
            .pool_config(PoolConfig::new().max_size(smtp.pool_size));
        builder = match smtp.security {
            SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::Plain => builder.tls(Tls::None),
        };
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let domain = config
            .from
            .parse::<Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "relance.invalid".into());
        Ok(EmailChannel {
            transport: builder.build(),
            config: config.clone(),
            company: company.clone(),
            templates,
            domain,
        })
    }

    /// The message an action becomes (also used by `relance rules check` and tests).
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] when the customer has no address or the template
    /// cannot be rendered.
    pub fn message(&self, a: &ClaimedAction) -> Result<Message, DeliveryError> {
        let blocked = |reason: String| DeliveryError::Blocked { reason };
        let option_list = |key: &str| -> Vec<String> {
            match a.options.get(key) {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(v)) => v
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut to = option_list("recipients");
        if to.is_empty() {
            to = a.customer.emails.iter().map(|e| e.to_string()).collect();
        }
        if to.is_empty() {
            return Err(blocked(format!(
                "customer {} has no email address",
                a.customer.external_id
            )));
        }
        let template = a.template.as_deref().unwrap_or(&a.step);
        let ctx = MessageContext::new(
            &self.company,
            &a.customer,
            &a.invoices,
            &a.step,
            a.decided_on,
        );
        let rendered = self
            .templates
            .email(template, a.customer.locale, &ctx)
            .map_err(|e| blocked(e.to_string()))?;

        let parse = |addr: &str, what: &str| {
            addr.parse::<Mailbox>()
                .map_err(|e| blocked(format!("{what} '{addr}' is not a valid address: {e}")))
        };
        let mut builder = Message::builder()
            .from(parse(&self.config.from, "sender")?)
            .subject(rendered.subject)
            .header(MessageId::from(format!(
                "<{}@{}>",
                a.key.replace(':', "."),
                self.domain
            )));
        for t in &to {
            builder = builder.to(parse(t, "recipient")?);
        }
        for c in option_list("cc") {
            builder = builder.cc(parse(&c, "cc")?);
        }
        for b in &self.config.bcc {
            builder = builder.bcc(parse(b, "bcc")?);
        }
        // Replies go to the customer's collector when that is an address, else to the
        // rule's or the configuration's reply-to.
        let reply_to = a
            .options
            .get("reply_to")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                a.customer
                    .collector
                    .clone()
                    .filter(|c| c.parse::<Mailbox>().is_ok())
            })
            .or_else(|| self.config.reply_to.clone());
        if let Some(r) = reply_to {
            builder = builder.reply_to(parse(&r, "reply-to")?);
        }
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(rendered.text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(rendered.html),
                    ),
            )
            .map_err(|e| blocked(format!("cannot build the message: {e}")))
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &str {
        "smtp"
    }

    /// The Message-ID is stable: a resend is recognisable by the receiving side.
    fn on_interrupted(&self) -> OnInterrupted {
        OnInterrupted::Resend
    }

    async fn deliver(&self, a: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        let message = self.message(a)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_string();
        match self.transport.send(message).await {
            Ok(_) => Ok(Delivered {
                provider_ref: message_id,
            }),
            Err(e) if e.is_permanent() => Err(DeliveryError::Permanent {
                message: format!("SMTP {}: {e}", self.config.smtp.host),
            }),
            Err(e) => Err(DeliveryError::Temporary {
                message: format!("SMTP {}: {e}", self.config.smtp.host),
                retry_after: None,
            }),
        }
    }
}
