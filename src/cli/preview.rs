//! `relance preview`: the message an action would send, or a template rendered for a
//! customer, without sending anything.

use std::sync::Arc;

use chrono::NaiveDate;
use clap::{ArgGroup, Args};

use super::{exit, load_config, open_store, parse_date_arg, today, Cli, CliError};
use crate::domain::ActionKind;
use crate::store::ClaimedAction;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["action", "customer"])))]
pub struct PreviewArgs {
    /// An action of the log (its id)
    pub action: Option<i64>,
    /// Render a template for this customer (external id) instead, with its overdue invoices
    #[arg(long, value_name = "ID", requires = "template")]
    pub customer: Option<String>,
    /// The template (with --customer)
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// email or sms (with --customer)
    #[arg(long, value_parser = ["email", "sms"], default_value = "email")]
    pub kind: String,
    /// The date the message is written as of (with --customer) [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// Print the HTML part of an email instead of its text
    #[arg(long)]
    pub html: bool,
    /// Write the whole email (RFC 5322, with attachments) to this file, for a mail client
    #[arg(long, value_name = "FILE")]
    pub eml: Option<std::path::PathBuf>,
}

pub(super) const PREVIEW_HELP: &str = "\
Renders the message an action of the log would send (email or SMS), or a template
for a customer, exactly as the transport would carry it, in the customer's language.
Sends nothing, writes nothing to the database.

Examples:
  relance preview 42
  relance preview 42 --html
  relance preview 42 --eml reminder.eml
  relance preview --customer C0000017 --template reminder_2
  relance preview --customer C0000017 --template sms_reminder --kind sms";

pub(super) async fn preview(cli: &Cli, args: &PreviewArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let action = match (args.action, &args.customer) {
        (Some(id), _) => store
            .action_message(id)
            .await?
            .ok_or_else(|| CliError::Input(format!("no action {id} (see relance actions list)"))),
        (None, Some(customer)) => {
            let as_of = args.as_of.unwrap_or_else(|| today(&config));
            let template = args.template.clone().unwrap_or_default();
            for_customer(store.as_ref(), customer, &template, &args.kind, as_of).await
        }
        (None, None) => Err(CliError::Input(
            "an action id or --customer is required".into(),
        )),
    };
    store.close().await;
    let mut action = action?;
    // The link is made when the message is sent; a preview shows its place.
    action.portal_url = crate::portal_links::preview_url(&config.portal);
    let templates = Arc::new(crate::templates::Templates::new(
        &config.channels.templates_dir,
    ));
    let blocked = |e: crate::channels::DeliveryError| CliError::Input(e.to_string());
    match action.kind {
        ActionKind::Email => {
            let composer = crate::runtime::composer_for(&config, templates.clone())?;
            let template = action.template.as_deref().unwrap_or(&action.step);
            let message = composer.compose(&action, template, &[]).map_err(blocked)?;
            if let Some(path) = &args.eml {
                std::fs::write(path, message.formatted()).map_err(|e| {
                    CliError::Failure(format!("cannot write {}: {e}", path.display()))
                })?;
                eprintln!("wrote {}", path.display());
            }
            for h in ["From", "To", "Cc", "Reply-To", "Subject"] {
                if let Some(v) = message.headers().get_raw(h) {
                    println!("{h}: {v}");
                }
            }
            // The body as the templates render it (the message above carries it encoded).
            let ctx = crate::templates::MessageContext::for_action(&config.company, &action);
            let rendered = templates
                .email(template, action.customer.locale, &ctx)
                .map_err(|e| CliError::Input(e.to_string()))?;
            println!();
            println!("{}", if args.html { rendered.html } else { rendered.text });
        }
        ActionKind::Sms => {
            let (to, text) =
                crate::channels::sms::sms_text(&action, &config.company, &templates)
                    .map_err(blocked)?;
            let l = crate::templates::sms_length(&text);
            println!("To: {to}\n\n{text}\n");
            eprintln!(
                "{} characters, {} {} segment{}",
                text.chars().count(),
                l.segments,
                l.encoding,
                if l.segments == 1 { "" } else { "s" }
            );
        }
        other => {
            return Err(CliError::Input(format!(
                "action {} is a {other}: its document is made when it is sent (relance actions document {} writes it once sent)",
                action.id, action.id
            )))
        }
    }
    Ok(exit::OK)
}

/// A message of `template` to `customer` about its overdue invoices (all open ones when
/// none is overdue), as of `as_of`.
async fn for_customer(
    store: &dyn crate::store::Store,
    customer: &str,
    template: &str,
    kind: &str,
    as_of: NaiveDate,
) -> Result<ClaimedAction, CliError> {
    let Some(account) = crate::store::account_of(store, customer).await? else {
        return Err(CliError::Input(format!(
            "no customer with external id '{customer}'"
        )));
    };
    let open: Vec<crate::domain::Invoice> =
        account.invoices.iter().map(|o| o.invoice.clone()).collect();
    let overdue: Vec<crate::domain::Invoice> = open
        .iter()
        .filter(|i| i.days_overdue(as_of) > 0)
        .cloned()
        .collect();
    let invoices = if overdue.is_empty() { open } else { overdue };
    if invoices.is_empty() {
        return Err(CliError::Input(format!(
            "customer {customer} has no open invoice to write about"
        )));
    }
    let currency = invoices[0].currency;
    let amount = invoices.iter().map(|i| i.open_amount).sum();
    Ok(ClaimedAction {
        id: 0,
        key: format!("preview:{customer}:{template}"),
        customer: account.customer,
        kind: if kind == "sms" {
            ActionKind::Sms
        } else {
            ActionKind::Email
        },
        step: template.to_string(),
        template: Some(template.to_string()),
        options: serde_json::json!({}),
        invoices,
        promised: Vec::new(),
        currency: currency.code().to_string(),
        amount,
        attempt: 0,
        decided_on: as_of,
        reminded_before: !account.history.is_empty(),
        portal_url: None,
    })
}
