//! Configuration: `relance.yaml` is read as raw structs ([`raw`]), environment
//! references are expanded ([`env`]), then everything is validated at once into a
//! [`Config`]. Every problem is reported together, each with its YAML path and line.

pub mod channels;
mod env;
mod lenient;
pub mod raw;
mod retry;
pub mod secret;
pub(crate) mod yaml_index;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{NaiveDate, Weekday};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

pub use retry::RetryPolicy;
pub use secret::{redact_text, redact_url, DatabaseUrl, Secret};
use yaml_index::YamlIndex;

use crate::domain::{
    BusinessCalendar, CountryCode, Currency, EmailAddress, HolidaySet, Locale, PhoneNumber, Siren,
    Siret, VatNumber,
};

/// The configuration relance uses when no file is given and `./relance.yaml` does not
/// exist: SQLite next to the working directory, the sample rules, nothing sent for real.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../examples/relance.yaml");

/// The HTTP API of `relance serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Address to listen on; `None`: no HTTP server unless `serve --listen` names one.
    pub listen: Option<std::net::SocketAddr>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Time a request may take before it is answered 503.
    pub request_timeout: std::time::Duration,
    /// Most items in one batch request.
    pub max_batch_items: usize,
}

/// Who may use the web console (`auth:`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// A header set by an authenticating reverse proxy (oauth2-proxy's
    /// `X-Forwarded-User`, say) naming the signed-in user; lowercase. Only for a
    /// listener that nothing but that proxy can reach.
    pub trusted_header: Option<String>,
    /// How long a console session lasts.
    pub session_hours: i64,
}

/// The debtor's self-service portal (`portal:`): the links every reminder can carry.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Where the portal is reached from the internet (`https://pay.example.com`); the
    /// links are `{public_url}/p/{token}`. `None`: no portal, no links.
    pub public_url: Option<String>,
    /// The keys links are sealed with: the first seals, every one opens (rotation).
    pub keys: Vec<crate::link_seal::LinkKey>,
    /// How long a link is valid.
    pub link_days: i64,
    /// Where the portal's own listener listens (`portal.listen`); `None`: not served.
    pub listen: Option<std::net::SocketAddr>,
    /// The company's logo shown on the portal (PNG, JPEG or SVG file).
    pub logo: Option<std::path::PathBuf>,
    /// The payment provider's link for an invoice: a template with `invoice`, `amount`,
    /// `currency`, `reference` and `customer`.
    pub payment_link: Option<String>,
    /// How far ahead a customer may promise to pay.
    pub promise_max_days: i64,
    /// Requests a minute from one address, and on one link.
    pub per_address_per_minute: u32,
    pub per_link_per_minute: u32,
    /// Promises, disputes and messages a day on one link.
    pub acts_per_link_per_day: u32,
    /// The header a reverse proxy puts the visitor's address in (its last value is
    /// used); `None`: the connection's address.
    pub client_address_header: Option<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            public_url: None,
            keys: Vec::new(),
            link_days: 60,
            listen: None,
            logo: None,
            payment_link: None,
            promise_max_days: 30,
            per_address_per_minute: 120,
            per_link_per_minute: 60,
            acts_per_link_per_day: 20,
            client_address_header: None,
        }
    }
}

impl PortalConfig {
    /// Whether links can be made.
    pub fn enabled(&self) -> bool {
        self.public_url.is_some() && !self.keys.is_empty()
    }
}

/// How long what the action log accumulates is kept (`retention:`): pruned by
/// `relance prune`, and by `relance serve` on `schedule`. The actions themselves, their
/// statuses, attempts and hashes are kept whatever these say: they are the evidence of
/// what was sent and why.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// The facts snapshots behind decisions (their SHA-256 stays on each action).
    pub facts_days: i64,
    /// Copies of messages sent: the outbox folder's files and the account statements
    /// attached to emails.
    pub messages_days: i64,
    /// Formal notices' PDFs (and their outbox folder copies): evidence of a formal
    /// demand, kept as long as a claim can be pursued.
    pub formal_notices_days: i64,
    /// When `relance serve` prunes (its scheduling instance); `None`: only by command.
    pub schedule: Option<cron::Schedule>,
    pub schedule_text: Option<String>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            facts_days: 400,
            messages_days: 400,
            formal_notices_days: 3650,
            schedule: None,
            schedule_text: None,
        }
    }
}

/// How reports are written (`reports:`).
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// Labels, amounts in tables and charts, CSV decimal separator.
    pub locale: crate::domain::Locale,
    /// The aged balance's buckets: the last day past due of each but the last.
    pub aging_buckets: Vec<i64>,
    /// How many customers the lists show.
    pub top: usize,
    /// The monthly management report, emailed on a schedule.
    pub monthly: Option<MonthlyReportConfig>,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            locale: crate::domain::Locale::Fr,
            aging_buckets: vec![30, 60, 90, 120],
            top: 20,
            monthly: None,
        }
    }
}

/// When the monthly report is sent, and to whom.
#[derive(Debug, Clone)]
pub struct MonthlyReportConfig {
    pub schedule: cron::Schedule,
    pub schedule_text: String,
    /// Addresses, or `Name <address>`.
    pub recipients: Vec<String>,
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded default>"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<CountryCode>,
}

#[derive(Debug, Clone, Default)]
pub struct BankDetails {
    pub holder: Option<String>,
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
}

/// The seller: who the letters and emails come from.
#[derive(Debug, Clone)]
pub struct Company {
    pub name: String,
    pub legal_name: Option<String>,
    pub legal_form: Option<String>,
    pub siren: Option<Siren>,
    pub siret: Option<Siret>,
    pub vat_number: Option<VatNumber>,
    pub address: Address,
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub website: Option<String>,
    pub currency: Currency,
    pub bank: BankDetails,
    pub signatory_name: Option<String>,
    pub signatory_title: Option<String>,
}

pub use crate::domain::{Jurisdictions, LatePayment};

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    /// The rule scripts: one for a segment without variants, else one per variant of its
    /// experiment (in the order of their names).
    pub scripts: Vec<SegmentScript>,
    /// The experiment's name when the segment has variants (default: the segment's
    /// name). Renaming it reassigns every customer: it starts a new experiment.
    pub experiment: Option<String>,
    pub schedule: cron::Schedule,
    /// The schedule as written, for display.
    pub schedule_text: String,
    pub description: Option<String>,
}

/// One rule script of a segment: its only one, or one variant of its experiment.
#[derive(Debug, Clone)]
pub struct SegmentScript {
    /// The variant's name; `None` for a segment without variants.
    pub variant: Option<String>,
    /// The script, resolved against the configuration's directory.
    pub rules: PathBuf,
    /// The variant's weight: its share of the customers is weight / sum of weights.
    pub weight: u32,
}

impl SegmentScript {
    /// How the script is named to people: `smb` or `smb (variant fast)`.
    pub fn label(&self, segment: &str) -> String {
        match &self.variant {
            Some(v) => format!("{segment} (variant {v})"),
            None => segment.to_string(),
        }
    }
}

impl Segment {
    /// Whether the segment splits its customers between variants.
    pub fn has_variants(&self) -> bool {
        self.experiment.is_some()
    }

    /// The script of a segment without variants, or of the named variant.
    pub fn script(&self, variant: Option<&str>) -> Option<&SegmentScript> {
        self.scripts
            .iter()
            .find(|s| s.variant.as_deref() == variant)
    }

    /// The script that evaluates `customer` (its external id): the segment's only one,
    /// or the variant the customer is assigned to.
    ///
    /// Assignment is weighted rendezvous hashing: for each variant of positive weight, a
    /// number u in (0, 1) drawn from the SHA-256 of the experiment's name, the customer's
    /// id and the variant's name; the variant with the smallest -ln(u) / weight wins.
    /// Each variant gets weight / (sum of weights) of the customers; the same customer
    /// always gets the same variant while the experiment's name, the variants and the
    /// weights stay; and a change moves the fewest customers: raising a variant's weight
    /// only moves customers to it, lowering it only moves customers away from it, a new
    /// variant only takes customers, and a removed one only gives away its own.
    pub fn script_for(&self, customer: &str) -> &SegmentScript {
        let Some(experiment) = &self.experiment else {
            return &self.scripts[0];
        };
        let mut best: Option<(f64, &SegmentScript)> = None;
        for s in &self.scripts {
            if s.weight == 0 {
                continue;
            }
            let key = format!(
                "{experiment}\u{1f}{customer}\u{1f}{}",
                s.variant.as_deref().unwrap_or("")
            );
            let h = crate::digest::sha256_u64(key.as_bytes());
            // 53 random bits, centred in their interval: never 0, never 1.
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -u.ln() / f64::from(s.weight);
            if best.is_none_or(|(b, _)| score < b) {
                best = Some((score, s));
            }
        }
        best.map(|(_, s)| s).unwrap_or(&self.scripts[0])
    }
}

/// A credit-insurance policy customers can be covered by.
#[derive(Debug, Clone)]
pub struct Insurer {
    pub key: String,
    pub name: String,
    pub policy_number: Option<String>,
    /// Days after an invoice's due date by which an overdue must be declared.
    pub declaration_deadline_days: i64,
    /// Where handovers are posted, signed; without it they go to the `outbox/` folder.
    pub endpoint: Option<channels::WebhookTarget>,
    /// JSON pointer to the insurer's reference in its response body.
    pub reference_pointer: String,
    /// How long a handover is retried before it is dead-lettered.
    pub retry_for: std::time::Duration,
    /// Embed the formal notice PDF (base64) in the handover document.
    pub include_pdf: bool,
}

/// When actions of a kind may be delivered, in the configured time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryWindow {
    pub from: chrono::NaiveTime,
    pub to: chrono::NaiveTime,
    pub business_days_only: bool,
}

/// At most `max_contacts` deliveries of `kinds` per customer over `per_days` days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactBudget {
    pub max_contacts: u32,
    pub per_days: u32,
    pub kinds: Vec<crate::domain::ActionKind>,
}

/// How planned actions are delivered.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub quiet_hours: BTreeMap<crate::domain::ActionKind, DeliveryWindow>,
    pub contact_budget: Option<ContactBudget>,
    /// Deliveries per minute and per instance, by kind.
    pub rate_limits: BTreeMap<crate::domain::ActionKind, u32>,
    /// How long a worker may hold an action it is sending before another reclaims it.
    pub lease: std::time::Duration,
    pub max_attempts: i64,
    pub backoff_base: std::time::Duration,
    pub backoff_max: std::time::Duration,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    pub database: DatabaseConfig,
    pub company: Company,
    pub timezone: chrono_tz::Tz,
    pub calendar: BusinessCalendar,
    /// Late-payment terms, by the customer's country.
    pub late_payment: Jurisdictions,
    pub segments: BTreeMap<String, Segment>,
    /// Credit-insurance policies, by key (what customers' `insurer_policy` names).
    pub insurers: BTreeMap<String, Insurer>,
    /// The collectors customers may be assigned to (`collectors:`); when set, an
    /// import or an API call naming another one is refused.
    pub collectors: Option<std::collections::BTreeSet<String>>,
    pub dispatch: DispatchConfig,
    /// The HTTP API of `relance serve`.
    pub api: ApiConfig,
    /// The web console's sign-in.
    pub auth: AuthConfig,
    pub portal: PortalConfig,
    pub reports: ReportsConfig,
    pub retention: RetentionConfig,
    /// Channel settings, typed by the channel modules.
    pub channels: channels::ChannelsConfig,
    /// Non-fatal remarks found while validating (shown by `config check`).
    pub warnings: Vec<Issue>,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// YAML path, e.g. `segments.smb.schedule`.
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Issue {
    pub fn error(path: &str, message: impl Into<String>) -> Issue {
        Issue {
            path: path.to_string(),
            line: None,
            message: message.into(),
        }
    }
}

/// Everything wrong with a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub source: Source,
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{}: {} problem{} in the configuration",
            self.source,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            writeln!(f, "{}", format_issue(&self.source, i))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `relance.yaml:12: segments.smb.schedule: message`
pub fn format_issue(source: &Source, i: &Issue) -> String {
    let place = match i.line {
        Some(l) => format!("{source}:{l}"),
        None => source.to_string(),
    };
    if i.path.is_empty() {
        format!("{place}: {}", i.message)
    } else {
        format!("{place}: {}: {}", i.path, i.message)
    }
}

const SECTIONS: &[&str] = &[
    "database",
    "company",
    "timezone",
    "calendar",
    "late_payment",
    "segments",
    "insurers",
    "collectors",
    "dispatch",
    "channels",
    "api",
    "auth",
    "portal",
    "reports",
    "retention",
];

impl Config {
    /// Why `segment` cannot be used, when the configuration has no such segment: the
    /// message names the ones it has.
    pub fn unknown_segment(&self, segment: &str) -> Option<String> {
        if self.segments.contains_key(segment) {
            return None;
        }
        let known: Vec<&str> = self.segments.keys().map(String::as_str).collect();
        Some(format!(
            "unknown segment '{segment}' (the configuration has {})",
            known.join(", ")
        ))
    }

    /// Loads the configuration: the given file, else `./relance.yaml` if present, else
    /// the embedded default.
    ///
    /// # Errors
    /// Every problem found, with YAML paths and lines.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let (source, text) = match path {
            Some(p) => (Source::File(p.to_path_buf()), read(p)?),
            None => {
                let p = Path::new("relance.yaml");
                if p.exists() {
                    (Source::File(p.to_path_buf()), read(p)?)
                } else {
                    (Source::Embedded, EMBEDDED_DEFAULT.to_string())
                }
            }
        };
        Config::from_yaml(source, &text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates configuration text.
    ///
    /// # Errors
    /// Every problem found, with YAML paths and lines.
    pub fn from_yaml(
        source: Source,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let base_dir = match &source {
            Source::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Source::Embedded => PathBuf::new(),
        };
        let base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir
        };
        let index = YamlIndex::build(text);
        let mut v = Validator {
            issues: Vec::new(),
            warnings: Vec::new(),
            stand_ins: Vec::new(),
        };
        let config = match serde_yaml::from_str::<Value>(text) {
            Err(e) => {
                let line = e.location().map(|l| l.line());
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                v.issues.push(Issue {
                    path: String::new(),
                    line,
                    message: format!("not valid YAML: {msg}"),
                });
                None
            }
            Ok(mut root) => {
                if root.is_null() {
                    root = Value::Mapping(Mapping::new());
                }
                env::interpolate(&mut root, "", lookup, &mut v.issues);
                v.build(root, &source, &base_dir)
            }
        };
        // Every problem has a line: that of its path, or of its closest ancestor in the
        // file; one about something the file lacks altogether (a missing section) points
        // at its first line.
        let locate = |mut i: Issue| {
            if i.line.is_none() {
                i.line = index.line_of(&i.path).or(Some(1));
            }
            i
        };
        match config {
            Some(mut c) if v.issues.is_empty() => {
                c.warnings = v.warnings.into_iter().map(locate).collect();
                Ok(c)
            }
            _ => {
                let mut issues: Vec<Issue> = v.issues.into_iter().map(locate).collect();
                issues.sort_by_key(|i| i.line.unwrap_or(0));
                Err(ConfigErrors { source, issues })
            }
        }
    }
}

fn read(p: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(p).map_err(|e| ConfigErrors {
        source: Source::File(p.to_path_buf()),
        issues: vec![Issue::error(
            "",
            format!("cannot read the configuration: {e}"),
        )],
    })
}

struct Validator {
    issues: Vec<Issue>,
    warnings: Vec<Issue>,
    /// Paths whose value stands in for a bad or missing one (already reported): what
    /// validation finds under them is not reported.
    stand_ins: Vec<String>,
}

impl Validator {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.issues.push(Issue::error(path, msg));
    }

    fn warn(&mut self, path: &str, msg: impl Into<String>) {
        self.warnings.push(Issue::error(path, msg));
    }

    /// Deserialises one section, reporting every type error and unknown key with its
    /// full path; the section is typed without the bad values so that the rest of it is
    /// still validated.
    fn section<T: DeserializeOwned>(&mut self, root: &Mapping, name: &str) -> Option<T> {
        let value = root.get(name).cloned().unwrap_or(Value::Null);
        let value = if value.is_null() {
            Value::Mapping(Mapping::new())
        } else {
            value
        };
        let typed = lenient::deserialize::<T>(name, value);
        for (path, msg) in typed.issues {
            self.err(&path, msg);
        }
        self.stand_ins.extend(typed.stand_ins);
        typed.value
    }

    fn opt<T>(
        &mut self,
        path: &str,
        value: Option<&String>,
        parse: impl Fn(&str) -> Result<T, crate::domain::InvalidValue>,
    ) -> Option<T> {
        let v = value.filter(|s| !s.trim().is_empty())?;
        match parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(path, e.0);
                None
            }
        }
    }

    fn build(&mut self, root: Value, source: &Source, base_dir: &Path) -> Option<Config> {
        let Value::Mapping(root) = root else {
            self.err("", "the configuration must be a mapping of sections (database, company, segments, ...)");
            return None;
        };
        for key in root.keys() {
            match key.as_str() {
                Some(k) if SECTIONS.contains(&k) => {}
                Some(k) => self.err(
                    k,
                    format!(
                        "unknown section '{k}' (expected one of: {})",
                        SECTIONS.join(", ")
                    ),
                ),
                None => self.err("", "section names must be strings"),
            }
        }
        let database = self.section::<raw::RawDatabase>(&root, "database");
        let company = if root.get("company").is_some_and(|c| !c.is_null()) {
            self.section::<raw::RawCompany>(&root, "company")
        } else {
            self.err("company", "missing section: the company sending the reminders (name, legal ids, address, bank details)");
            None
        };
        let calendar = self.section::<raw::RawCalendar>(&root, "calendar");
        let late = self.section::<raw::RawLatePayment>(&root, "late_payment");
        let segments = self.section::<raw::RawSegments>(&root, "segments");
        let insurers = self.section::<raw::RawInsurers>(&root, "insurers");
        let collectors = match root.get("collectors") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Sequence(items)) => {
                let mut names = std::collections::BTreeSet::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if !s.trim().is_empty() => {
                            names.insert(s.trim().to_string());
                        }
                        _ => {
                            ok = false;
                            self.err(
                                &format!("collectors[{i}]"),
                                "expected a collector's name or email address",
                            );
                        }
                    }
                }
                ok.then_some(Some(names))
            }
            Some(_) => {
                self.err(
                    "collectors",
                    "expected a list of the collectors customers may be assigned to",
                );
                None
            }
        };
        let dispatch = self.section::<raw::RawDispatch>(&root, "dispatch");
        let api = self.section::<raw::RawApi>(&root, "api");
        let auth = self.section::<raw::RawAuth>(&root, "auth");
        let portal = self.section::<raw::RawPortal>(&root, "portal");
        let reports = self.section::<raw::RawReports>(&root, "reports");
        let retention = self.section::<raw::RawRetention>(&root, "retention");
        let raw_channels = self.section::<channels::RawChannels>(&root, "channels");
        // Problems found from here on under a stand-in value are consequences of one
        // already reported.
        let typed = self.issues.len();

        let timezone = match root.get("timezone") {
            None | Some(Value::Null) => Some(chrono_tz::Europe::Paris),
            Some(Value::String(tz)) => {
                match chrono_tz::Tz::from_str(tz) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.err("timezone", format!("unknown time zone '{tz}' (expected an IANA name such as Europe/Paris)"));
                        None
                    }
                }
            }
            Some(_) => {
                self.err(
                    "timezone",
                    "expected an IANA time zone name such as Europe/Paris",
                );
                None
            }
        };

        let database = database.map(|d| self.database(d, source, base_dir));
        let company = company.map(|c| self.company(c));
        let calendar = calendar.map(|c| self.calendar(c));
        let default_currency = company.as_ref().map_or(Currency::EUR, |c| c.currency);
        let late = late.map(|l| self.late_payment(l, default_currency));
        let segments = segments.map(|s| self.segments(s, base_dir, source));
        let channels = raw_channels.map(|raw| {
            let mut problems = Vec::new();
            let mut c =
                channels::build(raw, &mut |path, msg| problems.push((path.to_string(), msg)));
            for (path, msg) in problems {
                self.err(&path, msg);
            }
            c.outbox_dir = base_dir.join(&c.outbox_dir);
            if let Some(email) = &mut c.email {
                if let Some(ca) = &mut email.smtp.ca_file {
                    *ca = base_dir.join(&*ca);
                    if !ca.is_file() {
                        self.err(
                            "channels.email.smtp.ca_file",
                            format!("{} does not exist", ca.display()),
                        );
                    }
                }
            }
            c.templates_dir = base_dir.join(&c.templates_dir);
            if let channels::DocumentArchive::Directory(d) = &mut c.documents.archive {
                *d = base_dir.join(&*d);
            }
            c
        });
        let insurers = insurers.map(|i| self.insurers(i));
        let longest = longest_send(channels.as_ref(), insurers.as_ref());
        let dispatch = dispatch.map(|d| self.dispatch(d, longest));
        let api = api.map(|a| self.api(a));
        let auth = auth.map(|a| self.auth(a));
        let portal = portal.map(|p| self.portal(p, base_dir));
        let reports = reports.map(|r| self.reports(r));
        let retention = retention.map(|r| self.retention(r));

        let stand_ins = std::mem::take(&mut self.stand_ins);
        let consequence = |i: &Issue| stand_ins.iter().any(|s| lenient::under(&i.path, s));
        let mut n = 0;
        self.issues.retain(|i| {
            n += 1;
            n <= typed || !consequence(i)
        });
        self.warnings.retain(|w| !consequence(w));

        Some(Config {
            source: source.clone(),
            base_dir: base_dir.to_path_buf(),
            database: database?,
            company: company?,
            timezone: timezone?,
            calendar: calendar?,
            late_payment: late?,
            segments: segments?,
            insurers: insurers?,
            collectors: collectors?,
            dispatch: dispatch?,
            api: api?,
            auth: auth?,
            portal: portal?,
            reports: reports?,
            retention: retention?,
            channels: channels?,
            warnings: Vec::new(),
        })
    }

    fn database(
        &mut self,
        d: raw::RawDatabase,
        source: &Source,
        base_dir: &Path,
    ) -> DatabaseConfig {
        let url = match d.url {
            Some(u) => normalise_database_url(&u, base_dir),
            None => {
                let file = match source {
                    Source::File(_) => base_dir.join("relance.db"),
                    Source::Embedded => PathBuf::from("relance.db"),
                };
                format!("sqlite://{}", file.display())
            }
        };
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.err("database.url", "expected a sqlite:// or postgres:// URL");
        }
        let max_connections = d.max_connections.unwrap_or(8);
        if max_connections == 0 {
            self.err("database.max_connections", "must be at least 1");
        }
        DatabaseConfig {
            url: DatabaseUrl::new(url),
            max_connections,
        }
    }

    fn company(&mut self, c: raw::RawCompany) -> Company {
        if c.name.trim().is_empty() {
            self.err("company.name", "must not be empty");
        }
        let currency = match c.currency.as_deref() {
            None => Currency::EUR,
            Some(code) => Currency::parse(code).unwrap_or_else(|e| {
                self.err("company.currency", e.to_string());
                Currency::EUR
            }),
        };
        let a = c.address;
        let address = Address {
            country: self.opt(
                "company.address.country",
                a.country.as_ref(),
                CountryCode::parse,
            ),
            line1: a.line1,
            line2: a.line2,
            postal_code: a.postal_code,
            city: a.city,
        };
        let bank = c.bank.unwrap_or_default();
        if let Some(iban) = &bank.iban {
            if let Err(m) = check_iban(iban) {
                self.err("company.bank.iban", m);
            }
        }
        let signatory = c.signatory.unwrap_or_default();
        Company {
            siren: self.opt("company.siren", c.siren.as_ref(), Siren::parse),
            siret: self.opt("company.siret", c.siret.as_ref(), Siret::parse),
            vat_number: self.opt(
                "company.vat_number",
                c.vat_number.as_ref(),
                VatNumber::parse,
            ),
            email: self.opt("company.email", c.email.as_ref(), EmailAddress::parse),
            phone: self.opt("company.phone", c.phone.as_ref(), PhoneNumber::parse),
            name: c.name,
            legal_name: c.legal_name,
            legal_form: c.legal_form,
            address,
            website: c.website,
            currency,
            bank: BankDetails {
                holder: bank.holder,
                iban: bank.iban.map(|i| {
                    i.split_whitespace()
                        .collect::<String>()
                        .to_ascii_uppercase()
                }),
                bic: bank.bic,
                bank_name: bank.bank_name,
            },
            signatory_name: signatory.name,
            signatory_title: signatory.title,
        }
    }

    fn calendar(&mut self, c: raw::RawCalendar) -> BusinessCalendar {
        let mut weekend = Vec::new();
        for (i, day) in c
            .weekend
            .unwrap_or_else(|| vec!["saturday".into(), "sunday".into()])
            .iter()
            .enumerate()
        {
            match Weekday::from_str(day) {
                Ok(w) => weekend.push(w),
                Err(_) => self.err(
                    &format!("calendar.weekend[{i}]"),
                    format!("'{day}' is not a day of the week"),
                ),
            }
        }
        if weekend.len() >= 7 {
            self.err(
                "calendar.weekend",
                "at least one day of the week must be a business day",
            );
        }
        let extra: BTreeSet<NaiveDate> = c.extra_holidays.into_iter().collect();
        BusinessCalendar::new(weekend, c.holidays.unwrap_or(HolidaySet::France), extra)
    }

    fn late_payment(
        &mut self,
        mut l: raw::RawLatePayment,
        default_currency: Currency,
    ) -> Jurisdictions {
        let raw_jurisdictions = std::mem::take(&mut l.jurisdictions);
        let default = self.late_terms("late_payment", l, None, default_currency);
        let mut by_country = BTreeMap::new();
        for (key, mut j) in raw_jurisdictions {
            let path = format!("late_payment.jurisdictions.{key}");
            let country = match CountryCode::parse(&key) {
                Ok(c) => c,
                Err(e) => {
                    self.err(
                        &path,
                        format!("{e}: jurisdictions are keyed by the customer's country"),
                    );
                    continue;
                }
            };
            if !j.jurisdictions.is_empty() {
                self.err(
                    &format!("{path}.jurisdictions"),
                    "jurisdictions do not nest",
                );
                j.jurisdictions.clear();
            }
            let terms = self.late_terms(&path, j, Some(&default), default_currency);
            by_country.insert(country, terms);
        }
        Jurisdictions {
            default,
            by_country,
        }
    }

    /// One set of late-payment terms at `path`; fields left out take the value of `base`
    /// (a jurisdiction inherits the default terms), else the French statutory values.
    fn late_terms(
        &mut self,
        path: &str,
        l: raw::RawLatePayment,
        base: Option<&LatePayment>,
        default_currency: Currency,
    ) -> LatePayment {
        let currency = match l.currency.as_deref() {
            None => base.map_or(default_currency, |b| b.currency),
            Some(code) => Currency::parse(code).unwrap_or_else(|e| {
                self.err(&format!("{path}.currency"), e.to_string());
                default_currency
            }),
        };
        let fixed_indemnity = l
            .fixed_indemnity
            .or(base.map(|b| b.fixed_indemnity))
            .unwrap_or(Decimal::new(40, 0));
        if fixed_indemnity < Decimal::ZERO {
            self.err(&format!("{path}.fixed_indemnity"), "must not be negative");
        }
        let margin_points = l
            .margin_points
            .or(base.map(|b| b.margin_points))
            .unwrap_or(Decimal::new(10, 0));
        if margin_points < Decimal::ZERO || margin_points > Decimal::new(100, 0) {
            self.err(
                &format!("{path}.margin_points"),
                format!("{margin_points} is not a number of points between 0 and 100"),
            );
        }
        let reference_label = self.by_locale(
            &format!("{path}.reference_label"),
            l.reference_label,
            base.map(|b| &b.reference_label),
        );
        let legal_basis = self.by_locale(
            &format!("{path}.legal_basis"),
            l.legal_basis,
            base.map(|b| &b.legal_basis),
        );
        let rates = match (l.reference_rates, base) {
            (None, Some(b)) => {
                return LatePayment {
                    currency,
                    fixed_indemnity,
                    margin_points,
                    reference_rates: b.reference_rates.clone(),
                    reference_label,
                    legal_basis,
                }
            }
            (rates, _) => rates.unwrap_or_default(),
        };
        let mut table = Vec::new();
        for (i, r) in rates.iter().enumerate() {
            if r.rate < Decimal::ZERO || r.rate > Decimal::new(100, 0) {
                self.err(
                    &format!("{path}.reference_rates[{i}].rate"),
                    format!("{} is not a percentage between 0 and 100", r.rate),
                );
            }
            if let Some((prev, _)) = table.last() {
                if r.from <= *prev {
                    self.err(
                        &format!("{path}.reference_rates[{i}].from"),
                        format!(
                            "{} is not after the previous entry {prev}; list rates in date order",
                            r.from
                        ),
                    );
                }
            }
            table.push((r.from, r.rate));
        }
        if table.is_empty() {
            self.warn(
                &format!("{path}.reference_rates"),
                "no reference rates: late interest cannot be computed",
            );
        } else if let Some((last, _)) = table.last() {
            let today = chrono::Utc::now().date_naive();
            if (today - *last).num_days() > 190 {
                self.warn(
                    &format!("{path}.reference_rates"),
                    format!(
                        "the latest rate starts on {last}; add the rate of the current half-year"
                    ),
                );
            }
        }
        LatePayment {
            currency,
            fixed_indemnity,
            margin_points,
            reference_rates: table,
            reference_label,
            legal_basis,
        }
    }

    /// Texts by locale (`fr: ..., en: ...`) over those of `base`.
    fn by_locale(
        &mut self,
        path: &str,
        raw: BTreeMap<String, String>,
        base: Option<&BTreeMap<Locale, String>>,
    ) -> BTreeMap<Locale, String> {
        let mut out = base.cloned().unwrap_or_default();
        for (locale, text) in raw {
            match Locale::parse(&locale) {
                Ok(loc) if !text.trim().is_empty() => {
                    out.insert(loc, text.trim().to_string());
                }
                Ok(_) => self.err(&format!("{path}.{locale}"), "must not be empty"),
                Err(e) => self.err(&format!("{path}.{locale}"), e.to_string()),
            }
        }
        out
    }

    fn retention(&mut self, r: raw::RawRetention) -> RetentionConfig {
        let mut out = RetentionConfig::default();
        for (key, value, slot, least) in [
            ("retention.facts_days", r.facts_days, &mut out.facts_days, 1),
            (
                "retention.messages_days",
                r.messages_days,
                &mut out.messages_days,
                1,
            ),
            (
                "retention.formal_notices_days",
                r.formal_notices_days,
                &mut out.formal_notices_days,
                365,
            ),
        ] {
            if let Some(v) = value {
                if (least..=36_500).contains(&v) {
                    *slot = v;
                } else {
                    self.err(key, format!("must be between {least} and 36500 days"));
                }
            }
        }
        if let Some(text) = r.schedule {
            match cron::Schedule::from_str(&text) {
                Ok(s) => {
                    out.schedule = Some(s);
                    out.schedule_text = Some(text);
                }
                Err(e) => self.err(
                    "retention.schedule",
                    format!("'{text}' is not a schedule (sec min hour day month weekday, e.g. \"0 30 3 * * *\"): {e}"),
                ),
            }
        }
        out
    }

    fn reports(&mut self, r: raw::RawReports) -> ReportsConfig {
        let mut out = ReportsConfig::default();
        if let Some(l) = &r.locale {
            match crate::domain::Locale::parse(l) {
                Ok(l) => out.locale = l,
                Err(e) => self.err("reports.locale", e.to_string()),
            }
        }
        if let Some(b) = r.aging_buckets {
            if b.is_empty() || b[0] < 1 || b.windows(2).any(|w| w[0] >= w[1]) {
                self.err(
                    "reports.aging_buckets",
                    "expected increasing numbers of days past due, the first at least 1, e.g. [30, 60, 90, 120]",
                );
            } else {
                out.aging_buckets = b;
            }
        }
        if let Some(t) = r.top {
            if !(1..=10_000).contains(&t) {
                self.err("reports.top", "must be between 1 and 10000");
            } else {
                out.top = t;
            }
        }
        if let Some(m) = r.monthly {
            let schedule_text = m.schedule.unwrap_or_else(|| "0 0 7 1 * *".to_string());
            let schedule = match cron::Schedule::from_str(&schedule_text) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.err(
                        "reports.monthly.schedule",
                        format!("'{schedule_text}' is not a cron expression (sec min hour day month weekday): {e}"),
                    );
                    None
                }
            };
            let mut recipients = Vec::new();
            for (i, r) in m.recipients.iter().enumerate() {
                // An address, or `Name <address>`.
                let r = r.trim();
                let address = match (r.rfind('<'), r.strip_suffix('>')) {
                    (Some(open), Some(_)) => &r[open + 1..r.len() - 1],
                    _ => r,
                };
                match crate::domain::EmailAddress::parse(address) {
                    Ok(_) => recipients.push(r.to_string()),
                    Err(e) => self.err(&format!("reports.monthly.recipients[{i}]"), e.0),
                }
            }
            if m.recipients.is_empty() {
                self.err(
                    "reports.monthly.recipients",
                    "the monthly report needs at least one recipient (the credit managers' addresses)",
                );
            }
            if let Some(schedule) = schedule {
                out.monthly = Some(MonthlyReportConfig {
                    schedule,
                    schedule_text,
                    recipients,
                });
            }
        }
        out
    }

    fn api(&mut self, a: raw::RawApi) -> ApiConfig {
        let listen = a.listen.as_deref().and_then(|l| match l.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.err(
                    "api.listen",
                    format!("'{l}' is not an address and port such as 127.0.0.1:8080"),
                );
                None
            }
        });
        let max_body_bytes = a.max_body_bytes.unwrap_or(8 * 1024 * 1024);
        if !(1024..=1024 * 1024 * 1024).contains(&max_body_bytes) {
            self.err("api.max_body_bytes", "must be between 1024 and 1073741824");
        }
        let timeout = a.request_timeout_seconds.unwrap_or(30);
        if !(1..=3600).contains(&timeout) {
            self.err("api.request_timeout_seconds", "must be between 1 and 3600");
        }
        let max_batch_items = a.max_batch_items.unwrap_or(5000);
        if !(1..=100_000).contains(&max_batch_items) {
            self.err("api.max_batch_items", "must be between 1 and 100000");
        }
        ApiConfig {
            listen,
            max_body_bytes,
            request_timeout: std::time::Duration::from_secs(timeout),
            max_batch_items,
        }
    }

    fn auth(&mut self, a: raw::RawAuth) -> AuthConfig {
        let trusted_header = a.trusted_header.and_then(|h| {
            let h = h.trim().to_ascii_lowercase();
            let ok = !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                self.err(
                    "auth.trusted_header",
                    format!("'{h}' is not a header name (letters, digits, '-')"),
                );
            }
            ok.then_some(h)
        });
        let session_hours = a.session_hours.unwrap_or(12);
        if !(1..=24 * 30).contains(&session_hours) {
            self.err("auth.session_hours", "must be between 1 and 720");
        }
        AuthConfig {
            trusted_header,
            session_hours,
        }
    }

    fn portal(&mut self, p: raw::RawPortal, base_dir: &Path) -> PortalConfig {
        use base64::Engine;
        let public_url = p.public_url.and_then(|u| {
            let u = u.trim().trim_end_matches('/').to_string();
            let host = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
                .unwrap_or("");
            match host.split('/').next() {
                Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Some(u),
                _ => {
                    self.err(
                        "portal.public_url",
                        format!("'{u}' is not an http(s) address"),
                    );
                    None
                }
            }
        });
        let mut keys: Vec<crate::link_seal::LinkKey> = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for (i, k) in p.keys.into_iter().enumerate() {
            let path = format!("portal.keys[{i}]");
            if !ids.insert(k.id) {
                self.err(
                    &format!("{path}.id"),
                    format!("key id {} is used twice", k.id),
                );
                continue;
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(k.secret.expose().trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
            match decoded {
                Some(secret) => keys.push(crate::link_seal::LinkKey { id: k.id, secret }),
                None => self.err(
                    &format!("{path}.secret"),
                    "a portal key is the base64 of 32 random bytes (`openssl rand -base64 32`); the value is not shown",
                ),
            }
        }
        if public_url.is_some() && keys.is_empty() {
            self.err(
                "portal.keys",
                "links need a key: add one (`openssl rand -base64 32`)",
            );
        }
        let link_days = p.link_days.unwrap_or(60);
        if !(1..=366).contains(&link_days) {
            self.err("portal.link_days", "must be between 1 and 366");
        }
        let listen = p.listen.as_deref().and_then(|l| match l.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    "portal.listen",
                    format!("'{l}' is not an address and port, e.g. 0.0.0.0:8090"),
                );
                None
            }
        });
        if listen.is_some() && (public_url.is_none() || keys.is_empty()) {
            self.err(
                "portal.listen",
                "the portal needs portal.public_url and portal.keys to make and open links",
            );
        }
        let logo = p.logo.map(|l| base_dir.join(l));
        if let Some(l) = &logo {
            let ext = l
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "svg")) {
                self.err("portal.logo", "a PNG, JPEG or SVG file (.png, .jpg, .svg)");
            } else {
                match std::fs::metadata(l) {
                    Ok(m) if m.len() <= 512 * 1024 => {}
                    Ok(_) => self.err("portal.logo", "at most 512 KiB"),
                    Err(e) => self.err("portal.logo", format!("cannot read {}: {e}", l.display())),
                }
            }
        }
        let payment_link = p.payment_link.filter(|t| !t.trim().is_empty());
        if let Some(t) = &payment_link {
            let sample = serde_json::json!({
                "invoice": "F-2026-0001", "amount": "120.50", "currency": "EUR",
                "reference": "RF18F20260001", "customer": "C001",
            });
            let mut env = minijinja::Environment::new();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            match env.render_str(t, sample) {
                Ok(u) if u.starts_with("https://") || u.starts_with("http://") => {}
                Ok(u) => self.err(
                    "portal.payment_link",
                    format!("must make an http(s) address; it makes '{u}'"),
                ),
                Err(e) => self.err(
                    "portal.payment_link",
                    format!("{e} (it may use invoice, amount, currency, reference, customer)"),
                ),
            }
        }
        let promise_max_days = p.promise_max_days.unwrap_or(30);
        if !(1..=365).contains(&promise_max_days) {
            self.err("portal.promise_max_days", "must be between 1 and 365");
        }
        let limits = p.rate_limits.unwrap_or_default();
        let mut limit = |v: Option<u32>, default: u32, name: &str| {
            let v = v.unwrap_or(default);
            if v == 0 {
                self.err(&format!("portal.rate_limits.{name}"), "must be at least 1");
            }
            v
        };
        let per_address_per_minute =
            limit(limits.per_address_per_minute, 120, "per_address_per_minute");
        let per_link_per_minute = limit(limits.per_link_per_minute, 60, "per_link_per_minute");
        let acts_per_link_per_day =
            limit(limits.acts_per_link_per_day, 20, "acts_per_link_per_day");
        PortalConfig {
            public_url,
            keys,
            link_days,
            listen,
            logo,
            payment_link,
            promise_max_days,
            per_address_per_minute,
            per_link_per_minute,
            acts_per_link_per_day,
            client_address_header: p
                .client_address_header
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
        }
    }

    fn dispatch(&mut self, d: raw::RawDispatch, longest: Option<LongestSend>) -> DispatchConfig {
        use std::time::Duration;
        // The lease must outlast the slowest send, or another worker reclaims an action
        // still being sent and sends it a second time.
        let needed = longest.as_ref().map(LongestSend::lease_needed);
        let lease = match d.lease_seconds {
            Some(0) => {
                self.err("dispatch.lease_seconds", "must be at least 1");
                0
            }
            Some(lease) => {
                if let (Some(l), Some(needed)) = (&longest, needed) {
                    if lease < needed {
                        self.err(
                            "dispatch.lease_seconds",
                            format!(
                                "{lease} s is shorter than a send may take: {} is {} s, plus a margin of {} s, needs a lease of at least {needed} s; raise lease_seconds to {needed} or lower that timeout",
                                l.what,
                                l.seconds,
                                needed - l.seconds
                            ),
                        );
                    }
                }
                lease
            }
            None => needed.map_or(60, |n| n.max(60)),
        };
        let max_attempts = d.max_attempts.unwrap_or(8);
        if !(1..=100).contains(&max_attempts) {
            self.err("dispatch.max_attempts", "must be between 1 and 100");
        }
        let mut quiet_hours = BTreeMap::new();
        for (kind, w) in &d.quiet_hours {
            let path = format!("dispatch.quiet_hours.{kind}");
            let Ok(k) = kind.parse::<crate::domain::ActionKind>() else {
                self.err(&path, format!("'{kind}' is not an action kind (email, sms, call_task, formal_notice, insurer_handover)"));
                continue;
            };
            let time = |t: &str| chrono::NaiveTime::parse_from_str(t, "%H:%M").ok();
            match (time(&w.from), time(&w.to)) {
                (Some(from), Some(to)) if from < to => {
                    quiet_hours.insert(
                        k,
                        DeliveryWindow {
                            from,
                            to,
                            business_days_only: w.business_days_only,
                        },
                    );
                }
                (Some(_), Some(_)) => self.err(
                    &path,
                    "'from' must be before 'to' (e.g. from: \"09:00\", to: \"19:00\")",
                ),
                _ => self.err(
                    &path,
                    "times are written HH:MM, e.g. from: \"09:00\", to: \"19:00\"",
                ),
            }
        }
        let contact_budget = d.contact_budget.and_then(|b| {
            if b.max_contacts == 0 || b.per_days == 0 {
                self.err(
                    "dispatch.contact_budget",
                    "max_contacts and per_days must be at least 1",
                );
                return None;
            }
            let kinds: Vec<crate::domain::ActionKind> = match &b.kinds {
                None => vec![
                    crate::domain::ActionKind::Email,
                    crate::domain::ActionKind::Sms,
                    crate::domain::ActionKind::CallTask,
                ],
                Some(list) => list
                    .iter()
                    .filter_map(|k| match k.parse() {
                        Ok(k) => Some(k),
                        Err(e) => {
                            self.err("dispatch.contact_budget.kinds", e);
                            None
                        }
                    })
                    .collect(),
            };
            Some(ContactBudget {
                max_contacts: b.max_contacts,
                per_days: b.per_days,
                kinds,
            })
        });
        let mut rate_limits = BTreeMap::new();
        for (kind, per_minute) in &d.rate_limits {
            let path = format!("dispatch.rate_limits.{kind}");
            match kind.parse::<crate::domain::ActionKind>() {
                Err(e) => self.err(&path, e),
                Ok(_) if *per_minute == 0 => self.err(&path, "must be at least 1 per minute"),
                Ok(k) => {
                    rate_limits.insert(k, *per_minute);
                }
            }
        }
        DispatchConfig {
            quiet_hours,
            contact_budget,
            rate_limits,
            lease: Duration::from_secs(lease.max(1)),
            max_attempts: max_attempts.clamp(1, 100),
            backoff_base: Duration::from_secs(d.backoff_base_seconds.unwrap_or(30)),
            backoff_max: Duration::from_secs(d.backoff_max_seconds.unwrap_or(6 * 3600)),
        }
    }

    fn insurers(&mut self, raw: raw::RawInsurers) -> BTreeMap<String, Insurer> {
        let mut out = BTreeMap::new();
        for (key, i) in raw {
            let path = format!("insurers.{key}");
            if !(1..=730).contains(&i.declaration_deadline_days) {
                self.err(
                    &format!("{path}.declaration_deadline_days"),
                    "must be a number of days between 1 and 730",
                );
            }
            let mut problems = Vec::new();
            let endpoint = i.endpoint.map(|w| {
                channels::webhook_target(w, &format!("{path}.endpoint"), 30, &mut |p, m| {
                    problems.push((p.to_string(), m))
                })
            });
            let reference_pointer = i.reference_pointer.unwrap_or_else(|| "/reference".into());
            if !reference_pointer.starts_with('/') {
                problems.push((
                    format!("{path}.reference_pointer"),
                    format!("'{reference_pointer}' is not a JSON pointer (e.g. /reference)"),
                ));
            }
            let retry_hours = i.retry_hours.unwrap_or(72);
            if !(1..=720).contains(&retry_hours) {
                problems.push((
                    format!("{path}.retry_hours"),
                    "must be between 1 and 720 hours".into(),
                ));
            }
            for (p, m) in problems {
                self.err(&p, m);
            }
            out.insert(
                key.clone(),
                Insurer {
                    key,
                    name: i.name,
                    policy_number: i.policy_number,
                    declaration_deadline_days: i.declaration_deadline_days,
                    endpoint,
                    reference_pointer,
                    retry_for: std::time::Duration::from_secs(retry_hours.clamp(1, 720) * 3600),
                    include_pdf: i.include_pdf.unwrap_or(true),
                },
            );
        }
        out
    }

    fn segments(
        &mut self,
        segs: raw::RawSegments,
        base_dir: &Path,
        source: &Source,
    ) -> BTreeMap<String, Segment> {
        let mut out = BTreeMap::new();
        if segs.is_empty() {
            self.warn(
                "segments",
                "no segments configured: no customer will be evaluated",
            );
        }
        for (name, s) in segs {
            let path = format!("segments.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.err(&path, "segment names use letters, digits, '_' and '-' only");
            }
            let scripts = self.segment_scripts(&path, &s, base_dir, source);
            if s.variants.is_none() && s.experiment.is_some() {
                self.err(
                    &format!("{path}.experiment"),
                    "an experiment needs variants (segments.NAME.variants)",
                );
            }
            let experiment = s
                .variants
                .is_some()
                .then(|| s.experiment.clone().unwrap_or_else(|| name.clone()));
            match parse_schedule(&s.schedule) {
                Ok(schedule) => {
                    out.insert(
                        name.clone(),
                        Segment {
                            name,
                            scripts,
                            experiment,
                            schedule,
                            schedule_text: s.schedule,
                            description: s.description,
                        },
                    );
                }
                Err(m) => self.err(&format!("{path}.schedule"), m),
            }
        }
        out
    }
}

impl Validator {
    /// A segment's scripts: its `rules`, or one per variant with its weight.
    fn segment_scripts(
        &mut self,
        path: &str,
        s: &raw::RawSegment,
        base_dir: &Path,
        source: &Source,
    ) -> Vec<SegmentScript> {
        let mut out = Vec::new();
        match (&s.rules, &s.variants) {
            (Some(_), Some(_)) => self.err(
                path,
                "give either rules (one script) or variants (an experiment), not both",
            ),
            (None, None) => self.err(
                path,
                "missing field `rules` (the segment's rule script; or `variants`, for an experiment)",
            ),
            (Some(rules), None) => out.push(SegmentScript {
                variant: None,
                rules: self.rule_file(&format!("{path}.rules"), rules, base_dir, source),
                weight: 1,
            }),
            (None, Some(variants)) => {
                if variants.is_empty() {
                    self.err(&format!("{path}.variants"), "no variant: name at least one");
                }
                for (v, raw) in variants {
                    let vpath = format!("{path}.variants.{v}");
                    if v.is_empty()
                        || !v
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        self.err(
                            &vpath,
                            "variant names use letters, digits, '_' and '-' only",
                        );
                    }
                    out.push(SegmentScript {
                        variant: Some(v.clone()),
                        rules: self.rule_file(
                            &format!("{vpath}.rules"),
                            &raw.rules,
                            base_dir,
                            source,
                        ),
                        weight: raw.weight,
                    });
                }
                if !variants.is_empty() && variants.values().all(|v| v.weight == 0) {
                    self.err(
                        &format!("{path}.variants"),
                        "every weight is 0: no customer would be evaluated (give one variant a positive weight)",
                    );
                }
            }
        }
        if out.is_empty() {
            // Stands in so that the rest validates; the error above stops the load.
            out.push(SegmentScript {
                variant: None,
                rules: base_dir.join("missing.rhai"),
                weight: 1,
            });
        }
        out
    }

    /// A rule file's path resolved against the configuration's directory, checked to
    /// exist.
    fn rule_file(&mut self, path: &str, rules: &str, base_dir: &Path, source: &Source) -> PathBuf {
        let file = base_dir.join(rules);
        if !file.is_file() {
            let mut msg = format!("rule file {} does not exist", file.display());
            let shipped = [
                "smb.rhai",
                "smb_fast.rhai",
                "key_accounts.rhai",
                "public_sector.rhai",
            ];
            if file
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| shipped.contains(&n))
            {
                msg.push_str(" (it ships with relance: `relance init DIR` writes the shipped rules, their tests, the templates and a configuration naming them into a new folder)");
            }
            // The embedded default names the shipped rules relative to the working
            // directory; elsewhere it still serves the commands that need no rules.
            match source {
                Source::Embedded => {
                    self.warn(path, format!("{msg}; using the copy shipped with relance"))
                }
                Source::File(_) => self.err(path, msg),
            }
        }
        file
    }
}

/// The longest time one delivery attempt may wait on a transport.
#[derive(Debug, Clone)]
struct LongestSend {
    /// Which timeout, e.g. `the SMTP timeout (channels.email.smtp.timeout_seconds)`.
    what: String,
    seconds: u64,
}

impl LongestSend {
    /// The timeout plus a margin (20 %, at least 1 s) for rendering and recording the
    /// outcome.
    fn lease_needed(&self) -> u64 {
        self.seconds + self.seconds.div_ceil(5).max(1)
    }
}

/// The longest configured channel timeout: SMTP, SMS gateway, registered mail, call
/// task notifications and insurer endpoints. `None` when every kind goes to the outbox.
fn longest_send(
    channels: Option<&channels::ChannelsConfig>,
    insurers: Option<&BTreeMap<String, Insurer>>,
) -> Option<LongestSend> {
    let mut all: Vec<(String, std::time::Duration)> = Vec::new();
    if let Some(c) = channels {
        if let Some(e) = &c.email {
            all.push((
                "the SMTP timeout (channels.email.smtp.timeout_seconds)".into(),
                e.smtp.timeout,
            ));
        }
        if let Some(sms) = &c.sms {
            all.push((
                "the SMS timeout (channels.sms.timeout_seconds)".into(),
                sms.timeout,
            ));
        }
        if let Some(r) = &c.formal_notice.registered_mail {
            all.push((
                "the registered mail timeout (channels.formal_notice.registered_mail.timeout_seconds)".into(),
                r.timeout,
            ));
        }
        if let Some(n) = &c.call_tasks.notify {
            all.push((
                "the call task notification timeout (channels.call_tasks.notify.timeout_seconds)"
                    .into(),
                n.timeout,
            ));
        }
    }
    for (key, i) in insurers.into_iter().flatten() {
        if let Some(e) = &i.endpoint {
            all.push((
                format!("the endpoint timeout of insurer '{key}' (insurers.{key}.endpoint.timeout_seconds)"),
                e.timeout,
            ));
        }
    }
    all.into_iter()
        .max_by_key(|(_, t)| *t)
        .map(|(what, t)| LongestSend {
            what,
            seconds: t.as_secs(),
        })
}

/// A sqlite path relative to the configuration is resolved against its directory.
fn normalise_database_url(url: &str, base_dir: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    if file.is_empty() || file == ":memory:" || Path::new(file).is_absolute() {
        return url.to_string();
    }
    let joined = base_dir.join(file);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

/// Parses a cron schedule. Five fields (minute first) or six/seven (seconds first, and
/// an optional year), as the `cron` crate reads them.
///
/// # Errors
/// A message quoting the schedule.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {text}")
    } else {
        text.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("invalid cron schedule '{text}': {e} (e.g. \"0 0 9 * * Mon-Fri\": seconds, minutes, hours, day of month, month, day of week)"))
}

fn check_iban(iban: &str) -> Result<(), String> {
    use crate::domain::sepa::{check_iban, IbanError};
    match check_iban(iban) {
        Ok(_) => Ok(()),
        Err(IbanError::Format) => Err(format!("invalid IBAN '{iban}'")),
        Err(IbanError::CheckDigits) => {
            Err(format!("invalid IBAN '{iban}' (check digits do not match)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(weights: &[(&str, u32)]) -> Segment {
        Segment {
            name: "smb".into(),
            scripts: weights
                .iter()
                .map(|(v, w)| SegmentScript {
                    variant: Some((*v).to_string()),
                    rules: PathBuf::from(format!("{v}.rhai")),
                    weight: *w,
                })
                .collect(),
            experiment: Some("smb-2027".into()),
            schedule: parse_schedule("0 0 9 * * *").unwrap(),
            schedule_text: String::new(),
            description: None,
        }
    }

    fn assign(seg: &Segment, n: u32) -> Vec<String> {
        (0..n)
            .map(|i| seg.script_for(&format!("C{i:07}")).variant.clone().unwrap())
            .collect()
    }

    #[test]
    fn variants_get_their_weights_share_of_customers() {
        let seg = experiment(&[("champion", 80), ("fast", 20)]);
        let a = assign(&seg, 100_000);
        let fast = a.iter().filter(|v| *v == "fast").count();
        // 20 % of 100,000, within 4 standard deviations (4 × 126).
        assert!((19_500..=20_500).contains(&fast), "{fast}");
        let even = assign(&experiment(&[("a", 50), ("b", 50)]), 100_000);
        let b = even.iter().filter(|v| *v == "b").count();
        assert!((49_370..=50_630).contains(&b), "{b}");
    }

    #[test]
    fn a_change_of_weights_moves_the_fewest_customers() {
        let before = assign(&experiment(&[("champion", 80), ("fast", 20)]), 50_000);
        let after = assign(&experiment(&[("champion", 70), ("fast", 30)]), 50_000);
        // Only customers moving to the variant whose weight rose.
        assert!(before
            .iter()
            .zip(&after)
            .all(|(b, a)| b == a || (b == "champion" && a == "fast")));
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        // 10 % of the customers, as few as can be.
        assert!((4_700..=5_300).contains(&moved), "{moved}");
        // A third variant takes customers from both, and only gives to itself.
        let third = assign(
            &experiment(&[("champion", 70), ("fast", 30), ("slow", 25)]),
            50_000,
        );
        assert!(after.iter().zip(&third).all(|(b, a)| b == a || a == "slow"));
        // The same experiment assigns the same way every time; another name reshuffles.
        assert_eq!(
            after,
            assign(&experiment(&[("champion", 70), ("fast", 30)]), 50_000)
        );
        let mut renamed = experiment(&[("champion", 70), ("fast", 30)]);
        renamed.experiment = Some("smb-2028".into());
        let again = assign(&renamed, 50_000);
        assert!(again.iter().zip(&after).filter(|(x, y)| x != y).count() > 10_000);
    }

    #[test]
    fn a_variant_of_weight_zero_gets_no_customer() {
        let a = assign(&experiment(&[("champion", 100), ("off", 0)]), 10_000);
        assert!(a.iter().all(|v| v == "champion"));
    }

    #[test]
    fn ibans_are_checked() {
        assert!(check_iban("FR76 3000 6000 0112 3456 7890 189").is_ok());
        assert!(check_iban("FR76 3000 6000 0112 3456 7890 188").is_err());
    }

    #[test]
    fn five_field_cron_is_accepted() {
        assert!(parse_schedule("0 9 * * Mon-Fri").is_ok());
        assert!(parse_schedule("0 0 9 * * Mon-Fri").is_ok());
        assert!(parse_schedule("every day").is_err());
    }

    #[test]
    fn relative_sqlite_paths_follow_the_config() {
        assert_eq!(
            normalise_database_url("sqlite://data/r.db", Path::new("/etc/relance")),
            "sqlite:///etc/relance/data/r.db"
        );
        assert_eq!(
            normalise_database_url("sqlite:///var/r.db", Path::new("/etc")),
            "sqlite:///var/r.db"
        );
        assert_eq!(
            normalise_database_url("postgres://h/db", Path::new("/etc")),
            "postgres://h/db"
        );
    }
}
