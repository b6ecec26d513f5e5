//! `relance tick`, `relance dispatch` and `relance actions ...`.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use super::{
    check_segments, engine_for, exit, load_config, open_store, parse_date_arg, today, Cli,
    CliError, OutputFormat,
};
use crate::domain::ActionKind;
use crate::outbox::{instance_name, Step};
use crate::scheduler::run_tick;
use crate::scripting::RuleRegistry;
use crate::store::{ActionFilter, ActionStatus, Store};

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Only this segment (repeatable) [default: every configured segment]
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Vec<String>,
    /// Decide as of this date [default: today in the configured time zone]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Deliver at most one action
    #[arg(long)]
    pub once: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List the action log
    #[command(
        after_help = "Examples:\n  relance actions list --status planned\n  relance actions list --customer C0000017 --since 2026-11-01 --format json"
    )]
    List(ListArgs),
    /// One action: why it was decided (rule, hash, facts) and every attempt
    #[command(after_help = "Example:\n  relance actions show 42")]
    Show {
        id: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Write a document archived with an action (formal notice, statement, handover),
    /// after checking it against its recorded SHA-256
    #[command(
        after_help = "Examples:\n  relance actions document 42 --output notice.pdf\n  relance actions document 57 --kind insurer_handover > handover.json\n\nExit code 1 when the archived file no longer matches the SHA-256 in the action log."
    )]
    Document {
        id: i64,
        /// formal_notice, statement or insurer_handover (default: the action's only one)
        #[arg(long)]
        kind: Option<String>,
        /// File to write (default: standard output)
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Actions held for an operator after an interrupted send, with how far each send
    /// went (claimed, request written to the network, parts delivered)
    #[command(after_help = HELD_HELP)]
    Held {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Put a dead, held or cancelled action back in the queue
    #[command(after_help = "Example:\n  relance actions retry 42")]
    Retry { id: i64 },
    /// Cancel an action that was not sent
    #[command(after_help = "Example:\n  relance actions cancel 42 --reason \"paid by cheque\"")]
    Cancel {
        id: i64,
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub customer: Option<String>,
    #[arg(long, value_parser = |s: &str| s.parse::<ActionStatus>())]
    pub status: Option<ActionStatus>,
    #[arg(long, value_parser = |s: &str| s.parse::<ActionKind>())]
    pub kind: Option<ActionKind>,
    /// Created on or after this date
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub since: Option<NaiveDate>,
    /// Only actions after this id (to page through)
    #[arg(long, value_name = "ID")]
    pub after: Option<i64>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) const TICK_HELP: &str = "\
Evaluates each segment's customers with its rules, as the daemon does on schedule, and
writes the planned actions to the action log (nothing is sent: `relance dispatch` or
`relance serve` deliver them). Running it twice plans nothing twice.

Examples:
  relance tick
  relance tick --segment smb --as-of 2026-12-01

Exit codes: 0 every customer evaluated without error; 4 a rule failed for some customers
(they were not dunned; the others were, and each error is in the action log with status
error); 1 the tick could not evaluate every customer it read (recorded as failed, with
the reason); 3 invalid configuration.";

const HELD_HELP: &str = "\
Examples:
  relance actions held
  relance actions held --format json

A formal notice or an insurer handover whose send was interrupted (the process stopped
after its request was written to the network, before the answer was recorded) is held:
it may have reached the recipient. Check with the recipient (registered-mail provider,
insurer, mail server), then either `relance actions retry ID` (sent again with the same
message id / idempotency key) or `relance actions cancel ID --reason \"delivered\"`.
An interrupted send that provably never left is not held: it is sent again by itself.";

pub(super) const DISPATCH_HELP: &str = "\
Delivers the planned actions that are due through their channels, until none is left
(or one with --once). Until channels are configured, actions are written into the
outbox/ folder: a JSON description of each, and each email as an .eml file, each SMS
as its text.

Example:
  relance dispatch";

pub(super) async fn tick(cli: &Cli, args: &TickArgs) -> Result<u8, CliError> {
    let config = Arc::new(load_config(cli)?);
    check_segments(&config, &args.segment)?;
    let store = open_store(&config).await?;
    let (registry, errors) = RuleRegistry::load(&config, engine_for(&config));
    for e in &errors {
        eprintln!("warning: {}", e.diagnostic.short());
    }
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    let segments: Vec<String> = if args.segment.is_empty() {
        config.segments.keys().cloned().collect()
    } else {
        args.segment.clone()
    };
    let orphans = if args.segment.is_empty() {
        crate::runtime::report_unscripted(store.as_ref(), &config).await?
    } else {
        Vec::new()
    };
    if args.format == OutputFormat::Text {
        for (segment, customers) in &orphans {
            eprintln!("warning: {customers} customer(s) with open invoices in segment '{segment}', which has no rule script: not evaluated");
        }
    }
    let reports = run_tick(
        store.clone(),
        config.clone(),
        registry.current(),
        &segments,
        as_of,
        Utc::now(),
        "manual",
        &instance_name(),
        registry.metrics(),
    )
    .await?;
    if args.format == OutputFormat::Text {
        for r in &reports {
            println!(
                "{}: {} customers, {} new planned actions, {} already planned, {} already done, {} blocked, {} errors",
                r.segment, r.customers, r.planned, r.duplicates, r.already_done, r.blocked, r.errors
            );
        }
        if let Some(why) = reports.iter().find_map(|r| r.failure.as_ref()) {
            eprintln!("error: tick failed: {why}");
        }
    }
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string(&reports).unwrap_or_default());
    }
    store.close().await;
    // A customer not evaluated is a failure; a customer whose rule failed was not dunned:
    // both must reach whoever runs the tick.
    Ok(if reports.iter().any(|r| r.failure.is_some()) {
        exit::FAILURE
    } else if !errors.is_empty() || reports.iter().any(|r| r.errors > 0) {
        exit::REJECTED
    } else {
        exit::OK
    })
}

pub(super) async fn dispatch(cli: &Cli, args: &DispatchArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let d = crate::runtime::dispatcher_for(&config, store.clone())?;
    let steps = if args.once {
        match d.try_execute_once().await? {
            Step::Idle => Vec::new(),
            s => vec![s],
        }
    } else {
        d.drain().await?
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&steps).unwrap_or_default()),
        OutputFormat::Text => {
            for s in &steps {
                match s {
                    Step::Sent { id, provider_ref } => {
                        println!("action {id}: sent ({provider_ref})")
                    }
                    Step::Retrying { id, error } => println!("action {id}: will retry ({error})"),
                    Step::Dead { id, error } => println!("action {id}: dead ({error})"),
                    Step::Failed { id, error } => println!("action {id}: failed ({error})"),
                    Step::Blocked { id, reason } => println!("action {id}: blocked ({reason})"),
                    Step::Cancelled { id, reason } => println!("action {id}: cancelled ({reason})"),
                    Step::LeaseLost { id } => println!("action {id}: taken over by another worker"),
                    Step::Deferred { id, reason } => println!("action {id}: deferred ({reason})"),
                    Step::Idle => {}
                }
            }
            if steps.is_empty() {
                println!("nothing to send");
            }
        }
    }
    store.close().await;
    Ok(exit::OK)
}

pub(super) async fn actions(cli: &Cli, cmd: &ActionsCommand) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let store = open_store(&config).await?;
    let result = match cmd {
        ActionsCommand::List(a) => {
            let since = a.since.and_then(|d| d.and_hms_opt(0, 0, 0)).and_then(|t| {
                t.and_local_timezone(config.timezone)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            });
            let filter = ActionFilter {
                customer: a.customer.clone(),
                status: a.status,
                kind: a.kind,
                since,
                until: None,
                after_id: a.after,
                limit: a.limit.clamp(1, 10_000),
            };
            let rows = store.list_actions(&filter).await?;
            match a.format {
                OutputFormat::Json => {
                    for r in &rows {
                        println!("{}", serde_json::to_string(r).unwrap_or_default());
                    }
                }
                OutputFormat::Text => {
                    println!(
                        "{:>6}  {:<10} {:<12} {:<16} {:<16} {:<10} {:>3}  {:<24} {:>12}",
                        "ID",
                        "DECIDED",
                        "CUSTOMER",
                        "KIND",
                        "STEP",
                        "STATUS",
                        "TRY",
                        "INVOICES",
                        "AMOUNT"
                    );
                    for r in &rows {
                        let inv = if r.invoices.len() > 2 {
                            format!("{} +{}", r.invoices[..2].join(", "), r.invoices.len() - 2)
                        } else {
                            r.invoices.join(", ")
                        };
                        println!(
                            "{:>6}  {:<10} {:<12} {:<16} {:<16} {:<10} {:>3}  {:<24} {:>12}",
                            r.id,
                            r.decided_on,
                            r.customer,
                            r.kind.as_str(),
                            r.step,
                            r.status.as_str(),
                            r.attempts,
                            inv,
                            format!("{} {}", r.amount, r.currency)
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        ActionsCommand::Held { format } => {
            let held = held_actions(store.as_ref()).await?;
            match format {
                OutputFormat::Json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&held).unwrap_or_default()
                    )
                }
                OutputFormat::Text => {
                    if held.is_empty() {
                        println!("no action is held");
                    }
                    for h in &held {
                        println!(
                            "action {} — {} {} for {} (attempt {})",
                            h.id, h.kind, h.step, h.customer, h.attempt
                        );
                        if let Some((by, at)) = &h.claimed {
                            println!("  claimed by {by} at {}", at.format("%Y-%m-%d %H:%M:%S"));
                        }
                        for (part, at) in &h.transmitted {
                            println!(
                                "  request written to the network: {part} at {}",
                                at.format("%Y-%m-%d %H:%M:%S")
                            );
                        }
                        for p in &h.delivered {
                            println!("  already delivered: {} ({})", p.part, p.provider_ref);
                        }
                        if let Some(at) = &h.held_at {
                            println!("  held at {}", at.format("%Y-%m-%d %H:%M:%S"));
                        }
                        println!("  {}", h.evidence);
                    }
                }
            }
            Ok(exit::OK)
        }
        ActionsCommand::Show { id, format } => {
            match store.action(*id).await? {
                None => Err(CliError::Input(format!("no action {id}"))),
                Some(d) => {
                    let documents = store.documents(*id).await?;
                    let parts = store.delivered_parts(*id).await?;
                    let opened = store.action_opened(*id).await?;
                    match format {
                        OutputFormat::Json => {
                            let mut v = serde_json::to_value(&d).unwrap_or_default();
                            v["documents"] = serde_json::to_value(&documents).unwrap_or_default();
                            v["deliveries"] = serde_json::to_value(&parts).unwrap_or_default();
                            v["portal_opened_at"] =
                                serde_json::to_value(opened.map(|(at, _)| at)).unwrap_or_default();
                            v["portal_visits"] = opened.map_or(0, |(_, n)| n).into();
                            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                        }
                        OutputFormat::Text => {
                            let r = &d.row;
                            println!(
                                "action {} — {} {} for {} ({})",
                                r.id,
                                r.kind.as_str(),
                                r.step,
                                r.customer,
                                r.status.as_str()
                            );
                            println!(
                                "  decided on {} by {} (sha256 {})",
                                r.decided_on,
                                r.rule_file,
                                r.rule_hash.get(..12).unwrap_or(&r.rule_hash)
                            );
                            println!(
                                "  invoices: {} — {} {}",
                                r.invoices.join(", "),
                                r.amount,
                                r.currency
                            );
                            println!("  key: {}", r.key);
                            if let Some((at, visits)) = opened {
                                println!(
                                    "  portal link opened on {} ({visits} visit{})",
                                    at.with_timezone(&config.timezone)
                                        .format("%Y-%m-%d at %H:%M"),
                                    if visits == 1 { "" } else { "s" }
                                );
                            }
                            if let Some(p) = &r.provider_ref {
                                println!("  provider reference: {p}");
                            }
                            for p in &parts {
                                println!(
                                    "  delivered by {}: {} ({})",
                                    p.part,
                                    p.provider_ref,
                                    p.at.format("%Y-%m-%d %H:%M:%S")
                                );
                            }
                            for doc in &documents {
                                println!(
                                    "  document {}: {} {} bytes, sha256 {} ({})",
                                    doc.kind,
                                    doc.reference,
                                    doc.size,
                                    doc.sha256,
                                    match (doc.pruned_at, doc.location.as_deref()) {
                                        (Some(at), _) => format!(
                                            "removed on {} (retention); the SHA-256 is kept",
                                            at.format("%Y-%m-%d")
                                        ),
                                        (None, Some(l)) => l.to_string(),
                                        (None, None) => "in the database".to_string(),
                                    }
                                );
                            }
                            println!("  options: {}", d.options);
                            if d.facts.is_null() {
                                println!("  facts: not kept (older than retention.facts_days, or erased)");
                            } else {
                                println!("  facts: {}", d.facts);
                            }
                            println!("  history:");
                            for e in &d.events {
                                println!(
                                    "    {}  {:<12} attempt {}  {}{}",
                                    e.at.format("%Y-%m-%d %H:%M:%S"),
                                    e.status,
                                    e.attempt,
                                    e.detail.as_deref().unwrap_or(""),
                                    e.provider_ref
                                        .as_deref()
                                        .map(|p| format!(" [{p}]"))
                                        .unwrap_or_default()
                                );
                            }
                        }
                    }
                    Ok(exit::OK)
                }
            }
        }
        ActionsCommand::Document { id, kind, output } => {
            let docs = store.documents(*id).await?;
            if store.action(*id).await?.is_none() {
                return Err(CliError::Input(format!("no action {id}")));
            }
            let doc = match kind {
                Some(k) => docs.iter().find(|d| &d.kind == k),
                None if docs.len() == 1 => docs.first(),
                None if docs.is_empty() => None,
                None => {
                    let kinds: Vec<&str> = docs.iter().map(|d| d.kind.as_str()).collect();
                    return Err(CliError::Input(format!(
                        "action {id} has several documents ({}): choose one with --kind",
                        kinds.join(", ")
                    )));
                }
            };
            let Some(doc) = doc else {
                return Err(CliError::Input(format!(
                    "action {id} has no {} document",
                    kind.as_deref().unwrap_or("archived")
                )));
            };
            let archive = crate::documents::archive::Archive::new(
                store.clone(),
                config.channels.documents.archive.clone(),
            );
            let bytes = archive
                .content(doc)
                .await
                .map_err(|e| CliError::Failure(e.to_string()))?;
            match output {
                Some(path) => {
                    std::fs::write(path, &bytes).map_err(|e| {
                        CliError::Failure(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "{} {} written to {} ({} bytes, sha256 {} verified)",
                        doc.kind,
                        doc.reference,
                        path.display(),
                        bytes.len(),
                        doc.sha256
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(&bytes)
                        .map_err(|e| CliError::Failure(format!("cannot write: {e}")))?;
                }
            }
            Ok(exit::OK)
        }
        ActionsCommand::Retry { id } => {
            store.retry_action(*id, Utc::now()).await?;
            println!("action {id} requeued");
            Ok(exit::OK)
        }
        ActionsCommand::Cancel { id, reason } => {
            store.cancel_action(*id, reason, Utc::now()).await?;
            println!("action {id} cancelled");
            Ok(exit::OK)
        }
    };
    store.close().await;
    result
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Dispatch workers (1 to 64)
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub workers: usize,
    /// Seconds given to in-flight work at shutdown
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// Serve the HTTP API on this address (overrides api.listen), e.g. 127.0.0.1:8080;
    /// port 0 picks a free port
    #[arg(long, env = "RELANCE_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

pub(super) const SERVE_HELP: &str = "\
Runs the scheduler (each segment on its cron schedule, with a catch-up tick for a slot
missed while stopped), the dispatch workers and the rule reloader (rule files are
re-read when they change and on SIGHUP; a version that does not compile, is empty, is
not UTF-8 or was deleted is rejected and the previous one keeps running). SIGTERM or
SIGINT stop it cleanly: no new work is claimed, in-flight work gets --grace seconds,
exit code 0.

With the embedded default configuration and an empty ledger, the sample portfolio is
loaded first, and every action goes to the outbox/ folder: nothing is sent for real.

The HTTP API (docs/http-api.md: ingestion, collectors' actions, audit, /healthz,
/readyz, /metrics) runs when api.listen is configured or --listen is given; the
address it listens on is logged at start.

Examples:
  relance serve
  relance serve --listen 127.0.0.1:8080
  relance --config /etc/relance/relance.yaml --log-format json serve --workers 4";

pub(super) async fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8, CliError> {
    let shutdown = crate::runtime::shutdown_signal();
    let config = Arc::new(load_config(cli)?);
    let listener = match args.listen.or(config.api.listen) {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::Failure(format!("cannot listen on {addr}: {e}")))?,
        ),
    };
    let opts = crate::runtime::ServeOptions {
        dispatch_workers: args.workers,
        grace: std::time::Duration::from_secs(args.grace),
        ..crate::runtime::ServeOptions::default()
    };
    crate::runtime::launch(config, opts, listener, shutdown).await?;
    Ok(exit::OK)
}

/// A held action and the evidence of how far its interrupted send went.
#[derive(Debug, serde::Serialize)]
struct HeldAction {
    id: i64,
    customer: String,
    kind: String,
    step: String,
    attempt: i64,
    /// Who claimed the interrupted attempt, and when.
    claimed: Option<(String, chrono::DateTime<Utc>)>,
    /// Parts whose request was written to the network in that attempt, and when.
    transmitted: Vec<(String, chrono::DateTime<Utc>)>,
    /// Parts recorded as delivered (a formal notice by email and registered mail).
    delivered: Vec<crate::store::documents::DeliveredPart>,
    held_at: Option<chrono::DateTime<Utc>>,
    /// What that means for the operator.
    evidence: String,
}

async fn held_actions(store: &dyn Store) -> Result<Vec<HeldAction>, CliError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .list_actions(&ActionFilter {
                status: Some(ActionStatus::Held),
                after_id: after,
                limit: 500,
                ..Default::default()
            })
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for r in rows {
            let Some(d) = store.action(r.id).await? else {
                continue;
            };
            let attempt = d.row.attempts;
            let of_attempt = |status: &str| {
                d.events
                    .iter()
                    .filter(|e| e.attempt == attempt && e.status == status)
                    .collect::<Vec<_>>()
            };
            let claimed = of_attempt("sending").last().map(|e| {
                let by = e.detail.as_deref().unwrap_or("");
                (by.trim_start_matches("claimed by ").to_string(), e.at)
            });
            let transmitted: Vec<_> = of_attempt("transmitting")
                .iter()
                .map(|e| (e.detail.clone().unwrap_or_default(), e.at))
                .collect();
            let held_at = of_attempt("held").last().map(|e| e.at);
            let delivered = store.delivered_parts(r.id).await?;
            let evidence = if transmitted.is_empty() {
                "no record of the request leaving: held before this version recorded sends as they left; it may or may not have reached the recipient".to_string()
            } else {
                format!(
                    "the request was written to the network ({}) and no answer was recorded: it may have reached the recipient; check before `relance actions retry {}`",
                    transmitted
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.id
                )
            };
            out.push(HeldAction {
                id: r.id,
                customer: r.customer.clone(),
                kind: r.kind.as_str().to_string(),
                step: r.step.clone(),
                attempt,
                claimed,
                transmitted,
                delivered,
                held_at,
                evidence,
            });
        }
    }
    Ok(out)
}
