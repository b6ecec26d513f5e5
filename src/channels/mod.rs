//! Delivery channels behind one trait. Until real transports are configured, every
//! action goes to the `outbox/` folder transport, which writes what would be sent.

mod call_task;
pub mod documents;
pub mod email;
pub mod formal_notice;
pub mod insurer;
pub mod outbox_dir;
pub mod report_mail;
pub mod sms;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use call_task::CallTaskChannel;
pub use email::{Attachment, EmailChannel};
pub use formal_notice::FormalNoticeChannel;
pub use insurer::InsurerChannel;
pub use outbox_dir::OutboxDir;
pub use sms::SmsChannel;

use crate::domain::ActionKind;
use crate::store::ClaimedAction;

pub use crate::config::channels::OnInterrupted;

/// An accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's reference: Message-ID, SMS id, file, claim reference.
    pub provider_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (network, 4xx SMTP, 5xx or 429 HTTP), not before `retry_after` if given.
    #[error("{message}")]
    Temporary {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (rejected recipient, invalid request).
    #[error("{message}")]
    Permanent { message: String },
    /// The action cannot be sent as it stands (no email address, no mobile number, no
    /// template for the customer's locale): blocked until someone fixes the data.
    #[error("{reason}")]
    Blocked { reason: String },
    /// Give up now without further retries (an insurer endpoint answering 410 Gone).
    #[error("{message}")]
    DeadLetter { message: String },
}

/// A failed HTTP exchange as a [`DeliveryError`]: 408, 425, 429 and 5xx are temporary,
/// other statuses permanent.
pub(crate) fn http_error(
    url: &str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> DeliveryError {
    // The URL and the response may carry credentials (user-info, `?api_key=`): the
    // message goes to the logs, the action log and the API, so they are redacted.
    let excerpt: String = body.chars().take(300).collect();
    let message = format!(
        "{} answered {status}: {}",
        crate::config::redact_url(url),
        crate::config::redact_text(excerpt.trim())
    );
    if status == 408 || status == 425 || status == 429 || status >= 500 {
        DeliveryError::Temporary {
            message,
            retry_after,
        }
    } else {
        DeliveryError::Permanent { message }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// A transport error without the URL's secrets (reqwest prints the URL it was given).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", crate::config::redact_text(&detail))
    }
}

/// A way of delivering one kind of action.
#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn on_interrupted(&self) -> OnInterrupted;
    /// Delivers an action. The action's `key` is its idempotency key: a channel passes it
    /// on (Message-ID, `webhook-id`, provider idempotency key) so a resend after an
    /// interruption can be recognised by the receiver.
    async fn deliver(&self, action: &ClaimedAction) -> Result<Delivered, DeliveryError>;
    /// How this channel's temporary failures are retried, when not as configured under
    /// `dispatch` (insurer handovers retry for about three days).
    fn retry_policy(&self) -> Option<crate::config::RetryPolicy> {
        None
    }
}

/// Where a delivery records that its request is about to be written to the network
/// (channels call `transmitting` just before they write a request).
#[async_trait]
pub trait TransmitLog: Send + Sync {
    /// Records that `part` of the action being delivered is about to leave.
    ///
    /// # Errors
    /// The record could not be written: the request must not be sent.
    async fn transmitting(&self, part: &str) -> Result<(), String>;
}

tokio::task_local! {
    static TRANSMIT_LOG: Arc<dyn TransmitLog>;
}

/// Runs a delivery with `log` receiving its `transmitting` records.
pub async fn with_transmit_log<F: std::future::Future>(
    log: Arc<dyn TransmitLog>,
    delivery: F,
) -> F::Output {
    TRANSMIT_LOG.scope(log, delivery).await
}

/// Called by a channel just before it writes a request to the network: an interrupted
/// send with no such record provably never left, and can be sent again even where an
/// interrupted send is otherwise held for an operator.
///
/// # Errors
/// A temporary delivery error when the record cannot be written (nothing was sent).
pub(crate) async fn transmitting(part: &str) -> Result<(), DeliveryError> {
    let Ok(log) = TRANSMIT_LOG.try_with(Arc::clone) else {
        return Ok(());
    };
    log.transmitting(part)
        .await
        .map_err(|e| DeliveryError::Temporary {
            message: format!("cannot record the send before it leaves: {e}"),
            retry_after: None,
        })
}

/// A channel whose interrupted sends are treated as configured rather than as the
/// channel would.
struct WithPolicy {
    inner: Arc<dyn Channel>,
    policy: OnInterrupted,
}

#[async_trait]
impl Channel for WithPolicy {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn on_interrupted(&self) -> OnInterrupted {
        self.policy
    }
    async fn deliver(&self, action: &ClaimedAction) -> Result<Delivered, DeliveryError> {
        self.inner.deliver(action).await
    }
    fn retry_policy(&self) -> Option<crate::config::RetryPolicy> {
        self.inner.retry_policy()
    }
}

/// The channel of each action kind.
#[derive(Clone)]
pub struct Channels {
    by_kind: HashMap<ActionKind, Arc<dyn Channel>>,
}

impl Channels {
    /// Every kind to the same channel.
    pub fn all(channel: Arc<dyn Channel>) -> Channels {
        Channels {
            by_kind: ActionKind::ALL
                .into_iter()
                .map(|k| (k, channel.clone()))
                .collect(),
        }
    }

    pub fn set(&mut self, kind: ActionKind, channel: Arc<dyn Channel>) {
        self.by_kind.insert(kind, channel);
    }

    /// Overrides what an interrupted send of `kind` becomes.
    pub fn set_on_interrupted(&mut self, kind: ActionKind, policy: OnInterrupted) {
        if let Some(inner) = self.by_kind.get(&kind).cloned() {
            if inner.on_interrupted() != policy {
                self.by_kind
                    .insert(kind, Arc::new(WithPolicy { inner, policy }));
            }
        }
    }

    pub fn get(&self, kind: ActionKind) -> Option<&Arc<dyn Channel>> {
        self.by_kind.get(&kind)
    }

    /// Kinds whose interrupted sends are held for an operator.
    pub fn held_kinds(&self) -> Vec<ActionKind> {
        self.by_kind
            .iter()
            .filter(|(_, c)| c.on_interrupted() == OnInterrupted::Hold)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// The same error with any URL in its text redacted ([`crate::config::redact_text`]):
/// user-info and secret query parameters never reach the logs, the action log or the API.
pub(crate) fn redacted(e: DeliveryError) -> DeliveryError {
    use crate::config::redact_text;
    match e {
        DeliveryError::Temporary {
            message,
            retry_after,
        } => DeliveryError::Temporary {
            message: redact_text(&message),
            retry_after,
        },
        DeliveryError::Permanent { message } => DeliveryError::Permanent {
            message: redact_text(&message),
        },
        DeliveryError::Blocked { reason } => DeliveryError::Blocked {
            reason: redact_text(&reason),
        },
        DeliveryError::DeadLetter { message } => DeliveryError::DeadLetter {
            message: redact_text(&message),
        },
    }
}
