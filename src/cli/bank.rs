//! `relance bank`: the credits of the imported bank statements and how each was matched;
//! the unmatched ones are a collector's to place.

use clap::Subcommand;

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// List the credits of the imported statements with their match (latest first)
    #[command(
        after_help = "Examples:\n  relance bank credits --unmatched\n  relance bank credits --limit 500 --format json\n\nStatements are imported with `relance import camt FILE` (docs/import.md)."
    )]
    Credits {
        /// Only the credits no invoice was found for
        #[arg(long)]
        unmatched: bool,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

pub(super) async fn bank(cli: &Cli, cmd: &BankCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let BankCommand::Credits {
        unmatched,
        limit,
        format,
    } = cmd;
    let rows = store
        .bank_credits(*unmatched, (*limit).clamp(1, 100_000))
        .await;
    store.close().await;
    let rows = rows?;
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        OutputFormat::Text => {
            if rows.is_empty() {
                println!(
                    "{}",
                    if *unmatched {
                        "no unmatched credit"
                    } else {
                        "no bank credit imported"
                    }
                );
            }
            for r in &rows {
                let what = match (&r.matched_by, &r.customer) {
                    (Some(by), Some(c)) => {
                        format!("{c} {} (by {by})", r.invoice.as_deref().unwrap_or(""))
                    }
                    _ => "not matched".to_string(),
                };
                println!(
                    "{}  {:>12} {}  {:<30} {:<30} {}",
                    r.value_date,
                    r.amount,
                    r.currency,
                    r.debtor_name.as_deref().unwrap_or("-"),
                    r.reference.as_deref().unwrap_or(&r.remittance),
                    what
                );
            }
        }
    }
    Ok(exit::OK)
}
