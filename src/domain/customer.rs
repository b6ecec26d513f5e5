//! A customer account of the receivables ledger.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{CountryCode, EmailAddress, Locale, PhoneNumber, Siren, Siret, VatNumber};
use super::money::Currency;

/// A postal address, as printed on letters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<CountryCode>,
}

/// Trade credit-insurance cover of a customer (the insurer's "buyer").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insurance {
    pub insured: bool,
    /// Key of the insurer policy in the configuration.
    pub policy: Option<String>,
    /// The insurer's reference for this buyer.
    pub buyer_ref: Option<String>,
    pub cover_amount: Option<Decimal>,
}

/// A pause of dunning, for a customer or an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    /// Last paused day; `None` pauses until the pause is lifted.
    pub until: Option<NaiveDate>,
}

impl Pause {
    /// Whether the pause is in force on `date`.
    pub fn active_on(&self, date: NaiveDate) -> bool {
        self.until.is_none_or(|u| date <= u)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The ERP's identifier: the key of upserts and of every reference to the customer.
    pub external_id: String,
    pub name: String,
    /// Registered legal name when it differs from the trading name.
    pub legal_name: Option<String>,
    pub siren: Option<Siren>,
    pub siret: Option<Siret>,
    pub vat_number: Option<VatNumber>,
    pub country: CountryCode,
    pub segment: String,
    pub locale: Locale,
    pub emails: Vec<EmailAddress>,
    pub phones: Vec<PhoneNumber>,
    pub address: PostalAddress,
    /// Currency of the credit limit and cover amounts.
    pub currency: Currency,
    pub credit_limit: Option<Decimal>,
    pub insurance: Insurance,
    /// Collector in charge of the account (a name or login, used for call tasks and Reply-To).
    pub collector: Option<String>,
    pub tags: Vec<String>,
    pub pause: Option<Pause>,
}

impl Customer {
    /// The name to print on legal documents.
    pub fn legal_name(&self) -> &str {
        self.legal_name.as_deref().unwrap_or(&self.name)
    }
}
