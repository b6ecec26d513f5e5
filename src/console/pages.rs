//! The console's pages and forms. Forms change the ledger through the same functions the
//! API and the command line use (`collect`, `call_outcomes`), then record the change in
//! the audit trail with the user's name.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Role};
use super::{check_form, lang_of, page_error, render, urlencode, ConsoleState, Signed};
use crate::collect::{self, Change};
use crate::domain::format::{date as fdate, money as fmoney};
use crate::domain::{Currency, InvoiceStatus, Locale};
use crate::store::call_tasks::{CallOutcome, TaskFilter};
use crate::store::users::CustomerQuery;
use crate::store::ActionFilter;

/// Customers per page of the list.
const PAGE: u32 = 50;

fn money(amount: Decimal, currency: Currency, lang: Locale) -> String {
    fmoney(amount, &currency, lang)
}

fn minor(amount: i64, code: &str, lang: Locale) -> String {
    let c = Currency::parse(code).unwrap_or(Currency::EUR);
    money(c.from_minor(amount), c, lang)
}

pub(super) fn internal(e: impl std::fmt::Display, lang: Locale) -> Response {
    tracing::error!(error = %e, "console: the store failed");
    page_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "La base de données a refusé la demande ; le journal dit pourquoi.",
        "The database refused the request; the log says why.",
        lang,
    )
}

/// The page for a customer id the ledger does not have.
pub(super) fn no_customer(lang: Locale) -> Response {
    page_error(
        StatusCode::NOT_FOUND,
        "Ce client n'existe pas.",
        "There is no such customer.",
        lang,
    )
}

pub(super) fn invalid(message: &str, lang: Locale) -> Response {
    page_error(StatusCode::UNPROCESSABLE_ENTITY, message, message, lang)
}

// ---- Signing in and out -------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

/// Only a path of this console is a place to go back to after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub(super) async fn login_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    render(
        &state,
        "login.html",
        lang_of(&headers),
        None,
        json!({ "next": safe_next(q.next.as_deref()), "error": null }),
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub(super) async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers);
    let name = f.username.trim().to_string();
    let next = safe_next(f.next.as_deref());
    let again = |status: StatusCode, fr: &str, en: &str| {
        let msg = if lang == Locale::En { en } else { fr };
        let mut r = render(
            &state,
            "login.html",
            lang,
            None,
            json!({ "next": next, "error": msg, "username": name }),
        );
        *r.status_mut() = status;
        r
    };
    if let Some(wait) = state.attempts.locked(&name) {
        let minutes = wait.as_secs().div_ceil(60);
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Trop d'essais pour ce nom : réessayez dans {minutes} min."),
            &format!("Too many attempts for this name: try again in {minutes} min."),
        );
    }
    let found = match state.store.user_with_hash(&name).await {
        Ok(f) => f,
        Err(e) => return internal(e, lang),
    };
    let password = f.password;
    let (user, ok) = match found {
        Some((user, Some(hash))) if user.disabled_at.is_none() => {
            let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
                .await
                .unwrap_or(false);
            (Some(user), ok)
        }
        _ => {
            // As long as a wrong password, so that names cannot be told apart.
            let _ = tokio::task::spawn_blocking(move || {
                auth::verify_password(&password, auth::decoy_hash())
            })
            .await;
            (None, false)
        }
    };
    let (Some(user), true) = (user, ok) else {
        state.attempts.failed(&name);
        tracing::warn!(user = %name, "console sign-in refused");
        return again(
            StatusCode::UNAUTHORIZED,
            "Nom ou mot de passe incorrect.",
            "Wrong name or password.",
        );
    };
    state.attempts.succeeded(&name);
    let (Ok(secret), Ok(csrf)) = (crate::digest::random_token(), crate::digest::random_token())
    else {
        return internal("no random source", lang);
    };
    let now = Utc::now();
    let hours = state.config.auth.session_hours;
    let expires = now + Duration::hours(hours);
    if let Err(e) = state
        .store
        .create_session(
            &crate::digest::sha256_hex(secret.as_bytes()),
            user.id,
            &csrf,
            expires,
            now,
        )
        .await
    {
        return internal(e, lang);
    }
    tracing::info!(user = %user.username, role = %user.role, "console sign-in");
    let cookie = format!(
        "{}={secret}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        super::SESSION_COOKIE,
        hours * 3600
    );
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct TokenOnly {
    #[serde(default)]
    pub(super) csrf: String,
}

pub(super) async fn logout(
    State(state): State<ConsoleState>,
    user: Signed,
    Form(f): Form<TokenOnly>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf) {
        return r;
    }
    if let Err(e) = state.store.end_session(&user.secret_sha256).await {
        return internal(e, user.lang);
    }
    let cookie = format!(
        "{}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        super::SESSION_COOKIE
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

pub(super) async fn set_lang(Path(lang): Path<String>, headers: HeaderMap) -> Response {
    let lang = if lang == "en" { "en" } else { "fr" };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            let rest = r
                .strip_prefix("http://")
                .or_else(|| r.strip_prefix("https://"))?;
            rest.find('/').map(|i| rest[i..].to_string())
        });
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("relance_lang={lang}; Path=/; SameSite=Strict; Max-Age=31536000"),
            ),
            (header::LOCATION, safe_next(back.as_deref())),
        ],
    )
        .into_response()
}

// ---- Dashboard ----------------------------------------------------------------------

/// How long the dashboard's figures are served before they are computed again (in the
/// background: the page answers with the previous ones meanwhile).
const DASHBOARD_FRESH: std::time::Duration = std::time::Duration::from_secs(300);

pub(super) async fn dashboard(State(state): State<ConsoleState>, user: Signed) -> Response {
    let lang = user.lang;
    let key = lang_key(lang);
    let cached = state
        .dashboard
        .lock()
        .ok()
        .and_then(|c| c.get(key).cloned());
    let figures = match cached {
        Some((at, figures)) => {
            if at.elapsed() > DASHBOARD_FRESH {
                refresh_dashboard(&state, lang);
            }
            figures
        }
        // Being computed (the service has just started): the page says so and
        // reloads itself rather than waiting for the whole ledger to be read.
        None if state.refreshing.load(std::sync::atomic::Ordering::SeqCst) => {
            json!({ "computing": true })
        }
        None => match dashboard_figures(&state, lang).await {
            Ok(f) => {
                if let Ok(mut c) = state.dashboard.lock() {
                    c.insert(key, (std::time::Instant::now(), f.clone()));
                }
                f
            }
            Err(r) => return r,
        },
    };
    render(&state, "dashboard.html", lang, Some(&user), figures)
}

fn lang_key(lang: Locale) -> &'static str {
    match lang {
        Locale::En => "en",
        Locale::Fr => "fr",
    }
}

/// Computes the dashboard's figures in these languages and keeps them.
async fn compute_dashboards(state: &ConsoleState, langs: &[Locale]) {
    for &lang in langs {
        if let Ok(f) = dashboard_figures(state, lang).await {
            if let Ok(mut c) = state.dashboard.lock() {
                c.insert(lang_key(lang), (std::time::Instant::now(), f));
            }
        }
    }
}

/// Computes again the dashboard's figures kept (after a change made in the console).
pub(super) async fn recompute_dashboard(state: &ConsoleState) {
    let kept: Vec<Locale> = state
        .dashboard
        .lock()
        .map(|c| {
            c.keys()
                .map(|k| {
                    if *k == lang_key(Locale::En) {
                        Locale::En
                    } else {
                        Locale::Fr
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    compute_dashboards(state, &kept).await;
}

/// Computes the dashboard's figures in both languages (at start), once at a time.
pub(super) async fn warm_dashboard(state: &ConsoleState) {
    use std::sync::atomic::Ordering::SeqCst;
    if state.refreshing.swap(true, SeqCst) {
        return;
    }
    compute_dashboards(state, &[Locale::Fr, Locale::En]).await;
    state.refreshing.store(false, SeqCst);
}

/// Computes the dashboard's figures again in the background, once at a time.
fn refresh_dashboard(state: &ConsoleState, lang: Locale) {
    use std::sync::atomic::Ordering::SeqCst;
    if state.refreshing.swap(true, SeqCst) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        compute_dashboards(&state, &[lang]).await;
        state.refreshing.store(false, SeqCst);
    });
}

/// The dashboard's figures, computed from the ledger: the aged balance, DSO and CEI, the
/// queue, risk and insurer deadlines.
async fn dashboard_figures(
    state: &ConsoleState,
    lang: Locale,
) -> Result<serde_json::Value, Response> {
    let today = state.today();
    let store = state.store.as_ref();
    let query = crate::reports::ReportQuery::build(
        &state.config,
        today,
        None,
        Default::default(),
        Some(10),
        today,
    );
    let Ok(query) = query else {
        return Err(internal("the aging report's query is invalid", lang));
    };
    let aging = match super::cache::report(state, crate::reports::ReportKind::Aging, &query).await {
        Ok(r) => r.report,
        Err(e) => return Err(internal(e, lang)),
    };
    let chart =
        crate::charts::svg(&aging, crate::reports::ReportKind::Aging, lang).unwrap_or_default();
    // Per currency: the open total and each bucket, linked to the customers behind it.
    let ranges = {
        let b = &query.buckets;
        let mut r = vec![String::new()];
        let mut lo = 1;
        for hi in b {
            r.push(format!("{lo}-{hi}"));
            lo = hi + 1;
        }
        r.push(format!("{}+", lo - 1));
        r
    };
    let (labels, totals) = match aging.as_ref() {
        crate::reports::Report::Aging(a) => (
            a.buckets
                .iter()
                .map(|b| match b.as_str() {
                    "not_due" => {
                        if lang == Locale::En {
                            "not due".to_string()
                        } else {
                            "non échu".to_string()
                        }
                    }
                    other => match other.strip_prefix("over_") {
                        Some(n) => format!("> {n}"),
                        None => other.to_string(),
                    },
                })
                .collect::<Vec<_>>(),
            a.totals
                .iter()
                .map(|t| {
                    let c = Currency::parse(&t.balance.currency).unwrap_or(Currency::EUR);
                    json!({
                        "currency": t.balance.currency,
                        "open": money(t.balance.open, c, lang),
                        "buckets": t.balance.buckets.iter().enumerate().map(|(i, b)| json!({
                            "amount": money(b.amount, c, lang),
                            "range": ranges.get(i).cloned().unwrap_or_default(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    // DSO and CEI over the last six months, and the customers over limit or cover.
    let trend_query = crate::reports::ReportQuery::build(
        &state.config,
        today,
        crate::reports::first_of_month(today).checked_sub_months(chrono::Months::new(5)),
        Default::default(),
        Some(5),
        today,
    );
    let Ok(trend_query) = trend_query else {
        return Err(internal("the trend report's query is invalid", lang));
    };
    let mut trends = Vec::new();
    for kind in [
        crate::reports::ReportKind::Dso,
        crate::reports::ReportKind::Cei,
    ] {
        match super::cache::report(state, kind, &trend_query).await {
            Ok(c) => trends.push(json!({
                "name": kind.as_str(),
                "chart": crate::charts::svg(&c.report, kind, lang).unwrap_or_default(),
            })),
            Err(e) => return Err(internal(e, lang)),
        }
    }
    let risk = match super::cache::report(state, crate::reports::ReportKind::Risk, &query).await {
        Ok(c) => c.report,
        Err(e) => return Err(internal(e, lang)),
    };
    let crate::reports::Report::Risk(risk) = risk.as_ref() else {
        return Err(internal("the risk report", lang));
    };
    let risk_rows: Vec<serde_json::Value> = risk
        .customers
        .iter()
        .take(5)
        .map(|r| {
            let c = Currency::parse(&r.currency).unwrap_or(Currency::EUR);
            json!({
                "customer": r.customer,
                "name": r.name,
                "exposure": money(r.exposure, c, lang),
                "over_limit": r.over_limit.map(|a| money(a, c, lang)),
                "over_cover": r.over_cover.map(|a| money(a, c, lang)),
            })
        })
        .collect();
    let counts = match store.action_counts(Utc::now()).await {
        Ok(c) => c,
        Err(e) => return Err(internal(e, lang)),
    };
    let count = |status: &str| -> i64 {
        counts
            .by_kind_status
            .iter()
            .filter(|(_, s, _)| s == status)
            .map(|(_, _, n)| n)
            .sum()
    };
    let planned_by_kind: Vec<serde_json::Value> = crate::domain::ActionKind::ALL
        .iter()
        .map(|k| {
            let n: i64 = counts
                .by_kind_status
                .iter()
                .filter(|(kind, s, _)| kind == k.as_str() && s == "planned")
                .map(|(_, _, n)| n)
                .sum();
            json!({ "kind": k.as_str(), "count": n })
        })
        .collect();
    let deadlines = match crate::reports::insurer_deadlines(store, &state.config, today, 15).await {
        Ok(d) => d,
        Err(e) => return Err(internal(e, lang)),
    };
    let deadline_rows: Vec<serde_json::Value> = deadlines
        .iter()
        .take(10)
        .map(|d| {
            json!({
                "customer": d.customer,
                "invoice": d.invoice,
                "deadline": fdate(d.deadline, lang),
                "days_left": d.days_left,
            })
        })
        .collect();
    let computed = Utc::now().with_timezone(&state.config.timezone);
    Ok(json!({
            "computing": false,
            "computed_at": computed.format("%H:%M").to_string(),
            "today": fdate(today, lang),
            "chart": chart,
            "aging": totals,
            "labels": labels,
            "queue": {
                "planned": count("planned"),
                "retrying": count("retrying"),
                "dead": count("dead"),
                "held": count("held"),
                "due": counts.due,
            },
            "planned_by_kind": planned_by_kind,
            "deadlines": deadline_rows,
            "deadline_count": deadlines.len(),
            "trends": trends,
            "risk": {
                "over_limit": risk.over_limit_customers,
                "over_cover": risk.over_cover_customers,
                "rows": risk_rows,
            },
    }))
}

// ---- Customers ----------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    q: Option<String>,
    segment: Option<String>,
    collector: Option<String>,
    bucket: Option<String>,
    flag: Option<String>,
    page: Option<u32>,
}

/// An aging bucket as `1-30`, `91-120`, `120+`: its days.
fn bucket_days(b: &str) -> (Option<i64>, Option<i64>) {
    if let Some(lo) = b.strip_suffix('+') {
        return (lo.parse::<i64>().ok().map(|d| d + 1), None);
    }
    match b.split_once('-') {
        Some((lo, hi)) => (lo.parse().ok(), hi.parse().ok()),
        None => (None, None),
    }
}

pub(super) async fn customers(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let lang = user.lang;
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (min_days, max_days) = q.bucket.as_deref().map_or((None, None), bucket_days);
    let flag = q.flag.clone().unwrap_or_default();
    // A collector sees its own customers.
    let collector = if user.role == Role::Collector {
        Some(user.name().to_string())
    } else {
        nonempty(&q.collector)
    };
    let query = CustomerQuery {
        text: nonempty(&q.q),
        segment: nonempty(&q.segment),
        collector: collector.clone(),
        disputed: flag == "disputed",
        promised: flag == "promised",
        paused: flag == "paused",
        insured: flag == "insured",
        min_days,
        max_days,
        today: state.today(),
        offset: (page - 1) * PAGE,
        limit: PAGE + 1,
    };
    // From the index when it is built for today, else from the ledger.
    let index = super::index::current(&state);
    let mut rows = match &index {
        Some(ix) => {
            // Invoice numbers are searched in the ledger (one lookup by the unique number).
            let owner = match query.text.as_deref() {
                Some(t) => match state.store.invoice(t).await {
                    Ok(i) => i.map(|i| i.customer),
                    Err(e) => return internal(e, lang),
                },
                None => None,
            };
            ix.search(&query, owner.as_deref())
        }
        None => match state.store.search_customers(&query).await {
            Ok(r) => r,
            Err(e) => return internal(e, lang),
        },
    };
    let as_of = index.as_ref().map(|ix| {
        ix.at
            .with_timezone(&state.config.timezone)
            .format("%H:%M")
            .to_string()
    });
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let today = state.today();
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.external_id,
                "name": r.name,
                "segment": r.segment,
                "collector": r.collector,
                "open": minor(r.open_minor, &r.currency, lang),
                "overdue": minor(r.overdue_minor, &r.currency, lang),
                "days": r.oldest_due.map(|d| (today - d).num_days()),
                "paused": r.paused,
                "insured": r.insured,
                "disputed": r.disputed,
                "promised": r.promised,
            })
        })
        .collect();
    let segments: Vec<&String> = state.config.segments.keys().collect();
    let keep = format!(
        "q={}&segment={}&collector={}&bucket={}&flag={}",
        urlencode(q.q.as_deref().unwrap_or("")),
        urlencode(q.segment.as_deref().unwrap_or("")),
        urlencode(q.collector.as_deref().unwrap_or("")),
        urlencode(q.bucket.as_deref().unwrap_or("")),
        urlencode(&flag)
    );
    render(
        &state,
        "customers.html",
        lang,
        Some(&user),
        json!({
            "items": items,
            "q": q.q.unwrap_or_default(),
            "segment": q.segment.unwrap_or_default(),
            "collector": collector.unwrap_or_default(),
            "bucket": q.bucket.unwrap_or_default(),
            "flag": flag,
            "segments": segments,
            "buckets": ["1-30", "31-60", "61-90", "91-120", "120+"],
            "page": page,
            "prev": (page > 1).then(|| format!("/customers?{keep}&page={}", page - 1)),
            "next": more.then(|| format!("/customers?{keep}&page={}", page + 1)),
            "collector_fixed": user.role == Role::Collector,
            "as_of": as_of,
        }),
    )
}

/// Whether `user` may act on `customer` (a collector, only on its own customers).
fn may_act_on(user: &Signed, collector: Option<&str>) -> bool {
    match user.role {
        Role::Viewer => false,
        Role::Collector => collector == Some(user.name()),
        Role::CreditManager | Role::Admin => true,
    }
}

pub(super) async fn customer(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
) -> Response {
    let lang = user.lang;
    let store = &state.store;
    let c = match store.customer(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_customer(lang),
        Err(e) => return internal(e, lang),
    };
    let today = state.today();
    let task_filter = TaskFilter {
        customer: Some(id.clone()),
        limit: 200,
        ..Default::default()
    };
    let action_filter = ActionFilter {
        customer: Some(id.clone()),
        limit: 10_000,
        ..Default::default()
    };
    let (invoices, payments, promises, tasks, actions, audit, notes, visits) = match tokio::try_join!(
        store.invoices_of(&id),
        store.payments_of(&id),
        store.promises_of(&id),
        store.call_tasks(&task_filter),
        store.list_actions(&action_filter),
        store.audit_of(&id, 200),
        store.notes_of(&id, 200),
        store.portal_visits_of(&id, 200),
    ) {
        Ok(all) => all,
        Err(e) => return internal(e, lang),
    };
    let (total_open, overdue, open_count) = crate::domain::invoice::open_balance(&invoices, today);
    let open: Vec<_> = invoices
        .iter()
        .filter(|i| i.status == InvoiceStatus::Open)
        .collect();
    let cur = c.currency;
    let invoice_rows: Vec<serde_json::Value> = invoices
        .iter()
        .rev()
        .map(|i| {
            json!({
                "number": i.number,
                "issued": fdate(i.issue_date, lang),
                "due": fdate(i.due_date, lang),
                "days": (today - i.due_date).num_days(),
                "amount": money(i.amount, i.currency, lang),
                "open": money(i.open_amount, i.currency, lang),
                "status": i.status.as_str(),
                "is_open": i.status == InvoiceStatus::Open,
                "dispute": i.dispute.as_ref().map(|d| d.reason.clone()),
                "paused": i.pause.as_ref().map(|p| p.reason.clone()),
            })
        })
        .collect();
    let payment_rows: Vec<serde_json::Value> = payments
        .iter()
        .map(|p| {
            json!({
                "id": p.payment.external_id,
                "kind": p.payment.kind.as_str(),
                "date": fdate(p.payment.date, lang),
                "amount": money(p.payment.amount, p.payment.currency, lang),
                "allocations": p.allocations.iter().map(|(n, a)| format!("{n}: {}", money(*a, p.payment.currency, lang))).collect::<Vec<_>>(),
                "unapplied": money(p.unapplied, p.payment.currency, lang),
            })
        })
        .collect();
    let promise_rows: Vec<serde_json::Value> = promises
        .iter()
        .rev()
        .map(|p| {
            json!({
                "date": fdate(p.promised_date, lang),
                "amount": money(p.amount, p.currency, lang),
                "status": p.status.as_str(),
                "invoices": p.invoices.join(", "),
                "note": p.note,
            })
        })
        .collect();
    let task_rows: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "reason": t.reason,
                "priority": t.priority,
                "due": fdate(t.due_on, lang),
                "status": t.status,
                "outcome": t.outcome,
                "assignee": t.assignee,
                "note": t.note,
            })
        })
        .collect();
    let local = |at: chrono::DateTime<Utc>| {
        at.with_timezone(&state.config.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    // When the link each message carried was first followed (visits are newest first).
    let mut opened: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    for (action, at) in &visits {
        if let Some(a) = action {
            opened.insert(*a, local(*at));
        }
    }
    let visit_rows: Vec<serde_json::Value> = visits
        .iter()
        .map(|(action, at)| json!({ "action": action, "at": local(*at) }))
        .collect();
    let timeline: Vec<serde_json::Value> = actions
        .iter()
        .rev()
        .take(200)
        .map(|a| {
            json!({
                "id": a.id,
                "decided": fdate(a.decided_on, lang),
                "kind": a.kind.as_str(),
                "step": a.step,
                "status": a.status.as_str(),
                "attempts": a.attempts,
                "invoices": a.invoices.join(", "),
                "amount": minor_dec(a.amount, &a.currency, lang),
                "rule": a.rule_file,
                "variant": a.variant,
                "why": a.last_error,
                "opened": opened.get(&a.id),
            })
        })
        .collect();
    let audit_rows: Vec<serde_json::Value> = audit
        .iter()
        .map(|e| {
            json!({
                "at": e.at.with_timezone(&state.config.timezone).format("%Y-%m-%d %H:%M").to_string(),
                "actor": e.actor,
                "action": e.action,
                "detail": e.detail,
            })
        })
        .collect();
    let note_rows: Vec<serde_json::Value> = notes
        .iter()
        .map(|n| {
            json!({
                "at": n.at.with_timezone(&state.config.timezone).format("%Y-%m-%d %H:%M").to_string(),
                "author": n.author,
                "text": n.text,
            })
        })
        .collect();
    let next_message = match next_message(&state, &id, today).await {
        Ok(m) => m,
        Err(e) => return internal(e, lang),
    };
    // The documents archived with the customer's letters, notices and emails (the
    // formal notices, the insurer's files, the statements attached), newest first.
    let documents: Vec<serde_json::Value> = match store.customer_documents(&id, 100).await {
        Ok(docs) => docs
            .into_iter()
            .map(|d| {
                json!({
                    "action": d.action_id,
                    "kind": d.kind,
                    "file": d.file_name,
                    "sha256": d.sha256,
                    "date": d.created_at.with_timezone(&state.config.timezone).format("%Y-%m-%d").to_string(),
                })
            })
            .collect(),
        Err(e) => return internal(e, lang),
    };
    let may_act = may_act_on(&user, c.collector.as_deref());
    let collectors: Vec<String> = if matches!(user.role, Role::CreditManager | Role::Admin) {
        match store.users().await {
            Ok(users) => users
                .into_iter()
                .filter(|u| u.disabled_at.is_none() && u.role != "viewer")
                .map(|u| u.username)
                .collect(),
            Err(e) => return internal(e, lang),
        }
    } else {
        Vec::new()
    };
    render(
        &state,
        "customer.html",
        lang,
        Some(&user),
        json!({
            "c": {
                "id": c.external_id,
                "name": c.name,
                "legal_name": c.legal_name,
                "siren": c.siren.as_ref().map(ToString::to_string),
                "segment": c.segment,
                "collector": c.collector,
                "emails": c.emails.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "phones": c.phones.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "insured": c.insurance.insured,
                "credit_limit": c.credit_limit.map(|l| money(l, cur, lang)),
                "paused": c.pause.as_ref().map(|p| json!({"reason": p.reason, "until": p.until.map(|u| fdate(u, lang))})),
            },
            "balance": {
                "open": money(total_open, cur, lang),
                "overdue": money(overdue, cur, lang),
                "open_invoices": open_count,
            },
            "invoices": invoice_rows,
            "open_numbers": open.iter().map(|i| i.number.clone()).collect::<Vec<_>>(),
            "payments": payment_rows,
            "promises": promise_rows,
            "tasks": task_rows,
            "timeline": timeline,
            "documents": documents,
            "audit": audit_rows,
            "portal_visits": visit_rows,
            "notes": note_rows,
            "next_message": next_message,
            "priorities": crate::call_outcomes::PRIORITIES,
            "collectors": collectors,
            "may_act": may_act,
            "today": today.to_string(),
            "max_promise": (today + Duration::days(90)).to_string(),
        }),
    )
}

/// The next email or SMS of the customer, rendered as the templates render it: the first
/// the rules would plan today, else one already planned and waiting in the queue; `null`
/// when there is none.
async fn next_message(
    state: &ConsoleState,
    id: &str,
    today: NaiveDate,
) -> Result<serde_json::Value, crate::store::StoreError> {
    let templates = crate::templates::Templates::new(&state.config.channels.templates_dir);
    let render_one = |kind: crate::domain::ActionKind,
                      step: &str,
                      template: &str,
                      locale: Locale,
                      ctx: &crate::templates::MessageContext,
                      queued: bool| {
        let rendered = match kind {
            crate::domain::ActionKind::Sms => {
                templates.sms(template, locale, ctx).map(|t| (None, t))
            }
            _ => templates
                .email(template, locale, ctx)
                .map(|m| (Some(m.subject), m.text)),
        };
        let (subject, text, error) = match rendered {
            Ok((subject, text)) => (subject, Some(text), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        json!({
            "kind": kind.as_str(),
            "step": step,
            "queued": queued,
            "subject": subject,
            "text": text,
            "error": error,
        })
    };
    // What the rules would plan today.
    let Some(account) = crate::store::account_of(state.store.as_ref(), id).await? else {
        return Ok(serde_json::Value::Null);
    };
    let config = state.config.clone();
    let rules = state.registry.current();
    let planned = tokio::task::spawn_blocking(move || {
        let evaluator = crate::scripting::Evaluator::new(&config, Default::default());
        let outcome = evaluator.evaluate(&rules, account.clone(), today);
        let d = outcome.decisions.into_iter().find(|d| {
            d.status == crate::scripting::DecisionStatus::Planned
                && matches!(
                    d.kind,
                    Some(crate::domain::ActionKind::Email | crate::domain::ActionKind::Sms)
                )
        })?;
        let invoices: Vec<crate::domain::Invoice> = account
            .invoices
            .iter()
            .filter(|o| d.invoices.iter().any(|n| **n == *o.invoice.number))
            .map(|o| o.invoice.clone())
            .collect();
        Some((d, invoices, account.customer))
    })
    .await
    .ok()
    .flatten();
    // Else one already decided and waiting for delivery. Read after the rules' view: an
    // action a tick records meanwhile is then in the queue.
    let Some((d, invoices, customer)) = planned else {
        for status in [
            crate::store::ActionStatus::Planned,
            crate::store::ActionStatus::Retrying,
        ] {
            let waiting = state
                .store
                .list_actions(&ActionFilter {
                    customer: Some(id.to_string()),
                    status: Some(status),
                    limit: 50,
                    ..Default::default()
                })
                .await?;
            for a in waiting {
                if !matches!(
                    a.kind,
                    crate::domain::ActionKind::Email | crate::domain::ActionKind::Sms
                ) {
                    continue;
                }
                if let Some(claimed) = state.store.action_message(a.id).await? {
                    let mut ctx = crate::templates::MessageContext::for_action(
                        &state.config.company,
                        &claimed,
                    );
                    ctx.portal_url =
                        crate::portal_links::preview_url(&state.config.portal).unwrap_or_default();
                    let template = claimed
                        .template
                        .clone()
                        .unwrap_or_else(|| claimed.step.clone());
                    return Ok(render_one(
                        a.kind,
                        &a.step,
                        &template,
                        claimed.customer.locale,
                        &ctx,
                        true,
                    ));
                }
            }
        }
        return Ok(serde_json::Value::Null);
    };
    let step = d.step.as_deref().unwrap_or("");
    let template = d.template.as_deref().unwrap_or(step);
    let mut ctx = crate::templates::MessageContext::new(
        &state.config.company,
        &customer,
        &invoices,
        step,
        today,
    );
    ctx.portal_url = crate::portal_links::preview_url(&state.config.portal).unwrap_or_default();
    let kind = d.kind.unwrap_or(crate::domain::ActionKind::Email);
    Ok(render_one(
        kind,
        step,
        template,
        customer.locale,
        &ctx,
        false,
    ))
}

fn minor_dec(amount: Decimal, code: &str, lang: Locale) -> String {
    let c = Currency::parse(code).unwrap_or(Currency::EUR);
    money(amount, c, lang)
}

// ---- Forms on a customer ------------------------------------------------------------

/// Loads the customer a form acts on and checks the user may.
async fn acting_on(
    state: &ConsoleState,
    user: &Signed,
    id: &str,
) -> Result<crate::domain::Customer, Response> {
    match state.store.customer(id).await {
        Ok(Some(c)) if may_act_on(user, c.collector.as_deref()) => Ok(c),
        Ok(Some(_)) => Err(page_error(
            StatusCode::FORBIDDEN,
            "Votre rôle ne permet pas de modifier ce client.",
            "Your role does not allow changes to this customer.",
            user.lang,
        )),
        Ok(None) => Err(no_customer(user.lang)),
        Err(e) => Err(internal(e, user.lang)),
    }
}

/// Records a change in the audit trail and goes back to the customer's page.
async fn done(
    state: &ConsoleState,
    user: &Signed,
    action: &str,
    customer: &str,
    detail: &str,
) -> Response {
    let back = format!("/customers/{}#history", urlencode(customer));
    audited(state, user, action, customer, detail, &back).await
}

/// Applies a collector's change to the ledger (as the CLI and the API do), then records
/// it in the audit trail and sends the browser back to the customer's page.
async fn applied(
    state: &ConsoleState,
    user: &Signed,
    key: &str,
    change: Change,
    (action, customer, detail): (&str, &str, &str),
) -> Response {
    if let Err(e) = collect::apply(state.store.as_ref(), key, &change).await {
        return invalid(&e.to_string(), user.lang);
    }
    done(state, user, action, customer, detail).await
}

/// Records a change in the audit trail, logs it, and sends the browser to `back`.
pub(super) async fn audited(
    state: &ConsoleState,
    user: &Signed,
    action: &str,
    customer: &str,
    detail: &str,
    back: &str,
) -> Response {
    if let Err(e) = state
        .store
        .record_audit(user.name(), action, Some(customer), detail, Utc::now())
        .await
    {
        return internal(e, user.lang);
    }
    tracing::info!(user = %user.name(), action, customer, detail, "console change");
    if action != "note" {
        super::cache::ledger_changed(state);
    }
    Redirect::to(back).into_response()
}

/// A form on customer `id`: its token checked, and the user allowed to act on it.
async fn form_on(
    state: &ConsoleState,
    user: &Signed,
    csrf: &str,
    id: &str,
) -> Result<crate::domain::Customer, Response> {
    check_form(user, csrf)?;
    acting_on(state, user, id).await
}

#[derive(Deserialize)]
pub(super) struct NoteForm {
    #[serde(default)]
    csrf: String,
    text: String,
}

pub(super) async fn add_note(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
    Form(f): Form<NoteForm>,
) -> Response {
    if let Err(r) = form_on(&state, &user, &f.csrf, &id).await {
        return r;
    }
    let text = f.text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return invalid("text: from 1 to 2,000 characters", user.lang);
    }
    if let Err(e) = state
        .store
        .add_note(&id, user.name(), text, Utc::now())
        .await
    {
        return internal(e, user.lang);
    }
    done(&state, &user, "note", &id, "note added").await
}

/// The customer's account statement as of today, rendered from the ledger as the
/// statement attached to emails is (the PDF template `statement`); not archived: it is
/// a view, the documents sent are archived with their actions.
pub(super) async fn statement(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
) -> Response {
    let lang = user.lang;
    let c = match state.store.customer(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_customer(lang),
        Err(e) => return internal(e, lang),
    };
    let today = state.today();
    let open: Vec<crate::domain::Invoice> = match state.store.invoices_of(&id).await {
        Ok(all) => all
            .into_iter()
            .filter(|i| i.status == InvoiceStatus::Open)
            .collect(),
        Err(e) => return internal(e, lang),
    };
    let rendered = crate::documents::statement_pdf(
        &state.config.channels.templates_dir,
        &state.config.company,
        &c,
        open,
        today,
    )
    .await;
    match rendered {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "inline; filename=\"statement-{}-{today}.pdf\"",
                        id.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "_")
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => page_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Le relevé ne peut être produit : {e}"),
            &format!("The statement cannot be made: {e}"),
            lang,
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct CallForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    due: String,
    #[serde(default)]
    priority: String,
    assignee: Option<String>,
}

/// "Schedule a call": a call task recorded in the action log (step `manual`), which the
/// outbox turns into the collector's task.
pub(super) async fn schedule_call(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
    Form(f): Form<CallForm>,
) -> Response {
    if let Err(r) = form_on(&state, &user, &f.csrf, &id).await {
        return r;
    }
    let lang = user.lang;
    let due = match optional_date("due", Some(&f.due), lang) {
        Ok(Some(d)) => d,
        Ok(None) => return invalid("due: a date is needed", lang),
        Err(r) => return r,
    };
    // A collector's calls are for the customer's collector (themselves); a credit
    // manager may give one to another user.
    let assignee = f
        .assignee
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty() && user.role != Role::Collector);
    let priority = if f.priority.trim().is_empty() {
        "normal".to_string()
    } else {
        f.priority.trim().to_string()
    };
    let call = crate::call_outcomes::ScheduledCall {
        customer: id.clone(),
        reason: f.reason.clone(),
        priority,
        assignee,
        due_on: due,
        by: user.name().to_string(),
        step: "manual",
        invoices: None,
    };
    match crate::call_outcomes::schedule(&state.store, &call, state.today(), Utc::now()).await {
        Ok(action) => {
            let detail = format!(
                "call task planned (action {action}) for {due}: {}",
                call.reason.trim()
            );
            done(&state, &user, "call_scheduled", &id, &detail).await
        }
        Err(crate::store::StoreError::Invalid(m)) => invalid(&m, lang),
        Err(e) => internal(e, lang),
    }
}

#[derive(Deserialize)]
pub(super) struct PauseForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    until: Option<String>,
}

fn optional_date(
    field: &str,
    v: Option<&str>,
    lang: Locale,
) -> Result<Option<NaiveDate>, Response> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => crate::domain::parse_date(s)
            .map(Some)
            .map_err(|e| invalid(&format!("{field}: {e}"), lang)),
    }
}

pub(super) async fn pause_customer(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
    Form(f): Form<PauseForm>,
) -> Response {
    if let Err(r) = form_on(&state, &user, &f.csrf, &id).await {
        return r;
    }
    let until = match optional_date("until", f.until.as_deref(), user.lang) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let pause = match collect::pause(&f.reason, until, state.today()) {
        Ok(p) => p,
        Err(e) => return invalid(&format!("{}: {}", e.field, e.message), user.lang),
    };
    let detail = match until {
        Some(u) => format!("paused until {u}: {}", f.reason.trim()),
        None => format!("paused: {}", f.reason.trim()),
    };
    let change = Change::CustomerPause(Some(pause));
    applied(&state, &user, &id, change, ("pause", &id, &detail)).await
}

pub(super) async fn unpause_customer(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
    Form(f): Form<TokenOnly>,
) -> Response {
    if let Err(r) = form_on(&state, &user, &f.csrf, &id).await {
        return r;
    }
    let change = Change::CustomerPause(None);
    applied(&state, &user, &id, change, ("unpause", &id, "pause lifted")).await
}

#[derive(Deserialize)]
pub(super) struct PromiseForm {
    #[serde(default)]
    csrf: String,
    date: String,
    amount: String,
    #[serde(default)]
    note: String,
}

pub(super) async fn add_promise(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<String>,
    Form(f): Form<PromiseForm>,
) -> Response {
    if let Err(r) = form_on(&state, &user, &f.csrf, &id).await {
        return r;
    }
    let lang = user.lang;
    let Ok(date) = crate::domain::parse_date(f.date.trim()) else {
        return invalid(&format!("date: '{}' is not a date", f.date), lang);
    };
    let today = state.today();
    if date < today || date > today + Duration::days(366) {
        return invalid("date: from today to a year from now", lang);
    }
    let Ok(amount) = f
        .amount
        .trim()
        .replace(',', ".")
        .replace(' ', "")
        .parse::<Decimal>()
    else {
        return invalid(&format!("amount: '{}' is not an amount", f.amount), lang);
    };
    let note = Some(f.note.trim().to_string()).filter(|n| !n.is_empty());
    let input = collect::PromiseInput {
        customer: id.clone(),
        promised_date: date,
        amount,
        invoices: Vec::new(),
        note,
    };
    if let Err(e) = collect::add_promise(state.store.as_ref(), input).await {
        return invalid(&e.to_string(), lang);
    }
    done(
        &state,
        &user,
        "promise",
        &id,
        &format!("promise to pay {amount} by {date}"),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct DisputeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn invoice_customer(
    state: &ConsoleState,
    user: &Signed,
    number: &str,
) -> Result<String, Response> {
    match state.store.invoice(number).await {
        Ok(Some(i)) => {
            acting_on(state, user, &i.customer).await?;
            Ok(i.customer)
        }
        Ok(None) => Err(page_error(
            StatusCode::NOT_FOUND,
            "Cette facture n'existe pas.",
            "There is no such invoice.",
            user.lang,
        )),
        Err(e) => Err(internal(e, user.lang)),
    }
}

pub(super) async fn open_dispute(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(number): Path<String>,
    Form(f): Form<DisputeForm>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf) {
        return r;
    }
    let customer = match invoice_customer(&state, &user, &number).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let dispute = match collect::dispute(&f.reason, Utc::now()) {
        Ok(d) => d,
        Err(e) => return invalid(&format!("{}: {}", e.field, e.message), user.lang),
    };
    let detail = format!("{number} disputed: {}", f.reason.trim());
    let change = Change::Dispute(Some(dispute));
    applied(
        &state,
        &user,
        &number,
        change,
        ("dispute", &customer, &detail),
    )
    .await
}

pub(super) async fn resolve_dispute(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(number): Path<String>,
    Form(f): Form<TokenOnly>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf) {
        return r;
    }
    let customer = match invoice_customer(&state, &user, &number).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let detail = format!("{number}: dispute resolved");
    let change = Change::Dispute(None);
    applied(
        &state,
        &user,
        &number,
        change,
        ("dispute_resolved", &customer, &detail),
    )
    .await
}

// ---- Tasks --------------------------------------------------------------------------

pub(super) async fn tasks(State(state): State<ConsoleState>, user: Signed) -> Response {
    let lang = user.lang;
    let filter = TaskFilter {
        status: Some("open".into()),
        assignee: (user.role == Role::Collector).then(|| user.name().to_string()),
        limit: 500,
        ..Default::default()
    };
    let mut list = match state.store.call_tasks(&filter).await {
        Ok(l) => l,
        Err(e) => return internal(e, lang),
    };
    let rank = |p: &str| match p {
        "urgent" => 0,
        "high" => 1,
        "normal" => 2,
        _ => 3,
    };
    list.sort_by(|a, b| {
        (rank(&a.priority), a.due_on, a.id).cmp(&(rank(&b.priority), b.due_on, b.id))
    });
    let today = state.today();
    let mut phones = std::collections::HashMap::new();
    for t in &list {
        if !phones.contains_key(&t.customer) {
            if let Ok(Some(c)) = state.store.customer(&t.customer).await {
                phones.insert(
                    t.customer.clone(),
                    c.phones.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                );
            }
        }
    }
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "customer": t.customer,
                "customer_name": t.customer_name,
                "reason": t.reason,
                "priority": t.priority,
                "due": fdate(t.due_on, lang),
                "late": t.due_on < today,
                "invoices": t.invoices.join(", "),
                "assignee": t.assignee,
                "phones": phones.get(&t.customer).cloned().unwrap_or_default(),
            })
        })
        .collect();
    render(
        &state,
        "tasks.html",
        lang,
        Some(&user),
        json!({ "tasks": rows, "today": today.to_string() }),
    )
}

#[derive(Deserialize)]
pub(super) struct OutcomeForm {
    #[serde(default)]
    csrf: String,
    outcome: String,
    promise_date: Option<String>,
    amount: Option<String>,
    dispute_reason: Option<String>,
    callback: Option<String>,
    #[serde(default)]
    note: String,
}

pub(super) async fn complete_task(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<i64>,
    Form(f): Form<OutcomeForm>,
) -> Response {
    if let Err(r) = check_form(&user, &f.csrf) {
        return r;
    }
    let lang = user.lang;
    let task = match state.store.call_task(id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return page_error(
                StatusCode::NOT_FOUND,
                "Cette tâche n'existe pas.",
                "There is no such task.",
                lang,
            )
        }
        Err(e) => return internal(e, lang),
    };
    let customer = match acting_on(&state, &user, &task.customer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(outcome) = f.outcome.parse::<CallOutcome>() else {
        return invalid(&format!("outcome: '{}' is not an outcome", f.outcome), lang);
    };
    let promise_date = match optional_date("promise_date", f.promise_date.as_deref(), lang) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let callback = match optional_date("callback", f.callback.as_deref(), lang) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let amount = match f.amount.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(a) => match a.replace(',', ".").replace(' ', "").parse::<Decimal>() {
            Ok(a) if a > Decimal::ZERO => Some(a),
            _ => return invalid(&format!("amount: '{a}' is not a positive amount"), lang),
        },
    };
    if callback.is_some_and(|cb| cb < state.today()) {
        return invalid("callback: the date is in the past", lang);
    }
    let mut note = f.note.trim().to_string();
    if let Some(cb) = callback {
        note = format!("{note} (call back on {cb})").trim().to_string();
    }
    let completion = crate::call_outcomes::TaskCompletion {
        outcome,
        note: Some(note.clone()).filter(|n| !n.is_empty()),
        by: user.name().to_string(),
        promise_date,
        amount,
        invoices: Vec::new(),
        dispute_reason: f.dispute_reason.clone().filter(|r| !r.trim().is_empty()),
    };
    if let Err(e) = crate::call_outcomes::complete(&state.store, id, &completion, Utc::now()).await
    {
        return invalid(&e.to_string(), lang);
    }
    // A call back agreed on the call: the next call, due that day, for the same person.
    let mut callback_detail = String::new();
    if let Some(cb) = callback {
        let call = crate::call_outcomes::ScheduledCall {
            customer: task.customer.clone(),
            reason: format!("call back ({})", task.reason),
            priority: task.priority.clone(),
            assignee: task.assignee.clone(),
            due_on: cb,
            by: user.name().to_string(),
            step: "callback",
            invoices: None,
        };
        match crate::call_outcomes::schedule(&state.store, &call, state.today(), Utc::now()).await {
            Ok(action) => callback_detail = format!("; call back planned (action {action})"),
            Err(e) => return internal(e, lang),
        }
    }
    let detail = format!(
        "call task {id}: {}{}{callback_detail}",
        outcome.as_str(),
        if note.is_empty() {
            String::new()
        } else {
            format!(" — {note}")
        }
    );
    done(
        &state,
        &user,
        "task_completed",
        &customer.external_id,
        &detail,
    )
    .await
}
