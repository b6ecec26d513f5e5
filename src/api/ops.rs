//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::fmt::Write as _;

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
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let counts = state.store.action_counts(Utc::now()).await?;
    let _ = writeln!(out, "# HELP relance_actions Actions in the action log, by kind and status.\n# TYPE relance_actions gauge");
    for (kind, status, n) in &counts.by_kind_status {
        let _ = writeln!(
            out,
            "relance_actions{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    let dead: i64 = counts
        .by_kind_status
        .iter()
        .filter(|(_, s, _)| s == "dead")
        .map(|(_, _, n)| n)
        .sum();
    let _ = writeln!(out, "# HELP relance_queue_depth Actions planned or retrying whose time has come.\n# TYPE relance_queue_depth gauge\nrelance_queue_depth {}", counts.due);
    let _ = writeln!(out, "# HELP relance_dead_letters Actions whose attempts are exhausted (dead).\n# TYPE relance_dead_letters gauge\nrelance_dead_letters {dead}");
    let states = state.store.endpoint_states().await?;
    let _ = writeln!(out, "# HELP relance_insurer_endpoint_up 1 when the insurer's endpoint is enabled, 0 when disabled (after 410 Gone or by an operator).\n# TYPE relance_insurer_endpoint_up gauge");
    for key in state.config.insurers.keys() {
        let up = !states
            .iter()
            .any(|s| &s.insurer == key && s.disabled_at.is_some());
        let _ = writeln!(
            out,
            "relance_insurer_endpoint_up{{insurer=\"{}\"}} {}",
            key.replace('"', "\\\""),
            u8::from(up)
        );
    }
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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
