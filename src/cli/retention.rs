//! `relance prune` (what is past its retention) and `relance erase` (a customer's
//! personal data, on request).

use clap::Args;

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Count what would go, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Prune as if today were this day (YYYY-MM-DD), e.g. to see with --dry-run what
    /// will go by then [default: now]
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The customer's external id
    pub customer: String,
    /// Confirm: the erasure cannot be undone
    #[arg(long)]
    pub yes: bool,
    /// Who asked for it, for the audit trail [default: the system user]
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) async fn prune(cli: &Cli, args: &PruneArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let now = match args.as_of {
        Some(day) => day
            .and_hms_opt(23, 59, 59)
            .map_or_else(chrono::Utc::now, |t| t.and_utc()),
        None => chrono::Utc::now(),
    };
    let report = crate::retention::prune(&config, store.as_ref(), now, args.dry_run).await;
    store.close().await;
    let r = report?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        OutputFormat::Text => {
            let verb = if r.dry_run { "would remove" } else { "removed" };
            let day = |t: chrono::DateTime<chrono::Utc>| t.date_naive().to_string();
            println!(
                "{verb}:\n  {:>8} facts snapshots (decisions before {}; {} older actions' inline facts)\n  {:>8} account statements and other copies of messages (before {})\n  {:>8} formal notices (before {})\n  {:>8} files of the document archive\n  {:>8} files of the outbox folder\n  {:>8} idempotency keys (older than a day)\n  {:>8} expired console sessions",
                r.database.facts_snapshots,
                day(r.facts_before),
                r.database.inline_facts,
                r.database.documents,
                day(r.messages_before),
                r.database.formal_notices,
                day(r.formal_notices_before),
                r.archive_files,
                r.outbox_files,
                r.database.idempotency_keys,
                r.database.console_sessions,
            );
            println!("kept: every action, its status, attempts and the SHA-256 of its facts and documents");
        }
    }
    Ok(exit::OK)
}

pub(super) async fn erase(cli: &Cli, args: &EraseArgs) -> Result<u8, CliError> {
    if !args.yes {
        return Err(CliError::Usage(format!(
            "erasing the personal data of {} cannot be undone: add --yes to confirm",
            args.customer
        )));
    }
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let actor = args
        .by
        .clone()
        .unwrap_or_else(|| "system (command line)".to_string());
    let report = crate::retention::erase(
        &config,
        store.as_ref(),
        &args.customer,
        &actor,
        chrono::Utc::now(),
    )
    .await;
    store.close().await;
    let Some(r) = report? else {
        return Err(CliError::Input(format!(
            "no customer with external id '{}'",
            args.customer
        )));
    };
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        ),
        OutputFormat::Text => println!(
            "erased the personal data of {}: contact details (emails, phones, address), {} notes, {} call notes, {} facts snapshots, {} account statements ({} archive files), {} outbox files, {} portal visits; its portal links no longer open and its dunning is paused for good.\nkept: the customer's name and identifiers, invoices, payments, actions and formal notices (accounting records and evidence).",
            r.customer,
            r.database.notes,
            r.database.task_notes,
            r.database.facts_snapshots,
            r.database.documents,
            r.archive_files,
            r.outbox_files,
            r.database.portal_visits,
        ),
    }
    Ok(exit::OK)
}
