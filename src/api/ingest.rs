//! Ingestion from ERPs: customers, invoices and payments, one at a time (`PUT`) or in
//! batches (`POST .../batch`). Items carry the columns of the CSV imports
//! (docs/import.md) as JSON fields; a batch is one transaction, written whole or not
//! at all, and idempotent by external id, invoice number or payment id.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::error::{ApiError, ApiResult, FieldProblem};
use super::extract::{Caller, JsonBody, QueryParams};
use super::scope::Scope;
use super::{json, AppState};
use crate::import::{import_records, BatchError, ImportKind, ImportOptions};

/// The text of one field, as the CSV import would read it: strings as they are,
/// numbers as written, booleans as true/false, lists of strings joined with `|`.
fn field_text(path: &str, v: &Value) -> Result<Option<String>, FieldProblem> {
    let problem = |message: &str| FieldProblem {
        field: path.to_string(),
        message: message.to_string(),
    };
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if !s.contains('|') => parts.push(s.clone()),
                    Value::String(_) => {
                        return Err(FieldProblem {
                            field: format!("{path}[{i}]"),
                            message: "must not contain '|'".into(),
                        })
                    }
                    _ => {
                        return Err(FieldProblem {
                            field: format!("{path}[{i}]"),
                            message: "expected a string".into(),
                        })
                    }
                }
            }
            Some(parts.join("|"))
        }
        Value::Object(_) => {
            return Err(problem(
                "expected a string, a number, a boolean or a list of strings",
            ))
        }
    })
}

/// One item as named text fields, or the problems with it.
fn item_fields(path: &str, v: &Value) -> Result<HashMap<String, String>, Vec<FieldProblem>> {
    let Value::Object(map) = v else {
        return Err(vec![FieldProblem {
            field: path.to_string(),
            message: "expected an object".into(),
        }]);
    };
    let mut fields = HashMap::with_capacity(map.len());
    let mut problems = Vec::new();
    for (k, v) in map {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match field_text(&p, v) {
            Ok(Some(t)) => {
                fields.insert(k.clone(), t);
            }
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

/// The path of item `i`'s field in the request.
fn item_path(single: bool, i: u64, field: Option<&str>) -> String {
    match (single, field) {
        (true, Some(f)) => f.to_string(),
        (true, None) => "body".to_string(),
        (false, Some(f)) => format!("items[{i}].{f}"),
        (false, None) => format!("items[{i}]"),
    }
}

/// What the query of an ingestion request asks: `allow_customer_change=true` (invoices
/// only) lets an invoice move to another customer.
fn ingest_options(state: &AppState, kind: ImportKind, q: QueryParams) -> ApiResult<ImportOptions> {
    let known: &[&str] = if kind == ImportKind::Invoices {
        &["allow_customer_change"]
    } else {
        &[]
    };
    let q = q.only(known)?;
    Ok(ImportOptions {
        allow_customer_change: q.flag("allow_customer_change")?,
        ..state.import.clone()
    })
}

async fn ingest(
    state: &AppState,
    kind: ImportKind,
    items: Vec<HashMap<String, String>>,
    single: bool,
    body: &[u8],
    opts: &ImportOptions,
) -> ApiResult<Response> {
    let sha = crate::digest::sha256_hex(body);
    let source = format!("api:{}", if single { "item" } else { "batch" });
    match import_records(state.store.as_ref(), kind, &items, opts, &source, &sha).await {
        // A PUT that created its resource: 201 with where it is.
        Ok(report) if single && report.written.inserted == 1 => {
            let (collection, key_field) = match kind {
                ImportKind::Customers => ("customers", "external_id"),
                ImportKind::Invoices => ("invoices", "number"),
                _ => ("payments", "id"),
            };
            let key = items[0].get(key_field);
            let mut resp = json(StatusCode::CREATED, &report);
            if let Some(location) = key
                .map(|k| {
                    format!(
                        "/v1/{collection}/{}",
                        super::percent_encode_segment(k.trim())
                    )
                })
                .and_then(|l| axum::http::HeaderValue::from_str(&l).ok())
            {
                resp.headers_mut()
                    .insert(axum::http::header::LOCATION, location);
            }
            Ok(resp)
        }
        Ok(report) => Ok(json(StatusCode::OK, &report)),
        Err(BatchError::Rejected(errors)) => {
            let n = errors.len();
            let details = errors
                .into_iter()
                .map(|e| FieldProblem {
                    field: item_path(single, e.line, e.column.as_deref()),
                    message: e.message,
                })
                .collect();
            let message = if single {
                "the item is invalid; nothing was written".to_string()
            } else {
                format!("{n} problem(s) in the batch; nothing was written")
            };
            Err(ApiError::invalid_fields(message, details))
        }
        Err(BatchError::Store(e)) => Err(e.into()),
    }
}

async fn batch(
    state: AppState,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
    kind: ImportKind,
) -> ApiResult<Response> {
    caller.require(Scope::Ingest)?;
    let opts = ingest_options(&state, kind, q)?;
    let Value::Object(mut root) = body.value else {
        return Err(ApiError::invalid(
            "body",
            "expected an object {\"items\": [...]}",
        ));
    };
    if let Some(k) = root.keys().find(|k| k.as_str() != "items") {
        return Err(ApiError::invalid(
            k.as_str(),
            "unknown field (expected items)",
        ));
    }
    let Some(Value::Array(items)) = root.remove("items") else {
        return Err(ApiError::invalid("items", "expected a list of items"));
    };
    if items.is_empty() {
        return Err(ApiError::invalid("items", "the batch is empty"));
    }
    if items.len() > state.limits.max_batch_items {
        return Err(ApiError::invalid(
            "items",
            format!(
                "{} items: at most {} per batch (api.max_batch_items)",
                items.len(),
                state.limits.max_batch_items
            ),
        ));
    }
    let mut records = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item_fields(&format!("items[{i}]"), item) {
            Ok(f) => records.push(f),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(
            format!(
                "{} problem(s) in the batch; nothing was written",
                problems.len()
            ),
            problems,
        ));
    }
    ingest(&state, kind, records, false, &body.bytes, &opts).await
}

/// One item, keyed by the path: the body may repeat the key, not contradict it.
async fn single(
    state: AppState,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
    kind: ImportKind,
    (key_field, key): (&str, String),
) -> ApiResult<Response> {
    caller.require(Scope::Ingest)?;
    let opts = ingest_options(&state, kind, q)?;
    let mut fields = item_fields("", &body.value)
        .map_err(|p| ApiError::invalid_fields("the item is invalid; nothing was written", p))?;
    match fields.get(key_field) {
        Some(k) if k.trim() != key => {
            return Err(ApiError::invalid(
                key_field,
                format!("'{k}' differs from '{key}' in the path"),
            ))
        }
        _ => {
            fields.insert(key_field.to_string(), key);
        }
    }
    ingest(&state, kind, vec![fields], true, &body.bytes, &opts).await
}

pub(super) async fn put_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    single(
        state,
        caller,
        q,
        body,
        ImportKind::Customers,
        ("external_id", id),
    )
    .await
}

pub(super) async fn customers_batch(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    batch(state, caller, q, body, ImportKind::Customers).await
}

pub(super) async fn put_invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    single(
        state,
        caller,
        q,
        body,
        ImportKind::Invoices,
        ("number", number),
    )
    .await
}

pub(super) async fn invoices_batch(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    batch(state, caller, q, body, ImportKind::Invoices).await
}

pub(super) async fn put_payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    single(state, caller, q, body, ImportKind::Payments, ("id", id)).await
}

pub(super) async fn payments_batch(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
    body: JsonBody,
) -> ApiResult<Response> {
    batch(state, caller, q, body, ImportKind::Payments).await
}
