//! Evaluating one customer: facts → script → decisions.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use rhai::{Dynamic, Engine, Scope};

use super::actions;
use super::decide::{decide, Decision};
use super::diagnostics::Diagnostic;
use super::engine::{self, Limits};
use super::facts::{CustomerFacts, Date, FactSettings};
use super::registry::RuleSet;
use crate::config::Config;
use crate::domain::Account;

/// Everything an evaluation needs besides the account. One per worker thread: Rhai
/// engines scale with threads when each has its own.
pub struct Evaluator {
    pub engine: Engine,
    pub settings: Arc<FactSettings>,
    pub limits: Limits,
}

/// What evaluating one customer gave.
pub struct Outcome {
    pub facts: CustomerFacts,
    pub decisions: Vec<Decision>,
    /// Where and why the rule failed, when it did (its `error` decision says it in one
    /// line).
    pub failure: Option<Box<Diagnostic>>,
}

impl Evaluator {
    pub fn new(config: &Config, limits: Limits) -> Evaluator {
        Evaluator {
            engine: engine::build(Arc::new(config.calendar.clone()), &limits),
            settings: Arc::new(fact_settings(config)),
            limits,
        }
    }

    /// Evaluates one account with its segment's script as of `today`.
    pub fn evaluate(&self, rules: &RuleSet, account: Account, today: NaiveDate) -> Outcome {
        let facts = CustomerFacts::new(account, today, self.settings.clone());
        let rule = match rules.for_customer(&facts.0.seg, &facts.0.ext_id) {
            Ok(rule) => rule,
            Err(detail) => {
                let d = Decision::error(&facts, None, detail);
                return Outcome {
                    facts,
                    decisions: vec![d],
                    failure: None,
                };
            }
        };
        let rule_ref = rule.rule_ref();
        let mut failure = None;
        // A defect met while this customer's rule runs (in a built-in function, or in
        // turning its result into decisions) is this customer's error, not the batch's.
        let decisions = crate::panics::contain(|| {
            let mut scope = Scope::new();
            scope.push_constant("today", Date(today));
            scope.push_constant("customer", facts.clone());
            engine::set_deadline(Some(Instant::now() + self.limits.time_budget));
            let result = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast);
            engine::set_deadline(None);
            match result {
                Err(e) => {
                    let d = Diagnostic::runtime(&rule.file, &rule.source, &e, &self.limits);
                    tracing::warn!(customer = %facts.account().customer.external_id, error = %d.short(), "rule evaluation failed");
                    let decision = Decision::error(&facts, Some(&rule_ref), d.short());
                    failure = Some(Box::new(d));
                    vec![decision]
                }
                Ok(value) => match actions::collect(value) {
                    Ok(requests) => decide(&facts, requests, &rule_ref),
                    Err(msg) => {
                        let d = Diagnostic {
                            file: rule.file.clone(),
                            line: None,
                            column: None,
                            message: msg,
                            source_line: None,
                        };
                        let decision = Decision::error(&facts, Some(&rule_ref), d.short());
                        failure = Some(Box::new(d));
                        vec![decision]
                    }
                },
            }
        })
        .unwrap_or_else(|internal| {
            engine::set_deadline(None);
            let detail = format!("{}: {internal} (while evaluating this customer)", rule.file);
            tracing::error!(customer = %facts.account().customer.external_id, error = %detail, "rule evaluation failed");
            vec![Decision::error(&facts, Some(&rule_ref), detail)]
        });
        Outcome {
            facts,
            decisions,
            failure,
        }
    }
}

/// The facts settings a configuration implies.
pub fn fact_settings(config: &Config) -> FactSettings {
    FactSettings {
        late_payment: Arc::new(config.late_payment.clone()),
        insurer_deadlines: config
            .insurers
            .iter()
            .map(|(k, v)| (k.clone(), v.declaration_deadline_days))
            .collect(),
    }
}
