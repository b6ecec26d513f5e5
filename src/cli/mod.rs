//! The command line. Every command has an example in its `--help`; exit codes are
//! listed in [`exit`] and in `docs/cli.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{format_issue, Config, ConfigErrors, DatabaseUrl, EMBEDDED_DEFAULT};
use crate::import::{import_file, Encoding, ImportError, ImportKind, ImportOptions};
use crate::store::{self, Store, StoreError};
use crate::telemetry::{self, LogFormat};

mod bank;
mod collect;
mod daemon;
mod init;
mod insurers;
mod portal;
mod preview;
mod report;
mod retention;
mod rules;
mod rules_diff;
mod tasks;
mod template_check;
mod tokens;
mod users;
pub use daemon::{ActionsCommand, DispatchArgs, ListArgs, ServeArgs, TickArgs};
pub use rules::{RulesCommand, RulesTestArgs, SimulateArgs, SimulateFormat};

/// Process exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure: database unreachable, file unreadable, internal error.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (unknown command or option, bad value).
    pub const USAGE: u8 = 2;
    /// The configuration is invalid.
    pub const CONFIG: u8 = 3;
    /// Input was rejected: invalid rows in an import, rule errors, failing rule tests.
    pub const REJECTED: u8 = 4;
}

const ABOUT: &str =
    "Automated dunning of trade receivables: a ledger of customers, invoices and payments, \
rules per customer segment, scheduled reminders, formal notices and credit-insurer handover.";

const AFTER_HELP: &str = "\
Examples:
  relance serve                              run the service (scheduled ticks, delivery)
  relance config check                       validate ./relance.yaml (or the embedded default)
  relance import customers examples/data/customers.csv
  relance ledger                             totals of the ledger
  relance rules check                        compile the rule scripts
  relance simulate --as-of 2026-12-01        what the rules would do, without doing it
  relance --config /etc/relance/relance.yaml --log-format json migrate

Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 invalid configuration,
4 input rejected (invalid rows, rule errors, failing rule tests).";

#[derive(Debug, Parser)]
#[command(name = "relance", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: ./relance.yaml if present, else the embedded default]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "RELANCE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Database URL, overriding the configuration (sqlite://FILE or postgres://...)
    #[arg(
        long,
        global = true,
        env = "RELANCE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "RELANCE_LOG_FORMAT", hide_env_values = true)]
    pub log_format: LogFormat,

    /// Log level (error, warn, info, debug, trace); RELANCE_LOG takes a full filter
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema
    #[command(
        after_help = "Example:\n  relance --database-url postgres://relance@db/relance migrate\n\nMigrations also run when any command opens the database."
    )]
    Migrate,

    /// Check or print the configuration
    #[command(
        subcommand,
        after_help = "Examples:\n  relance config check\n  relance config default > relance.yaml"
    )]
    Config(ConfigCommand),

    /// Import the ledger: CSV files, a FEC, bank statements, e-invoices and their statuses
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),

    /// Show ledger totals: customers, invoices, open and overdue amounts, unapplied credit
    #[command(
        after_help = "Example:\n  relance ledger\n  relance ledger --as-of 2026-12-31 --format json"
    )]
    Ledger(LedgerArgs),

    /// Show one customer's account: details, invoices, payments and promises
    #[command(
        after_help = "Example:\n  relance customer C0001\n  relance customer C0001 --format json"
    )]
    Customer(CustomerArgs),

    /// Check and test the rule scripts
    #[command(
        subcommand,
        after_help = "Examples:\n  relance rules check\n  relance rules test --segment smb"
    )]
    Rules(RulesCommand),

    /// Show what the rules would do on the ledger as of a date; writes and sends nothing
    #[command(after_help = rules::SIMULATE_HELP)]
    Simulate(SimulateArgs),

    /// Explain one customer's evaluation: facts, actions, decisions, and the conditions behind them
    #[command(after_help = rules::EXPLAIN_HELP)]
    Explain(rules::ExplainArgs),

    /// Render the message an action would send, or a template for a customer; sends nothing
    #[command(after_help = preview::PREVIEW_HELP)]
    Preview(preview::PreviewArgs),

    /// Run the service: scheduled ticks, delivery, rule reloading
    #[command(after_help = daemon::SERVE_HELP)]
    Serve(ServeArgs),

    /// Run the rules now and write the planned actions to the action log
    #[command(after_help = daemon::TICK_HELP)]
    Tick(TickArgs),

    /// Deliver the planned actions that are due
    #[command(after_help = daemon::DISPATCH_HELP)]
    Dispatch(DispatchArgs),

    /// The action log: list, show, retry, cancel
    #[command(
        subcommand,
        after_help = "Examples:\n  relance actions list --status dead\n  relance actions show 42\n  relance actions retry 42"
    )]
    Actions(ActionsCommand),

    /// Call tasks for collectors: list them, record how a call went
    #[command(
        subcommand,
        after_help = "Examples:\n  relance tasks list --status open\n  relance tasks complete 12 --outcome promise --promise-date 2026-12-05"
    )]
    Tasks(tasks::TasksCommand),

    /// Disputes: mark an invoice disputed (left out of dunning), or resolve the dispute
    #[command(
        subcommand,
        after_help = "Examples:\n  relance dispute open F2026-0042 --reason \"goods returned on 2026-10-28\"\n  relance dispute resolve F2026-0042"
    )]
    Dispute(collect::DisputeCommand),

    /// Pause dunning of a customer or an invoice, until a date or until lifted
    #[command(
        after_help = "Examples:\n  relance pause --customer C0000017 --reason \"payment plan agreed\" --until 2026-12-31\n  relance pause --invoice F2026-0042 --reason \"credit note coming\""
    )]
    Pause(collect::PauseArgs),

    /// Lift the pause of a customer or an invoice
    #[command(
        after_help = "Examples:\n  relance unpause --customer C0000017\n  relance unpause --invoice F2026-0042"
    )]
    Unpause(collect::UnpauseArgs),

    /// Promises to pay: record one (dunning of its invoices waits until its date)
    #[command(
        subcommand,
        after_help = "Example:\n  relance promise add --customer C0000017 --date 2026-12-15 --amount 1250.00"
    )]
    Promise(collect::PromiseCommand),

    /// Reports for credit managers: aged balance, DSO, CEI, what each step earns, risk, collectors
    #[command(
        subcommand,
        after_help = "Examples:\n  relance report aging\n  relance report dso --from 2026-01-01 --format png --out dso.png\n  relance report effectiveness --format csv --locale fr > etapes.csv\n  relance report monthly --out rapport.pdf\n  relance report deadlines --within 15\n\nThe formulas and a worked example are in docs/reports.md."
    )]
    Report(report::ReportCommand),

    /// Credit-insurance policies and their endpoints: list, enable, disable
    #[command(
        subcommand,
        after_help = "Examples:\n  relance insurers list\n  relance insurers enable coface-fr"
    )]
    Insurers(insurers::InsurersCommand),

    /// The debtor portal's links: make one for a customer, check one, revoke a customer's
    #[command(
        subcommand,
        after_help = "Examples:\n  relance portal link C0000017\n  relance portal check https://pay.example.com/p/AbC...\n  relance portal revoke C0000017"
    )]
    Portal(portal::PortalCommand),

    /// The credits of the imported bank statements and how each was matched
    #[command(
        subcommand,
        after_help = "Examples:\n  relance import camt releve.xml\n  relance bank credits --unmatched"
    )]
    Bank(bank::BankCommand),

    /// Remove what is past its retention (retention: in relance.yaml): facts snapshots,
    /// copies of messages, old formal notices; actions and their evidence stay
    #[command(
        after_help = "Examples:\n  relance prune --dry-run\n  relance prune --dry-run --as-of 2027-06-30\n  relance prune\n\nrelance serve prunes by itself when retention.schedule is set (docs/operations.md#retention)."
    )]
    Prune(retention::PruneArgs),

    /// Erase a customer's personal data on request (GDPR): contact details, notes,
    /// facts, account statements; invoices, payments, actions and formal notices stay
    #[command(
        after_help = "Example:\n  relance erase C0000017 --yes --by \"DPO request 2026-118\"\n\nThe customer's dunning is paused for good and its portal links stop opening."
    )]
    Erase(retention::EraseArgs),

    /// Write a working folder: relance.yaml, the shipped rules with their tests, the
    /// templates and an example portfolio
    #[command(
        after_help = "Examples:\n  relance init /srv/relance\n  relance init .          (in an empty folder)\n\nAn existing relance.yaml is never overwritten without --force."
    )]
    Init {
        /// The folder (created if missing)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite the files relance ships (relance.yaml, rules, templates, examples)
        #[arg(long)]
        force: bool,
    },

    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(
        after_help = "Examples:\n  relance completions bash > /etc/bash_completion.d/relance\n  relance completions zsh > \"${fpath[1]}/_relance\"\n  relance completions fish > ~/.config/fish/completions/relance.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), or write one page per command into a folder
    #[command(
        after_help = "Examples:\n  relance man | man -l -\n  relance man --out /usr/local/share/man/man1"
    )]
    Man {
        /// Write relance.1 and relance-COMMAND.1 pages into this folder
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },

    /// Bearer tokens of the HTTP API: create (secret shown once), list, revoke
    #[command(
        subcommand,
        after_help = "Examples:\n  relance tokens create --name erp-sync --scope ingest\n  relance tokens list\n  relance tokens revoke 3"
    )]
    Tokens(tokens::TokensCommand),

    /// Users of the web console: add, list, disable, reset a password
    #[command(
        subcommand,
        after_help = "Examples:\n  relance users add claire --role admin --name \"Claire Martin\"\n  relance users list\n  relance users disable bruno\n  relance users reset-password alice\n\nThe console is served by `relance serve` at / (the API at /v1); see docs/console.md."
    )]
    Users(users::UsersCommand),

    /// Generate a sample portfolio as CSV files (seeded, reproducible)
    #[command(
        after_help = "Examples:\n  relance sample --customers 100000 --invoices 1000000 --seed 42 --out /tmp/portfolio\n  relance sample --customers 2000 --invoices 30000 --history-days 365 --out /tmp/year\n  for k in customers invoices history disputes promises payments; do relance import $k /tmp/year/$k.csv; done\n\nWrites customers.csv, invoices.csv and payments.csv into the output folder; with\n--history-days, also history.csv, disputes.csv and promises.csv, to import in the order\nabove (promises before payments: a promise is made on invoices still open)."
    )]
    Sample(SampleArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and report every problem with its line
    #[command(
        after_help = "Example:\n  relance --config relance.yaml config check\n\nExit code 3 when the configuration is invalid."
    )]
    Check,
    /// Print the embedded default configuration, to start a relance.yaml from
    #[command(after_help = "Example:\n  relance config default > relance.yaml")]
    Default,
}

const IMPORT_HELP: &str = "\
Files are CSV in UTF-8 or ISO-8859-15, separated by ';', ',' or tabs (detected), with a
header line. Amounts take a decimal point or comma; dates are YYYY-MM-DD or DD/MM/YYYY.
Columns are documented in docs/import.md.

Each file is one transaction: if any row is invalid nothing from the file is written
and every bad row is listed as FILE:LINE: column 'NAME': reason (exit code 4). With
--skip-invalid the good rows are written and the bad ones listed (still exit code 4).
Re-importing a file changes nothing: rows are matched by external id, invoice number
or payment id; a dispute by its invoice, a promise by customer, date, amount and
invoices.

Examples:
  relance import customers examples/data/customers.csv
  relance import invoices examples/data/invoices.csv --skip-invalid
  relance import payments bank-2026-11.csv --encoding iso-8859-15 --format json
  relance import disputes disputes.csv        (invoice, reason[, status open|resolved])
  relance import promises promises.csv        (customer, promised_date, amount[, invoices, note])
  relance import fec 732829320FEC20261231.txt --segment smb
                                              (the accounting entries, 411 accounts)
  relance import camt releve-2026-11-02.xml   (a bank statement, camt.053 or camt.054)
  relance import einvoice FA-2026-0042.xml --segment smb
                                              (e-invoices: Factur-X PDF, CII or UBL XML)
  relance import statuses statuts.csv         (invoice;status[;date;reason;amount]: the
                                              platform's lifecycle statuses)

A FEC (Fichier des Écritures Comptables) is read whole in one transaction: its
customer accounts (--accounts, 411 by default) become customers (new ones get
--segment), invoices (debits, by PieceRef) and payments or credit notes (credits),
lettered (EcritureLet) as the accountant matched them. Re-importing a newer FEC of
the same year updates and never duplicates. See docs/import.md#fec.";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the files hold
    #[arg(value_enum)]
    pub kind: ImportKindArg,
    /// CSV files, imported in order, each in its own transaction
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the valid rows and report the invalid ones, instead of rejecting the file
    #[arg(long)]
    pub skip_invalid: bool,
    /// Invoices: let a row move an existing invoice to another customer, releasing
    /// the previous customer's payment allocations on it (refused otherwise)
    #[arg(long)]
    pub allow_customer_change: bool,
    /// Text encoding of the files
    #[arg(long, value_enum, default_value_t = EncodingArg::Auto)]
    pub encoding: EncodingArg,
    /// Output format of the report
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Show at most this many row errors (all are counted)
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_errors: usize,
    /// FEC: the account prefixes of customer accounts (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "411",
        value_name = "PREFIXES"
    )]
    pub accounts: Vec<String>,
    /// FEC: the segment customers new to the ledger get
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// FEC: payment terms in days for invoices the file gives no due date (EcheanceDate)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub terms_days: i64,
}

/// What an imported file holds, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportKindArg {
    Customers,
    Invoices,
    Payments,
    Disputes,
    Promises,
    /// Actions another tool sent before relance (customer;kind;step;sent_on;invoices)
    History,
    /// A FEC (Fichier des Écritures Comptables): customers, invoices, payments
    Fec,
    /// A bank statement (ISO 20022 camt.053 or camt.054): credits matched to invoices
    Camt,
    /// E-invoices (CII or UBL XML): their buyers, invoices and credit notes
    Einvoice,
    /// E-invoicing lifecycle statuses (invoice;status[;date;reason;amount])
    Statuses,
}

impl ImportKindArg {
    /// The CSV kind, or `None` for a FEC.
    fn csv(self) -> Option<ImportKind> {
        match self {
            ImportKindArg::Customers => Some(ImportKind::Customers),
            ImportKindArg::Invoices => Some(ImportKind::Invoices),
            ImportKindArg::Payments => Some(ImportKind::Payments),
            ImportKindArg::Disputes => Some(ImportKind::Disputes),
            ImportKindArg::Promises => Some(ImportKind::Promises),
            ImportKindArg::History => Some(ImportKind::History),
            ImportKindArg::Fec
            | ImportKindArg::Camt
            | ImportKindArg::Einvoice
            | ImportKindArg::Statuses => None,
        }
    }
}

/// The text encoding of imported files, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    /// UTF-8 unless the first 64 KiB are not valid UTF-8, then ISO-8859-15
    Auto,
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// ISO-8859-15 (Latin-9), common in French accounting exports
    #[value(name = "iso-8859-15", alias = "latin9", alias = "latin-9")]
    Latin9,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Auto => Encoding::Auto,
            EncodingArg::Utf8 => Encoding::Utf8,
            EncodingArg::Latin9 => Encoding::Latin9,
        }
    }
}

/// A progress bar on standard error, drawn only on a terminal.
struct ProgressBar(indicatif::ProgressBar);

impl crate::import::Progress for ProgressBar {
    fn start(&self, what: &str, total: u64) {
        self.0.set_length(total);
        self.0.set_message(format!("importing {what}"));
    }
    fn advance(&self, read: u64) {
        self.0.set_position(read);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressBar {
    fn for_import() -> ProgressBar {
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        ProgressBar(pb)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Date overdue amounts are computed at [default: today in the configured time zone]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CustomerArgs {
    /// The customer's external id
    pub id: String,
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Number of customers
    #[arg(long, default_value_t = 50)]
    pub customers: u32,
    /// Number of invoices, spread over the customers
    #[arg(long, default_value_t = 200)]
    pub invoices: u32,
    /// Random seed: the same seed gives the same files
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Date the portfolio is generated around [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// Generate this many days of history: invoices issued over the period, paid
    /// after the dunning step each customer answers to, disputes, promises kept and
    /// broken, and the actions sent (history.csv) [default: 0, invoices of the last 240
    /// days with a few payments]
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    pub history_days: u32,
    /// Output folder (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the portfolio as a FEC (FECyyyymmdd.txt): the same ledger, as
    /// accounting entries (`relance import fec`)
    #[arg(long)]
    pub fec: bool,
    /// Also write its payments as a bank statement (camt053-DATE.xml, ISO 20022
    /// camt.053.001.02) for `relance import camt`
    #[arg(long)]
    pub camt: bool,
}

pub(crate) fn parse_date_arg(s: &str) -> Result<NaiveDate, String> {
    crate::domain::parse_date(s)
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Failure(String),
    /// A value on the command line that clap cannot check (exit code 2).
    #[error("{0}")]
    Usage(String),
}

impl From<crate::runtime::LaunchError> for CliError {
    fn from(e: crate::runtime::LaunchError) -> Self {
        match e {
            crate::runtime::LaunchError::Store(e) => CliError::Store(e),
            other => CliError::Failure(other.to_string()),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => exit::CONFIG,
            CliError::Store(StoreError::Invalid(_) | StoreError::NotFound { .. })
            | CliError::Input(_) => exit::REJECTED,
            CliError::Store(_) | CliError::Failure(_) => exit::FAILURE,
            CliError::Usage(_) => exit::USAGE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            CliError::Config(e) => e.to_string().trim_end().to_string(),
            other => other.to_string(),
        }
    }
}

impl From<ImportError> for CliError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Store(s) => CliError::Store(s),
            other => CliError::Input(other.to_string()),
        }
    }
}

impl From<crate::sample::SampleError> for CliError {
    fn from(e: crate::sample::SampleError) -> Self {
        use crate::sample::SampleError;
        match e {
            SampleError::Store(s) => CliError::Store(s),
            SampleError::Import(i) => i.into(),
            SampleError::Scratch(m) => CliError::Failure(m),
        }
    }
}

/// Runs a parsed command line; returns the exit code.
///
/// # Errors
/// A [`CliError`] whose message is printed and whose code is the process exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    telemetry::init(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_level),
    );
    match &cli.command {
        Command::Config(ConfigCommand::Default) => {
            print!("{EMBEDDED_DEFAULT}");
            Ok(exit::OK)
        }
        Command::Config(ConfigCommand::Check) => config_check(&cli).await,
        Command::Sample(args) => sample(&cli, args),
        Command::Migrate => {
            let config = load_config(&cli)?;
            let store = open_store(&config).await?;
            println!("database {} is up to date", config.database.url);
            store.close().await;
            Ok(exit::OK)
        }
        Command::Import(args) => import(&cli, args).await,
        Command::Ledger(args) => ledger(&cli, args).await,
        Command::Customer(args) => customer(&cli, args).await,
        Command::Rules(RulesCommand::Check) => rules::check(&cli).await,
        Command::Rules(RulesCommand::Test(args)) => rules::test(&cli, args),
        Command::Rules(RulesCommand::Diff(args)) => rules_diff::diff(&cli, args).await,
        Command::Rules(RulesCommand::Backtest(args)) => rules_diff::backtest(&cli, args).await,
        Command::Simulate(args) => rules::simulate(&cli, args).await,
        Command::Serve(args) => daemon::serve(&cli, args).await,
        Command::Tick(args) => daemon::tick(&cli, args).await,
        Command::Dispatch(args) => daemon::dispatch(&cli, args).await,
        Command::Actions(cmd) => daemon::actions(&cli, cmd).await,
        Command::Tasks(cmd) => tasks::tasks(&cli, cmd).await,
        Command::Explain(args) => rules::explain(&cli, args).await,
        Command::Preview(args) => preview::preview(&cli, args).await,
        Command::Dispute(cmd) => collect::dispute(&cli, cmd).await,
        Command::Pause(args) => collect::pause(&cli, args).await,
        Command::Unpause(args) => collect::unpause(&cli, args).await,
        Command::Promise(cmd) => collect::promise(&cli, cmd).await,
        Command::Report(cmd) => report::report(&cli, cmd).await,
        Command::Insurers(cmd) => insurers::insurers(&cli, cmd).await,
        Command::Portal(cmd) => portal::portal(&cli, cmd).await,
        Command::Bank(cmd) => bank::bank(&cli, cmd).await,
        Command::Prune(args) => retention::prune(&cli, args).await,
        Command::Erase(args) => retention::erase(&cli, args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "relance", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man { out } => man(out.as_deref()),
        Command::Init { dir, force } => init::init(dir, *force),
        Command::Tokens(cmd) => tokens::tokens(&cli, cmd).await,
        Command::Users(cmd) => users::users(&cli, cmd).await,
    }
}

/// Loads and validates the configuration the command line names.
///
/// # Errors
/// [`CliError::Config`] with every problem.
pub fn load_config(cli: &Cli) -> Result<Config, CliError> {
    let mut config = Config::load(cli.config.as_deref()).map_err(CliError::Config)?;
    if let Some(url) = &cli.database_url {
        config.database.url = DatabaseUrl::new(url.clone());
    }
    Ok(config)
}

/// Opens the configured database and applies pending migrations.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    let url = &config.database.url;
    let store = store::open(url, config.database.max_connections)
        .await
        .map_err(|e| CliError::Failure(format!("cannot open the database {url}: {e}")))?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| CliError::Failure(format!("cannot migrate the database {url}: {e}")))?;
    if applied > 0 {
        tracing::info!(applied, database = %url, "migrations applied");
    }
    Ok(store)
}

/// The configured ledger if it exists and is up to date, opened without creating or
/// migrating anything (for checks that read real customers where they can).
pub async fn existing_store(config: &Config) -> Option<Arc<dyn Store>> {
    let url = config.database.url.expose();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path.contains(":memory:") || !std::path::Path::new(path).exists() {
            return None;
        }
    }
    let store = store::open(&config.database.url, 2).await.ok()?;
    match store.migrations_applied().await {
        Ok((applied, shipped)) if applied >= shipped => Some(store),
        _ => {
            store.close().await;
            None
        }
    }
}

/// The sandboxed engine rule scripts run in, for this configuration's calendar.
pub(crate) fn engine_for(config: &Config) -> rhai::Engine {
    crate::scripting::engine::build(
        Arc::new(config.calendar.clone()),
        &crate::scripting::Limits::default(),
    )
}

/// Refuses segment names the configuration does not have.
pub(crate) fn check_segments(config: &Config, segments: &[String]) -> Result<(), CliError> {
    match segments.iter().find_map(|s| config.unknown_segment(s)) {
        Some(why) => Err(CliError::Input(why)),
        None => Ok(()),
    }
}

pub(crate) fn today(config: &Config) -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&config.timezone)
        .date_naive()
}

async fn config_check(cli: &Cli) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    for w in &config.warnings {
        eprintln!("warning: {}", format_issue(&config.source, w));
    }
    println!(
        "{}: OK ({} segment{}, database {}, time zone {})",
        config.source,
        config.segments.len(),
        if config.segments.len() == 1 { "" } else { "s" },
        config.database.url,
        config.timezone
    );
    // The templates the rules use must render (scripts that do not compile are
    // `relance rules check`'s to report).
    let (set, _) = crate::scripting::registry::load_all(&config, &engine_for(&config));
    let as_of = today(&config);
    let samples = crate::sample::accounts(
        crate::sample::CHECK_CUSTOMERS,
        crate::sample::CHECK_INVOICES,
        as_of,
    )
    .await?;
    let report = template_check::check(&config, &set, &samples, as_of);
    print_template_report(&report, false);
    if report.errors.is_empty() {
        Ok(exit::OK)
    } else {
        Ok(exit::CONFIG)
    }
}

/// Warnings and errors of a template check on stderr, the summary on stdout when it
/// passed (with the number of sample decisions when `decisions`).
pub(super) fn print_template_report(report: &template_check::TemplateReport, decisions: bool) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.is_empty() {
        if decisions {
            println!(
                "templates: OK ({} rendered, {} sample decisions)",
                report.rendered, report.decisions
            );
        } else {
            println!("templates: OK ({} rendered)", report.rendered);
        }
    }
}

async fn import(cli: &Cli, args: &ImportArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let opts = ImportOptions {
        skip_invalid: args.skip_invalid,
        encoding: args.encoding.into(),
        default_currency: config.company.currency,
        default_country: config
            .company
            .address
            .country
            .unwrap_or(crate::domain::CountryCode::FR),
        default_locale: crate::domain::Locale::Fr,
        progress: (args.format == OutputFormat::Text).then(|| {
            std::sync::Arc::new(ProgressBar::for_import())
                as std::sync::Arc<dyn crate::import::Progress>
        }),
        allow_customer_change: args.allow_customer_change,
        references: Some(std::sync::Arc::new(crate::import::References::of(&config))),
    };
    let mut code = exit::OK;
    let Some(kind) = args.kind.csv() else {
        let result = if args.kind == ImportKindArg::Camt {
            import_camt_files(store.as_ref(), args, &opts).await
        } else if args.kind == ImportKindArg::Einvoice {
            import_einvoice_files(store.as_ref(), args, &opts, &config).await
        } else if args.kind == ImportKindArg::Statuses {
            import_status_files(store.as_ref(), args, &opts, &config).await
        } else {
            import_fec_files(store.as_ref(), args, &opts, &config).await
        };
        store.close().await;
        return result;
    };
    for file in &args.files {
        let report = import_file(store.as_ref(), kind, file, &opts).await?;
        match args.format {
            OutputFormat::Json => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default())
            }
            OutputFormat::Text => {
                println!("{report}");
                for c in &report.ignored_columns {
                    eprintln!(
                        "warning: {}: column '{c}' is not one relance reads; ignored",
                        file.display()
                    );
                }
            }
        }
        if !report.rejected.is_empty() {
            code = exit::REJECTED;
            if args.format == OutputFormat::Text {
                for e in report.rejected.iter().take(args.max_errors) {
                    eprintln!("{}", report.format_error(e));
                }
                if report.rejected.len() > args.max_errors {
                    eprintln!(
                        "... and {} more invalid rows",
                        report.rejected.len() - args.max_errors
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(code)
}

/// `--segment` names a configured segment (when segments are configured).
fn known_segment(segment: Option<&str>, config: &crate::config::Config) -> Result<(), CliError> {
    match segment {
        Some(s) if !config.segments.is_empty() && !config.segments.contains_key(s) => {
            let known: Vec<&str> = config.segments.keys().map(String::as_str).collect();
            Err(CliError::Usage(format!(
                "--segment: unknown segment '{s}': the configured segments are {}",
                known.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// `relance import einvoice FILE...`: each e-invoice in its own transaction; a file
/// refused is named with the reason, the others are imported.
async fn import_einvoice_files(
    store: &dyn crate::store::Store,
    args: &ImportArgs,
    opts: &ImportOptions,
    config: &crate::config::Config,
) -> Result<u8, CliError> {
    known_segment(args.segment.as_deref(), config)?;
    let mut code = exit::OK;
    for file in &args.files {
        match crate::import::einvoice::import_einvoice(
            store,
            file,
            opts,
            args.segment.as_deref(),
            args.terms_days.clamp(0, 3650),
        )
        .await
        {
            Ok(report) => match args.format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default())
                }
                OutputFormat::Text => println!("{report}"),
            },
            Err(crate::import::ImportError::Store(e)) => return Err(e.into()),
            Err(e) => {
                code = exit::REJECTED;
                eprintln!("{e}");
            }
        }
    }
    Ok(code)
}

/// `relance import statuses FILE...`: each line a lifecycle status applied in its own
/// transaction; a refused line is named, the others are applied.
async fn import_status_files(
    store: &dyn crate::store::Store,
    args: &ImportArgs,
    opts: &ImportOptions,
    config: &crate::config::Config,
) -> Result<u8, CliError> {
    use crate::import::einvoice::{apply_status, StatusReport};
    let mut code = exit::OK;
    for file in &args.files {
        let mut source = crate::import::CsvSource::open(file, opts.encoding, None)
            .map_err(|m| CliError::Input(format!("{}: {m}", file.display())))?;
        for c in ["invoice", "status"] {
            if !source.has_column(c) {
                return Err(CliError::Input(format!(
                    "{}:1: missing required column '{c}' (columns: invoice, status, date, reason, amount)",
                    file.display()
                )));
            }
        }
        let mut rows = Vec::new();
        while let Some(next) = source.next_row() {
            let row = match next {
                Ok(r) => r,
                Err((line, m)) => {
                    code = exit::REJECTED;
                    eprintln!("{}:{line}: {m}", file.display());
                    continue;
                }
            };
            let parsed = (|| {
                let invoice = row.required("invoice")?;
                let status = row.required("status")?;
                let date = row.parse("date", crate::domain::parse_date)?;
                let reason = row.get("reason")?;
                let amount = row.parse("amount", crate::domain::money::parse_amount)?;
                Ok::<_, crate::import::FieldError>((
                    invoice,
                    StatusReport {
                        status,
                        date,
                        reason,
                        amount,
                    },
                ))
            })();
            match parsed {
                Ok(r) => rows.push((row.line, r)),
                Err(e) => {
                    code = exit::REJECTED;
                    eprintln!(
                        "{}:{}: column '{}': {}",
                        file.display(),
                        row.line,
                        e.column.unwrap_or_default(),
                        e.message
                    );
                }
            }
        }
        let name = file.display().to_string();
        for (line, (invoice, report)) in rows {
            match apply_status(store, &invoice, &report, opts, &name, today(config)).await {
                Ok(o) => match args.format {
                    OutputFormat::Json => {
                        println!("{}", serde_json::to_string(&o).unwrap_or_default())
                    }
                    OutputFormat::Text => println!(
                        "{name}:{line}: invoice {} {} {}: {}",
                        o.invoice, o.code, o.status, o.effect
                    ),
                },
                Err(crate::import::ImportError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    code = exit::REJECTED;
                    let message = match e {
                        crate::import::ImportError::File { message, .. } => message,
                        other => other.to_string(),
                    };
                    eprintln!("{name}:{line}: {message}");
                }
            }
        }
    }
    Ok(code)
}

/// `relance import camt FILE...`: each statement in its own transaction.
async fn import_camt_files(
    store: &dyn crate::store::Store,
    args: &ImportArgs,
    opts: &ImportOptions,
) -> Result<u8, CliError> {
    if args.skip_invalid {
        return Err(CliError::Usage(
            "--skip-invalid does not apply to a bank statement: a statement that does not read is refused whole".into(),
        ));
    }
    for file in &args.files {
        let report = crate::import::camt::import_camt(store, file, opts).await?;
        match args.format {
            OutputFormat::Json => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default())
            }
            OutputFormat::Text => {
                println!("{report}");
                let unmatched: Vec<_> = report
                    .credits
                    .iter()
                    .filter(|c| c.matched_by.is_none())
                    .collect();
                for c in unmatched.iter().take(args.max_errors) {
                    println!(
                        "  not matched: line {}: {} {} {} from {}: {}",
                        c.line,
                        c.date,
                        c.amount,
                        c.currency,
                        c.debtor_name.as_deref().unwrap_or("?"),
                        c.reference.as_deref().unwrap_or(&c.remittance)
                    );
                }
                if unmatched.len() > args.max_errors {
                    println!(
                        "  ... and {} more (relance bank unmatched)",
                        unmatched.len() - args.max_errors
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}

/// `relance import fec FILE...`: each file in its own transaction.
async fn import_fec_files(
    store: &dyn crate::store::Store,
    args: &ImportArgs,
    opts: &ImportOptions,
    config: &crate::config::Config,
) -> Result<u8, CliError> {
    use crate::import::fec::{import_fec, FecOptions};
    if args.skip_invalid {
        return Err(CliError::Usage(
            "--skip-invalid does not apply to a FEC: its entries balance as a whole, so a FEC is imported whole or not at all".into(),
        ));
    }
    known_segment(args.segment.as_deref(), config)?;
    let fec = FecOptions {
        accounts: args
            .accounts
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        segment: args.segment.clone(),
        terms_days: args.terms_days.clamp(0, 3650),
    };
    let mut code = exit::OK;
    for file in &args.files {
        let report = import_fec(store, file, opts, &fec).await?;
        match args.format {
            OutputFormat::Json => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default())
            }
            OutputFormat::Text => println!("{report}"),
        }
        if !report.rejected.is_empty() {
            code = exit::REJECTED;
            if args.format == OutputFormat::Text {
                for e in report.rejected.iter().take(args.max_errors) {
                    eprintln!("{}", report.format_error(e));
                }
                if report.rejected.len() > args.max_errors {
                    eprintln!(
                        "... and {} more invalid lines",
                        report.rejected.len() - args.max_errors
                    );
                }
            }
        }
    }
    Ok(code)
}

async fn ledger(cli: &Cli, args: &LedgerArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    // Reads only: promises are judged as of the date asked, not marked (the tick does).
    let s = store.summary(as_of).await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default()),
        OutputFormat::Text => {
            println!("Ledger as of {as_of} ({})", config.database.url);
            println!("  customers         {:>12}", s.customers);
            println!("  invoices          {:>12}", s.invoices);
            println!("  payments          {:>12}", s.payments);
            println!("  pending promises  {:>12}", s.pending_promises);
            for t in &s.by_currency {
                println!(
                    "  {}: {} open invoices, open {}, overdue {}, unapplied credit {}",
                    t.currency, t.open_invoices, t.open, t.overdue, t.unapplied_credit
                );
            }
        }
    }
    store.close().await;
    Ok(exit::OK)
}

async fn customer(cli: &Cli, args: &CustomerArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    let Some(c) = store.customer(&args.id).await? else {
        store.close().await;
        return Err(CliError::Input(format!(
            "no customer with external id '{}'",
            args.id
        )));
    };
    let invoices = store.invoices_of(&args.id).await?;
    let payments = store.payments_of(&args.id).await?;
    let promises = store.promises_of(&args.id).await?;
    store.close().await;
    if args.format == OutputFormat::Json {
        let v = serde_json::json!({ "customer": c, "invoices": invoices, "payments": payments, "promises": promises });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!(
        "{} — {} (segment {}, locale {})",
        c.external_id, c.name, c.segment, c.locale
    );
    if let Some(p) = &c.pause {
        println!(
            "  paused: {} (until {})",
            p.reason,
            p.until.map_or("lifted".to_string(), |d| d.to_string())
        );
    }
    if c.insurance.insured {
        println!(
            "  insured: policy {}, buyer ref {}",
            c.insurance.policy.as_deref().unwrap_or("-"),
            c.insurance.buyer_ref.as_deref().unwrap_or("-")
        );
    }
    println!("  invoices:");
    for i in &invoices {
        let mut flags = Vec::new();
        if let Some(d) = &i.dispute {
            flags.push(format!("disputed: {}", d.reason));
        }
        if let Some(p) = &i.pause {
            flags.push(format!("paused: {}", p.reason));
        }
        println!(
            "    {:<14} issued {} due {} {:>12} open {:>12} {}  {:>4} days {}",
            i.number,
            i.issue_date,
            i.due_date,
            i.amount,
            i.open_amount,
            i.currency,
            i.days_overdue(as_of),
            if flags.is_empty() {
                i.status.to_string()
            } else {
                format!("{} ({})", i.status, flags.join("; "))
            }
        );
    }
    if !payments.is_empty() {
        println!("  payments:");
        for p in &payments {
            let alloc: Vec<String> = p
                .allocations
                .iter()
                .map(|(n, a)| format!("{n} {a}"))
                .collect();
            println!(
                "    {:<14} {} {} {} {} → {}; unapplied {}",
                p.payment.external_id,
                p.payment.date,
                p.payment.kind,
                p.payment.amount,
                p.payment.currency,
                if alloc.is_empty() {
                    "-".into()
                } else {
                    alloc.join(", ")
                },
                p.unapplied
            );
        }
    }
    if !promises.is_empty() {
        println!("  promises:");
        for p in &promises {
            println!(
                "    #{} {} {} by {} ({}) for {}",
                p.id,
                p.amount,
                p.currency,
                p.promised_date,
                p.status,
                p.invoices.join(", ")
            );
        }
    }
    Ok(exit::OK)
}

fn sample(cli: &Cli, args: &SampleArgs) -> Result<u8, CliError> {
    let as_of = args
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    // A history plays the configured experiments: each customer of a segment with
    // variants gets its variant's ladder.
    let experiments = if args.history_days > 0 {
        crate::sample::experiments(&load_config(cli)?)
    } else {
        Vec::new()
    };
    for e in &experiments {
        let names: Vec<&String> = e.ladders.keys().collect();
        eprintln!(
            "segment {}: history follows the ladders of variants {}",
            e.segment.name,
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let spec = crate::sample::PortfolioSpec {
        customers: args.customers,
        invoices: args.invoices,
        seed: args.seed,
        as_of,
        history_days: args.history_days,
        quiet_days: 0,
        experiments,
    };
    let written = crate::sample::write_portfolio(&spec, &args.out)
        .map_err(|e| CliError::Failure(format!("cannot write into {}: {e}", args.out.display())))?;
    for (path, rows) in written {
        println!("{}: {rows} rows", display(&path));
    }
    if args.fec {
        let (path, lines) = crate::sample::write_fec(&args.out, as_of).map_err(|e| {
            CliError::Failure(format!(
                "cannot write the FEC into {}: {e}",
                args.out.display()
            ))
        })?;
        println!("{}: {lines} lines", display(&path));
    }
    if args.camt {
        let (path, credits) = crate::sample::write_camt(&args.out, as_of).map_err(|e| {
            CliError::Failure(format!(
                "cannot write the bank statement into {}: {e}",
                args.out.display()
            ))
        })?;
        println!("{}: {credits} credits", display(&path));
    }
    Ok(exit::OK)
}

/// `relance man`: the manual page on standard output, or one page per command (and
/// subcommand) in `out`.
fn man(out: Option<&Path>) -> Result<u8, CliError> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let render = |title: &str, c: &clap::Command| -> Result<Vec<u8>, CliError> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c.clone())
            .title(title.to_ascii_uppercase())
            .render(&mut buf)
            .map_err(|e| CliError::Failure(format!("cannot render the manual page: {e}")))?;
        Ok(buf)
    };
    let Some(dir) = out else {
        use std::io::Write;
        let page = render("relance", &cmd)?;
        std::io::stdout()
            .write_all(&page)
            .map_err(|e| CliError::Failure(format!("cannot write the manual page: {e}")))?;
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Failure(format!("cannot create {}: {e}", dir.display())))?;
    let mut pages = vec![("relance".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("relance-{}", sub.get_name());
        for subsub in sub.get_subcommands() {
            let full = format!("{name}-{}", subsub.get_name());
            pages.push((full.clone(), subsub.clone().name(full)));
        }
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, c) in &pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, render(name, c)?)
            .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    eprintln!("wrote {} manual pages into {}", pages.len(), dir.display());
    Ok(exit::OK)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
