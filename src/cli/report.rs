//! `relance report`: views over the ledger for credit managers.

use std::io::Write;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};

use super::{exit, load_config, open_store, parse_date_arg, today, Cli, CliError, OutputFormat};
use crate::domain::Locale;
use crate::reports::{ReportKind, ReportQuery};
use crate::store::reports::ReportFilter;

/// What every report's help ends with.
macro_rules! filters_help {
    () => {
        "\n\nFilters: --segment, --collector (the customers assigned to a collector), --currency
(amounts are never summed across currencies: each currency has its own lines).
Formats: table (the terminal), json (one document, described by docs/schemas/reports.v1.json),
csv (--table picks the table; French locale: ';' separators and decimal commas),
svg and png (the chart; --out FILE, or redirect).
The formulas are in docs/reports.md."
    };
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The aged balance (balance âgée): open amounts by days past due, per customer and in total
    #[command(after_help = concat!(
        "Examples:\n  relance report aging\n  relance report aging --as-of 2026-06-30 --segment smb --top 50\n  relance report aging --format csv --table customers --locale fr > balance-agee.csv\n  relance report aging --format svg --out aging.svg\n\n",
        "Buckets: not due, 1-30, 31-60, 61-90, 91-120 and over 120 days past due (reports.aging_buckets\nin the configuration). Disputed, paused, promised and handed-over amounts are shown apart\n(each is also in its bucket). As of today the totals are relance ledger's.",
        filters_help!()
    ))]
    Aging(PointArgs),
    /// Days sales outstanding per month (count-back and simple), best possible DSO, days delinquent
    #[command(after_help = concat!("Examples:\n  relance report dso\n  relance report dso --from 2026-01-01 --to 2026-11-30 --format csv\n  relance report dso --format png --out dso.png\n\nThe period defaults to the twelve months up to --to (default: today).", filters_help!()))]
    Dso(PeriodArgs),
    /// Collection effectiveness index per month
    #[command(after_help = concat!("Examples:\n  relance report cei\n  relance report cei --from 2026-01-01 --to 2026-06-30 --segment key_accounts\n\nCEI = (opening receivables + sales - closing receivables)\n    / (opening receivables + sales - closing current receivables) x 100", filters_help!()))]
    Cei(PeriodArgs),
    /// What each dunning step earns: per segment, rule version and step
    #[command(after_help = concat!("Examples:\n  relance report effectiveness\n  relance report effectiveness --from 2026-09-01 --to 2026-11-30 --format json\n  relance report effectiveness --format svg --out steps.svg\n\nActions sent in the period; each payment is attributed to the last action sent on or\nbefore its date that named the invoice (docs/reports.md).", filters_help!()))]
    Effectiveness(PeriodArgs),
    /// Customers over their credit limit or their insurer's cover; concentration of overdue
    #[command(after_help = concat!("Examples:\n  relance report risk\n  relance report risk --as-of 2026-10-31 --format csv --table concentration", filters_help!()))]
    Risk(PointArgs),
    /// Per collector: portfolio, call tasks, promises obtained and kept, amounts collected after calls
    #[command(after_help = concat!("Examples:\n  relance report collectors\n  relance report collectors --collector alice --from 2026-11-01 --to 2026-11-30", filters_help!()))]
    Collectors(PeriodArgs),
    /// Champion / challenger: a segment's variants compared, with 95 % confidence intervals and a verdict
    #[command(after_help = concat!("Examples:\n  relance report experiment --segment smb\n  relance report experiment --segment smb --from 2026-09-01 --to 2026-11-30 --format json\n  relance report experiment --segment smb --format svg --out experiment.svg\n\n",
        "Compares the variants of segments.SEGMENT.variants on the invoices that fell due in the\nperiod (and at least 30 days before --to): share paid within 14 and 30 days of the due date,\ndays to pay, CEI, contacts per 1,000 collected, disputes. Each figure has its 95 % interval\n(delta method, customers as clusters); each challenger is compared with the variant named\nchampion (else the largest weight). The method is in docs/rules-experiments.md.\nExit code 2 when the segment has no variants.", filters_help!()))]
    Experiment(PeriodArgs),
    /// The monthly management report as one PDF: aging, DSO and CEI trends, effectiveness, risk
    #[command(
        after_help = "Examples:\n  relance report monthly --out rapport-2026-11.pdf\n  relance report monthly --format pdf > rapport.pdf\n  relance report monthly --as-of 2026-10-31 --locale en --out report-2026-10.pdf\n\nThe month is the one --as-of (default: today) falls in; trends cover the twelve months\nup to it. reports.monthly in the configuration emails it to the credit managers."
    )]
    Monthly(MonthlyArgs),
    /// Emails the monthly report now to reports.monthly's recipients (once per month and recipient)
    #[command(
        after_help = "Examples:\n  relance report send\n  relance report send --period 2026-11 --format json\n\nPlans the report of --period (default: last month) for every recipient of\nreports.monthly who has not had it yet, then sends every report delivery that is due,\nthrough channels.email (else into the outbox folder's reports/), and prints each outcome.\n`relance serve` does the same on the reports.monthly schedule. A recipient who already\nhad the period's report is not sent it again.\n\nExit codes: 0 all sent (or nothing to send), 1 a delivery failed or will be retried,\n3 no monthly report configured."
    )]
    Send(SendArgs),
    /// The monthly reports emailed: period, recipient, status, attempts, Message-ID, PDF digest
    #[command(
        after_help = "Examples:\n  relance report deliveries\n  relance report deliveries --limit 200 --format json\n\nMost recent first. Reads only."
    )]
    Deliveries(DeliveriesArgs),
    /// Overdue insured invoices approaching their insurer's declaration deadline without a handover
    #[command(
        after_help = "Examples:\n  relance report deadlines\n  relance report deadlines --within 15 --as-of 2026-11-30 --format json\n\nThe deadline is the invoice's due date plus the insurer's declaration_deadline_days\n(insurers: in the configuration; the customer's insurer_policy names one). Invoices\nalready handed over (an insurer_handover action planned, sent or held) are left out.\nA negative number of days means the deadline has passed: the cover may be lost."
    )]
    Deadlines(DeadlinesArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Svg,
    Png,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocaleArg {
    Fr,
    En,
}

impl From<LocaleArg> for Locale {
    fn from(l: LocaleArg) -> Locale {
        match l {
            LocaleArg::Fr => Locale::Fr,
            LocaleArg::En => Locale::En,
        }
    }
}

/// Filters and output, common to every report.
#[derive(Debug, Args)]
pub struct Common {
    /// Only customers of this segment
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// Only customers assigned to this collector
    #[arg(long, value_name = "NAME")]
    pub collector: Option<String>,
    /// Only invoices in this currency (ISO 4217)
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
    /// How many customers the lists show, 1 to 10000 [default: reports.top, 20]
    #[arg(long, value_name = "N", value_parser = parse_top)]
    pub top: Option<usize>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// For csv: which table (the first one by default)
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Language of labels, amounts and CSV decimals [default: reports.locale, fr]
    #[arg(long, value_enum)]
    pub locale: Option<LocaleArg>,
    /// Write to this file rather than to standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn parse_top(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| format!("'{s}' is not a number from 1 to 10000"))
}

#[derive(Debug, Args)]
pub struct PointArgs {
    /// As of this date [default: today in the configured time zone]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct PeriodArgs {
    /// First day of the period [default: the first day of the month eleven months before --to]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub from: Option<NaiveDate>,
    /// Last day of the period [default: today in the configured time zone]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub to: Option<NaiveDate>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct MonthlyArgs {
    /// A day of the month to report on [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// Only customers of this segment
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// Language of the report [default: reports.locale, fr]
    #[arg(long, value_enum)]
    pub locale: Option<LocaleArg>,
    /// The PDF file to write
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The monthly report is a PDF
    #[arg(long, value_enum, default_value_t = MonthlyFormat::Pdf)]
    pub format: MonthlyFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonthlyFormat {
    Pdf,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The month to report on, YYYY-MM [default: last month]
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_period)]
    pub period: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// How many to list, 1 to 10000
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = parse_top)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

fn parse_period(s: &str) -> Result<String, String> {
    crate::outbox::reports::period_start(s)
        .filter(|_| s.len() == 7)
        .map(|d| d.format("%Y-%m").to_string())
        .ok_or_else(|| format!("'{s}' is not a month as YYYY-MM (2026-11)"))
}

#[derive(Debug, Args)]
pub struct DeadlinesArgs {
    /// Only deadlines within this many days (passed ones always show)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub within: i64,
    /// As of this date [default: today in the configured time zone]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) async fn report(cli: &Cli, cmd: &ReportCommand) -> Result<u8, CliError> {
    match cmd {
        ReportCommand::Deadlines(args) => deadlines(cli, args).await,
        ReportCommand::Monthly(args) => monthly(cli, args).await,
        ReportCommand::Send(args) => send(cli, args).await,
        ReportCommand::Deliveries(args) => deliveries(cli, args).await,
        ReportCommand::Aging(a) => point(cli, ReportKind::Aging, a).await,
        ReportCommand::Risk(a) => point(cli, ReportKind::Risk, a).await,
        ReportCommand::Dso(a) => period(cli, ReportKind::Dso, a).await,
        ReportCommand::Cei(a) => period(cli, ReportKind::Cei, a).await,
        ReportCommand::Effectiveness(a) => period(cli, ReportKind::Effectiveness, a).await,
        ReportCommand::Collectors(a) => period(cli, ReportKind::Collectors, a).await,
        ReportCommand::Experiment(a) => period(cli, ReportKind::Experiment, a).await,
    }
}

/// The query of a report, checked against the configuration.
fn query(
    config: &crate::config::Config,
    as_of: NaiveDate,
    from: Option<NaiveDate>,
    common: &Common,
) -> Result<ReportQuery, CliError> {
    let filter = ReportFilter {
        segment: common.segment.clone(),
        collector: common.collector.clone(),
        currency: common.currency.clone(),
        customer: None,
    };
    ReportQuery::build(config, as_of, from, filter, common.top, today(config))
        .map_err(|e| CliError::Usage(e.to_string()))
}

async fn point(cli: &Cli, kind: ReportKind, a: &PointArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let as_of = a.as_of.unwrap_or_else(|| today(&config));
    let q = query(&config, as_of, None, &a.common)?;
    run(&config, kind, &q, &a.common).await
}

async fn period(cli: &Cli, kind: ReportKind, a: &PeriodArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let to = a.to.unwrap_or_else(|| today(&config));
    let q = query(&config, to, a.from, &a.common)?;
    run(&config, kind, &q, &a.common).await
}

/// A spinner on standard error while the ledger is read, when it is a terminal.
fn spinner(what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

async fn run(
    config: &crate::config::Config,
    kind: ReportKind,
    q: &ReportQuery,
    common: &Common,
) -> Result<u8, CliError> {
    let locale: Locale = common.locale.map_or(config.reports.locale, Into::into);
    let binary = matches!(common.format, ReportFormat::Png);
    if binary && common.out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::Usage(
            "a PNG is not for the terminal: name a file with --out FILE, or redirect the output"
                .into(),
        ));
    }
    let store = open_store(config).await?;
    let pb = spinner(&format!("{} report: reading the ledger", kind.as_str()));
    let result = crate::reports::run(store.as_ref(), config, kind, q).await;
    pb.finish_and_clear();
    store.close().await;
    let report = result.map_err(|e| match e {
        crate::reports::ReportError::Invalid(m) => CliError::Usage(m),
        crate::reports::ReportError::Store(s) => CliError::Store(s),
    })?;
    let bytes: Vec<u8> = match common.format {
        ReportFormat::Json => {
            let mut v = serde_json::to_vec_pretty(&report).unwrap_or_default();
            v.push(b'\n');
            v
        }
        ReportFormat::Table => {
            let tables = report.tables(kind);
            let texts: Vec<String> = tables.iter().map(|t| t.to_text(locale)).collect();
            texts.join("\n").into_bytes()
        }
        ReportFormat::Csv => {
            let tables = report.tables(kind);
            let table = match &common.table {
                None => tables.first(),
                Some(k) => tables.iter().find(|t| t.key == k),
            };
            let Some(table) = table else {
                let keys: Vec<&str> = tables.iter().map(|t| t.key).collect();
                return Err(CliError::Usage(format!(
                    "the {} report has no table '{}' (it has {})",
                    kind.as_str(),
                    common.table.as_deref().unwrap_or_default(),
                    keys.join(", ")
                )));
            };
            table.to_csv(locale).into_bytes()
        }
        ReportFormat::Svg => crate::charts::svg(&report, kind, locale)
            .map_err(|e| CliError::Failure(e.to_string()))?
            .into_bytes(),
        ReportFormat::Png => crate::charts::png(&report, kind, locale)
            .map_err(|e| CliError::Failure(e.to_string()))?,
    };
    write_out(common.out.as_ref(), &bytes)?;
    Ok(exit::OK)
}

fn write_out(out: Option<&PathBuf>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes)
                .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(bytes);
            let _ = stdout.flush();
        }
    }
    Ok(())
}

async fn monthly(cli: &Cli, a: &MonthlyArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let locale: Locale = a.locale.map_or(config.reports.locale, Into::into);
    if a.out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::Usage(
            "a PDF is not for the terminal: name a file with --out FILE, or redirect the output"
                .into(),
        ));
    }
    let as_of = a.as_of.unwrap_or_else(|| today(&config));
    let common = Common {
        segment: a.segment.clone(),
        collector: None,
        currency: None,
        top: None,
        format: ReportFormat::Table,
        table: None,
        locale: a.locale,
        out: None,
    };
    let q = query(&config, as_of, None, &common)?;
    let store = open_store(&config).await?;
    let pb = spinner("monthly report: reading the ledger");
    let pdf = crate::charts::monthly_pdf(store.as_ref(), &config, &q, locale).await;
    pb.finish_and_clear();
    store.close().await;
    let pdf = pdf.map_err(|e| CliError::Failure(e.to_string()))?;
    write_out(a.out.as_ref(), &pdf)?;
    Ok(exit::OK)
}

async fn send(cli: &Cli, a: &SendArgs) -> Result<u8, CliError> {
    use crate::outbox::reports::ReportStep;
    let config = std::sync::Arc::new(load_config(cli)?);
    let Some(monthly) = &config.reports.monthly else {
        return Err(CliError::Config(crate::config::ConfigErrors {
            source: config.source.clone(),
            issues: vec![crate::config::Issue::error(
                "reports.monthly",
                "no monthly report is configured: add reports.monthly with its recipients (and a schedule) to send it",
            )],
        }));
    };
    let period = a.period.clone().unwrap_or_else(|| {
        let last = crate::reports::first_of_month(today(&config))
            .pred_opt()
            .unwrap_or_else(|| today(&config));
        last.format("%Y-%m").to_string()
    });
    let store = open_store(&config).await?;
    let recipients: Vec<(String, String)> = monthly
        .recipients
        .iter()
        .map(|r| {
            let r = r.to_string();
            let key = crate::scheduler::reports::delivery_key("monthly", &period, &r);
            (r, key)
        })
        .collect();
    let now = chrono::Utc::now();
    let result = async {
        let planned = store
            .plan_report_deliveries("monthly", &period, now, &recipients, now)
            .await?;
        let d = crate::runtime::report_dispatcher_for(&config, store.clone())?;
        let mut steps = Vec::new();
        loop {
            let pb = spinner("monthly report: rendering and sending");
            let step = d.try_send_once().await;
            pb.finish_and_clear();
            match step? {
                ReportStep::Idle => break,
                s => steps.push(s),
            }
        }
        Ok::<_, CliError>((planned, steps))
    }
    .await;
    store.close().await;
    let (planned, steps) = result?;
    let failed = steps.iter().any(|s| !matches!(s, ReportStep::Sent { .. }));
    match a.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"period": period, "planned": planned, "steps": steps})
        ),
        OutputFormat::Text => {
            let already = recipients.len() as u64 - planned;
            if already > 0 {
                println!("{period}: {already} recipient(s) already had this report (relance report deliveries)");
            }
            for s in &steps {
                match s {
                    ReportStep::Sent {
                        period,
                        recipient,
                        provider_ref,
                        ..
                    } => {
                        println!("{period} to {recipient}: sent ({provider_ref})")
                    }
                    ReportStep::Retrying { id, error } => {
                        println!("delivery {id}: not sent, will retry ({error})")
                    }
                    ReportStep::Dead { id, error } => println!("delivery {id}: given up ({error})"),
                    ReportStep::LeaseLost { id } => {
                        println!("delivery {id}: taken over by another worker")
                    }
                    ReportStep::Idle => {}
                }
            }
            if steps.is_empty() {
                println!("nothing to send");
            }
        }
    }
    Ok(if failed { exit::FAILURE } else { exit::OK })
}

async fn deliveries(cli: &Cli, a: &DeliveriesArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let rows = store.report_deliveries(a.limit as i64).await;
    store.close().await;
    let rows = rows?;
    match a.format {
        OutputFormat::Json => {
            for r in &rows {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        OutputFormat::Text => {
            if rows.is_empty() {
                println!("no report emailed yet (reports.monthly; relance report send)");
                return Ok(exit::OK);
            }
            let w = rows
                .iter()
                .map(|r| r.recipient.chars().count())
                .max()
                .unwrap_or(0)
                .max("RECIPIENT".len());
            println!(
                "{:>5}  {:<8} {:<7}  {:<w$}  {:<9} {:>3}  {:<16}  DETAIL",
                "ID", "REPORT", "PERIOD", "RECIPIENT", "STATUS", "TRY", "SENT"
            );
            for r in &rows {
                let sent = r.sent_at.map_or_else(String::new, |t| {
                    t.with_timezone(&config.timezone)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                });
                let detail = match (&r.last_error, &r.document_sha256) {
                    (Some(e), _) if r.status != "sent" => e.clone(),
                    (_, Some(sha)) => format!("pdf sha256 {}…", &sha[..sha.len().min(12)]),
                    _ => String::new(),
                };
                println!(
                    "{:>5}  {:<8} {:<7}  {:<w$}  {:<9} {:>3}  {:<16}  {}",
                    r.id, r.report, r.period, r.recipient, r.status, r.attempts, sent, detail
                );
            }
        }
    }
    Ok(exit::OK)
}

async fn deadlines(cli: &Cli, args: &DeadlinesArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    let rows = crate::reports::insurer_deadlines(store.as_ref(), &config, as_of, args.within).await;
    store.close().await;
    let rows = rows?;
    match args.format {
        OutputFormat::Json => {
            for r in &rows {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        OutputFormat::Text => {
            if rows.is_empty() {
                println!(
                    "no insured invoice within {} days of its declaration deadline as of {as_of}",
                    args.within
                );
            } else {
                println!(
                    "{:>9}  {:<10}  {:<10}  {:<22}  {:<12}  {:<10}  {:>14}  INSURER (POLICY)",
                    "DAYS LEFT", "DEADLINE", "CUSTOMER", "NAME", "INVOICE", "DUE", "OPEN"
                );
                for r in &rows {
                    println!(
                        "{:>9}  {}  {:<10}  {:<22}  {:<12}  {}  {:>14}  {}{}{}",
                        r.days_left,
                        r.deadline,
                        r.customer,
                        r.customer_name.chars().take(22).collect::<String>(),
                        r.invoice,
                        r.due_date,
                        format!("{} {}", r.open_amount, r.currency),
                        r.insurer,
                        r.policy_number
                            .as_deref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default(),
                        if r.disputed { "  disputed" } else { "" },
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}
