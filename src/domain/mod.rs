//! The receivables domain: pure types and rules, no I/O.

pub mod account;
pub mod customer;
pub mod dates;
pub mod format;
pub mod ids;
pub mod interest;
pub mod invoice;
pub mod lifecycle;
pub mod money;
pub mod names;
pub mod payment;
pub mod promise;
pub mod sepa;

pub use account::{Account, ActionKind, OpenInvoice, StepRecord};
pub use customer::{Customer, Insurance, Pause, PostalAddress};
pub use dates::{parse_date, BusinessCalendar, HolidaySet};
pub use ids::{
    CountryCode, EmailAddress, InvalidValue, Locale, PhoneNumber, Siren, Siret, VatNumber,
};
pub use interest::{InterestError, Jurisdictions, LatePayment};
pub use invoice::{Dispute, Invoice, InvoiceRecord, InvoiceStatus};
pub use money::{parse_amount, Currency, Money, MoneyError};
pub use names::nearest;
pub use payment::{allocate, Allocation, OpenItem, Payment, PaymentKind};
pub use promise::{promise_status, PromiseStatus, PromiseToPay};
