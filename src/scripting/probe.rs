//! Trying a script on customers before it runs for real: `relance rules check` and
//! every reload in `relance serve` evaluate a new script on sample customers (a
//! generated portfolio, and some of the segment's real customers where the ledger is
//! reachable). A script that fails on any of them is refused, with the error, the
//! customer and the facts that triggered it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::diagnostics::Diagnostic;
use super::evaluate::Evaluator;
use super::registry::{CompiledRule, RuleError, RuleSet};
use crate::domain::Account;

/// The customers new scripts are tried on.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Customers of any segment: each is tried as a customer of the script's segment.
    pub samples: Vec<Account>,
    /// Real customers, by segment.
    pub real: HashMap<String, Vec<Account>>,
}

impl Probe {
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.real.values().all(Vec::is_empty)
    }

    /// How many customers a script of `segment` is tried on.
    pub fn size(&self, segment: &str) -> usize {
        self.samples.len() + self.real.get(segment).map_or(0, Vec::len)
    }
}

/// Evaluates `rule` for every customer of `probe` its segment would see; the first
/// customer the script fails for refuses it. Returns how many customers were tried.
///
/// # Errors
/// The rule's error for the first customer it fails on, with that customer and the
/// facts that triggered it.
pub fn try_rule(
    evaluator: &Evaluator,
    rule: &Arc<CompiledRule>,
    probe: &Probe,
    today: NaiveDate,
) -> Result<usize, RuleError> {
    let segment = rule.segment.as_str();
    let set = RuleSet::only(rule.clone());
    let real = probe.real.get(segment).into_iter().flatten();
    let mut tried = 0;
    for (account, sample) in real
        .map(|a| (a, false))
        .chain(probe.samples.iter().map(|a| (a, true)))
    {
        let mut account = account.clone();
        account.customer.segment = segment.to_string();
        let id = account.customer.external_id.clone();
        // The failure is reported below, once: the evaluator's own log line would repeat it.
        let outcome =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                evaluator.evaluate(&set, account, today)
            });
        tried += 1;
        let Some(failure) = outcome.failure else {
            continue;
        };
        let facts = serde_json::to_string(&outcome.facts.snapshot()).unwrap_or_default();
        let whose = if sample {
            format!("sample customer {id}")
        } else {
            format!("customer {id}")
        };
        let more = Diagnostic {
            file: failure.file.clone(),
            line: None,
            column: None,
            message: format!(
                "the script fails for {whose} as of {today} (and would fail the same way when it runs); the facts it saw: {facts}"
            ),
            source_line: None,
        };
        let mut error = RuleError::new(&rule.label(), *failure);
        error.more.push(more);
        return Err(error);
    }
    Ok(tried)
}
