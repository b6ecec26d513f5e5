//! Errors of the HTTP API: RFC 9457 problem details (`application/problem+json`:
//! `type`, `title`, `status`, `detail`, `instance`, and relance's `code`, `field` and
//! `errors`) with a 4xx or 5xx status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// One problem with one field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path in the request body, e.g. `items[3].due_date`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub details: Vec<FieldProblem>,
}

/// The problem types the API answers with: code (the last segment of the type URI and
/// the `code` member), HTTP status, title, and what it means for the caller.
pub const PROBLEM_TYPES: &[(&str, u16, &str, &str)] = &[
    ("bad_request", 400, "Bad request", "The request cannot be read: a query parameter, a path segment or a header is malformed. `detail` says which."),
    ("malformed_json", 400, "Malformed JSON", "The body is not JSON, or not the JSON this endpoint takes (an unknown member, a value of the wrong type). `detail` names the position or the member."),
    ("unauthorized", 401, "Not authenticated", "No valid API token: send `Authorization: Bearer <token>` with a token made by `relance tokens create`."),
    ("forbidden", 403, "Not allowed", "The token is valid but its scope does not allow this request (read, write or admin)."),
    ("not_found", 404, "Not found", "No such resource (customer, invoice, action, report) or no such endpoint."),
    ("method_not_allowed", 405, "Method not allowed", "The endpoint exists but does not accept that method; the OpenAPI document lists what it does."),
    ("timeout", 503, "Request timeout", "The request could not be answered in time (`api.request_timeout_seconds`: 503), or its headers did not arrive in time (408). Retrying is safe for GET and for requests with an `Idempotency-Key`."),
    ("conflict", 409, "Conflict", "The request contradicts what is stored (an invoice of another customer, a state that does not allow the change). Nothing was written."),
    ("precondition_failed", 412, "Precondition failed", "An `If-Match` header names a version that is no longer the resource's."),
    ("payload_too_large", 413, "Body too large", "The body is over `api.max_body_bytes`: send the items in several batches."),
    ("uri_too_long", 414, "URI too long", "The request target (path and query) is over the server's limit."),
    ("unsupported_media_type", 415, "Unsupported media type", "The body must be sent with the content type the endpoint takes (`application/json`, or the file types of the import endpoints)."),
    ("document_altered", 409, "Document altered", "An archived document no longer matches the hash recorded when it was sent: the archive was changed outside relance."),
    ("document_removed", 410, "Document removed", "The document's bytes were removed after its retention period (`retention`) or when its customer's personal data was erased; the action keeps its SHA-256 and size as evidence."),
    ("invalid_field", 422, "Invalid field", "One or more fields have values the ledger refuses. `errors` lists each with its field, its JSON pointer and what is wrong; nothing of the request was written."),
    ("idempotency_key_reused", 422, "Idempotency key reused", "This `Idempotency-Key` was used before with a different request: use a new key for a new request."),
    ("idempotency_key_in_use", 409, "Idempotency key in use", "A request with this `Idempotency-Key` is still being answered: retry after it."),
    ("headers_too_large", 431, "Headers too large", "The request's headers are over the server's limit."),
    ("internal", 500, "Internal error", "The server failed to answer; the service log has the reason. Nothing half-written is kept."),
    ("unavailable", 503, "Service unavailable", "The database could not answer, or the request took longer than allowed; retry later."),
];

/// The path of a problem type, also the `type` member of the problems the API answers
/// with (a URI reference relative to the API, documented at that address).
pub fn problem_type(code: &str) -> String {
    format!("/v1/problems/{code}")
}

/// The title of a problem type (the status's reason for a code not in the table).
pub fn problem_title(code: &str, status: StatusCode) -> &'static str {
    PROBLEM_TYPES
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, _, title, _)| *title)
        .or_else(|| status.canonical_reason())
        .unwrap_or("Error")
}

/// The media type of the API's error answers (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A field path as a JSON Pointer in a URI fragment (`items[3].due_date` →
/// `#/items/3/due_date`), as RFC 9457's examples name fields.
pub fn json_pointer(field: &str) -> String {
    let mut out = String::from("#");
    for part in field.split('.') {
        let (name, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indexes.split('[') {
            let index = index.trim_end_matches(']');
            if !index.is_empty() {
                out.push('/');
                out.push_str(index);
            }
        }
    }
    out
}

/// The body of an error answer: an RFC 9457 problem with relance's members `code`
/// (the problem type's last segment), `field` (the first field in error) and `errors`
/// (each field in error).
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One field in error, in a problem's `errors`.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    /// The field's path in the request, e.g. `items[3].due_date`.
    pub field: String,
    /// The same as a JSON Pointer, e.g. `#/items/3/due_date`.
    pub pointer: String,
    pub detail: String,
}

impl Problem {
    /// The answer: this problem as `application/problem+json`, and a copy in the
    /// response's extensions for the layer that fills `instance`.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A field with an invalid value (422).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = message.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: format!("{field}: {message}"),
            field: Some(field.clone()),
            details: vec![FieldProblem { field, message }],
        }
    }

    /// Several invalid fields (422), the first one named at the top.
    pub fn invalid_fields(message: impl Into<String>, details: Vec<FieldProblem>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: details.first().map(|d| d.field.clone()),
            details,
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<crate::collect::Invalid> for ApiError {
    fn from(i: crate::collect::Invalid) -> Self {
        ApiError::invalid(i.field, i.message)
    }
}

impl From<crate::collect::CollectError> for ApiError {
    fn from(e: crate::collect::CollectError) -> Self {
        match e {
            crate::collect::CollectError::Invalid(i) => i.into(),
            crate::collect::CollectError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Invalid(m) => ApiError::conflict(m),
            other => {
                tracing::error!(error = %other, "database error while answering a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database could not answer; try again",
                )
            }
        }
    }
}

impl ApiError {
    /// This error as an RFC 9457 problem (without `instance`: the router's error layer
    /// sets it to the request's path).
    pub fn problem(&self) -> Problem {
        Problem {
            type_: problem_type(self.code),
            title: problem_title(self.code, self.status),
            status: self.status.as_u16(),
            detail: self.message.clone(),
            instance: None,
            code: self.code,
            field: self.field.clone(),
            errors: self
                .details
                .iter()
                .map(|d| FieldError {
                    pointer: json_pointer(&d.field),
                    field: d.field.clone(),
                    detail: d.message.clone(),
                })
                .collect(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response_with(self.status)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_json_pointers() {
        assert_eq!(json_pointer("items[3].due_date"), "#/items/3/due_date");
        assert_eq!(json_pointer("amount"), "#/amount");
        assert_eq!(json_pointer("a/b~c"), "#/a~1b~0c");
        assert_eq!(json_pointer("items[0][1].x"), "#/items/0/1/x");
    }

    #[test]
    fn every_problem_code_the_api_uses_has_a_title() {
        let codes: Vec<&str> = PROBLEM_TYPES.iter().map(|p| p.0).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "a code twice");
        let e = ApiError::invalid("items[1].due_date", "not a date");
        let p = e.problem();
        assert_eq!(p.title, "Invalid field");
        assert_eq!(p.type_, "/v1/problems/invalid_field");
        assert_eq!(p.errors[0].pointer, "#/items/1/due_date");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["status"], 422);
        assert!(v.get("instance").is_none());
    }
}
