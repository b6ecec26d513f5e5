//! Delivery channels behind one trait. Until real transports are configured, every
//! action goes to the `outbox/` folder transport, which writes what would be sent.

mod outbox_dir;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use outbox_dir::OutboxDir;

use crate::domain::ActionKind;
use crate::store::ClaimedAction;

/// What a channel does with an action whose send was interrupted (a crash after the
/// channel may have accepted it and before the outcome was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupted {
    /// Send again with the same message id / idempotency key: receivers deduplicate.
    Resend,
    /// Hold it for an operator (formal notices, insurer handovers).
    Hold,
}

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
