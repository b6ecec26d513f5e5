//! Request extraction: the caller's token, JSON bodies and query strings, each failing
//! with a JSON error that names what is wrong.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};
use super::scope::{self, Scope};
use super::AppState;
use crate::domain::ids::{check_text, TextKind};
use crate::store::tokens::ApiToken;

/// The SHA-256 under which a token's secret is stored.
pub fn token_hash(secret: &str) -> String {
    crate::digest::sha256_hex(secret.as_bytes())
}

/// The authenticated caller.
pub struct Caller {
    pub token: ApiToken,
}

impl Caller {
    /// Fails with 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if scope::allows(&self.token, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token '{}' lacks the '{}' scope",
                self.token.name,
                scope.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing token: send the header Authorization: Bearer <token>",
            ));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("malformed Authorization header: expected Bearer <token>")
            })?;
        let token = state
            .store
            .token_by_hash(&token_hash(secret))
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))?;
        Ok(Caller { token })
    }
}

/// A JSON request body: its bytes and its parsed value.
pub struct JsonBody {
    pub value: serde_json::Value,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<JsonBody> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if json.as_deref() != Some("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than api.max_body_bytes; send smaller batches",
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
            }
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "malformed JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(JsonBody { value, bytes })
    }
}

/// Deserialises a typed body; a wrong type, a missing or unknown field, or an explicit
/// `null` (an optional field is left out, not null) is a 422 naming the field.
pub fn typed<T: DeserializeOwned>(value: serde_json::Value) -> ApiResult<T> {
    if let serde_json::Value::Object(map) = &value {
        let mut nulls: Vec<&String> = map
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k)
            .collect();
        nulls.sort();
        if let Some(k) = nulls.first() {
            return Err(ApiError::invalid(
                k.as_str(),
                "must not be null (leave an optional field out)",
            ));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(field, e.inner().to_string())
    })
}

/// Query parameters, checked against the names an endpoint reads.
pub struct QueryParams(pub HashMap<String, String>);

impl QueryParams {
    /// Fails with 422 naming a parameter the endpoint does not know, or one given
    /// empty (`as_of=`) or with control characters.
    pub fn only(self, known: &[&str]) -> ApiResult<QueryParams> {
        let mut unknown: Vec<&String> = self
            .0
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            return Err(ApiError::invalid(
                k.as_str(),
                format!(
                    "unknown query parameter (expected one of: {})",
                    known.join(", ")
                ),
            ));
        }
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        for k in names {
            let v = &self.0[k];
            if v.trim().is_empty() {
                return Err(ApiError::invalid(
                    k.as_str(),
                    "must not be empty (leave the parameter out)",
                ));
            }
            check_text(v, TextKind::Text).map_err(|e| ApiError::invalid(k.as_str(), e.0))?;
        }
        Ok(self)
    }

    /// A boolean parameter, `true` or `false`; `false` when absent.
    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        Ok(self
            .parse(name, |v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("'{v}' is not true or false")),
            })?
            .unwrap_or(false))
    }

    /// An identifier parameter (a customer's external id), checked as identifiers are.
    pub fn key(&self, name: &str) -> ApiResult<Option<String>> {
        self.get(name).map(|v| key(name, v)).transpose()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Parses a parameter, naming it on error.
    pub fn parse<T>(
        &self,
        name: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> ApiResult<Option<T>> {
        self.get(name)
            .map(|v| f(v).map_err(|m| ApiError::invalid(name, m)))
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<QueryParams> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(q)?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::invalid(k, "given more than once"));
            }
        }
        Ok(QueryParams(map))
    }
}

/// Decodes `a=1&b=x%20y` into pairs.
fn serde_urlencoded_pairs(q: &str) -> ApiResult<Vec<(String, String)>> {
    let decode = |s: &str| -> ApiResult<String> {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("malformed percent-encoding in the query")
                    })?;
                out.push(hex);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).map_err(|_| ApiError::bad_request("the query is not UTF-8"))
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A required free-text field (a reason): trimmed, refused when empty, with control
/// characters or longer than free text may be.
pub(crate) fn required_text(field: &str, value: &str) -> ApiResult<String> {
    Ok(crate::collect::text(field, value)?)
}

/// An optional free-text field (a note): as [`required_text`] when given.
pub(crate) fn optional_text(field: &str, value: Option<&str>) -> ApiResult<Option<String>> {
    value.map(|v| required_text(field, v)).transpose()
}

/// An identifier (a customer's external id, an invoice number) in a path, a query or
/// a body: not empty, no control characters, at most 64 characters. Refused with a 422
/// naming `field`.
pub(crate) fn key(field: &str, value: &str) -> ApiResult<String> {
    Ok(crate::collect::key(field, value)?)
}
