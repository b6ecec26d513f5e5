//! `relance rules diff`: what a rule change would do on the real ledger, before it goes
//! live.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::Args;

use super::{exit, load_config, open_store, parse_date_arg, today, Cli, CliError, OutputFormat};
use crate::config::Config;
use crate::scheduler::diff::{self, DiffError, DiffOptions, RuleDiff, RuleVersion, SegmentChange};

pub(super) const DIFF_HELP: &str = "\
Evaluates two versions of a segment's script on the real ledger as of a date (each
customer once, with both) and compares the actions they plan, step by step: actions
only the old version plans, only the new one, planned by both with different invoices
or options; the amounts they name and the customers affected. The summary's first
lines are the changes that matter most (formal notices and insurer handovers first).
The first customers of each kind of change are listed with the conditions of the
script that decided differently. Reads only: nothing is written, nothing is sent.

A version is a script file, git:REF (the segment's configured script at a git revision
of its folder: git:HEAD, git:main~1, git:v1.4) or live (the configured script as it
stands). Without --segment, every segment whose versions are both git:REF or live.

Examples:
  relance rules diff --segment smb --to rules/smb_new.rhai
  relance rules diff --segment smb --from git:HEAD --to live
  relance rules diff --from git:v1.4 --to live --as-of 2026-12-15 --format json

Exit codes: 0 the comparison ran (whatever it found), 2 a version cannot be read
(no such file, unknown git revision), 4 a version does not compile.";

#[derive(Debug, Args)]
pub struct RulesDiffArgs {
    /// The segment whose script changes [default: every segment, when both versions are git:REF or live]
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// The version in force: a file, git:REF or live
    #[arg(long, value_name = "VERSION", default_value = "live")]
    pub from: String,
    /// The version proposed: a file, git:REF or live
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Evaluate as if today were this date [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    /// Customers listed per kind of change, with their reasons (0 to 100)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub examples: u16,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// A spinner on standard error for people (`template` in indicatif's terms); hidden
/// for `--format json`.
fn progress(format: OutputFormat, template: &str) -> indicatif::ProgressBar {
    if format != OutputFormat::Text {
        return indicatif::ProgressBar::hidden();
    }
    let pb =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// A diff or a backtest that could not run: a version that does not compile is input
/// rejected (shown as `rules check` shows it), a store error a failure.
fn refused(e: DiffError) -> CliError {
    match e {
        DiffError::Store(e) => CliError::Store(e),
        DiffError::Rule { ref long, .. } => {
            if !long.is_empty() {
                eprintln!("{}", long.trim_end());
            }
            CliError::Input(e.to_string())
        }
    }
}

/// Whether a version names the configured script (rather than a file of its own).
fn follows_config(v: &str) -> bool {
    v == "live" || v.starts_with("live:") || v.starts_with("git:")
}

/// The configured script a `live` or `git:` version names: the segment's, or for a
/// segment with variants the one named after a colon (`live:fast`, `git:HEAD:fast`).
fn configured_script<'a>(
    config: &'a Config,
    segment: &str,
    variant: Option<&str>,
    v: &str,
) -> Result<&'a Path, CliError> {
    let seg = config
        .segments
        .get(segment)
        .ok_or_else(|| CliError::Usage(config.unknown_segment(segment).unwrap_or_default()))?;
    let names = || {
        seg.scripts
            .iter()
            .filter_map(|s| s.variant.as_deref())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (seg.has_variants(), variant) {
        (true, None) => Err(CliError::Usage(format!(
            "{v}: segment {segment} runs an experiment: name the variant after a colon ({v}:VARIANT; its variants are {})",
            names()
        ))),
        (false, Some(x)) => Err(CliError::Usage(format!(
            "{v}: segment {segment} has no variants, so no variant '{x}'"
        ))),
        _ => seg
            .script(variant)
            .map(|s| s.rules.as_path())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{v}: segment {segment} has no variant '{}' (its variants are {})",
                    variant.unwrap_or_default(),
                    names()
                ))
            }),
    }
}

/// Reads version `v` of `segment`'s script.
fn read_version(config: &Config, segment: &str, v: &str) -> Result<RuleVersion, CliError> {
    let has_variants = config
        .segments
        .get(segment)
        .is_some_and(crate::config::Segment::has_variants);
    if let Some(rest) = v.strip_prefix("git:") {
        let (rev, variant) = match rest.rsplit_once(':') {
            Some((rev, variant)) if has_variants => (rev, Some(variant)),
            _ => (rest, None),
        };
        let configured = configured_script(config, segment, variant, v)?;
        let shown = crate::scripting::registry::display_path(configured, Some(&config.base_dir));
        return git_version(segment, configured, &shown, rev);
    }
    if v == "live" || v.starts_with("live:") {
        let variant = v.strip_prefix("live:");
        let configured = configured_script(config, segment, variant, v)?;
        let shown = crate::scripting::registry::display_path(configured, Some(&config.base_dir));
        let source =
            crate::scripting::registry::configured_source(config, configured).map_err(|e| {
                CliError::Usage(format!(
                    "live version of {segment}: cannot read {shown}: {e}"
                ))
            })?;
        return Ok(RuleVersion {
            label: v.to_string(),
            file: shown,
            source,
        });
    }

    let source =
        std::fs::read_to_string(v).map_err(|e| CliError::Usage(format!("cannot read {v}: {e}")))?;
    Ok(RuleVersion {
        label: v.to_string(),
        file: v.to_string(),
        source,
    })
}

/// The configured script at git revision `rev` of its folder.
fn git_version(
    segment: &str,
    configured: &Path,
    shown: &str,
    rev: &str,
) -> Result<RuleVersion, CliError> {
    if rev.is_empty() || rev.starts_with('-') || rev.contains(':') {
        return Err(CliError::Usage(format!(
            "git:{rev}: name a revision (git:HEAD, git:main~1, a tag)"
        )));
    }
    let dir = configured
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = configured
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("show")
        .arg(format!("{rev}:./{name}"))
        .output()
        .map_err(|e| CliError::Usage(format!("git:{rev}: cannot run git: {e}")))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::Usage(format!(
            "git:{rev} version of {segment} ({shown}): {}",
            why.trim().lines().next().unwrap_or("git show failed")
        )));
    }
    let source = String::from_utf8(out.stdout)
        .map_err(|_| CliError::Usage(format!("git:{rev} version of {shown} is not valid UTF-8")))?;
    Ok(RuleVersion {
        label: format!("git:{rev}"),
        file: format!("{shown}@{rev}"),
        source,
    })
}

pub(super) async fn diff(cli: &Cli, a: &RulesDiffArgs) -> Result<u8, CliError> {
    let config = Arc::new(load_config(cli)?);
    let segments: Vec<String> = match &a.segment {
        Some(s) => {
            if let Some(why) = config.unknown_segment(s) {
                return Err(CliError::Usage(why));
            }
            vec![s.clone()]
        }
        None if follows_config(&a.from) && follows_config(&a.to) => {
            config.segments.keys().cloned().collect()
        }
        None if config.segments.len() == 1 => config.segments.keys().cloned().collect(),
        None => {
            return Err(CliError::Usage(
                "a script file is for one segment: name it with --segment".into(),
            ))
        }
    };
    let mut changes = Vec::new();
    for s in &segments {
        changes.push(SegmentChange {
            segment: s.clone(),
            old: read_version(&config, s, &a.from)?,
            new: read_version(&config, s, &a.to)?,
        });
    }
    let as_of = a.as_of.unwrap_or_else(|| today(&config));
    let store = open_store(&config).await?;
    let pb = progress(
        a.format,
        "{spinner} evaluating every customer with both versions ({elapsed})",
    );
    let result = diff::diff(
        store.clone(),
        config.clone(),
        &changes,
        &DiffOptions {
            as_of,
            examples: usize::from(a.examples),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        },
    )
    .await;
    pb.finish_and_clear();
    store.close().await;
    let d = match result {
        Ok(d) => d,
        Err(e) => return Err(refused(e)),
    };
    match a.format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        }
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text(&d).as_bytes());
        }
    }
    Ok(exit::OK)
}

fn amounts(list: &[diff::Amount]) -> String {
    list.iter()
        .map(|a| format!("{} {}", a.amount, a.currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The diff for people.
pub fn text(d: &RuleDiff) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for v in &d.segments {
        let _ = writeln!(
            s,
            "{}: {} ({}, {}) -> {} ({}, {}), as of {}",
            v.segment,
            v.old.label,
            v.old.file,
            short(&v.old.hash),
            v.new.label,
            v.new.file,
            short(&v.new.hash),
            d.as_of
        );
    }
    for h in &d.headline {
        let _ = writeln!(s, "  {h}");
    }
    if !d.kinds.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<18} {:>9} {:>9} {:>9}",
            "KIND", "OLD", "NEW", "DELTA"
        );
        for k in &d.kinds {
            let _ = writeln!(
                s,
                "{:<18} {:>9} {:>9} {:>+9}",
                k.kind.as_str(),
                k.old,
                k.new,
                k.delta
            );
        }
    }
    let moved: Vec<_> = d
        .steps
        .iter()
        .filter(|x| x.only_old.actions + x.only_new.actions + x.changed.actions > 0)
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<14} {:<18} {:<20} {:>9} {:>9} {:>9} {:>9}  NAMED (ONLY NEW / ONLY OLD)",
            "SEGMENT", "KIND", "STEP", "ONLY OLD", "ONLY NEW", "CHANGED", "SAME"
        );
        for x in moved {
            let named = match (x.only_new.amounts.is_empty(), x.only_old.amounts.is_empty()) {
                (true, true) => String::new(),
                _ => format!(
                    "{} / {}",
                    if x.only_new.amounts.is_empty() {
                        "0".into()
                    } else {
                        amounts(&x.only_new.amounts)
                    },
                    if x.only_old.amounts.is_empty() {
                        "0".into()
                    } else {
                        amounts(&x.only_old.amounts)
                    },
                ),
            };
            let _ = writeln!(
                s,
                "{:<14} {:<18} {:<20} {:>9} {:>9} {:>9} {:>9}  {}",
                x.segment,
                x.kind.as_str(),
                x.step,
                x.only_old.actions,
                x.only_new.actions,
                x.changed.actions,
                x.unchanged,
                named
            );
        }
    }
    for (change, title) in [
        ("only_new", "Only in the new version"),
        ("only_old", "Only in the old version"),
        ("changed", "In both, different invoices or options"),
    ] {
        let list: Vec<_> = d.examples.iter().filter(|e| e.change == change).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title} (first {}):", list.len());
        for e in list {
            let plan = e.new.as_ref().or(e.old.as_ref());
            let what = plan.map_or_else(String::new, |p| {
                format!(": {} ({} {})", p.invoices.join(", "), p.amount, p.currency)
            });
            let _ = writeln!(
                s,
                "  {} {} - {} {}{what}",
                e.customer,
                e.name,
                e.kind.as_str(),
                e.step
            );
            if change == "changed" {
                if let (Some(o), Some(n)) = (&e.old, &e.new) {
                    if o.invoices != n.invoices {
                        let _ = writeln!(s, "      old invoices: {}", o.invoices.join(", "));
                    }
                    if o.options != n.options {
                        let _ = writeln!(
                            s,
                            "      options: {} -> {}",
                            serde_json::Value::Object(o.options.clone()),
                            serde_json::Value::Object(n.options.clone())
                        );
                    }
                }
            }
            for r in &e.reasons {
                let line = r.line.map_or_else(String::new, |l| format!(" line {l}"));
                let verdict = if r.what == "condition" {
                    format!(" is {}", r.outcome)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "      {}{line}: {}  ->  {}{verdict}",
                    r.version, r.source, r.evaluated
                );
            }
        }
    }
    if d.errors.old + d.errors.new > 0 {
        let _ = writeln!(
            s,
            "\nRule errors: {} customers with the old version, {} with the new",
            d.errors.old, d.errors.new
        );
        for (c, e) in &d.errors.new_examples {
            let _ = writeln!(s, "  {c}: {e}");
        }
    }
    let _ = writeln!(
        s,
        "\n{} customers evaluated with both versions; nothing was written or sent.",
        d.customers
    );
    s
}

pub(super) const BACKTEST_HELP: &str = "\
Replays a version of a segment's script over a past period: at each tick date of the
segment's schedule in the period, every customer's account is rebuilt as it stood that
day (invoices issued by then, what was still owed at the end of the day before,
disputes, pauses and promises as they stood), with the actions the replayed script
itself decided on the earlier dates as its history. Compares what it would have done
with what the live rules decided in the period (the action log, whatever became of
each action):
actions per step, contacts (emails, SMS, call tasks), customers contacted, formal
notices, insurer handovers, amounts named, and wasted contacts (naming an invoice paid
in full within the 3 days after). Reads only. What cannot be rebuilt is in
docs/rules-diff.md.

Examples:
  relance rules backtest --segment smb --script proposed/smb.rhai --from 2026-09-01 --to 2026-11-30
  relance rules backtest --segment smb --script live --from 2026-11-01 --to 2026-11-30 --format json

Exit codes: 0 the replay ran, 2 the script cannot be read or the period is wrong,
4 the script does not compile.";

#[derive(Debug, Args)]
pub struct RulesBacktestArgs {
    /// The segment whose customers are replayed
    #[arg(long, value_name = "SEGMENT")]
    pub segment: String,
    /// The script replayed: a file, git:REF or live
    #[arg(long, value_name = "VERSION")]
    pub script: String,
    /// First day of the period
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub from: NaiveDate,
    /// Last day of the period [default: yesterday]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub to: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) async fn backtest(cli: &Cli, a: &RulesBacktestArgs) -> Result<u8, CliError> {
    use crate::scheduler::backtest::{self, BacktestOptions};
    let config = Arc::new(load_config(cli)?);
    if let Some(why) = config.unknown_segment(&a.segment) {
        return Err(CliError::Usage(why));
    }
    let to =
        a.to.unwrap_or_else(|| today(&config).pred_opt().unwrap_or_else(|| today(&config)));
    if a.from > to {
        return Err(CliError::Usage(format!(
            "--from {} is after --to {to}",
            a.from
        )));
    }
    if (to - a.from).num_days() > 366 {
        return Err(CliError::Usage(
            "a backtest covers at most a year (366 days)".into(),
        ));
    }
    let version = read_version(&config, &a.segment, &a.script)?;
    let store = open_store(&config).await?;
    let pb = progress(
        a.format,
        "{spinner} {pos} customers replayed ({per_sec}, {elapsed})",
    );
    let opts = BacktestOptions {
        segment: a.segment.clone(),
        version,
        from: a.from,
        to,
    };
    let result =
        backtest::backtest(store.clone(), config.clone(), &opts, |n| pb.set_position(n)).await;
    pb.finish_and_clear();
    store.close().await;
    let b = match result {
        Ok(b) => b,
        Err(e) => return Err(refused(e)),
    };
    match a.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default()),
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(backtest_text(&b).as_bytes());
        }
    }
    Ok(exit::OK)
}

fn backtest_text(b: &crate::scheduler::backtest::Backtest) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} ({}) replayed from {} to {} ({} tick dates, {} customers)",
        b.segment,
        b.label,
        short(&b.hash),
        b.from,
        b.to,
        b.ticks.len(),
        b.customers
    );
    let _ = writeln!(
        s,
        "\n{:<26} {:>12} {:>12} {:>9}",
        "", "REPLAYED", "LIVE", "DELTA"
    );
    let row = |s: &mut String, name: &str, r: u64, l: u64| {
        let _ = writeln!(s, "{name:<26} {r:>12} {l:>12} {:>+9}", r as i64 - l as i64);
    };
    row(&mut s, "actions", b.replay.actions, b.live.actions);
    row(&mut s, "contacts", b.replay.contacts, b.live.contacts);
    row(
        &mut s,
        "customers contacted",
        b.replay.customers_contacted,
        b.live.customers_contacted,
    );
    row(
        &mut s,
        "formal notices",
        b.replay.formal_notices,
        b.live.formal_notices,
    );
    row(
        &mut s,
        "insurer handovers",
        b.replay.insurer_handovers,
        b.live.insurer_handovers,
    );
    row(
        &mut s,
        "wasted contacts (paid <=3d)",
        b.replay.wasted_contacts,
        b.live.wasted_contacts,
    );
    let currencies: std::collections::BTreeSet<&String> = b
        .replay
        .amounts
        .keys()
        .chain(b.live.amounts.keys())
        .collect();
    for c in currencies {
        let r = b.replay.amounts.get(c).copied().unwrap_or_default();
        let l = b.live.amounts.get(c).copied().unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<26} {r:>12} {l:>12} {:>+9}",
            format!("amounts named ({c})"),
            r - l
        );
    }
    if !b.steps.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<18} {:<20} {:>9} {:>9} {:>9}",
            "KIND", "STEP", "REPLAYED", "LIVE", "DELTA"
        );
        for x in &b.steps {
            let _ = writeln!(
                s,
                "{:<18} {:<20} {:>9} {:>9} {:>+9}",
                x.kind.as_str(),
                x.step,
                x.replay,
                x.live,
                x.delta
            );
        }
    }
    if b.errors > 0 {
        let _ = writeln!(s, "\nthe replayed script failed for {} customers", b.errors);
    }
    let _ = writeln!(s, "\nnothing was written or sent.");
    s
}
