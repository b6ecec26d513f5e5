//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::error::ApiResult;
use super::extract::Caller;
use super::scope::Scope;
use super::{json, AppState, OPENAPI};

/// The process is alive and answering.
pub(super) async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Ready to work: the database answers and every migration this version ships is
/// applied. 503 otherwise, with what is missing.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let scheduler = if state.metrics.is_leader() {
        "leader"
    } else {
        "standby"
    };
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.store.migrations_applied(),
    )
    .await;
    let (ready, database, migrations) = match check {
        Ok(Ok((applied, expected))) => (
            applied >= expected,
            "ok".to_string(),
            serde_json::json!({ "applied": applied, "expected": expected }),
        ),
        Ok(Err(e)) => (false, format!("error: {e}"), serde_json::Value::Null),
        Err(_) => (
            false,
            "error: no answer within 5 s".to_string(),
            serde_json::Value::Null,
        ),
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "backend": state.store.backend(),
        "migrations": migrations,
        "scheduler": scheduler,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

/// Prometheus text format: this process's counters and the action log's gauges.
pub(super) async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let counts = state.store.action_counts(Utc::now()).await?;
    let states = state.store.endpoint_states().await?;
    let mut out = String::with_capacity(8192);
    state.metrics.render(&mut out);
    let mut gauges = crate::metrics::ScrapeGauges::default();
    gauges.family2(
        "relance_actions",
        "Actions in the action log, by kind and status",
        ("kind", "status"),
        &counts.by_kind_status,
    );
    let dead: i64 = counts
        .by_kind_status
        .iter()
        .filter(|(_, s, _)| s == "dead")
        .map(|(_, _, n)| n)
        .sum();
    gauges.gauge(
        "relance_queue_depth",
        "Actions planned or retrying whose time has come",
        counts.due,
    );
    gauges.gauge(
        "relance_dead_letters",
        "Actions whose attempts are exhausted (dead)",
        dead,
    );
    let endpoints: Vec<(String, i64)> = state
        .config
        .insurers
        .keys()
        .map(|key| {
            let up = !states
                .iter()
                .any(|s| &s.insurer == key && s.disabled_at.is_some());
            (key.to_string(), i64::from(up))
        })
        .collect();
    gauges.family(
        "relance_insurer_endpoint_up",
        "1 when the insurer's endpoint is enabled, 0 when disabled (after 410 Gone or by an operator)",
        "insurer",
        &endpoints,
    );
    gauges.render(&mut out);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        out,
    )
        .into_response())
}

/// The OpenAPI document (any valid token).
pub(super) async fn openapi(_caller: Caller) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// What a problem type means: the page an error answer's `type` names (no token).
pub(super) async fn problem(
    axum::extract::Path(code): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let Some((code, status, title, meaning)) = super::error::PROBLEM_TYPES
        .iter()
        .find(|(c, ..)| *c == code)
    else {
        return Err(super::ApiError::not_found(
            "no such problem type (see /v1/openapi.json, schema Problem)",
        ));
    };
    // The meaning's `code spans` as <code>, the rest escaped.
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .split('`')
            .enumerate()
            .map(|(i, part)| {
                if i % 2 == 1 {
                    format!("<code>{part}</code>")
                } else {
                    part.to_string()
                }
            })
            .collect::<String>()
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} — relance API</title></head>\n<body><h1>{title}</h1>\n<p>HTTP status {status}, <code>code</code> <code>{code}</code>.</p>\n<p>{}</p>\n<p>Every error answer of the relance API is an RFC 9457 problem (<code>application/problem+json</code>): <code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code>, <code>instance</code>, and <code>code</code>, <code>field</code>, <code>errors</code>.</p>\n</body></html>\n",
        escape(meaning)
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response())
}
