//! Email over SMTP (lettre's pooled async transport): one message per customer and step,
//! listing every invoice concerned, as multipart/alternative (plain text and HTML) from
//! the templates of the customer's locale. The Message-ID derives from the action's
//! idempotency key, so a resend after an interruption carries the same one.

use std::sync::Arc;

use async_trait::async_trait;
use std::time::Instant;

use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use tokio::sync::Mutex;

use super::{Channel, Delivered, DeliveryError, OnInterrupted};
use crate::config::channels::{EmailConfig, SmtpSecurity};
use crate::config::Company;
use crate::store::ClaimedAction;
use crate::templates::{MessageContext, Templates};

/// Open SMTP connections, reused from one message to the next.
///
/// relance opens the connections itself rather than through lettre's pooled transport
/// to set TCP_NODELAY: lettre writes a message's terminating `.` in a segment of its
/// own, which Nagle's algorithm holds until the server acknowledges the body, and
/// servers delay that acknowledgement (about 40 ms on Linux) while they wait for the
/// end of the data. Without it one connection sends about 23 messages a second.
struct Pool {
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

pub struct EmailChannel {
    pool: Pool,
    tls: Option<TlsParameters>,
    config: EmailConfig,
    composer: Composer,
    documents: Option<Arc<super::documents::Documents>>,
}

/// Builds the message an action becomes: the template of the customer's locale
/// rendered as plain text and HTML, the addresses, the Message-ID from the action's
/// idempotency key, and attachments. The SMTP channel sends it; the outbox folder
/// writes it as an `.eml` file.
pub struct Composer {
    company: Company,
    templates: Arc<Templates>,
    domain: String,
    /// The addresses, parsed once.
    from: Mailbox,
    bcc: Vec<Mailbox>,
    reply_to: Option<Mailbox>,
}

impl Composer {
    /// # Errors
    /// An address that does not parse.
    pub fn new(
        from: &str,
        bcc: &[String],
        reply_to: Option<&str>,
        company: &Company,
        templates: Arc<Templates>,
    ) -> Result<Composer, String> {
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("'{a}' is not an email address: {e}"))
        };
        let from = mailbox(from)?;
        let bcc = bcc.iter().map(|b| mailbox(b)).collect::<Result<_, _>>()?;
        let reply_to = reply_to.map(mailbox).transpose()?;
        Ok(Composer {
            domain: from.email.domain().to_string(),
            company: company.clone(),
            templates,
            from,
            bcc,
            reply_to,
        })
    }
}

impl Composer {
    /// The sender every message is from.
    pub fn sender(&self) -> &Mailbox {
        &self.from
    }

    /// The domain of Message-IDs (the sender's).
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl EmailChannel {
    /// How this channel composes its messages.
    pub fn composer(&self) -> &Composer {
        &self.composer
    }

    /// # Errors
    /// When the TLS parameters cannot be built for the host.
    pub fn new(
        config: &EmailConfig,
        company: &Company,
        templates: Arc<Templates>,
    ) -> Result<EmailChannel, String> {
        let smtp = &config.smtp;
        let tls = match smtp.security {
            SmtpSecurity::Plain => None,
            _ => {
                let mut builder = TlsParameters::builder(smtp.host.clone())
                    .dangerous_accept_invalid_certs(smtp.accept_invalid_certs);
                if let Some(ca) = &smtp.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
                    let cert = lettre::transport::smtp::client::Certificate::from_pem(&pem)
                        .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
                    builder = builder.add_root_certificate(cert);
                }
                Some(
                    builder
                        .build()
                        .map_err(|e| format!("TLS parameters for {}: {e}", smtp.host))?,
                )
            }
        };
        let composer = Composer::new(
            &config.from,
            &config.bcc,
            config.reply_to.as_deref(),
            company,
            templates,
        )?;
        Ok(EmailChannel {
            pool: Pool {
                idle: Mutex::new(Vec::new()),
            },
            tls,
            config: config.clone(),
            composer,
            documents: None,
        })
    }

    /// The message an action becomes (also used by `relance rules check` and tests).
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] when the customer has no address or the template
    /// cannot be rendered.
    pub fn message(&self, a: &ClaimedAction) -> Result<Message, DeliveryError> {
        let template = a.template.as_deref().unwrap_or(&a.step);
        self.composer.compose(a, template, &[])
    }

    /// The message of an action from email template `template`, with `attachments`.
    ///
    /// # Errors
    /// As [`EmailChannel::message`].
    pub fn compose(
        &self,
        a: &ClaimedAction,
        template: &str,
        attachments: &[Attachment],
    ) -> Result<Message, DeliveryError> {
        self.composer.compose(a, template, attachments)
    }
}

impl Composer {
    /// The message of an action from email template `template`, with `attachments`.
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] when the customer has no address or the template
    /// cannot be rendered.
    pub fn compose(
        &self,
        a: &ClaimedAction,
        template: &str,
        attachments: &[Attachment],
    ) -> Result<Message, DeliveryError> {
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
        let ctx = MessageContext::for_action(&self.company, a);
        let rendered = self
            .templates
            .email(template, a.customer.locale, &ctx)
            .map_err(|e| blocked(e.to_string()))?;

        let parse = |addr: &str, what: &str| {
            addr.parse::<Mailbox>()
                .map_err(|e| blocked(format!("{what} '{addr}' is not a valid address: {e}")))
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
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
        for b in &self.bcc {
            builder = builder.bcc(b.clone());
        }
        // Replies go to the rule's reply-to, else to the customer's collector when that is
        // an address, else to the configured reply-to.
        let reply_to = match a.options.get("reply_to").and_then(|v| v.as_str()) {
            Some(r) => Some(parse(r, "reply-to")?),
            None => a
                .customer
                .collector
                .as_deref()
                .and_then(|c| c.parse::<Mailbox>().ok())
                .or_else(|| self.reply_to.clone()),
        };
        if let Some(r) = reply_to {
            builder = builder.reply_to(r);
        }
        let alternative = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(rendered.text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(rendered.html),
            );
        let body = if attachments.is_empty() {
            alternative
        } else {
            let pdf = ContentType::parse("application/pdf")
                .map_err(|e| blocked(format!("content type: {e}")))?;
            attachments
                .iter()
                .fold(MultiPart::mixed().multipart(alternative), |m, att| {
                    m.singlepart(
                        lettre::message::Attachment::new(att.file_name.clone())
                            .body(att.bytes.clone(), pdf.clone()),
                    )
                })
        };
        builder
            .multipart(body)
            .map_err(|e| blocked(format!("cannot build the message: {e}")))
    }
}

/// A PDF attached to a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// SMTP 5xx replies are permanent; 4xx, network errors and timeouts temporary.
fn classify(host: &str, e: lettre::transport::smtp::Error) -> DeliveryError {
    if e.is_permanent() {
        DeliveryError::Permanent {
            message: format!("SMTP {host}: {e}"),
        }
    } else {
        DeliveryError::Temporary {
            message: format!("SMTP {host}: {e}"),
            retry_after: None,
        }
    }
}

impl EmailChannel {
    /// An idle connection still open, or a new one (TCP_NODELAY, STARTTLS, AUTH).
    async fn connection(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let smtp = &self.config.smtp;
        let failed = |e: lettre::transport::smtp::Error| classify(&smtp.host, e);
        loop {
            let idle = self.pool.idle.lock().await.pop();
            let Some((mut conn, since)) = idle else { break };
            // A connection idle for a while may have been closed by the server.
            if since.elapsed() < std::time::Duration::from_secs(10) || conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
        let hello = ClientId::default();
        let mut conn = match (smtp.security, &self.tls) {
            (SmtpSecurity::Tls, tls) => {
                // Implicit TLS: lettre connects and negotiates TLS before the greeting.
                AsyncSmtpConnection::connect_tokio1(
                    (smtp.host.as_str(), smtp.port),
                    Some(smtp.timeout),
                    &hello,
                    tls.clone(),
                    None,
                )
                .await
                .map_err(failed)?
            }
            (_, tls) => {
                let tcp = tokio::time::timeout(
                    smtp.timeout,
                    tokio::net::TcpStream::connect((smtp.host.as_str(), smtp.port)),
                )
                .await
                .map_err(|_| DeliveryError::Temporary {
                    message: format!("SMTP {}:{}: connection timed out", smtp.host, smtp.port),
                    retry_after: None,
                })?
                .map_err(|e| DeliveryError::Temporary {
                    message: format!("SMTP {}:{}: cannot connect: {e}", smtp.host, smtp.port),
                    retry_after: None,
                })?;
                let _ = tcp.set_nodelay(true);
                let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(failed)?;
                if let Some(params) = tls {
                    if !conn.can_starttls() {
                        return Err(DeliveryError::Temporary {
                            message: format!("SMTP {}: the server does not offer STARTTLS, which the configuration requires", smtp.host),
                            retry_after: None,
                        });
                    }
                    conn.starttls(params.clone(), &hello)
                        .await
                        .map_err(failed)?;
                }
                conn
            }
        };
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            let credentials = Credentials::new(user.clone(), password.expose().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(failed)?;
        }
        Ok(conn)
    }

    /// Keeps a connection for the next message, up to the pool size.
    async fn release(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.pool.idle.lock().await;
        if idle.len() < self.config.smtp.pool_size as usize {
            idle.push((conn, Instant::now()));
        }
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
        let template = a.template.as_deref().unwrap_or(&a.step);
        let attachments = attachments_of(a, self.documents.as_deref()).await?;
        let message = self.compose(a, template, &attachments)?;
        self.send(message).await
    }
}

/// The attachments an email rule asks for: the account statement
/// (`attachments: ["statement"]`), archived as it is made.
///
/// # Errors
/// Blocked when documents are not set up; the statement's own errors.
pub async fn attachments_of(
    a: &ClaimedAction,
    documents: Option<&super::documents::Documents>,
) -> Result<Vec<Attachment>, DeliveryError> {
    if !wants_statement(a) {
        return Ok(Vec::new());
    }
    let Some(docs) = documents else {
        return Err(DeliveryError::Blocked {
            reason: "the rule attaches a statement but documents are not set up".into(),
        });
    };
    let (doc, bytes) = docs.statement(a).await?;
    Ok(vec![Attachment {
        file_name: doc.file_name,
        bytes,
    }])
}

/// Whether an email rule asks for the account statement attached
/// (`attachments: ["statement"]`).
fn wants_statement(a: &ClaimedAction) -> bool {
    match a.options.get("attachments") {
        Some(serde_json::Value::String(s)) => s == "statement",
        Some(serde_json::Value::Array(v)) => v.iter().any(|x| x.as_str() == Some("statement")),
        _ => false,
    }
}

impl EmailChannel {
    /// Attaches account statements when rules ask for them.
    pub fn with_documents(mut self, documents: Arc<super::documents::Documents>) -> Self {
        self.documents = Some(documents);
        self
    }

    /// Sends a message on a pooled connection; the Message-ID is the provider reference.
    ///
    /// # Errors
    /// 5xx permanent; 4xx, network errors and timeouts temporary.
    pub async fn send(&self, message: Message) -> Result<Delivered, DeliveryError> {
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_string();
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let smtp = &self.config.smtp;
        // Connecting, STARTTLS and AUTH within the timeout too: a server that stops
        // answering must not hold a worker.
        let mut conn = tokio::time::timeout(smtp.timeout, self.connection())
            .await
            .map_err(|_| DeliveryError::Temporary {
                message: format!(
                    "SMTP {}: no answer within {} s while connecting",
                    smtp.host,
                    smtp.timeout.as_secs()
                ),
                retry_after: None,
            })??;
        super::transmitting("email").await?;
        let sent = tokio::time::timeout(smtp.timeout, conn.send(&envelope, &bytes)).await;
        match sent {
            Ok(Ok(_)) => {
                self.release(conn).await;
                Ok(Delivered {
                    provider_ref: message_id,
                })
            }
            Ok(Err(e)) => {
                // A refused message leaves the connection usable; a broken one is dropped.
                if !conn.has_broken() {
                    let reset = conn.command(lettre::transport::smtp::commands::Rset).await;
                    if reset.is_ok() {
                        self.release(conn).await;
                    }
                }
                Err(classify(&smtp.host, e))
            }
            Err(_) => Err(DeliveryError::Temporary {
                message: format!(
                    "SMTP {}: no answer within {} s",
                    smtp.host,
                    smtp.timeout.as_secs()
                ),
                retry_after: None,
            }),
        }
    }
}
