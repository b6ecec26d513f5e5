//! What collectors record on the ledger: disputes, pauses and promises to pay. The
//! HTTP API and the command line go through these functions, so a fact is checked the
//! same way wherever it comes from.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::domain::ids::{check_text, TextKind};
use crate::domain::{Dispute, Pause, PromiseToPay};
use crate::store::{NewPromise, Store, StoreError};

/// A value refused, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Invalid> for CollectError {
    fn from(i: Invalid) -> Self {
        CollectError::Invalid(i)
    }
}

/// Free text (a reason, a note): trimmed, not empty, no control characters, bounded.
///
/// # Errors
/// Naming `field`.
pub fn text(field: &str, value: &str) -> Result<String, Invalid> {
    crate::domain::ids::free_text(value).map_err(|e| Invalid::new(field, e.0))
}

/// An identifier (a customer's external id, an invoice number).
///
/// # Errors
/// Naming `field`.
pub fn key(field: &str, value: &str) -> Result<String, Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    check_text(value, TextKind::Id).map_err(|e| Invalid::new(field, e.0))?;
    Ok(value.to_string())
}

/// A pause for `reason` until `until` (its last day; none: until lifted).
///
/// # Errors
/// An empty reason, or a last day before `today`.
pub fn pause(reason: &str, until: Option<NaiveDate>, today: NaiveDate) -> Result<Pause, Invalid> {
    let reason = text("reason", reason)?;
    if let Some(u) = until {
        if u < today {
            return Err(Invalid::new("until", format!("{u} is in the past")));
        }
    }
    Ok(Pause { reason, until })
}

/// A dispute opened now for `reason`.
///
/// # Errors
/// An empty reason.
pub fn dispute(reason: &str, now: DateTime<Utc>) -> Result<Dispute, Invalid> {
    Ok(Dispute {
        reason: text("reason", reason)?,
        opened_at: now,
    })
}

/// A collector's change to a customer or an invoice.
#[derive(Debug, Clone)]
pub enum Change {
    CustomerPause(Option<Pause>),
    InvoicePause(Option<Pause>),
    Dispute(Option<Dispute>),
}

impl Change {
    /// The field the key of this change names: a customer's external id or an invoice
    /// number.
    pub fn key_field(&self) -> &'static str {
        match self {
            Change::CustomerPause(_) => "external_id",
            Change::InvoicePause(_) | Change::Dispute(_) => "number",
        }
    }
}

/// Applies `change` to the customer or invoice `key`, in a transaction of its own.
///
/// # Errors
/// An invalid key; the store's (an unknown customer or invoice is `NotFound`).
pub async fn apply(store: &dyn Store, key: &str, change: &Change) -> Result<(), CollectError> {
    let key = self::key(change.key_field(), key)?;
    let mut tx = store.begin().await?;
    match change {
        Change::CustomerPause(p) => tx.set_customer_pause(&key, p.as_ref()).await?,
        Change::InvoicePause(p) => tx.set_invoice_pause(&key, p.as_ref()).await?,
        Change::Dispute(d) => tx.set_invoice_dispute(&key, d.as_ref()).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// A promise to pay as a collector states it.
#[derive(Debug, Clone)]
pub struct PromiseInput {
    pub customer: String,
    pub promised_date: NaiveDate,
    pub amount: Decimal,
    /// Invoice numbers; empty: every open invoice of the customer.
    pub invoices: Vec<String>,
    pub note: Option<String>,
}

/// Records a promise after checking it: a positive amount in cents, a known customer,
/// and invoices of that customer. Returns the promise as stored.
///
/// # Errors
/// [`CollectError::Invalid`] naming the field; the store's.
pub async fn add_promise(
    store: &dyn Store,
    p: PromiseInput,
) -> Result<Option<PromiseToPay>, CollectError> {
    key("customer", &p.customer)?;
    for (i, n) in p.invoices.iter().enumerate() {
        key(&format!("invoices[{i}]"), n)?;
    }
    let note = p.note.as_deref().map(|n| text("note", n)).transpose()?;
    if p.amount <= Decimal::ZERO {
        return Err(Invalid::new("amount", "must be positive").into());
    }
    if p.amount.scale() > 2 {
        return Err(
            Invalid::new("amount", format!("{} has more than 2 decimals", p.amount)).into(),
        );
    }
    let Some(customer) = store.customer(&p.customer).await? else {
        return Err(Invalid::new("customer", format!("unknown customer '{}'", p.customer)).into());
    };
    for (i, n) in p.invoices.iter().enumerate() {
        match store.invoice(n).await? {
            Some(inv) if inv.customer == customer.external_id => {}
            Some(_) => {
                return Err(Invalid::new(
                    format!("invoices[{i}]"),
                    format!("invoice '{n}' is not {}'s", customer.external_id),
                )
                .into())
            }
            None => {
                return Err(Invalid::new(
                    format!("invoices[{i}]"),
                    format!("unknown invoice '{n}'"),
                )
                .into())
            }
        }
    }
    let promise = NewPromise {
        customer: p.customer.clone(),
        promised_date: p.promised_date,
        amount: p.amount,
        invoices: p.invoices,
        note,
        call_task: None,
    };
    let mut tx = store.begin().await?;
    let id = tx.add_promise(&promise, Utc::now()).await?;
    tx.commit().await?;
    Ok(store
        .promises_of(&promise.customer)
        .await?
        .into_iter()
        .find(|p| p.id == id))
}
