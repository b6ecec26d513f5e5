//! `relance rules check`, `relance rules test` and `relance simulate`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use super::{
    check_segments, engine_for, exit, load_config, open_store, parse_date_arg, today, Cli, CliError,
};
use crate::scheduler::pipeline;
use crate::scripting::{probe, registry, testing, DecisionStatus, Evaluator, Limits, RuleRegistry};
use crate::store::AccountFilter;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check every segment's script (compiles, names the rule API knows, runs on sample and real customers)
    #[command(
        after_help = "Example:\n  relance rules check\n\nEach script must compile, use only properties, functions and options of the rule\nAPI (a misspelt name is reported with the nearest known one), compare numbers with\nnumbers, and run without error for the customers of a generated sample portfolio and,\nwhere the configured ledger exists, up to 50 real customers of its segment. Problems\nare reported as FILE:LINE:COLUMN with the line and a caret.\n\nAlso renders every email and SMS template the scripts use, in French and English,\nwith the decisions the rules take on the sample portfolio: a missing template or an\nunknown variable is an error; an SMS longer than channels.sms.max_segments is a\nwarning. Reads only.\n\nExit code 4 when a script fails a check or a template does not render."
    )]
    Check,
    /// Run the rule tests kept next to the scripts (rules/smb.test.yaml for rules/smb.rhai)
    #[command(
        after_help = "Example:\n  relance rules test\n  relance rules test --segment smb\n\nEach case gives a customer's facts and a date, and the decisions expected.\nExit code 4 when a case fails. The format is in docs/rules.md."
    )]
    Test(RulesTestArgs),
    /// Compare two versions of a script on the real ledger: the actions only one plans, per step, and why
    #[command(after_help = super::rules_diff::DIFF_HELP)]
    Diff(super::rules_diff::RulesDiffArgs),
    /// Replay a script over a past period, the ledger as it stood each day, against what the live rules did
    #[command(after_help = super::rules_diff::BACKTEST_HELP)]
    Backtest(super::rules_diff::RulesBacktestArgs),
}

#[derive(Debug, Args)]
pub struct RulesTestArgs {
    /// Only the tests of this segment
    #[arg(long)]
    pub segment: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Evaluate as if today were this date
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// Only customers of this segment (repeatable)
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Vec<String>,
    /// Only this customer (external id)
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// table for people, json for one object per line (documented in docs/rules.md)
    #[arg(long, value_enum, default_value_t = SimulateFormat::Table)]
    pub format: SimulateFormat,
    /// Only decisions with this status (repeatable): planned, already-done, blocked, error
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Vec<DecisionStatus>,
    /// Worker threads evaluating rules [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulateFormat {
    Table,
    Json,
}

fn parse_status(s: &str) -> Result<DecisionStatus, String> {
    match s {
        "planned" => Ok(DecisionStatus::Planned),
        "already-done" => Ok(DecisionStatus::AlreadyDone),
        "blocked" => Ok(DecisionStatus::Blocked),
        "error" => Ok(DecisionStatus::Error),
        other => Err(format!(
            "'{other}' is not a status (planned, already-done, blocked, error)"
        )),
    }
}

pub(super) const SIMULATE_HELP: &str = "\
Evaluates the ledger with the segments' rules as if it were --as-of, and prints what
would be done. Writes nothing, sends nothing.

Examples:
  relance simulate --as-of 2026-12-01
  relance simulate --as-of 2026-12-01 --segment smb --status planned
  relance simulate --customer C0000017 --format json

JSON lines carry customer, segment, kind, step, template, invoices, amount, currency,
status (planned, already-done, blocked, error), detail, options, repeat, rule_file
and rule_hash.

Exit codes: 0 no rule error; 4 the rule failed for some customers (status error, with
FILE:LINE:COLUMN in the detail); 1 some customers could not be evaluated at all.";

pub(super) async fn check(cli: &Cli) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let (mut set, mut errors) = registry::load_all(&config, &engine_for(&config));
    // Each script that compiles is tried on the sample portfolio and, where the ledger
    // is reachable, on real customers of its segment.
    let as_of = today(&config);
    let store = super::existing_store(&config).await;
    let probe = crate::runtime::probe_for(&config, store.as_deref(), as_of).await;
    if let Some(store) = &store {
        store.close().await;
    }
    let probe = probe?;
    let evaluator = Evaluator::new(&config, Limits::default());
    for r in set.all() {
        match probe::try_rule(&evaluator, &r, &probe, as_of) {
            Ok(tried) => println!(
                "{}: OK (segment {}, sha256 {}, ran for {tried} customers)",
                r.file,
                r.label(),
                &r.hash[..12]
            ),
            Err(e) => {
                set.remove(&r.segment, r.variant.as_deref());
                errors.push(e);
            }
        }
    }
    for e in &errors {
        eprintln!("{}", e.long());
    }
    let report = super::template_check::check(&config, &set, &probe.samples, as_of);
    super::print_template_report(&report, true);
    if errors.is_empty() && report.errors.is_empty() {
        Ok(exit::OK)
    } else {
        if !errors.is_empty() {
            eprintln!(
                "{} script{} with errors",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
        }
        if !report.errors.is_empty() {
            eprintln!(
                "{} template error{}",
                report.errors.len(),
                if report.errors.len() == 1 { "" } else { "s" }
            );
        }
        Ok(exit::REJECTED)
    }
}

pub(super) fn test(cli: &Cli, args: &RulesTestArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let (set, errors) = registry::load_all(&config, &engine_for(&config));
    for e in &errors {
        eprintln!("{}", e.long());
    }
    let evaluator = Evaluator::new(&config, Limits::default());
    let mut files = testing::discover(&config.segments);
    if let Some(s) = &args.segment {
        if let Some(why) = config.unknown_segment(s) {
            return Err(CliError::Input(why));
        }
        files.retain(|t| t.segment == *s);
    }
    if files.is_empty() {
        println!(
            "no rule tests found (they are kept next to the scripts, e.g. rules/smb.test.yaml)"
        );
        return Ok(if errors.is_empty() {
            exit::OK
        } else {
            exit::REJECTED
        });
    }
    let (mut passed, mut failed) = (0, 0);
    for testing::TestFile {
        segment,
        variant,
        path,
    } in files
    {
        let label = registry::slot_label(&segment, variant.as_deref());
        // A script that does not compile was reported above, once: its cases cannot run.
        if let Some(e) = errors.iter().find(|e| e.segment == label) {
            failed += 1;
            println!(
                "FAIL  {}: not run: {} has errors (above)",
                registry::display_path(&path, Some(&config.base_dir)),
                e.diagnostic.file
            );
            continue;
        }
        // A variant's cases run against the variant's script, whatever the assignment of
        // their customers.
        let Some(script) = set.script(&segment, variant.as_deref()) else {
            continue;
        };
        let result = testing::run_file(
            &path,
            &config.base_dir,
            &segment,
            &registry::RuleSet::only(script.clone()),
            &evaluator,
            config.company.currency,
        );
        if let Some(e) = result.error {
            eprintln!("{e}");
            failed += 1;
            continue;
        }
        for case in result.cases {
            let place = case
                .line
                .map_or(case.file.clone(), |l| format!("{}:{l}", case.file));
            match case.failure {
                None => {
                    passed += 1;
                    println!("ok    {place}: {}", case.name);
                }
                Some(diff) => {
                    failed += 1;
                    println!("FAIL  {place}: {}\n{diff}", case.name);
                }
            }
        }
    }
    println!("\nrule tests: {passed} passed, {failed} failed");
    Ok(if failed == 0 && errors.is_empty() {
        exit::OK
    } else {
        exit::REJECTED
    })
}

fn shorten<T: AsRef<str>>(list: &[T], max: usize) -> String {
    let names: Vec<&str> = list.iter().map(AsRef::as_ref).collect();
    if names.len() <= max {
        names.join(", ")
    } else {
        format!("{} +{}", names[..max].join(", "), names.len() - max)
    }
}

pub(super) async fn simulate(cli: &Cli, args: &SimulateArgs) -> Result<u8, CliError> {
    let config = Arc::new(load_config(cli)?);
    check_segments(&config, &args.segment)?;
    let store = open_store(&config).await?;
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    let (registry, errors) = RuleRegistry::load(&config, engine_for(&config));
    for e in &errors {
        eprintln!("warning: {}", e.diagnostic.short());
    }
    let filter = AccountFilter {
        segments: (!args.segment.is_empty()).then(|| args.segment.clone()),
        customer: args.customer.clone(),
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let cfg = config.clone();
    let make: Arc<dyn Fn() -> Evaluator + Send + Sync> =
        Arc::new(move || Evaluator::new(&cfg, Limits::default()));
    let opts = pipeline::PipelineOptions {
        workers,
        batch: 500,
        today: as_of,
    };
    let format = args.format;
    let statuses = args.status.clone();
    let started = Instant::now();
    let mut counts = [0u64; 4];
    let progress = if format == SimulateFormat::Table
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        indicatif::ProgressBar::hidden()
    } else {
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} customers evaluated ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == SimulateFormat::Table {
        let _ = writeln!(
            out,
            "{:<12} {:<16} {:<16} {:<28} {:>12}  {:<12} DETAIL",
            "CUSTOMER", "KIND", "STEP", "INVOICES", "AMOUNT", "STATUS"
        );
    }
    let stats = pipeline::run(
        store.clone(),
        filter,
        registry.current(),
        make,
        opts,
        |outcomes| {
            progress.inc(outcomes.len() as u64);
            for o in outcomes {
                for d in o.decisions {
                    counts[match d.status {
                        DecisionStatus::Planned => 0,
                        DecisionStatus::AlreadyDone => 1,
                        DecisionStatus::Blocked => 2,
                        DecisionStatus::Error => 3,
                    }] += 1;
                    if !statuses.is_empty() && !statuses.contains(&d.status) {
                        continue;
                    }
                    let _ = match format {
                        SimulateFormat::Json => {
                            writeln!(out, "{}", serde_json::to_string(&d).unwrap_or_default())
                        }
                        SimulateFormat::Table => writeln!(
                            out,
                            "{}",
                            format!(
                                "{:<12} {:<16} {:<16} {:<28} {:>12}  {:<12} {}",
                                d.customer,
                                d.kind.map_or("-", |k| k.as_str()),
                                d.step.as_deref().unwrap_or("-"),
                                shorten(&d.invoices, 2),
                                if d.invoices.is_empty() {
                                    String::new()
                                } else {
                                    format!("{} {}", d.amount, d.currency)
                                },
                                d.status.as_str(),
                                d.detail
                            )
                            .trim_end()
                        ),
                    };
                }
            }
            std::future::ready(Ok(()))
        },
    )
    .await?;
    progress.finish_and_clear();
    let _ = out.flush();
    drop(out);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulated {} customers with {} open invoices as of {as_of} in {secs:.2} s: {} planned, {} already done, {} blocked, {} errors (nothing written, nothing sent)",
        stats.customers, stats.invoices, counts[0], counts[1], counts[2], counts[3]
    );
    store.close().await;
    // Customers not evaluated, or whose rule failed, would not be dunned: say so in the
    // exit code too, so a script running this sees it.
    if let Some(why) = stats.unaccounted() {
        eprintln!("error: {why}");
        return Ok(exit::FAILURE);
    }
    Ok(if counts[3] > 0 {
        exit::REJECTED
    } else {
        exit::OK
    })
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The customer (external id)
    pub customer: String,
    /// Evaluate as if today were this date
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// text for people, json for tools (the same object as GET /v1/customers/{id}/explain)
    #[arg(long, value_enum, default_value_t = super::OutputFormat::Text)]
    pub format: super::OutputFormat,
}

pub(super) const EXPLAIN_HELP: &str = "\
Shows one customer's evaluation in full: the facts the rule saw (every property of
the rule API), the actions the script built and the invoices each named, the fate of
each (planned, already done, blocked, error), every condition the script evaluated
with the values it compared and its outcome (why an action did or did not fire),
and what print and debug wrote. Writes nothing, sends nothing.

Examples:
  relance explain C0000017
  relance explain C0000017 --as-of 2026-12-15
  relance explain C0000017 --format json";

pub(super) async fn explain(cli: &Cli, args: &ExplainArgs) -> Result<u8, CliError> {
    let config = Arc::new(load_config(cli)?);
    let store = open_store(&config).await?;
    let as_of = args.as_of.unwrap_or_else(|| today(&config));
    let account = crate::store::account_of(store.as_ref(), &args.customer).await?;
    let Some(account) = account else {
        store.close().await;
        return Err(CliError::Input(format!(
            "no customer with external id '{}'",
            args.customer
        )));
    };
    let (registry, errors) = RuleRegistry::load(&config, engine_for(&config));
    for e in &errors {
        eprintln!("warning: {}", e.diagnostic.short());
    }
    let evaluator = Evaluator::new(&config, Limits::default());
    let mut x = crate::scripting::explain::explain(
        &evaluator,
        &registry.current(),
        account,
        as_of,
        Arc::new(config.calendar.clone()),
    );
    crate::outbox::explain_deferrals(store.as_ref(), &config, &mut x, chrono::Utc::now()).await?;
    store.close().await;
    if args.format == super::OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&x).unwrap_or_default());
        return Ok(exit::OK);
    }
    print!("{}", explanation_text(&x));
    Ok(exit::OK)
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "()".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The explanation for people.
pub(crate) fn explanation_text(x: &crate::scripting::explain::Explanation) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Customer {} (segment {}), as of {}: {} (sha256 {})",
        x.customer,
        x.segment,
        x.as_of,
        x.rule_file.as_deref().unwrap_or("no rule script"),
        x.rule_hash
            .as_deref()
            .map_or("-", |h| &h[..12.min(h.len())])
    );
    let _ = writeln!(o, "\nFacts the rule saw (customer.*):");
    let width = x.facts.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in &x.facts {
        let _ = writeln!(o, "  {k:<width$}  {}", value_text(v));
    }
    let _ = writeln!(o, "\nOpen invoices:");
    if x.invoices.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for inv in &x.invoices {
        let get = |k: &str| inv.get(k).map(value_text).unwrap_or_default();
        let blocked = get("blocked_reason");
        let steps = get("steps");
        let _ = writeln!(
            o,
            "  {:<14} due {}  open {:>12}  {:>4} days overdue{}{}",
            get("number"),
            get("due_date"),
            get("open_amount"),
            get("days_overdue"),
            if blocked.is_empty() || blocked == "()" {
                String::new()
            } else {
                format!("  blocked: {blocked}")
            },
            if steps == "[]" || steps.is_empty() {
                String::new()
            } else {
                format!("  steps: {steps}")
            },
        );
    }
    let _ = writeln!(o, "\nActions the script built:");
    if x.calls.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for c in &x.calls {
        let named = if c.invoices.is_empty() {
            "names no invoice: dropped".to_string()
        } else {
            format!("names {}", c.invoices.join(", "))
        };
        let _ = writeln!(
            o,
            "  line {:>3}: {:<16} {named}    {}",
            c.line.unwrap_or(0),
            c.constructor,
            c.source
        );
    }
    let _ = writeln!(o, "\nDecisions:");
    if x.decisions.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for d in &x.decisions {
        let _ = writeln!(
            o,
            "  {:<16} {:<16} {:<24} {:<12} {}",
            d.kind.map_or("-", |k| k.as_str()),
            d.step.as_deref().unwrap_or("-"),
            shorten(&d.invoices, 3),
            d.status.as_str(),
            d.detail
        );
    }
    for d in &x.deferrals {
        let _ = writeln!(
            o,
            "  {} {}: would wait until {} ({})",
            d.kind,
            d.step,
            d.until.format("%Y-%m-%d %H:%M UTC"),
            d.reason
        );
    }
    let _ = writeln!(o, "\nConditions evaluated (why, and why not):");
    if x.conditions.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for c in &x.conditions {
        let _ = writeln!(
            o,
            "  line {:>3}: {}\n            {} -> {}",
            c.line.unwrap_or(0),
            c.source,
            c.evaluated,
            c.outcome
        );
    }
    if !x.output.is_empty() {
        let _ = writeln!(o, "\nprint and debug:");
        for l in &x.output {
            let _ = writeln!(o, "  {l}");
        }
    }
    o
}
