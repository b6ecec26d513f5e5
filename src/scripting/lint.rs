//! Static checks of a rule script, before it runs on anyone: names that are not in the
//! rule API (a property, a function, an action option), option values that can never
//! be right, and comparisons of an amount, a count or a date with a quoted text (always
//! false, silently). Each finding names the place and, for a misspelt name, the nearest
//! known one.

use std::collections::BTreeSet;

use rhai::{ASTNode, Dynamic, Engine, Expr, Position, AST};

use super::actions::{allowed_options, option_problem};
use crate::domain::nearest;
use crate::domain::ActionKind;

/// One problem found in a script, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub position: Position,
    pub message: String,
}

/// The names a script may use: the functions and properties of the rule API and of the
/// language's packages.
#[derive(Debug, Clone, Default)]
pub struct KnownNames {
    functions: BTreeSet<String>,
    properties: BTreeSet<String>,
}

/// Functions the language itself provides, outside any package.
const LANGUAGE_FUNCTIONS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "Fn",
    "call",
    "curry",
];

/// The fields of the maps the rule API gives (`customer.promise`, `customer.history`),
/// read with `.` like properties.
const MAP_FIELDS: &[&str] = &[
    "date", "amount", "broken", "invoices", "kind", "step", "invoice",
];

/// Properties and methods of the rule API whose value is a number, an amount or a date:
/// comparing one with a quoted text is always false.
const NUMERIC: &[&str] = &[
    "overdue_total",
    "not_due_total",
    "exposure",
    "credit_limit",
    "unapplied_credit",
    "cover_amount",
    "oldest_overdue_days",
    "days_to_insurer_deadline",
    "last_contact_days",
    "insurer_deadline",
    "paused_until",
    "amount",
    "open_amount",
    "days_overdue",
    "indemnity",
    "issue_date",
    "due_date",
    "year",
    "month",
    "day",
    "weekday",
    "total",
    "len",
    "max_days_overdue",
    "days_since",
    "times_applied",
    "step_date",
    "business_days_between",
    "add_days",
    "add_business_days",
    "next_business_day",
    "today",
];

/// The action constructors and the kind each builds.
const CONSTRUCTORS: &[(&str, ActionKind)] = &[
    ("email", ActionKind::Email),
    ("sms", ActionKind::Sms),
    ("call_task", ActionKind::CallTask),
    ("formal_notice", ActionKind::FormalNotice),
    ("insurer_handover", ActionKind::InsurerHandover),
];

impl KnownNames {
    /// The names `engine` knows (every registered function, getter and package).
    pub fn of(engine: &Engine) -> KnownNames {
        let mut known = KnownNames::default();
        let names: Vec<String> =
            engine.collect_fn_metadata(None, |f| Some(f.metadata.name.to_string()), true);
        for name in names {
            if let Some(p) = name.strip_prefix("get$") {
                known.properties.insert(p.to_string());
            } else if !name.contains('$') {
                known.functions.insert(name);
            }
        }
        known
            .functions
            .extend(LANGUAGE_FUNCTIONS.iter().map(|s| s.to_string()));
        known
            .properties
            .extend(MAP_FIELDS.iter().map(|s| s.to_string()));
        known
    }

    pub fn is_property(&self, name: &str) -> bool {
        self.properties.contains(name)
    }

    pub fn is_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }
}

fn did_you_mean(found: Option<&str>) -> String {
    found.map_or(String::new(), |n| format!(" (did you mean '{n}'?)"))
}

/// The name a numeric operand of a comparison reads, if it is one the rule API
/// documents as a number, an amount or a date (or a number written in the script, or a
/// variable the script set to one of those).
fn numeric_operand(e: &Expr, numeric_vars: &BTreeSet<String>) -> Option<String> {
    match e {
        Expr::Variable(v, _, _) if numeric_vars.contains(v.1.as_str()) => Some(v.1.to_string()),
        Expr::IntegerConstant(n, _) => Some(n.to_string()),
        Expr::DynamicConstant(v, _) if v.is::<rust_decimal::Decimal>() || v.is_int() => {
            Some(v.to_string())
        }
        Expr::Variable(v, _, _) if NUMERIC.contains(&v.1.as_str()) => Some(v.1.to_string()),
        Expr::Property(p, _) if NUMERIC.contains(&p.2.as_str()) => Some(p.2.to_string()),
        Expr::MethodCall(f, _) | Expr::FnCall(f, _) if NUMERIC.contains(&f.name.as_str()) => {
            Some(format!("{}()", f.name))
        }
        Expr::Dot(b, _, _) => numeric_operand(&b.rhs, numeric_vars),
        _ => None,
    }
}

fn text_operand(e: &Expr) -> Option<String> {
    match e {
        Expr::StringConstant(s, _) => Some(s.to_string()),
        _ => None,
    }
}

/// Checks a compiled script against the names `known`. Functions the script defines
/// itself and fields of the maps it builds are known too.
pub fn check(ast: &AST, known: &KnownNames) -> Vec<Finding> {
    let own_functions: BTreeSet<String> =
        ast.iter_functions().map(|f| f.name.to_string()).collect();
    // Fields of the script's own map literals may be read as properties.
    let mut own_fields: BTreeSet<String> = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Map(m, _))) = path.last() {
            own_fields.extend(m.0.iter().map(|(k, _)| k.name.to_string()));
        }
        true
    });
    // Variables set to a number, an amount or a date (`let balance = late.total();`).
    let mut numeric_vars: BTreeSet<String> = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(rhai::Stmt::Var(v, _, _))) = path.last() {
            if numeric_operand(&v.1, &numeric_vars).is_some() {
                numeric_vars.insert(v.0.name.to_string());
            }
        }
        true
    });
    let mut findings = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        match e {
            Expr::Property(p, pos) => {
                let name = p.2.as_str();
                if !known.is_property(name) && !own_fields.contains(name) {
                    let hint = nearest(name, known.properties.iter().map(String::as_str));
                    findings.push(Finding {
                        position: *pos,
                        message: format!(
                            "'{name}' is not a property of the rule API{} (the properties are listed in docs/rules.md)",
                            did_you_mean(hint)
                        ),
                    });
                }
            }
            Expr::FnCall(f, pos) | Expr::MethodCall(f, pos) if f.op_token.is_none() => {
                let name = f.name.as_str();
                if !known.is_function(name)
                    && !own_functions.contains(name)
                    && f.namespace.is_empty()
                {
                    let hint = nearest(
                        name,
                        known
                            .functions
                            .iter()
                            .chain(own_functions.iter())
                            .map(String::as_str)
                            .filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_')),
                    );
                    findings.push(Finding {
                        position: *pos,
                        message: format!(
                            "'{name}' is not a function of the rule API{} (the functions are listed in docs/rules.md)",
                            did_you_mean(hint)
                        ),
                    });
                }
                if matches!(e, Expr::FnCall(..)) {
                    if let Some((_, kind)) = CONSTRUCTORS.iter().find(|(n, _)| *n == name) {
                        if let Some(Expr::Map(m, _)) = f.args.last() {
                            check_options(*kind, &m.0, &mut findings);
                        }
                    }
                }
            }
            Expr::FnCall(f, pos)
                if f.op_token.is_some()
                    && matches!(f.name.as_str(), "==" | "!=" | "<" | "<=" | ">" | ">=")
                    && f.args.len() == 2 =>
            {
                let (a, b) = (&f.args[0], &f.args[1]);
                let pair = numeric_operand(a, &numeric_vars)
                    .zip(text_operand(b))
                    .or_else(|| numeric_operand(b, &numeric_vars).zip(text_operand(a)));
                if let Some((number, text)) = pair {
                    let fix = if crate::domain::parse_date(&text).is_ok() {
                        format!("write date(\"{text}\") to compare with a date")
                    } else {
                        format!("write {text} without quotes")
                    };
                    findings.push(Finding {
                        position: *pos,
                        message: format!(
                            "compares {number} (a number, an amount or a date) with the text \"{text}\": such a comparison is always false; {fix}"
                        ),
                    });
                }
            }
            _ => {}
        }
        true
    });
    findings.sort_by_key(|f| (f.position.line(), f.position.position()));
    findings.dedup();
    findings
}

/// The options of an action constructor written as a map literal: unknown names, and
/// constant values that can never be right.
fn check_options(kind: ActionKind, map: &[(rhai::Ident, Expr)], findings: &mut Vec<Finding>) {
    let what = kind.as_str();
    let mut allowed = vec!["step", "repeat_after_days"];
    allowed.extend_from_slice(allowed_options(kind));
    for (key, value) in map {
        let name = key.name.as_str();
        if !allowed.contains(&name) {
            findings.push(Finding {
                position: key.pos,
                message: format!(
                    "{what}: '{name}' is not an option of {what}{} (expected one of: {})",
                    did_you_mean(nearest(name, allowed.iter().copied())),
                    allowed.join(", ")
                ),
            });
            continue;
        }
        let constant = match value {
            Expr::StringConstant(s, _) => Some(Dynamic::from(s.clone())),
            Expr::IntegerConstant(n, _) => Some(Dynamic::from(*n)),
            Expr::BoolConstant(b, _) => Some(Dynamic::from(*b)),
            Expr::DynamicConstant(v, _) => Some((**v).clone()),
            _ => None,
        };
        let Some(v) = constant else { continue };
        let problem = match name {
            "step" => (!v.is_string() || v.to_string().trim().is_empty())
                .then(|| format!("{what}: option 'step' must be a non-empty string")),
            "repeat_after_days" => (!v.as_int().is_ok_and(|n| n >= 1)).then(|| {
                format!(
                    "{what}: option 'repeat_after_days' must be a whole number of days, at least 1"
                )
            }),
            _ => option_problem(kind, name, &v),
        };
        if let Some(message) = problem {
            findings.push(Finding {
                position: value.position(),
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(script: &str) -> Vec<String> {
        let engine = super::super::engine::build(
            std::sync::Arc::new(crate::domain::BusinessCalendar::default()),
            &super::super::Limits::default(),
        );
        let mut scope = rhai::Scope::new();
        scope.push("today", Dynamic::UNIT);
        scope.push("customer", Dynamic::UNIT);
        let ast = engine.compile_with_scope(&scope, script).unwrap();
        check(&ast, &KnownNames::of(&engine))
            .into_iter()
            .map(|f| format!("{}:{}", f.position.line().unwrap_or(0), f.message))
            .collect()
    }

    #[test]
    fn typos_of_properties_functions_and_options_are_found_with_the_nearest_name() {
        let f = findings("let open = customer.dunnable;\nif customer.overdue_totl > 10 { }\nemial(\"reminder_1\", open.overdue_betwen(1, 5))");
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(
            f[0].starts_with("2:'overdue_totl'") && f[0].contains("did you mean 'overdue_total'"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|m| m.contains("'emial'") && m.contains("did you mean 'email'")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|m| m.contains("'overdue_betwen'")
                    && m.contains("did you mean 'overdue_between'")),
            "{f:?}"
        );
        let f = findings("let late = customer.dunnable.overdue(30);\nlet p = if late.total() > 100 { \"high\" } else { \"low\" };\ncall_task(\"x\", late, #{ priorty: p, due_in_days: 2 })");
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("3:call_task: 'priorty'") && f[0].contains("did you mean 'priority'"),
            "{f:?}"
        );
        let f = findings("call_task(\"x\", customer.dunnable, #{ priority: \"very high\" })");
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("option 'priority' must be"), "{f:?}");
    }

    #[test]
    fn a_number_compared_with_quoted_text_is_found_even_in_an_empty_if() {
        let f = findings("if customer.overdue_total > \"1500\" { }");
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("overdue_total") && f[0].contains("\"1500\""),
            "{f:?}"
        );
        let f = findings(
            "let balance = customer.dunnable.overdue(1).total();\nif balance >= \"2000\" { 1 }",
        );
        assert_eq!(f.len(), 1, "{f:?}");
        // Text compared with text, and the script's own map fields, are fine.
        assert!(findings(
            "let m = #{ level: 2 }; if customer.country == \"FR\" && m.level > 1 { }"
        )
        .is_empty());
    }

    #[test]
    fn every_numeric_name_is_a_property_or_function_of_the_rule_api() {
        let engine = super::super::engine::build(
            std::sync::Arc::new(crate::domain::BusinessCalendar::default()),
            &super::super::Limits::default(),
        );
        let known = KnownNames::of(&engine);
        for n in NUMERIC {
            assert!(
                known.is_property(n) || known.is_function(n) || *n == "today",
                "{n}"
            );
        }
        for (n, _) in CONSTRUCTORS {
            assert!(known.is_function(n), "{n}");
        }
    }
}
