//! The rules in the console: each segment's script (or its variants) with the version
//! running, its last tick, its tests' results, and the explain view for a customer.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::pages::internal;
use super::{render, ConsoleState, Signed};
use crate::scripting::registry::{display_path, RuleSet};
use crate::scripting::{testing, Evaluator, Limits};

pub(super) async fn index(State(state): State<ConsoleState>, user: Signed) -> Response {
    let lang = user.lang;
    let config = state.config.clone();
    let running = state.registry.current();
    let (checked_at, refused) = state.registry.last_check();
    let mut segments = Vec::new();
    for (name, seg) in &config.segments {
        let last = match state.store.last_tick(name).await {
            Ok(t) => t,
            Err(e) => return internal(e, lang),
        };
        let scripts: Vec<serde_json::Value> = seg
            .scripts
            .iter()
            .map(|s| {
                let rule = running.script(name, s.variant.as_deref());
                json!({
                    "variant": s.variant,
                    "weight": s.weight,
                    "file": display_path(&s.rules, Some(&config.base_dir)),
                    "hash": rule.map(|r| r.hash[..12].to_string()),
                    "source": rule.map(|r| r.source.to_string()),
                    "running": rule.is_some(),
                    "refused": refused.get(&s.label(name)),
                })
            })
            .collect();
        segments.push(json!({
            "name": name,
            "schedule": seg.schedule_text,
            "description": seg.description,
            "experiment": seg.experiment,
            "scripts": scripts,
            "last_tick": last.map(|t| json!({
                "as_of": t.as_of.to_string(),
                "status": t.status,
                "customers": t.customers,
                "planned": t.planned,
                "errors": t.errors,
                "finished": t.finished_at.map(|f| f.with_timezone(&config.timezone).format("%Y-%m-%d %H:%M").to_string()),
            })),
        }));
    }
    // The rule tests kept next to the scripts, run against the running versions.
    let tests = {
        let config = config.clone();
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let evaluator = Evaluator::new(&config, Limits::default());
            testing::discover(&config.segments)
                .into_iter()
                .map(|t| {
                    let Some(rule) = running.script(&t.segment, t.variant.as_deref()) else {
                        return json!({
                            "file": display_path(&t.path, Some(&config.base_dir)),
                            "error": "the script does not compile",
                            "passed": 0, "failed": [],
                        });
                    };
                    let r = testing::run_file(
                        &t.path,
                        &config.base_dir,
                        &t.segment,
                        &RuleSet::only(Arc::clone(rule)),
                        &evaluator,
                        config.company.currency,
                    );
                    json!({
                        "file": r.file,
                        "error": r.error,
                        "passed": r.cases.iter().filter(|c| c.failure.is_none()).count(),
                        "failed": r.cases.iter().filter(|c| c.failure.is_some()).map(|c| json!({"name": c.name, "diff": c.failure})).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    };
    render(
        &state,
        "rules.html",
        lang,
        Some(&user),
        json!({
            "segments": segments,
            "tests": tests,
            "checked_at": checked_at.with_timezone(&config.timezone).format("%Y-%m-%d %H:%M:%S").to_string(),
        }),
    )
}

#[derive(Deserialize)]
pub(super) struct ExplainQuery {
    customer: String,
}

pub(super) async fn explain(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<ExplainQuery>,
) -> Response {
    let lang = user.lang;
    let id = q.customer.trim().to_string();
    let account = match crate::store::account_of(state.store.as_ref(), &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return super::pages::no_customer(lang),
        Err(e) => return internal(e, lang),
    };
    let config = state.config.clone();
    let rules = state.registry.current();
    let today = state.today();
    let x = tokio::task::spawn_blocking(move || {
        let evaluator = Evaluator::new(&config, Limits::default());
        crate::scripting::explain::explain(
            &evaluator,
            &rules,
            account,
            today,
            Arc::new(config.calendar.clone()),
        )
    })
    .await;
    let Ok(x) = x else {
        return internal("the explanation failed", lang);
    };
    render(
        &state,
        "explain.html",
        lang,
        Some(&user),
        json!({
            "customer": x.customer,
            "segment": x.segment,
            "as_of": x.as_of.to_string(),
            "rule_file": x.rule_file,
            "variant": x.variant,
            "decisions": x.decisions.iter().map(|d| json!({
                "kind": d.kind.map(|k| k.as_str()),
                "step": d.step.as_deref(),
                "invoices": d.invoices.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                "status": d.status.as_str(),
                "detail": d.detail,
            })).collect::<Vec<_>>(),
            "conditions": x.conditions.iter().map(|c| json!({
                "line": c.line,
                "source": c.source,
                "evaluated": c.evaluated,
                "outcome": c.outcome,
            })).collect::<Vec<_>>(),
            "calls": x.calls.iter().map(|c| json!({
                "line": c.line,
                "constructor": c.constructor,
                "invoices": c.invoices.join(", "),
            })).collect::<Vec<_>>(),
            "output": x.output,
        }),
    )
}
