//! The ledger as lists an ERP reconciles against: customers, invoices, payments, each
//! filtered and paged by cursor (the `next_cursor` of a page gives the next one), each
//! item with the instant it last changed (`updated_at`), so that `updated_since` picks
//! up what changed since the last run.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::{date, id_cursor as cursor, limit, split_page, start_of};
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryParams};
use super::scope::Scope;
use super::{json, AppState};
use crate::store::{CustomerQuery, InvoiceQuery, Listed, PaymentQuery};

/// `updated_since`: an RFC 3339 instant (`2026-12-01T06:00:00Z`) or a date (its first
/// instant in the configured time zone).
fn updated_since(state: &AppState, q: &QueryParams) -> ApiResult<Option<DateTime<Utc>>> {
    q.parse("updated_since", |v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| date(v).map(|d| start_of(state, d)))
            .map_err(|_| format!("'{v}' is neither an RFC 3339 instant nor a date YYYY-MM-DD"))
    })
}

/// A range of dates given by two parameters, the second not before the first.
fn range(
    q: &QueryParams,
    from: &str,
    to: &str,
) -> ApiResult<(Option<chrono::NaiveDate>, Option<chrono::NaiveDate>)> {
    let a = q.parse(from, date)?;
    let b = q.parse(to, date)?;
    if let (Some(a), Some(b)) = (a, b) {
        if b < a {
            return Err(ApiError::invalid(to, format!("{b} is before {from} ({a})")));
        }
    }
    Ok((a, b))
}

/// The page's answer: its items (each with `updated_at`) and the cursor of the next
/// page, `null` on the last one. `rows` holds up to `limit + 1` rows.
fn page<T: Serialize>(mut rows: Vec<Listed<T>>, limit: u32) -> ApiResult<Response> {
    let next = split_page(&mut rows, limit, |r| r.id.to_string());
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let mut v = serde_json::to_value(&r.item).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "updated_at".to_string(),
                serde_json::to_value(r.updated_at).unwrap_or_default(),
            );
        }
        items.push(v);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "items": items, "next_cursor": next }),
    ))
}

pub(super) async fn customers(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let q = q.only(&["segment", "collector", "updated_since", "cursor", "limit"])?;
    let limit = limit(&q)?;
    let name = |field: &str| {
        q.get(field)
            .map(|v| {
                crate::domain::ids::check_text(v, crate::domain::ids::TextKind::Name)
                    .map(|()| v.to_string())
                    .map_err(|e| ApiError::invalid(field, e.0))
            })
            .transpose()
    };
    let query = CustomerQuery {
        segment: name("segment")?,
        collector: name("collector")?,
        updated_since: updated_since(&state, &q)?,
        after_id: cursor(&q)?,
        limit: limit + 1,
    };
    page(state.store.list_customers(&query).await?, limit)
}

pub(super) async fn invoices(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let q = q.only(&[
        "customer",
        "status",
        "due_from",
        "due_to",
        "issued_from",
        "issued_to",
        "updated_since",
        "cursor",
        "limit",
    ])?;
    let limit = limit(&q)?;
    let (due_from, due_to) = range(&q, "due_from", "due_to")?;
    let (issued_from, issued_to) = range(&q, "issued_from", "issued_to")?;
    let query = InvoiceQuery {
        customer: q.key("customer")?,
        status: q.parse("status", |v| {
            v.parse::<crate::domain::InvoiceStatus>()
                .map_err(|_| format!("'{v}' is not open, paid, cancelled or written_off"))
        })?,
        due_from,
        due_to,
        issued_from,
        issued_to,
        updated_since: updated_since(&state, &q)?,
        after_id: cursor(&q)?,
        limit: limit + 1,
    };
    page(state.store.list_invoices(&query).await?, limit)
}

pub(super) async fn payments(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let q = q.only(&["customer", "from", "to", "updated_since", "cursor", "limit"])?;
    let limit = limit(&q)?;
    let (from, to) = range(&q, "from", "to")?;
    let query = PaymentQuery {
        id: None,
        customer: q.key("customer")?,
        from,
        to,
        updated_since: updated_since(&state, &q)?,
        after_id: cursor(&q)?,
        limit: limit + 1,
    };
    page(state.store.list_payments(&query).await?, limit)
}

/// One payment or credit note, by its id, with its allocations.
pub(super) async fn payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let id = super::extract::key("id", &id)?;
    let query = PaymentQuery {
        id: Some(id.clone()),
        limit: 1,
        ..PaymentQuery::default()
    };
    let Some(row) = state.store.list_payments(&query).await?.pop() else {
        return Err(ApiError::not_found(format!("no payment with id '{id}'")));
    };
    let mut v = serde_json::to_value(&row.item).map_err(|e| ApiError::internal(e.to_string()))?;
    v["updated_at"] = serde_json::to_value(row.updated_at).unwrap_or_default();
    Ok(json(StatusCode::OK, &v))
}
