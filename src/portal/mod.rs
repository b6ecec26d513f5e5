//! The debtor's self-service page (`portal.listen`): a customer follows the link of a
//! reminder to see its account, get its statement, pay (bank details, the structured
//! reference, an EPC QR code, the payment provider's link), promise a date, dispute an
//! invoice or write to its collector. What it does goes into the ledger through the
//! same functions as the API and the console (`collect`, `call_outcomes`) and into the
//! action log (the collector's tasks, the confirmation emailed to the customer).
//!
//! The page is on the internet: every refused link (malformed, forged, expired,
//! revoked) gets the same neutral page; requests are limited per address and per
//! link; forms carry a token bound to the link and are refused from another site; a
//! GET never writes (the visit is recorded when the customer presses "see my account",
//! which the link scanners of mail systems do not do).

// A handler's early answer (a refusal, an error page) is the `Err` of its checks.
#![allow(clippy::result_large_err)]

mod pages;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use minijinja::Environment;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::domain::Locale;
use crate::store::Store;

/// What the portal's handlers share.
#[derive(Clone)]
pub struct PortalState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    env: Arc<Environment<'static>>,
    limiter: Arc<Limiter>,
    /// The logo's bytes and media type, read at start.
    logo: Option<Arc<(Vec<u8>, &'static str)>>,
}

impl PortalState {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> PortalState {
        let logo = config.portal.logo.as_ref().and_then(|path| {
            let kind = match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                _ => "image/jpeg",
            };
            match std::fs::read(path) {
                Ok(bytes) => Some(Arc::new((bytes, kind))),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "portal: the logo cannot be read; the page shows the company's name only");
                    None
                }
            }
        });
        PortalState {
            store,
            config,
            env: Arc::new(environment()),
            limiter: Arc::default(),
            logo,
        }
    }

    /// Today in the configured time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        Utc::now().with_timezone(&self.config.timezone).date_naive()
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("landing.html", include_str!("templates/landing.html")),
    ("account.html", include_str!("templates/account.html")),
    ("neutral.html", include_str!("templates/neutral.html")),
];

const STYLE: &str = include_str!("templates/portal.css");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "portal template does not compile");
        }
    }
    env.add_function("t", |state: &minijinja::State, fr: String, en: String| {
        if state.lookup("lang").map(|v| v.to_string()).as_deref() == Some("en") {
            en
        } else {
            fr
        }
    });
    env
}

fn lang_str(lang: Locale) -> &'static str {
    match lang {
        Locale::En => "en",
        Locale::Fr => "fr",
    }
}

/// The headers of every page: nothing cached, never framed, no referrer to other
/// sites (the link is in the address: it must not leak to the payment provider or
/// anyone else; within the portal the browser names its origin, which the forms'
/// check needs), no script.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

/// Renders `template` with `ctx`, the language and the company.
pub(crate) fn render(
    state: &PortalState,
    template: &str,
    status: StatusCode,
    lang: Locale,
    ctx: serde_json::Value,
) -> Response {
    let mut ctx = match ctx {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let company = &state.config.company;
    ctx.insert("lang".into(), lang_str(lang).into());
    ctx.insert(
        "company".into(),
        serde_json::json!({
            "name": company.name,
            "email": company.email.as_ref().map(ToString::to_string),
            "phone": company.phone.as_ref().map(ToString::to_string),
            "logo": state.logo.is_some(),
        }),
    );
    let html = state
        .env
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
    match html {
        Ok(h) => secure((status, Html(h)).into_response()),
        Err(e) => {
            tracing::error!(template, error = %e, "portal page could not be rendered");
            secure(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>This page could not be shown. Please try again later.</p>".to_string()),
                )
                    .into_response(),
            )
        }
    }
}

/// The page every refused link gets, whatever the reason: nothing tells an invalid
/// link from an expired or revoked one, or from a customer that does not exist.
pub(crate) fn neutral(state: &PortalState, lang: Locale) -> Response {
    render(
        state,
        "neutral.html",
        StatusCode::NOT_FOUND,
        lang,
        serde_json::json!({ "reason": "link" }),
    )
}

/// The page of a visitor over its limits.
fn too_many(state: &PortalState, lang: Locale) -> Response {
    let mut r = render(
        state,
        "neutral.html",
        StatusCode::TOO_MANY_REQUESTS,
        lang,
        serde_json::json!({ "reason": "limit" }),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// The language of a visitor before its link is opened.
fn browser_lang(headers: &HeaderMap) -> Locale {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim_start().starts_with("en") {
        Locale::En
    } else {
        Locale::Fr
    }
}

/// The connection's peer, set on each request by [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Fixed one-minute windows (and one-day windows for the acts), by key: a visitor's
/// address or a link. Bounded: old windows are dropped when the table grows.
#[derive(Default)]
pub(crate) struct Limiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    const MAX_KEYS: usize = 100_000;

    /// Counts one request on `key` in the window `window` (a minute or a day number);
    /// `false` once `limit` were counted in it.
    fn allow(&self, key: &str, window: i64, limit: u32) -> bool {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.len() >= Self::MAX_KEYS {
            w.retain(|_, (at, _)| *at >= window);
            if w.len() >= Self::MAX_KEYS {
                // A flood of distinct keys within one window: start again rather than
                // grow (the limits are a brake, not a record).
                w.clear();
            }
        }
        let entry = w.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= limit
    }
}

/// The visitor's address: the connection's, or the last value of the configured
/// header a reverse proxy sets.
fn client_address(state: &PortalState, headers: &HeaderMap, peer: Option<Peer>) -> String {
    if let Some(name) = &state.config.portal.client_address_header {
        if let Some(v) = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
        {
            if let Ok(ip) = v.parse::<IpAddr>() {
                return ip.to_string();
            }
        }
    }
    peer.map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string())
}

/// Limits every request per address, and every request on a link per link.
async fn limits(
    axum::extract::State(state): axum::extract::State<PortalState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<Peer>().copied();
    let address = client_address(&state, req.headers(), peer);
    let minute = Utc::now().timestamp().div_euclid(60);
    let lang = browser_lang(req.headers());
    let portal = &state.config.portal;
    if !state.limiter.allow(
        &format!("a:{address}"),
        minute,
        portal.per_address_per_minute,
    ) {
        tracing::warn!(%address, "portal: too many requests from one address");
        return too_many(&state, lang);
    }
    if let Some(token) = req.uri().path().strip_prefix("/p/") {
        let token = token.split('/').next().unwrap_or("");
        // Keyed by a digest: the link itself stays out of memory dumps and logs.
        let key = format!("l:{}", &crate::digest::sha256_hex(token.as_bytes())[..32]);
        if !state
            .limiter
            .allow(&key, minute, portal.per_link_per_minute)
        {
            tracing::warn!(%address, link = &key[2..14], "portal: too many requests on one link");
            return too_many(&state, lang);
        }
    }
    next.run(req).await
}

/// Refuses a form posted from another site (its `Origin`, or `Referer`, names another
/// host). Each form also carries a token bound to its link ([`pages`]).
async fn same_origin(
    axum::extract::State(state): axum::extract::State<PortalState>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == axum::http::Method::POST {
        let headers = req.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let public = state
            .config
            .portal
            .public_url
            .as_deref()
            .and_then(|u| u.split("://").nth(1))
            .and_then(|u| u.split('/').next())
            .unwrap_or("");
        let from = headers
            .get(header::ORIGIN)
            .or_else(|| headers.get(header::REFERER))
            .and_then(|v| v.to_str().ok());
        let ok = from.is_none_or(|o| {
            let rest = o.split("://").nth(1).unwrap_or("");
            let h = rest.split('/').next().unwrap_or("");
            !h.is_empty() && (h == host || h == public)
        });
        if !ok {
            tracing::warn!("portal: a form posted from another site was refused");
            return render(
                &state,
                "neutral.html",
                StatusCode::FORBIDDEN,
                browser_lang(headers),
                serde_json::json!({ "reason": "form" }),
            );
        }
    }
    next.run(req).await
}

/// The portal's router.
pub fn router(state: PortalState) -> Router {
    Router::new()
        .route("/p/{token}", get(pages::landing).post(pages::enter))
        .route("/p/{token}/account", get(pages::account))
        .route("/p/{token}/statement.pdf", get(pages::statement))
        .route("/p/{token}/invoices/{number}/qr.png", get(pages::qr_png))
        .route("/p/{token}/promise", axum::routing::post(pages::promise))
        .route("/p/{token}/dispute", axum::routing::post(pages::dispute))
        .route("/p/{token}/contact", axum::routing::post(pages::contact))
        .route("/static/portal.css", get(style))
        .route("/static/logo", get(logo))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|axum::extract::State(state): axum::extract::State<PortalState>, headers: HeaderMap| async move {
            neutral(&state, browser_lang(&headers))
        })
        .layer(middleware::from_fn_with_state(state.clone(), same_origin))
        .layer(middleware::from_fn_with_state(state.clone(), limits))
        .with_state(state)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn logo(axum::extract::State(state): axum::extract::State<PortalState>) -> Response {
    match &state.logo {
        Some(l) => (
            [
                (header::CONTENT_TYPE, l.1),
                (header::CACHE_CONTROL, "max-age=3600"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            l.0.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves the portal on `listener` until `cancel`: each connection's requests carry its
/// peer address ([`Peer`]); a client has 10 seconds to send a request's headers.
///
/// # Errors
/// Never at present (accept errors are logged and retried).
pub async fn serve(
    listener: TcpListener,
    state: PortalState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(address = %bound, "debtor portal listening on {bound}");
    }
    let router = router(state);
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "portal: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone().layer(axum::Extension(Peer(peer))));
        let cancel = cancel.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "portal connection ended with an error");
                    }
                    return;
                }
                () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_per_key_and_window() {
        let l = Limiter::default();
        assert!(l.allow("a", 1, 2));
        assert!(l.allow("a", 1, 2));
        assert!(!l.allow("a", 1, 2));
        assert!(l.allow("b", 1, 2));
        // A new window starts again.
        assert!(l.allow("a", 2, 2));
    }
}
