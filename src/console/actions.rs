//! The action log in the console: filters and pages, one action with why it was sent,
//! every attempt, its message as the templates render it and its documents; retry and
//! cancel for admins.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Role;
use super::pages::{internal, invalid, TokenOnly};
use super::{check_form, page_error, render, urlencode, ConsoleState, Signed};
use crate::domain::format::date as fdate;
use crate::domain::{ActionKind, Currency};
use crate::store::{ActionFilter, ActionStatus};

/// Actions per page.
const PAGE: u32 = 100;

#[derive(Deserialize, Default)]
pub(super) struct LogQuery {
    status: Option<String>,
    kind: Option<String>,
    customer: Option<String>,
    after: Option<i64>,
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<LogQuery>,
) -> Response {
    let lang = user.lang;
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let status = match nonempty(&q.status).map(|s| s.parse::<ActionStatus>()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return invalid(&format!("status: {e}"), lang),
    };
    let kind = match nonempty(&q.kind).map(|s| s.parse::<ActionKind>()) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => return invalid(&format!("kind: {e}"), lang),
    };
    let filter = ActionFilter {
        customer: nonempty(&q.customer),
        status,
        kind,
        after_id: q.after.filter(|a| *a > 0),
        limit: PAGE + 1,
        ..Default::default()
    };
    let mut rows = match state.store.list_actions(&filter).await {
        Ok(r) => r,
        Err(e) => return internal(e, lang),
    };
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let next = more.then(|| {
        format!(
            "/actions?status={}&kind={}&customer={}&after={}",
            urlencode(q.status.as_deref().unwrap_or("")),
            urlencode(q.kind.as_deref().unwrap_or("")),
            urlencode(q.customer.as_deref().unwrap_or("")),
            rows.last().map_or(0, |r| r.id)
        )
    });
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|a| {
            let c = Currency::parse(&a.currency).unwrap_or(Currency::EUR);
            json!({
                "id": a.id,
                "decided": fdate(a.decided_on, lang),
                "customer": a.customer,
                "kind": a.kind.as_str(),
                "step": a.step,
                "status": a.status.as_str(),
                "attempts": a.attempts,
                "invoices": a.invoices.join(", "),
                "amount": crate::domain::format::money(a.amount, &c, lang),
                "last_error": a.last_error,
            })
        })
        .collect();
    render(
        &state,
        "actions.html",
        lang,
        Some(&user),
        json!({
            "items": items,
            "status": q.status.unwrap_or_default(),
            "kind": q.kind.unwrap_or_default(),
            "customer": q.customer.unwrap_or_default(),
            "statuses": ["planned", "sending", "retrying", "sent", "failed", "dead", "held", "cancelled", "blocked", "error"],
            "kinds": ActionKind::ALL.iter().map(ActionKind::as_str).collect::<Vec<_>>(),
            "next": next,
        }),
    )
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<i64>,
) -> Response {
    let lang = user.lang;
    let store = &state.store;
    let detail = match store.action(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return page_error(
                StatusCode::NOT_FOUND,
                "Cette action n'existe pas.",
                "There is no such action.",
                lang,
            )
        }
        Err(e) => return internal(e, lang),
    };
    let documents = match store.documents(id).await {
        Ok(d) => d,
        Err(e) => return internal(e, lang),
    };
    // The message as the templates render it today.
    let templates = crate::templates::Templates::new(&state.config.channels.templates_dir);
    let message = match store.action_message(id).await {
        Ok(Some(a)) => {
            let mut ctx = crate::templates::MessageContext::for_action(&state.config.company, &a);
            ctx.portal_url =
                crate::portal_links::preview_url(&state.config.portal).unwrap_or_default();
            let template = a.template.clone().unwrap_or_else(|| a.step.clone());
            match a.kind {
                ActionKind::Email => match templates.email(&template, a.customer.locale, &ctx) {
                    Ok(m) => json!({ "subject": m.subject, "text": m.text, "error": null }),
                    Err(e) => json!({ "subject": null, "text": null, "error": e.to_string() }),
                },
                ActionKind::Sms => match templates.sms(&template, a.customer.locale, &ctx) {
                    Ok(t) => json!({ "subject": null, "text": t, "error": null }),
                    Err(e) => json!({ "subject": null, "text": null, "error": e.to_string() }),
                },
                _ => serde_json::Value::Null,
            }
        }
        Ok(None) => serde_json::Value::Null,
        Err(e) => return internal(e, lang),
    };
    let opened = match store.action_opened(id).await {
        Ok(o) => o.map(|(at, times)| {
            json!({
                "at": at.with_timezone(&state.config.timezone).format("%Y-%m-%d %H:%M").to_string(),
                "times": times,
            })
        }),
        Err(e) => return internal(e, lang),
    };
    let row = &detail.row;
    let c = Currency::parse(&row.currency).unwrap_or(Currency::EUR);
    let may_retry = matches!(
        row.status,
        ActionStatus::Dead
            | ActionStatus::Held
            | ActionStatus::Blocked
            | ActionStatus::Cancelled
            | ActionStatus::Failed
    );
    let may_cancel = matches!(
        row.status,
        ActionStatus::Planned | ActionStatus::Retrying | ActionStatus::Held
    );
    render(
        &state,
        "action.html",
        lang,
        Some(&user),
        json!({
            "a": {
                "id": row.id,
                "customer": row.customer,
                "segment": row.segment,
                "kind": row.kind.as_str(),
                "step": row.step,
                "template": row.template,
                "status": row.status.as_str(),
                "attempts": row.attempts,
                "amount": crate::domain::format::money(row.amount, &c, lang),
                "invoices": row.invoices.join(", "),
                "rule_file": row.rule_file,
                "rule_hash": row.rule_hash,
                "variant": row.variant,
                "decided": fdate(row.decided_on, lang),
                "last_error": row.last_error,
                "provider_ref": row.provider_ref,
                "opened": opened,
            },
            "options": serde_json::to_string_pretty(&detail.options).unwrap_or_default(),
            "facts": serde_json::to_string_pretty(&detail.facts).unwrap_or_default(),
            "events": detail.events.iter().map(|e| json!({
                "at": e.at.with_timezone(&state.config.timezone).format("%Y-%m-%d %H:%M:%S").to_string(),
                "status": e.status,
                "attempt": e.attempt,
                "detail": e.detail,
            })).collect::<Vec<_>>(),
            "documents": documents.iter().map(|d| json!({
                "kind": d.kind,
                "file": d.file_name,
                "sha256": d.sha256,
            })).collect::<Vec<_>>(),
            "message": message,
            "admin": user.role == Role::Admin,
            "may_retry": may_retry,
            "may_cancel": may_cancel,
        }),
    )
}

pub(super) async fn document(
    State(state): State<ConsoleState>,
    user: Signed,
    Path((id, kind)): Path<(i64, String)>,
) -> Response {
    let lang = user.lang;
    let docs = match state.store.documents(id).await {
        Ok(d) => d,
        Err(e) => return internal(e, lang),
    };
    let Some(doc) = docs.into_iter().find(|d| d.kind == kind) else {
        return page_error(
            StatusCode::NOT_FOUND,
            "Cette action n'a pas ce document.",
            "This action has no such document.",
            lang,
        );
    };
    let archive = crate::documents::archive::Archive::new(
        state.store.clone(),
        state.config.channels.documents.archive.clone(),
    );
    match archive.content(&doc).await {
        Ok(bytes) => {
            let content_type = if doc.file_name.ends_with(".pdf") {
                "application/pdf"
            } else {
                "application/json"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"{}\"", doc.file_name.replace('"', "")),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(action = id, error = %e, "archived document unreadable or altered");
            page_error(
                StatusCode::CONFLICT,
                "Le document archivé est illisible ou a été modifié.",
                "The archived document is unreadable or was altered.",
                lang,
            )
        }
    }
}

fn admin_only(user: &Signed) -> Result<(), Response> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(page_error(
            StatusCode::FORBIDDEN,
            "Seul un administrateur peut relancer ou annuler une action.",
            "Only an admin may retry or cancel an action.",
            user.lang,
        ))
    }
}

pub(super) async fn retry(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<i64>,
    Form(f): Form<TokenOnly>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf).and_then(|()| admin_only(&user)) {
        return r;
    }
    let customer = match state.store.action(id).await {
        Ok(Some(d)) => d.row.customer,
        Ok(None) => return invalid("no such action", user.lang),
        Err(e) => return internal(e, user.lang),
    };
    if let Err(e) = state.store.retry_action(id, Utc::now()).await {
        return invalid(&e.to_string(), user.lang);
    }
    after(
        &state,
        &user,
        id,
        "action_retried",
        &customer,
        &format!("action {id} put back in the queue"),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct CancelForm {
    #[serde(default)]
    csrf: String,
    reason: String,
}

pub(super) async fn cancel(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<i64>,
    Form(f): Form<CancelForm>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf).and_then(|()| admin_only(&user)) {
        return r;
    }
    let reason = match crate::collect::text("reason", &f.reason) {
        Ok(r) => r,
        Err(e) => return invalid(&format!("{}: {}", e.field, e.message), user.lang),
    };
    let customer = match state.store.action(id).await {
        Ok(Some(d)) => d.row.customer,
        Ok(None) => return invalid("no such action", user.lang),
        Err(e) => return internal(e, user.lang),
    };
    if let Err(e) = state.store.cancel_action(id, &reason, Utc::now()).await {
        return invalid(&e.to_string(), user.lang);
    }
    after(
        &state,
        &user,
        id,
        "action_cancelled",
        &customer,
        &format!("action {id} cancelled: {reason}"),
    )
    .await
}

async fn after(
    state: &ConsoleState,
    user: &Signed,
    id: i64,
    action: &str,
    customer: &str,
    detail: &str,
) -> Response {
    super::pages::audited(
        state,
        user,
        action,
        customer,
        detail,
        &format!("/actions/{id}"),
    )
    .await
}
