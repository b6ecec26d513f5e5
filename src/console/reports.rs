//! The reports in the console: each report's chart, drawn by the server, its tables,
//! and its CSV downloads — the figures of `relance report NAME`.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::pages::{internal, invalid};
use super::{page_error, render, urlencode, ConsoleState, Signed};
use crate::reports::{Cell, ReportKind, ReportQuery};
use crate::store::reports::ReportFilter;

#[derive(Deserialize, Default)]
pub(super) struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    segment: Option<String>,
    collector: Option<String>,
    currency: Option<String>,
    table: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn date(field: &str, s: &Option<String>) -> Result<Option<NaiveDate>, String> {
    nonempty(s)
        .map(|d| crate::domain::parse_date(&d).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

async fn run(
    state: &ConsoleState,
    name: &str,
    p: &ReportParams,
) -> Result<(ReportKind, super::cache::Cached, ReportQuery), String> {
    let kind: ReportKind = name.parse()?;
    let today = state.today();
    let to = date("to", &p.to)?.unwrap_or(today);
    let from = date("from", &p.from)?;
    let filter = ReportFilter {
        segment: nonempty(&p.segment),
        collector: nonempty(&p.collector),
        currency: nonempty(&p.currency),
        customer: None,
    };
    let query = ReportQuery::build(&state.config, to, from, filter, None, today)
        .map_err(|e| e.to_string())?;
    let report = super::cache::report(state, kind, &query).await?;
    Ok((kind, report, query))
}

pub(super) async fn index(State(state): State<ConsoleState>, user: Signed) -> Response {
    render(
        &state,
        "reports.html",
        user.lang,
        Some(&user),
        json!({
            "report": null,
            "names": ReportKind::ALL.iter().map(ReportKind::as_str).collect::<Vec<_>>(),
            "segments": state.config.segments.keys().collect::<Vec<_>>(),
        }),
    )
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(name): Path<String>,
    Query(p): Query<ReportParams>,
) -> Response {
    let lang = user.lang;
    if let Some(base) = name.strip_suffix(".csv") {
        return csv(&state, &user, base, &p).await;
    }
    let (kind, cached, query) = match run(&state, &name, &p).await {
        Ok(r) => r,
        Err(m) if m.starts_with("unknown report") => {
            return page_error(StatusCode::NOT_FOUND, &m, &m, lang)
        }
        Err(m) if m.starts_with("database") => return internal(m, lang),
        Err(m) => return invalid(&m, lang),
    };
    let report = cached.report.as_ref();
    let computed_at = cached
        .at
        .with_timezone(&state.config.timezone)
        .format("%H:%M")
        .to_string();
    let chart = crate::charts::svg(report, kind, lang).ok();
    let keep = format!(
        "from={}&to={}&segment={}&collector={}&currency={}",
        urlencode(p.from.as_deref().unwrap_or("")),
        urlencode(p.to.as_deref().unwrap_or("")),
        urlencode(p.segment.as_deref().unwrap_or("")),
        urlencode(p.collector.as_deref().unwrap_or("")),
        urlencode(p.currency.as_deref().unwrap_or(""))
    );
    let tables: Vec<serde_json::Value> = report
        .tables(kind)
        .iter()
        .map(|t| {
            json!({
                "key": t.key,
                "title": t.title,
                "columns": t.columns,
                "numeric": t.rows.first().map(|r| r.iter().map(|c| matches!(c, Cell::Int(_) | Cell::Amount(_) | Cell::Number(_))).collect::<Vec<_>>()).unwrap_or_default(),
                "rows": t.rows.iter().take(500).map(|r| r.iter().map(|c| c.display(lang)).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "more": t.rows.len().saturating_sub(500),
                "csv": format!("/reports/{name}.csv?{keep}&table={}", t.key),
            })
        })
        .collect();
    render(
        &state,
        "reports.html",
        lang,
        Some(&user),
        json!({
            "report": name,
            "names": ReportKind::ALL.iter().map(ReportKind::as_str).collect::<Vec<_>>(),
            "segments": state.config.segments.keys().collect::<Vec<_>>(),
            "chart": chart,
            "tables": tables,
            "from": query.from.to_string(),
            "to": query.to.to_string(),
            "segment": p.segment.clone().unwrap_or_default(),
            "collector": p.collector.clone().unwrap_or_default(),
            "currency": p.currency.clone().unwrap_or_default(),
            "period": kind.has_period(),
            "computed_at": computed_at,
        }),
    )
}

async fn csv(state: &ConsoleState, user: &Signed, name: &str, p: &ReportParams) -> Response {
    let lang = user.lang;
    let (kind, cached, query) = match run(state, name, p).await {
        Ok(r) => r,
        Err(m) => return invalid(&m, lang),
    };
    let tables = cached.report.tables(kind);
    let table = match nonempty(&p.table) {
        None => tables.first(),
        Some(k) => tables.iter().find(|t| t.key == k),
    };
    let Some(table) = table else {
        return invalid("table: the report has no such table", lang);
    };
    let file = format!("{name}-{}-{}.csv", table.key, query.to);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        table.to_csv(lang),
    )
        .into_response()
}
