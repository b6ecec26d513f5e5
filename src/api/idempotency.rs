//! `Idempotency-Key` on POST requests: a client that retries a request (its answer was
//! lost, its connection cut) gets the first answer again, and nothing is done twice.
//!
//! The key is scoped to the token that sends it and kept [`KEEP`]; the same key with
//! the same request (method, path, query, body) replays the answer with
//! `Idempotent-Replayed: true`; with another request it is refused (422
//! `idempotency_key_reused`); while the first is still being answered, 409
//! `idempotency_key_in_use`. A 5xx answer is not kept: the next try runs the request.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::error::ApiError;
use super::extract::Caller;
use super::AppState;
use crate::store::idempotency::Claim;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long an answer is kept.
pub const KEEP: chrono::Duration = chrono::Duration::hours(24);

/// Checks a key: 1 to 255 visible ASCII characters.
fn valid(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

pub(super) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
        return next.run(req).await;
    }
    let key = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(k) if valid(k) => k.to_string(),
        _ => {
            return ApiError::bad_request(
                "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let (mut parts, body) = req.into_parts();
    // Without a valid token the handler refuses the request: nothing to keep.
    let Ok(caller) = Caller::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let Ok(bytes) = axum::body::to_bytes(body, state.limits.max_body_bytes).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is over {} bytes (api.max_body_bytes)",
                state.limits.max_body_bytes
            ),
        )
        .into_response();
    };
    let mut hashed = Vec::with_capacity(bytes.len() + 256);
    hashed.extend_from_slice(parts.method.as_str().as_bytes());
    hashed.push(b' ');
    hashed.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("", |p| p.as_str())
            .as_bytes(),
    );
    hashed.push(b'\n');
    hashed.extend_from_slice(&bytes);
    let sha = crate::digest::sha256_hex(&hashed);
    let now = Utc::now();
    // A claim unanswered for twice the request timeout belongs to a process that died.
    let abandoned = now
        - chrono::Duration::from_std(state.limits.request_timeout * 2)
            .unwrap_or(chrono::Duration::minutes(1));
    let token = caller.token.id;
    let claim = state
        .store
        .idempotency_claim(token, &key, &sha, now, now - KEEP, abandoned)
        .await;
    match claim {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claim::Mismatch) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request: use a new key for a new request",
        )
        .into_response(),
        Ok(Claim::InProgress) => {
            let mut resp = ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being answered: retry in a moment",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Ok(Claim::Replay {
            status,
            content_type,
            body,
        }) => {
            let mut resp =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            if let Some(v) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok(Claim::New) => {
            let resp = next
                .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await;
            if resp.status().is_server_error() {
                if let Err(e) = state.store.idempotency_release(token, &key).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                let _ = state.store.idempotency_release(token, &key).await;
                return ApiError::internal("the answer could not be read").into_response();
            };
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            if let Err(e) = state
                .store
                .idempotency_record(token, &key, parts.status.as_u16(), content_type, &body)
                .await
            {
                // The request was done; only its replay is lost. Said, not hidden.
                tracing::warn!(error = %e, "could not keep the answer of an idempotent request");
            }
            Response::from_parts(parts, axum::body::Body::from(body))
        }
    }
}
