//! Rule scripts, compiled once per version. The registry swaps a script's AST only when
//! the new version compiles; otherwise the previous one keeps running and the error is
//! reported loudly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::digest::sha256_hex;
use rhai::{Dynamic, Engine, Scope, AST};

use super::decide::RuleRef;
use super::diagnostics::Diagnostic;
use crate::config::{Config, Source};

/// One segment's compiled script.
#[derive(Debug)]
pub struct CompiledRule {
    pub segment: String,
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
}

/// The scripts in force, by segment.
#[derive(Debug, Default, Clone)]
pub struct RuleSet {
    pub by_segment: HashMap<String, Arc<CompiledRule>>,
}

impl RuleSet {
    pub fn get(&self, segment: &str) -> Option<&Arc<CompiledRule>> {
        self.by_segment.get(segment)
    }
}

/// A script that does not compile.
#[derive(Debug, Clone)]
pub struct RuleError {
    pub segment: String,
    pub diagnostic: Box<Diagnostic>,
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
    path: &Path,
    base: &Path,
    source: &str,
) -> Result<CompiledRule, RuleError> {
    let file = display_path(path, Some(base));
    match engine.compile_with_scope(&declared_scope(), source) {
        Ok(mut ast) => {
            ast.set_source(file.as_str());
            let hash = sha256_hex(source.as_bytes());
            let rule = RuleRef {
                file: Arc::from(file.as_str()),
                hash: Arc::from(hash.as_str()),
            };
            Ok(CompiledRule {
                segment: segment.to_string(),
                path: path.to_path_buf(),
                hash,
                file,
                source: Arc::from(source),
                ast: Arc::new(ast),
                rule,
            })
        }
        Err(e) => Err(RuleError {
            segment: segment.to_string(),
            diagnostic: Box::new(Diagnostic::parse(&file, source, &e)),
        }),
    }
}

fn read_source(config: &Config, path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) => match (&config.source, shipped(path)) {
            (Source::Embedded, Some(s)) if !path.exists() => Ok(s.to_string()),
            _ => Err(format!("cannot read the rule file: {e}")),
        },
    }
}

/// Compiles the script of every configured segment; returns those that compile and the
/// errors of those that do not.
pub fn load_all(config: &Config, engine: &Engine) -> (RuleSet, Vec<RuleError>) {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for (name, seg) in &config.segments {
        let file = display_path(&seg.rules, Some(&config.base_dir));
        match read_source(config, &seg.rules) {
            Err(message) => errors.push(RuleError {
                segment: name.clone(),
                diagnostic: Box::new(Diagnostic {
                    file,
                    line: None,
                    column: None,
                    message,
                    source_line: None,
                }),
            }),
            Ok(source) => match compile(engine, name, &seg.rules, &config.base_dir, &source) {
                Ok(rule) => {
                    set.by_segment.insert(name.clone(), Arc::new(rule));
                }
                Err(e) => errors.push(e),
            },
        }
    }
    (set, errors)
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Segments whose script changed and now runs in its new version.
    pub reloaded: Vec<String>,
    /// Segments whose new version does not compile: the previous one keeps running.
    pub rejected: Vec<RuleError>,
}

/// The scripts in force, reloadable while the daemon runs.
pub struct RuleRegistry {
    config: Config,
    engine: Engine,
    current: RwLock<Arc<RuleSet>>,
}

impl RuleRegistry {
    /// Compiles every script. Segments whose script does not compile are left out (and
    /// reported); their customers get an evaluation error until it is fixed.
    pub fn load(config: &Config, engine: Engine) -> (RuleRegistry, Vec<RuleError>) {
        let (set, errors) = load_all(config, &engine);
        (
            RuleRegistry {
                config: config.clone(),
                engine,
                current: RwLock::new(Arc::new(set)),
            },
            errors,
        )
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Re-reads every script and swaps in those that changed and compile.
    pub fn reload(&self) -> ReloadReport {
        let old = self.current();
        let mut next: BTreeMap<String, Arc<CompiledRule>> = old
            .by_segment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut report = ReloadReport::default();
        for (name, seg) in &self.config.segments {
            let Ok(source) = read_source(&self.config, &seg.rules) else {
                continue;
            };
            let hash = sha256_hex(source.as_bytes());
            if old.get(name).is_some_and(|r| r.hash == hash) {
                continue;
            }
            match compile(
                &self.engine,
                name,
                &seg.rules,
                &self.config.base_dir,
                &source,
            ) {
                Ok(rule) => {
                    tracing::info!(segment = %name, file = %rule.file, hash = %&rule.hash[..12], "rule script reloaded");
                    next.insert(name.clone(), Arc::new(rule));
                    report.reloaded.push(name.clone());
                }
                Err(e) => {
                    tracing::error!(segment = %name, error = %e.diagnostic.short(), "rule script rejected: it does not compile; the previous version keeps running");
                    report.rejected.push(e);
                }
            }
        }
        if !report.reloaded.is_empty() {
            if let Ok(mut g) = self.current.write() {
                *g = Arc::new(RuleSet {
                    by_segment: next.into_iter().collect(),
                });
            }
        }
        report
    }
}
