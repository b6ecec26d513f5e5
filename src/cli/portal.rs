//! `relance portal`: the debtor portal's links — make one for a customer, check what a
//! link opens to (and why it is refused), revoke every link a customer was given.

use chrono::{NaiveDate, Utc};
use clap::Subcommand;

use super::{exit, load_config, open_store, Cli, CliError, OutputFormat};
use crate::portal_links;

#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Make the customer's portal link (the one its reminders carry); writes nothing
    #[command(
        after_help = "Examples:\n  relance portal link C0000017\n  relance portal link C0000017 --format json\n\nNeeds portal.public_url and portal.keys in relance.yaml (docs/portal.md)."
    )]
    Link {
        /// The customer's external id
        customer: String,
        /// The day the link is made (default: today); it is valid portal.link_days after
        #[arg(long, value_name = "DATE")]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Say which customer a link opens to, or why it is refused; exit 4 when refused
    #[command(
        after_help = "Examples:\n  relance portal check https://pay.example.com/p/AbC...\n  relance portal check AbC... --as-of 2027-03-01"
    )]
    Check {
        /// The link, or its token
        link: String,
        /// The day to check it on (default: today)
        #[arg(long, value_name = "DATE")]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Revoke every link the customer was given (its next reminders carry a new one)
    #[command(after_help = "Example:\n  relance portal revoke C0000017")]
    Revoke {
        /// The customer's external id
        customer: String,
    },
}

pub(super) async fn portal(cli: &Cli, cmd: &PortalCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let portal = &config.portal;
    if !portal.enabled() {
        return Err(CliError::Config(crate::config::ConfigErrors {
            source: config.source.clone(),
            issues: vec![crate::config::Issue::error(
                "portal",
                "the portal is not configured: set portal.public_url and portal.keys (docs/portal.md)",
            )],
        }));
    }
    let store = open_store(&config).await?;
    let today = super::today(&config);
    let result = match cmd {
        PortalCommand::Link {
            customer,
            as_of,
            format,
        } => {
            let day = as_of.unwrap_or(today);
            let Some(link) =
                portal_links::link_for(portal, store.as_ref(), customer, None, day).await?
            else {
                store.close().await;
                return Err(CliError::Input(format!("no customer '{customer}'")));
            };
            let expires = day + chrono::Duration::days(portal.link_days);
            match format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "customer": customer, "link": link, "issued": day, "expires": expires })
                ),
                OutputFormat::Text => {
                    println!("{link}");
                    eprintln!(
                        "valid until {expires} (portal.link_days: {})",
                        portal.link_days
                    );
                }
            }
            Ok(exit::OK)
        }
        PortalCommand::Check {
            link,
            as_of,
            format,
        } => {
            let day = as_of.unwrap_or(today);
            let opened = portal_links::open(portal, store.as_ref(), link, day).await?;
            let code = if opened.is_ok() {
                exit::OK
            } else {
                exit::REJECTED
            };
            match (format, &opened) {
                (OutputFormat::Json, Ok(o)) => println!(
                    "{}",
                    serde_json::json!({ "opens": true, "customer": o.customer.external_id, "issued": o.issued, "expires": o.expires, "action": o.action })
                ),
                (OutputFormat::Json, Err(r)) => println!(
                    "{}",
                    serde_json::json!({ "opens": false, "refused": r.to_string() })
                ),
                (OutputFormat::Text, Ok(o)) => println!(
                    "opens to customer {} ({}), made on {}{}, valid until {}",
                    o.customer.external_id,
                    o.customer.name,
                    o.issued,
                    o.action
                        .map(|a| format!(" for the message of action {a}"))
                        .unwrap_or_default(),
                    o.expires
                ),
                (OutputFormat::Text, Err(r)) => println!("refused: {r}"),
            }
            Ok(code)
        }
        PortalCommand::Revoke { customer } => {
            match store.revoke_portal_links(customer, Utc::now()).await? {
                Some(generation) => {
                    println!("every portal link given to {customer} is revoked (link generation {generation})");
                    Ok(exit::OK)
                }
                None => Err(CliError::Input(format!("no customer '{customer}'"))),
            }
        }
    };
    store.close().await;
    result
}
