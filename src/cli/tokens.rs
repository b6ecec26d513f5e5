//! `relance tokens`: bearer tokens of the HTTP API. Only the SHA-256 of a secret is
//! stored; the secret is printed once, when the token is created.

use std::io::Read;

use base64::Engine;
use chrono::Utc;
use clap::Subcommand;

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};
use crate::api::scope::{parse_scopes, Scope};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret (shown once: store it in the client's vault)
    #[command(
        after_help = "Examples:\n  relance tokens create --name erp-sync --scope ingest\n  relance tokens create --name collectors-app --scope read,collect\n  relance tokens create --name prometheus --scope read\n\nScopes: ingest (upsert customers, invoices, payments), read (ledger, action log,\ntasks, metrics, dry-run), collect (disputes, promises, pauses, call tasks),\nadmin (retry and cancel actions; grants every scope)."
    )]
    Create {
        /// Who or what uses it (shown in logs and in the action log)
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: ingest, read, collect, admin
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// List tokens (never their secrets)
    #[command(after_help = "Example:\n  relance tokens list\n  relance tokens list --format json")]
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Revoke a token: requests with it are refused (401) at once
    #[command(after_help = "Example:\n  relance tokens revoke 3")]
    Revoke { id: i64 },
}

/// A new secret: `rel_` and 32 random bytes, base64url.
fn new_secret() -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::Failure(format!("cannot read random bytes: {e}")))?;
    Ok(format!(
        "rel_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

pub(super) async fn tokens(cli: &Cli, cmd: &TokensCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let result = match cmd {
        TokensCommand::Create {
            name,
            scope,
            format,
        } => {
            let scopes: Vec<Scope> = parse_scopes(scope).map_err(CliError::Usage)?;
            if name.trim().is_empty() {
                return Err(CliError::Usage("--name must not be empty".into()));
            }
            let secret = new_secret()?;
            let hash = crate::api::extract::token_hash(&secret);
            let id = store
                .create_token(
                    name.trim(),
                    &scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
                    &hash,
                    Utc::now(),
                )
                .await?;
            let names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
            match format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "id": id, "name": name.trim(), "scopes": names, "token": secret })
                ),
                OutputFormat::Text => {
                    println!("{secret}");
                    eprintln!(
                        "token {id} '{}' created with scopes {}; the secret above is shown once",
                        name.trim(),
                        names.join(",")
                    );
                }
            }
            exit::OK
        }
        TokensCommand::List { format } => {
            let tokens = store.tokens().await?;
            match format {
                OutputFormat::Json => {
                    for t in &tokens {
                        println!("{}", serde_json::to_string(t).unwrap_or_default());
                    }
                }
                OutputFormat::Text => {
                    println!(
                        "{:<5} {:<24} {:<28} {:<20} STATE",
                        "ID", "NAME", "SCOPES", "CREATED"
                    );
                    for t in &tokens {
                        let scopes: Vec<&str> = t.scopes.iter().map(String::as_str).collect();
                        println!(
                            "{:<5} {:<24} {:<28} {:<20} {}",
                            t.id,
                            t.name,
                            scopes.join(","),
                            t.created_at.format("%Y-%m-%d %H:%M"),
                            t.revoked_at.map_or("active".to_string(), |r| format!(
                                "revoked {}",
                                r.format("%Y-%m-%d %H:%M")
                            ))
                        );
                    }
                }
            }
            exit::OK
        }
        TokensCommand::Revoke { id } => {
            if store.revoke_token(*id, Utc::now()).await? {
                println!("token {id} revoked");
                exit::OK
            } else {
                store.close().await;
                return Err(CliError::Input(format!("no active token {id}")));
            }
        }
    };
    store.close().await;
    Ok(result)
}
