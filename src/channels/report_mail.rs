//! Scheduled reports emailed to the credit managers (`reports.monthly`): one message
//! per recipient with the report attached as PDF, sent through the configured SMTP
//! server, or written to the `outbox/reports/` folder as an `.eml` file until one is
//! configured. The Message-ID derives from the delivery's key, so a resend after an
//! interruption carries the same one.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use super::email::{Attachment, Composer, EmailChannel};
use super::{Delivered, DeliveryError};

/// One report to one recipient.
#[derive(Debug, Clone)]
pub struct ReportMail {
    /// The delivery's key: the Message-ID's left part, and the file name in the folder.
    pub key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub attachment: Attachment,
}

/// Where report mails go.
pub enum ReportMailer {
    /// The configured SMTP server, as customers' emails are sent.
    Smtp(Arc<EmailChannel>),
    /// `<outbox>/reports/<key>.eml`: what would be sent.
    Folder {
        dir: PathBuf,
        composer: Box<Composer>,
    },
}

impl ReportMailer {
    /// Sends (or writes) `mail`; the provider reference is the Message-ID, or the file.
    ///
    /// # Errors
    /// As an email's: 5xx permanent; 4xx, network errors and timeouts temporary; an
    /// address that does not parse blocks it.
    pub async fn send(&self, mail: &ReportMail) -> Result<Delivered, DeliveryError> {
        match self {
            ReportMailer::Smtp(channel) => {
                let message = channel.composer().compose_report(mail)?;
                channel.send(message).await
            }
            ReportMailer::Folder { dir, composer } => {
                let message = composer.compose_report(mail)?;
                let dir = dir.join("reports");
                let safe: String = mail
                    .key
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{safe}.eml"));
                let tmp = dir.join(format!(".{safe}.eml.tmp"));
                let io = |e: std::io::Error| DeliveryError::Temporary {
                    message: format!("cannot write {}: {e}", path.display()),
                    retry_after: None,
                };
                tokio::fs::create_dir_all(&dir).await.map_err(io)?;
                tokio::fs::write(&tmp, message.formatted())
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)?;
                Ok(Delivered {
                    provider_ref: path.display().to_string(),
                })
            }
        }
    }
}

impl Composer {
    /// A report mail: from the configured sender, plain text, the PDF attached.
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] when the recipient is not an address.
    pub fn compose_report(&self, mail: &ReportMail) -> Result<Message, DeliveryError> {
        let blocked = |reason: String| DeliveryError::Blocked { reason };
        let to = mail.to.parse::<Mailbox>().map_err(|e| {
            blocked(format!(
                "recipient '{}' is not a valid address: {e}",
                mail.to
            ))
        })?;
        let pdf = ContentType::parse("application/pdf")
            .map_err(|e| blocked(format!("content type: {e}")))?;
        let body = MultiPart::mixed()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text.clone()),
            )
            .singlepart(
                lettre::message::Attachment::new(mail.attachment.file_name.clone())
                    .body(mail.attachment.bytes.clone(), pdf),
            );
        Message::builder()
            .from(self.sender().clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(MessageId::from(format!(
                "<{}@{}>",
                mail.key.replace(':', "."),
                self.domain()
            )))
            .multipart(body)
            .map_err(|e| blocked(format!("cannot build the message: {e}")))
    }
}
