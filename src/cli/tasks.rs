//! `relance tasks`: the collectors' call list, and recording how each call went.

use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;

use super::{exit, load_config, open_store, parse_date_arg, Cli, CliError, OutputFormat};
use crate::call_outcomes::{complete, TaskCompletion};
use crate::store::call_tasks::{CallOutcome, TaskFilter};

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List call tasks (open ones first, by due date)
    #[command(
        after_help = "Examples:\n  relance tasks list --status open --due 2026-11-30\n  relance tasks list --assignee marie@ateliers-durand.example --format json"
    )]
    List(TaskListArgs),
    /// Record how a call went; a promise or a dispute changes the ledger
    #[command(
        after_help = "Examples:\n  relance tasks complete 12 --outcome no-answer\n  relance tasks complete 12 --outcome promise --promise-date 2026-12-05 --amount 1250.00\n  relance tasks complete 12 --outcome dispute --reason \"goods returned on 2026-10-28\"\n\nOutcomes: reached, no-answer, wrong-number, promise (pauses dunning of the invoices\nuntil the date; broken if they are still unpaid after it), dispute (marks the\ninvoices disputed)."
    )]
    Complete(CompleteArgs),
}

#[derive(Debug, Args)]
pub struct TaskListArgs {
    #[arg(long)]
    pub assignee: Option<String>,
    /// open or done
    #[arg(long, value_parser = ["open", "done"])]
    pub status: Option<String>,
    /// Due on or before this date
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub due: Option<NaiveDate>,
    #[arg(long)]
    pub customer: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    pub id: i64,
    #[arg(long, value_parser = |s: &str| s.parse::<CallOutcome>())]
    pub outcome: CallOutcome,
    /// What was said, for the history
    #[arg(long)]
    pub note: Option<String>,
    /// Promise: the date the customer will pay by (required with --outcome promise)
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg, required_if_eq("outcome", "promise"))]
    pub promise_date: Option<NaiveDate>,
    /// Promise: the amount [default: what the invoices still owe]
    #[arg(long, value_parser = |s: &str| crate::domain::parse_amount(s).map_err(|e| e.to_string()))]
    pub amount: Option<Decimal>,
    /// Only these invoices of the task (repeatable) [default: all of them]
    #[arg(long = "invoice", value_name = "NUMBER")]
    pub invoices: Vec<String>,
    /// Dispute: the customer's reason [default: the note]
    #[arg(long)]
    pub reason: Option<String>,
    /// Who made the call [default: the system user]
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) async fn tasks(cli: &Cli, cmd: &TasksCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let result = match cmd {
        TasksCommand::List(args) => {
            let filter = TaskFilter {
                assignee: args.assignee.clone(),
                status: args.status.clone(),
                due_by: args.due,
                customer: args.customer.clone(),
                after: None,
                limit: args.limit,
            };
            let list = store.call_tasks(&filter).await?;
            match args.format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string(&list).unwrap_or_default());
                }
                OutputFormat::Text => {
                    if list.is_empty() {
                        println!("no call task");
                    } else {
                        println!(
                            "{:>5}  {:<10}  {:<6} {:<8} {:<28} {:<24} REASON  INVOICES",
                            "ID", "DUE", "STATUS", "PRIORITY", "CUSTOMER", "ASSIGNEE"
                        );
                    }
                    for t in &list {
                        println!(
                            "{:>5}  {}  {:<6} {:<8} {:<28} {:<24} {}  {}{}",
                            t.id,
                            t.due_on,
                            t.status,
                            t.priority,
                            format!("{} {}", t.customer, t.customer_name)
                                .chars()
                                .take(28)
                                .collect::<String>(),
                            t.assignee.as_deref().unwrap_or("-"),
                            t.reason,
                            t.invoices.join(","),
                            t.outcome
                                .as_deref()
                                .map(|o| format!("  -> {o}"))
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        TasksCommand::Complete(args) => {
            let by = args
                .by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            let c = TaskCompletion {
                outcome: args.outcome,
                note: args.note.clone(),
                by,
                promise_date: args.promise_date,
                amount: args.amount,
                invoices: args.invoices.clone(),
                dispute_reason: args.reason.clone(),
            };
            let task = complete(&store, args.id, &c, Utc::now()).await?;
            match args.format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string(&task).unwrap_or_default());
                }
                OutputFormat::Text => println!(
                    "task {}: done ({}) for {} {}",
                    task.id,
                    task.outcome.as_deref().unwrap_or("-"),
                    task.customer,
                    task.invoices.join(",")
                ),
            }
            Ok(exit::OK)
        }
    };
    store.close().await;
    result
}
