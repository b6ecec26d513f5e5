//! Bank statements: `POST /v1/bank/statements` imports a camt.053 / camt.054 statement
//! (the body, XML) and answers what was matched and how; `GET /v1/bank/credits` lists
//! the credits recorded, the unmatched ones for a collector.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryParams};
use super::scope::Scope;
use super::{json, AppState};

/// `POST /v1/bank/statements?name=releve-2026-11-02.xml`: the statement in the body.
pub(super) async fn import_statement(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(Scope::Ingest)?;
    let name = q
        .parse("name", |v| {
            crate::domain::ids::check_text(v, crate::domain::ids::TextKind::Name)
                .map(|()| v.to_string())
                .map_err(|e| e.0)
        })?
        .unwrap_or_else(|| "statement.xml".to_string());
    if body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "send the statement's XML (camt.053 or camt.054) as the body",
        ));
    }
    match crate::import::camt::import_camt_bytes(state.store.as_ref(), &name, &body, &state.import)
        .await
    {
        Ok(report) => Ok(json(StatusCode::OK, &report)),
        Err(crate::import::ImportError::Store(e)) => Err(e.into()),
        Err(crate::import::ImportError::File { message, .. }) => {
            Err(ApiError::invalid("body", message))
        }
        Err(other) => Err(ApiError::invalid("body", other.to_string())),
    }
}

/// `GET /v1/bank/credits?unmatched=true&limit=100`.
pub(super) async fn credits(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let unmatched = q
        .parse("unmatched", |v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(format!("'{other}' is not true or false")),
        })?
        .unwrap_or(false);
    let limit = q
        .parse("limit", |v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| format!("'{v}' is not a number from 1 to 10000"))
        })?
        .unwrap_or(100);
    let rows = state.store.bank_credits(unmatched, limit).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": rows })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// Code (`212`), id (`collected`) or French name (`Encaissée`).
    status: String,
    date: Option<chrono::NaiveDate>,
    reason: Option<String>,
    amount: Option<rust_decimal::Decimal>,
}

/// `POST /v1/invoices/{number}/status`: an e-invoicing lifecycle status from the
/// company's platform, applied to the invoice (see `import::einvoice::apply_status`).
pub(super) async fn invoice_status(
    State(state): State<AppState>,
    axum::extract::Path(number): axum::extract::Path<String>,
    caller: Caller,
    body: super::extract::JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Ingest)?;
    let number = super::extract::key("number", &number)?;
    let b: StatusBody = super::extract::typed(body.value)?;
    let report = crate::import::einvoice::StatusReport {
        status: b.status,
        date: b.date,
        reason: b.reason,
        amount: b.amount,
    };
    match crate::import::einvoice::apply_status(
        state.store.as_ref(),
        &number,
        &report,
        &state.import,
        "api",
        state.today(),
    )
    .await
    {
        Ok(outcome) => Ok(json(StatusCode::OK, &outcome)),
        Err(crate::import::ImportError::Store(e)) => Err(e.into()),
        Err(crate::import::ImportError::File { message, .. })
            if message.starts_with("no invoice") =>
        {
            Err(ApiError::not_found(message))
        }
        Err(crate::import::ImportError::File { message, .. }) => {
            let field = message.split(':').next().unwrap_or("status").to_string();
            let field = if ["status", "reason", "amount"].contains(&field.as_str()) {
                field
            } else {
                "status".to_string()
            };
            Err(ApiError::invalid(field, message))
        }
        Err(other) => Err(ApiError::invalid("status", other.to_string())),
    }
}
