//! Rule scripts, compiled once per version. The registry swaps a script's AST only when
//! the new version compiles; otherwise the previous one keeps running and the error is
//! reported loudly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::digest::sha256_hex;
use rhai::{Dynamic, Engine, Scope, AST};

use super::decide::RuleRef;
use super::diagnostics::Diagnostic;
use super::evaluate::Evaluator;
use super::lint::{self, KnownNames};
use super::probe::{try_rule, Probe};
use super::Limits;
use crate::config::{Config, Source};
use crate::metrics::Metrics;

/// One segment's compiled script (or one variant's, for a segment with variants).
#[derive(Debug)]
pub struct CompiledRule {
    pub segment: String,
    /// The variant of the segment's experiment this script is, if any.
    pub variant: Option<String>,
    pub path: PathBuf,
    /// The path as shown to people (relative to the working directory when possible).
    pub file: String,
    /// SHA-256 of the source, hex.
    pub hash: String,
    pub source: Arc<str>,
    pub ast: Arc<AST>,
    /// File and hash as decisions carry them.
    pub rule: RuleRef,
}

impl CompiledRule {
    pub fn rule_ref(&self) -> RuleRef {
        self.rule.clone()
    }

    /// `smb` or `smb (variant fast)`.
    pub fn label(&self) -> String {
        slot_label(&self.segment, self.variant.as_deref())
    }
}

/// How a segment's script is named to people: `smb`, or `smb (variant fast)`.
pub fn slot_label(segment: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{segment} (variant {v})"),
        None => segment.to_string(),
    }
}

/// The variants of a segment's experiment: how customers are assigned, and each
/// variant's script (those that compile).
#[derive(Debug, Clone)]
pub struct Variants {
    pub segment: crate::config::Segment,
    pub by_variant: HashMap<String, Arc<CompiledRule>>,
}

/// The scripts in force, by segment.
#[derive(Debug, Default, Clone)]
pub struct RuleSet {
    /// The script of each segment without variants. A script set here for a segment
    /// with variants evaluates all of its customers (a comparison of versions does so).
    pub by_segment: HashMap<String, Arc<CompiledRule>>,
    /// The segments that split their customers between variants.
    pub variants: HashMap<String, Variants>,
}

impl RuleSet {
    /// The script of a segment without variants.
    pub fn get(&self, segment: &str) -> Option<&Arc<CompiledRule>> {
        self.by_segment.get(segment)
    }

    /// The script that evaluates `customer` (its external id) of `segment`: the
    /// segment's own, or the one of the variant the customer is assigned to.
    ///
    /// # Errors
    /// Why there is none: no such segment in the configuration, or its script (the
    /// variant's) does not compile.
    pub fn for_customer(
        &self,
        segment: &str,
        customer: &str,
    ) -> Result<&Arc<CompiledRule>, String> {
        if let Some(rule) = self.by_segment.get(segment) {
            return Ok(rule);
        }
        if let Some(v) = self.variants.get(segment) {
            let variant = v
                .segment
                .script_for(customer)
                .variant
                .as_deref()
                .unwrap_or("");
            return v.by_variant.get(variant).ok_or_else(|| {
                format!("variant '{variant}' of segment '{segment}' has no rule script running (its script does not compile)")
            });
        }
        Err(format!(
            "segment '{segment}' has no rule script in the configuration (or its script does not compile)"
        ))
    }

    /// A set where `rule` evaluates every customer of its segment (a variant's script
    /// tried, tested or compared on its own).
    pub fn only(rule: Arc<CompiledRule>) -> RuleSet {
        let mut set = RuleSet::default();
        set.by_segment.insert(rule.segment.clone(), rule);
        set
    }

    /// Takes out the script of `segment`'s `variant` (`None`: of the segment).
    pub fn remove(&mut self, segment: &str, variant: Option<&str>) {
        match variant {
            None => {
                self.by_segment.remove(segment);
            }
            Some(v) => {
                if let Some(vs) = self.variants.get_mut(segment) {
                    vs.by_variant.remove(v);
                }
            }
        }
    }

    /// Every compiled script, segments and variants.
    pub fn all(&self) -> Vec<Arc<CompiledRule>> {
        let mut out: Vec<Arc<CompiledRule>> = self.by_segment.values().cloned().collect();
        for v in self.variants.values() {
            out.extend(v.by_variant.values().cloned());
        }
        out.sort_by(|a, b| (&a.segment, &a.variant).cmp(&(&b.segment, &b.variant)));
        out
    }

    /// The script of `segment`'s `variant` (`None`: of the segment without variants).
    pub fn script(&self, segment: &str, variant: Option<&str>) -> Option<&Arc<CompiledRule>> {
        match variant {
            None => self.by_segment.get(segment),
            Some(v) => self.variants.get(segment)?.by_variant.get(v),
        }
    }

    fn insert(&mut self, config: &Config, rule: Arc<CompiledRule>) {
        match rule.variant.clone() {
            None => {
                self.by_segment.insert(rule.segment.clone(), rule);
            }
            Some(v) => {
                let Some(seg) = config.segments.get(&rule.segment) else {
                    return;
                };
                self.variants
                    .entry(rule.segment.clone())
                    .or_insert_with(|| Variants {
                        segment: seg.clone(),
                        by_variant: HashMap::new(),
                    })
                    .by_variant
                    .insert(v, rule);
            }
        }
    }
}

/// A script that does not compile.
#[derive(Debug, Clone)]
pub struct RuleError {
    pub segment: String,
    pub diagnostic: Box<Diagnostic>,
    /// Further problems found in the same script, after the first.
    pub more: Vec<Diagnostic>,
}

impl RuleError {
    pub(crate) fn new(segment: &str, diagnostic: Diagnostic) -> RuleError {
        RuleError {
            segment: segment.to_string(),
            diagnostic: Box::new(diagnostic),
            more: Vec::new(),
        }
    }

    /// Every problem, long form (the line and a caret under the place), one after the other.
    pub fn long(&self) -> String {
        let mut out = self.diagnostic.long();
        for d in &self.more {
            out.push('\n');
            out.push_str(&d.long());
        }
        out
    }
}

/// A path as shown to people: relative to the working directory when under it, else
/// relative to `base` (the configuration's directory) when under it, else as is.
pub fn display_path(p: &Path, base: Option<&Path>) -> String {
    let abs = |q: &Path| std::fs::canonicalize(q).unwrap_or_else(|_| q.to_path_buf());
    let target = abs(p);
    let cwd = std::env::current_dir().ok().map(|c| abs(&c));
    let rel = cwd
        .as_deref()
        .and_then(|c| target.strip_prefix(c).ok())
        .or_else(|| base.and_then(|b| target.strip_prefix(abs(b)).ok()))
        .map(Path::to_path_buf);
    let shown = rel.unwrap_or_else(|| p.to_path_buf());
    let s = shown.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// The rules shipped with relance, used by the embedded default configuration when it
/// runs outside a checkout (where `rules/` is absent).
fn shipped(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    match name {
        "smb.rhai" => Some(include_str!("../../rules/smb.rhai")),
        "key_accounts.rhai" => Some(include_str!("../../rules/key_accounts.rhai")),
        "public_sector.rhai" => Some(include_str!("../../rules/public_sector.rhai")),
        _ => None,
    }
}

/// The source of a configured rule file as the service loads it: the file, or, for the
/// embedded default configuration where the file is absent, the copy shipped with
/// relance.
///
/// # Errors
/// The file cannot be read (and no shipped copy stands in for it).
pub fn configured_source(config: &Config, path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) => match (&config.source, shipped(path)) {
            (Source::Embedded, Some(s)) if !path.exists() => Ok(s.to_string()),
            _ => Err(e),
        },
    }
}

/// A scope declaring the variables scripts may use, for compile-time checks. They are
/// declared as variables, not constants: the optimiser inlines constants of the compile
/// scope into the AST, which would freeze these placeholders into the script. At run
/// time they are constants, so a script cannot assign them.
fn declared_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push("today", Dynamic::UNIT);
    scope.push("customer", Dynamic::UNIT);
    scope
}

/// Compiles one script.
///
/// # Errors
/// A diagnostic with the file, line and column.
pub fn compile(
    engine: &Engine,
    segment: &str,
    variant: Option<&str>,
    path: &Path,
    base: &Path,
    source: &str,
) -> Result<CompiledRule, RuleError> {
    let file = display_path(path, Some(base));
    let compiled = engine
        .compile_with_scope(&declared_scope(), source)
        .map_err(|e| RuleError::new(segment, Diagnostic::parse(&file, source, &e)))?;
    // Names the rule API does not know, and comparisons that are always false.
    let mut findings = lint::check(&compiled, &KnownNames::of(engine))
        .into_iter()
        .map(|f| Diagnostic::at(&file, source, f.position, f.message));
    if let Some(first) = findings.next() {
        let mut error = RuleError::new(segment, first);
        error.more = findings.collect();
        return Err(error);
    }
    let mut ast = engine.optimize_ast(&declared_scope(), compiled, rhai::OptimizationLevel::Simple);
    ast.set_source(file.as_str());
    let hash = sha256_hex(source.as_bytes());
    let rule = RuleRef {
        file: Arc::from(file.as_str()),
        hash: Arc::from(hash.as_str()),
        variant: variant.map(Arc::from),
    };
    Ok(CompiledRule {
        segment: segment.to_string(),
        variant: variant.map(str::to_string),
        path: path.to_path_buf(),
        hash,
        file,
        source: Arc::from(source),
        ast: Arc::new(ast),
        rule,
    })
}

/// Whether a script holds nothing but whitespace and comments (`//`, `/* */`): it would
/// decide nothing for its customers, which is never what its author meant.
pub fn is_blank(source: &str) -> bool {
    let b = source.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() || c == b';' => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest in Rhai.
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            _ => return false,
        }
    }
    true
}

/// What reading and compiling a segment's rule file gave.
enum Checked {
    /// A new version that compiles.
    Compiled(Box<CompiledRule>),
    /// A new version that compiles and ran for every customer it was tried on (if any).
    Tried(Arc<CompiledRule>),
    /// The version already running.
    Unchanged,
    /// Refused; `signature` tells one refusal from the next (reason and content).
    Refused { error: RuleError, signature: String },
}

fn refused(segment: &str, file: &str, message: String, content: Option<&[u8]>) -> Checked {
    let signature = format!("{message}|{}", content.map(sha256_hex).unwrap_or_default());
    Checked::Refused {
        error: RuleError::new(
            segment,
            Diagnostic {
                file: file.to_string(),
                line: None,
                column: None,
                message,
                source_line: None,
            },
        ),
        signature,
    }
}

/// Reads and compiles the rule file of `segment`. `running` is the version in force,
/// if any: a file that disappears or becomes unreadable then keeps it running, and
/// the copy shipped with relance (used by the embedded default when the file is absent
/// at start) never silently replaces a script that was read from the file.
fn check(
    config: &Config,
    engine: &Engine,
    segment: &str,
    variant: Option<&str>,
    path: &Path,
    running: Option<&CompiledRule>,
) -> Checked {
    let file = display_path(path, Some(&config.base_dir));
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let shipped = match (&config.source, shipped(path)) {
                (Source::Embedded, Some(s)) if !path.exists() => Some(s),
                _ => None,
            };
            return match (shipped, running) {
                (Some(s), Some(r)) if r.hash == sha256_hex(s.as_bytes()) => Checked::Unchanged,
                (Some(_), Some(_)) => refused(
                    segment,
                    &file,
                    "the rule file was deleted; the copy shipped with relance is not swapped in for the script that was running (restore the file, or copy the shipped one to use it)".into(),
                    None,
                ),
                (Some(s), None) => match compile(engine, segment, variant, path, &config.base_dir, s) {
                    Ok(rule) => Checked::Compiled(Box::new(rule)),
                    Err(error) => {
                        let signature = error.diagnostic.short();
                        Checked::Refused { error, signature }
                    }
                },
                (None, _) if e.kind() == std::io::ErrorKind::NotFound => refused(
                    segment,
                    &file,
                    "cannot read the rule file: it does not exist (deleted or moved)".into(),
                    None,
                ),
                (None, _) => refused(
                    segment,
                    &file,
                    format!("cannot read the rule file: {e}"),
                    None,
                ),
            };
        }
    };
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            return refused(
                segment,
                &file,
                "the rule file is not valid UTF-8 (save it as UTF-8)".into(),
                Some(&bytes),
            );
        }
    };
    let hash = sha256_hex(source.as_bytes());
    if running.is_some_and(|r| r.hash == hash) {
        return Checked::Unchanged;
    }
    if is_blank(&source) {
        return refused(
            segment,
            &file,
            "the rule script is empty (only whitespace or comments): it would decide nothing for the segment's customers".into(),
            Some(source.as_bytes()),
        );
    }
    match compile(engine, segment, variant, path, &config.base_dir, &source) {
        Ok(rule) => Checked::Compiled(Box::new(rule)),
        Err(error) => {
            let signature = format!("{}|{hash}", error.diagnostic.short());
            Checked::Refused { error, signature }
        }
    }
}

/// Compiles every segment's script; the refusals come with their signatures.
fn load_checked(config: &Config, engine: &Engine) -> (RuleSet, Vec<(RuleError, String)>) {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for (name, seg) in &config.segments {
        for script in &seg.scripts {
            let variant = script.variant.as_deref();
            match check(config, engine, name, variant, &script.rules, None) {
                Checked::Compiled(rule) => set.insert(config, Arc::from(rule)),
                Checked::Tried(rule) => set.insert(config, rule),
                Checked::Unchanged => {}
                Checked::Refused {
                    mut error,
                    signature,
                } => {
                    error.segment = script.label(name);
                    errors.push((error, signature));
                }
            }
        }
    }
    (set, errors)
}

/// Compiles the script of every configured segment; returns those that compile and the
/// errors of those that do not (or cannot be read, or are empty).
pub fn load_all(config: &Config, engine: &Engine) -> (RuleSet, Vec<RuleError>) {
    let (set, errors) = load_checked(config, engine);
    (set, errors.into_iter().map(|(e, _)| e).collect())
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Segments whose script changed and now runs in its new version.
    pub reloaded: Vec<String>,
    /// Segments whose file is refused (it does not compile, is empty, unreadable, not
    /// UTF-8, or was deleted): the previous version keeps running.
    pub rejected: Vec<RuleError>,
}

/// The scripts in force, reloadable while the daemon runs.
pub struct RuleRegistry {
    config: Config,
    engine: Engine,
    current: RwLock<Arc<RuleSet>>,
    /// Segments whose file is refused, with the refusal's signature: each refusal is
    /// logged and counted once, not at every check.
    refused: Mutex<BTreeMap<String, String>>,
    /// When the files were last read and checked (at load, then at each reload).
    checked_at: RwLock<chrono::DateTime<chrono::Utc>>,
    /// Where refusals and stale files are counted.
    metrics: Arc<Metrics>,
    /// The customers a new version is tried on before it is swapped in.
    probe: RwLock<Arc<Probe>>,
}

impl RuleRegistry {
    /// Compiles every script. Segments whose script does not compile are left out (and
    /// reported); their customers get an evaluation error until it is fixed.
    pub fn load(config: &Config, engine: Engine) -> (RuleRegistry, Vec<RuleError>) {
        RuleRegistry::load_counted(config, engine, Arc::new(Metrics::new()))
    }

    /// [`RuleRegistry::load`], counting refusals and stale files in a service's
    /// `metrics`.
    pub fn load_counted(
        config: &Config,
        engine: Engine,
        metrics: Arc<Metrics>,
    ) -> (RuleRegistry, Vec<RuleError>) {
        let (set, errors) = load_checked(config, &engine);
        for (name, seg) in &config.segments {
            let scripts: Vec<(String, Option<String>)> = seg
                .scripts
                .iter()
                .map(|s| (s.label(name), s.variant.clone()))
                .collect();
            metrics.seed_segment(name, &scripts);
            for script in &seg.scripts {
                metrics.set_rule_script_stale(&script.label(name), false);
            }
        }
        let mut refused = BTreeMap::new();
        for (e, signature) in &errors {
            metrics.set_rule_script_stale(&e.segment, true);
            refused.insert(e.segment.clone(), signature.clone());
        }
        (
            RuleRegistry {
                config: config.clone(),
                engine,
                current: RwLock::new(Arc::new(set)),
                refused: Mutex::new(refused),
                checked_at: RwLock::new(chrono::Utc::now()),
                metrics,
                probe: RwLock::new(Arc::new(Probe::default())),
            },
            errors.into_iter().map(|(e, _)| e).collect(),
        )
    }

    /// Sets the customers each new version of a script is tried on at reload: a version
    /// that fails for any of them is refused like one that does not compile.
    pub fn set_probe(&self, probe: Probe) {
        if let Ok(mut p) = self.probe.write() {
            *p = Arc::new(probe);
        }
    }

    /// The metrics this registry counts in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// When the script files were last read and checked, and the scripts whose file is
    /// refused (by their label, `smb` or `smb (variant fast)`) with the reason: the
    /// version running (if any) is the previous one.
    pub fn last_check(&self) -> (chrono::DateTime<chrono::Utc>, BTreeMap<String, String>) {
        let at = self
            .checked_at
            .read()
            .map(|a| *a)
            .unwrap_or_else(|_| chrono::Utc::now());
        let refused = match self.refused.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let reasons = refused
            .into_iter()
            .map(|(k, sig)| {
                let reason = sig
                    .rsplit_once('|')
                    .map_or(sig.as_str(), |(m, _)| m)
                    .to_string();
                (k, reason)
            })
            .collect();
        (at, reasons)
    }

    /// Re-reads every script and swaps in those that changed and compile. A file that
    /// does not compile, is empty, cannot be read, is not UTF-8 or was deleted is
    /// refused: the previous version keeps running, and the refusal is logged (once per
    /// version of the file) and counted in `relance_rule_reload_failures_total`, with
    /// `relance_rule_script_stale` at 1 until the file is fixed.
    pub fn reload(&self) -> ReloadReport {
        let old = self.current();
        let metrics = &self.metrics;
        let mut refused = match self.refused.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut report = ReloadReport::default();
        let probe = self.probe.read().map(|p| p.clone()).unwrap_or_default();
        let mut evaluator = None;
        let mut next_set = (*old).clone();
        for (segment, seg) in &self.config.segments {
            for script in &seg.scripts {
                let variant = script.variant.as_deref();
                // Refusals, logs and metrics name the script: `smb`, `smb (variant fast)`.
                let name = &script.label(segment);
                let running = old.script(segment, variant).map(|r| &**r);
                let checked = match check(
                    &self.config,
                    &self.engine,
                    segment,
                    variant,
                    &script.rules,
                    running,
                ) {
                    Checked::Compiled(rule) if probe.is_empty() => Checked::Tried(Arc::from(rule)),
                    Checked::Compiled(rule) => {
                        let rule: Arc<CompiledRule> = Arc::from(rule);
                        let evaluator = evaluator
                            .get_or_insert_with(|| Evaluator::new(&self.config, Limits::default()));
                        let today = chrono::Utc::now()
                            .with_timezone(&self.config.timezone)
                            .date_naive();
                        match try_rule(evaluator, &rule, &probe, today) {
                            Ok(_) => Checked::Tried(rule),
                            Err(error) => Checked::Refused {
                                signature: format!("{}|{}", error.diagnostic.short(), rule.hash),
                                error,
                            },
                        }
                    }
                    other => other,
                };
                match checked {
                    Checked::Unchanged => {
                        if refused.remove(name).is_some() {
                            tracing::info!(segment = %name, file = %display_path(&script.rules, Some(&self.config.base_dir)), "rule file matches the running version again");
                            metrics.set_rule_script_stale(name, false);
                        }
                    }
                    Checked::Compiled(_) => unreachable!("every new version is tried above"),
                    Checked::Tried(rule) => {
                        tracing::info!(segment = %name, file = %rule.file, hash = %&rule.hash[..12], "rule script reloaded");
                        next_set.insert(&self.config, rule);
                        report.reloaded.push(name.clone());
                        refused.remove(name);
                        metrics.set_rule_script_stale(name, false);
                    }
                    Checked::Refused {
                        mut error,
                        signature,
                    } => {
                        error.segment = name.clone();
                        if refused.get(name) != Some(&signature) {
                            let compile_error = error.diagnostic.line.is_some();
                            let keeps = if running.is_some() {
                                "the previous version keeps running"
                            } else {
                                "the segment has no script running; its customers get an error"
                            };
                            if compile_error && error.more.is_empty() {
                                tracing::error!(segment = %name, file = %error.diagnostic.file, error = %error.diagnostic.short(), "rule script rejected: it does not compile; {keeps}");
                            } else {
                                tracing::error!(segment = %name, file = %error.diagnostic.file, reason = %error.diagnostic.message, "rule script rejected: {}; {keeps}", error.diagnostic.short());
                            }
                            metrics.rule_reload_failed(name);
                            metrics.set_rule_script_stale(name, true);
                            refused.insert(name.clone(), signature);
                        }
                        report.rejected.push(error);
                    }
                }
            }
        }
        drop(refused);
        if let Ok(mut at) = self.checked_at.write() {
            *at = chrono::Utc::now();
        }
        if !report.reloaded.is_empty() {
            if let Ok(mut g) = self.current.write() {
                *g = Arc::new(next_set);
            }
        }
        report
    }
}
