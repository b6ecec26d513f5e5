//! `relance report`: views over the ledger for credit managers.

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use super::{exit, load_config, open_store, parse_date_arg, today, Cli, CliError, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Overdue insured invoices approaching their insurer's declaration deadline without a handover
    #[command(
        after_help = "Examples:\n  relance report deadlines\n  relance report deadlines --within 15 --as-of 2026-11-30 --format json\n\nThe deadline is the invoice's due date plus the insurer's declaration_deadline_days\n(insurers: in the configuration; the customer's insurer_policy names one). Invoices\nalready handed over (an insurer_handover action planned, sent or held) are left out.\nA negative number of days means the deadline has passed: the cover may be lost."
    )]
    Deadlines(DeadlinesArgs),
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
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let ReportCommand::Deadlines(args) = cmd;
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
