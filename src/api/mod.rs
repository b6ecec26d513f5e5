//! The HTTP API of `relance serve`: ingestion from ERPs, collectors' actions, audit
//! queries, rules dry-run, health and metrics. JSON under `/v1`, described by the
//! OpenAPI document served at `/v1/openapi.json` (`docs/openapi.json`).
//!
//! Every route is declared once in [`routes`], with the method and path the OpenAPI
//! document must describe; the router is built from that table.

mod audit;
mod bank;
pub mod error;
pub mod extract;
mod idempotency;
mod ingest;
mod ledger;
mod lists;
mod ops;
mod reports;
mod rules;
pub mod scope;
mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiConfig, Config};
use crate::documents::archive::Archive;
use crate::import::ImportOptions;
use crate::scripting::RuleRegistry;
use crate::store::Store;

pub use error::{ApiError, ApiResult};
pub use server::HEADER_READ_TIMEOUT;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub registry: Arc<RuleRegistry>,
    pub archive: Arc<Archive>,
    pub limits: ApiConfig,
    pub import: ImportOptions,
    /// The service's metrics (those of its rule registry).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        registry: Arc<RuleRegistry>,
    ) -> AppState {
        let import = ImportOptions {
            default_currency: config.company.currency,
            default_country: config
                .company
                .address
                .country
                .unwrap_or(crate::domain::CountryCode::FR),
            references: Some(Arc::new(crate::import::References::of(&config))),
            ..ImportOptions::default()
        };
        AppState {
            archive: Arc::new(Archive::new(
                store.clone(),
                config.channels.documents.archive.clone(),
            )),
            limits: config.api.clone(),
            metrics: registry.metrics().clone(),
            store,
            config,
            registry,
            import,
        }
    }

    /// Today in the configured time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.config.timezone)
            .date_naive()
    }
}

/// One route: method and path (as in the OpenAPI document) and its handler.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn r(method: &'static str, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    vec![
        r("get", "/healthz", get(ops::healthz)),
        r("get", "/readyz", get(ops::readyz)),
        r("get", "/metrics", get(ops::metrics)),
        r("get", "/v1/openapi.json", get(ops::openapi)),
        r("get", "/v1/problems/{code}", get(ops::problem)),
        // Ingestion.
        r(
            "put",
            "/v1/customers/{external_id}",
            put(ingest::put_customer),
        ),
        r("post", "/v1/customers/batch", post(ingest::customers_batch)),
        r("put", "/v1/invoices/{number}", put(ingest::put_invoice)),
        r("post", "/v1/invoices/batch", post(ingest::invoices_batch)),
        r("put", "/v1/payments/{id}", put(ingest::put_payment)),
        r("post", "/v1/payments/batch", post(ingest::payments_batch)),
        r("post", "/v1/bank/statements", post(bank::import_statement)),
        r("get", "/v1/bank/credits", get(bank::credits)),
        r(
            "post",
            "/v1/invoices/{number}/status",
            post(bank::invoice_status),
        ),
        // The ledger as lists, filtered and paged.
        r("get", "/v1/customers", get(lists::customers)),
        r("get", "/v1/invoices", get(lists::invoices)),
        r("get", "/v1/payments", get(lists::payments)),
        r("get", "/v1/payments/{id}", get(lists::payment)),
        // The ledger and collectors' actions.
        r(
            "get",
            "/v1/customers/{external_id}",
            get(ledger::customer_view),
        ),
        r("get", "/v1/invoices/{number}", get(ledger::invoice)),
        r(
            "put",
            "/v1/customers/{external_id}/pause",
            put(ledger::pause_customer),
        ),
        r(
            "delete",
            "/v1/customers/{external_id}/pause",
            delete(ledger::unpause_customer),
        ),
        r(
            "put",
            "/v1/invoices/{number}/pause",
            put(ledger::pause_invoice),
        ),
        r(
            "delete",
            "/v1/invoices/{number}/pause",
            delete(ledger::unpause_invoice),
        ),
        r(
            "put",
            "/v1/invoices/{number}/dispute",
            put(ledger::open_dispute),
        ),
        r(
            "delete",
            "/v1/invoices/{number}/dispute",
            delete(ledger::resolve_dispute),
        ),
        r("post", "/v1/promises", post(ledger::add_promise)),
        r("get", "/v1/tasks", get(audit::tasks)),
        r(
            "post",
            "/v1/tasks/{id}/complete",
            post(audit::complete_task),
        ),
        // Audit.
        r("get", "/v1/actions", get(audit::actions)),
        r("get", "/v1/actions/{id}", get(audit::action)),
        r(
            "get",
            "/v1/actions/{id}/documents/{kind}",
            get(audit::document),
        ),
        r("post", "/v1/actions/{id}/retry", post(audit::retry)),
        r("post", "/v1/actions/{id}/cancel", post(audit::cancel)),
        // Reports.
        r("get", "/v1/reports/{name}", get(reports::report)),
        // Rules.
        r("post", "/v1/rules/diff", post(rules::diff)),
        r(
            "get",
            "/v1/customers/{external_id}/dry-run",
            get(audit::dry_run),
        ),
        r(
            "get",
            "/v1/customers/{external_id}/explain",
            get(audit::explain),
        ),
    ]
}

/// The router: the routes, JSON answers for unknown paths and methods, the body size
/// limit, the request timeout, the request counter, and a JSON body on every error.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in routes() {
        match by_path.iter().position(|(p, _)| *p == route.path) {
            Some(i) => {
                let (path, methods) = by_path.remove(i);
                by_path.push((path, methods.merge(route.handler)));
            }
            None => by_path.push((route.path, route.handler)),
        }
    }
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    let timeout = state.limits.request_timeout;
    router
        .fallback(|| async { ApiError::not_found("no such endpoint (see /v1/openapi.json)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method (see /v1/openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            answer_within(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(etag))
        .layer(middleware::from_fn(tag_route))
        .with_state(state)
}

/// Gives every error answer the API's problem body (RFC 9457) with `instance`, the
/// request's path: the handlers' errors carry their problem already; the extractors' own
/// rejections (a path segment that is not UTF-8 once decoded, for instance) are plain
/// text, turned here into the same status with a problem.
async fn json_errors(req: Request, next: Next) -> Response {
    let instance = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    if let Some(problem) = resp.extensions().get::<error::Problem>().cloned() {
        let mut problem = problem;
        problem.instance = Some(instance);
        let headers = resp.headers().clone();
        let mut answer = problem.into_response_with(status);
        for (name, value) in &headers {
            if name != axum::http::header::CONTENT_LENGTH
                && name != axum::http::header::CONTENT_TYPE
            {
                answer.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return answer;
    }
    // A problem already (an answer replayed for an Idempotency-Key): as it is.
    let is_problem = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(error::PROBLEM_JSON));
    if is_problem {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let code = match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "invalid_field",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let mut problem = ApiError::new(status, code, text).problem();
    problem.instance = Some(instance);
    problem.into_response_with(status)
}

/// Answers 503 when a request takes longer than `timeout`.
async fn answer_within(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s (api.request_timeout_seconds)",
                timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The pattern of the path a request matched (`/v1/customers/{external_id}`), carried
/// on its answer for the request log and the metrics.
#[derive(Debug, Clone)]
struct RouteLabel(String);

/// Puts the matched route's pattern on the answer (inside a router, after routing).
async fn tag_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(RouteLabel(route));
    }
    resp
}

/// The request id header: taken from the client when it sends one, made otherwise,
/// returned on the answer and written on the request's log line.
pub const REQUEST_ID: &str = "x-request-id";

/// One log line and one observation per request: method, path, route, status, time
/// taken and request id (`relance::http` at info level).
async fn observe(metrics: Arc<crate::metrics::Metrics>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    // The path only: a query is the caller's and may be long; ids in paths are not
    // secrets (tokens travel in headers).
    let path: String = req.uri().path().chars().take(256).collect();
    let request_id: String = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect();
    // One span per request: a trace's root when traces are exported (OTLP).
    let span = tracing::info_span!(
        "http request",
        http.request.method = %method,
        url.path = %path,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str());
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    metrics.http_request(&method, route, status, took);
    let ms = took.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "relance::http",
        request_id = %request_id,
        method = %method,
        path = %path,
        route = %route,
        status,
        duration_ms = format!("{ms:.1}"),
        "{method} {path} {status} {ms:.1} ms"
    );
    resp
}

/// Serves the API on `listener` until `cancel` fires; with `site`, the API's paths
/// (`/v1…`, `/healthz`, `/readyz`, `/metrics`) go to the API and every other path to
/// `site` (the console).
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    site: Option<Router>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let metrics = state.metrics.clone();
    let api = router(state);
    let app = match site {
        None => api,
        Some(site) => {
            let site = site.layer(middleware::from_fn(tag_route));
            let to = move |req: Request| {
                let path = req.uri().path();
                let for_api = path == "/v1"
                    || path.starts_with("/v1/")
                    || matches!(path, "/healthz" | "/readyz" | "/metrics");
                let target = if for_api { api.clone() } else { site.clone() };
                tower::ServiceExt::oneshot(target, req)
            };
            Router::new().fallback_service(tower::service_fn(to))
        }
    };
    // Outermost: the request id (the client's or a new UUID), then the log line and the
    // metrics, then the id copied onto the answer.
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    let app = app
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            header.clone(),
        ))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            observe(metrics.clone(), req, next)
        }))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            header,
            tower_http::request_id::MakeRequestUuid,
        ));
    server::serve(listener, app, cancel, HEADER_READ_TIMEOUT).await
}

/// Parses an id in a path, naming it on error.
pub(crate) fn path_id(name: &str, text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(name, format!("'{text}' is not a positive integer")))
}

/// A path segment percent-encoded (RFC 3986: unreserved characters kept), for the
/// `Location` of a resource whose key may hold any character.
pub(crate) fn percent_encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `ETag` on every successful JSON answer to a GET (a strong tag: the SHA-256 of the
/// body), and `304 Not Modified` when the request's `If-None-Match` names it: a client
/// polling a customer or an invoice downloads it only when it changed.
async fn etag(req: Request, next: Next) -> Response {
    use axum::http::{header, Method};
    let is_get = req.method() == Method::GET;
    let wanted = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = next.run(req).await;
    let json_ok = resp.status() == StatusCode::OK
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
    if !is_get || !json_ok {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal("the answer could not be read").into_response();
    };
    let tag = format!("\"{}\"", &crate::digest::sha256_hex(&bytes)[..32]);
    let matches = wanted.is_some_and(|w| {
        w.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    });
    if let Ok(v) = axum::http::HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, v);
    }
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The JSON answer of a handler.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}
