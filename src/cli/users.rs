//! `relance users`: the console's users. Passwords are read from standard input (or
//! generated and printed once) and stored as Argon2id hashes, never in clear.

use std::io::{BufRead, IsTerminal};

use chrono::Utc;
use clap::Subcommand;

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};
use crate::console::auth::{self, Role};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user of the console (the password from standard input, or generated)
    #[command(
        after_help = "Examples:\n  relance users add claire --role admin --name \"Claire Martin\"\n  printf '%s\\n' \"$PASSWORD\" | relance users add alice --role collector --password-stdin\n\nRoles: viewer (reads everything), collector (its own customers and call tasks:\npauses, disputes, promises, call outcomes), credit_manager (everything but\nadministration), admin. A collector's user name is the `collector` column of its\ncustomers. Without --password-stdin a password is generated and printed once.\nExit code 1 when the name is taken."
    )]
    Add {
        /// The user name (sign-in name; for a collector, its customers' `collector`)
        username: String,
        /// viewer, collector, credit_manager or admin
        #[arg(long)]
        role: String,
        /// The name shown in the console and the audit trail [default: the user name]
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users (never their passwords)
    #[command(after_help = "Examples:\n  relance users list\n  relance users list --format json")]
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Disable a user (signed out at once) or, with --enable, enable it again
    #[command(
        after_help = "Examples:\n  relance users disable bruno\n  relance users disable bruno --enable"
    )]
    Disable {
        username: String,
        #[arg(long)]
        enable: bool,
    },
    /// Set a new password (from standard input, or generated); signs the user out
    #[command(
        after_help = "Examples:\n  relance users reset-password alice\n  printf '%s\\n' \"$PASSWORD\" | relance users reset-password alice --password-stdin"
    )]
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The password given on standard input, or a generated one (returned to be printed).
fn password(from_stdin: bool) -> Result<(String, bool), CliError> {
    if from_stdin {
        if std::io::stdin().is_terminal() {
            eprint!("password: ");
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failure(format!("cannot read the password: {e}")))?;
        let p = line.trim_end_matches(['\n', '\r']).to_string();
        return Ok((p, false));
    }
    let token = crate::digest::random_token()
        .map_err(|e| CliError::Failure(format!("cannot read random bytes: {e}")))?;
    Ok((token[..20].to_string(), true))
}

fn check_name(username: &str) -> Result<(), CliError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "'{username}' is not a user name: letters, digits, '.', '_', '-', '@', at most 64"
        )))
    }
}

pub(super) async fn users(cli: &Cli, cmd: &UsersCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    // Checked before the database is opened: a bad argument writes nothing.
    let prepared = match cmd {
        UsersCommand::Add {
            username,
            role,
            password_stdin,
            ..
        } => {
            check_name(username)?;
            role.parse::<Role>().map_err(CliError::Usage)?;
            Some(password(*password_stdin)?)
        }
        UsersCommand::ResetPassword { password_stdin, .. } => Some(password(*password_stdin)?),
        _ => None,
    };
    let hashed = match &prepared {
        Some((p, _)) => Some(auth::hash_password(p).map_err(CliError::Usage)?),
        None => None,
    };
    let store = open_store(&config).await?;
    let result = run(cmd, &store, prepared, hashed).await;
    store.close().await;
    result
}

async fn run(
    cmd: &UsersCommand,
    store: &std::sync::Arc<dyn crate::store::Store>,
    prepared: Option<(String, bool)>,
    hashed: Option<String>,
) -> Result<u8, CliError> {
    let now = Utc::now();
    let show = |generated: &Option<(String, bool)>, who: &str| {
        if let Some((p, true)) = generated {
            println!("{p}");
            eprintln!("the password of '{who}' is above: it is shown once");
        }
    };
    match cmd {
        UsersCommand::Add {
            username,
            role,
            name,
            ..
        } => {
            let display = name.clone().unwrap_or_else(|| username.clone());
            store
                .create_user(
                    username,
                    display.trim(),
                    role,
                    hashed.as_deref().unwrap_or_default(),
                    now,
                )
                .await
                .map_err(|e| CliError::Failure(e.to_string()))?;
            eprintln!("user '{username}' added with role {role}");
            show(&prepared, username);
            Ok(exit::OK)
        }
        UsersCommand::List { format } => {
            let users = store.users().await?;
            match format {
                OutputFormat::Json => {
                    for u in &users {
                        println!("{}", serde_json::to_string(u).unwrap_or_default());
                    }
                }
                OutputFormat::Text => {
                    println!(
                        "{:<24} {:<28} {:<15} {:<17} STATE",
                        "USER", "NAME", "ROLE", "CREATED"
                    );
                    for u in &users {
                        println!(
                            "{:<24} {:<28} {:<15} {:<17} {}",
                            u.username,
                            u.display_name,
                            u.role,
                            u.created_at.format("%Y-%m-%d %H:%M"),
                            u.disabled_at.map_or("active".to_string(), |d| format!(
                                "disabled {}",
                                d.format("%Y-%m-%d")
                            ))
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        UsersCommand::Disable { username, enable } => {
            if store.set_user_disabled(username, !enable, now).await? {
                println!(
                    "user '{username}' {}",
                    if *enable {
                        "enabled"
                    } else {
                        "disabled and signed out"
                    }
                );
                Ok(exit::OK)
            } else {
                Err(CliError::Input(format!("no user '{username}'")))
            }
        }
        UsersCommand::ResetPassword { username, .. } => {
            if store
                .set_password(username, hashed.as_deref().unwrap_or_default(), now)
                .await?
            {
                eprintln!("password of '{username}' changed; its sessions are ended");
                show(&prepared, username);
                Ok(exit::OK)
            } else {
                Err(CliError::Input(format!("no user '{username}'")))
            }
        }
    }
}
