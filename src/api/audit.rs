//! Audit: the action log with its reasons (facts, rule file and hash), delivery
//! attempts and documents; retry and cancel; call tasks; the rules' dry-run.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{key, optional_text, required_text, typed, Caller, JsonBody, QueryParams};
use super::scope::Scope;
use super::{json, path_id, AppState};
use crate::scheduler::pipeline;
use crate::scripting::{Evaluator, Limits};
use crate::store::call_tasks::{CallOutcome, TaskFilter};
use crate::store::{AccountFilter, ActionFilter};

/// Default and largest page sizes.
const PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub(super) fn limit(q: &QueryParams) -> ApiResult<u32> {
    let limit = q
        .parse("limit", |v| {
            v.parse::<u32>()
                .map_err(|_| format!("'{v}' is not a number"))
        })?
        .unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// The `cursor` of a page paged by id: the id of the previous page's last row.
pub(super) fn id_cursor(q: &QueryParams) -> ApiResult<Option<i64>> {
    q.parse("cursor", |v| {
        v.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("'{v}' is not a cursor from a previous page"))
    })
}

/// Ends a page read with one row more than `limit` (which tells there is a next page):
/// drops that row and returns the cursor of the page's last one, `None` on the last page.
pub(super) fn split_page<T>(
    rows: &mut Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor_of)
    } else {
        None
    }
}

pub(super) fn date(v: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("'{v}' is not a date YYYY-MM-DD"))
}

/// The first instant of `d` in the configured time zone.
pub(super) fn start_of(state: &AppState, d: NaiveDate) -> chrono::DateTime<Utc> {
    let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    state
        .config
        .timezone
        .from_local_datetime(&midnight)
        .earliest()
        .map_or_else(
            || Utc.from_utc_datetime(&midnight),
            |t| t.with_timezone(&Utc),
        )
}

pub(super) async fn actions(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let q = q.only(&[
        "customer", "kind", "status", "from", "to", "cursor", "limit",
    ])?;
    let limit = limit(&q)?;
    let from = q.parse("from", date)?;
    let to = q.parse("to", date)?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::invalid("to", format!("{t} is before from ({f})")));
        }
    }
    let filter = ActionFilter {
        customer: q.key("customer")?,
        kind: q.parse("kind", str::parse)?,
        status: q.parse("status", str::parse)?,
        since: from.map(|d| start_of(&state, d)),
        until: to.map(|d| start_of(&state, d + chrono::Duration::days(1))),
        after_id: id_cursor(&q)?,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut rows = state.store.list_actions(&filter).await?;
    let next = split_page(&mut rows, limit, |r| r.id.to_string());
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "items": rows, "next_cursor": next }),
    ))
}

pub(super) async fn action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let id = path_id("id", &id)?;
    let Some(detail) = state.store.action(id).await? else {
        return Err(ApiError::not_found(format!("no action {id}")));
    };
    let documents = state.store.documents(id).await?;
    let deliveries = state.store.delivered_parts(id).await?;
    let mut v = serde_json::to_value(&detail).map_err(|e| ApiError::internal(e.to_string()))?;
    v["documents"] = serde_json::to_value(&documents).unwrap_or_default();
    v["deliveries"] = serde_json::to_value(&deliveries).unwrap_or_default();
    // When the customer first followed the portal link this action's message carried.
    let opened = state.store.action_opened(id).await?;
    v["portal_opened_at"] = serde_json::to_value(opened.map(|(at, _)| at)).unwrap_or_default();
    v["portal_visits"] = opened.map_or(0, |(_, n)| n).into();
    Ok(json(StatusCode::OK, &v))
}

pub(super) async fn document(
    State(state): State<AppState>,
    Path((id, kind)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let id = path_id("id", &id)?;
    let docs = state.store.documents(id).await?;
    let Some(doc) = docs.into_iter().find(|d| d.kind == kind) else {
        return Err(ApiError::not_found(format!(
            "action {id} has no document of kind '{kind}'"
        )));
    };
    let bytes = state.archive.content(&doc).await.map_err(|e| {
        if let crate::documents::archive::ArchiveError::Pruned { .. } = e {
            return ApiError::new(StatusCode::GONE, "document_removed", e.to_string());
        }
        tracing::error!(action = id, error = %e, "archived document unreadable or altered");
        ApiError::new(StatusCode::CONFLICT, "document_altered", e.to_string())
    })?;
    let content_type = if doc.file_name.ends_with(".pdf") {
        "application/pdf"
    } else {
        "application/json"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", doc.file_name),
            ),
            (
                header::HeaderName::from_static("x-content-sha256"),
                doc.sha256.clone(),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

pub(super) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Admin)?;
    let id = path_id("id", &id)?;
    state.store.retry_action(id, Utc::now()).await?;
    tracing::info!(action = id, by = %caller.token.name, "action requeued");
    let row = state.store.action(id).await?.map(|d| d.row);
    Ok(json(StatusCode::OK, &row))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Admin)?;
    let id = path_id("id", &id)?;
    let b: CancelBody = typed(body.value)?;
    let reason = format!(
        "{} (by {})",
        required_text("reason", &b.reason)?,
        caller.token.name
    );
    state.store.cancel_action(id, &reason, Utc::now()).await?;
    tracing::info!(action = id, by = %caller.token.name, "action cancelled");
    let row = state.store.action(id).await?.map(|d| d.row);
    Ok(json(StatusCode::OK, &row))
}

pub(super) async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let q = q.only(&[
        "status", "assignee", "customer", "due_by", "cursor", "limit",
    ])?;
    let status = q.parse("status", |v| match v {
        "open" | "done" => Ok(v.to_string()),
        _ => Err(format!("'{v}' is not open or done")),
    })?;
    let assignee = q
        .get("assignee")
        .map(|a| {
            crate::domain::ids::check_text(a, crate::domain::ids::TextKind::Name)
                .map(|()| a.to_string())
                .map_err(|e| ApiError::invalid("assignee", e.0))
        })
        .transpose()?;
    let limit = limit(&q)?;
    let filter = TaskFilter {
        assignee,
        status,
        due_by: q.parse("due_by", date)?,
        customer: q.key("customer")?,
        after: q.parse("cursor", |v| {
            crate::store::call_tasks::TaskCursor::decode(v)
                .ok_or_else(|| format!("'{v}' is not a cursor from a previous page"))
        })?,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut tasks = state.store.call_tasks(&filter).await?;
    let next = split_page(&mut tasks, limit, |t| {
        crate::store::call_tasks::TaskCursor {
            status: t.status.clone(),
            due_on: t.due_on,
            id: t.id,
        }
        .encode()
    });
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "items": tasks, "next_cursor": next }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    outcome: String,
    note: Option<String>,
    promise_date: Option<NaiveDate>,
    amount: Option<Decimal>,
    #[serde(default)]
    invoices: Vec<String>,
    dispute_reason: Option<String>,
}

pub(super) async fn complete_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    let id = path_id("id", &id)?;
    let b: CompleteBody = typed(body.value)?;
    let outcome: CallOutcome = b
        .outcome
        .parse()
        .map_err(|e: String| ApiError::invalid("outcome", e))?;
    if outcome == CallOutcome::Promise && b.promise_date.is_none() {
        return Err(ApiError::invalid(
            "promise_date",
            "a promise needs the date the customer promised to pay",
        ));
    }
    if b.amount.is_some_and(|a| a <= Decimal::ZERO) {
        return Err(ApiError::invalid("amount", "must be positive"));
    }
    for (i, n) in b.invoices.iter().enumerate() {
        key(&format!("invoices[{i}]"), n)?;
    }
    let note = optional_text("note", b.note.as_deref())?;
    let dispute_reason = optional_text("dispute_reason", b.dispute_reason.as_deref())?;
    let c = crate::call_outcomes::TaskCompletion {
        outcome,
        note,
        by: caller.token.name.clone(),
        promise_date: b.promise_date,
        amount: b.amount,
        invoices: b.invoices,
        dispute_reason,
    };
    let task = crate::call_outcomes::complete(&state.store, id, &c, Utc::now()).await?;
    Ok(json(StatusCode::OK, &task))
}

fn unknown_customer(customer: &str) -> ApiError {
    ApiError::not_found(format!("no customer with external id '{customer}'"))
}

/// What the rules endpoints of a customer take: scope `read`, a known customer, and
/// `as_of` (default today).
async fn rules_request(
    state: &AppState,
    caller: &Caller,
    customer: &str,
    q: QueryParams,
) -> ApiResult<(String, chrono::NaiveDate)> {
    caller.require(Scope::Read)?;
    let q = q.only(&["as_of"])?;
    let as_of = q.parse("as_of", date)?;
    let customer = key("external_id", customer)?;
    if state.store.customer(&customer).await?.is_none() {
        return Err(unknown_customer(&customer));
    }
    Ok((customer, as_of.unwrap_or_else(|| state.today())))
}

/// `GET /v1/customers/{id}/explain`: the customer's evaluation told in full, with the
/// conditions the script evaluated (see `scripting::explain`).
pub(super) async fn explain(
    State(state): State<AppState>,
    Path(customer): Path<String>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    let (customer, as_of) = rules_request(&state, &caller, &customer, q).await?;
    let Some(account) = crate::store::account_of(state.store.as_ref(), &customer).await? else {
        return Err(unknown_customer(&customer));
    };
    let config = state.config.clone();
    let rules = state.registry.current();
    let mut x = tokio::task::spawn_blocking(move || {
        let evaluator = Evaluator::new(&config, Limits::default());
        crate::scripting::explain::explain(
            &evaluator,
            &rules,
            account,
            as_of,
            Arc::new(config.calendar.clone()),
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("explaining {customer}: {e}")))?;
    crate::outbox::explain_deferrals(
        state.store.as_ref(),
        &state.config,
        &mut x,
        chrono::Utc::now(),
    )
    .await?;
    Ok(json(StatusCode::OK, &x))
}

pub(super) async fn dry_run(
    State(state): State<AppState>,
    Path(customer): Path<String>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    let (customer, as_of) = rules_request(&state, &caller, &customer, q).await?;
    let cfg = state.config.clone();
    let make: Arc<dyn Fn() -> Evaluator + Send + Sync> =
        Arc::new(move || Evaluator::new(&cfg, Limits::default()));
    let mut decisions = Vec::new();
    let stats = pipeline::run(
        state.store.clone(),
        AccountFilter {
            segments: None,
            customer: Some(customer.clone()),
        },
        state.registry.current(),
        make,
        pipeline::PipelineOptions {
            workers: 1,
            batch: 1,
            today: as_of,
        },
        |outcomes| {
            for o in outcomes {
                for d in o.decisions {
                    decisions.push(serde_json::to_value(&d).unwrap_or_default());
                }
            }
            async { Ok(()) }
        },
    )
    .await?;
    if let Some(why) = stats.unaccounted() {
        return Err(ApiError::internal(why));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "customer": customer, "as_of": as_of, "decisions": decisions }),
    ))
}
