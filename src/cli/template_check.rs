//! Checking templates before anything is sent: every email and SMS template the rules
//! use is rendered, in every shipped language, with the decisions the rules take on a
//! generated sample portfolio (`sample::accounts`) — `relance rules check` and
//! `relance config check`.

use crate::scripting::{DecisionStatus, Evaluator, Limits};

/// What rendering found.
#[derive(Debug, Default)]
pub struct TemplateReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub rendered: usize,
    pub decisions: usize,
}

/// Template names a script names literally: `email("name"` and `sms("name"`.
fn literal_templates(source: &str, function: &str) -> Vec<String> {
    let needle = format!("{function}(\"");
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(pos) = rest.find(&needle) {
        let before = rest[..pos].chars().last();
        rest = &rest[pos + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Renders the templates the rules use with the decisions they take on `samples`
/// (customers of any segment: each is evaluated as a customer of every segment) as of
/// `as_of`.
pub fn check(
    config: &crate::config::Config,
    rules: &crate::scripting::RuleSet,
    samples: &[crate::domain::Account],
    as_of: chrono::NaiveDate,
) -> TemplateReport {
    use crate::domain::{ActionKind, Locale};
    use crate::templates::{sms_length, MessageContext, Templates};
    use std::collections::BTreeMap;

    let mut report = TemplateReport::default();
    let templates = Templates::new(&config.channels.templates_dir);
    let evaluator = Evaluator::new(config, Limits::default());
    // (kind, template) -> contexts of the sample decisions using it.
    let mut uses: BTreeMap<(ActionKind, String), Vec<MessageContext>> = BTreeMap::new();
    for rule in rules.all() {
        let segment = &rule.segment;
        let one = crate::scripting::registry::RuleSet::only(rule.clone());
        for sample in samples {
            let mut account = sample.clone();
            account.customer.segment = segment.clone();
            let outcome = evaluator.evaluate(&one, account, as_of);
            let account = outcome.facts.account();
            for d in &outcome.decisions {
                let Some(kind) = d
                    .kind
                    .filter(|k| matches!(k, ActionKind::Email | ActionKind::Sms))
                else {
                    continue;
                };
                if d.status != DecisionStatus::Planned {
                    continue;
                }
                report.decisions += 1;
                let name = d
                    .template
                    .as_deref()
                    .or(d.step.as_deref())
                    .unwrap_or("")
                    .to_string();
                let invoices: Vec<crate::domain::Invoice> = account
                    .invoices
                    .iter()
                    .filter(|o| d.invoices.iter().any(|n| n.as_ref() == o.invoice.number))
                    .map(|o| o.invoice.clone())
                    .collect();
                let mut ctx = MessageContext::new(
                    &config.company,
                    &account.customer,
                    &invoices,
                    d.step.as_deref().unwrap_or(""),
                    as_of,
                );
                // With a portal, templates are checked with the link in place.
                ctx.portal_url =
                    crate::portal_links::preview_url(&config.portal).unwrap_or_default();
                let list = uses.entry((kind, name)).or_default();
                if list.len() < 50 {
                    list.push(ctx);
                }
            }
        }
    }
    // Names only a script's text shows (a branch the sample did not reach).
    for rule in rules.all() {
        for (function, kind) in [("email", ActionKind::Email), ("sms", ActionKind::Sms)] {
            for name in literal_templates(&rule.source, function) {
                uses.entry((kind, name)).or_default();
            }
        }
    }
    let fallback = uses.values().find_map(|v| v.first().cloned());
    // With a portal, its confirmation is checked for each act it confirms.
    if config.portal.enabled() {
        if let Some(sample) = &fallback {
            for kind in ["promise", "dispute", "contact"] {
                let mut ctx = sample.clone();
                ctx.portal_act = crate::templates::PortalAct {
                    kind: kind.into(),
                    invoice: ctx
                        .invoices
                        .first()
                        .map(|i| i.number.clone())
                        .unwrap_or_default(),
                    date: ctx.today.clone(),
                    amount: ctx.total_open.clone(),
                    reason: "Wrong amount or price".into(),
                    message: "The agreed price was lower.".into(),
                };
                uses.entry((ActionKind::Email, "portal_confirmation".into()))
                    .or_default()
                    .push(ctx);
            }
        }
    }
    let max_segments = config.channels.sms.as_ref().map_or(2, |s| s.max_segments) as usize;
    for ((kind, name), contexts) in &uses {
        for locale in [Locale::Fr, Locale::En] {
            let samples: Vec<&MessageContext> = if contexts.is_empty() {
                fallback.iter().collect()
            } else {
                contexts.iter().collect()
            };
            if samples.is_empty() {
                continue;
            }
            let mut worst: Option<(usize, &'static str, String)> = None;
            for ctx in samples {
                let lang = if locale == Locale::Fr { "fr" } else { "en" };
                let result = match kind {
                    ActionKind::Email => templates.email(name, locale, ctx).map(|_| ()),
                    _ => templates.sms(name, locale, ctx).map(|text| {
                        let l = sms_length(&text);
                        if l.segments > worst.as_ref().map_or(0, |w| w.0) {
                            worst = Some((
                                l.segments,
                                l.encoding,
                                format!("{} ({lang})", ctx.customer.id),
                            ));
                        }
                    }),
                };
                report.rendered += 1;
                if let Err(e) = result {
                    report
                        .errors
                        .push(format!("{kind} template '{name}' ({lang}): {e}"));
                    break;
                }
            }
            if let Some((segments, encoding, customer)) = worst {
                if segments > max_segments {
                    report.warnings.push(format!(
                        "sms template '{name}' takes {segments} {encoding} segments for sample customer {customer}, more than channels.sms.max_segments ({max_segments})"
                    ));
                }
            }
        }
    }
    report
}
