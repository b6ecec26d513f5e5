//! "Why, and why not": one customer's evaluation, told in full. The facts the rule
//! saw (every property of the rule API), what the script returned and the fate of
//! each action (the engine's decisions), each action constructor the script called
//! and the invoices it named, each condition the script evaluated with the values it
//! compared and its outcome, and what `print` and `debug` wrote.
//!
//! The script runs once more under Rhai's debugging interface, on an engine of its
//! own: the engine that runs ticks has no debugger and pays nothing for this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use rhai::debugger::DebuggerCommand;
use rhai::{ASTNode, Dynamic, Engine, Expr, Position, Scope, Stmt};
use serde::Serialize;

use super::actions::to_json;
use super::decide::Decision;
use super::evaluate::Evaluator;
use super::facts::{CustomerFacts, Date, InvoiceFacts, InvoiceList};
use super::registry::RuleSet;
use crate::domain::Account;

/// One condition the script evaluated.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Condition {
    pub line: Option<usize>,
    /// The source line it is on, trimmed.
    pub source: String,
    /// The comparison with the values compared (`1500.00 >= 2000`), or the value.
    pub evaluated: String,
    pub outcome: bool,
}

/// One call of an action constructor, and the invoices it named.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConstructorCall {
    pub line: Option<usize>,
    pub source: String,
    pub constructor: String,
    /// The invoice numbers named; none: the action was dropped (it names no invoice).
    pub invoices: Vec<String>,
}

/// A planned action that would wait before delivery (delivery hours, contact budget),
/// as the dispatcher would decide it (filled in by `outbox::DeliveryRules`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deferral {
    pub kind: crate::domain::ActionKind,
    pub step: String,
    pub until: chrono::DateTime<chrono::Utc>,
    pub reason: String,
}

/// A customer's evaluation, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub customer: String,
    pub segment: String,
    pub as_of: NaiveDate,
    pub rule_file: Option<String>,
    pub rule_hash: Option<String>,
    /// The variant of the segment's experiment the customer is assigned to, if the
    /// segment has variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Every property of `customer`, as the script saw it.
    pub facts: serde_json::Map<String, serde_json::Value>,
    /// Every property of each open invoice.
    pub invoices: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The engine's decisions: planned, already done, blocked, error.
    pub decisions: Vec<Decision>,
    /// Planned actions that would be deferred if they were delivered now.
    pub deferrals: Vec<Deferral>,
    pub calls: Vec<ConstructorCall>,
    pub conditions: Vec<Condition>,
    /// What `print` and `debug` wrote.
    pub output: Vec<String>,
}

#[derive(Default)]
struct Trace {
    calls: Vec<ConstructorCall>,
    conditions: Vec<Condition>,
    output: Vec<String>,
}

const CONSTRUCTORS: &[&str] = &[
    "email",
    "sms",
    "call_task",
    "formal_notice",
    "insurer_handover",
];

fn show(v: &Dynamic) -> String {
    if let Some(d) = v.clone().try_cast::<Date>() {
        return d.0.to_string();
    }
    if v.is_unit() {
        return "()".into();
    }
    if let Some(list) = v.read_lock::<InvoiceList>() {
        let numbers: Vec<String> = list.numbers().collect();
        return format!("[{}]", numbers.join(", "));
    }
    if v.is_string() {
        return format!("\"{v}\"");
    }
    v.to_string()
}

fn line_of(source: &str, pos: Position) -> String {
    pos.line()
        .and_then(|l| source.lines().nth(l - 1))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

/// How `e` came out in the script's context: a comparison with the values it
/// compared (`1000.00 >= 2000`), each side of `&&` and `||` so, any other expression
/// as its value.
fn describe(ctx: &mut rhai::EvalContext, e: &Expr) -> String {
    match e {
        Expr::FnCall(f, _) if f.op_token.is_some() && f.args.len() == 2 => {
            let l = ctx.eval_expression_tree(&(&f.args[0]).into());
            let r = ctx.eval_expression_tree(&(&f.args[1]).into());
            match (l, r) {
                (Ok(l), Ok(r)) => format!("{} {} {}", show(&l), f.name, show(&r)),
                _ => "?".into(),
            }
        }
        Expr::And(list, _) | Expr::Or(list, _) => {
            let op = if matches!(e, Expr::And(..)) {
                " && "
            } else {
                " || "
            };
            list.iter()
                .map(|x| {
                    let inner = describe(ctx, x);
                    if matches!(x, Expr::And(..) | Expr::Or(..)) {
                        format!("({inner})")
                    } else {
                        inner
                    }
                })
                .collect::<Vec<_>>()
                .join(op)
        }
        other => ctx
            .eval_expression_tree(&other.into())
            .map_or("?".into(), |v| show(&v)),
    }
}

/// Evaluates `cond` again in the script's context and records how it came out.
fn record_condition(
    ctx: &mut rhai::EvalContext,
    cond: &Expr,
    source: &str,
    pos: Position,
    out: &mut Vec<Condition>,
) {
    let evaluated = describe(ctx, cond);
    let outcome = ctx
        .eval_expression_tree(&cond.into())
        .ok()
        .and_then(|v| v.as_bool().ok())
        .unwrap_or(false);
    out.push(Condition {
        line: pos.line(),
        source: line_of(source, pos),
        evaluated,
        outcome,
    });
}

/// The value of every getter of the rule API registered for `T`, on `value`.
fn properties<T: Clone + Send + Sync + 'static>(
    engine: &Engine,
    readers: &[(String, rhai::AST)],
    value: T,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for (name, read) in readers {
        let mut scope = Scope::new();
        scope.push("it", value.clone());
        if let Ok(v) = engine.eval_ast_with_scope::<Dynamic>(&mut scope, read) {
            let json = if let Some(list) = v.read_lock::<InvoiceList>() {
                serde_json::Value::from(list.numbers().collect::<Vec<String>>())
            } else {
                to_json(&v)
            };
            out.insert(name.clone(), json);
        }
    }
    out
}

/// `it.NAME` for each of `names`, compiled once and read for every value.
fn readers(engine: &Engine, names: Vec<String>) -> Vec<(String, rhai::AST)> {
    let mut declared = Scope::new();
    declared.push("it", Dynamic::UNIT);
    names
        .into_iter()
        .filter_map(|n| {
            let ast = engine
                .compile_with_scope(&declared, format!("it.{n}"))
                .ok()?;
            Some((n, ast))
        })
        .collect()
}

/// The getters registered for the type `T` (their names without `get$`).
fn getters_of<T: 'static>(engine: &Engine) -> Vec<String> {
    let id = std::any::TypeId::of::<T>();
    let mut names: Vec<String> = engine.collect_fn_metadata(
        None,
        |f| {
            let m = f.metadata;
            let name = m.name.strip_prefix("get$")?;
            (m.param_types.first() == Some(&id)).then(|| name.to_string())
        },
        true,
    );
    names.sort();
    names.dedup();
    names
}

/// Explains the evaluation of `account` with the rules of its segment, as of `today`.
pub fn explain(
    evaluator: &Evaluator,
    rules: &RuleSet,
    account: Account,
    today: NaiveDate,
    calendar: Arc<crate::domain::BusinessCalendar>,
) -> Explanation {
    let outcome = evaluator.evaluate(rules, account.clone(), today);
    let facts = outcome.facts.clone();
    let rule = rules
        .for_customer(&facts.0.seg, &facts.0.ext_id)
        .ok()
        .cloned();
    let trace = Arc::new(Mutex::new(Trace::default()));
    let mut engine = super::engine::build(calendar, &evaluator.limits);
    // Facts, read through the same getters scripts use.
    let customer_names: Vec<String> = getters_of::<CustomerFacts>(&engine)
        .into_iter()
        .filter(|n| n != "history")
        .collect();
    let customer_readers = readers(&engine, customer_names);
    let invoice_readers = readers(&engine, getters_of::<InvoiceFacts>(&engine));
    let facts_map = properties(&engine, &customer_readers, facts.clone());
    let all = InvoiceList::new(&facts.0, 0..facts.0.invoices.len() as u32);
    let invoices = all
        .into_iter()
        .map(|inv| properties(&engine, &invoice_readers, inv))
        .collect();
    if let Some(rule) = &rule {
        let source: Arc<str> = rule.source.clone();
        let t = trace.clone();
        engine.on_print(move |s| {
            if let Ok(mut t) = t.lock() {
                t.output.push(format!("print: {s}"));
            }
        });
        let t = trace.clone();
        engine.on_debug(move |s, _, pos| {
            if let Ok(mut t) = t.lock() {
                t.output
                    .push(format!("debug, line {}: {s}", pos.line().unwrap_or(0)));
            }
        });
        let t = trace.clone();
        let busy = AtomicBool::new(false);
        // Rhai marks its debugging interface as volatile, not as deprecated.
        #[allow(deprecated)]
        engine.register_debugger(
            |_, d| d,
            move |mut ctx, _event, node, _src, _pos| {
                // Evaluating a condition again runs this callback again: not recorded,
                // and the trace is not held locked meanwhile.
                if busy.swap(true, Ordering::SeqCst) {
                    return Ok(DebuggerCommand::StepInto);
                }
                let mut conditions = Vec::new();
                let mut calls = Vec::new();
                match node {
                    ASTNode::Stmt(Stmt::If(flow, if_pos)) => {
                        record_condition(&mut ctx, &flow.expr, &source, *if_pos, &mut conditions);
                    }
                    ASTNode::Expr(Expr::FnCall(f, call_pos))
                    | ASTNode::Stmt(Stmt::FnCall(f, call_pos))
                        if f.op_token.is_none() && CONSTRUCTORS.contains(&f.name.as_str()) =>
                    {
                        // The invoices argument: the first of formal_notice and
                        // insurer_handover, the second of the others.
                        let at = usize::from(!matches!(
                            f.name.as_str(),
                            "formal_notice" | "insurer_handover"
                        ));
                        let named = f
                            .args
                            .get(at)
                            .and_then(|e| ctx.eval_expression_tree(&e.into()).ok())
                            .map(|v| {
                                if let Some(list) = v.read_lock::<InvoiceList>() {
                                    list.numbers().collect()
                                } else if let Some(one) = v.read_lock::<InvoiceFacts>() {
                                    vec![one.number()]
                                } else {
                                    Vec::new()
                                }
                            })
                            .unwrap_or_default();
                        calls.push(ConstructorCall {
                            line: call_pos.line(),
                            source: line_of(&source, *call_pos),
                            constructor: f.name.to_string(),
                            invoices: named,
                        });
                    }
                    _ => {}
                }
                if let Ok(mut t) = t.lock() {
                    t.conditions.extend(conditions);
                    t.calls.extend(calls);
                }
                busy.store(false, Ordering::SeqCst);
                Ok(DebuggerCommand::StepInto)
            },
        );
        let mut scope = Scope::new();
        scope.push_constant("today", Date(today));
        scope.push_constant("customer", facts.clone());
        super::engine::set_deadline(Some(
            std::time::Instant::now() + evaluator.limits.time_budget * 10,
        ));
        let _ =
            crate::panics::contain(|| engine.eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast));
        super::engine::set_deadline(None);
    }
    let trace = match Arc::try_unwrap(trace) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner())),
    };
    Explanation {
        customer: facts.0.ext_id.to_string(),
        segment: facts.0.seg.to_string(),
        as_of: today,
        rule_file: rule.as_ref().map(|r| r.file.clone()),
        rule_hash: rule.as_ref().map(|r| r.hash.clone()),
        variant: rule.as_ref().and_then(|r| r.variant.clone()),
        facts: facts_map,
        invoices,
        decisions: outcome.decisions,
        deferrals: Vec::new(),
        calls: trace.calls,
        conditions: trace.conditions,
        output: trace.output,
    }
}
