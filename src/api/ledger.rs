//! The ledger as collectors see it: a customer's account, an invoice; and what they
//! record: pauses, disputes, promises to pay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{key, typed, Caller, JsonBody};
use super::scope::Scope;
use super::{json, AppState};
use crate::collect::{self, Change};
use crate::domain::{InvoiceStatus, Pause};
use crate::store::call_tasks::TaskFilter;
use crate::store::ActionFilter;

/// Most actions shown in a customer's history (the audit endpoint pages through all).
const HISTORY: u32 = 200;

pub(super) async fn customer_view(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let id = key("external_id", &id)?;
    let store = &state.store;
    let Some(customer) = store.customer(&id).await? else {
        return Err(ApiError::not_found(format!(
            "no customer with external id '{id}'"
        )));
    };
    let today = state.today();
    let invoices = store.invoices_of(&id).await?;
    let payments = store.payments_of(&id).await?;
    let promises = store.promises_of(&id).await?;
    let tasks = store
        .call_tasks(&TaskFilter {
            customer: Some(id.clone()),
            limit: 500,
            ..Default::default()
        })
        .await?;
    let mut history = store
        .list_actions(&ActionFilter {
            customer: Some(id.clone()),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    // The latest first, at most HISTORY.
    history.reverse();
    history.truncate(HISTORY as usize);
    let (total_open, overdue, open_count) = crate::domain::invoice::open_balance(&invoices, today);
    let open: Vec<_> = invoices
        .iter()
        .filter(|i| i.status == InvoiceStatus::Open)
        .collect();
    let current_promise = promises
        .iter()
        .filter(|p| p.status == crate::domain::PromiseStatus::Pending)
        .max_by_key(|p| p.created_at);
    let open_tasks: Vec<_> = tasks.iter().filter(|t| t.status == "open").collect();
    let body = serde_json::json!({
        "customer": customer,
        "as_of": today,
        "balance": {
            "currency": customer.currency.code(),
            "open": total_open,
            "overdue": overdue,
            "open_invoices": open_count,
        },
        "pause": customer.pause,
        "current_promise": current_promise,
        "open_invoices": open,
        "invoices": invoices,
        "payments": payments,
        "promises": promises,
        "tasks": open_tasks,
        "history": history,
    });
    Ok(json(StatusCode::OK, &body))
}

pub(super) async fn invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let number = key("number", &number)?;
    match state.store.invoice(&number).await? {
        Some(i) => Ok(json(StatusCode::OK, &i)),
        None => Err(ApiError::not_found(format!(
            "no invoice numbered '{number}'"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: String,
    /// Last paused day; none: until lifted.
    until: Option<NaiveDate>,
}

fn pause_of(body: JsonBody, today: NaiveDate) -> ApiResult<Pause> {
    let b: PauseBody = typed(body.value)?;
    Ok(collect::pause(&b.reason, b.until, today)?)
}

/// Applies `change` to the customer or invoice `key` in a transaction of its own, logs
/// it with the token's name, and answers with the new state.
async fn apply(
    state: &AppState,
    caller: &Caller,
    key: String,
    change: Change,
) -> ApiResult<Response> {
    collect::apply(state.store.as_ref(), &key, &change).await?;
    let by = &caller.token.name;
    let body = match change {
        Change::CustomerPause(Some(p)) => {
            tracing::info!(customer = %key, reason = %p.reason, by = %by, "customer paused");
            serde_json::json!({ "customer": key, "pause": p })
        }
        Change::CustomerPause(None) => {
            tracing::info!(customer = %key, by = %by, "customer pause lifted");
            serde_json::json!({ "customer": key, "pause": null })
        }
        Change::InvoicePause(Some(p)) => {
            tracing::info!(invoice = %key, reason = %p.reason, by = %by, "invoice paused");
            serde_json::json!({ "invoice": key, "pause": p })
        }
        Change::InvoicePause(None) => {
            tracing::info!(invoice = %key, by = %by, "invoice pause lifted");
            serde_json::json!({ "invoice": key, "pause": null })
        }
        Change::Dispute(Some(d)) => {
            tracing::info!(invoice = %key, reason = %d.reason, by = %by, "dispute opened");
            serde_json::json!({ "invoice": key, "dispute": d })
        }
        Change::Dispute(None) => {
            tracing::info!(invoice = %key, by = %by, "dispute resolved");
            serde_json::json!({ "invoice": key, "dispute": null })
        }
    };
    Ok(json(StatusCode::OK, &body))
}

pub(super) async fn pause_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    let pause = pause_of(body, state.today())?;
    apply(&state, &caller, id, Change::CustomerPause(Some(pause))).await
}

pub(super) async fn unpause_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    apply(&state, &caller, id, Change::CustomerPause(None)).await
}

pub(super) async fn pause_invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    let pause = pause_of(body, state.today())?;
    apply(&state, &caller, number, Change::InvoicePause(Some(pause))).await
}

pub(super) async fn unpause_invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    apply(&state, &caller, number, Change::InvoicePause(None)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisputeBody {
    reason: String,
}

pub(super) async fn open_dispute(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    let b: DisputeBody = typed(body.value)?;
    let dispute = collect::dispute(&b.reason, chrono::Utc::now())?;
    apply(&state, &caller, number, Change::Dispute(Some(dispute))).await
}

pub(super) async fn resolve_dispute(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    apply(&state, &caller, number, Change::Dispute(None)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseBody {
    customer: String,
    promised_date: NaiveDate,
    amount: Decimal,
    #[serde(default)]
    invoices: Vec<String>,
    note: Option<String>,
}

pub(super) async fn add_promise(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Collect)?;
    let b: PromiseBody = typed(body.value)?;
    let input = collect::PromiseInput {
        customer: b.customer,
        promised_date: b.promised_date,
        amount: b.amount,
        invoices: b.invoices,
        note: Some(
            b.note
                .unwrap_or_else(|| format!("recorded through the API by {}", caller.token.name)),
        ),
    };
    let created = collect::add_promise(state.store.as_ref(), input).await?;
    if let Some(p) = &created {
        tracing::info!(customer = %p.customer, promised_date = %p.promised_date, by = %caller.token.name, "promise to pay recorded");
    }
    Ok(json(StatusCode::CREATED, &created))
}
