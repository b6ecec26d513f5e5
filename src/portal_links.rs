//! The debtor portal's links: made for a customer (`{public_url}/p/{token}`, sealed by
//! [`crate::link_seal`] with the first configured key, valid `portal.link_days`), and
//! opened back to the customer they were made for — refused when altered, sealed with a
//! key no longer configured, expired, or revoked (the customer's link generation was
//! raised since). Making a link writes nothing.

use chrono::{Duration, NaiveDate};

use crate::config::PortalConfig;
use crate::domain::Customer;
use crate::link_seal::{self, Claims};
use crate::store::{Store, StoreError};

/// The step of what the portal records in the action log: the confirmations emailed to
/// the customer, the collector's tasks it asks for.
pub const STEP: &str = "portal";

/// Why a link does not open (for the log and `relance portal check`; the visitor sees
/// the same page whatever the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    UnknownKey,
    Forged,
    Expired { on: NaiveDate },
    Revoked,
    UnknownCustomer,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed => f.write_str("not a portal link"),
            Refusal::UnknownKey => {
                f.write_str("sealed with a key that is not configured (any more)")
            }
            Refusal::Forged => f.write_str("altered, or sealed with another key"),
            Refusal::Expired { on } => write!(f, "expired on {on}"),
            Refusal::Revoked => f.write_str("revoked: the customer's links were revoked since"),
            Refusal::UnknownCustomer => f.write_str("its customer no longer exists"),
        }
    }
}

/// What a link opened to.
#[derive(Debug, Clone)]
pub struct Opened {
    pub customer: Customer,
    pub issued: NaiveDate,
    pub expires: NaiveDate,
    /// The action whose message carried the link, if any.
    pub action: Option<i64>,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn days(d: NaiveDate) -> u32 {
    u32::try_from((d - epoch()).num_days()).unwrap_or(0)
}

fn date(days: u32) -> NaiveDate {
    epoch() + Duration::days(i64::from(days))
}

/// What a preview shows in place of the link a message gets when it is sent (of the
/// same length, so that an SMS counts the same), or `None` without a portal.
pub fn preview_url(portal: &PortalConfig) -> Option<String> {
    let base = portal.public_url.as_deref().filter(|_| portal.enabled())?;
    Some(format!("{base}/p/{}", "x".repeat(link_seal::TOKEN_CHARS)))
}

/// The token in a link or a pasted URL (`…/p/TOKEN`, with or without a query).
pub fn token_of(link: &str) -> &str {
    let t = link.trim();
    let t = t.rsplit_once("/p/").map_or(t, |(_, t)| t);
    t.split(['?', '#', '/']).next().unwrap_or(t)
}

/// The customer's link, made `today` (for the message of `action`, if any), or `None`
/// when the portal is not configured or the customer is unknown.
///
/// # Errors
/// The database; the system's random source.
pub async fn link_for(
    portal: &PortalConfig,
    store: &dyn Store,
    customer: &str,
    action: Option<i64>,
    today: NaiveDate,
) -> Result<Option<String>, StoreError> {
    let (Some(base), Some(key)) = (portal.public_url.as_deref(), portal.keys.first()) else {
        return Ok(None);
    };
    let Some((id, generation)) = store.portal_generation(customer).await? else {
        return Ok(None);
    };
    let mut nonce = [0u8; 12];
    let random = crate::digest::random_bytes()
        .map_err(|e| StoreError::Invalid(format!("no random source: {e}")))?;
    nonce.copy_from_slice(&random[..12]);
    let claims = Claims {
        customer: id,
        generation,
        issued: days(today),
        expires: days(today + Duration::days(portal.link_days)),
        action,
    };
    Ok(Some(format!(
        "{base}/p/{}",
        link_seal::seal(key, &claims, nonce)
    )))
}

/// The customer a link (or its token) was made for, if it still opens `today`.
///
/// # Errors
/// The database.
pub async fn open(
    portal: &PortalConfig,
    store: &dyn Store,
    link: &str,
    today: NaiveDate,
) -> Result<Result<Opened, Refusal>, StoreError> {
    let claims = match link_seal::open(&portal.keys, token_of(link)) {
        Ok(c) => c,
        Err(link_seal::Refused::Malformed) => return Ok(Err(Refusal::Malformed)),
        Err(link_seal::Refused::UnknownKey) => return Ok(Err(Refusal::UnknownKey)),
        Err(link_seal::Refused::Forged) => return Ok(Err(Refusal::Forged)),
    };
    let expires = date(claims.expires);
    if today > expires {
        return Ok(Err(Refusal::Expired { on: expires }));
    }
    let Some((customer, generation)) = store.portal_customer(claims.customer).await? else {
        return Ok(Err(Refusal::UnknownCustomer));
    };
    if generation != claims.generation {
        return Ok(Err(Refusal::Revoked));
    }
    Ok(Ok(Opened {
        customer,
        issued: date(claims.issued),
        expires,
        action: claims.action,
    }))
}
