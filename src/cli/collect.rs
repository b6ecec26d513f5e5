//! `relance dispute`, `relance pause`, `relance unpause` and `relance promise`: what a
//! collector records, from the command line, with the checks of the HTTP API
//! (`crate::collect`).

use chrono::{NaiveDate, Utc};
use clap::{ArgGroup, Args, Subcommand};
use rust_decimal::Decimal;

use super::{exit, load_config, open_store, parse_date_arg, today, Cli, CliError, OutputFormat};
use crate::collect::{self, Change, CollectError, PromiseInput};

#[derive(Debug, Subcommand)]
pub enum DisputeCommand {
    /// Mark an invoice disputed: dunning leaves it out until the dispute is resolved
    #[command(
        after_help = "Example:\n  relance dispute open F2026-0042 --reason \"goods returned on 2026-10-28\""
    )]
    Open(DisputeOpenArgs),
    /// Resolve an invoice's dispute: dunning takes it up again
    #[command(after_help = "Example:\n  relance dispute resolve F2026-0042")]
    Resolve(InvoiceArg),
}

#[derive(Debug, Args)]
pub struct DisputeOpenArgs {
    /// The invoice number
    pub invoice: String,
    /// What the customer disputes
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct InvoiceArg {
    /// The invoice number
    pub invoice: String,
}

/// A customer or one of its invoices.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["customer", "invoice"])))]
pub struct Target {
    /// A customer (external id): all of its invoices
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// One invoice (number)
    #[arg(long, value_name = "NUMBER")]
    pub invoice: Option<String>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why dunning is paused (shown in the log and to the rules as pause_reason)
    #[arg(long)]
    pub reason: String,
    /// The last paused day [default: until lifted with relance unpause]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct UnpauseArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum PromiseCommand {
    /// Record a promise to pay: dunning of its invoices waits until the date
    #[command(
        after_help = "Examples:\n  relance promise add --customer C0000017 --date 2026-12-15 --amount 1250.00\n  relance promise add --customer C0000017 --date 2026-12-15 --amount 400 --invoice F2026-0042 --note \"by transfer, per M. Roux\"\n\nA promise whose date passes with its invoices still unpaid is broken: the rules\nsee it as customer.broken_promise."
    )]
    Add(PromiseAddArgs),
}

#[derive(Debug, Args)]
pub struct PromiseAddArgs {
    /// The customer (external id)
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The date the customer will pay by
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub date: NaiveDate,
    /// The amount promised
    #[arg(long, value_parser = |s: &str| crate::domain::parse_amount(s).map_err(|e| e.to_string()))]
    pub amount: Decimal,
    /// Only these invoices (repeatable) [default: every open invoice of the customer]
    #[arg(long = "invoice", value_name = "NUMBER")]
    pub invoices: Vec<String>,
    /// What was said, for the history
    #[arg(long)]
    pub note: Option<String>,
    /// text for people, json for tools (the promise as stored)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

fn input(e: CollectError) -> CliError {
    match e {
        CollectError::Invalid(i) => CliError::Input(format!("--{}: {}", flag(&i.field), i.message)),
        CollectError::Store(crate::store::StoreError::NotFound { .. }) => {
            CliError::Input(e.to_string())
        }
        CollectError::Store(s) => CliError::Store(s),
    }
}

/// The command-line flag a field of `collect` is given with.
fn flag(field: &str) -> String {
    match field {
        "promised_date" => "date".into(),
        "external_id" => "customer".into(),
        "number" => "invoice".into(),
        f if f.starts_with("invoices[") => "invoice".into(),
        f => f.replace('_', "-"),
    }
}

async fn apply(cli: &Cli, key: &str, change: Change, done: String) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let result = collect::apply(store.as_ref(), key, &change).await;
    store.close().await;
    result.map_err(input)?;
    println!("{done}");
    Ok(exit::OK)
}

pub(super) async fn dispute(cli: &Cli, cmd: &DisputeCommand) -> Result<u8, CliError> {
    match cmd {
        DisputeCommand::Open(a) => {
            let d = collect::dispute(&a.reason, Utc::now())
                .map_err(|i| input(CollectError::Invalid(i)))?;
            let done = format!("invoice {}: disputed ({})", a.invoice, d.reason);
            apply(cli, &a.invoice, Change::Dispute(Some(d)), done).await
        }
        DisputeCommand::Resolve(a) => {
            let done = format!("invoice {}: dispute resolved", a.invoice);
            apply(cli, &a.invoice, Change::Dispute(None), done).await
        }
    }
}

pub(super) async fn pause(cli: &Cli, a: &PauseArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let p = collect::pause(&a.reason, a.until, today(&config))
        .map_err(|i| input(CollectError::Invalid(i)))?;
    let until = p.until.map_or("until lifted".to_string(), |u| {
        format!("until {u} included")
    });
    match (&a.target.customer, &a.target.invoice) {
        (Some(c), _) => {
            let done = format!("customer {c}: paused {until} ({})", p.reason);
            apply(cli, c, Change::CustomerPause(Some(p)), done).await
        }
        (None, Some(n)) => {
            let done = format!("invoice {n}: paused {until} ({})", p.reason);
            apply(cli, n, Change::InvoicePause(Some(p)), done).await
        }
        (None, None) => Err(CliError::Input(
            "--customer or --invoice is required".into(),
        )),
    }
}

pub(super) async fn unpause(cli: &Cli, a: &UnpauseArgs) -> Result<u8, CliError> {
    match (&a.target.customer, &a.target.invoice) {
        (Some(c), _) => {
            let done = format!("customer {c}: pause lifted");
            apply(cli, c, Change::CustomerPause(None), done).await
        }
        (None, Some(n)) => {
            let done = format!("invoice {n}: pause lifted");
            apply(cli, n, Change::InvoicePause(None), done).await
        }
        (None, None) => Err(CliError::Input(
            "--customer or --invoice is required".into(),
        )),
    }
}

pub(super) async fn promise(cli: &Cli, cmd: &PromiseCommand) -> Result<u8, CliError> {
    let PromiseCommand::Add(a) = cmd;
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let result = collect::add_promise(
        store.as_ref(),
        PromiseInput {
            customer: a.customer.clone(),
            promised_date: a.date,
            amount: a.amount,
            invoices: a.invoices.clone(),
            note: Some(
                a.note
                    .clone()
                    .unwrap_or_else(|| "recorded with relance promise add".into()),
            ),
        },
    )
    .await;
    store.close().await;
    let promise = result.map_err(input)?;
    match a.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&promise).unwrap_or_default()
        ),
        OutputFormat::Text => {
            if let Some(p) = promise {
                let invoices = if p.invoices.is_empty() {
                    "every open invoice".to_string()
                } else {
                    p.invoices.join(", ")
                };
                println!(
                    "promise {} recorded: customer {} pays {} {} by {} ({invoices})",
                    p.id, p.customer, p.amount, p.currency, p.promised_date
                );
            }
        }
    }
    Ok(exit::OK)
}
