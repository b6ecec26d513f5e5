//! From what a script asked to what will happen: the engine, not the rule writer,
//! guarantees that a step is applied at most once per invoice (unless the rule asks for
//! a deliberate repeat) and that disputed, paused or promised invoices and paused
//! customers never reach a channel.

use std::sync::Arc;

use rhai::ImmutableString;
use rust_decimal::Decimal;
use serde::Serialize;

use super::actions::ActionRequest;
use super::facts::CustomerFacts;
use crate::domain::{ActionKind, Currency};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionStatus {
    /// To be sent.
    Planned,
    /// Every invoice already had this step.
    AlreadyDone,
    /// Disputed, paused or promised invoices, or a paused customer.
    Blocked,
    /// The rule failed for this customer.
    Error,
}

impl DecisionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionStatus::Planned => "planned",
            DecisionStatus::AlreadyDone => "already-done",
            DecisionStatus::Blocked => "blocked",
            DecisionStatus::Error => "error",
        }
    }
}

/// The rule a decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub file: Arc<str>,
    pub hash: Arc<str>,
    /// The variant of the segment's experiment, if the segment has variants.
    pub variant: Option<Arc<str>>,
}

/// One outcome of evaluating a customer.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub customer: Arc<str>,
    pub segment: Arc<str>,
    /// `None` for an evaluation error.
    pub kind: Option<ActionKind>,
    pub step: Option<Arc<str>>,
    pub template: Option<Arc<str>>,
    pub invoices: Vec<Arc<str>>,
    pub amount: Decimal,
    pub currency: Currency,
    pub status: DecisionStatus,
    pub detail: String,
    pub options: serde_json::Map<String, serde_json::Value>,
    /// How many times the step was applied to these invoices before (0 the first time).
    pub repeat: u32,
    pub rule_file: Option<Arc<str>>,
    pub rule_hash: Option<Arc<str>>,
    /// The variant of the segment's experiment whose script decided, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Arc<str>>,
}

impl Decision {
    /// An evaluation error for a customer.
    pub fn error(facts: &CustomerFacts, rule: Option<&RuleRef>, detail: String) -> Decision {
        let c = &facts.0;
        Decision {
            customer: c.ext_id.clone(),
            segment: c.seg.clone(),
            kind: None,
            step: None,
            template: None,
            invoices: Vec::new(),
            amount: Decimal::ZERO,
            currency: c.account.customer.currency,
            status: DecisionStatus::Error,
            detail,
            options: serde_json::Map::new(),
            repeat: 0,
            rule_file: rule.map(|r| r.file.clone()),
            rule_hash: rule.map(|r| r.hash.clone()),
            variant: rule.and_then(|r| r.variant.clone()),
        }
    }
}

/// Turns a script's requests into decisions.
pub fn decide(
    facts: &CustomerFacts,
    requests: Vec<ActionRequest>,
    rule: &RuleRef,
) -> Vec<Decision> {
    let inner = &facts.0;
    let today = inner.today;
    // (step, invoice) pairs planned earlier in this same evaluation.
    let mut planned_now: Vec<(ImmutableString, usize)> = Vec::new();
    let mut out = Vec::with_capacity(requests.len());
    for req in requests {
        if req.invoices.is_empty() {
            continue;
        }
        let mut go = Vec::new();
        let mut done = Vec::new();
        let mut blocked: Vec<(usize, String)> = Vec::new();
        let mut repeat = 0u32;
        for &i in &req.invoices {
            let f = &inner.invoices[i];
            if let Some(reason) = &f.blocked {
                blocked.push((i, reason.clone()));
                continue;
            }
            if planned_now.iter().any(|(s, n)| *n == i && *s == req.step) {
                done.push((i, "planned twice by the rule in this run".to_string()));
                continue;
            }
            match f.steps.iter().find(|s| s.0 == req.step) {
                None => go.push(i),
                Some((_, _, last, times)) => {
                    let age = (today - *last).num_days();
                    match req.repeat_after_days {
                        Some(n) if age >= n => {
                            repeat = repeat.max(*times);
                            go.push(i);
                        }
                        Some(n) => done.push((i, format!("done on {last}, repeat after {n} days"))),
                        None => done.push((i, format!("done on {last}"))),
                    }
                }
            }
        }
        let step: Arc<str> = Arc::from(req.step.as_str());
        let template: Option<Arc<str>> = req.template.as_ref().map(|t| Arc::from(t.as_str()));
        let make = |idx: &[usize],
                    status: DecisionStatus,
                    detail: String,
                    repeat: u32,
                    options: serde_json::Map<String, serde_json::Value>| {
            let amount: Decimal = idx
                .iter()
                .map(|&i| inner.account.invoices[i].invoice.open_amount)
                .sum();
            let currency = idx.first().map_or(inner.account.customer.currency, |&i| {
                inner.account.invoices[i].invoice.currency
            });
            Decision {
                customer: inner.ext_id.clone(),
                segment: inner.seg.clone(),
                kind: Some(req.kind),
                step: Some(step.clone()),
                template: template.clone(),
                invoices: idx.iter().map(|&i| Arc::from(inner.number(i))).collect(),
                amount,
                currency,
                status,
                detail,
                options,
                repeat,
                rule_file: Some(rule.file.clone()),
                rule_hash: Some(rule.hash.clone()),
                variant: rule.variant.clone(),
            }
        };
        let describe = |list: &[(usize, String)]| {
            list.iter()
                .map(|(i, r)| format!("{}: {r}", inner.number(*i)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !blocked.is_empty() {
            let idx: Vec<usize> = blocked.iter().map(|b| b.0).collect();
            out.push(make(
                &idx,
                DecisionStatus::Blocked,
                describe(&blocked),
                0,
                req.options.clone(),
            ));
        }
        if go.is_empty() {
            if !done.is_empty() {
                let idx: Vec<usize> = done.iter().map(|b| b.0).collect();
                out.push(make(
                    &idx,
                    DecisionStatus::AlreadyDone,
                    describe(&done),
                    0,
                    req.options.clone(),
                ));
            }
            continue;
        }
        for &i in &go {
            planned_now.push((req.step.clone(), i));
        }
        let mut notes = Vec::new();
        if !done.is_empty() {
            notes.push(format!("left out, already done: {}", describe(&done)));
        }
        if !blocked.is_empty() {
            notes.push(format!("left out, blocked: {}", describe(&blocked)));
        }
        let planned = make(
            &go,
            DecisionStatus::Planned,
            notes.join(" | "),
            repeat,
            serde_json::Map::new(),
        );
        // The planned decision goes first, and takes the options without a copy.
        let at = out.len() - usize::from(!blocked.is_empty());
        out.insert(
            at,
            Decision {
                options: req.options,
                ..planned
            },
        );
    }
    out
}
