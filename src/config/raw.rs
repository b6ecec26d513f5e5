//! The configuration file as written: plain serde structs, no validation beyond types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::domain::HolidaySet;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBank {
    pub holder: Option<String>,
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatory {
    pub name: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompany {
    pub name: String,
    pub legal_name: Option<String>,
    pub legal_form: Option<String>,
    pub siren: Option<String>,
    pub siret: Option<String>,
    pub vat_number: Option<String>,
    #[serde(default)]
    pub address: RawAddress,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub currency: Option<String>,
    pub bank: Option<RawBank>,
    pub signatory: Option<RawSignatory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    pub weekend: Option<Vec<String>>,
    pub holidays: Option<HolidaySet>,
    #[serde(default)]
    pub extra_holidays: Vec<NaiveDate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub from: NaiveDate,
    pub rate: Decimal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLatePayment {
    pub currency: Option<String>,
    pub fixed_indemnity: Option<Decimal>,
    pub margin_points: Option<Decimal>,
    pub reference_rates: Option<Vec<RawRate>>,
    /// Name of the reference rate by locale, as printed on letters.
    #[serde(default)]
    pub reference_label: BTreeMap<String, String>,
    /// The law cited on letters, by locale.
    #[serde(default)]
    pub legal_basis: BTreeMap<String, String>,
    /// Terms by the customer's country, each field defaulting to the terms above.
    #[serde(default)]
    pub jurisdictions: BTreeMap<String, RawLatePayment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSegment {
    /// The script, for a segment without variants.
    pub rules: Option<String>,
    pub schedule: String,
    pub description: Option<String>,
    /// The experiment's name (default: the segment's): customers are assigned to the
    /// variants by a hash of it and their id.
    pub experiment: Option<String>,
    /// Champion / challenger: scripts sharing the segment's customers by weight.
    pub variants: Option<BTreeMap<String, RawVariant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub rules: String,
    pub weight: u32,
}

pub type RawSegments = BTreeMap<String, RawSegment>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInsurer {
    pub name: String,
    pub policy_number: Option<String>,
    pub declaration_deadline_days: i64,
    pub endpoint: Option<super::channels::RawWebhook>,
    pub reference_pointer: Option<String>,
    pub retry_hours: Option<u64>,
    pub include_pdf: Option<bool>,
}

pub type RawInsurers = BTreeMap<String, RawInsurer>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub facts_days: Option<i64>,
    pub messages_days: Option<i64>,
    pub formal_notices_days: Option<i64>,
    pub schedule: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    pub locale: Option<String>,
    pub aging_buckets: Option<Vec<i64>>,
    pub top: Option<usize>,
    pub monthly: Option<RawMonthlyReport>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonthlyReport {
    pub schedule: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_seconds: Option<u64>,
    pub max_batch_items: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub trusted_header: Option<String>,
    pub session_hours: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortal {
    pub public_url: Option<String>,
    #[serde(default)]
    pub keys: Vec<RawPortalKey>,
    pub link_days: Option<i64>,
    pub listen: Option<String>,
    pub logo: Option<PathBuf>,
    pub payment_link: Option<String>,
    pub promise_max_days: Option<i64>,
    pub rate_limits: Option<RawPortalLimits>,
    pub client_address_header: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortalLimits {
    pub per_address_per_minute: Option<u32>,
    pub per_link_per_minute: Option<u32>,
    pub acts_per_link_per_day: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortalKey {
    pub id: u8,
    pub secret: crate::config::Secret,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispatch {
    #[serde(default)]
    pub quiet_hours: BTreeMap<String, RawWindow>,
    pub contact_budget: Option<RawBudget>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
    pub lease_seconds: Option<u64>,
    pub max_attempts: Option<i64>,
    pub backoff_base_seconds: Option<u64>,
    pub backoff_max_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub from: String,
    pub to: String,
    #[serde(default = "yes")]
    pub business_days_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub max_contacts: u32,
    pub per_days: u32,
    pub kinds: Option<Vec<String>>,
}
