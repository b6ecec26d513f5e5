//! What scripts return: action requests built with `email(...)`, `sms(...)`,
//! `call_task(...)`, `formal_notice(...)` and `insurer_handover(...)`.

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, Position};
use serde_json::Value;

use super::facts::{Date, InvoiceFacts, InvoiceList};
use crate::domain::ActionKind;

/// One action a script asked for.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub kind: ActionKind,
    pub template: Option<ImmutableString>,
    pub step: ImmutableString,
    /// Indexes into the customer's open invoices.
    pub invoices: Vec<usize>,
    /// Options other than `step` and `repeat_after_days`, as JSON.
    pub options: serde_json::Map<String, Value>,
    pub repeat_after_days: Option<i64>,
}

/// Options each kind accepts, besides `step` and `repeat_after_days`.
pub fn allowed_options(kind: ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::Email => &["recipients", "cc", "attachments", "reply_to"],
        ActionKind::Sms => &["to"],
        ActionKind::CallTask => &["priority", "assignee", "due_in_days"],
        ActionKind::FormalNotice => &["deadline_days", "delivery", "template"],
        ActionKind::InsurerHandover => &["insurer", "note"],
    }
}

fn err(msg: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(msg.into(), Position::NONE))
}

/// Converts a script value to JSON for storage.
pub fn to_json(v: &Dynamic) -> Value {
    if v.is_unit() {
        Value::Null
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        Value::Bool(b)
    } else if let Some(i) = v.clone().try_cast::<rhai::INT>() {
        Value::from(i)
    } else if let Some(d) = v.clone().try_cast::<rust_decimal::Decimal>() {
        Value::String(d.to_string())
    } else if let Some(d) = v.clone().try_cast::<Date>() {
        Value::String(d.0.to_string())
    } else if let Some(a) = v.clone().try_cast::<Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = v.clone().try_cast::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else {
        Value::String(v.to_string())
    }
}

/// The invoices an action names: an array of invoices, or one invoice.
fn invoice_indexes(v: &Dynamic, what: &str) -> Result<Vec<usize>, Box<EvalAltResult>> {
    if let Some(list) = v.read_lock::<InvoiceList>() {
        return Ok(list.indexes().collect());
    }
    if let Some(one) = v.read_lock::<InvoiceFacts>() {
        return Ok(vec![one.i]);
    }
    let Some(list) = v.read_lock::<Array>() else {
        return Err(err(format!(
            "{what}: expected invoices (e.g. customer.dunnable.overdue(1)) or one invoice, got {}",
            v.type_name()
        )));
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        match item.read_lock::<InvoiceFacts>() {
            Some(inv) => {
                if !out.contains(&inv.i) {
                    out.push(inv.i);
                }
            }
            None => {
                return Err(err(format!(
                    "{what}: every element must be an invoice (e.g. from customer.invoices)"
                )))
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Builds an action request, checking its options. An action naming no invoice is
/// `()`, which scripts may return and the engine skips: rules can build every step
/// unconditionally and stay cheap for customers with nothing at that stage.
///
/// # Errors
/// A script error naming the unknown option or the wrong value.
pub fn build(
    kind: ActionKind,
    template: Option<ImmutableString>,
    invoices: &Dynamic,
    options: Option<Map>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let what = kind.as_str();
    if let Some(t) = &template {
        if t.trim().is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(format!(
                "{what}: template name '{t}' must use letters, digits, '_' or '-'"
            )));
        }
    }
    let invoices = invoice_indexes(invoices, what)?;
    let mut step = template
        .clone()
        .unwrap_or_else(|| ImmutableString::from(kind.as_str()));
    let mut repeat_after_days = None;
    let mut opts = serde_json::Map::new();
    for (key, value) in options.unwrap_or_default() {
        // An option set to `()` (a fact the customer does not have, such as
        // `customer.collector`) is an option not given.
        let known = ["step", "repeat_after_days"].contains(&key.as_str())
            || allowed_options(kind).contains(&key.as_str());
        if value.is_unit() && known {
            continue;
        }
        match key.as_str() {
            "step" => match value.clone().try_cast::<ImmutableString>() {
                Some(s) if !s.trim().is_empty() => step = s,
                _ => {
                    return Err(err(format!(
                        "{what}: option 'step' must be a non-empty string"
                    )))
                }
            },
            "repeat_after_days" => match value.as_int() {
                Ok(n) if n >= 1 => repeat_after_days = Some(n),
                _ => {
                    return Err(err(format!(
                    "{what}: option 'repeat_after_days' must be a whole number of days, at least 1"
                )))
                }
            },
            k if allowed_options(kind).contains(&k) => {
                check_option(kind, k, &value)?;
                if !invoices.is_empty() {
                    opts.insert(k.to_string(), to_json(&value));
                }
            }
            k => {
                let mut allowed = vec!["step", "repeat_after_days"];
                allowed.extend_from_slice(allowed_options(kind));
                return Err(err(format!(
                    "{what}: unknown option '{k}' (expected one of: {})",
                    allowed.join(", ")
                )));
            }
        }
    }
    if invoices.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    Ok(Dynamic::from(ActionRequest {
        kind,
        template,
        step,
        invoices,
        options: opts,
        repeat_after_days,
    }))
}

fn check_option(kind: ActionKind, key: &str, v: &Dynamic) -> Result<(), Box<EvalAltResult>> {
    match option_problem(kind, key, v) {
        None => Ok(()),
        Some(msg) => Err(err(msg)),
    }
}

/// What is wrong with `v` as the value of the option `key` of an action of `kind`.
pub(crate) fn option_problem(kind: ActionKind, key: &str, v: &Dynamic) -> Option<String> {
    let what = kind.as_str();
    let days_within = |r: std::ops::RangeInclusive<i64>| v.as_int().is_ok_and(|n| r.contains(&n));
    let ok = match key {
        "due_in_days" => days_within(0..=365),
        "deadline_days" => days_within(1..=90),
        "priority" => v
            .clone()
            .try_cast::<ImmutableString>()
            .is_some_and(|s| ["low", "normal", "high", "urgent"].contains(&s.as_str())),
        "delivery" => {
            let one = |d: &Dynamic| {
                d.clone()
                    .try_cast::<ImmutableString>()
                    .is_some_and(|s| ["email", "registered_mail"].contains(&s.as_str()))
            };
            one(v)
                || v.clone()
                    .try_cast::<Array>()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(one))
        }
        "attachments" => {
            let known = |d: &Dynamic| {
                d.clone()
                    .try_cast::<ImmutableString>()
                    .is_some_and(|s| s.as_str() == "statement")
            };
            known(v)
                || v.clone()
                    .try_cast::<Array>()
                    .is_some_and(|a| a.iter().all(known))
        }
        "recipients" | "cc" => {
            v.clone()
                .try_cast::<Array>()
                .is_some_and(|a| a.iter().all(|x| x.is_string()))
                || v.is_string()
        }
        _ => v.is_string(),
    };
    if ok {
        return None;
    }
    let expected = match key {
        "due_in_days" => "a whole number of days from 0 to 365",
        "deadline_days" => "a whole number of days from 1 to 90",
        "priority" => "\"low\", \"normal\", \"high\" or \"urgent\"",
        "delivery" => "\"email\", \"registered_mail\" or an array of them",
        "attachments" => "\"statement\" or [\"statement\"] (the account statement PDF)",
        "recipients" | "cc" => "a string or an array of strings",
        _ => "a string",
    };
    Some(format!("{what}: option '{key}' must be {expected}"))
}

/// Reads what a script returned: nothing, one action, or an array of actions.
///
/// # Errors
/// A message when the value is anything else.
pub fn collect(result: Dynamic) -> Result<Vec<ActionRequest>, String> {
    if result.is_unit() {
        return Ok(Vec::new());
    }
    if result.is::<ActionRequest>() {
        return Ok(result.try_cast::<ActionRequest>().into_iter().collect());
    }
    if result.is::<Array>() {
        let list = result.cast::<Array>();
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            if item.is_unit() {
                continue;
            }
            match item.try_cast::<ActionRequest>() {
                Some(a) => out.push(a),
                None => {
                    return Err(
                        "the array the script returned holds something that is not an action"
                            .into(),
                    )
                }
            }
        }
        return Ok(out);
    }
    Err(format!(
        "the script must end with an action, an array of actions, or nothing; it returned a {}",
        result.type_name()
    ))
}
