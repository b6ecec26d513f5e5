//! `relance insurers`: the configured policies and the state of their endpoints.

use chrono::Utc;
use clap::Subcommand;

use crate::config::{redact_text, redact_url};

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum InsurersCommand {
    /// The configured policies, their endpoints and whether each is enabled
    #[command(after_help = "Example:\n  relance insurers list")]
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Re-enable an endpoint disabled after a 410 Gone (then requeue the blocked
    /// handovers with `relance actions retry ID`)
    #[command(
        after_help = "Example:\n  relance insurers enable coface-fr\n  relance actions list --kind insurer_handover --status blocked"
    )]
    Enable { insurer: String },
    /// Stop sending handovers to an insurer's endpoint (they are blocked until enabled)
    #[command(
        after_help = "Example:\n  relance insurers disable coface-fr --reason \"endpoint migration\""
    )]
    Disable {
        insurer: String,
        #[arg(long, default_value = "disabled by an operator")]
        reason: String,
    },
}

pub(super) async fn insurers(cli: &Cli, cmd: &InsurersCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let known = |key: &str| -> Result<(), CliError> {
        if config.insurers.contains_key(key) {
            Ok(())
        } else {
            let keys: Vec<&str> = config.insurers.keys().map(String::as_str).collect();
            Err(CliError::Input(format!(
                "no insurer '{key}' in the configuration (insurers: {})",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            )))
        }
    };
    let store = open_store(&config).await?;
    let result = match cmd {
        InsurersCommand::List { format } => {
            let states = store.endpoint_states().await?;
            let rows: Vec<serde_json::Value> = config
                .insurers
                .values()
                .map(|i| {
                    let state = states.iter().find(|s| s.insurer == i.key);
                    serde_json::json!({
                        "insurer": i.key,
                        "name": i.name,
                        "policy_number": i.policy_number,
                        "endpoint": i.endpoint.as_ref().map(|e| redact_url(&e.url)),
                        "enabled": state.is_none_or(|s| s.disabled_at.is_none()),
                        "disabled_at": state.and_then(|s| s.disabled_at),
                        "reason": state.and_then(|s| s.reason.as_deref().map(redact_text)),
                        "declaration_deadline_days": i.declaration_deadline_days,
                    })
                })
                .collect();
            match format {
                OutputFormat::Json => {
                    for r in &rows {
                        println!("{r}");
                    }
                }
                OutputFormat::Text => {
                    if rows.is_empty() {
                        println!("no insurer in the configuration");
                    }
                    for r in &rows {
                        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                        println!(
                            "{:<14} {:<20} policy {:<12} {:<9} {}{}",
                            s("insurer"),
                            s("name"),
                            s("policy_number"),
                            if r["enabled"] == true {
                                "enabled"
                            } else {
                                "DISABLED"
                            },
                            r["endpoint"].as_str().unwrap_or("(outbox folder)"),
                            r["reason"]
                                .as_str()
                                .map(|x| format!(" — {x}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        InsurersCommand::Enable { insurer } => {
            known(insurer)?;
            store.set_endpoint_state(insurer, None, Utc::now()).await?;
            println!("insurer {insurer}: endpoint enabled");
            Ok(exit::OK)
        }
        InsurersCommand::Disable { insurer, reason } => {
            known(insurer)?;
            store
                .set_endpoint_state(insurer, Some(reason), Utc::now())
                .await?;
            println!("insurer {insurer}: endpoint disabled ({reason})");
            Ok(exit::OK)
        }
    };
    store.close().await;
    result
}
