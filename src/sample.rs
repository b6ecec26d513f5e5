//! A seeded generator of sample portfolios, for demos and benchmarks: the same seed
//! and date always give the same files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};

/// What to generate.
#[derive(Debug, Clone)]
pub struct PortfolioSpec {
    pub customers: u32,
    pub invoices: u32,
    pub seed: u64,
    /// Invoices are issued in the 240 days before this date (or the history's days).
    pub as_of: NaiveDate,
    /// With more than 0: a history of that many days — invoices issued over the
    /// period, paid with delays that depend on the dunning step each reached, disputes,
    /// promises kept and broken, and the actions sent (see [`write_history`]).
    pub history_days: u32,
    /// No action is recorded in the history's last days (those left for relance to
    /// do: the demo's first tick catches up on them).
    pub quiet_days: u32,
    /// Segments running an experiment: their customers' history follows the ladder of
    /// the variant each is assigned to (see [`SampleExperiment`]).
    pub experiments: Vec<SampleExperiment>,
}

/// A segment's experiment as a sample history plays it: each customer of the segment
/// gets the steps of its variant's ladder, and answers them as its habit says (a late
/// payer pays a few days after the first or second reminder, a slow one after the
/// formal notice), so a variant that reminds earlier is paid earlier: a known
/// difference for the experiment report to find.
#[derive(Debug, Clone)]
pub struct SampleExperiment {
    pub segment: crate::config::Segment,
    /// Per variant: the ladder of an invoice under 2,000 and of one of 2,000 or more
    /// (`scripting::testing::ladder`).
    pub ladders: std::collections::BTreeMap<String, [Vec<crate::scripting::testing::Rung>; 2]>,
}

/// The steps a history sends, by days from the due date: (step, kind, days), and the
/// days customers answer to.
struct Ladder {
    rungs: Vec<(String, String, i64)>,
    /// The first and second contacts after the due date.
    first: i64,
    second: i64,
    /// The call, and the formal notice (else the last step).
    call: i64,
    notice: i64,
}

impl Ladder {
    fn shipped() -> Ladder {
        Ladder {
            rungs: LADDER
                .iter()
                .map(|(s, k, d)| ((*s).to_string(), (*k).to_string(), *d))
                .collect(),
            first: 3,
            second: 15,
            call: 25,
            notice: 45,
        }
    }

    fn of(rungs: &[crate::scripting::testing::Rung]) -> Ladder {
        use crate::domain::ActionKind;
        let mut after: Vec<i64> = rungs.iter().map(|r| r.day).filter(|d| *d > 0).collect();
        after.sort_unstable();
        after.dedup();
        let first = after.first().copied().unwrap_or(3);
        let second = after.get(1).copied().unwrap_or(first + 12);
        let find = |k: ActionKind| rungs.iter().find(|r| r.kind == k).map(|r| r.day);
        let notice =
            find(ActionKind::FormalNotice).unwrap_or_else(|| after.last().copied().unwrap_or(45));
        Ladder {
            rungs: rungs
                .iter()
                .map(|r| (r.step.clone(), r.kind.as_str().to_string(), r.day))
                .collect(),
            first,
            second,
            call: find(ActionKind::CallTask).unwrap_or(25),
            notice,
        }
    }
}

/// SplitMix64: tiny, fast and stable across releases (unlike a library RNG whose
/// streams may change between versions, which would change the benchmark data).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TRADES: &[&str] = &[
    "Boulangerie",
    "Garage",
    "Transports",
    "Menuiserie",
    "Imprimerie",
    "Pharmacie",
    "Hôtel",
    "Cabinet",
    "Atelier",
    "Laboratoire",
    "Brasserie",
    "Électricité",
];
const NAMES: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Roux",
];
const FORMS: &[&str] = &["SARL", "SAS", "SA", "EURL", "SASU"];
const CITIES: &[(&str, &str)] = &[
    ("75011", "Paris"),
    ("69003", "Lyon"),
    ("13002", "Marseille"),
    ("31000", "Toulouse"),
    ("33000", "Bordeaux"),
    ("59000", "Lille"),
    ("44000", "Nantes"),
    ("67000", "Strasbourg"),
    ("35000", "Rennes"),
    ("06000", "Nice"),
];
const STREETS: &[&str] = &[
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard Victor Hugo",
    "rue du Général de Gaulle",
    "place de la Mairie",
    "rue Pasteur",
];
const COLLECTORS: &[&str] = &["alice", "bruno", "chloe"];

fn luhn_digit(body: &str) -> u32 {
    // The digit that makes body + digit pass the Luhn check.
    for d in 0..10 {
        let s = format!("{body}{d}");
        let sum: u32 = s
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let v = u32::from(b - b'0');
                if i % 2 == 1 {
                    let x = v * 2;
                    if x > 9 {
                        x - 9
                    } else {
                        x
                    }
                } else {
                    v
                }
            })
            .sum();
        if sum.is_multiple_of(10) {
            return d;
        }
    }
    0
}

/// Segment of customer `i`: 70 % smb, 20 % key accounts, 10 % public sector.
fn segment(rng: &mut Rng) -> &'static str {
    match rng.below(10) {
        0..=6 => "smb",
        7 | 8 => "key_accounts",
        _ => "public_sector",
    }
}

const CUSTOMER_HEADER: &str = "external_id;name;siren;vat_number;country;segment;locale;emails;phones;address_line1;postal_code;city;credit_limit;insured;insurer_policy;insurer_buyer_ref;cover_amount;collector;tags";

/// One generated customer: its CSV line and what the invoices need of it.
struct CustomerRow {
    line: String,
    name: String,
    segment: &'static str,
    insured: bool,
    /// Its credit limit, in euros.
    limit: u64,
}

/// Customer `i`, drawn from `rng` (the same draws, in the same order, as ever: the
/// portfolios of a seed do not change).
fn customer_row(rng: &mut Rng, i: u32) -> CustomerRow {
    let name = format!(
        "{} {} {}",
        rng.pick(TRADES),
        rng.pick(NAMES),
        rng.pick(FORMS)
    );
    let body = format!("{:08}", 10_000_000 + rng.below(89_999_999));
    let siren = format!("{body}{}", luhn_digit(&body));
    let siren_n: u64 = siren.parse().unwrap_or(0);
    let vat = format!("FR{:02}{siren}", (12 + 3 * (siren_n % 97)) % 97);
    let seg = segment(rng);
    let locale = if rng.chance(10) { "en" } else { "fr" };
    let slug: String = format!("client{i}");
    let phone = format!("+336{:08}", rng.below(100_000_000));
    let (cp, city) = CITIES[rng.below(CITIES.len() as u64) as usize];
    let limit = match seg {
        "key_accounts" => 100_000 + rng.below(400) * 1000,
        _ => 5_000 + rng.below(95) * 1000,
    };
    let insured = rng.chance(40);
    let (policy, buyer, cover) = if insured {
        (
            "coface-fr".to_string(),
            format!("CF{:08}", i),
            format!("{limit}.00"),
        )
    } else {
        (String::new(), String::new(), String::new())
    };
    let tags = if rng.chance(5) { "vip" } else { "" };
    let street_no = 1 + rng.below(120);
    let street = rng.pick(STREETS);
    let collector = rng.pick(COLLECTORS);
    let line = format!(
        "C{i:07};{name};{siren};{vat};FR;{seg};{locale};compta@{slug}.example|direction@{slug}.example;{phone};{street_no} {street};{cp};{city};{limit}.00;{};{policy};{buyer};{cover};{collector};{tags}",
        if insured { "yes" } else { "no" },
    );
    CustomerRow {
        line,
        name,
        segment: seg,
        insured,
        limit,
    }
}

/// How a customer pays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payer {
    /// Around the due date, before any reminder.
    Prompt,
    /// After the first or second reminder.
    Late,
    /// After a call or the formal notice.
    Slow,
    /// Not at all, or half after the formal notice.
    Bad,
}

/// The steps of the shipped smb rules, by days from the due date: (step, kind, days).
const LADDER: &[(&str, &str, i64)] = &[
    ("courtesy", "email", -5),
    ("reminder_1", "email", 3),
    ("reminder_2", "email", 15),
    ("sms_reminder", "sms", 15),
    ("call_task", "call_task", 25),
    ("formal_notice", "formal_notice", 45),
    ("insurer_handover", "insurer_handover", 75),
];

/// Writes a portfolio with `spec.history_days` of history into `dir`: `customers.csv`,
/// `invoices.csv` (issued over the period), `history.csv` (the actions the shipped
/// rules' ladder sent, each on its day, until the invoice was paid or disputed),
/// `disputes.csv` (disputes opened in the last 30 days; older ones were settled by a
/// credit note), `promises.csv` (made after calls, kept or broken) and `payments.csv`
/// (each customer pays according to its habit: around the due date, after a
/// reminder, after a call or the formal notice, or not at all). Import them in that
/// order (promises before payments: a promise is made on invoices still open).
///
/// # Errors
/// I/O errors creating or writing the files.
pub fn write_history(spec: &PortfolioSpec, dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    use std::collections::BTreeMap;
    let mut rng = Rng(spec.seed);
    let customers = spec.customers.max(1);
    let as_of = spec.as_of;
    let days = u64::from(spec.history_days.max(1));
    let last_action_day = as_of - Duration::days(i64::from(spec.quiet_days));
    let open = |name: &str| -> std::io::Result<(PathBuf, BufWriter<File>)> {
        let p = dir.join(name);
        let f = File::create(&p)?;
        Ok((p, BufWriter::with_capacity(1 << 20, f)))
    };
    let (cpath, mut cw) = open("customers.csv")?;
    let (ipath, mut iw) = open("invoices.csv")?;
    let (hpath, mut hw) = open("history.csv")?;
    let (dpath, mut dw) = open("disputes.csv")?;
    let (mpath, mut mw) = open("promises.csv")?;
    let (ppath, mut pw) = open("payments.csv")?;
    writeln!(cw, "{CUSTOMER_HEADER}")?;
    writeln!(iw, "number;customer;issue_date;due_date;currency;amount")?;
    writeln!(hw, "customer;kind;step;sent_on;invoices;variant")?;
    writeln!(dw, "invoice;reason;opened_on")?;
    writeln!(mw, "customer;promised_date;amount;invoices;made_on;note")?;
    writeln!(pw, "id;customer;kind;date;currency;amount;reference")?;
    let mut counts = [0u64; 6];
    let mut number = 0u32;
    let money = |cents: u64| format!("{}.{:02}", cents / 100, cents % 100);
    let shipped = Ladder::shipped();
    // Per experiment segment and variant: the ladders of small and large invoices.
    let ladders: BTreeMap<(String, String), [Ladder; 2]> = spec
        .experiments
        .iter()
        .flat_map(|e| {
            e.ladders.iter().map(|(v, [small, large])| {
                (
                    (e.segment.name.clone(), v.clone()),
                    [Ladder::of(small), Ladder::of(large)],
                )
            })
        })
        .collect();
    for i in 1..=customers {
        let c = customer_row(&mut rng, i);
        let variant = spec
            .experiments
            .iter()
            .find(|e| e.segment.name == c.segment)
            .and_then(|e| e.segment.script_for(&format!("C{i:07}")).variant.clone());
        let of_variant = variant
            .as_ref()
            .and_then(|v| ladders.get(&(c.segment.to_string(), v.clone())));
        writeln!(cw, "{}", c.line)?;
        counts[0] += 1;
        let payer = match rng.below(100) {
            0..=44 => Payer::Prompt,
            45..=79 => Payer::Late,
            80..=94 => Payer::Slow,
            _ => Payer::Bad,
        };
        let n = spec.invoices / customers + u32::from(i <= spec.invoices % customers);
        // (day, step, kind) → invoices, for this customer's actions.
        let mut actions: BTreeMap<(NaiveDate, String, String), Vec<String>> = BTreeMap::new();
        for _ in 0..n {
            number += 1;
            let inv = format!("F{number:08}");
            let issue = as_of - Duration::days(rng.below(days) as i64);
            let terms = [30, 45, 60][rng.below(3) as usize];
            let due = issue + Duration::days(terms);
            let cents = if c.segment == "key_accounts" {
                50_000 + rng.below(2_000_000)
            } else if rng.chance(80) {
                5_000 + rng.below(300_000)
            } else {
                300_000 + rng.below(1_700_000)
            };
            writeln!(iw, "{inv};C{i:07};{issue};{due};EUR;{}", money(cents))?;
            counts[1] += 1;
            let ladder = of_variant.map_or(&shipped, |l| &l[usize::from(cents >= 200_000)]);
            let at = |d: i64| due + Duration::days(d);
            // When it is paid (None: never), and how much.
            let (mut paid_on, mut paid) = match payer {
                Payer::Prompt => (Some(at(rng.below(12) as i64 - 10)), cents),
                Payer::Late => {
                    let step = if rng.chance(60) {
                        ladder.first
                    } else {
                        ladder.second
                    };
                    (Some(at(step + 2 + rng.below(9) as i64)), cents)
                }
                Payer::Slow => (Some(at(ladder.notice + 3 + rng.below(13) as i64)), cents),
                Payer::Bad => {
                    if rng.chance(30) {
                        (
                            Some(at(ladder.notice + 5 + rng.below(20) as i64)),
                            cents / 2,
                        )
                    } else {
                        (None, 0)
                    }
                }
            };
            if paid_on.is_some_and(|d| d < issue) {
                paid_on = Some(issue);
            }
            // A dispute stops the dunning; settled by a credit note after 30 days.
            let disputed = (rng.chance(3)).then(|| at(5 + rng.below(16) as i64));
            if let Some(d) = disputed {
                if paid_on.is_none_or(|p| p > d) {
                    if d <= as_of && d + Duration::days(30) > as_of {
                        writeln!(
                            dw,
                            "{inv};{};{d}",
                            rng.pick(&[
                                "goods damaged",
                                "price disagreement",
                                "not delivered",
                                "invoice sent twice"
                            ])
                        )?;
                        counts[3] += 1;
                        paid_on = None;
                    } else {
                        paid_on = Some(d + Duration::days(30));
                        paid = cents;
                    }
                }
            }
            let stop = disputed
                .into_iter()
                .chain(paid_on)
                .min()
                .unwrap_or(NaiveDate::MAX);
            // A promise made after the call: kept (paid by its date) or broken.
            let call_day = at(ladder.call);
            if payer == Payer::Slow
                && cents >= 200_000
                && call_day < stop
                && call_day < as_of
                && rng.chance(50)
            {
                let promised = call_day + Duration::days(10);
                if rng.chance(60) {
                    paid_on = Some(call_day + Duration::days(3 + rng.below(8) as i64));
                }
                writeln!(
                    mw,
                    "C{i:07};{promised};{};{inv};{};promised on the phone",
                    money(cents),
                    call_day + Duration::days(1)
                )?;
                counts[4] += 1;
            }
            let stop = disputed
                .into_iter()
                .chain(paid_on)
                .min()
                .unwrap_or(NaiveDate::MAX);
            for (step, kind, d) in &ladder.rungs {
                let day = at(*d);
                let applies = match step.as_str() {
                    "call_task" => cents >= 200_000,
                    "insurer_handover" => c.insured,
                    _ => true,
                };
                if applies && day >= issue && day < stop && day <= last_action_day {
                    actions
                        .entry((day, step.clone(), kind.clone()))
                        .or_default()
                        .push(inv.clone());
                }
            }
            if let Some(p) = paid_on.filter(|p| *p <= as_of) {
                counts[5] += 1;
                let kind = if disputed.is_some_and(|d| d < p) {
                    "credit_note"
                } else {
                    "payment"
                };
                writeln!(
                    pw,
                    "P{:08};C{i:07};{kind};{p};EUR;{};VIR SEPA {inv}",
                    counts[5],
                    money(paid)
                )?;
            }
        }
        let _ = c.limit;
        for ((day, step, kind), invoices) in actions {
            writeln!(
                hw,
                "C{i:07};{kind};{step};{day};{};{}",
                invoices.join("|"),
                variant.as_deref().unwrap_or("")
            )?;
            counts[2] += 1;
        }
        let _ = &c.name;
    }
    for w in [&mut cw, &mut iw, &mut hw, &mut dw, &mut mw, &mut pw] {
        w.flush()?;
    }
    Ok(vec![
        (cpath, counts[0]),
        (ipath, counts[1]),
        (hpath, counts[2]),
        (dpath, counts[3]),
        (mpath, counts[4]),
        (ppath, counts[5]),
    ])
}

/// The order the files of a generated history are imported in.
pub const HISTORY_FILES: [crate::import::ImportKind; 6] = [
    crate::import::ImportKind::Customers,
    crate::import::ImportKind::Invoices,
    crate::import::ImportKind::History,
    crate::import::ImportKind::Disputes,
    crate::import::ImportKind::Promises,
    crate::import::ImportKind::Payments,
];

/// Writes `customers.csv`, `invoices.csv` and `payments.csv` into `dir`.
///
/// # Errors
/// I/O errors creating or writing the files.
pub fn write_portfolio(spec: &PortfolioSpec, dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(spec.seed);
    let customers = spec.customers.max(1);

    if spec.history_days > 0 {
        return write_history(spec, dir);
    }
    let cpath = dir.join("customers.csv");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&cpath)?);
    writeln!(w, "{CUSTOMER_HEADER}")?;
    let mut names = Vec::with_capacity(customers as usize);
    for i in 1..=customers {
        let c = customer_row(&mut rng, i);
        writeln!(w, "{}", c.line)?;
        names.push(c.name);
    }
    w.flush()?;

    let ipath = dir.join("invoices.csv");
    let ppath = dir.join("payments.csv");
    let mut iw = BufWriter::with_capacity(1 << 20, File::create(&ipath)?);
    let mut pw = BufWriter::with_capacity(1 << 20, File::create(&ppath)?);
    writeln!(iw, "number;customer;issue_date;due_date;currency;amount")?;
    writeln!(pw, "id;customer;kind;date;currency;amount;reference")?;
    let mut payments = 0u64;
    for n in 1..=spec.invoices {
        let c = 1 + rng.below(u64::from(customers));
        let issue = spec.as_of - Duration::days(rng.below(240) as i64);
        let terms = [30, 45, 60][rng.below(3) as usize];
        let due = issue + Duration::days(terms);
        // Mostly small invoices, some large: 50 to 20,000 euros.
        let cents = if rng.chance(80) {
            5_000 + rng.below(300_000)
        } else {
            300_000 + rng.below(1_700_000)
        };
        let number = format!("F{n:08}");
        writeln!(
            iw,
            "{number};C{c:07};{issue};{due};EUR;{}.{:02}",
            cents / 100,
            cents % 100
        )?;
        // A fifth of the invoices already past due have received a payment.
        if due < spec.as_of && rng.chance(20) {
            payments += 1;
            let paid = if rng.chance(75) { cents } else { cents / 2 };
            let late = rng.below(30) as i64;
            let date = (due + Duration::days(late - 10)).max(issue).min(spec.as_of);
            let reference = if rng.chance(70) {
                format!("VIR SEPA {number}")
            } else {
                format!("VIR {}", names[(c - 1) as usize].to_uppercase())
            };
            let kind = if rng.chance(5) {
                "credit_note"
            } else {
                "payment"
            };
            writeln!(
                pw,
                "P{payments:08};C{c:07};{kind};{date};EUR;{}.{:02};{reference}",
                paid / 100,
                paid % 100
            )?;
        }
    }
    iw.flush()?;
    pw.flush()?;
    Ok(vec![
        (cpath, u64::from(customers)),
        (ipath, u64::from(spec.invoices)),
        (ppath, payments),
    ])
}

/// Loads a generated portfolio of `customers` and `invoices` (seed 7, as of `as_of`) into
/// `store` through the CSV import: the sample `relance serve` starts with on an empty
/// ledger, and the one `relance rules check` renders templates with.
///
/// # Errors
/// The scratch files cannot be written, or the import fails.
pub async fn seed(
    store: &dyn crate::store::Store,
    customers: u32,
    invoices: u32,
    as_of: NaiveDate,
    history_days: u32,
) -> Result<(), crate::import::ImportError> {
    use crate::import::{import_file, ImportError, ImportKind, ImportOptions};
    let dir = std::env::temp_dir().join(format!(
        "relance-sample-{}-{customers}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    let spec = PortfolioSpec {
        customers,
        invoices,
        seed: 7,
        as_of,
        history_days,
        quiet_days: if history_days > 0 { 7 } else { 0 },
        experiments: Vec::new(),
    };
    write_portfolio(&spec, &dir).map_err(|e| ImportError::File {
        file: dir.display().to_string(),
        message: format!("cannot write the sample portfolio: {e}"),
    })?;
    let opts = ImportOptions::default();
    let mut result = Ok(());
    let kinds: &[ImportKind] = if history_days > 0 {
        &HISTORY_FILES
    } else {
        &[
            ImportKind::Customers,
            ImportKind::Invoices,
            ImportKind::Payments,
        ]
    };
    for &kind in kinds {
        let file = dir.join(format!("{}.csv", kind.as_str()));
        if let Err(e) = import_file(store, kind, &file, &opts).await {
            result = Err(e);
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The size of the generated portfolio scripts are tried on (`relance rules check`,
/// reloads) and templates rendered with.
pub const CHECK_CUSTOMERS: u32 = 300;
pub const CHECK_INVOICES: u32 = 1500;

/// Why a sample portfolio could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0}")]
    Scratch(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
}

/// The accounts of a generated sample portfolio as of `as_of`, read back through a
/// scratch SQLite ledger that is removed afterwards: the customers `relance rules
/// check` and rule reloads try scripts on, and render templates with.
///
/// # Errors
/// The scratch ledger cannot be created, written or read.
pub async fn accounts(
    customers: u32,
    invoices: u32,
    as_of: NaiveDate,
) -> Result<Vec<crate::domain::Account>, SampleError> {
    use futures_util::StreamExt;
    let dir = std::env::temp_dir().join(format!(
        "relance-check-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| SampleError::Scratch(format!("cannot create {}: {e}", dir.display())))?;
    let result = async {
        let url = crate::config::DatabaseUrl::new(format!(
            "sqlite://{}",
            dir.join("sample.db").display()
        ));
        let store = crate::store::open(&url, 2).await?;
        store.migrate().await?;
        seed(store.as_ref(), customers, invoices, as_of, 0).await?;
        let filter = crate::store::AccountFilter::default();
        let mut out = Vec::new();
        let mut stream = store.accounts(&filter, 200);
        while let Some(batch) = stream.next().await {
            out.extend(batch?);
        }
        drop(stream);
        store.close().await;
        Ok::<_, SampleError>(out)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The experiments of `config` as a sample history plays them: for each segment with
/// variants, the ladder each variant's script makes an invoice climb (one under 2,000,
/// one of 5,000). A variant whose script does not compile gets the shipped ladder.
pub fn experiments(config: &crate::config::Config) -> Vec<SampleExperiment> {
    use crate::scripting::{registry, testing, Evaluator, Limits};
    let engine = crate::scripting::engine::build(
        std::sync::Arc::new(config.calendar.clone()),
        &Limits::default(),
    );
    let (set, _) = registry::load_all(config, &engine);
    let evaluator = Evaluator::new(config, Limits::default());
    let currency = config.company.currency;
    config
        .segments
        .values()
        .filter(|s| s.has_variants())
        .map(|seg| {
            let ladders = seg
                .scripts
                .iter()
                .filter_map(|script| {
                    let v = script.variant.clone()?;
                    let rule = set.script(&seg.name, Some(&v))?;
                    let one = registry::RuleSet::only(rule.clone());
                    let at = |amount: i64| {
                        testing::ladder(
                            &one,
                            &evaluator,
                            &seg.name,
                            rust_decimal::Decimal::from(amount),
                            false,
                            currency,
                        )
                    };
                    Some((v, [at(500), at(5000)]))
                })
                .collect();
            SampleExperiment {
                segment: seg.clone(),
                ladders,
            }
        })
        .collect()
}

/// The rows of a CSV file the sample wrote (`;`-separated, with a header).
fn read_sample_file(path: &Path) -> std::io::Result<Vec<Vec<String>>> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(path)
        .map_err(std::io::Error::other)?;
    r.records()
        .map(|rec| {
            rec.map(|rec| rec.iter().map(str::to_string).collect())
                .map_err(std::io::Error::other)
        })
        .collect()
}

/// Writes the portfolio's `customers.csv`, `invoices.csv` and `payments.csv` in `dir` as
/// one FEC, `FEC{as_of}.txt` (with an `EcheanceDate` column): each invoice in the sales
/// journal, each payment in the bank journal, each credit note in the sales journal, a
/// payment naming one invoice and paying it whole lettered with it. Imported into an
/// empty ledger (`relance import fec`), it gives the ledger the CSV files give.
///
/// # Errors
/// The files cannot be read or written.
pub fn write_fec(dir: &Path, as_of: NaiveDate) -> std::io::Result<(PathBuf, u64)> {
    use crate::import::fec::write::{fec, Credit, Invoice};
    use rust_decimal::Decimal;
    let read = |name: &str| read_sample_file(&dir.join(name));
    let bad = |what: &str| std::io::Error::other(format!("sample file: bad {what}"));
    let customers = read("customers.csv")?;
    let names: std::collections::HashMap<&str, &str> = customers
        .iter()
        .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
        .collect();
    let invoices = read("invoices.csv")?;
    let payments = read("payments.csv")?;
    let date = |s: &str| s.parse::<NaiveDate>().map_err(|_| bad("date"));
    let dec = |s: &str| s.parse::<Decimal>().map_err(|_| bad("amount"));
    let mut inv = Vec::with_capacity(invoices.len());
    let mut amounts = std::collections::HashMap::new();
    for i in &invoices {
        let [number, customer, issue, due, _currency, amount] = i.as_slice() else {
            return Err(bad("invoice"));
        };
        amounts.insert(number.as_str(), (customer.as_str(), dec(amount)?));
        inv.push(Invoice {
            number,
            customer,
            name: names.get(customer.as_str()).copied().unwrap_or(customer),
            issue: date(issue)?,
            due: date(due)?,
            amount: dec(amount)?,
        });
    }
    let mut credits = Vec::with_capacity(payments.len());
    for p in &payments {
        let [id, customer, kind, day, _currency, amount, reference] = p.as_slice() else {
            return Err(bad("payment"));
        };
        let amount = dec(amount)?;
        let named = reference.strip_prefix("VIR SEPA ");
        let letter_with = named.filter(|n| {
            amounts
                .get(n)
                .is_some_and(|(c, a)| *c == customer.as_str() && *a == amount)
        });
        credits.push(Credit {
            id,
            customer,
            name: names.get(customer.as_str()).copied().unwrap_or(customer),
            date: date(day)?,
            amount,
            credit_note: kind == "credit_note",
            label: reference,
            letter_with,
        });
    }
    let path = dir.join(format!("FEC{}.txt", as_of.format("%Y%m%d")));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    fec(&mut w, &inv, &credits)?;
    w.flush()?;
    let lines = 3 * inv.len() as u64 + 2 * credits.len() as u64;
    Ok((path, lines))
}

/// Writes the portfolio's payments (not its credit notes) in `dir` as one bank
/// statement, `camt053-{as_of}.xml` (ISO 20022 camt.053.001.02): a payment naming one
/// invoice carries that invoice's creditor reference (ISO 11649), the others their text;
/// the debtor is the customer's name.
///
/// # Errors
/// The files cannot be read or written.
pub fn write_camt(dir: &Path, as_of: NaiveDate) -> std::io::Result<(PathBuf, u64)> {
    use crate::import::camt::write::{camt053, Credit};
    use rust_decimal::Decimal;
    let read = |name: &str| read_sample_file(&dir.join(name));
    let bad = |what: &str| std::io::Error::other(format!("sample file: bad {what}"));
    let customers = read("customers.csv")?;
    let names: std::collections::HashMap<&str, &str> = customers
        .iter()
        .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
        .collect();
    let payments = read("payments.csv")?;
    let mut credits = Vec::with_capacity(payments.len());
    for p in &payments {
        let [id, customer, kind, day, currency, amount, reference] = p.as_slice() else {
            return Err(bad("payment"));
        };
        if kind == "credit_note" {
            continue;
        }
        credits.push(Credit {
            bank_ref: id,
            date: day.parse().map_err(|_| bad("date"))?,
            amount: amount.parse::<Decimal>().map_err(|_| bad("amount"))?,
            currency,
            debtor: names.get(customer.as_str()).copied().unwrap_or(customer),
            structured: reference
                .strip_prefix("VIR SEPA ")
                .and_then(crate::domain::sepa::creditor_reference),
            text: reference,
        });
    }
    let path = dir.join(format!("camt053-{as_of}.xml"));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    camt053(
        &mut w,
        &format!("STMT-{as_of}"),
        "FR7630006000011234567890189",
        as_of,
        &credits,
    )?;
    w.flush()?;
    Ok((path, credits.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_digits_make_valid_sirens() {
        let body = "73282932";
        let siren = format!("{body}{}", luhn_digit(body));
        assert!(crate::domain::Siren::parse(&siren).is_ok());
    }
}
