//! The web console of `relance serve`, for credit managers and collectors: served by
//! the API's process and listener (`/` for the console, `/v1` for the API), rendered on
//! the server (minijinja, autoescaped) with no script of its own, charts drawn by the
//! server. Signed-in users only; what each may do follows its role ([`auth::Role`]);
//! every change is recorded in the audit trail with the user's name.

// A handler's early answer (a refusal, an error page) is the `Err` of its checks: the
// response itself, returned as is.
#![allow(clippy::result_large_err)]

mod actions;
pub mod auth;
mod cache;
mod index;
pub use cache::warm_up;
pub use index::CustomerIndex;
mod pages;
mod reports;
mod rules;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use minijinja::Environment;

use crate::config::Config;
use crate::domain::Locale;
use crate::scripting::RuleRegistry;
use crate::store::users::Session;
use crate::store::Store;

use auth::{Attempts, Role};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "relance_session";
/// The language cookie's name (`fr` or `en`).
const LANG_COOKIE: &str = "relance_lang";

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub registry: Arc<RuleRegistry>,
    attempts: Arc<Attempts>,
    env: Arc<Environment<'static>>,
    /// The key form tokens of users signed in by the trusted header are derived from
    /// (random per process: such forms are refused once after a restart).
    proxy_key: Arc<str>,
    /// The dashboard's figures by language, and when they were computed.
    pub(crate) dashboard: Arc<std::sync::Mutex<DashboardCache>>,
    /// Whether the dashboard's figures are being computed again.
    pub(crate) refreshing: Arc<std::sync::atomic::AtomicBool>,
    /// The reports shown, kept a few minutes (see `cache`).
    pub(crate) reports: Arc<cache::ReportCache>,
    /// The customer list's index (see `index`).
    pub(crate) index: Arc<index::IndexSlot>,
}

/// The dashboard's figures by language, with the instant they were computed.
pub(crate) type DashboardCache =
    std::collections::HashMap<&'static str, (std::time::Instant, serde_json::Value)>;

impl ConsoleState {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, registry: Arc<RuleRegistry>) -> Self {
        ConsoleState {
            store,
            config,
            registry,
            attempts: Arc::new(Attempts::default()),
            env: Arc::new(environment()),
            dashboard: Arc::default(),
            refreshing: Arc::default(),
            reports: Arc::default(),
            index: Arc::default(),
            proxy_key: Arc::from(
                crate::digest::random_token()
                    .unwrap_or_else(|_| format!("{:?}", std::time::SystemTime::now()))
                    .as_str(),
            ),
        }
    }

    /// Today in the configured time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        Utc::now().with_timezone(&self.config.timezone).date_naive()
    }
}

/// The pages, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("customers.html", include_str!("templates/customers.html")),
    ("customer.html", include_str!("templates/customer.html")),
    ("tasks.html", include_str!("templates/tasks.html")),
    ("message.html", include_str!("templates/message.html")),
    ("actions.html", include_str!("templates/actions.html")),
    ("action.html", include_str!("templates/action.html")),
    ("reports.html", include_str!("templates/reports.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("explain.html", include_str!("templates/explain.html")),
];

/// The console's style sheet, served at `/static/console.css`.
const STYLE: &str = include_str!("templates/console.css");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "console template does not compile");
        }
    }
    // `t("Clients", "Customers")`: the label in the page's language.
    env.add_function("t", |state: &minijinja::State, fr: String, en: String| {
        let lang = state.lookup("lang").map(|v| v.to_string());
        if lang.as_deref() == Some("en") {
            en
        } else {
            fr
        }
    });
    env
}

/// The signed-in user, and the page's language.
pub struct Signed {
    pub session: Session,
    pub role: Role,
    pub lang: Locale,
    secret_sha256: String,
}

impl Signed {
    pub fn name(&self) -> &str {
        &self.session.user.username
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap) -> Locale {
    match cookie(headers, LANG_COOKIE) {
        Some("en") => Locale::En,
        Some("fr") => Locale::Fr,
        _ => {
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
    }
}

/// A request without a live session is sent to the sign-in page.
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/login?next={}", urlencode(&self.0))).into_response()
    }
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let back = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        if let Some(signed) = by_trusted_header(parts, state).await? {
            return Ok(signed);
        }
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ToLogin(back).into_response());
        };
        let sha = crate::digest::sha256_hex(secret.as_bytes());
        let session = match state.store.session(&sha, Utc::now()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(ToLogin(back).into_response()),
            Err(e) => {
                tracing::error!(error = %e, "console: cannot read the session");
                return Err(page_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "La base de données ne répond pas.",
                    "The database does not answer.",
                    lang_of(&parts.headers),
                ));
            }
        };
        let role = session.user.role.parse().unwrap_or(Role::Viewer);
        Ok(Signed {
            session,
            role,
            lang: lang_of(&parts.headers),
            secret_sha256: sha,
        })
    }
}

/// The user an authenticating reverse proxy names in `auth.trusted_header`, when that
/// is configured and the request carries it: a user of relance (enabled), or refused.
async fn by_trusted_header(
    parts: &Parts,
    state: &ConsoleState,
) -> Result<Option<Signed>, Response> {
    let Some(header) = &state.config.auth.trusted_header else {
        return Ok(None);
    };
    let Some(name) = parts
        .headers
        .get(header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    let lang = lang_of(&parts.headers);
    match state.store.user_with_hash(name).await {
        Ok(Some((user, _))) if user.disabled_at.is_none() => {
            let csrf = crate::digest::sha256_hex(
                format!("{}\u{1f}{}", state.proxy_key, user.username).as_bytes(),
            );
            let role = user.role.parse().unwrap_or(Role::Viewer);
            Ok(Some(Signed {
                session: Session {
                    user,
                    csrf,
                    expires_at: Utc::now() + chrono::Duration::hours(1),
                },
                role,
                lang,
                secret_sha256: String::new(),
            }))
        }
        Ok(_) => {
            tracing::warn!(user = %name, "console: the trusted header names no enabled user");
            Err(page_error(
                StatusCode::FORBIDDEN,
                "Votre compte n'a pas accès à la console : demandez à un administrateur de l'ajouter (relance users add).",
                "Your account has no access to the console: ask an administrator to add it (relance users add).",
                lang,
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the user");
            Err(page_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "La base de données ne répond pas.",
                "The database does not answer.",
                lang,
            ))
        }
    }
}

/// `text` for a URL's query.
pub(crate) fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn lang_str(lang: Locale) -> &'static str {
    match lang {
        Locale::En => "en",
        Locale::Fr => "fr",
    }
}

/// Renders `template` with `ctx` (plus the language and the user, when signed in).
pub(crate) fn render(
    state: &ConsoleState,
    template: &str,
    lang: Locale,
    user: Option<&Signed>,
    ctx: serde_json::Value,
) -> Response {
    let mut ctx = match ctx {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    ctx.insert("lang".into(), lang_str(lang).into());
    ctx.insert("company".into(), state.config.company.name.clone().into());
    if let Some(u) = user {
        ctx.insert(
            "me".into(),
            serde_json::json!({
                "name": u.session.user.username,
                "display_name": u.session.user.display_name,
                "role": u.role.as_str(),
                "may_collect": u.role.may_collect(),
                "csrf": u.session.csrf,
            }),
        );
    } else {
        ctx.insert("me".into(), serde_json::Value::Null);
    }
    let html = state
        .env
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
    match html {
        Ok(h) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            Html(h),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template, error = %e, "console page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>relance</title><p>This page could not be rendered; the log says why.</p>".to_string()),
            )
                .into_response()
        }
    }
}

/// A page with a message and a status (no template needed beyond the message one).
pub(crate) fn page_error(status: StatusCode, fr: &str, en: &str, lang: Locale) -> Response {
    let text = match lang {
        Locale::En => en,
        Locale::Fr => fr,
    };
    let body = format!(
        "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\"><title>relance</title><link rel=\"stylesheet\" href=\"/static/console.css\"><main class=\"narrow\"><h1>{}</h1><p>{}</p><p><a href=\"/\">relance</a></p></main></html>",
        lang_str(lang),
        status.as_u16(),
        minijinja::HtmlEscape(text)
    );
    (status, Html(body)).into_response()
}

/// The console's router. `/v1`, `/healthz`, `/readyz` and `/metrics` belong to the API
/// and are routed to it before this router is reached.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang/{lang}", get(pages::set_lang))
        .route("/customers", get(pages::customers))
        .route("/customers/{id}", get(pages::customer))
        .route("/customers/{id}/pause", post(pages::pause_customer))
        .route("/customers/{id}/unpause", post(pages::unpause_customer))
        .route("/customers/{id}/promise", post(pages::add_promise))
        .route("/customers/{id}/notes", post(pages::add_note))
        .route("/customers/{id}/call", post(pages::schedule_call))
        .route("/customers/{id}/statement.pdf", get(pages::statement))
        .route("/invoices/{number}/dispute", post(pages::open_dispute))
        .route("/invoices/{number}/resolve", post(pages::resolve_dispute))
        .route("/actions", get(actions::list))
        .route("/actions/{id}", get(actions::show))
        .route("/actions/{id}/documents/{kind}", get(actions::document))
        .route("/actions/{id}/retry", post(actions::retry))
        .route("/actions/{id}/cancel", post(actions::cancel))
        .route("/rules", get(rules::index))
        .route("/rules/explain", get(rules::explain))
        .route("/reports", get(reports::index))
        .route("/reports/{name}", get(reports::show))
        .route("/tasks", get(pages::tasks))
        .route("/tasks/{id}/complete", post(pages::complete_task))
        .route("/static/console.css", get(style))
        .fallback(|headers: HeaderMap| async move {
            page_error(
                StatusCode::NOT_FOUND,
                "Cette page n'existe pas.",
                "There is no such page.",
                lang_of(&headers),
            )
        })
        .layer(middleware::from_fn(same_origin))
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

/// Refuses a form posted from another site: a POST whose `Origin` (or, without one,
/// `Referer`) is not this host. The per-session form token is checked as well, by each
/// handler ([`check_form`]).
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST {
        let headers = req.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let from = headers
            .get(header::ORIGIN)
            .or_else(|| headers.get(header::REFERER))
            .and_then(|v| v.to_str().ok());
        let ok = from.is_none_or(|o| {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        });
        if !ok {
            return page_error(
                StatusCode::FORBIDDEN,
                "Formulaire refusé : il ne vient pas de cette console.",
                "Form refused: it does not come from this console.",
                lang_of(headers),
            );
        }
    }
    next.run(req).await
}

/// Checks a form's token against the session's.
pub(crate) fn check_form(user: &Signed, token: &str) -> Result<(), Response> {
    if auth::same_secret(token, &user.session.csrf) {
        Ok(())
    } else {
        Err(page_error(
            StatusCode::FORBIDDEN,
            "Formulaire refusé : jeton de formulaire absent ou périmé. Rechargez la page et recommencez.",
            "Form refused: its form token is missing or stale. Reload the page and try again.",
            user.lang,
        ))
    }
}
